/*
 * Delivery status notifications (RFC 3464 in an RFC 6522
 * multipart/report): built in memory, then put into the queue exactly
 * as a received message is (INV-D1): tmp/ file fsynced, linked to
 * msg/ID, msg/ fsynced, envelope renamed into env/, env/ fsynced.
 *
 * The file is in the queue's stored form (LF line ends, first line
 * "Return-Path: <>", whose length is the entry's skip); the runner turns
 * LF into CRLF on the wire as for any entry.
 */
#include "delivery/dsn.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/postd_limits.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xmalloc.h"

#define DSN_RETURN_PATH "Return-Path: <>\n"
static void dsn_clean(char *out, size_t size, const char *in, bool utf8);
static void dsn_date(time_t t, char *out, size_t size);
static const char *dsn_status(const char *status, enum dsn_action action);
static int dsn_read_header(int queue_fd, const struct queue_envelope *env,
			   struct buf *b, const char **error_r);
static void dsn_text_part(struct buf *b, const struct config *cfg,
			  const struct queue_envelope *env,
			  enum dsn_action action, const struct dsn_rcpt *rcpts,
			  size_t rcpt_count);
static void dsn_status_part(struct buf *b, const struct config *cfg,
			    const struct queue_envelope *env,
			    enum dsn_action action,
			    const struct dsn_rcpt *rcpts, size_t rcpt_count,
			    time_t now);
static int dsn_build(int queue_fd, const struct config *cfg,
		     const struct queue_envelope *env, enum dsn_action action,
		     const struct dsn_rcpt *rcpts, size_t rcpt_count,
		     time_t now, const char *id, struct buf *b,
		     const char **error_r);
static int dsn_write_all(int fd, const char *p, size_t len);
static int dsn_store(int queue_fd, const char *id, const struct buf *b,
		     const char **error_r);

static __thread char dsn_errbuf[256];

static const char *dsn_error(const char *what, int err)
{
	char sbuf[128];
	const char *s = strerror_r(err, sbuf, sizeof(sbuf));

	snprintf(dsn_errbuf, sizeof(dsn_errbuf), "%s: %s", what, s);
	return dsn_errbuf;
}

/* INV-S2: nothing from the envelope or a remote reply may end a header
 * line. Control bytes become '?'; bytes >= 0x80 stay only in addresses
 * (RFC 6531 UTF-8 addresses), elsewhere they become '?' too. */
static void dsn_clean(char *out, size_t size, const char *in, bool utf8)
{
	size_t n = 0;

	if (in == NULL)
		in = "";
	for (; *in != '\0' && n + 1 < size; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
			c = '?';
		out[n++] = (char)c;
	}
	out[n] = '\0';
}

