/* The IMAP index: UIDs (INV-I1), views, sync with other sessions and
 * other Maildir programs, STORE/EXPUNGE/COPY/MOVE/APPEND, the cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
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
#include <unistd.h>

#include "lib/postd_limits.h"
#include "storage/folder.h"
#include "storage/mail_index.h"
#include "storage/maildir.h"

#include "fsync_log.h"
#include "tmp_maildir.h"

/* A delivery as SMTP makes it; name_r gets the file name in new/. */
static void deliver(int fd, const char *body, char *name_r, size_t size)
{
	const char *err = NULL;
	char name[256];
	int e = 0;
	struct maildir_delivery *d = maildir_delivery_begin(fd, &err);

	assert_non_null(d);
	assert_int_equal(maildir_delivery_write(d, body, strlen(body), &err),
			 0);
	assert_int_equal(
	    maildir_delivery_commit(&d, name, sizeof(name), &e, &err), 0);
	if (name_r != NULL)
		snprintf(name_r, size, "%s", name);
}

static struct mail_view *open_view(int fd, bool readonly)
{
	struct mail_view *v = NULL;
	char err[256] = "";

	assert_int_equal(mail_view_open(fd, readonly, &v, err, sizeof(err)),
			 MAIL_OK);
	assert_non_null(v);
	return v;
}

struct events {
	size_t expunged[16], nexp;
	size_t changed[16], nchg;
	size_t exists;
};

static void ev_expunged(void *ctx, size_t seq0)
{
	struct events *ev = ctx;

	if (ev->nexp < 16)
		ev->expunged[ev->nexp++] = seq0;
}

static void ev_changed(void *ctx, size_t seq0)
{
	struct events *ev = ctx;

	if (ev->nchg < 16)
		ev->changed[ev->nchg++] = seq0;
}

static void ev_exists(void *ctx, size_t count)
{
	struct events *ev = ctx;

	ev->exists = count;
}

static const struct mail_sync_cb sync_cb = {ev_expunged, ev_changed, ev_exists};

static void sync_view(struct mail_view *v, bool allow_expunge,
		      struct events *ev)
{
	char err[256];

	memset(ev, 0, sizeof(*ev));
	assert_int_equal(
	    mail_view_sync(v, allow_expunge, &sync_cb, ev, err, sizeof(err)),
	    MAIL_OK);
}

static void store(struct mail_view *v, size_t seq0, enum mail_store_mode mode,
		  uint32_t flags, uint64_t kw)
{
	char err[256];

	assert_int_equal(
	    mail_view_store(v, seq0, mode, flags, kw, err, sizeof(err)),
	    MAIL_OK);
}

static uint32_t append(int fd, const char *body, uint32_t flags,
		       const char *const *kw, size_t nkw, time_t date)
{
	struct mail_append *a = NULL;
	uint32_t uidv = 0, uid = 0;
	char err[256];

	assert_int_equal(mail_append_begin(fd, &a, err, sizeof(err)), MAIL_OK);
	assert_int_equal(
	    mail_append_write(a, body, strlen(body), err, sizeof(err)),
	    MAIL_OK);
	assert_int_equal(mail_append_commit(&a, flags, kw, nkw, date, &uidv,
					    &uid, err, sizeof(err)),
			 MAIL_OK);
	assert_null(a);
	assert_true(uidv != 0);
	return uid;
}

static int count_dir(int fd, const char *sub)
{
	int d = openat(fd, sub, O_RDONLY | O_DIRECTORY);
	DIR *dir = fdopendir(d);
	struct dirent *de;
	int n = 0;

	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL)
		n += de->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* INV-I1: UIDs strictly increase and an expunged UID is never given
 * again, also after the index is reopened. */
