/*
 * The exporter reads the shared counters (relaxed atomics, so a scrape may
 * see one counter a moment ahead of another) and never blocks the loop
 * for long: the queue count is capped and cached.
 */
#include "proto/http/metrics_export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/metrics.h"
#include "storage/queue.h"

static const char *const metrics_export_help[METRIC_COUNTER_COUNT] = {
    [METRIC_LOGINS_OK] = "Logins accepted (POP3, IMAP, SMTP AUTH).",
    [METRIC_LOGINS_FAILED] = "Logins refused (bad password, unknown user).",
    [METRIC_MESSAGES_RECEIVED] = "SMTP transactions answered 250.",
    [METRIC_MESSAGES_DELIVERED] = "Recipients stored into a local mailbox.",
    [METRIC_MESSAGES_RELAYED] = "Recipients accepted by a remote server.",
    [METRIC_MESSAGES_BOUNCED] = "Recipients given up on (DSN sent).",
    [METRIC_MESSAGES_RETRIEVED] = "Whole messages sent by POP3 RETR.",
    [METRIC_MESSAGES_EXPIRED] = "Messages removed by retention.",
    [METRIC_BYTES_RECEIVED] = "Message octets received over SMTP.",
    [METRIC_BYTES_RETRIEVED] = "Message octets sent by RETR and TOP.",
};

static int metrics_export_count_dir(int queue_fd, const char *name,
				    uint64_t max, uint64_t *count_r);
static int metrics_export_sessions(const struct config *cfg, struct buf *out);
static int metrics_export_queue(struct metrics_export *me, time_t now,
				struct buf *out);

static int metrics_export_count_dir(int queue_fd, const char *name,
				    uint64_t max, uint64_t *count_r)
{
	int fd = openat(queue_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	uint64_t n = 0;
	DIR *dir;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while (n < max && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(dir);
	*count_r += n;
	return 0;
}

int metrics_export_queue_count(int queue_fd, uint64_t *count_r)
{
	uint64_t n = 0;

	/* env/ must exist; hold/ appears with the first "queue hold". */
	if (faccessat(queue_fd, QUEUE_SUBDIR_ENV, R_OK | X_OK, AT_EACCESS) <
		0 ||
	    metrics_export_count_dir(queue_fd, QUEUE_SUBDIR_ENV,
				     METRICS_EXPORT_MAX_QUEUE_SCAN, &n) < 0 ||
	    metrics_export_count_dir(queue_fd, QUEUE_SUBDIR_HOLD,
				     METRICS_EXPORT_MAX_QUEUE_SCAN - n, &n) < 0)
		return -1;
	*count_r = n;
	return 0;
}

static int metrics_export_sessions(const struct config *cfg, struct buf *out)
{
	bool seen[LISTEN_PROTO_COUNT] = {false};

	if (buf_append_str(out, "# HELP postd_sessions Open sessions by "
				"protocol.\n"
				"# TYPE postd_sessions gauge\n") < 0)
		return -1;
	for (size_t i = 0; i < cfg->listen_count; i++) {
		enum listen_proto proto = cfg->listen[i].proto;

		if ((unsigned)proto >= LISTEN_PROTO_COUNT || seen[proto])
			continue;
		seen[proto] = true;
		if (buf_printf(out, "postd_sessions{protocol=\"%s\"} %llu\n",
			       config_proto_name(proto),
			       (unsigned long long)metrics_sessions(
				   (unsigned)proto)) < 0)
			return -1;
	}
	return 0;
}

static int metrics_export_queue(struct metrics_export *me, time_t now,
				struct buf *out)
{
	if (me->queue_fd >= 0 &&
	    (me->queue_counted_at == 0 ||
	     now - me->queue_counted_at >= METRICS_EXPORT_QUEUE_CACHE_SECS ||
	     now < me->queue_counted_at)) {
		me->queue_ok = metrics_export_queue_count(
				   me->queue_fd, &me->queue_count) == 0;
		me->queue_counted_at = now;
	}
	if (!me->queue_ok)
		return 0; /* absent beats a wrong 0; /healthz says why */
	return buf_printf(out,
			  "# HELP postd_queue_messages Messages waiting in "
			  "the outbound queue.\n"
			  "# TYPE postd_queue_messages gauge\n"
			  "postd_queue_messages %llu\n",
			  (unsigned long long)me->queue_count) < 0
		   ? -1
		   : 0;
}

int metrics_export_write(struct metrics_export *me, const struct config *cfg,
			 time_t now, struct buf *out)
{
	for (int c = 0; c < METRIC_COUNTER_COUNT; c++) {
		const char *name = metrics_counter_name((enum metric_counter)c);

		if (name == NULL)
			continue;
		if (buf_printf(
			out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name,
			metrics_export_help[c] != NULL ? metrics_export_help[c]
						       : "postd counter.",
			name, name,
			(unsigned long long)metrics_get(
			    (enum metric_counter)c)) < 0)
			return -1;
	}
	if (metrics_export_sessions(cfg, out) < 0 ||
	    metrics_export_queue(me, now, out) < 0)
		return -1;
	return buf_append_str(out, "# HELP postd_up 1 while postd serves.\n"
				   "# TYPE postd_up gauge\n"
				   "postd_up 1\n");
}
