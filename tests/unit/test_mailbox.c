/* The POP3 snapshot: index, UIDs (INV-I1), UIDLs and lock (INV-P2),
 * expunge (INV-P1), and the checks that abort when a caller breaks the
 * expunge rule. */
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
#include <unistd.h>

#include "storage/mailbox.h"
#include "storage/maildir.h"
#include "storage/msg_wire.h"
#include "death_test.h"

struct fixture {
	char root[64];
	int root_fd;
	int md_fd;
};

static const struct mailbox_owner owner1 = {"S1", "192.0.2.1",
					    "bob@example.com"};
static const struct mailbox_owner owner2 = {"S2", "192.0.2.2",
					    "bob@example.com"};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err = NULL;

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_mailbox.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->root_fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->root_fd >= 0);
	f->md_fd = maildir_open(f->root_fd, "bob@example.com", true, &err);
	assert_true(f->md_fd >= 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->md_fd);
	close(f->root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct mailbox *open_ok(int md_fd)
{
	struct mailbox *box = NULL;
	char err[512] = "";

	assert_int_equal(mailbox_open(md_fd, &owner1, &box, err, sizeof(err)),
			 MAILBOX_OK);
	assert_non_null(box);
	return box;
}

/* Writes a file as another program would (no S=/W= unless named so). */
static void put_file(int md_fd, const char *path, const char *data,
		     time_t mtime)
{
	int fd = openat(md_fd, path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	struct timespec ts[2];
	size_t len = strlen(data);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	if (mtime != 0) {
		ts[0].tv_sec = ts[1].tv_sec = mtime;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		assert_int_equal(futimens(fd, ts), 0);
	}
	close(fd);
}

static void deliver(int md_fd, const char *data, char *name, size_t size)
{
	const char *err = NULL;
	struct maildir_delivery *d = maildir_delivery_begin(md_fd, &err);
	int err_no = 0;

	assert_non_null(d);
	assert_int_equal(maildir_delivery_write(d, data, strlen(data), &err),
			 0);
	assert_int_equal(maildir_delivery_commit(&d, name, size, &err_no, &err),
			 0);
}

/* The bytes RETR would send for message i (no dot-stuffing). */
static size_t wire_bytes(struct mailbox *box, size_t i, char *out,
			 size_t out_size)
{
	char err[256], in[4096];
	struct msg_wire w;
	size_t n = 0;
	ssize_t r;
	int fd = mailbox_msg_open(box, i, err, sizeof(err));

	assert_true(fd >= 0);
	msg_wire_init(&w, false, -1);
	while ((r = read(fd, in, sizeof(in))) > 0) {
		assert_true(n + 2 * (size_t)r + 2 <= out_size);
		n += msg_wire_convert(&w, in, (size_t)r, out + n);
	}
	n += msg_wire_finish(&w, out + n);
	close(fd);
	return n;
}

static void test_mailbox_empty(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box = open_ok(f->md_fd);

	assert_int_equal(mailbox_count(box), 0);
	assert_true(mailbox_uidvalidity(box) != 0);
	assert_null(mailbox_msg(box, 0));
	mailbox_close(&box);
	assert_null(box);
	assert_int_equal(faccessat(f->md_fd, "postd-index", F_OK, 0), 0);
}

/* Delivery then snapshot: sizes are exactly the bytes msg_wire sends. */
static void test_mailbox_delivery_size_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char *const msgs[] = {
	    "Subject: a\r\n\r\nhello\r\n",
	    "Subject: b\n\nno final newline",
	    "Subject: c\r\n\r\n.dot\r\nbare\rcr\n\r\n",
	};
	char names[3][256];
	struct mailbox *box;

	for (size_t i = 0; i < 3; i++)
		deliver(f->md_fd, msgs[i], names[i], sizeof(names[i]));
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 3);
	for (size_t i = 0; i < 3; i++) {
		const struct mailbox_msg *m = mailbox_msg(box, i);
		char out[512];
		size_t n = wire_bytes(box, i, out, sizeof(out));

		assert_int_equal(m->uid, i + 1);
		assert_int_equal(m->size, n);
		assert_int_equal(m->retrieved, 0);
		assert_true(m->delivered > 0);
		assert_int_equal(strncmp(m->name, "new/", 4), 0);
		/* The UIDL is the unique part of the name. */
		assert_int_equal(strncmp(names[i], m->uidl, strlen(m->uidl)),
				 0);
		assert_int_equal(names[i][strlen(m->uidl)], ',');
		assert_true(strlen(m->uidl) <= 70);
	}
	/* Output of message 0 is its input (it was CRLF already). */
	{
		char out[512];
		size_t n = wire_bytes(box, 0, out, sizeof(out));

		assert_int_equal(n, strlen(msgs[0]));
		assert_memory_equal(out, msgs[0], n);
	}
	mailbox_close(&box);
}

