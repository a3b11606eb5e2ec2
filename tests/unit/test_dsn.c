/* Delivery status notifications: RFC 3464 fields inside an RFC 6522
 * multipart/report, queued durably (INV-D1) as a new entry from <>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery/dsn.h"
#include "lib/log.h"
#include "storage/queue.h"

struct fixture {
	char root[64];
	int root_fd;
	int qfd;
	struct config cfg;
	struct queue_envelope *orig;
};

/* The stored form of a received message: Return-Path first, LF line
 * ends. */
static const char orig_msg[] = "Return-Path: <alice@example.org>\n"
			       "From: Alice <alice@example.org>\n"
			       "To: bob@remote.example, carol@remote.example\n"
			       "Subject: lunch on friday\n"
			       "Message-ID: <orig-1@example.org>\n"
			       "\n"
			       "Body line one.\n"
			       "Subject: not a header\n";
#define ORIG_SKIP (sizeof("Return-Path: <alice@example.org>\n") - 1)
#define CREATED 1700000000

static int count(int qfd, const char *sub)
{
	int fd = openat(qfd, sub, O_RDONLY | O_DIRECTORY);
	struct dirent *de;
	DIR *d;
	int n = 0;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void make_orig(struct fixture *f, const char *sender)
{
	struct queue_rcpt rcpts[2] = {
	    {.addr = (char *)"bob@remote.example", .state = QUEUE_RCPT_PENDING},
	    {.addr = (char *)"carol@remote.example",
	     .state = QUEUE_RCPT_PENDING},
	};
	struct queue_envelope env = {.created = CREATED};
	const char *err = NULL;
	int fd, e;

	fd = openat(f->qfd, "msg/orig", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, orig_msg, sizeof(orig_msg) - 1),
			 (ssize_t)sizeof(orig_msg) - 1);
	close(fd);
	snprintf(env.id, sizeof(env.id), "orig");
	env.size = sizeof(orig_msg) - 1;
	env.skip = ORIG_SKIP;
	env.sender = (char *)sender;
	env.rcpts = rcpts;
	env.rcpt_count = 2;
	assert_int_equal(queue_envelope_write(f->qfd, &env, &e, &err), 0);
	assert_int_equal(queue_entry_load(f->qfd, "orig", &f->orig, &err), 1);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_dsn.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	f->qfd = queue_open(f->root_fd, true, &err);
	assert_true(f->qfd >= 0);
	f->cfg.hostname = (char *)"mx.example.net";
	f->cfg.queue_lifetime = 5 * 86400;
	make_orig(f, "alice@example.org");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	queue_envelope_free(&f->orig);
	close(f->qfd);
	close(f->root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* The whole stored file of entry id. */
static char *read_msg(int qfd, const char *id, size_t *len_r)
{
	char path[128];
	struct stat st;
	char *data;
	int fd;

	snprintf(path, sizeof(path), "msg/%s", id);
	fd = openat(qfd, path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size + 1);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	data[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return data;
}

/* The value of header field name in the header block [start, end), or
 * NULL; unfolds nothing (the fields tested are on one line). */
static char *field(const char *start, const char *end, const char *name,
		   char *out, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *p = start; p < end;) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		if (lf == NULL)
			lf = end;
		if ((size_t)(lf - p) > nlen + 1 &&
		    strncmp(p, name, nlen) == 0 && p[nlen] == ':' &&
		    p[nlen + 1] == ' ') {
			snprintf(out, size, "%.*s", (int)(lf - p - nlen - 2),
				 p + nlen + 2);
			return out;
		}
		p = lf + 1;
	}
	return NULL;
}

struct part {
	const char *hdr, *body, *end; /* header, body, end of body */
};

/* Splits the multipart body on --boundary lines; checks the preamble
 * and the closing delimiter. Returns the number of parts. */
static size_t split_parts(const char *body, const char *boundary,
			  struct part *parts, size_t max)
{
	char delim[128], close_delim[128];
	const char *p, *next;
	size_t n = 0;

	snprintf(delim, sizeof(delim), "\n--%s\n", boundary);
	snprintf(close_delim, sizeof(close_delim), "\n--%s--\n", boundary);
	p = strstr(body, delim);
	assert_non_null(p);
	for (;;) {
		const char *hdr = p + strlen(delim);
		const char *blank = strstr(hdr, "\n\n");

		assert_non_null(blank);
		assert_true(n < max);
		parts[n].hdr = hdr;
		parts[n].body = blank + 2;
		next = strstr(hdr, delim);
		if (next == NULL) {
			next = strstr(hdr, close_delim);
			assert_non_null(next);
			/* Nothing but the closing delimiter at the end. */
			assert_string_equal(next, close_delim);
			parts[n++].end = next;
			return n;
		}
		parts[n++].end = next;
		p = next;
	}
}

static void check_common(const char *msg, size_t len, char *boundary,
			 size_t bsize, struct part *parts)
{
	char v[512];
	const char *hend = strstr(msg, "\n\n");
	const char *b;

	assert_non_null(hend);
	/* Stored form: the Return-Path line first, LF only, no NUL. */
	assert_memory_equal(msg, "Return-Path: <>\n", 16);
	assert_null(memchr(msg, '\r', len));
	assert_int_equal(strlen(msg), len);
	assert_string_equal(
	    field(msg, hend, "From", v, sizeof(v)),
	    "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.net>");
	assert_string_equal(field(msg, hend, "To", v, sizeof(v)),
			    "<alice@example.org>");
	assert_string_equal(field(msg, hend, "Auto-Submitted", v, sizeof(v)),
			    "auto-replied");
	assert_string_equal(field(msg, hend, "MIME-Version", v, sizeof(v)),
			    "1.0");
	assert_non_null(field(msg, hend, "Date", v, sizeof(v)));
	assert_non_null(field(msg, hend, "Message-ID", v, sizeof(v)));
	assert_true(v[0] == '<' && strstr(v, "@mx.example.net>") != NULL);
	assert_string_equal(field(msg, hend, "Content-Type", v, sizeof(v)),
			    "multipart/report; report-type=delivery-status;");
	b = strstr(hend - 200 > msg ? hend - 200 : msg, "\tboundary=\"");
	assert_non_null(b);
	b += strlen("\tboundary=\"");
	snprintf(boundary, bsize, "%.*s", (int)(strchr(b, '"') - b), b);
	assert_true(strlen(boundary) > 10);
	assert_int_equal(split_parts(hend, boundary, parts, 3), 3);
	assert_string_equal(
	    field(parts[0].hdr, parts[0].body, "Content-Type", v, sizeof(v)),
	    "text/plain; charset=utf-8");
	assert_string_equal(
	    field(parts[1].hdr, parts[1].body, "Content-Type", v, sizeof(v)),
	    "message/delivery-status");
	assert_string_equal(
	    field(parts[2].hdr, parts[2].body, "Content-Type", v, sizeof(v)),
	    "text/rfc822-headers");
	/* The original header section, exactly, without the Return-Path
	 * the final delivery added and without the body. */
	assert_int_equal((size_t)(parts[2].end - parts[2].body),
			 strlen(orig_msg + ORIG_SKIP) -
			     strlen(strstr(orig_msg, "\n\n") + 1));
	assert_memory_equal(parts[2].body, orig_msg + ORIG_SKIP,
			    (size_t)(parts[2].end - parts[2].body));
}

static void test_inv_d1_dsn_failed(void **state)
{
	struct fixture *f = *state;
	const struct dsn_rcpt rcpts[] = {
	    {.addr = "bob@remote.example",
	     .status = "5.1.1",
	     .diagnostic = "550 5.1.1 <bob@remote.example>: no such user",
	     .remote_mta = "mx1.remote.example",
	     .reason = "the remote server said the mailbox does not exist"},
	    {.addr = "carol@remote.example",
	     .status = "bogus",
	     .reason = "the domain has no mail server"},
	};
	struct queue_envelope *dsn = NULL;
	struct part parts[3];
	char id[QUEUE_MAX_ID + 1], boundary[128], v[512];
	const char *err = NULL, *blk2;
	time_t now = CREATED + 3600;
	size_t len;
	char *msg;

	assert_int_equal(dsn_queue(f->qfd, &f->cfg, f->orig, DSN_FAILED, rcpts,
				   2, now, id, sizeof(id), &err),
			 1);
	assert_true(queue_id_valid(id));
	assert_int_equal(count(f->qfd, "tmp"), 0);
	assert_int_equal(queue_entry_load(f->qfd, id, &dsn, &err), 1);
	assert_string_equal(dsn->sender, "");
	assert_int_equal(dsn->rcpt_count, 1);
	assert_string_equal(dsn->rcpts[0].addr, "alice@example.org");
	assert_int_equal(dsn->rcpts[0].state, QUEUE_RCPT_PENDING);
	assert_int_equal(dsn->skip, 16);
	assert_int_equal(dsn->created, (uint64_t)now);
	msg = read_msg(f->qfd, id, &len);
	assert_int_equal(len, dsn->size);
	check_common(msg, len, boundary, sizeof(boundary), parts);
	assert_string_equal(
	    field(msg, strstr(msg, "\n\n"), "Subject", v, sizeof(v)),
	    "Undelivered Mail Returned to Sender");
	assert_string_equal(
	    field(msg, strstr(msg, "\n\n"), "Date", v, sizeof(v)),
	    "Tue, 14 Nov 2023 23:13:20 +0000");
	/* Human-readable part: who, why, the reply. */
	assert_non_null(strstr(parts[0].body, "<bob@remote.example>"));
	assert_non_null(strstr(parts[0].body, "mailbox does not exist"));
	assert_non_null(strstr(parts[0].body, "mx1.remote.example"));
	assert_non_null(strstr(parts[0].body, "550 5.1.1"));
	assert_non_null(strstr(parts[0].body, "has no mail server"));
	/* Per-message fields, then one block per recipient. */
	assert_string_equal(
	    field(parts[1].body, parts[1].end, "Reporting-MTA", v, sizeof(v)),
	    "dns; mx.example.net");
	assert_string_equal(
	    field(parts[1].body, parts[1].end, "Arrival-Date", v, sizeof(v)),
	    "Tue, 14 Nov 2023 22:13:20 +0000");
	blk2 = strstr(parts[1].body, "\n\nFinal-Recipient: rfc822; carol@");
	assert_non_null(blk2);
	assert_string_equal(
	    field(parts[1].body, blk2, "Final-Recipient", v, sizeof(v)),
	    "rfc822; bob@remote.example");
	assert_string_equal(field(parts[1].body, blk2, "Action", v, sizeof(v)),
			    "failed");
	assert_string_equal(field(parts[1].body, blk2, "Status", v, sizeof(v)),
			    "5.1.1");
	assert_string_equal(
	    field(parts[1].body, blk2, "Remote-MTA", v, sizeof(v)),
	    "dns; mx1.remote.example");
	assert_string_equal(
	    field(parts[1].body, blk2, "Diagnostic-Code", v, sizeof(v)),
	    "smtp; 550 5.1.1 <bob@remote.example>: no such user");
	assert_string_equal(
	    field(parts[1].body, blk2, "Last-Attempt-Date", v, sizeof(v)),
	    "Tue, 14 Nov 2023 23:13:20 +0000");
	assert_null(
	    field(parts[1].body, blk2, "Will-Retry-Until", v, sizeof(v)));
	/* A bad status becomes the generic one; unknown fields absent. */
	assert_string_equal(field(blk2, parts[1].end, "Status", v, sizeof(v)),
			    "5.0.0");
	assert_null(field(blk2, parts[1].end, "Remote-MTA", v, sizeof(v)));
	assert_null(field(blk2, parts[1].end, "Diagnostic-Code", v, sizeof(v)));
	free(msg);
	queue_envelope_free(&dsn);
}

static void test_dsn_delayed(void **state)
{
	struct fixture *f = *state;
	const struct dsn_rcpt rcpts[] = {
	    {.addr = "bob@remote.example",
	     .status = "4.4.1",
	     .reason = "no server for the domain answered"},
	};
	struct queue_envelope *dsn = NULL;
	struct part parts[3];
	char id[QUEUE_MAX_ID + 1], boundary[128], v[512];
	const char *err = NULL;
	size_t len;
	char *msg;

	assert_int_equal(dsn_queue(f->qfd, &f->cfg, f->orig, DSN_DELAYED, rcpts,
				   1, CREATED + 4 * 3600, id, sizeof(id), &err),
			 1);
	assert_int_equal(queue_entry_load(f->qfd, id, &dsn, &err), 1);
	msg = read_msg(f->qfd, id, &len);
	check_common(msg, len, boundary, sizeof(boundary), parts);
	assert_string_equal(
	    field(msg, strstr(msg, "\n\n"), "Subject", v, sizeof(v)),
	    "Delayed Mail (still being retried)");
	assert_string_equal(
	    field(parts[1].body, parts[1].end, "Action", v, sizeof(v)),
	    "delayed");
	assert_string_equal(
	    field(parts[1].body, parts[1].end, "Status", v, sizeof(v)),
	    "4.4.1");
	/* created + queue_lifetime (5 days). */
	assert_string_equal(field(parts[1].body, parts[1].end,
				  "Will-Retry-Until", v, sizeof(v)),
			    "Sun, 19 Nov 2023 22:13:20 +0000");
	assert_non_null(strstr(parts[0].body, "still trying"));
	free(msg);
	queue_envelope_free(&dsn);
}

/* RFC 5321 4.5.5: never bounce a bounce. */
static void test_dsn_not_for_null_sender(void **state)
{
	struct fixture *f = *state;
	const struct dsn_rcpt r = {.addr = "bob@remote.example",
				   .status = "5.1.1"};
	char id[QUEUE_MAX_ID + 1] = "";
	const char *err = NULL;

	queue_envelope_free(&f->orig);
	assert_int_equal(queue_delete(f->qfd, "orig", &err), 0);
	make_orig(f, "");
	assert_int_equal(dsn_queue(f->qfd, &f->cfg, f->orig, DSN_FAILED, &r, 1,
				   CREATED, id, sizeof(id), &err),
			 0);
	assert_int_equal(count(f->qfd, "env"), 1);
	assert_int_equal(count(f->qfd, "msg"), 1);
	assert_int_equal(count(f->qfd, "tmp"), 0);
}

/* INV-S2: a CR or LF in a remote reply or host name never starts a new
 * header line. */
static void test_inv_s2_dsn_no_header_injection(void **state)
{
	struct fixture *f = *state;
	const struct dsn_rcpt r = {.addr = "bob@remote.example",
				   .status = "5.7.1",
				   .diagnostic =
				       "550 no\r\nAction: delivered\nX-Evil: 1",
				   .remote_mta = "mx\r\nX-Evil: 2",
				   .reason = "line\nX-Evil: 3"};
	struct queue_envelope *dsn = NULL;
	char id[QUEUE_MAX_ID + 1], v[512];
	const char *err = NULL;
	size_t len;
	char *msg;

	f->cfg.hostname = (char *)"host\nX-Evil: 4";
	assert_int_equal(dsn_queue(f->qfd, &f->cfg, f->orig, DSN_FAILED, &r, 1,
				   CREATED, id, sizeof(id), &err),
			 1);
	assert_int_equal(queue_entry_load(f->qfd, id, &dsn, &err), 1);
	msg = read_msg(f->qfd, id, &len);
	assert_null(strstr(msg, "\nX-Evil"));
	assert_null(strstr(msg, "\nAction: delivered"));
	assert_null(memchr(msg, '\r', len));
	assert_non_null(field(msg, msg + len, "Diagnostic-Code", v, sizeof(v)));
	assert_string_equal(v, "smtp; 550 no??Action: delivered?X-Evil: 1");
	free(msg);
	queue_envelope_free(&dsn);
}

/* A huge header section is cut at a line end, and the report stays
 * valid. */
static void test_dsn_header_bounded(void **state)
{
	struct fixture *f = *state;
	const struct dsn_rcpt r = {.addr = "bob@remote.example",
				   .status = "5.1.1"};
	struct queue_rcpt rcpt = {.addr = (char *)"bob@remote.example",
				  .state = QUEUE_RCPT_PENDING};
	struct queue_envelope big = {.created = CREATED}, *dsn = NULL;
	char id[QUEUE_MAX_ID + 1], line[100];
	const char *err = NULL, *rfc;
	size_t len, total = 0;
	char *msg;
	int fd, e;

	fd = openat(f->qfd, "msg/big", O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 2000; i++) {
		int n = snprintf(line, sizeof(line), "X-Filler-%04d: %060d\n",
				 i, 0);

		assert_int_equal(write(fd, line, (size_t)n), n);
		total += (size_t)n;
	}
	assert_int_equal(write(fd, "\nbody\n", 6), 6);
	close(fd);
	snprintf(big.id, sizeof(big.id), "big");
	big.size = total + 6;
	big.sender = (char *)"alice@example.org";
	big.rcpts = &rcpt;
	big.rcpt_count = 1;
	assert_int_equal(queue_envelope_write(f->qfd, &big, &e, &err), 0);
	assert_int_equal(dsn_queue(f->qfd, &f->cfg, &big, DSN_FAILED, &r, 1,
				   CREATED, id, sizeof(id), &err),
			 1);
	assert_int_equal(queue_entry_load(f->qfd, id, &dsn, &err), 1);
	msg = read_msg(f->qfd, id, &len);
	rfc = strstr(msg, "text/rfc822-headers\n\n");
	assert_non_null(rfc);
	rfc += strlen("text/rfc822-headers\n\n");
	assert_true(strlen(rfc) < 64 * 1024 + 100);
	assert_true(strlen(rfc) > 60 * 1024);
	assert_memory_equal(rfc, "X-Filler-0000: ", 15);
	/* Whole lines only, then the closing delimiter. */
	assert_non_null(strstr(rfc, "0\n\n--=_postd_dsn_"));
	assert_null(strstr(rfc, "body"));
	free(msg);
	queue_envelope_free(&dsn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_inv_d1_dsn_failed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_delayed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_not_for_null_sender, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_s2_dsn_no_header_injection,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_header_bounded, setup,
					    teardown),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
