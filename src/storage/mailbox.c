/*
 * A Maildir as one POP3 session sees it, locked and frozen into a
 * snapshot; maildir.c creates the folders and writes into them, expire.c
 * decides what the retention pass removes through this file.
 *
 * The POP3 view of a Maildir: lock, one readdir of new/ and cur/, the
 * index for everything already known, a snapshot sorted by UID.
 *
 * Cost of an open with a current index: two readdirs and one read of the
 * index; no stat or open per message. Only files the index does not know
 * are looked at (one fstatat, plus an open when the name has no ",W=").
 * Matching names is a hash table lookup, so the whole open is O(n) plus
 * one sort by UID.
 */
#include "storage/mailbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_assert.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/maildir.h"
#include "storage/msg_wire.h"

#define MAILBOX_LOCK_FILE "postd-pop3.lock"
#define MAILBOX_INDEX_FILE "postd-index"
#define MAILBOX_INDEX_TMP "postd-index.tmp"
#define MAILBOX_UIDVALIDITY_FILE "postd-uidvalidity"
#define MAILBOX_INDEX_MAGIC "postd-index 1 "
#define MAILBOX_ARENA_BLOCK (64 * 1024)
/* Length of a UIDL made from a hash: 16 bytes of SHA-256 in hex. */
#define MAILBOX_HASH_UIDL 32

struct mailbox_entry {
	struct mailbox_msg m;
	uint32_t base_len; /* the base name is m.name + 4, up to ':' */
	uint32_t mtime_ns; /* orders new messages within one second */
	bool known;	   /* taken from the index */
	bool dropped;	   /* duplicate or vanished before the snapshot */
	bool expunged;
};

struct mailbox_arena {
	struct mailbox_arena *next;
	size_t used;
	char data[MAILBOX_ARENA_BLOCK];
};

/* Open addressing over entry indexes (+1; 0 is empty). The hash is kept
 * in the slot so that a probe past another name does not touch that
 * entry's memory. */
struct mailbox_slot {
	uint32_t idx;
	uint32_t hash;
};

struct mailbox_hash {
	struct mailbox_slot *slots;
	size_t mask;
};

struct mailbox {
	int maildir_fd;
	int lock_fd;
	DIR *new_dir;
	DIR *cur_dir;
	uint32_t uidvalidity;
	uint32_t nextuid;
	bool dirty; /* the index on disk is out of date */
	struct mailbox_entry *msgs;
	size_t count;
	size_t alloc;
	struct mailbox_arena *arena;
};

static char *mailbox_strdup2(struct mailbox *box, const char *a, size_t alen,
			     const char *b, size_t blen);
static bool mailbox_valid_base(const char *s, size_t len);
static const char *mailbox_base(const struct mailbox_entry *e);
static DIR *mailbox_dir(const struct mailbox *box, const char *name);
static uint32_t mailbox_hash_str(const char *s, size_t len);
static void mailbox_hash_init(struct mailbox_hash *h, size_t count);
static struct mailbox_entry *mailbox_hash_base(struct mailbox *box,
					       struct mailbox_hash *h,
					       const char *base, size_t len,
					       size_t insert_idx);
static enum mailbox_status mailbox_lock(struct mailbox *box,
					const struct mailbox_owner *owner,
					char *error, size_t error_size);
static void mailbox_holder_line(const struct mailbox_owner *owner, char *out,
				size_t out_size);
static DIR *mailbox_dir_open(struct mailbox *box, const char *name, char *error,
			     size_t error_size);
static void mailbox_snapshot(struct mailbox *box);
static int mailbox_scan_dir(struct mailbox *box, DIR *dir, const char *prefix,
			    char *error, size_t error_size);
static int mailbox_index_read(struct mailbox *box, struct mailbox_hash *h,
			      uint32_t *old_uidvalidity_r, const char **why_r);
static int mailbox_index_parse(struct mailbox *box, struct mailbox_hash *h,
			       char *data, size_t len,
			       uint32_t *old_uidvalidity_r, const char **why_r);
static int mailbox_index_line(struct mailbox *box, struct mailbox_hash *h,
			      char *line, uint32_t *prev_uid);
static int mailbox_index_write(struct mailbox *box);
static bool mailbox_write_all(int fd, const char *buf, size_t len);
static uint32_t mailbox_new_uidvalidity(struct mailbox *box, uint32_t old);
static void mailbox_stat_new(struct mailbox *box, struct mailbox_entry *e);
static void mailbox_assign_uids(struct mailbox *box, bool renumber);
static void mailbox_compact(struct mailbox *box);
static void mailbox_assign_uidls(struct mailbox *box);
static int mailbox_relocate(struct mailbox *box, struct mailbox_entry *e);
static int mailbox_relocate_in(struct mailbox *box, struct mailbox_entry *e,
			       DIR *dir, const char *prefix);