/*
 * With a current index, an open takes sizes and times from it and never
 * looks at the files: change every file's contents and time behind its
 * back and the snapshot must not move.
 */
static void test_mailbox_index_avoids_per_file_io(void **state)
{
	struct fixture *f = *state;
	enum { N = 2000 };
	uint64_t *sizes = calloc(N, sizeof(*sizes));
	time_t *times = calloc(N, sizeof(*times));
	char **uidls = calloc(N, sizeof(*uidls));
	struct mailbox *box;
	char path[128], body[128];

	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "new/1600000000.P%dQ%d.host", i,
			 i);
		snprintf(body, sizeof(body), "Subject: %d\n\n%*s\n", i, i % 50,
			 "x");
		put_file(f->md_fd, path, body, 1600000000 + i % 7);
	}
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), N);
	for (size_t i = 0; i < N; i++) {
		const struct mailbox_msg *m = mailbox_msg(box, i);

		sizes[i] = m->size;
		times[i] = m->delivered;
		uidls[i] = strdup(m->uidl);
		assert_int_equal(m->uid, i + 1);
		if (i > 0) {
			/* New messages get UIDs in delivery order. */
			assert_true(m->delivered >=
				    mailbox_msg(box, i - 1)->delivered);
		}
	}
	mailbox_close(&box);

	for (int i = 0; i < N; i++) {
		snprintf(path, sizeof(path), "new/1600000000.P%dQ%d.host", i,
			 i);
		put_file(f->md_fd, path, "changed\n", 1700000000);
	}
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), N);
	for (size_t i = 0; i < N; i++) {
		const struct mailbox_msg *m = mailbox_msg(box, i);

		assert_int_equal(m->uid, i + 1);
		assert_int_equal(m->size, sizes[i]);
		assert_int_equal(m->delivered, times[i]);
		assert_string_equal(m->uidl, uidls[i]);
		free(uidls[i]);
	}
	mailbox_close(&box);
	free(sizes);
	free(times);
	free(uidls);
}

/* Files added and removed by other programs between opens. */
static void test_inv_i1_rebuild_after_changes_behind_its_back(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;

	put_file(f->md_fd, "new/100.A.host", "a\n", 100);
	put_file(f->md_fd, "new/200.B.host", "bb\n", 200);
	put_file(f->md_fd, "cur/300.C.host:2,S", "ccc\n", 300);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 3);
	assert_string_equal(mailbox_msg(box, 2)->name, "cur/300.C.host:2,S");
	assert_int_equal(mailbox_msg(box, 2)->size, 5);
	mailbox_close(&box);

	assert_int_equal(unlinkat(f->md_fd, "new/200.B.host", 0), 0);
	put_file(f->md_fd, "cur/050.D.host:2,", "dddd\n", 50);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 3);
	assert_int_equal(mailbox_msg(box, 0)->uid, 1);
	assert_string_equal(mailbox_msg(box, 0)->uidl, "100.A.host");
	assert_int_equal(mailbox_msg(box, 1)->uid, 3);
	assert_string_equal(mailbox_msg(box, 1)->uidl, "300.C.host");
	/* Delivered earlier, but new to the index: the next UID. */
	assert_int_equal(mailbox_msg(box, 2)->uid, 4);
	assert_string_equal(mailbox_msg(box, 2)->uidl, "050.D.host");
	assert_int_equal(mailbox_msg(box, 2)->size, 6);
	mailbox_close(&box);
}