static void test_inv_i1_uids_never_reused(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	struct events ev;
	uint32_t uidv;
	char err[256];

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	deliver(f->root_fd, "Subject: 3\n\nthree\n", NULL, 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_count(v), 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(mail_view_msg(v, i)->uid, i + 1);
	assert_int_equal(mail_view_uidnext(v), 4);
	assert_int_equal(mail_view_msg(v, 0)->size,
			 strlen("Subject: 1\n\none\n") + 3);
	uidv = mail_view_uidvalidity(v);
	store(v, 2, MAIL_STORE_ADD, MAIL_DELETED, 0);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(
	    mail_view_expunge(v, NULL, 0, &sync_cb, &ev, err, sizeof(err)),
	    MAIL_OK);
	assert_int_equal(ev.nexp, 1);
	assert_int_equal(ev.expunged[0], 2);
	assert_int_equal(mail_view_count(v), 2);
	mail_view_close(&v);
	deliver(f->root_fd, "Subject: 4\n\nfour\n", NULL, 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_uidvalidity(v), uidv);
	assert_int_equal(mail_view_count(v), 3);
	assert_int_equal(mail_view_msg(v, 2)->uid, 4);
	assert_int_equal(mail_view_find_uid(v, 3), SIZE_MAX);
	assert_int_equal(mail_view_find_uid(v, 4), 2);
	mail_view_close(&v);
}

static void test_two_views_see_each_other(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *a, *b;
	struct events ev;
	char err[256];

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	a = open_view(f->root_fd, false);
	b = open_view(f->root_fd, false);
	/* APPEND by one session: EXISTS for the other. */
	assert_int_equal(append(f->root_fd, "Subject: 3\n\n3\n", 0, NULL, 0, 0),
			 3);
	sync_view(b, true, &ev);
	assert_int_equal(ev.exists, 3);
	assert_int_equal(mail_view_msg(b, 2)->uid, 3);
	/* STORE: a FETCH for the other, none for the one that stored. */
	store(a, 0, MAIL_STORE_ADD, MAIL_FLAGGED, 0);
	sync_view(b, true, &ev);
	assert_int_equal(ev.nchg, 1);
	assert_int_equal(ev.changed[0], 0);
	assert_true(mail_view_msg(b, 0)->flags & MAIL_FLAGGED);
	assert_true(mail_view_msg(b, 0)->modseq > 1);
	sync_view(a, true, &ev);
	assert_int_equal(ev.nchg, 0);
	assert_int_equal(ev.exists, 3);
	/* EXPUNGE: held back while expunges may not be told. */
	store(a, 1, MAIL_STORE_ADD, MAIL_DELETED, 0);
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(
	    mail_view_expunge(a, NULL, 0, &sync_cb, &ev, err, sizeof(err)),
	    MAIL_OK);
	assert_int_equal(ev.nexp, 1);
	sync_view(b, false, &ev);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(mail_view_count(b), 3);
	assert_true(mail_view_msg(b, 1)->expunged);
	assert_int_equal(mail_view_msg_open(b, 1, err, sizeof(err)), -1);
	sync_view(b, true, &ev);
	assert_int_equal(ev.nexp, 1);
	assert_int_equal(ev.expunged[0], 1);
	assert_int_equal(mail_view_count(b), 2);
	assert_int_equal(mail_view_msg(b, 1)->uid, 3);
	mail_view_close(&a);
	mail_view_close(&b);
}

/* Another Maildir program renames a file to change its flags, and
 * removes another: a flag change and an expunge. */
static void test_external_changes_seen(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	struct events ev;
	char name[256], from[300], to[300], err[256];
	int fd;

	deliver(f->root_fd, "Subject: 1\n\none\n", name, sizeof(name));
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	v = open_view(f->root_fd, false);
	snprintf(from, sizeof(from), "new/%s", name);
	snprintf(to, sizeof(to), "cur/%s:2,FS", name);
	assert_int_equal(renameat(f->root_fd, from, f->root_fd, to), 0);
	sync_view(v, true, &ev);
	assert_int_equal(ev.nchg, 1);
	assert_int_equal(ev.changed[0], 0);
	assert_int_equal(mail_view_msg(v, 0)->flags & ~MAIL_RECENT,
			 MAIL_SEEN | MAIL_FLAGGED);
	fd = mail_view_msg_open(v, 0, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	/* Removed behind our back. */
	assert_int_equal(unlinkat(f->root_fd, to, 0), 0);
	sync_view(v, true, &ev);
	assert_int_equal(ev.nexp, 1);
	assert_int_equal(mail_view_count(v), 1);
	assert_int_equal(mail_view_msg(v, 0)->uid, 2);
	mail_view_close(&v);
}

/* STORE renames the file (system flags in the name, as every Maildir
 * reader expects); keywords live in the index; both survive a reopen. */
static void test_store_persists(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	char name[256], path[300];
	struct stat st, before, after;
	int bit;

	deliver(f->root_fd, "Subject: 1\n\none\n", name, sizeof(name));
	v = open_view(f->root_fd, false);
	bit = mail_view_keyword_bit(v, "$Important", true);
	assert_int_equal(bit, 0);
	assert_int_equal(mail_view_keyword_bit(v, "$important", false), 0);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.log", &before, 0), 0);
	store(v, 0, MAIL_STORE_SET, MAIL_SEEN | MAIL_ANSWERED,
	      (uint64_t)1 << bit);
	/* One record appended, nothing rewritten. */
	assert_int_equal(fstatat(f->root_fd, "postd-imap.log", &after, 0), 0);
	assert_true(after.st_ino == before.st_ino);
	assert_true(after.st_size > before.st_size);
	assert_true(after.st_size < before.st_size + 200);
	snprintf(path, sizeof(path), "cur/%s:2,RS", name);
	assert_int_equal(fstatat(f->root_fd, path, &st, 0), 0);
	mail_view_close(&v);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_msg(v, 0)->flags & ~MAIL_RECENT,
			 MAIL_SEEN | MAIL_ANSWERED);
	assert_int_equal(mail_view_msg(v, 0)->keywords, 1);
	assert_int_equal(mail_view_keyword_count(v), 1);
	assert_string_equal(mail_view_keyword(v, 0), "$Important");
	store(v, 0, MAIL_STORE_REMOVE, MAIL_SEEN, 1);
	snprintf(path, sizeof(path), "cur/%s:2,R", name);
	assert_int_equal(fstatat(f->root_fd, path, &st, 0), 0);
	assert_int_equal(mail_view_msg(v, 0)->keywords, 0);
	mail_view_close(&v);
}

/* A lost or garbled index is rebuilt from the Maildir under a new
 * UIDVALIDITY; the POP3 index is not touched. */
static void test_lost_index_new_uidvalidity(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	uint32_t uidv, uidv2;
	int fd;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	v = open_view(f->root_fd, false);
	uidv = mail_view_uidvalidity(v);
	mail_view_close(&v);
	assert_int_equal(unlinkat(f->root_fd, "postd-imap.log", 0), 0);
	v = open_view(f->root_fd, false);
	uidv2 = mail_view_uidvalidity(v);
	assert_true(uidv2 > uidv);
	assert_int_equal(mail_view_count(v), 2);
	mail_view_close(&v);
	/* Garbage in the middle: rebuilt again. */
	fd = openat(f->root_fd, "postd-imap.log", O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "A 1 zz\nX 1 2\n", 13), 13);
	close(fd);
	v = open_view(f->root_fd, false);
	assert_true(mail_view_uidvalidity(v) > uidv2);
	assert_int_equal(mail_view_count(v), 2);
	mail_view_close(&v);
	assert_int_equal(faccessat(f->root_fd, "postd-index", F_OK, 0), -1);
}