static int mailbox_try_lock(int fd);
static void mailbox_unlock(struct mailbox *box);
static void mailbox_write_holder(int fd, const struct mailbox_owner *owner);
static int mailbox_cmp_uid(const void *a, const void *b);
static int mailbox_cmp_delivery(const void *a, const void *b);
static int mailbox_cmp_names(const char *a, const char *b);
static void mailbox_free(struct mailbox **box);

/* Copies a then b into the arena as one NUL-terminated string. */
static char *mailbox_strdup2(struct mailbox *box, const char *a, size_t alen,
			     const char *b, size_t blen)
{
	size_t need = alen + blen + 1;
	struct mailbox_arena *ar = box->arena;
	char *s;

	if (need > MAILBOX_ARENA_BLOCK)
		fatal("mailbox: arena string of %zu bytes", need);
	if (ar == NULL || MAILBOX_ARENA_BLOCK - ar->used < need) {
		ar = xmalloc(sizeof(*ar));
		ar->used = 0;
		ar->next = box->arena;
		box->arena = ar;
	}
	s = ar->data + ar->used;
	ar->used += need;
	memcpy(s, a, alen);
	memcpy(s + alen, b, blen);
	s[alen + blen] = '\0';
	return s;
}

/* A base name we can index: one line, no '/' or ':'. */
static bool mailbox_valid_base(const char *s, size_t len)
{
	if (len == 0 || len > MAILDIR_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '/' || c == ':')
			return false;
	}
	return true;
}

static const char *mailbox_base(const struct mailbox_entry *e)
{
	return e->m.name + 4;
}

static DIR *mailbox_dir(const struct mailbox *box, const char *name)
{
	return name[0] == 'n' ? box->new_dir : box->cur_dir;
}

/* Eight bytes per multiply: names are ~60 bytes and hashed 200,000 times
 * per open of a large mailbox. No adversary gains anything from
 * collisions beyond slowing down their own mailbox. */
