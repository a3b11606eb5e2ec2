/* The outbound queue: self-validating envelopes (INV-D2), recovery
 * (INV-D4), ids that are safe as file names (INV-S2). */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "storage/queue.h"

struct fixture {
	char root[64];
	int root_fd;
	int qfd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_queue.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	/* Without create, a missing queue is an error. */
	assert_int_equal(queue_open(f->root_fd, false, &err), -1);
	f->qfd = queue_open(f->root_fd, true, &err);
	assert_true(f->qfd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->qfd);
	close(f->root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

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

static bool exists(int qfd, const char *sub, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", sub, name);
	return fstatat(qfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void put_file(int qfd, const char *sub, const char *name,
		     const char *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sub, name);
	fd = openat(qfd, path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *get_file(int qfd, const char *sub, const char *name, size_t *len_r)
{
	static char buf[65536];
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sub, name);
	fd = openat(qfd, path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	close(fd);
	buf[n] = '\0';
	*len_r = (size_t)n;
	return buf;
}

static const char msg_text[] = "Subject: queued\n\nhello\n";

/* A valid entry: msg/ID and env/ID with two recipients. */
static void make_entry(int qfd, const char *id, const char *sender,
		       const char *rcpt2)
{
	struct queue_rcpt rcpts[2] = {
	    {.addr = (char *)"bob@remote.example", .state = QUEUE_RCPT_PENDING},
	    {.addr = (char *)rcpt2,
	     .state = QUEUE_RCPT_FAILED,
	     .attempts = 3,
	     .next_try = 1700000000,
	     .last_error = (char *)"451 4.7.1 greylisted, try later"},
	};
	struct queue_envelope env = {0};
	const char *err = NULL;
	int e = 0;

	put_file(qfd, "msg", id, msg_text, sizeof(msg_text) - 1);
	snprintf(env.id, sizeof(env.id), "%s", id);
	env.created = 1700000000;
	env.size = sizeof(msg_text) - 1;
	env.skip = 0;
	env.sender = (char *)sender;
	env.rcpts = rcpts;
	env.rcpt_count = 2;
	assert_int_equal(queue_envelope_write(qfd, &env, &e, &err), 0);
}

static void test_queue_id(void **state)
{
	static const char *const bad[] = {
	    "", "../x", "a.b", "a/b", "a b", "a-b", ".", "ab\n", "\xc3\xa9"};
	char id[QUEUE_MAX_ID + 1], id2[QUEUE_MAX_ID + 1];
	char long_id[QUEUE_MAX_ID + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(queue_id_valid(bad[i]));
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_false(queue_id_valid(long_id));
	long_id[QUEUE_MAX_ID] = '\0';
	assert_true(queue_id_valid(long_id));
	assert_true(queue_id_valid("0aZ9"));
	queue_id_new(id, sizeof(id));
	queue_id_new(id2, sizeof(id2));
	assert_true(queue_id_valid(id));
	assert_true(queue_id_valid(id2));
	assert_string_not_equal(id, id2);
}

/* INV-S2: every byte of an address survives, and none of CR, LF, NUL
 * or space reaches the file. */
static void test_inv_s2_envelope_roundtrip_escaped(void **state)
{
	struct fixture *f = *state;
	static const char odd[] = "\"a b+c=d<e>\"@x.example";
	static const char utf8[] = "j\xc3\xb6rg@\xe4\xbe\x8b.jp";
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	size_t len;
	char *text;

	make_entry(f->qfd, "abc123", "", odd);
	text = get_file(f->qfd, "env", "abc123", &len);
	assert_non_null(strstr(text, "postd-queue 2\nid abc123\n"));
	assert_non_null(strstr(text, "sender <>\n"));
	assert_non_null(strstr(
	    text, "rcpt <\"a+20b+2Bc+3Dd+3Ce+3E\"@x.example> failed 3 "
		  "1700000000 451+204.7.1+20greylisted,+20try+20later\n"));
	assert_true(len > 4 && strcmp(text + len - 4, "end\n") == 0);
	assert_int_equal(queue_entry_load(f->qfd, "abc123", &env, &err), 1);
	assert_string_equal(env->id, "abc123");
	assert_int_equal(env->created, 1700000000);
	assert_int_equal(env->size, sizeof(msg_text) - 1);
	assert_string_equal(env->sender, "");
	assert_int_equal(env->rcpt_count, 2);
	assert_string_equal(env->rcpts[0].addr, "bob@remote.example");
	assert_int_equal(env->rcpts[0].state, QUEUE_RCPT_PENDING);
	assert_null(env->rcpts[0].last_error);
	assert_string_equal(env->rcpts[1].addr, odd);
	assert_int_equal(env->rcpts[1].attempts, 3);
	assert_string_equal(env->rcpts[1].last_error,
			    "451 4.7.1 greylisted, try later");
	queue_envelope_free(&env);
	assert_null(env);

	make_entry(f->qfd, "utf8", "s@example.com", utf8);
	assert_int_equal(queue_entry_load(f->qfd, "utf8", &env, &err), 1);
	assert_string_equal(env->rcpts[1].addr, utf8);
	assert_string_equal(env->sender, "s@example.com");
	queue_envelope_free(&env);
	assert_int_equal(count(f->qfd, "tmp"), 0);
}

/* INV-S2: a CR or LF in an address is refused, nothing is written. */
static void test_inv_s2_control_bytes_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {"a\r\nrcpt <evil@x>", "a\nb", "a\tb",
					  "a\x7f"};
	struct queue_rcpt rcpt = {.state = QUEUE_RCPT_PENDING};
	struct queue_envelope env = {0};
	const char *err = NULL;
	int e = 0;

	put_file(f->qfd, "msg", "ctl", "x\n", 2);
	snprintf(env.id, sizeof(env.id), "ctl");
	env.size = 2;
	env.rcpts = &rcpt;
	env.rcpt_count = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env.sender = (char *)"ok@example.com";
		rcpt.addr = (char *)bad[i];
		assert_int_equal(queue_envelope_write(f->qfd, &env, &e, &err),
				 -1);
		assert_int_equal(e, EINVAL);
		env.sender = (char *)bad[i];
		rcpt.addr = (char *)"ok@example.com";
		assert_int_equal(queue_envelope_write(f->qfd, &env, &e, &err),
				 -1);
		assert_int_equal(count(f->qfd, "env"), 0);
		assert_int_equal(count(f->qfd, "tmp"), 0);
	}
	/* An invalid id never becomes a path. */
	snprintf(env.id, sizeof(env.id), "../x");
	env.sender = (char *)"";
	assert_int_equal(queue_envelope_write(f->qfd, &env, &e, &err), -1);
	assert_int_equal(e, EINVAL);
}

static void test_queue_write_never_replaces(void **state)
{
	struct fixture *f = *state;
	struct queue_rcpt rcpt = {.addr = (char *)"r@x",
				  .state = QUEUE_RCPT_PENDING};
	struct queue_envelope env = {0};
	const char *err = NULL;
	int e = 0;

	make_entry(f->qfd, "dup", "s@x", "t@x");
	snprintf(env.id, sizeof(env.id), "dup");
	env.size = sizeof(msg_text) - 1;
	env.sender = (char *)"other@x";
	env.rcpts = &rcpt;
	env.rcpt_count = 1;
	assert_int_equal(queue_envelope_write(f->qfd, &env, &e, &err), -1);
	assert_int_equal(e, EEXIST);
	assert_int_equal(count(f->qfd, "tmp"), 0);
}

/* INV-D2: each truncation of a valid envelope is quarantined, never
 * returned. */
static void test_inv_d2_truncated_envelope_quarantined(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	char full[4096];
	size_t len;

	make_entry(f->qfd, "trunc", "s@example.com", "t@remote.example");
	memcpy(full, get_file(f->qfd, "env", "trunc", &len), sizeof(full));
	assert_true(len < sizeof(full));
	for (size_t cut = 0; cut < len; cut++) {
		put_file(f->qfd, "env", "trunc", full, cut);
		if (!exists(f->qfd, "msg", "trunc"))
			put_file(f->qfd, "msg", "trunc", msg_text,
				 sizeof(msg_text) - 1);
		assert_int_equal(unlinkat(f->qfd, "quarantine/trunc.env", 0) ==
					 0 ||
				     cut == 0,
				 true);
		unlinkat(f->qfd, "quarantine/trunc.msg", 0);
		errno = 0;
		assert_int_equal(queue_entry_load(f->qfd, "trunc", &env, &err),
				 -1);
		assert_int_equal(errno, EBADMSG);
		assert_null(env);
		assert_false(exists(f->qfd, "env", "trunc"));
		assert_false(exists(f->qfd, "msg", "trunc"));
		assert_true(exists(f->qfd, "quarantine", "trunc.env"));
		assert_true(exists(f->qfd, "quarantine", "trunc.msg"));
	}
	/* The whole file still loads. */
	unlinkat(f->qfd, "quarantine/trunc.env", 0);
	unlinkat(f->qfd, "quarantine/trunc.msg", 0);
	put_file(f->qfd, "env", "trunc", full, len);
	put_file(f->qfd, "msg", "trunc", msg_text, sizeof(msg_text) - 1);
	assert_int_equal(queue_entry_load(f->qfd, "trunc", &env, &err), 1);
	queue_envelope_free(&env);
}

/* INV-D2: anything garbled, unknown or inconsistent is quarantined. */
static void test_inv_d2_garbled_envelopes_quarantined(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *from, *to;
		size_t to_len; /* 0: strlen(to) */
	} cases[] = {
	    {"postd-queue 2\n", "postd-queue 3\n", 0},
	    {"postd-queue 2\n", "postd-queue 02\n", 0},
	    {"postd-queue 2\n", "postd-queue 2\r\n", 0},
	    {"postd-queue 2\n", "postd-queue 0\n", 0},
	    /* A version 1 file has no notified line, a version 2 one must. */
	    {"postd-queue 2\n", "postd-queue 1\n", 0},
	    {"notified -\n", "", 0},
	    {"notified -\n", "notified\n", 0},
	    {"notified -\n", "notified yes\n", 0},
	    {"notified -\n", "notified delay \n", 0},
	    {"id g\n", "id h\n", 0},
	    {"created 1700000000\n", "created -1\n", 0},
	    {"created 1700000000\n", "created 17000000000000000000000\n", 0},
	    {"size 23\n", "size 24\n", 0},
	    {"size 23\n", "size 023\n", 0},
	    {"skip 0\n", "skip 24\n", 0},
	    {"skip 0\n", "", 0},
	    {"sender <s@example.com>\n", "sender s@example.com\n", 0},
	    {"sender <s@example.com>\n", "sender <s@exa mple.com>\n", 0},
	    {"sender <s@example.com>\n", "sender <s+4@example.com>\n", 0},
	    {"sender <s@example.com>\n", "sender <s+2b@example.com>\n", 0},
	    {"sender <s@example.com>\n", "sender <s+41@example.com>\n", 0},
	    {"sender <s@example.com>\n", "sender <s+0A@example.com>\n", 0},
	    {"sender <s@example.com>\n", "sender <s@example.com>\nfoo 1\n", 0},
	    {"sender <s@example.com>\n", "", 0},
	    {"pending 0 0 -", "waiting 0 0 -", 0},
	    {"pending 0 0 -", "pending 0 0", 0},
	    {"pending 0 0 -", "pending 0 0 - x", 0},
	    {"pending 0 0 -", "pending 4294967296 0 -", 0},
	    {"rcpt <bob@", "rcpt <>bob@", 0},
	    {"end\n", "end\nend\n", 0},
	    {"end\n", "end", 0},
	    {"end\n", "END\n", 0},
	    {"id g\n", "id g\0\n", 6},
	};
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	char full[4096], bad[4096];
	size_t len;

	make_entry(f->qfd, "g", "s@example.com", "t@remote.example");
	memcpy(full, get_file(f->qfd, "env", "g", &len), sizeof(full));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *at = strstr(full, cases[i].from);
		size_t pre, from_len = strlen(cases[i].from);
		size_t to_len = cases[i].to_len, n;

		if (to_len == 0)
			to_len = strlen(cases[i].to);
		assert_non_null(at);
		pre = (size_t)(at - full);
		memcpy(bad, full, pre);
		memcpy(bad + pre, cases[i].to, to_len);
		memcpy(bad + pre + to_len, at + from_len, len - pre - from_len);
		n = len - from_len + to_len;
		put_file(f->qfd, "env", "g", bad, n);
		if (!exists(f->qfd, "msg", "g"))
			put_file(f->qfd, "msg", "g", msg_text,
				 sizeof(msg_text) - 1);
		unlinkat(f->qfd, "quarantine/g.env", 0);
		unlinkat(f->qfd, "quarantine/g.msg", 0);
		errno = 0;
		if (queue_entry_load(f->qfd, "g", &env, &err) != -1)
			fail_msg("case %zu (%s) was accepted", i, cases[i].to);
		assert_int_equal(errno, EBADMSG);
		assert_true(exists(f->qfd, "quarantine", "g.env"));
		assert_false(exists(f->qfd, "env", "g"));
	}
	/* No recipients at all. */
	put_file(f->qfd, "env", "g",
		 "postd-queue 1\nid g\ncreated 1\nsize 23\nskip 0\n"
		 "sender <>\nend\n",
		 strlen("postd-queue 1\nid g\ncreated 1\nsize 23\nskip 0\n"
			"sender <>\nend\n"));
	put_file(f->qfd, "msg", "g", msg_text, sizeof(msg_text) - 1);
	assert_int_equal(queue_entry_load(f->qfd, "g", &env, &err), -1);
	assert_non_null(strstr(err, "no recipients"));
	unlinkat(f->qfd, "quarantine/g.env", 0);
	unlinkat(f->qfd, "quarantine/g.msg", 0);
	/* The message file missing, or of another size. */
	put_file(f->qfd, "env", "g", full, len);
	unlinkat(f->qfd, "msg/g", 0);
	assert_int_equal(queue_entry_load(f->qfd, "g", &env, &err), -1);
	assert_int_equal(errno, EBADMSG);
	assert_non_null(strstr(err, "missing"));
	put_file(f->qfd, "env", "g", full, len);
	put_file(f->qfd, "msg", "g", "short\n", 6);
	assert_int_equal(queue_entry_load(f->qfd, "g", &env, &err), -1);
	assert_int_equal(errno, EBADMSG);
	/* A symlink is not followed. */
	unlinkat(f->qfd, "msg/g", 0);
	put_file(f->qfd, "msg", "g", msg_text, sizeof(msg_text) - 1);
	unlinkat(f->qfd, "quarantine/g.env", 0);
	assert_int_equal(symlinkat("/etc/passwd", f->qfd, "env/g"), 0);
	assert_int_equal(queue_entry_load(f->qfd, "g", &env, &err), -1);
	assert_int_equal(errno, EBADMSG);
	/* Unknown ids: nothing there, and an invalid id is refused. */
	assert_int_equal(queue_entry_load(f->qfd, "nosuch", &env, &err), 0);
	assert_int_equal(queue_entry_load(f->qfd, "../g", &env, &err), -1);
	assert_int_equal(errno, EINVAL);
}

struct walk {
	int calls;
	char ids[8][QUEUE_MAX_ID + 1];
};

static int walk_fn(void *ctx, const struct queue_envelope *env)
{
	struct walk *w = ctx;

	assert_true(w->calls < 8);
	snprintf(w->ids[w->calls++], sizeof(w->ids[0]), "%s", env->id);
	return 0;
}

static void test_inv_d2_list_skips_and_quarantines(void **state)
{
	struct fixture *f = *state;
	struct walk w = {0};
	const char *err = NULL;
	unsigned q = 0;

	make_entry(f->qfd, "one", "a@x", "b@y");
	make_entry(f->qfd, "two", "a@x", "b@y");
	make_entry(f->qfd, "three", "a@x", "b@y");
	put_file(f->qfd, "env", "bad", "postd-queue 1\nid bad\n", 21);
	put_file(f->qfd, "msg", "bad", "x", 1);
	assert_int_equal(queue_list(f->qfd, walk_fn, &w, &q, &err), 0);
	assert_int_equal(w.calls, 3);
	assert_int_equal(q, 1);
	assert_true(exists(f->qfd, "quarantine", "bad.env"));
	assert_true(exists(f->qfd, "quarantine", "bad.msg"));
	assert_int_equal(count(f->qfd, "env"), 3);
}

static void test_queue_delete(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;

	make_entry(f->qfd, "del", "a@x", "b@y");
	assert_int_equal(queue_delete(f->qfd, "del", &err), 0);
	assert_false(exists(f->qfd, "env", "del"));
	assert_false(exists(f->qfd, "msg", "del"));
	assert_int_equal(queue_delete(f->qfd, "del", &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_delete(f->qfd, "../env", &err), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_delete(f->qfd, "", &err), -1);
	assert_int_equal(errno, EINVAL);
}

static void age_file(int qfd, const char *path, time_t when)
{
	struct timespec ts[2] = {{when, 0}, {when, 0}};

	assert_int_equal(utimensat(qfd, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* INV-D4: start-up removes what a crash left half-done and keeps every
 * complete entry. */
static void test_inv_d4_recover(void **state)
{
	struct fixture *f = *state;
	struct queue_recover_stats r;
	time_t now = time(NULL);
	const char *err = NULL;

	make_entry(f->qfd, "good", "a@x", "b@y");
	age_file(f->qfd, "msg/good", now - 3600);
	put_file(f->qfd, "tmp", "123.M1P2Q3Rabc.host", "partial", 7);
	put_file(f->qfd, "tmp", "zz.env", "postd-queue 1\n", 14);
	/* A crash after the envelope rename, before msg/ was durable. */
	make_entry(f->qfd, "nomsg", "a@x", "b@y");
	unlinkat(f->qfd, "msg/nomsg", 0);
	/* A crash between the message link and the envelope: old, and
	 * one being written right now. */
	put_file(f->qfd, "msg", "orphan", "x", 1);
	age_file(f->qfd, "msg/orphan", now - QUEUE_ORPHAN_AGE - 5);
	put_file(f->qfd, "msg", "young", "x", 1);
	assert_int_equal(queue_recover(f->qfd, now, &r, &err), 0);
	assert_int_equal(r.tmp_removed, 2);
	assert_int_equal(r.quarantined, 2);
	assert_int_equal(count(f->qfd, "tmp"), 0);
	assert_true(exists(f->qfd, "env", "good"));
	assert_true(exists(f->qfd, "msg", "good"));
	assert_true(exists(f->qfd, "quarantine", "nomsg.env"));
	assert_true(exists(f->qfd, "quarantine", "orphan.msg"));
	assert_true(exists(f->qfd, "msg", "young"));
	/* Quarantine never replaces: a second bad "orphan" is kept next to
	 * the first. */
	put_file(f->qfd, "msg", "orphan", "y", 1);
	age_file(f->qfd, "msg/orphan", now - QUEUE_ORPHAN_AGE - 5);
	assert_int_equal(queue_recover(f->qfd, now, &r, &err), 0);
	assert_int_equal(r.quarantined, 1);
	assert_false(exists(f->qfd, "msg", "orphan"));
	assert_true(exists(f->qfd, "quarantine", "orphan.msg"));
	assert_true(exists(f->qfd, "quarantine", "orphan.1.msg"));
}

/* OFD locks: two descriptors of one process exclude each other. */
static void test_queue_lock_conflict(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	int a, b;

	make_entry(f->qfd, "lk", "a@x", "b@y");
	a = queue_entry_lock(f->qfd, "lk", false, &err);
	assert_true(a >= 0);
	errno = 0;
	assert_int_equal(queue_entry_lock(f->qfd, "lk", false, &err), -1);
	assert_int_equal(errno, EAGAIN);
	/* hold would wait; a non-waiting second lock is still refused. */
	queue_entry_unlock(&a);
	assert_int_equal(a, -1);
	b = queue_entry_lock(f->qfd, "lk", false, &err);
	assert_true(b >= 0);
	queue_entry_unlock(&b);
	queue_entry_unlock(&b); /* harmless */
	assert_int_equal(queue_entry_lock(f->qfd, "nosuch", false, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_entry_lock(f->qfd, "../lk", false, &err), -1);
	assert_int_equal(errno, EINVAL);
}

/* INV-D1: an update replaces env/ID, leaves nothing in tmp/, and never
 * brings back an entry that was deleted or held meanwhile. */
static void test_inv_d1_envelope_update(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope *env = NULL, *again = NULL;
	const char *err = NULL;
	size_t len;
	int lk;

	make_entry(f->qfd, "up", "a@x", "b@y");
	lk = queue_entry_lock(f->qfd, "up", true, &err);
	assert_true(lk >= 0);
	assert_int_equal(queue_entry_load(f->qfd, "up", &env, &err), 1);
	assert_false(env->delay_notified);
	env->delay_notified = true;
	env->rcpts[0].state = QUEUE_RCPT_SENT;
	env->rcpts[0].attempts = 1;
	free(env->rcpts[1].last_error);
	env->rcpts[1].last_error = strdup("550 5.1.1 no such user");
	assert_int_equal(queue_envelope_update(f->qfd, env, &err), 0);
	assert_int_equal(count(f->qfd, "tmp"), 0);
	assert_non_null(
	    strstr(get_file(f->qfd, "env", "up", &len), "notified delay\n"));
	assert_int_equal(queue_entry_load(f->qfd, "up", &again, &err), 1);
	assert_true(again->delay_notified);
	assert_int_equal(again->rcpts[0].state, QUEUE_RCPT_SENT);
	assert_int_equal(again->rcpts[0].attempts, 1);
	assert_string_equal(again->rcpts[1].last_error,
			    "550 5.1.1 no such user");
	queue_envelope_free(&again);
	queue_entry_unlock(&lk);

	/* Deleted meanwhile: ENOENT, nothing written. */
	assert_int_equal(queue_delete(f->qfd, "up", &err), 0);
	errno = 0;
	assert_int_equal(queue_envelope_update(f->qfd, env, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(exists(f->qfd, "env", "up"));
	assert_int_equal(count(f->qfd, "tmp"), 0);
	queue_envelope_free(&env);

	/* Held meanwhile: ENOENT too, and hold/ID is left as it was. */
	make_entry(f->qfd, "up2", "a@x", "b@y");
	assert_int_equal(queue_entry_load(f->qfd, "up2", &env, &err), 1);
	assert_int_equal(queue_hold(f->qfd, "up2", &err), 0);
	errno = 0;
	assert_int_equal(queue_envelope_update(f->qfd, env, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(exists(f->qfd, "env", "up2"));
	assert_true(exists(f->qfd, "hold", "up2"));
	queue_envelope_free(&env);
}

static void test_queue_hold_release(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope *env = NULL;
	struct walk w = {0}, h = {0};
	const char *err = NULL;
	unsigned q = 9;
	int lk;

	make_entry(f->qfd, "h1", "a@x", "b@y");
	make_entry(f->qfd, "h2", "a@x", "b@y");
	assert_int_equal(queue_hold(f->qfd, "h1", &err), 0);
	assert_false(exists(f->qfd, "env", "h1"));
	assert_true(exists(f->qfd, "hold", "h1"));
	assert_true(exists(f->qfd, "msg", "h1"));
	/* The runner's view no longer has it; the held list does. */
	assert_int_equal(queue_entry_load(f->qfd, "h1", &env, &err), 0);
	assert_int_equal(queue_list(f->qfd, walk_fn, &w, &q, &err), 0);
	assert_int_equal(w.calls, 1);
	assert_string_equal(w.ids[0], "h2");
	assert_int_equal(queue_list_held(f->qfd, walk_fn, &h, &q, &err), 0);
	assert_int_equal(h.calls, 1);
	assert_string_equal(h.ids[0], "h1");
	assert_int_equal(q, 0);
	/* Twice, or the wrong way round: ENOENT. */
	errno = 0;
	assert_int_equal(queue_hold(f->qfd, "h1", &err), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(queue_release(f->qfd, "h2", &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_hold(f->qfd, "nosuch", &err), -1);
	assert_int_equal(errno, ENOENT);
	/* A retry of a held entry finds nothing to change. */
	assert_int_equal(queue_retry_now(f->qfd, "h1", &err), -1);
	assert_int_equal(errno, ENOENT);
	/* Release while someone else holds the lock: not before it ends. */
	lk = queue_entry_lock(f->qfd, "h1", false, &err);
	assert_true(lk >= 0);
	queue_entry_unlock(&lk);
	assert_int_equal(queue_release(f->qfd, "h1", &err), 0);
	assert_true(exists(f->qfd, "env", "h1"));
	assert_false(exists(f->qfd, "hold", "h1"));
	assert_int_equal(queue_entry_load(f->qfd, "h1", &env, &err), 1);
	assert_int_equal(env->rcpt_count, 2);
	queue_envelope_free(&env);
	/* A held entry can be deleted. */
	assert_int_equal(queue_hold(f->qfd, "h2", &err), 0);
	assert_int_equal(queue_delete(f->qfd, "h2", &err), 0);
	assert_false(exists(f->qfd, "hold", "h2"));
	assert_false(exists(f->qfd, "msg", "h2"));
	assert_int_equal(count(f->qfd, "tmp"), 0);
}

/* A hold while the runner's attempt is in flight waits for it. */
static void test_queue_hold_waits_for_lock(void **state)
{
	struct fixture *f = *state;
	const char *err = NULL;
	int lk, status;
	pid_t pid;

	make_entry(f->qfd, "w", "a@x", "b@y");
	lk = queue_entry_lock(f->qfd, "w", false, &err);
	assert_true(lk >= 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The inherited descriptor shares the parent's lock. */
		close(lk);
		_exit(queue_hold(f->qfd, "w", &err) == 0 ? 0 : 1);
	}
	usleep(200 * 1000);
	/* Still waiting: nothing moved. */
	assert_true(exists(f->qfd, "env", "w"));
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	queue_entry_unlock(&lk);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(exists(f->qfd, "hold", "w"));
}

static void test_queue_retry_now(void **state)
{
	struct fixture *f = *state;
	struct queue_envelope *env = NULL;
	struct queue_rcpt rcpts[2] = {
	    {.addr = (char *)"p@x",
	     .state = QUEUE_RCPT_PENDING,
	     .attempts = 2,
	     .next_try = 1900000000},
	    {.addr = (char *)"f@x",
	     .state = QUEUE_RCPT_FAILED,
	     .attempts = 1,
	     .next_try = 1900000000},
	};
	struct queue_envelope w = {.created = 5, .size = 2};
	const char *err = NULL;
	int e;

	put_file(f->qfd, "msg", "rn", "x\n", 2);
	snprintf(w.id, sizeof(w.id), "rn");
	w.sender = (char *)"s@x";
	w.rcpts = rcpts;
	w.rcpt_count = 2;
	assert_int_equal(queue_envelope_write(f->qfd, &w, &e, &err), 0);
	assert_int_equal(queue_retry_now(f->qfd, "rn", &err), 0);
	assert_int_equal(queue_entry_load(f->qfd, "rn", &env, &err), 1);
	assert_int_equal(env->rcpts[0].next_try, 0);
	assert_int_equal(env->rcpts[0].attempts, 2);
	/* Only pending recipients are touched. */
	assert_int_equal(env->rcpts[1].next_try, 1900000000);
	queue_envelope_free(&env);
	assert_int_equal(queue_retry_now(f->qfd, "gone", &err), -1);
	assert_int_equal(errno, ENOENT);
}

/* Files written by the first format still load. */
static void test_queue_v1_envelope_loads(void **state)
{
	struct fixture *f = *state;
	static const char v1[] =
	    "postd-queue 1\nid old\ncreated 1700000000\nsize 23\nskip 0\n"
	    "sender <me@localhost>\nrcpt <far@remote.example> pending 0 0 -\n"
	    "end\n";
	static const char v1_notified[] =
	    "postd-queue 1\nid old\ncreated 1700000000\nsize 23\nskip 0\n"
	    "sender <me@localhost>\nnotified delay\n"
	    "rcpt <far@remote.example> pending 0 0 -\nend\n";
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	size_t len;
	int lk;

	put_file(f->qfd, "msg", "old", msg_text, sizeof(msg_text) - 1);
	put_file(f->qfd, "env", "old", v1, sizeof(v1) - 1);
	assert_int_equal(queue_entry_load(f->qfd, "old", &env, &err), 1);
	assert_false(env->delay_notified);
	assert_string_equal(env->sender, "me@localhost");
	assert_string_equal(env->rcpts[0].addr, "far@remote.example");
	/* An update writes the current version. */
	lk = queue_entry_lock(f->qfd, "old", true, &err);
	assert_true(lk >= 0);
	assert_int_equal(queue_envelope_update(f->qfd, env, &err), 0);
	queue_entry_unlock(&lk);
	queue_envelope_free(&env);
	assert_non_null(
	    strstr(get_file(f->qfd, "env", "old", &len), "postd-queue 2\n"));
	assert_int_equal(queue_entry_load(f->qfd, "old", &env, &err), 1);
	queue_envelope_free(&env);
	/* The notified line is not part of version 1. */
	put_file(f->qfd, "env", "old", v1_notified, sizeof(v1_notified) - 1);
	assert_int_equal(queue_entry_load(f->qfd, "old", &env, &err), -1);
	assert_int_equal(errno, EBADMSG);
}

/* INV-D4: a held entry survives recovery; a held envelope without its
 * message is quarantined like any other. */
static void test_inv_d4_recover_keeps_held(void **state)
{
	struct fixture *f = *state;
	struct queue_recover_stats r;
	time_t now = time(NULL);
	const char *err = NULL;

	make_entry(f->qfd, "held", "a@x", "b@y");
	assert_int_equal(queue_hold(f->qfd, "held", &err), 0);
	age_file(f->qfd, "msg/held", now - 3600);
	make_entry(f->qfd, "heldbad", "a@x", "b@y");
	assert_int_equal(queue_hold(f->qfd, "heldbad", &err), 0);
	unlinkat(f->qfd, "msg/heldbad", 0);
	assert_int_equal(queue_recover(f->qfd, now, &r, &err), 0);
	assert_int_equal(r.quarantined, 1);
	assert_true(exists(f->qfd, "hold", "held"));
	assert_true(exists(f->qfd, "msg", "held"));
	assert_false(exists(f->qfd, "hold", "heldbad"));
	assert_true(exists(f->qfd, "quarantine", "heldbad.env"));
}

/* A queue made before hold/ existed opens without create, and holding
 * needs the folder the next start creates. */
static void test_queue_open_without_hold(void **state)
{
	struct fixture *f = *state;
	struct walk w = {0};
	const char *err = NULL;
	int q;

	assert_int_equal(unlinkat(f->qfd, "hold", AT_REMOVEDIR), 0);
	q = queue_open(f->root_fd, false, &err);
	assert_true(q >= 0);
	assert_int_equal(queue_list_held(q, walk_fn, &w, NULL, &err), 0);
	assert_int_equal(w.calls, 0);
	close(q);
	/* The first hold makes the folder. */
	make_entry(f->qfd, "nh", "a@x", "b@y");
	assert_int_equal(queue_hold(f->qfd, "nh", &err), 0);
	assert_true(exists(f->qfd, "hold", "nh"));
	assert_int_equal(queue_release(f->qfd, "nh", &err), 0);
	assert_int_equal(unlinkat(f->qfd, "hold", AT_REMOVEDIR), 0);
	errno = 0;
	assert_int_equal(queue_release(f->qfd, "nh", &err), -1);
	assert_int_equal(errno, ENOENT);
	q = queue_open(f->root_fd, true, &err);
	assert_true(q >= 0);
	close(q);
	assert_true(exists(f->qfd, ".", "hold"));
}

/* The runner's variants on kept folder descriptors: the same lock (OFD,
 * excluding queue_entry_lock too), the same load and quarantine, and a
 * removal that unlinks env/ID before msg/ID (INV-D4). */
static void test_inv_d4_dirs_lock_load_remove(void **state)
{
	struct fixture *f = *state;
	struct queue_dirs dirs;
	struct queue_envelope *env = NULL;
	const char *err = NULL;
	int a, b;

	assert_int_equal(queue_dirs_open(f->qfd, &dirs, &err), 0);
	make_entry(f->qfd, "fast", "a@x", "c@y");
	a = queue_entry_lock_at(&dirs, "fast", false, &err);
	assert_true(a >= 0);
	errno = 0;
	assert_int_equal(queue_entry_lock(f->qfd, "fast", false, &err), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(queue_entry_lock_at(&dirs, "fast", false, &err), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(queue_entry_load_at(&dirs, "fast", &env, &err), 1);
	assert_string_equal(env->id, "fast");
	assert_int_equal(env->rcpt_count, 2);
	assert_string_equal(env->rcpts[0].addr, "bob@remote.example");
	assert_int_equal(env->size, sizeof(msg_text) - 1);
	queue_envelope_free(&env);
	assert_int_equal(queue_entry_remove(&dirs, "fast", &err), 0);
	assert_false(exists(f->qfd, "env", "fast"));
	assert_false(exists(f->qfd, "msg", "fast"));
	assert_int_equal(queue_dirs_sync(&dirs, &err), 0);
	errno = 0;
	assert_int_equal(queue_entry_remove(&dirs, "fast", &err), -1);
	assert_int_equal(errno, ENOENT);
	queue_entry_unlock(&a);
	/* Gone: neither lock nor load finds it. */
	assert_int_equal(queue_entry_lock_at(&dirs, "fast", false, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_entry_load_at(&dirs, "fast", &env, &err), 0);
	assert_null(env);
	/* Bad ids never become paths. */
	assert_int_equal(queue_entry_lock_at(&dirs, "../x", false, &err), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_entry_load_at(&dirs, "", &env, &err), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_entry_remove(&dirs, "a/b", &err), -1);
	assert_int_equal(errno, EINVAL);
	/* A message missing under a kept descriptor is quarantined too. */
	make_entry(f->qfd, "nomsg", "a@x", "c@y");
	b = openat(f->qfd, "msg", O_RDONLY | O_DIRECTORY);
	assert_true(b >= 0);
	assert_int_equal(unlinkat(b, "nomsg", 0), 0);
	close(b);
	errno = 0;
	assert_int_equal(queue_entry_load_at(&dirs, "nomsg", &env, &err), -1);
	assert_int_equal(errno, EBADMSG);
	assert_false(exists(f->qfd, "env", "nomsg"));
	assert_true(exists(f->qfd, "quarantine", "nomsg.env"));
	queue_dirs_close(&dirs);
	assert_int_equal(dirs.env_fd, -1);
	queue_dirs_close(&dirs); /* harmless */
}

/* The header section after skip, whatever the message looks like. */
static void test_queue_read_header(void **state)
{
	static const struct {
		const char *msg;
		size_t skip, size; /* size: the caller's buffer */
		const char *header;
		bool cut;
	} cases[] = {
	    {"Return-Path: <>\nSubject: a\n\nbody\n", 16, 64, "Subject: a\n",
	     false},
	    {"Subject: a\nTo: b\n\n", 0, 64, "Subject: a\nTo: b\n", false},
	    {"\nbody only\n", 0, 64, "", false},
	    {"Subject: no body\n", 0, 64, "Subject: no body\n", false},
	    {"", 0, 64, "", false},
	    /* longer than the buffer: cut after the last whole line */
	    {"A: 1\nB: 2\nC: 3333333333\n\nx\n", 0, 14, "A: 1\nB: 2\n", true},
	};
	struct fixture *f = *state;
	struct queue_envelope env = {0};
	char buf[64], id[8];
	const char *err = NULL;
	size_t len, end;
	bool cut;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(id, sizeof(id), "H%zu", i);
		put_file(f->qfd, "msg", id, cases[i].msg, strlen(cases[i].msg));
		snprintf(env.id, sizeof(env.id), "%s", id);
		env.skip = cases[i].skip;
		assert_int_equal(queue_read_header(f->qfd, &env, buf,
						   cases[i].size, &len, &end,
						   &cut, &err),
				 0);
		assert_true(end <= len && len <= cases[i].size);
		assert_int_equal(end, strlen(cases[i].header));
		assert_memory_equal(buf, cases[i].header, end);
		assert_int_equal(cut, cases[i].cut);
	}
	snprintf(env.id, sizeof(env.id), "missing");
	assert_int_equal(queue_read_header(f->qfd, &env, buf, sizeof(buf), &len,
					   &end, &cut, &err),
			 -1);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_queue_id),
	    cmocka_unit_test_setup_teardown(
		test_inv_s2_envelope_roundtrip_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_s2_control_bytes_refused,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_write_never_replaces,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d2_truncated_envelope_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d2_garbled_envelopes_quarantined, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_d2_list_skips_and_quarantines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d4_recover, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_lock_conflict, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_envelope_update, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_hold_release, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_hold_waits_for_lock,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_retry_now, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_queue_v1_envelope_loads, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d4_recover_keeps_held,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_read_header, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d4_dirs_lock_load_remove,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_queue_open_without_hold, setup,
					    teardown),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