/* A folder deleted and created again within the same second gets a new
 * UIDVALIDITY: its own record went with it, the root keeps the last one
 * handed out (RFC 9051 2.3.1.1; imaptest "uidvalidity"). */
static uint32_t folder_uidvalidity(int root_fd, const char *name)
{
	struct mail_view *v;
	char err[256] = "";
	uint32_t uidv;
	int fd = -1;

	assert_int_equal(folder_open(root_fd, name, &fd, err, sizeof(err)),
			 FOLDER_OK);
	v = open_view(fd, false);
	uidv = mail_view_uidvalidity(v);
	mail_view_close(&v);
	close(fd);
	return uidv;
}

static void test_recreated_folder_new_uidvalidity(void **state)
{
	struct tmp_maildir *f = *state;
	char err[256] = "";
	uint32_t first, second, inbox;

	assert_int_equal(folder_create(f->root_fd, "box", 0, err, sizeof(err)),
			 FOLDER_OK);
	first = folder_uidvalidity(f->root_fd, "box");
	assert_int_equal(folder_delete(f->root_fd, "box", err, sizeof(err)),
			 FOLDER_OK);
	assert_int_equal(folder_create(f->root_fd, "box", 0, err, sizeof(err)),
			 FOLDER_OK);
	second = folder_uidvalidity(f->root_fd, "box");
	assert_true(second > first);
	/* INBOX, the root itself, draws from the same record */
	inbox = folder_uidvalidity(f->root_fd, "INBOX");
	assert_true(inbox > second);
}