static uint32_t mailbox_hash_str(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;

	for (; len >= 8; s += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	if (len > 0) {
		uint64_t w = 0;

		memcpy(&w, s, len);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 32;
	return (uint32_t)h;
}

static void mailbox_hash_init(struct mailbox_hash *h, size_t count)
{
	size_t size = 16;

	while (size < count * 2)
		size *= 2;
	h->slots = xcalloc(size, sizeof(*h->slots));
	h->mask = size - 1;
}

/*
 * Finds the entry with this base name. With insert_idx != SIZE_MAX, adds
 * that entry when no other has the name (and returns NULL then).
 */
static struct mailbox_entry *mailbox_hash_base(struct mailbox *box,
					       struct mailbox_hash *h,
					       const char *base, size_t len,
					       size_t insert_idx)
{
	uint32_t hv = mailbox_hash_str(base, len);

	for (size_t i = hv & h->mask;; i = (i + 1) & h->mask) {
		struct mailbox_slot *sl = &h->slots[i];
		struct mailbox_entry *e;

		if (sl->idx == 0) {
			if (insert_idx != SIZE_MAX) {
				sl->idx = (uint32_t)insert_idx + 1;
				sl->hash = hv;
			}
			return NULL;
		}
		if (sl->hash != hv)
			continue;
		e = &box->msgs[sl->idx - 1];
		if (e->base_len == len &&
		    memcmp(mailbox_base(e), base, len) == 0)
			return e;
	}
}

enum mailbox_status mailbox_open(int maildir_fd,
				 const struct mailbox_owner *owner,
				 struct mailbox **box_r, char *error,
				 size_t error_size)
{
	struct mailbox *box = xcalloc(1, sizeof(*box));
	enum mailbox_status st;

	*box_r = NULL;
	box->maildir_fd = maildir_fd;
	box->lock_fd = -1;
	st = mailbox_lock(box, owner, error, error_size);
	if (st != MAILBOX_OK)
		goto fail;
	/* What IMAP expunged while the last session ran, or before a
	 * crash: no session lists it any more, and this one never will. */
	maildir_hold_purge(maildir_fd);
	st = MAILBOX_TEMPFAIL;
	box->new_dir = mailbox_dir_open(box, "new", error, error_size);
	if (box->new_dir == NULL)
		goto fail;
	box->cur_dir = mailbox_dir_open(box, "cur", error, error_size);
	if (box->cur_dir == NULL)
		goto fail;
	/* new/ first: a message moving new/ -> cur/ meanwhile is then seen
	 * twice (and deduplicated) rather than missed. */
	if (mailbox_scan_dir(box, box->new_dir, "new/", error, error_size) <
		0 ||
	    mailbox_scan_dir(box, box->cur_dir, "cur/", error, error_size) < 0)
		goto fail;

	mailbox_snapshot(box);
	/* The index is a cache: failing to write it costs speed at the next
	 * open, not correctness now, and refusing the login would keep a
	 * user with a full disk from deleting mail. */
	if (box->dirty && mailbox_index_write(box) == 0)
		box->dirty = false;
	*box_r = box;
	return MAILBOX_OK;
fail:
	mailbox_free(&box);
	return st;
}

/*
 * Matches the names found against the index, sizes up the files it does
 * not know, gives them UIDs and sorts the snapshot by UID.
 */
static void mailbox_snapshot(struct mailbox *box)
{
	struct mailbox_hash h;
	uint32_t old_uv = 0;
	const char *why;
	size_t unknown = 0;

	mailbox_hash_init(&h, box->count);
	for (size_t i = 0; i < box->count; i++) {
		struct mailbox_entry *e = &box->msgs[i];

		if (mailbox_hash_base(box, &h, mailbox_base(e), e->base_len,
				      i) != NULL)
			e->dropped = true;
	}
	if (mailbox_index_read(box, &h, &old_uv, &why) < 0) {
		for (size_t i = 0; i < box->count; i++)
			box->msgs[i].known = false;
		box->uidvalidity = mailbox_new_uidvalidity(box, old_uv);
		box->nextuid = 1;
		box->dirty = true;
		log_info("mailbox: index %s, rebuilt with UIDVALIDITY %" PRIu32,
			 why, box->uidvalidity);
	}
	XFREE(h.slots);

	for (size_t i = 0; i < box->count; i++) {
		struct mailbox_entry *e = &box->msgs[i];

		if (!e->known && !e->dropped) {
			mailbox_stat_new(box, e);
			if (!e->dropped)
				unknown++;
		}
	}
	mailbox_compact(box);
	if (unknown > 0) {
		box->dirty = true;
		mailbox_assign_uids(box, (uint64_t)box->nextuid + unknown >
					     UINT32_MAX);
	}
	if (box->count > 1)
		qsort(box->msgs, box->count, sizeof(*box->msgs),
		      mailbox_cmp_uid);
	mailbox_assign_uidls(box);
}

static DIR *mailbox_dir_open(struct mailbox *box, const char *name, char *error,
			     size_t error_size)
{
	int fd = openat(box->maildir_fd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir;

	if (fd < 0) {
		snprintf(error, error_size, "open %s/: %s", name,
			 strerror(errno));
		return NULL;
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		snprintf(error, error_size, "opendir %s/: %s", name,
			 strerror(errno));
		close(fd);
	}
	return dir;
}

/* "session S user U peer P since T (pid N on HOST)": every field that
 * came from outside is escaped, so the line stays one line (INV-S2). */
static void mailbox_holder_line(const struct mailbox_owner *owner, char *out,
				size_t out_size)
{
	static char host[128], rawhost[256];
	static bool host_known;
	char sid[64], user[256], peer[128];
	char since[32];
	struct tm tm;
	time_t now = time(NULL);
	const char *s = owner != NULL ? owner->session_id : NULL;
	const char *u = owner != NULL ? owner->user : NULL;
	const char *p = owner != NULL ? owner->peer : NULL;

	s = s != NULL ? s : "-";
	u = u != NULL ? u : "-";
	p = p != NULL ? p : "-";
	log_escape(sid, sizeof(sid), s, strlen(s));
	log_escape(user, sizeof(user), u, strlen(u));
	log_escape(peer, sizeof(peer), p, strlen(p));
	/* Looked up once per process: a system call on every login for a
	 * name that is only shown when a lock is contended. */
	if (!host_known) {
		if (gethostname(rawhost, sizeof(rawhost)) < 0)
			rawhost[0] = '\0';
		rawhost[sizeof(rawhost) - 1] = '\0';
		log_escape(host, sizeof(host), rawhost, strlen(rawhost));
		host_known = true;
	}
	gmtime_r(&now, &tm);
	strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(out, out_size,
		 "session %s user %s peer %s since %s (pid %ld on %s)", sid,
		 user, peer, since, (long)getpid(), host);
}

/* The OFD lock conflicts with every other open of the file, also within
 * this process, so two sessions of one worker exclude each other. */
static enum mailbox_status mailbox_lock(struct mailbox *box,
					const struct mailbox_owner *owner,
					char *error, size_t error_size)
{
	char line[MAILBOX_MAX_HOLDER];
	size_t len;

	box->lock_fd = openat(box->maildir_fd, MAILBOX_LOCK_FILE,
			      O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (box->lock_fd < 0) {
		snprintf(error, error_size, "open lock file: %s",
			 strerror(errno));
		return MAILBOX_TEMPFAIL;
	}
	if (mailbox_try_lock(box->lock_fd) < 0) {
		ssize_t r;

		if (errno != EAGAIN && errno != EACCES) {
			snprintf(error, error_size, "lock: %s",
				 strerror(errno));
			mailbox_unlock(box);
			return MAILBOX_TEMPFAIL;
		}
		r = pread(box->lock_fd, line, sizeof(line) - 1, 0);
		line[r > 0 ? r : 0] = '\0';
		len = strcspn(line, "\n");
		if (len == 0) {
			snprintf(error, error_size,
				 "locked by another session (holder unknown)");
		} else {
			/* Written escaped by us; anything else that slipped
			 * in is made harmless, not escaped twice. */
			for (size_t i = 0; i < len; i++) {
				unsigned char c = (unsigned char)line[i];

				if (c < 0x20 || c >= 0x7f)
					line[i] = '?';
			}
			line[len] = '\0';
			snprintf(error, error_size, "locked by %s", line);
		}
		mailbox_unlock(box);
		return MAILBOX_IN_USE;
	}
	mailbox_write_holder(box->lock_fd, owner);
	return MAILBOX_OK;
}

static void mailbox_write_holder(int fd, const struct mailbox_owner *owner)
{
	char line[MAILBOX_MAX_HOLDER];
	size_t len;

	mailbox_holder_line(owner, line, sizeof(line) - 1);
	len = strlen(line);
	line[len++] = '\n';
	/* Only for the IN-USE log line: a failure here is not an error.
	 * No ftruncate: the reader stops at the first newline, so what an
	 * earlier, longer holder line left after ours is never read. */
	if (pwrite(fd, line, len, 0) != (ssize_t)len)
		log_debug("mailbox: cannot write lock holder: %s",
			  strerror(errno));
}

/* Not holding the lock: nothing may act as its holder (mailbox_free()). */
static void mailbox_unlock(struct mailbox *box)
{
	close(box->lock_fd);
	box->lock_fd = -1;
}

/* Appends every usable name in dir to the entries. */
static int mailbox_scan_dir(struct mailbox *box, DIR *dir, const char *prefix,
			    char *error, size_t error_size)
{
	struct dirent *de;

	/* dir was opened just now (mailbox_open()): no rewind needed. */
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		const char *name = de->d_name;
		size_t len, base_len;
		struct mailbox_entry *e;

		if (name[0] == '.')
			continue;
		if (de->d_type != DT_UNKNOWN && de->d_type != DT_REG)
			continue;
		len = strlen(name);
		base_len = strcspn(name, ":");
		if (len > MAILDIR_MAX_NAME ||
		    !mailbox_valid_base(name, base_len)) {
			log_debug("mailbox: skipping unusable name in %s",
				  prefix);
			continue;
		}
		if (box->count >= POP3_MAX_MESSAGES) {
			snprintf(error, error_size, "more than %u messages",
				 POP3_MAX_MESSAGES);
			return -1;
		}
		if (box->count == box->alloc) {
			box->alloc = box->alloc == 0 ? 256 : box->alloc * 2;
			box->msgs = xreallocarray(box->msgs, box->alloc,
						  sizeof(*box->msgs));
		}
		e = &box->msgs[box->count++];
		memset(e, 0, sizeof(*e));
		e->m.name = mailbox_strdup2(box, prefix, 4, name, len);
		e->base_len = (uint32_t)base_len;
		errno = 0;
	}
	if (errno != 0) {
		snprintf(error, error_size, "readdir %s: %s", prefix,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Reads the index and marks every entry it knows. Returns 0, or -1 with
 * why_r when the index is missing or unusable (then the caller rebuilds;
 * *old_uidvalidity_r is the UIDVALIDITY it had, if its header was read).
 */
static int mailbox_index_read(struct mailbox *box, struct mailbox_hash *h,
			      uint32_t *old_uidvalidity_r, const char **why_r)
{
	struct stat st;
	char *data;
	size_t len = 0, size;
	int fd, ret;

	fd = openat(box->maildir_fd, MAILBOX_INDEX_FILE,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*why_r = errno == ENOENT ? "missing" : "unreadable";
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size >
		(uint64_t)(POP3_MAX_MESSAGES + 1) * INDEX_MAX_LINE) {
		close(fd);
		*why_r = "unreadable";
		return -1;
	}
	size = (size_t)st.st_size + 1;
	data = xmalloc(size + 1);
	for (;;) {
		ssize_t r = read(fd, data + len, size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			free(data);
			*why_r = "unreadable";
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		/* The whole file as fstat saw it: the index is replaced by
		 * rename, never written in place, so this inode does not
		 * change and the read that would return 0 is not needed. */
		if (len == (size_t)st.st_size)
			break;
		/* We hold the lock, so it should not grow; if it did, it
		 * is not ours. */
		if (len == size) {
			close(fd);
			free(data);
			*why_r = "changed while read";
			return -1;
		}
	}
	close(fd);
	data[len] = '\0';
	ret = mailbox_index_parse(box, h, data, len, old_uidvalidity_r, why_r);
	free(data);
	return ret;
}

static int mailbox_index_parse(struct mailbox *box, struct mailbox_hash *h,
			       char *data, size_t len,
			       uint32_t *old_uidvalidity_r, const char **why_r)
{
	char *line = data, *end = data + len, *nl;
	const char *p;
	uint32_t uv, next, prev_uid = 0;

	*why_r = "malformed";
	nl = memchr(line, '\n', len);
	if (nl == NULL || (size_t)(nl - line) > INDEX_MAX_LINE)
		return -1;
	*nl = '\0';
	p = line;
	if (strncmp(p, MAILBOX_INDEX_MAGIC, strlen(MAILBOX_INDEX_MAGIC)) != 0)
		return -1;
	p += strlen(MAILBOX_INDEX_MAGIC);
	if (parse_uint32(&p, UINT32_MAX, &uv) < 0 || uv == 0 ||
	    parse_space(&p) < 0 || parse_uint32(&p, UINT32_MAX, &next) < 0 ||
	    next == 0 || parse_end(&p) < 0)
		return -1;
	*old_uidvalidity_r = uv;
	box->uidvalidity = uv;
	box->nextuid = next;
	for (line = nl + 1; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		/* Every line ends with LF: we write the index atomically,
		 * so a missing one means someone else wrote it. */
		if (nl == NULL || (size_t)(nl - line) > INDEX_MAX_LINE)
			return -1;
		*nl = '\0';
		if (mailbox_index_line(box, h, line, &prev_uid) < 0)
			return -1;
	}
	return 0;
}

/* "UID WIRESIZE MTIME RETRIEVED BASE"; UIDs strictly increase. */
static int mailbox_index_line(struct mailbox *box, struct mailbox_hash *h,
			      char *line, uint32_t *prev_uid)
{
	const char *p = line;
	uint64_t size, mtime, retrieved;
	uint32_t uid;
	size_t base_len;
	struct mailbox_entry *e;

	if (parse_uint32(&p, UINT32_MAX, &uid) < 0 || uid <= *prev_uid ||
	    uid >= box->nextuid || parse_space(&p) < 0 ||
	    parse_uint64(&p, UINT64_MAX, &size) < 0 || parse_space(&p) < 0 ||
	    parse_uint64(&p, INT64_MAX, &mtime) < 0 || parse_space(&p) < 0 ||
	    parse_uint64(&p, INT64_MAX, &retrieved) < 0 || parse_space(&p) < 0)
		return -1;
	base_len = strlen(p);
	if (!mailbox_valid_base(p, base_len))
		return -1;
	*prev_uid = uid;
	e = mailbox_hash_base(box, h, p, base_len, SIZE_MAX);
	if (e == NULL) {
		/* Removed by someone else since: forget it. */
		box->dirty = true;
		return 0;
	}
	if (e->known)
		return -1;
	e->known = true;
	e->m.uid = uid;
	e->m.size = size;
	e->m.delivered = (time_t)mtime;
	e->m.retrieved = (time_t)retrieved;
	return 0;
}

/* RFC 3501 section 2.3.1.1: a new UIDVALIDITY must be greater than any
 * earlier one, so the last one is also kept outside the index. */
static uint32_t mailbox_new_uidvalidity(struct mailbox *box, uint32_t old)
{
	char buf[32];
	const char *p = buf;
	uint32_t last = 0, uv;
	ssize_t r = -1;
	int fd;
	int len;

	fd = openat(box->maildir_fd, MAILBOX_UIDVALIDITY_FILE,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (r > 0) {
		buf[r] = '\0';
		if (parse_uint32(&p, UINT32_MAX, &last) < 0)
			last = 0;
	}
	if (old > last)
		last = old;
	uv = (uint32_t)time(NULL);
	if (uv <= last)
		uv = last + 1;
	if (uv == 0)
		uv = 1;
	fd =
	    openat(box->maildir_fd, MAILBOX_UIDVALIDITY_FILE,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	len = snprintf(buf, sizeof(buf), "%" PRIu32 "\n", uv);
	if (fd < 0 || write(fd, buf, (size_t)len) != len)
		log_warn("mailbox: cannot record UIDVALIDITY %" PRIu32, uv);
	if (fd >= 0)
		close(fd);
	return uv;
}

/* Size and delivery time of a file the index does not know: the only
 * per-message system calls an open makes. Drops the entry if the file
 * is gone or unusable. */
static void mailbox_stat_new(struct mailbox *box, struct mailbox_entry *e)
{
	int dfd = dirfd(mailbox_dir(box, e->m.name));
	const char *base = mailbox_base(e);
	struct stat st;
	uint64_t size;

	if (maildir_name_wire_size(base, &size)) {
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			goto drop;
	} else {
		int fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		bool ok = fd >= 0 && fstat(fd, &st) == 0 &&
			  S_ISREG(st.st_mode) &&
			  msg_wire_size_fd(fd, &size) == 0;
		int saved = errno;

		if (fd >= 0)
			close(fd);
		errno = saved;
		if (!ok)
			goto drop;
	}
	e->m.size = size;
	e->m.delivered = st.st_mtime;
	e->mtime_ns = (uint32_t)st.st_mtim.tv_nsec;
	e->m.retrieved = 0;
	return;
drop:
	if (errno != ENOENT)
		/* Not served now, tried again at the next open. */
		log_warn("mailbox: skipping %s: %s", e->m.name,
			 strerror(errno));
	e->dropped = true;
}

static void mailbox_compact(struct mailbox *box)
{
	size_t n = 0;

	for (size_t i = 0; i < box->count; i++) {
		if (!box->msgs[i].dropped)
			box->msgs[n++] = box->msgs[i];
	}
	box->count = n;
}

/*
 * New messages get UIDs from NEXTUID in delivery order (INV-I1). If
 * NEXTUID would overflow, every message is renumbered under a new
 * UIDVALIDITY, which RFC 3501 allows and nothing else can avoid.
 */
static void mailbox_assign_uids(struct mailbox *box, bool renumber)
{
	struct mailbox_entry **order =
	    xreallocarray(NULL, box->count + 1, sizeof(*order));
	size_t n = 0;

	if (renumber) {
		box->uidvalidity =
		    mailbox_new_uidvalidity(box, box->uidvalidity);
		box->nextuid = 1;
		log_info("mailbox: UIDs exhausted, renumbered with "
			 "UIDVALIDITY %" PRIu32,
			 box->uidvalidity);
	}
	for (size_t i = 0; i < box->count; i++) {
		if (renumber || !box->msgs[i].known)
			order[n++] = &box->msgs[i];
	}
	qsort(order, n, sizeof(*order), mailbox_cmp_delivery);
	for (size_t i = 0; i < n; i++)
		order[i]->m.uid = box->nextuid++;
	free(order);
}

/*
 * UIDL: the unique part of the base name when RFC 1939 allows it as is,
 * else a hash of the whole base name; both survive a lost index (INV-P2).
 * A unique part already used by a lower UID also falls back to the hash.
 */
static void mailbox_assign_uidls(struct mailbox *box)
{
	struct mailbox_hash h;

	mailbox_hash_init(&h, box->count);
	for (size_t i = 0; i < box->count; i++) {
		struct mailbox_entry *e = &box->msgs[i];
		const char *base = mailbox_base(e);
		size_t ulen = strcspn(base, ",:");
		bool plain = ulen >= 1 && ulen <= POP3_MAX_UIDL;
		uint32_t hv = 0;
		size_t j;

		for (size_t k = 0; plain && k < ulen; k++)
			plain = base[k] > 0x20 && base[k] < 0x7f;
		if (plain) {
			hv = mailbox_hash_str(base, ulen);
			for (j = hv & h.mask; h.slots[j].idx != 0;
			     j = (j + 1) & h.mask) {
				const char *o =
				    box->msgs[h.slots[j].idx - 1].m.uidl;

				if (h.slots[j].hash == hv &&
				    strncmp(o, base, ulen) == 0 &&
				    o[ulen] == '\0') {
					plain = false;
					break;
				}
			}
		}
		if (plain) {
			e->m.uidl = mailbox_strdup2(box, base, ulen, "", 0);
		} else {
			unsigned char md[EVP_MAX_MD_SIZE];
			char hex[MAILBOX_HASH_UIDL + 1];
			static const char digits[] = "0123456789abcdef";

			if (EVP_Digest(base, e->base_len, md, NULL,
				       EVP_sha256(), NULL) != 1)
				fatal("mailbox: SHA-256 failed");
			for (size_t k = 0; k < MAILBOX_HASH_UIDL / 2; k++) {
				hex[2 * k] = digits[md[k] >> 4];
				hex[2 * k + 1] = digits[md[k] & 15];
			}
			e->m.uidl =
			    mailbox_strdup2(box, hex, MAILBOX_HASH_UIDL, "", 0);
			hv = mailbox_hash_str(hex, MAILBOX_HASH_UIDL);
		}
		for (j = hv & h.mask; h.slots[j].idx != 0; j = (j + 1) & h.mask)
			;
		h.slots[j].idx = (uint32_t)i + 1;
		h.slots[j].hash = hv;
	}
	XFREE(h.slots);
}

static int mailbox_cmp_uid(const void *a, const void *b)
{
	const struct mailbox_entry *x = a, *y = b;

	return x->m.uid < y->m.uid ? -1 : x->m.uid > y->m.uid;
}

static int mailbox_cmp_delivery(const void *a, const void *b)
{
	const struct mailbox_entry *x = *(const struct mailbox_entry *const *)a;
	const struct mailbox_entry *y = *(const struct mailbox_entry *const *)b;

	if (x->m.delivered != y->m.delivered)
		return x->m.delivered < y->m.delivered ? -1 : 1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return mailbox_cmp_names(mailbox_base(x), mailbox_base(y));
}

/* Digit runs compare as numbers, so "1.M99999P1" sorts before
 * "1.M100000P1": delivery order within one second. */
static int mailbox_cmp_names(const char *a, const char *b)
{
	const char *a0 = a, *b0 = b;

	while (*a != '\0' && *b != '\0') {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			size_t la, lb;
			int c;

			while (*a == '0')
				a++;
			while (*b == '0')
				b++;
			la = strspn(a, "0123456789");
			lb = strspn(b, "0123456789");
			if (la != lb)
				return la < lb ? -1 : 1;
			c = memcmp(a, b, la);
			if (c != 0)
				return c;
			a += la;
			b += lb;
		} else if (*a != *b) {
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		} else {
			a++;
			b++;
		}
	}
	if (*a != *b)
		return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
	return strcmp(a0, b0);
}

/*
 * Writes the index atomically: a tmp file, fsync, rename, fsync of the
 * Maildir, so that a crash leaves the old index or the new one.
 */
static int mailbox_index_write(struct mailbox *box)
{
	char *buf = xmalloc(MAILDIR_IO_BUFFER);
	size_t len;
	bool ok = true;
	int fd;

	fd =
	    openat(box->maildir_fd, MAILBOX_INDEX_TMP,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn("mailbox: cannot write index: %s", strerror(errno));
		free(buf);
		return -1;
	}
	len = (size_t)snprintf(buf, MAILDIR_IO_BUFFER,
			       MAILBOX_INDEX_MAGIC "%" PRIu32 " %" PRIu32 "\n",
			       box->uidvalidity, box->nextuid);
	for (size_t i = 0; ok && i < box->count; i++) {
		const struct mailbox_entry *e = &box->msgs[i];
		long long delivered = e->m.delivered > 0 ? e->m.delivered : 0;
		long long retrieved = e->m.retrieved > 0 ? e->m.retrieved : 0;

		if (e->expunged)
			continue;
		if (MAILDIR_IO_BUFFER - len < INDEX_MAX_LINE + 2) {
			ok = mailbox_write_all(fd, buf, len);
			len = 0;
		}
		len +=
		    (size_t)snprintf(buf + len, MAILDIR_IO_BUFFER - len,
				     "%" PRIu32 " %" PRIu64 " %lld %lld %.*s\n",
				     e->m.uid, e->m.size, delivered, retrieved,
				     (int)e->base_len, mailbox_base(e));
	}
	if (ok)
		ok = mailbox_write_all(fd, buf, len);
	free(buf);
	if (!ok || fsync(fd) < 0) {
		log_warn("mailbox: cannot write index: %s", strerror(errno));
		close(fd);
		unlinkat(box->maildir_fd, MAILBOX_INDEX_TMP, 0);
		return -1;
	}
	if (close(fd) < 0 ||
	    renameat(box->maildir_fd, MAILBOX_INDEX_TMP, box->maildir_fd,
		     MAILBOX_INDEX_FILE) < 0 ||
	    fsync(box->maildir_fd) < 0) {
		log_warn("mailbox: cannot write index: %s", strerror(errno));
		unlinkat(box->maildir_fd, MAILBOX_INDEX_TMP, 0);
		return -1;
	}
	return 0;
}

static bool mailbox_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		buf += w;
		len -= (size_t)w;
	}
	return true;
}

size_t mailbox_count(const struct mailbox *box)
{
	return box->count;
}

const struct mailbox_msg *mailbox_msg(const struct mailbox *box, size_t i)
{
	return i < box->count ? &box->msgs[i].m : NULL;
}

uint32_t mailbox_uidvalidity(const struct mailbox *box)
{
	return box->uidvalidity;
}

/*
 * Finds the current name of a message another program renamed (flags
 * added, or new/ -> cur/) since the snapshot. A scan of both folders:
 * this only happens when an open or unlink missed. A file only moves
 * forward (new/ -> cur/ -> the hold folder), so scanning in that order
 * cannot miss one that moves during the scan; a second round covers a
 * rename within cur/ that readdir may not show while it happens.
 */
static int mailbox_relocate(struct mailbox *box, struct mailbox_entry *e)
{
	for (int round = 0; round < 2; round++) {
		if (mailbox_relocate_in(box, e, box->new_dir, "new/") == 0 ||
		    mailbox_relocate_in(box, e, box->cur_dir, "cur/") == 0)
			return 0;
	}
	errno = ENOENT; /* the callers go on to the hold folder, or count
			 * the message as removed */
	return -1;
}

static int mailbox_relocate_in(struct mailbox *box, struct mailbox_entry *e,
			       DIR *dir, const char *prefix)
{
	const char *base = mailbox_base(e);
	struct dirent *de;

	rewinddir(dir);
	while ((de = readdir(dir)) != NULL) {
		const char *name = de->d_name;

		if (strncmp(name, base, e->base_len) != 0 ||
		    (name[e->base_len] != ':' && name[e->base_len] != '\0'))
			continue;
		e->m.name = mailbox_strdup2(box, prefix, 4, name, strlen(name));
		return 0;
	}
	return -1;
}

int mailbox_msg_open(struct mailbox *box, size_t i, char *error,
		     size_t error_size)
{
	struct mailbox_entry *e;
	struct stat st;
	int fd;

	if (i >= box->count) {
		snprintf(error, error_size, "no message %zu", i + 1);
		return -1;
	}
	e = &box->msgs[i];
	if (e->expunged) {
		errno = ENOENT;
		goto fail;
	}
	fd = openat(dirfd(mailbox_dir(box, e->m.name)), mailbox_base(e),
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && mailbox_relocate(box, e) == 0)
		fd = openat(dirfd(mailbox_dir(box, e->m.name)), mailbox_base(e),
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	/* IMAP expunged it after our snapshot: it waits in the hold folder
	 * until this session ends (INV-P2). */
	if (fd < 0 && errno == ENOENT)
		fd = maildir_hold_find(box->maildir_fd, mailbox_base(e),
				       e->base_len);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		goto fail;
	}
	return fd;
fail:
	/* INV-P2: never another message's bytes, only an error. */
	if (errno == ENOENT)
		snprintf(error, error_size, "message UID %" PRIu32 " is gone",
			 e->m.uid);
	else
		snprintf(error, error_size, "open message UID %" PRIu32 ": %s",
			 e->m.uid, strerror(errno));
	return -1;
}

void mailbox_mark_retrieved(struct mailbox *box, size_t i, time_t now)
{
	if (i < box->count && box->msgs[i].m.retrieved == 0) {
		box->msgs[i].m.retrieved = now > 0 ? now : 1;
		box->dirty = true;
	}
}

size_t mailbox_expunge(struct mailbox *box, const bool *deleted,
		       enum mailbox_expunger by, char *error, size_t error_size)
{
	size_t failed = 0, removed_new = 0, removed_cur = 0;

	/* INV-P1: a POP3 session removes messages only in UPDATE; the
	 * retention pass is the only other caller. Both hold the lock, so
	 * no other session's snapshot changes under it (INV-P2). */
	POSTD_ASSERT(by == MAILBOX_EXPUNGE_POP3_UPDATE ||
		     by == MAILBOX_EXPUNGE_RETENTION);
	POSTD_ASSERT(box->lock_fd >= 0);
	if (error_size > 0)
		error[0] = '\0';
	for (size_t i = 0; i < box->count; i++) {
		struct mailbox_entry *e = &box->msgs[i];
		int r;

		if (!deleted[i] || e->expunged)
			continue;
		r = unlinkat(dirfd(mailbox_dir(box, e->m.name)),
			     mailbox_base(e), 0);
		if (r < 0 && errno == ENOENT && mailbox_relocate(box, e) == 0)
			r = unlinkat(dirfd(mailbox_dir(box, e->m.name)),
				     mailbox_base(e), 0);
		if (r < 0 && errno != ENOENT) {
			if (failed++ == 0)
				snprintf(error, error_size,
					 "remove message UID %" PRIu32 ": %s",
					 e->m.uid, strerror(errno));
			continue;
		}
		e->expunged = true;
		box->dirty = true;
		if (e->m.name[0] == 'n')
			removed_new++;
		else
			removed_cur++;
	}
	/* One fsync per folder, not one per message. A failed fsync means
	 * the removals may come back after a crash: report them. */
	if (removed_new > 0 && fsync(dirfd(box->new_dir)) < 0) {
		if (failed == 0)
			snprintf(error, error_size, "fsync new/: %s",
				 strerror(errno));
		failed += removed_new;
	}
	if (removed_cur > 0 && fsync(dirfd(box->cur_dir)) < 0) {
		if (failed == 0)
			snprintf(error, error_size, "fsync cur/: %s",
				 strerror(errno));
		failed += removed_cur;
	}
	if (box->dirty && mailbox_index_write(box) == 0)
		box->dirty = false;
	return failed;
}

void mailbox_close(struct mailbox **box)
{
	if (*box == NULL)
		return;
	if ((*box)->dirty)
		mailbox_index_write(*box);
	mailbox_free(box);
}

/* Whole-file write lock without waiting, as mailbox_lock() takes it. */
static int mailbox_try_lock(int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	return fcntl(fd, F_OFD_SETLK, &fl);
}

void mailbox_hold_release(int maildir_fd)
{
	int fd = openat(maildir_fd, MAILBOX_LOCK_FILE,
			O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	/* Taken: no session lists anything held, and none can start until
	 * the folder is empty. Not taken: the holder empties it. */
	if (mailbox_try_lock(fd) == 0) {
		static const struct mailbox_owner imap = {"imap-expunge", "-",
							  "-"};

		/* A POP3 login in these few milliseconds is told IN-USE;
		 * the log then names this, not a stale holder. */
		mailbox_write_holder(fd, &imap);
		maildir_hold_purge(maildir_fd);
	}
	close(fd);
}

/* Closing the lock descriptor releases the OFD lock; what IMAP held for
 * this session goes first, while the lock still keeps others out. */
static void mailbox_free(struct mailbox **boxp)
{
	struct mailbox *box = *boxp;

	if (box->lock_fd >= 0)
		maildir_hold_purge(box->maildir_fd);

	if (box->new_dir != NULL)
		closedir(box->new_dir);
	if (box->cur_dir != NULL)
		closedir(box->cur_dir);
	if (box->lock_fd >= 0)
		close(box->lock_fd);
	while (box->arena != NULL) {
		struct mailbox_arena *next = box->arena->next;

		free(box->arena);
		box->arena = next;
	}
	free(box->msgs);
	XFREE(*boxp);
}