static void test_mailbox_index_deleted_keeps_uidls(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	char name[256], uidls[3][128];
	uint32_t uv;

	for (int i = 0; i < 3; i++)
		deliver(f->md_fd, "x\n", name, sizeof(name));
	box = open_ok(f->md_fd);
	uv = mailbox_uidvalidity(box);
	for (size_t i = 0; i < 3; i++)
		snprintf(uidls[i], sizeof(uidls[i]), "%s",
			 mailbox_msg(box, i)->uidl);
	mailbox_close(&box);
	assert_int_equal(unlinkat(f->md_fd, "postd-index", 0), 0);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 3);
	/* Even within the same second, UIDVALIDITY moves forward. */
	assert_true(mailbox_uidvalidity(box) > uv);
	for (size_t i = 0; i < 3; i++) {
		bool found = false;

		for (size_t j = 0; j < 3; j++)
			found |=
			    strcmp(mailbox_msg(box, j)->uidl, uidls[i]) == 0;
		assert_true(found);
	}
	mailbox_close(&box);
}

static void test_mailbox_malformed_index_is_rebuilt(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    "garbage\n",
	    "postd-index 1 5 3\n1 2 3 4 a\n1 2 3 4 b\n",
	    "postd-index 1 5 3\n7 2 3 4 a\n",
	    "postd-index 1 5 3\n1 2 3 4 1.a.h\n2 2 3 4 1.a.h\n",
	    "postd-index 1 5 3\n1 2 3 4 a",
	    "postd-index 1 5 3\n1 -2 3 4 a\n",
	    "postd-index 1 5 3\n1 2 3 4 a/b\n",
	    "postd-index 2 5 3\n",
	    "",
	};
	struct mailbox *box;

	put_file(f->md_fd, "new/1.a.h", "a\n", 10);
	put_file(f->md_fd, "new/2.b.h", "b\n", 20);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t uv;

		put_file(f->md_fd, "postd-index", bad[i], 0);
		box = open_ok(f->md_fd);
		uv = mailbox_uidvalidity(box);
		assert_int_equal(mailbox_count(box), 2);
		assert_int_equal(mailbox_msg(box, 0)->uid, 1);
		assert_int_equal(mailbox_msg(box, 0)->size, 3);
		assert_int_equal(mailbox_msg(box, 1)->uid, 2);
		mailbox_close(&box);
		/* The rewritten index is accepted as is. */
		box = open_ok(f->md_fd);
		assert_int_equal(mailbox_uidvalidity(box), uv);
		mailbox_close(&box);
	}
}

/* INV-I1: an expunged UID is never handed out again. */
static void test_inv_i1_uids_never_reused(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	bool del[3] = {false, false, true};
	char name[256], err[256];
	uint32_t uv;

	for (int i = 0; i < 3; i++)
		deliver(f->md_fd, "x\n", name, sizeof(name));
	box = open_ok(f->md_fd);
	uv = mailbox_uidvalidity(box);
	assert_int_equal(mailbox_msg(box, 2)->uid, 3);
	assert_int_equal(mailbox_expunge(box, del, MAILBOX_EXPUNGE_POP3_UPDATE,
					 err, sizeof(err)),
			 0);
	mailbox_close(&box);
	deliver(f->md_fd, "y\n", name, sizeof(name));
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_uidvalidity(box), uv);
	assert_int_equal(mailbox_count(box), 3);
	assert_int_equal(mailbox_msg(box, 0)->uid, 1);
	assert_int_equal(mailbox_msg(box, 1)->uid, 2);
	assert_int_equal(mailbox_msg(box, 2)->uid, 4);
	mailbox_close(&box);
	/* Even with every message gone. */
	box = open_ok(f->md_fd);
	{
		bool all[3] = {true, true, true};

		assert_int_equal(mailbox_expunge(box, all,
						 MAILBOX_EXPUNGE_POP3_UPDATE,
						 err, sizeof(err)),
				 0);
	}
	mailbox_close(&box);
	deliver(f->md_fd, "z\n", name, sizeof(name));
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 1);
	assert_int_equal(mailbox_msg(box, 0)->uid, 5);
	mailbox_close(&box);
}

/* INV-P2: one session at a time, also within one process; the refusal
 * names the holder. */