/* EXAMINE shows unclaimed messages as \Recent without claiming them; the
 * next SELECT claims them, and a later EXAMINE sees none. */
static void test_readonly_view_shows_unclaimed_recent(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	v = open_view(f->root_fd, true);
	assert_int_equal(mail_view_recent_count(v), 2);
	assert_true(mail_view_msg(v, 0)->flags & MAIL_RECENT);
	mail_view_close(&v);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_recent_count(v), 2);
	mail_view_close(&v);
	v = open_view(f->root_fd, true);
	assert_int_equal(mail_view_recent_count(v), 0);
	mail_view_close(&v);
}

/* A record cut short by a crash is ignored and then cut off. */
static void test_partial_record_ignored(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	uint32_t uidv;
	int fd;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	v = open_view(f->root_fd, false);
	uidv = mail_view_uidvalidity(v);
	mail_view_close(&v);
	fd = openat(f->root_fd, "postd-imap.log", O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "F 1 9", 5), 5);
	close(fd);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_uidvalidity(v), uidv);
	store(v, 0, MAIL_STORE_ADD, MAIL_SEEN, 0);
	mail_view_close(&v);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_uidvalidity(v), uidv);
	assert_true(mail_view_msg(v, 0)->flags & MAIL_SEEN);
	mail_view_close(&v);
}

static void test_keyword_limit(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v, *w;
	char kw[32];

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	v = open_view(f->root_fd, false);
	for (int i = 0; i < MAIL_MAX_KEYWORDS; i++) {
		snprintf(kw, sizeof(kw), "kw%d", i);
		assert_int_equal(mail_view_keyword_bit(v, kw, true), i);
	}
	assert_int_equal(mail_view_keyword_bit(v, "one-too-many", true), -1);
	assert_int_equal(mail_view_keyword_bit(v, "bad(atom", true), -1);
	assert_int_equal(mail_view_keyword_bit(v, "\\Seen", true), -1);
	store(v, 0, MAIL_STORE_SET, 0, (uint64_t)1 << 63);
	w = open_view(f->root_fd, false);
	assert_int_equal(mail_view_keyword_count(w), MAIL_MAX_KEYWORDS);
	assert_string_equal(mail_view_keyword(w, 63), "kw63");
	assert_int_equal(mail_view_msg(w, 0)->keywords, (uint64_t)1 << 63);
	mail_view_close(&w);
	mail_view_close(&v);
}

/* Two processes appending at once (the lock): every message gets its own
 * UID, none is lost, and the log stays valid. */
static void test_inv_i1_concurrent_appends_unique(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	for (int i = 0; i < 100; i++)
		append(f->root_fd, "Subject: c\r\n\r\nc\r\n",
		       i % 2 ? MAIL_SEEN : 0, NULL, 0, 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_count(v), 200);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(mail_view_msg(v, i)->uid, i + 1);
	assert_int_equal(mail_view_uidnext(v), 201);
	mail_view_close(&v);
}

/* A delivery makes the next sync read new/ only; what is in cur/ stays,
 * and a change in cur/ alone leaves new/ alone. */
static void test_scan_reads_changed_folder_only(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	struct events ev;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	v = open_view(f->root_fd, false);
	store(v, 0, MAIL_STORE_ADD, MAIL_SEEN, 0);
	sync_view(v, true, &ev);
	deliver(f->root_fd, "Subject: 3\n\nthree\n", NULL, 0);
	sync_view(v, true, &ev);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(ev.exists, 3);
	assert_true(mail_view_msg(v, 0)->flags & MAIL_SEEN);
	store(v, 2, MAIL_STORE_ADD, MAIL_FLAGGED, 0);
	store(v, 0, MAIL_STORE_ADD, MAIL_ANSWERED, 0);
	sync_view(v, true, &ev);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(mail_view_count(v), 3);
	mail_view_close(&v);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_count(v), 3);
	assert_int_equal(mail_view_msg(v, 0)->flags & ~MAIL_RECENT,
			 MAIL_SEEN | MAIL_ANSWERED);
	assert_int_equal(mail_view_msg(v, 2)->flags & ~MAIL_RECENT,
			 MAIL_FLAGGED);
	mail_view_close(&v);
}

