/*
 * Logging: one line per event, to stderr in the foreground and to syslog
 * otherwise. Every message from the network is escaped by the caller with
 * log_escape() before it reaches a log line (INV-S2).
 */
#ifndef POSTD_LOG_H
#define POSTD_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/*
 * Sets the process name shown in each line ("postd", "postd-auth", ...)
 * and the destination. Before log_init() lines go to stderr.
 */
void log_init(const char *process_name, int to_stderr);
void log_set_level(enum log_level level);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A broken invariant or a setup failure: logs and exits(1). Never reached
 * by input from the network (two tiers of errors). */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copies at most len bytes of untrusted text into dst (size dstsize,
 * always NUL-terminated), replacing control bytes, backslash, and bytes
 * >= 0x7f by \xHH so a peer cannot forge log lines. Returns dst.
 */
char *log_escape(char *dst, size_t dstsize, const char *src, size_t len);

/*
 * As log_escape(), and also space, '"' and '=': for a value from the
 * network (an address) that sits inside a "key=value" log line, so it
 * cannot pose as further fields. Returns dst.
 */
char *log_escape_word(char *dst, size_t dstsize, const char *src);

#endif
