/*
 * loadgen.c: the parts of pop3load.c and imapload.c that are the same in
 * both, so that a fix to the clock, the error count or the figures lands
 * in both generators at once. See loadgen.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

unsigned long errors;
volatile sig_atomic_t got_signal;

static void on_signal(int sig);
static void raise_nofile(void);

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
	got_signal = sig;
}

void verr(const char *prefix, const char *fmt, va_list ap)
{
	errors++;
	if (errors > ERR_SHOW)
		return;
	fprintf(stderr, "error: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (errors == ERR_SHOW)
		fprintf(stderr, "error: (further errors only counted)\n");
}

/* Decimal digits only: no sign, no empty input, no overflow. */
int parse_u64(const char **p, uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*v_r = v;
	return 0;
}

int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
double percentile(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* The load generator's own CPU time: it shares the 2 cores with the
 * server, so the reader should see how much it took. */
double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

unsigned long num_arg(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
		usage();
	return v;
}

double secs_arg(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0) || v > 86400)
		usage();
	return v;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

const char *lg_connect(int ep, unsigned port, void *ptr, int *fd_r)
{
	struct sockaddr_in sin;
	struct epoll_event ev;
	int one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, BENCH_HOST, &sin.sin_addr);

	*fd_r = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*fd_r < 0)
		return "socket";
	setsockopt(*fd_r, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(*fd_r, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
	    errno != EINPROGRESS)
		return "connect";
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLOUT | EPOLLIN;
	ev.data.ptr = ptr;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, *fd_r, &ev) < 0)
		return "epoll_ctl";
	return NULL;
}

int lg_flush(int ep, int fd, void *ptr, const char *out, size_t *outoff,
	     size_t outlen)
{
	struct epoll_event ev;

	while (*outoff < outlen) {
		ssize_t n = write(fd, out + *outoff, outlen - *outoff);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		*outoff += (size_t)n;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (*outoff < outlen ? EPOLLOUT : 0);
	ev.data.ptr = ptr;
	epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	return 0;
}

void lg_process_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
}

int lg_exit_status(void)
{
	if (errors >= ERR_ABORT)
		fprintf(stderr, "error: stopped after %lu errors\n", errors);
	return errors ? 1 : 0;
}