/* \Recent goes to exactly one session: the first that sees a message. */
static void test_recent_given_once(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *a, *b, *ro;
	struct events ev;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	/* EXAMINE shows it as recent and leaves it for the next SELECT */
	ro = open_view(f->root_fd, true);
	assert_int_equal(mail_view_recent_count(ro), 1);
	a = open_view(f->root_fd, false);
	assert_int_equal(mail_view_recent_count(a), 1);
	b = open_view(f->root_fd, false);
	assert_int_equal(mail_view_recent_count(b), 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	sync_view(b, true, &ev);
	assert_int_equal(ev.exists, 2);
	assert_true(mail_view_msg(b, 1)->flags & MAIL_RECENT);
	sync_view(a, true, &ev);
	assert_int_equal(ev.exists, 2);
	assert_false(mail_view_msg(a, 1)->flags & MAIL_RECENT);
	assert_true(mail_view_msg(a, 0)->flags & MAIL_RECENT);
	mail_view_close(&a);
	mail_view_close(&b);
	mail_view_close(&ro);
}

static void test_copy_and_move(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v, *d;
	struct events ev;
	uint32_t uidv = 0, uids[2] = {0, 0};
	size_t seqs[2] = {0, 2};
	char err[256];
	int dest_fd, bit;

	assert_int_equal(
	    folder_create(f->root_fd, "Archive", 0, err, sizeof(err)),
	    FOLDER_OK);
	assert_int_equal(
	    folder_open(f->root_fd, "Archive", &dest_fd, err, sizeof(err)),
	    FOLDER_OK);
	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	deliver(f->root_fd, "Subject: 3\n\nthree\n", NULL, 0);
	v = open_view(f->root_fd, false);
	bit = mail_view_keyword_bit(v, "Work", true);
	store(v, 0, MAIL_STORE_SET, MAIL_SEEN, (uint64_t)1 << bit);
	assert_int_equal(mail_view_copy(v, seqs, 2, dest_fd, false, &uidv, uids,
					&sync_cb, &ev, err, sizeof(err)),
			 MAIL_OK);
	assert_int_equal(uids[0], 1);
	assert_int_equal(uids[1], 2);
	d = open_view(dest_fd, false);
	assert_int_equal(mail_view_uidvalidity(d), uidv);
	assert_int_equal(mail_view_count(d), 2);
	assert_true(mail_view_msg(d, 0)->flags & MAIL_SEEN);
	assert_int_equal(mail_view_keyword_bit(d, "work", false), 0);
	assert_int_equal(mail_view_msg(d, 0)->keywords, 1);
	assert_int_equal(mail_view_msg(d, 1)->internaldate,
			 mail_view_msg(v, 2)->internaldate);
	mail_view_close(&d);
	assert_int_equal(mail_view_count(v), 3);
	/* MOVE: new UIDs there, the sources expunged here. */
	memset(&ev, 0, sizeof(ev));
	assert_int_equal(mail_view_copy(v, seqs, 2, dest_fd, true, &uidv, uids,
					&sync_cb, &ev, err, sizeof(err)),
			 MAIL_OK);
	assert_int_equal(uids[0], 3);
	assert_int_equal(uids[1], 4);
	assert_int_equal(ev.nexp, 2);
	assert_int_equal(ev.expunged[0], 0);
	assert_int_equal(ev.expunged[1], 1);
	assert_int_equal(mail_view_count(v), 1);
	assert_int_equal(mail_view_msg(v, 0)->uid, 2);
	assert_int_equal(
	    count_dir(f->root_fd, "new") + count_dir(f->root_fd, "cur"), 1);
	d = open_view(dest_fd, false);
	assert_int_equal(mail_view_count(d), 4);
	mail_view_close(&d);
	mail_view_close(&v);
	close(dest_fd);
}

/* COPY into another file system: no hard link possible, so a copy that
 * is fsynced, carries the internal date, and gets its UID. */
static void test_copy_across_file_systems(void **state)
{
	struct tmp_maildir *f = *state;
	char other[64] = "/dev/shm/test_mail_index.XXXXXX", cmd[128], err[256];
	struct stat a, b;
	struct mail_view *v, *d;
	uint32_t uidv, uid;
	size_t seq = 0;
	int fd, dest_fd, mfd;

	if (mkdtemp(other) == NULL || stat(other, &a) < 0 ||
	    stat(f->root, &b) < 0 || a.st_dev == b.st_dev) {
		skip();
		return;
	}
	dest_fd = open(other, O_RDONLY | O_DIRECTORY);
	assert_true(dest_fd >= 0);
	assert_int_equal(mkdirat(dest_fd, "new", 0700), 0);
	assert_int_equal(mkdirat(dest_fd, "cur", 0700), 0);
	assert_int_equal(mkdirat(dest_fd, "tmp", 0700), 0);
	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_copy(v, &seq, 1, dest_fd, false, &uidv, &uid,
					&sync_cb, NULL, err, sizeof(err)),
			 MAIL_OK);
	assert_int_equal(uid, 1);
	d = open_view(dest_fd, false);
	assert_int_equal(mail_view_count(d), 1);
	fd = mail_view_msg_open(d, 0, err, sizeof(err));
	mfd = mail_view_msg_open(v, 0, err, sizeof(err));
	assert_true(fd >= 0 && mfd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(fstat(mfd, &b), 0);
	assert_int_equal(a.st_nlink, 1);
	assert_int_equal(a.st_size, b.st_size);
	assert_int_equal(a.st_mtime, mail_view_msg(v, 0)->internaldate);
	assert_int_equal(mail_view_msg(d, 0)->size, mail_view_msg(v, 0)->size);
	close(fd);
	close(mfd);
	assert_int_equal(count_dir(dest_fd, "tmp"), 0);
	mail_view_close(&d);
	mail_view_close(&v);
	close(dest_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", other);
	assert_int_equal(system(cmd), 0);
}

static void test_cache_put_get(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v, *w;
	void *blob;
	size_t len;
	int fd;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_cache_get(v, 0, &blob, &len),
			 MAIL_NOT_FOUND);
	mail_view_cache_put(v, 0, "structure-of-1", 14);
	mail_view_cache_put(v, 1, "structure-of-2", 14);
	assert_int_equal(mail_view_cache_get(v, 0, &blob, &len), MAIL_OK);
	assert_int_equal(len, 14);
	assert_memory_equal(blob, "structure-of-1", 14);
	free(blob);
	w = open_view(f->root_fd, false);
	assert_int_equal(mail_view_cache_get(w, 1, &blob, &len), MAIL_OK);
	assert_memory_equal(blob, "structure-of-2", 14);
	free(blob);
	mail_view_close(&w);
	/* A damaged blob is a miss, never wrong data. */
	fd = openat(f->root_fd, "postd-imap.cache", O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 16 + 16 + 3), 1);
	close(fd);
	w = open_view(f->root_fd, false);
	assert_int_equal(mail_view_cache_get(w, 0, &blob, &len),
			 MAIL_NOT_FOUND);
	assert_int_equal(mail_view_cache_get(w, 1, &blob, &len), MAIL_OK);
	free(blob);
	mail_view_close(&w);
	mail_view_close(&v);
}