/* RFC 5322 section 3.3, in UTC; independent of the locale. */
static void dsn_date(time_t t, char *out, size_t size)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11) {
		snprintf(out, size, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* RFC 3463 "class.subject.detail" with the class the action implies;
 * anything else becomes the generic code. */
static const char *dsn_status(const char *status, enum dsn_action action)
{
	const char *p = status;
	char want = action == DSN_FAILED ? '5' : '4';

	if (p == NULL || p[0] != want || p[1] != '.')
		goto generic;
	p += 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 4) {
			p++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			goto generic;
		if (part == 0 && *p++ != '.')
			goto generic;
	}
	if (*p == '\0')
		return status;
generic:
	return action == DSN_FAILED ? "5.0.0" : "4.0.0";
}

/* The header section of msg/ID after skip, up to its empty line, cut
 * at DSN_MAX_HEADER on a line end. */
static int dsn_read_header(int queue_fd, const struct queue_envelope *env,
			   struct buf *b, const char **error_r)
{
	char *data = xmalloc(DSN_MAX_HEADER);
	const char *qerr;
	size_t len, end;
	bool cut;

	if (queue_read_header(queue_fd, env, data, DSN_MAX_HEADER, &len, &end,
			      &cut, &qerr) < 0) {
		*error_r = dsn_error("read the original message", errno);
		free(data);
		return -1;
	}
	/* A NUL would end the part early for some readers: drop it. */
	for (size_t i = 0; i < end; i++)
		if (data[i] == '\0')
			data[i] = '?';
	buf_append(b, data, end);
	if (end > 0 && data[end - 1] != '\n')
		buf_append(b, "\n", 1);
	free(data);
	return 0;
}

/* The human-readable part: what happened, to whom, what the remote
 * side said, and what the sender can do. */
static void dsn_text_part(struct buf *b, const struct config *cfg,
			  const struct queue_envelope *env,
			  enum dsn_action action, const struct dsn_rcpt *rcpts,
			  size_t rcpt_count)
{
	char host[DSN_MAX_VALUE], v[DSN_MAX_VALUE], date[64];

	dsn_clean(host, sizeof(host), cfg->hostname, false);
	dsn_date((time_t)env->created, date, sizeof(date));
	buf_printf(b, "This is the mail system at %s.\n\n", host);
	if (action == DSN_FAILED)
		buf_printf(b,
			   "Your message sent on %s could not be delivered\n"
			   "to the recipients listed below. This is a "
			   "permanent failure:\n"
			   "the mail system has stopped trying.\n\n",
			   date);
	else {
		dsn_date((time_t)(env->created + cfg->queue_lifetime), v,
			 sizeof(v));
		buf_printf(b,
			   "Your message sent on %s has not yet been "
			   "delivered\n"
			   "to the recipients listed below. The mail system "
			   "is still trying\n"
			   "and will go on until %s.\n"
			   "You do not need to send it again; you will be "
			   "told if it fails.\n\n",
			   date, v);
	}
	for (size_t i = 0; i < rcpt_count; i++) {
		dsn_clean(v, sizeof(v), rcpts[i].addr, true);
		buf_printf(b, "<%s>:\n", v);
		if (rcpts[i].reason != NULL) {
			dsn_clean(v, sizeof(v), rcpts[i].reason, false);
			buf_printf(b, "    %s\n", v);
		}
		if (rcpts[i].diagnostic != NULL) {
			if (rcpts[i].remote_mta != NULL) {
				dsn_clean(v, sizeof(v), rcpts[i].remote_mta,
					  false);
				buf_printf(b, "    The server %s replied:\n",
					   v);
			} else {
				buf_append_str(
				    b, "    The remote server replied:\n");
			}
			dsn_clean(v, sizeof(v), rcpts[i].diagnostic, false);
			buf_printf(b, "    %s\n", v);
		}
		buf_append_str(b, "\n");
	}
	if (action == DSN_FAILED)
		buf_append_str(
		    b, "What you can do: check each address above for typing "
		       "mistakes\n"
		       "and send the message again, or reach the recipient "
		       "another way.\n"
		       "If the remote server's reply names a policy "
		       "problem, its\n"
		       "postmaster can tell you more. The headers of your "
		       "message are\n"
		       "attached below.\n");
	else
		buf_append_str(
		    b, "What you can do: nothing yet. If the address may be "
		       "wrong,\n"
		       "check it; otherwise wait. The headers of your message "
		       "are attached below.\n");
}

/* message/delivery-status (RFC 3464 section 2): the per-message fields,
 * then one block per recipient, blocks separated by empty lines. */
static void dsn_status_part(struct buf *b, const struct config *cfg,
			    const struct queue_envelope *env,
			    enum dsn_action action,
			    const struct dsn_rcpt *rcpts, size_t rcpt_count,
			    time_t now)
{
	char v[DSN_MAX_VALUE], date[64];

	dsn_clean(v, sizeof(v), cfg->hostname, false);
	buf_printf(b, "Reporting-MTA: dns; %s\n", v);
	dsn_date((time_t)env->created, date, sizeof(date));
	buf_printf(b, "Arrival-Date: %s\n", date);
	for (size_t i = 0; i < rcpt_count; i++) {
		const struct dsn_rcpt *r = &rcpts[i];

		dsn_clean(v, sizeof(v), r->addr, true);
		buf_printf(b, "\nFinal-Recipient: rfc822; %s\n", v);
		buf_printf(b, "Action: %s\n",
			   action == DSN_FAILED ? "failed" : "delayed");
		buf_printf(b, "Status: %s\n", dsn_status(r->status, action));
		if (r->remote_mta != NULL) {
			dsn_clean(v, sizeof(v), r->remote_mta, false);
			buf_printf(b, "Remote-MTA: dns; %s\n", v);
		}
		if (r->diagnostic != NULL) {
			dsn_clean(v, sizeof(v), r->diagnostic, false);
			buf_printf(b, "Diagnostic-Code: smtp; %s\n", v);
		}
		dsn_date(now, date, sizeof(date));
		buf_printf(b, "Last-Attempt-Date: %s\n", date);
		if (action == DSN_DELAYED) {
			dsn_date((time_t)(env->created + cfg->queue_lifetime),
				 date, sizeof(date));
			buf_printf(b, "Will-Retry-Until: %s\n", date);
		}
	}
}

static int dsn_build(int queue_fd, const struct config *cfg,
		     const struct queue_envelope *env, enum dsn_action action,
		     const struct dsn_rcpt *rcpts, size_t rcpt_count,
		     time_t now, const char *id, struct buf *b,
		     const char **error_r)
{
	char host[DSN_MAX_VALUE], sender[DSN_MAX_VALUE], date[64];
	char boundary[QUEUE_MAX_ID + 32], close_delim[QUEUE_MAX_ID + 40];

	dsn_clean(host, sizeof(host), cfg->hostname, false);
	dsn_clean(sender, sizeof(sender), env->sender, true);
	dsn_date(now, date, sizeof(date));
	/* The id is random: the boundary cannot occur in the parts. */
	snprintf(boundary, sizeof(boundary), "=_postd_dsn_%s", id);
	buf_append_str(b, DSN_RETURN_PATH);
	buf_printf(b, "Date: %s\n", date);
	buf_printf(b, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\n",
		   host);
	buf_printf(b, "To: <%s>\n", sender);
	buf_printf(b, "Subject: %s\n",
		   action == DSN_FAILED ? "Undelivered Mail Returned to Sender"
					: "Delayed Mail (still being retried)");
	buf_printf(b, "Message-ID: <%s@%s>\n", id, host);
	/* RFC 3834: no auto-responder answers this. */
	buf_append_str(b, "Auto-Submitted: auto-replied\n");
	buf_append_str(b, "MIME-Version: 1.0\n");
	buf_printf(b,
		   "Content-Type: multipart/report; "
		   "report-type=delivery-status;\n\tboundary=\"%s\"\n\n",
		   boundary);
	buf_append_str(b, "This is a MIME-encapsulated message.\n\n");

	buf_printf(b, "--%s\n", boundary);
	buf_append_str(b, "Content-Description: Notification\n"
			  "Content-Type: text/plain; charset=utf-8\n\n");
	dsn_text_part(b, cfg, env, action, rcpts, rcpt_count);

	buf_printf(b, "\n--%s\n", boundary);
	buf_append_str(b, "Content-Description: Delivery report\n"
			  "Content-Type: message/delivery-status\n\n");
	dsn_status_part(b, cfg, env, action, rcpts, rcpt_count, now);

	buf_printf(b, "\n--%s\n", boundary);
	buf_append_str(b, "Content-Description: Undelivered Message Headers\n"
			  "Content-Type: text/rfc822-headers\n\n");
	if (dsn_read_header(queue_fd, env, b, error_r) < 0)
		return -1;
	snprintf(close_delim, sizeof(close_delim), "\n--%s--\n", boundary);
	buf_append_str(b, close_delim);
	/* buf refuses appends past its maximum; the closing delimiter is
	 * the last one, so its presence proves nothing was dropped. */
	if (buf_len(b) < strlen(close_delim) ||
	    strcmp(buf_data(b) + buf_len(b) - strlen(close_delim),
		   close_delim) != 0) {
		*error_r = "delivery report too big";
		return -1;
	}
	return 0;
}

static int dsn_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* tmp/ID.dsn written, fsynced and closed, linked to msg/ID, msg/
 * fsynced (INV-D1). */
static int dsn_store(int queue_fd, const char *id, const struct buf *b,
		     const char **error_r)
{
	char tmp_name[QUEUE_MAX_ID + 8];
	int tmp_dir, msg_dir, fd = -1, rc = -1;

	snprintf(tmp_name, sizeof(tmp_name), "%s.dsn", id);
	tmp_dir = openat(queue_fd, QUEUE_SUBDIR_TMP,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	msg_dir = openat(queue_fd, QUEUE_SUBDIR_MSG,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmp_dir < 0 || msg_dir < 0) {
		*error_r = dsn_error("open queue folder", errno);
		goto out;
	}
	fd = openat(tmp_dir, tmp_name,
		    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = dsn_error("create report file", errno);
		goto out;
	}
	if (dsn_write_all(fd, buf_data(b), buf_len(b)) < 0) {
		*error_r = dsn_error("write report file", errno);
		goto unlink_tmp;
	}
	/* A failed fsync is never retried (INV-D1). */
	if (fsync(fd) < 0) {
		*error_r = dsn_error("fsync report file", errno);
		goto unlink_tmp;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = dsn_error("close report file", errno);
		goto unlink_tmp;
	}
	fd = -1;
	if (linkat(tmp_dir, tmp_name, msg_dir, id, 0) < 0) {
		*error_r = dsn_error("link report into msg/", errno);
		goto unlink_tmp;
	}
	if (fsync(msg_dir) < 0) {
		*error_r = dsn_error("fsync msg/", errno);
		unlinkat(msg_dir, id, 0);
		goto unlink_tmp;
	}
	rc = 0;
unlink_tmp:
	unlinkat(tmp_dir, tmp_name, 0);
out:
	if (fd >= 0)
		close(fd);
	if (tmp_dir >= 0)
		close(tmp_dir);
	if (msg_dir >= 0)
		close(msg_dir);
	return rc;
}

int dsn_queue(int queue_fd, const struct config *cfg,
	      const struct queue_envelope *env, enum dsn_action action,
	      const struct dsn_rcpt *rcpts, size_t rcpt_count, time_t now,
	      char *id_r, size_t id_size, const char **error_r)
{
	char id[QUEUE_MAX_ID + 1];
	struct queue_rcpt rcpt = {0};
	struct queue_envelope dsn = {0};
	struct buf *b;
	int env_dir, err;

	/* RFC 5321 section 4.5.5: never bounce a bounce. */
	if (env->sender[0] == '\0')
		return 0;
	if (rcpt_count == 0) {
		*error_r = "no recipients to report";
		return -1;
	}
	if (id_size <= QUEUE_MAX_ID) {
		*error_r = "id buffer too small";
		return -1;
	}
	queue_id_new(id, sizeof(id));
	b = buf_new(DSN_MAX_SIZE);
	if (dsn_build(queue_fd, cfg, env, action, rcpts, rcpt_count, now, id, b,
		      error_r) < 0 ||
	    dsn_store(queue_fd, id, b, error_r) < 0) {
		buf_free(&b);
		return -1;
	}
	snprintf(dsn.id, sizeof(dsn.id), "%s", id);
	dsn.created = (uint64_t)now;
	dsn.size = buf_len(b);
	dsn.skip = strlen(DSN_RETURN_PATH);
	dsn.sender = (char *)"";
	rcpt.addr = env->sender;
	rcpt.state = QUEUE_RCPT_PENDING;
	dsn.rcpts = &rcpt;
	dsn.rcpt_count = 1;
	buf_free(&b);
	if (queue_envelope_write(queue_fd, &dsn, &err, error_r) < 0)
		goto unlink_msg;
	env_dir = openat(queue_fd, QUEUE_SUBDIR_ENV,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (env_dir < 0 || fsync(env_dir) < 0) {
		/* The entry may or may not survive a crash; a duplicate
		 * report is harmless, so leave it, but say it failed. */
		*error_r = dsn_error("fsync env/", errno);
		if (env_dir >= 0)
			close(env_dir);
		return -1;
	}
	close(env_dir);
	if (action == DSN_FAILED)
		metrics_add(METRIC_MESSAGES_BOUNCED, rcpt_count);
	snprintf(id_r, id_size, "%s", id);
	return 1;
unlink_msg:
	env_dir = openat(queue_fd, QUEUE_SUBDIR_MSG,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (env_dir >= 0) {
		unlinkat(env_dir, id, 0);
		close(env_dir);
	}
	return -1;
}