static void test_inv_p2_lock_excludes_second_session(void **state)
{
	struct fixture *f = *state;
	struct mailbox *a = open_ok(f->md_fd), *b = NULL;
	char err[512] = "";
	int fd2;

	assert_int_equal(mailbox_open(f->md_fd, &owner2, &b, err, sizeof(err)),
			 MAILBOX_IN_USE);
	assert_null(b);
	assert_non_null(strstr(err, "locked by session S1 user "
				    "bob@example.com peer 192.0.2.1 since "));
	assert_non_null(strstr(err, "Z (pid "));
	/* Another descriptor of the same Maildir changes nothing. */
	fd2 = openat(f->root_fd, "example.com/bob", O_RDONLY | O_DIRECTORY);
	assert_true(fd2 >= 0);
	assert_int_equal(mailbox_open(fd2, &owner2, &b, err, sizeof(err)),
			 MAILBOX_IN_USE);
	mailbox_close(&a);
	assert_int_equal(mailbox_open(fd2, &owner2, &b, err, sizeof(err)),
			 MAILBOX_OK);
	assert_non_null(b);
	mailbox_close(&b);
	close(fd2);
}

static void test_inv_p2_holder_line_is_escaped(void **state)
{
	struct fixture *f = *state;
	const struct mailbox_owner evil = {"S\r\n9", "1.2.3.4\nforged",
					   "bob@example.com"};
	struct mailbox *a = NULL, *b = NULL;
	char err[512] = "";

	assert_int_equal(mailbox_open(f->md_fd, &evil, &a, err, sizeof(err)),
			 MAILBOX_OK);
	assert_int_equal(mailbox_open(f->md_fd, &owner2, &b, err, sizeof(err)),
			 MAILBOX_IN_USE);
	assert_null(strchr(err, '\n'));
	assert_null(strchr(err, '\r'));
	assert_non_null(strstr(err, "forged"));
	mailbox_close(&a);
}

/* The holder line is written over the last one without truncating the
 * file: a shorter line after a longer one still names only the current
 * holder. */
static void test_inv_p2_holder_line_after_longer_one(void **state)
{
	struct fixture *f = *state;
	const struct mailbox_owner longer = {
	    "S-with-a-very-long-session-id-0123456789",
	    "2001:db8:1234:5678:9abc:def0:1234:5678", "bob@example.com"};
	const struct mailbox_owner shorter = {"S2", "192.0.2.9",
					      "bob@example.com"};
	struct mailbox *a = NULL, *b = NULL;
	char err[512] = "";

	assert_int_equal(mailbox_open(f->md_fd, &longer, &a, err, sizeof(err)),
			 MAILBOX_OK);
	mailbox_close(&a);
	assert_int_equal(mailbox_open(f->md_fd, &shorter, &a, err, sizeof(err)),
			 MAILBOX_OK);
	assert_int_equal(mailbox_open(f->md_fd, &owner2, &b, err, sizeof(err)),
			 MAILBOX_IN_USE);
	assert_non_null(strstr(err, "locked by session S2 user "
				    "bob@example.com peer 192.0.2.9 since "));
	assert_null(strstr(err, "2001:db8"));
	assert_null(strstr(err, "very-long"));
	/* Ends with the host, as the line written does. */
	assert_int_equal(err[strlen(err) - 1], ')');
	mailbox_close(&a);
}

/* INV-P2: renamed by another program (new/ -> cur/ with flags): still
 * the same message; removed: an error, never other bytes. */
static void test_inv_p2_renamed_and_removed_messages(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	char n1[256], n2[256], from[300], to[300], err[256], out[64];
	size_t len;

	deliver(f->md_fd, "first\n", n1, sizeof(n1));
	deliver(f->md_fd, "second\n", n2, sizeof(n2));
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 2);
	snprintf(from, sizeof(from), "new/%s", n1);
	snprintf(to, sizeof(to), "cur/%s:2,S", n1);
	assert_int_equal(renameat(f->md_fd, from, f->md_fd, to), 0);
	len = wire_bytes(box, 0, out, sizeof(out));
	assert_int_equal(len, 7);
	assert_memory_equal(out, "first\r\n", 7);
	assert_string_equal(mailbox_msg(box, 0)->name, to);
	/* Flags changed again within cur/. */
	snprintf(from, sizeof(from), "cur/%s:2,RS", n1);
	assert_int_equal(renameat(f->md_fd, to, f->md_fd, from), 0);
	len = wire_bytes(box, 0, out, sizeof(out));
	assert_int_equal(len, 7);

	snprintf(from, sizeof(from), "new/%s", n2);
	assert_int_equal(unlinkat(f->md_fd, from, 0), 0);
	assert_int_equal(mailbox_msg_open(box, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "message UID 2 is gone"));
	mailbox_close(&box);
}