/*
 * The cache keeps no more than about two records per live message: in a
 * small folder where messages come and go (each new one parsed and cached
 * once), dead records piled up to 64 MiB, and every new view reads each
 * record's header once, so SELECT got slower and slower.
 */
static void test_cache_stays_small_as_messages_come_and_go(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	struct stat st;
	void *blob;
	size_t len;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	v = open_view(f->root_fd, false);
	for (int i = 0; i < 3000; i++)
		mail_view_cache_put(v, 0, "a structure of 32 bytes, or so..",
				    32);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.cache", &st, 0), 0);
	/* 16-byte header, records of 16 + 32 bytes, 2 x 1 + 256 of them */
	assert_true(st.st_size <= 16 + (2 + 256 + 1) * 48);
	assert_int_equal(mail_view_cache_get(v, 0, &blob, &len), MAIL_OK);
	assert_int_equal(len, 32);
	free(blob);
	mail_view_close(&v);
}

/*
 * A record this view wrote counts once towards the restart: counted at
 * the write and again when the view read past it, 140 records of 5 live
 * messages looked like 280 and threw away a cache of live ones.
 */
static void test_cache_counts_own_records_once(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v, *w;
	struct stat before, after;
	struct events ev;
	uint32_t uids[135];
	char err[256];
	void *blob;
	size_t len;

	for (int i = 0; i < 140; i++)
		deliver(f->root_fd, "Subject: c\n\nbody\n", NULL, 0);
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_count(v), 140);
	for (size_t i = 0; i < 140; i++)
		mail_view_cache_put(v, i, "a structure", 11);
	for (size_t i = 0; i < 135; i++)
		uids[i] = mail_view_msg(v, i)->uid;
	assert_int_equal(mail_view_expunge_uids(v, uids, 135, err, sizeof(err)),
			 MAIL_OK);
	sync_view(v, true, &ev);
	assert_int_equal(mail_view_count(v), 5);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.cache", &before, 0),
			 0);
	/* 140 records, 135 dead: within 2 x 5 + 256, the cache stays. */
	mail_view_cache_put(v, 0, "a structure", 11);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.cache", &after, 0), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	w = open_view(f->root_fd, false);
	assert_int_equal(mail_view_cache_get(w, 4, &blob, &len), MAIL_OK);
	free(blob);
	mail_view_close(&w);
	mail_view_close(&v);
}

