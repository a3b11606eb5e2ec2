#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_process = "postd";
static int log_to_stderr = 1;
static enum log_level log_max_level = LOG_LEVEL_INFO;

static void log_vwrite(enum log_level level, const char *fmt, va_list ap);

void log_init(const char *process_name, int to_stderr)
{
	log_process = process_name;
	log_to_stderr = to_stderr;
	if (!to_stderr)
		openlog(process_name, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO,
					  LOG_DEBUG};
	static const char *const names[] = {"error", "warning", "info",
					    "debug"};
	char msg[2048];

	if (level > log_max_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_to_stderr) {
		char stamp[32];
		struct tm tm;
		time_t now = time(NULL);

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		fprintf(stderr, "%s %s[%ld]: %s: %s\n", stamp, log_process,
			(long)getpid(), names[level], msg);
	} else {
		syslog(syslog_prio[level], "%s: %s", names[level], msg);
	}
}

#define LOG_FN(name, level)                                                    \
	void name(const char *fmt, ...)                                        \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_vwrite(level, fmt, ap);                                    \
		va_end(ap);                                                    \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

static char *log_escape_set(char *dst, size_t dstsize, const char *src,
			    size_t len, const char *also);

char *log_escape(char *dst, size_t dstsize, const char *src, size_t len)
{
	return log_escape_set(dst, dstsize, src, len, "");
}

char *log_escape_word(char *dst, size_t dstsize, const char *src)
{
	return log_escape_set(dst, dstsize, src, strlen(src), " \"=");
}

static char *log_escape_set(char *dst, size_t dstsize, const char *src,
			    size_t len, const char *also)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstsize == 0)
		return dst;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' &&
		    strchr(also, c) == NULL) {
			if (o + 1 >= dstsize)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsize)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