/* Files in the hold folder (0 when it does not exist). */
static size_t held_count(int md_fd)
{
	int fd = openat(md_fd, MAILDIR_HOLD_DIR, O_RDONLY | O_DIRECTORY);
	DIR *dir;
	struct dirent *de;
	size_t n = 0;

	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* What IMAP does to an INBOX message it expunges. */
static void imap_expunge(int md_fd, const char *sub, const char *name)
{
	int from = openat(md_fd, sub, O_RDONLY | O_DIRECTORY);
	int hold = maildir_hold_open(md_fd, true);

	assert_true(from >= 0 && hold >= 0);
	assert_int_equal(maildir_hold_move(from, name, hold), 0);
	close(from);
	close(hold);
	mailbox_hold_release(md_fd);
}

/* INV-P2: a message IMAP expunged (and, before that, renamed with flags)
 * after the snapshot is still read whole; it goes when the session
 * ends, not before, and never comes back. */
static void test_inv_p2_held_message_read_until_session_ends(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	char n1[256], n2[256], from[300], to[300], out[64];
	bool deleted[2] = {false, false};

	deliver(f->md_fd, "first\n", n1, sizeof(n1));
	deliver(f->md_fd, "second\n", n2, sizeof(n2));
	box = open_ok(f->md_fd);
	snprintf(from, sizeof(from), "new/%s", n2);
	snprintf(to, sizeof(to), "cur/%s:2,ST", n2);
	assert_int_equal(renameat(f->md_fd, from, f->md_fd, to), 0);
	snprintf(to, sizeof(to), "%s:2,ST", n2);
	imap_expunge(f->md_fd, "cur", to);
	/* The session holds the lock: the release left it held. */
	assert_int_equal(held_count(f->md_fd), 1);
	assert_int_equal(wire_bytes(box, 1, out, sizeof(out)), 8);
	assert_memory_equal(out, "second\r\n", 8);
	assert_int_equal(wire_bytes(box, 0, out, sizeof(out)), 7);
	/* DELE of a held message: counted as removed, no error. */
	deleted[1] = true;
	assert_int_equal(mailbox_expunge(box, deleted,
					 MAILBOX_EXPUNGE_POP3_UPDATE, out,
					 sizeof(out)),
			 0);
	mailbox_close(&box);
	assert_int_equal(held_count(f->md_fd), 0);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 1);
	mailbox_close(&box);
}

/* Without a session the hold folder is emptied at once. */
static void test_mailbox_hold_release_without_session(void **state)
{
	struct fixture *f = *state;
	char n1[256];

	deliver(f->md_fd, "first\n", n1, sizeof(n1));
	imap_expunge(f->md_fd, "new", n1);
	assert_int_equal(held_count(f->md_fd), 0);
	assert_int_equal(maildir_hold_find(f->md_fd, n1, strlen(n1)), -1);
	assert_int_equal(errno, ENOENT);
}

/* A crash left a held file: the next login removes it before its
 * snapshot, so it neither lingers nor comes back. A login refused as
 * IN-USE does not act as the lock's holder. */