/* INV-D1 for APPEND: file, its folder and the index are fsynced before
 * the UID is handed out; flags go into the name, the date into mtime. */
static void test_inv_d1_append_durable(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *v;
	static const char *const kws[] = {"$Label1"};
	struct stat st;
	uint32_t uid;
	char err[256];
	int fd;

	fsync_log_start(NULL);
	uid = append(f->root_fd, "Subject: a\r\n\r\nbody\r\n", MAIL_SEEN, kws,
		     1, 1700000000);
	fsync_log.on = false;
	assert_int_equal(uid, 1);
	assert_true(fsync_logged(f->root, "tmp/"));
	assert_true(fsync_logged(f->root, "new"));
	assert_true(fsync_logged(f->root, "cur"));
	assert_true(fsync_logged(f->root, "postd-imap.log"));
	v = open_view(f->root_fd, false);
	assert_int_equal(mail_view_count(v), 1);
	assert_int_equal(mail_view_msg(v, 0)->internaldate, 1700000000);
	assert_true(mail_view_msg(v, 0)->flags & MAIL_SEEN);
	assert_int_equal(mail_view_msg(v, 0)->keywords, 1);
	assert_int_equal(mail_view_msg(v, 0)->size,
			 strlen("Subject: a\r\n\r\nbody\r\n"));
	fd = mail_view_msg_open(v, 0, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mtime, 1700000000);
	close(fd);
	assert_int_equal(count_dir(f->root_fd, "cur"), 1);
	/* STORE survives kill -9 without an fsync: the rename and the F
	 * record are written before it returns, so a view opened afresh
	 * (as after a restart) sees the flag; only a power loss may undo
	 * it (the fsync policy in doc/internals/imap-index.md). */
	fsync_log_start(NULL);
	store(v, 0, MAIL_STORE_ADD, MAIL_FLAGGED, 0);
	fsync_log.on = false;
	assert_false(fsync_logged(f->root, "cur"));
	assert_false(fsync_logged(f->root, "postd-imap.log"));
	mail_view_close(&v);
	v = open_view(f->root_fd, false);
	assert_true(mail_view_msg(v, 0)->flags & MAIL_FLAGGED);
	mail_view_close(&v);
}

/* The log is compacted when it outgrows the folder; other views notice
 * the new file and lose nothing. */
static void test_compaction_keeps_views(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_view *a, *b;
	struct events ev;
	struct stat before, after;
	int bit;

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	a = open_view(f->root_fd, false);
	b = open_view(f->root_fd, false);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.log", &before, 0), 0);
	bit = mail_view_keyword_bit(a, "toggled", true);
	for (int i = 0; i < 1100; i++)
		store(a, 1, i % 2 ? MAIL_STORE_REMOVE : MAIL_STORE_ADD, 0,
		      (uint64_t)1 << bit);
	store(a, 0, MAIL_STORE_ADD, MAIL_ANSWERED, 0);
	assert_int_equal(fstatat(f->root_fd, "postd-imap.log", &after, 0), 0);
	assert_true(before.st_ino != after.st_ino);
	assert_true(after.st_size < before.st_size + 100 * 1100);
	sync_view(b, true, &ev);
	assert_int_equal(ev.nexp, 0);
	assert_int_equal(mail_view_count(b), 2);
	assert_true(mail_view_msg(b, 0)->flags & MAIL_ANSWERED);
	assert_int_equal(mail_view_msg(b, 1)->keywords, 0);
	assert_int_equal(mail_view_highest_modseq(b),
			 mail_view_highest_modseq(a));
	mail_view_close(&a);
	mail_view_close(&b);
}

