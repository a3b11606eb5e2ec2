/*
 * loadgen: what the two load generators (pop3load.c, imapload.c) share,
 * compiled into both: the clock, signals and limits, the strict error
 * count and exit status, connect and write, number parsing, percentiles
 * and the generator's own CPU time. The protocol state machines stay in
 * their own files.
 */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The only address the generators connect to. */
#define BENCH_HOST "127.0.0.1"
#define ERR_SHOW 10 /* errors printed; the rest are only counted */
/* A run with this many errors stops early: the server is broken. */
#define ERR_ABORT 1000

/* Every error of the run (the exit status is 1 if any), and the signal
 * that asked the run to end. */
extern unsigned long errors;
extern volatile sig_atomic_t got_signal;

/* Each program prints its own usage and exits; the argument parsers below
 * call it on a bad value. */
void usage(void) __attribute__((noreturn));

double now(void);
void verr(const char *prefix, const char *fmt, va_list ap);
int parse_u64(const char **p, uint64_t *v_r);
int cmp_double(const void *a, const void *b);
double percentile(const double *v, size_t n, double p);
double cpu_seconds(void);
unsigned long num_arg(const char *s, unsigned long max);
double secs_arg(const char *s);
/* SIGINT, SIGTERM and SIGUSR1 end the run (got_signal), SIGPIPE is
 * ignored, and the descriptor limit is raised to its maximum. */
void lg_process_setup(void);
/* After the report: says when the run stopped on ERR_ABORT; the exit
 * status, 1 if there was any error. */
int lg_exit_status(void);

/* A non-blocking connect to BENCH_HOST:PORT, watched by EP (in and out)
 * with PTR as its data. *FD_R is the socket (or -1). Returns NULL, or the
 * call that failed, with errno set. */
const char *lg_connect(int ep, unsigned port, void *ptr, int *fd_r);
/* Writes OUT[*OUTOFF, OUTLEN) until done or EAGAIN; asks EP for EPOLLOUT
 * only while something is pending. -1 when write fails (errno set). */
int lg_flush(int ep, int fd, void *ptr, const char *out, size_t *outoff,
	     size_t outlen);

#endif