static void test_inv_p2_login_purges_only_with_the_lock(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box, *box2 = NULL;
	char n1[256], n2[256], err[512], out[64];
	int hold, fd;

	deliver(f->md_fd, "first\n", n1, sizeof(n1));
	deliver(f->md_fd, "second\n", n2, sizeof(n2));
	hold = maildir_hold_open(f->md_fd, true);
	put_file(f->md_fd, MAILDIR_HOLD_DIR "/1.crash.host,S=4:2,S", "old\n",
		 0);
	close(hold);
	box = open_ok(f->md_fd);
	assert_int_equal(held_count(f->md_fd), 0);
	assert_int_equal(mailbox_count(box), 2);
	/* Held for this session; a second login must leave it alone. */
	imap_expunge(f->md_fd, "new", n1);
	assert_int_equal(
	    mailbox_open(f->md_fd, &owner2, &box2, err, sizeof(err)),
	    MAILBOX_IN_USE);
	assert_int_equal(held_count(f->md_fd), 1);
	fd = maildir_hold_find(f->md_fd, n1, strlen(n1));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(wire_bytes(box, 0, out, sizeof(out)), 7);
	mailbox_close(&box);
	assert_int_equal(held_count(f->md_fd), 0);
}

/* INV-P1: exactly the marked messages go; gone or renamed ones too. */
static void test_inv_p1_expunge_removes_exactly_marked(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	char names[6][256], path[300], to[300], err[256];
	bool del[6] = {false, true, false, true, true, true};
	struct stat st;

	for (int i = 0; i < 6; i++)
		deliver(f->md_fd, "m\n", names[i], sizeof(names[i]));
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 6);
	/* Message 4 was removed by someone else, 5 moved to cur/. */
	snprintf(path, sizeof(path), "new/%s", names[4]);
	assert_int_equal(unlinkat(f->md_fd, path, 0), 0);
	snprintf(path, sizeof(path), "new/%s", names[5]);
	snprintf(to, sizeof(to), "cur/%s:2,S", names[5]);
	assert_int_equal(renameat(f->md_fd, path, f->md_fd, to), 0);
	assert_int_equal(mailbox_expunge(box, del, MAILBOX_EXPUNGE_POP3_UPDATE,
					 err, sizeof(err)),
			 0);
	mailbox_close(&box);

	for (int i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "new/%s", names[i]);
		assert_int_equal(fstatat(f->md_fd, path, &st, 0) == 0, !del[i]);
	}
	assert_int_equal(fstatat(f->md_fd, to, &st, 0), -1);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 2);
	assert_int_equal(mailbox_msg(box, 0)->uid, 1);
	assert_int_equal(mailbox_msg(box, 1)->uid, 3);
	mailbox_close(&box);
}

struct expunge_try {
	int md_fd;
	enum mailbox_expunger by;
};

/* In a child: opens the mailbox and removes every message as t->by. */
static void expunge_all_as(void *arg)
{
	const struct expunge_try *t = arg;
	struct mailbox *box = open_ok(t->md_fd);
	bool del[2] = {true, true};
	char err[256];

	(void)mailbox_expunge(box, del, t->by, err, sizeof(err));
	mailbox_close(&box);
}

/* INV-P1: only the two known callers may remove messages; any other
 * aborts before a file is touched. */
static void test_inv_p1_expunge_by_unknown_caller_aborts(void **state)
{
	struct fixture *f = *state;
	struct expunge_try t = {f->md_fd, (enum mailbox_expunger)7};
	char names[2][256], out[1024], path[300];
	struct stat st;
	int status;

	for (int i = 0; i < 2; i++)
		deliver(f->md_fd, "m\n", names[i], sizeof(names[i]));
	status = death_run(expunge_all_as, &t, out, sizeof(out));
	assert_true(death_by_abort(status));
	assert_non_null(strstr(out, "assertion failed: "));
	assert_non_null(strstr(out, "MAILBOX_EXPUNGE_RETENTION"));
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "new/%s", names[i]);
		assert_int_equal(fstatat(f->md_fd, path, &st, 0), 0);
	}
	/* The retention pass is a known caller: it removes them. */
	t.by = MAILBOX_EXPUNGE_RETENTION;
	status = death_run(expunge_all_as, &t, out, sizeof(out));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "new/%s", names[i]);
		assert_int_equal(fstatat(f->md_fd, path, &st, 0), -1);
	}
}

static void test_mailbox_retrieved_is_kept(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;
	char name[256];

	deliver(f->md_fd, "x\n", name, sizeof(name));
	deliver(f->md_fd, "y\n", name, sizeof(name));
	box = open_ok(f->md_fd);
	mailbox_mark_retrieved(box, 1, 1234567);
	mailbox_mark_retrieved(box, 1, 2345678); /* first one counts */
	mailbox_close(&box);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_msg(box, 0)->retrieved, 0);
	assert_int_equal(mailbox_msg(box, 1)->retrieved, 1234567);
	mailbox_close(&box);
}