static void test_folder_status(void **state)
{
	struct tmp_maildir *f = *state;
	struct mail_folder_status st;
	struct mail_view *v;
	char err[256];

	deliver(f->root_fd, "Subject: 1\n\none\n", NULL, 0);
	deliver(f->root_fd, "Subject: 2\n\ntwo\n", NULL, 0);
	assert_int_equal(mail_folder_status(f->root_fd, &st, err, sizeof(err)),
			 MAIL_OK);
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.recent, 2);
	assert_int_equal(st.unseen, 2);
	assert_int_equal(st.uidnext, 3);
	assert_int_equal(st.size, 2 * (strlen("Subject: 1\n\none\n") + 3));
	v = open_view(f->root_fd, false);
	store(v, 0, MAIL_STORE_ADD, MAIL_SEEN | MAIL_DELETED, 0);
	mail_view_close(&v);
	assert_int_equal(mail_folder_status(f->root_fd, &st, err, sizeof(err)),
			 MAIL_OK);
	assert_int_equal(st.recent, 0);
	assert_int_equal(st.unseen, 1);
	assert_int_equal(st.deleted, 1);
}

static void test_index_check_rejects_garbage(void **state)
{
	static const char good[] = "postd-imap 1 5 3 4 0\n"
				   "K 0 Work\n"
				   "A 1 2 1 1 c 2,S 100 10 1.a.b\n"
				   "A 2 3 0 0 n - 100 10 2.a.b\n"
				   "F 1 4 0 0 c 2,\n"
				   "X 2 5\n"
				   "R 2\n"
				   "S 1 2 3 4\n";
	static const char *const bad[] = {
	    "garbage\n",
	    "postd-imap 1 0 1 1 0\n",
	    "postd-imap 1 5 3 4 0\nA 0 1 0 0 n - 1 1 x\n",
	    "postd-imap 1 5 3 4 0\nA 2 1 0 0 n - 1 1 x\nA 1 1 0 0 n - 1 1 y\n",
	    "postd-imap 1 5 3 4 0\nA 1 1 99 0 n - 1 1 x\n",
	    "postd-imap 1 5 3 4 0\nA 1 1 0 2 n - 1 1 x\n",
	    "postd-imap 1 5 3 4 0\nA 1 1 0 0 n - 1 1 a/b\n",
	    "postd-imap 1 5 3 4 0\nX 9 1\n",
	    "postd-imap 1 5 3 4 0\nK 1 x\n",
	    "postd-imap 1 5 3 4 0\nK 0 a b\n",
	    "postd-imap 1 5 3 4 0\nQ 1\n",
	};

	(void)state;
	assert_int_equal(mail_index_check(good, strlen(good)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(mail_index_check(bad[i], strlen(bad[i])), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_inv_i1_uids_never_reused,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_two_views_see_each_other,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_external_changes_seen,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_store_persists, tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_lost_index_new_uidvalidity,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_partial_record_ignored,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_keyword_limit, tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_recent_given_once,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_scan_reads_changed_folder_only,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_i1_concurrent_appends_unique, tmp_maildir_setup,
		tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_copy_and_move, tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_copy_across_file_systems,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_cache_put_get, tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_cache_stays_small_as_messages_come_and_go,
		tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_cache_counts_own_records_once,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_inv_d1_append_durable,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(test_compaction_keeps_views,
					    tmp_maildir_setup,
					    tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_folder_status, tmp_maildir_setup, tmp_maildir_teardown),
	    cmocka_unit_test(test_index_check_rejects_garbage),
	    cmocka_unit_test_setup_teardown(
		test_recreated_folder_new_uidvalidity, tmp_maildir_setup,
		tmp_maildir_teardown),
	    cmocka_unit_test_setup_teardown(
		test_readonly_view_shows_unclaimed_recent, tmp_maildir_setup,
		tmp_maildir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