/* UIDLs stay unique and within RFC 1939's charset and length. */
static void test_mailbox_uidl_fallback_and_uniqueness(void **state)
{
	struct fixture *f = *state;
	char longname[200], path[256];
	struct mailbox *box;

	memset(longname, 'L', 100);
	longname[100] = '\0';
	put_file(f->md_fd, "new/dup,S=1", "a\n", 10);
	put_file(f->md_fd, "new/dup,S=2", "b\n", 20);
	snprintf(path, sizeof(path), "new/%s", longname);
	put_file(f->md_fd, path, "c\n", 30);
	put_file(f->md_fd, "new/caf\xc3\xa9.x", "d\n", 40);
	put_file(f->md_fd, "new/ok.name,W=99", "e\n", 50);
	/* The same base name in new/ and cur/ is one message. */
	put_file(f->md_fd, "cur/ok.name,W=99:2,S", "e\n", 50);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 5);
	assert_string_equal(mailbox_msg(box, 0)->uidl, "dup");
	assert_int_equal(strlen(mailbox_msg(box, 1)->uidl), 32);
	assert_int_equal(strlen(mailbox_msg(box, 2)->uidl), 32);
	assert_int_equal(strlen(mailbox_msg(box, 3)->uidl), 32);
	assert_string_equal(mailbox_msg(box, 4)->uidl, "ok.name");
	/* The size came from W= in the name, without reading the file. */
	assert_int_equal(mailbox_msg(box, 4)->size, 99);
	for (size_t i = 0; i < 5; i++) {
		const char *u = mailbox_msg(box, i)->uidl;

		for (size_t j = 0; u[j] != '\0'; j++)
			assert_true(u[j] > 0x20 && u[j] < 0x7f);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(u, mailbox_msg(box, j)->uidl);
	}
	mailbox_close(&box);
	/* Stable across opens. */
	box = open_ok(f->md_fd);
	assert_string_equal(mailbox_msg(box, 0)->uidl, "dup");
	assert_string_equal(mailbox_msg(box, 4)->uidl, "ok.name");
	mailbox_close(&box);
}

static void test_mailbox_ignores_dot_files_and_dirs(void **state)
{
	struct fixture *f = *state;
	struct mailbox *box;

	put_file(f->md_fd, "new/.hidden", "a\n", 0);
	assert_int_equal(mkdirat(f->md_fd, "cur/subdir", 0700), 0);
	assert_int_equal(symlinkat("/etc/passwd", f->md_fd, "cur/link"), 0);
	put_file(f->md_fd, "new/real", "b\n", 0);
	box = open_ok(f->md_fd);
	assert_int_equal(mailbox_count(box), 1);
	assert_string_equal(mailbox_msg(box, 0)->name, "new/real");
	mailbox_close(&box);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_mailbox_empty),
	    T(test_mailbox_delivery_size_round_trip),
	    T(test_mailbox_index_avoids_per_file_io),
	    T(test_inv_i1_rebuild_after_changes_behind_its_back),
	    T(test_mailbox_index_deleted_keeps_uidls),
	    T(test_mailbox_malformed_index_is_rebuilt),
	    T(test_inv_i1_uids_never_reused),
	    T(test_inv_p2_lock_excludes_second_session),
	    T(test_inv_p2_holder_line_is_escaped),
	    T(test_inv_p2_holder_line_after_longer_one),
	    T(test_inv_p2_renamed_and_removed_messages),
	    T(test_inv_p1_expunge_removes_exactly_marked),
	    T(test_inv_p1_expunge_by_unknown_caller_aborts),
	    T(test_mailbox_retrieved_is_kept),
	    T(test_mailbox_uidl_fallback_and_uniqueness),
	    T(test_mailbox_ignores_dot_files_and_dirs),
	    T(test_inv_p2_held_message_read_until_session_ends),
	    T(test_mailbox_hold_release_without_session),
	    T(test_inv_p2_login_purges_only_with_the_lock),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
