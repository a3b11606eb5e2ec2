/*
 * The IMAP index of one Maildir folder (mail_index.h), designed in
 * doc/internals/imap-index.md.
 *
 * One file holds it: postd-imap.log, an append-only log of text records
 * that starts with a header line. A view reads it once, remembers the
 * offset it reached and later reads only what others appended. When the
 * log holds far more records than live messages it is compacted: the
 * current state is written as a new log (tmp + fsync + rename), and every
 * view notices the new inode and rereads it. Writers append under an OFD
 * lock on postd-imap.lock held only for local file work.
 *
 * The Maildir stays the truth for what exists and for the system flags;
 * when new/ or cur/ changed (their mtime differs from the one recorded
 * with the last scan) the writer rescans them under the lock and logs
 * what it found: new files get UIDs in delivery order, missing files are
 * expunged, renamed flags become flag changes.
 *
 * Every record is parsed the same way whether it comes from the file or
 * was just written, so what a view holds is always what the log says.
 */
#include "storage/mail_index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/mailbox.h"
#include "storage/maildir.h"
#include "storage/msg_wire.h"

#define IDX_LOG "postd-imap.log"
#define IDX_LOG_TMP "postd-imap.log.tmp"
#define IDX_LOCK "postd-imap.lock"
#define IDX_CACHE "postd-imap.cache"
#define IDX_CACHE_TMP "postd-imap.cache.tmp"
/* The last UIDVALIDITY handed out, so that a rebuild after the log was
 * lost still picks a larger one. */
#define IDX_UIDV_FILE "postd-imap.uidvalidity"
/* The last UIDVALIDITY handed out to any folder of the mailbox root, so
 * that a folder deleted and created again within one second (its own
 * file gone with it) still gets a new one (RFC 9051 2.3.1.1). */
#define IDX_UIDV_ROOT_FILE "postd-imap.uidvalidity-root"
/* "UIDVALIDITY NEXTUID" after every commit that handed out UIDs: a log
 * cut before its end (not a crash's torn tail: records a client may have
 * seen are gone) reads as valid, and only this tells that its NEXTUID went
 * back, so that the folder is rebuilt under a new UIDVALIDITY rather than
 * giving seen UIDs to other messages (INV-I1). */
#define IDX_UIDNEXT_FILE "postd-imap.uidnext"
/* A Maildir++ subfolder holds this file; the root (INBOX) does not. */
#define IDX_SUBFOLDER_MARK "maildirfolder"
#define IDX_MAGIC "postd-imap 1 "
#define IDX_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
#define IDX_READ_CHUNK (256 * 1024)
/* The part of a Maildir name after ':' ("2,FS"). */
#define IDX_MAX_INFO 64
#define IDX_SYSTEM_FLAGS                                                       \
	(MAIL_SEEN | MAIL_ANSWERED | MAIL_FLAGGED | MAIL_DELETED | MAIL_DRAFT)
/* Compact when the log has more records than this many per live message
 * plus the slack (so a small folder is not rewritten at every change). */
#define IDX_COMPACT_FACTOR 2
#define IDX_COMPACT_SLACK 1000
/* Internal dates and sizes beyond these are garbage. */
#define IDX_MAX_DATE ((uint64_t)1 << 40)
#define IDX_MAX_SIZE ((uint64_t)1 << 42)
/* Which directories a scan reads. */
#define SCAN_NEW 1u
#define SCAN_CUR 2u

/* Results of reading the log. */
enum idx_read {
	IDX_READ_OK = 0,
	IDX_READ_IO = -1,	/* errno */
	IDX_READ_CORRUPT = -2,	/* rebuild from the Maildir */
	IDX_READ_NEW_UIDV = -3, /* someone rebuilt it meanwhile */
	IDX_READ_LOST = -4,	/* no log file */
};

struct mail_entry {
	struct mail_msg m;
	char *name; /* the file name in new/ or cur/ */
	uint32_t base_len;
	bool in_cur;
	bool changed;	/* flags changed by someone else, not yet told */
	bool mentioned; /* named while a whole log was reread */
	bool seen;	/* found by the running scan */
	bool doomed;	/* expunged by this view's own command */
};

struct cache_slot {
	uint32_t uid; /* 0: empty */
	uint32_t len;
	uint64_t off;
};

struct mail_view {
	int folder_fd;
	int new_fd, cur_fd;
	bool readonly;
	int log_fd;
	dev_t log_dev;
	ino_t log_ino;
	uint64_t log_offset;  /* bytes of complete records read */
	uint64_t log_records; /* records in the current file */
	bool log_partial;     /* an unterminated record follows */
	bool header_seen;
	/* Why the log was not usable, for the rebuild's log line. */
	char log_trouble[96];
	uint32_t uidnext_marked; /* NEXTUID in IDX_UIDNEXT_FILE, as known */
	uint32_t file_last_uid;	 /* append records must increase */
	uint32_t uidvalidity, nextuid, recent_uid;
	uint64_t highest_modseq;
	struct timespec scan_new, scan_cur; /* directory mtimes scanned */
	char *keywords[MAIL_MAX_KEYWORDS];
	size_t keyword_count;
	struct mail_entry *e; /* sorted by UID */
	size_t n, alloc;
	size_t count; /* announced to the client: e[0..count) */
	int lock_fd;
	bool own;	/* applying records this view wrote */
	bool dirty;	/* an entry changed, appeared or was expunged */
	bool reloading; /* applying a whole file */
	bool uids_void; /* rebuilt under a new UIDVALIDITY since opened */
	int cache_fd;
	dev_t cache_dev;
	ino_t cache_ino;
	uint64_t cache_off;
	size_t cache_records; /* records in the file, dead ones too */
	struct cache_slot *cslots;
	size_t cmask, cused;
};

/* A growing text buffer for records. */
struct lines {
	char *s;
	size_t len, cap;
};

struct scan_file {
	char *name;
	uint32_t base_len;
	bool in_cur;
	time_t mtime;
	long mtime_ns;
};

struct scan {
	struct scan_file *f;
	size_t n, alloc;
};

/* Open addressing over (name, length) keys; slots hold index + 1. */
struct hkey {
	const char *s;
	uint32_t len;
};

struct idx_hash {
	uint32_t *slots;
	size_t mask;
	const struct hkey *keys;
};

struct mail_append {
	int folder_fd;
	struct maildir_delivery *d;
};

static void idx_err(char *error, size_t error_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum mail_status idx_errno(char *error, size_t error_size,
				  const char *what);
static void lines_add(struct lines *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static uint32_t idx_hash_str(const char *s, size_t len);
static void idx_hash_build(struct idx_hash *h, const struct hkey *keys,
			   size_t count);
static ssize_t idx_hash_find(const struct idx_hash *h, const char *s,
			     size_t len);
static bool idx_valid_base(const char *s, size_t len);
static bool idx_valid_info(const char *s);
static bool idx_valid_keyword(const char *s);
static uint32_t idx_flags_from_info(const char *info);
static void idx_info_with_flags(const char *old_info, uint32_t flags, char *out,
				size_t out_size);
static const char *idx_info(const struct mail_entry *e);
static char *idx_make_name(const char *base, size_t base_len, const char *info);
static ssize_t idx_find(const struct mail_view *v, uint32_t uid, size_t lim);
static int idx_field(const char **p, uint64_t max, uint64_t *v);
static int idx_apply_header(struct mail_view *v, const char *line);
static int idx_apply_append(struct mail_view *v, const char *p);
static int idx_apply_flags(struct mail_view *v, const char *p);
static int idx_apply_expunge(struct mail_view *v, const char *p);
static int idx_apply_keyword(struct mail_view *v, const char *p);
static int idx_apply_recent(struct mail_view *v, const char *p);
static int idx_apply_scan(struct mail_view *v, const char *p);
static int idx_apply_line(struct mail_view *v, const char *line);
static int idx_feed(struct mail_view *v, char *buf, size_t len, size_t *used);
static int idx_log_open(struct mail_view *v);
static int idx_tail(struct mail_view *v);
static int idx_reload(struct mail_view *v);
static int idx_refresh(struct mail_view *v);
static int idx_lock(struct mail_view *v);
static void idx_unlock(struct mail_view *v);
static void idx_reset(struct mail_view *v);
static enum mail_status idx_begin(struct mail_view *v, char *error,
				  size_t error_size);
static enum mail_status idx_write(struct mail_view *v, const struct lines *l,
				  bool own, char *error, size_t error_size);
static enum mail_status idx_commit(struct mail_view *v, char *error,
				   size_t error_size);
static enum mail_status idx_expunge_doomed(struct mail_view *v, struct lines *l,
					   const struct mail_sync_cb *cb,
					   void *ctx, char *error,
					   size_t error_size);
static int idx_compact(struct mail_view *v);
static void idx_maybe_compact(struct mail_view *v);
static enum mail_status idx_rebuild(struct mail_view *v, char *error,
				    size_t error_size);
static void idx_log_set_aside(struct mail_view *v);
static void idx_uidnext_write(struct mail_view *v);
static int idx_uidnext_check(struct mail_view *v);
static void idx_log_trouble(struct mail_view *v, int err);
static int idx_log_open_result(int err);
static uint32_t idx_uidv_read(int folder_fd);
static void idx_uidv_write(int folder_fd, uint32_t uidv);
static uint32_t idx_uidv_file_read(int dir_fd, const char *file);
static void idx_uidv_file_write(int dir_fd, const char *file, uint32_t uidv);
static int idx_root_open(int folder_fd);
static void scan_free(struct scan *s);
static int scan_dir(int dir_fd, bool in_cur, struct scan *s,
		    struct timespec *mtime_r);
static unsigned scan_which(struct mail_view *v);
static int scan_both(struct mail_view *v, unsigned which, struct scan *s,
		     struct timespec *mt_new, struct timespec *mt_cur);
static int scan_cmp_base(const void *a, const void *b);
static int scan_cmp_delivery(const void *a, const void *b);
static int idx_scan(struct mail_view *v, struct lines *out);
static time_t idx_date(time_t t);
static void idx_scan_new(struct mail_view *v, struct scan_file **fresh,
			 size_t nfresh, struct lines *out);
static int idx_relocate(struct mail_view *v, struct mail_entry *e);
static bool idx_dirs_changed(struct mail_view *v);
static enum mail_status idx_open(int folder_fd, bool readonly,
				 struct mail_view **view_r, char *error,
				 size_t error_size);
static void idx_announce(struct mail_view *v, bool allow_expunge,
			 const struct mail_sync_cb *cb, void *ctx);
static enum mail_status idx_expunge(struct mail_view *v, const uint32_t *uids,
				    size_t uid_count, bool need_deleted,
				    const struct mail_sync_cb *cb, void *ctx,
				    char *error, size_t error_size);
static void idx_mark_unclaimed_recent(struct mail_view *v);
static enum mail_status idx_remove_files(struct mail_view *v, struct lines *out,
					 char *error, size_t error_size);
static int idx_remove_file(struct mail_view *v, const struct mail_entry *e,
			   int hold_fd);
static bool idx_is_inbox(const struct mail_view *v);
static void idx_drop_doomed(struct mail_view *v, const struct mail_sync_cb *cb,
			    void *ctx);
static int idx_keyword_find(const struct mail_view *v, const char *name);
static int idx_copy_file(int src_dir, const char *src, int tmp_fd, int dst_dir,
			 const char *dst, time_t mtime);
static void cache_reset_map(struct mail_view *v);
static void cache_map_put(struct mail_view *v, uint32_t uid, uint64_t off,
			  uint32_t len);
static const struct cache_slot *cache_map_get(const struct mail_view *v,
					      uint32_t uid);
static int cache_open(struct mail_view *v, bool create);
static void cache_tail(struct mail_view *v);
static uint32_t cache_sum(const void *data, size_t len);
static int idx_parse_state(struct mail_view *v, const char **p, uint32_t *flags,
			   uint64_t *kw, bool *in_cur, char *info,
			   size_t info_size);
static void idx_set_state(struct mail_view *v, struct mail_entry *e,
			  uint64_t modseq, uint32_t flags, uint64_t kw,
			  bool in_cur, const char *info);
static int idx_cmp_uid(const void *a, const void *b);
static int idx_copy_name(const struct mail_entry *e, char *base,
			 size_t base_size, char *name, size_t name_size);
static enum mail_status idx_copy_into(struct mail_view *v, const size_t *seq0s,
				      size_t n, struct mail_view *d,
				      uint32_t *dest_uids_r, char *error,
				      size_t error_size);
static enum mail_status idx_append_record(struct mail_view *v, const char *name,
					  bool in_cur, uint32_t flags,
					  const char *const *keywords,
					  size_t keyword_count, time_t date,
					  uint32_t *uid_r, char *error,
					  size_t error_size);
static void cache_le32(unsigned char *p, uint32_t v);
static uint32_t cache_get32(const unsigned char *p);

/* ---- small helpers ---- */

static void idx_err(char *error, size_t error_size, const char *fmt, ...)
{
	va_list ap;

	if (error == NULL || error_size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(error, error_size, fmt, ap);
	va_end(ap);
}

static enum mail_status idx_errno(char *error, size_t error_size,
				  const char *what)
{
	int err = errno;
	char sbuf[128];
	const char *s = strerror_r(err, sbuf, sizeof(sbuf));

	idx_err(error, error_size, "%s: %s", what, s);
	return err == ENOSPC || err == EDQUOT ? MAIL_NOSPACE : MAIL_TEMPFAIL;
}

static void lines_add(struct lines *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = l->cap - l->len;

		va_start(ap, fmt);
		n = vsnprintf(l->s == NULL ? NULL : l->s + l->len, room, fmt,
			      ap);
		va_end(ap);
		if (n < 0)
			fatal("mail_index: bad record format");
		if ((size_t)n < room)
			break;
		l->cap = l->cap * 2 + (size_t)n + 256;
		l->s = xreallocarray(l->s, l->cap, 1);
	}
	l->len += (size_t)n;
}

static uint32_t idx_hash_str(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static void idx_hash_build(struct idx_hash *h, const struct hkey *keys,
			   size_t count)
{
	size_t size = 16;

	while (size < count * 2)
		size *= 2;
	h->slots = xcalloc(size, sizeof(*h->slots));
	h->mask = size - 1;
	h->keys = keys;
	for (size_t i = 0; i < count; i++) {
		size_t j = idx_hash_str(keys[i].s, keys[i].len) & h->mask;

		if (keys[i].s == NULL)
			continue;
		while (h->slots[j] != 0)
			j = (j + 1) & h->mask;
		h->slots[j] = (uint32_t)i + 1;
	}
}

static ssize_t idx_hash_find(const struct idx_hash *h, const char *s,
			     size_t len)
{
	size_t j = idx_hash_str(s, len) & h->mask;

	while (h->slots[j] != 0) {
		const struct hkey *k = &h->keys[h->slots[j] - 1];

		if (k->len == len && memcmp(k->s, s, len) == 0)
			return (ssize_t)h->slots[j] - 1;
		j = (j + 1) & h->mask;
	}
	return -1;
}

/* A base name we can keep: no '/', ':' or control bytes. */
static bool idx_valid_base(const char *s, size_t len)
{
	if (len == 0 || len > MAILDIR_MAX_NAME || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '/' || c == ':')
			return false;
	}
	return true;
}

/* The info part after ':': printable, no space or '/'. */
static bool idx_valid_info(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > IDX_MAX_INFO)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '/')
			return false;
	}
	return true;
}

/* An IMAP atom (RFC 9051 flag-keyword), not a system flag. */
static bool idx_valid_keyword(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MAIL_MAX_KEYWORD_LEN || s[0] == '\\')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* System flags from a Maildir info "2,DFRST" (other letters ignored). */
static uint32_t idx_flags_from_info(const char *info)
{
	uint32_t flags = 0;

	if (info == NULL || info[0] != '2' || info[1] != ',')
		return 0;
	for (const char *p = info + 2; *p != '\0'; p++) {
		switch (*p) {
		case 'D':
			flags |= MAIL_DRAFT;
			break;
		case 'F':
			flags |= MAIL_FLAGGED;
			break;
		case 'R':
			flags |= MAIL_ANSWERED;
			break;
		case 'S':
			flags |= MAIL_SEEN;
			break;
		case 'T':
			flags |= MAIL_DELETED;
			break;
		default:
			break;
		}
	}
	return flags;
}

/* "2," + the letters of flags and the other letters old_info had
 * (Dovecot's keyword letters, 'P'), in ASCII order as Maildir asks. */
static void idx_info_with_flags(const char *old_info, uint32_t flags, char *out,
				size_t out_size)
{
	bool letter[128] = {false};
	size_t n = 2;

	if (old_info != NULL && old_info[0] == '2' && old_info[1] == ',') {
		for (const char *p = old_info + 2; *p != '\0'; p++) {
			if ((unsigned char)*p < 128 &&
			    strchr("DFRST", *p) == NULL)
				letter[(unsigned char)*p] = true;
		}
	}
	letter['D'] = (flags & MAIL_DRAFT) != 0;
	letter['F'] = (flags & MAIL_FLAGGED) != 0;
	letter['R'] = (flags & MAIL_ANSWERED) != 0;
	letter['S'] = (flags & MAIL_SEEN) != 0;
	letter['T'] = (flags & MAIL_DELETED) != 0;
	snprintf(out, out_size, "2,");
	for (int c = 0x21; c < 0x7f && n + 1 < out_size; c++) {
		if (letter[c])
			out[n++] = (char)c;
	}
	out[n] = '\0';
}

/* The info part of an entry's file name, or NULL. */
static const char *idx_info(const struct mail_entry *e)
{
	return e->name[e->base_len] == ':' ? e->name + e->base_len + 1 : NULL;
}

static char *idx_make_name(const char *base, size_t base_len, const char *info)
{
	size_t ilen = info == NULL ? 0 : strlen(info) + 1;
	char *s = xmalloc(base_len + ilen + 1);

	memcpy(s, base, base_len);
	if (info != NULL) {
		s[base_len] = ':';
		memcpy(s + base_len + 1, info, ilen - 1);
	}
	s[base_len + ilen] = '\0';
	return s;
}

/* Binary search among e[0..lim). */
static ssize_t idx_find(const struct mail_view *v, uint32_t uid, size_t lim)
{
	size_t lo = 0, hi = lim;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->e[mid].m.uid == uid)
			return (ssize_t)mid;
		if (v->e[mid].m.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* ---- records ---- */

/* " NUMBER" */
static int idx_field(const char **p, uint64_t max, uint64_t *v)
{
	if (parse_space(p) < 0 || parse_uint64(p, max, v) < 0)
		return -1;
	return 0;
}

/* "postd-imap 1 UIDVALIDITY NEXTUID HIGHESTMODSEQ RECENTUID" */
static int idx_apply_header(struct mail_view *v, const char *line)
{
	const char *p = line + strlen(IDX_MAGIC) - 1;
	uint64_t uv, next, ms, rec;

	if (strncmp(line, IDX_MAGIC, strlen(IDX_MAGIC)) != 0 ||
	    idx_field(&p, UINT32_MAX, &uv) < 0 || uv == 0 ||
	    idx_field(&p, UINT32_MAX, &next) < 0 || next == 0 ||
	    idx_field(&p, UINT64_MAX / 2, &ms) < 0 ||
	    idx_field(&p, UINT32_MAX, &rec) < 0 || rec >= next ||
	    parse_end(&p) < 0)
		return IDX_READ_CORRUPT;
	if (v->uidvalidity != 0 && v->uidvalidity != uv)
		return IDX_READ_NEW_UIDV;
	v->uidvalidity = (uint32_t)uv;
	if (next > v->nextuid)
		v->nextuid = (uint32_t)next;
	if (ms > v->highest_modseq)
		v->highest_modseq = ms;
	if (rec > v->recent_uid)
		v->recent_uid = (uint32_t)rec;
	v->header_seen = true;
	v->file_last_uid = 0;
	return 0;
}

/* Common tail of A and F: " FLAGS KEYWORDS DIR INFO". */
static int idx_parse_state(struct mail_view *v, const char **p, uint32_t *flags,
			   uint64_t *kw, bool *in_cur, char *info,
			   size_t info_size)
{
	uint64_t f;
	size_t ilen;

	if (idx_field(p, IDX_SYSTEM_FLAGS, &f) < 0 ||
	    idx_field(p, UINT64_MAX, kw) < 0 || parse_space(p) < 0)
		return -1;
	if (v->keyword_count < 64 && (*kw >> v->keyword_count) != 0)
		return -1;
	if ((**p != 'n' && **p != 'c') || (*p)[1] != ' ')
		return -1;
	*in_cur = **p == 'c';
	*p += 2;
	ilen = strcspn(*p, " ");
	if (ilen == 0 || ilen >= info_size)
		return -1;
	memcpy(info, *p, ilen);
	info[ilen] = '\0';
	*p += ilen;
	if (strcmp(info, "-") != 0 && !idx_valid_info(info))
		return -1;
	*flags = (uint32_t)f;
	return 0;
}

/* Sets an entry's state; notes a change made by someone else. */
static void idx_set_state(struct mail_view *v, struct mail_entry *e,
			  uint64_t modseq, uint32_t flags, uint64_t kw,
			  bool in_cur, const char *info)
{
	uint32_t recent = e->m.flags & MAIL_RECENT;

	if (!v->own && !e->m.expunged &&
	    ((e->m.flags & IDX_SYSTEM_FLAGS) != flags || e->m.keywords != kw)) {
		e->changed = true;
		v->dirty = true;
	}
	e->m.flags = flags | recent;
	e->m.keywords = kw;
	if (modseq > e->m.modseq)
		e->m.modseq = modseq;
	if (strcmp(info, "-") == 0)
		info = NULL;
	if (e->in_cur != in_cur ||
	    strcmp(idx_info(e) == NULL ? "" : idx_info(e),
		   info == NULL ? "" : info) != 0) {
		char *name = idx_make_name(e->name, e->base_len, info);

		free(e->name);
		e->name = name;
		e->in_cur = in_cur;
	}
}

/* "A UID MODSEQ FLAGS KEYWORDS DIR INFO INTERNALDATE SIZE BASE" */
static int idx_apply_append(struct mail_view *v, const char *p)
{
	uint64_t uid, ms, date, size;
	uint32_t flags;
	uint64_t kw;
	bool in_cur;
	char info[IDX_MAX_INFO + 2];
	size_t blen;
	ssize_t i;
	struct mail_entry *e;

	if (idx_field(&p, UINT32_MAX - 1, &uid) < 0 || uid == 0 ||
	    uid <= v->file_last_uid || idx_field(&p, UINT64_MAX / 2, &ms) < 0 ||
	    idx_parse_state(v, &p, &flags, &kw, &in_cur, info, sizeof(info)) <
		0 ||
	    idx_field(&p, IDX_MAX_DATE, &date) < 0 ||
	    idx_field(&p, IDX_MAX_SIZE, &size) < 0 || parse_space(&p) < 0)
		return IDX_READ_CORRUPT;
	blen = strlen(p);
	if (!idx_valid_base(p, blen))
		return IDX_READ_CORRUPT;
	v->file_last_uid = (uint32_t)uid;
	if (uid >= v->nextuid)
		v->nextuid = (uint32_t)uid + 1;
	if (ms > v->highest_modseq)
		v->highest_modseq = ms;
	i = idx_find(v, (uint32_t)uid, v->n);
	if (i >= 0) {
		v->e[i].mentioned = true;
		idx_set_state(v, &v->e[i], ms, flags, kw, in_cur, info);
		return 0;
	}
	/* Older than what the view holds and unknown: it was expunged
	 * before this view saw it. */
	if ((v->n > 0 && uid < v->e[v->n - 1].m.uid) ||
	    v->n >= MAIL_MAX_MESSAGES)
		return 0;
	if (v->n == v->alloc) {
		v->alloc = v->alloc * 2 + 64;
		v->e = xreallocarray(v->e, v->alloc, sizeof(*v->e));
	}
	e = &v->e[v->n++];
	memset(e, 0, sizeof(*e));
	e->m.uid = (uint32_t)uid;
	e->m.flags = flags;
	e->m.keywords = kw;
	e->m.modseq = ms;
	e->m.internaldate = (time_t)date;
	e->m.size = size;
	e->base_len = (uint32_t)blen;
	e->in_cur = in_cur;
	e->mentioned = true;
	e->name = idx_make_name(p, blen, strcmp(info, "-") == 0 ? NULL : info);
	return 0;
}

/* "F UID MODSEQ FLAGS KEYWORDS DIR INFO" */
static int idx_apply_flags(struct mail_view *v, const char *p)
{
	uint64_t uid, ms, kw;
	uint32_t flags;
	bool in_cur;
	char info[IDX_MAX_INFO + 2];
	ssize_t i;

	if (idx_field(&p, UINT32_MAX - 1, &uid) < 0 || uid >= v->nextuid ||
	    idx_field(&p, UINT64_MAX / 2, &ms) < 0 ||
	    idx_parse_state(v, &p, &flags, &kw, &in_cur, info, sizeof(info)) <
		0 ||
	    parse_end(&p) < 0)
		return IDX_READ_CORRUPT;
	if (ms > v->highest_modseq)
		v->highest_modseq = ms;
	i = idx_find(v, (uint32_t)uid, v->n);
	if (i >= 0 && !v->e[i].m.expunged)
		idx_set_state(v, &v->e[i], ms, flags, kw, in_cur, info);
	return 0;
}

/* "X UID MODSEQ" */
static int idx_apply_expunge(struct mail_view *v, const char *p)
{
	uint64_t uid, ms;
	ssize_t i;

	if (idx_field(&p, UINT32_MAX - 1, &uid) < 0 || uid >= v->nextuid ||
	    idx_field(&p, UINT64_MAX / 2, &ms) < 0 || parse_end(&p) < 0)
		return IDX_READ_CORRUPT;
	if (ms > v->highest_modseq)
		v->highest_modseq = ms;
	i = idx_find(v, (uint32_t)uid, v->n);
	if (i >= 0) {
		v->e[i].m.expunged = true;
		v->dirty = true;
	}
	return 0;
}

/* "K INDEX NAME": keyword INDEX is NAME (defined in order, never
 * redefined). */
static int idx_apply_keyword(struct mail_view *v, const char *p)
{
	uint64_t idx;

	if (idx_field(&p, MAIL_MAX_KEYWORDS - 1, &idx) < 0 ||
	    parse_space(&p) < 0 || !idx_valid_keyword(p))
		return IDX_READ_CORRUPT;
	if (idx < v->keyword_count)
		return strcmp(v->keywords[idx], p) == 0 ? 0 : IDX_READ_CORRUPT;
	if (idx != v->keyword_count || idx_keyword_find(v, p) >= 0)
		return IDX_READ_CORRUPT;
	v->keywords[v->keyword_count++] = xstrdup(p);
	return 0;
}

/* "R UID": messages up to UID have been given \Recent. The view that
 * wrote the record is the one that has them as recent. */
static int idx_apply_recent(struct mail_view *v, const char *p)
{
	uint64_t uid;

	if (idx_field(&p, UINT32_MAX - 1, &uid) < 0 || uid >= v->nextuid ||
	    parse_end(&p) < 0)
		return IDX_READ_CORRUPT;
	if (uid <= v->recent_uid)
		return 0;
	if (v->own) {
		for (size_t i = v->n;
		     i-- > 0 && v->e[i].m.uid > v->recent_uid;) {
			if (v->e[i].m.uid <= uid)
				v->e[i].m.flags |= MAIL_RECENT;
		}
	}
	v->recent_uid = (uint32_t)uid;
	return 0;
}

/* "S NEWSEC NEWNSEC CURSEC CURNSEC": the mtimes of new/ and cur/ whose
 * contents the records before it describe. */
static int idx_apply_scan(struct mail_view *v, const char *p)
{
	uint64_t a, b, c, d;

	if (idx_field(&p, INT64_MAX, &a) < 0 ||
	    idx_field(&p, 999999999, &b) < 0 ||
	    idx_field(&p, INT64_MAX, &c) < 0 ||
	    idx_field(&p, 999999999, &d) < 0 || parse_end(&p) < 0)
		return IDX_READ_CORRUPT;
	v->scan_new.tv_sec = (time_t)a;
	v->scan_new.tv_nsec = (long)b;
	v->scan_cur.tv_sec = (time_t)c;
	v->scan_cur.tv_nsec = (long)d;
	return 0;
}

static int idx_apply_line(struct mail_view *v, const char *line)
{
	int r;

	if (!v->header_seen)
		return idx_apply_header(v, line);
	if (line[0] == '\0' || line[1] != ' ')
		return IDX_READ_CORRUPT;
	switch (line[0]) {
	case 'A':
		r = idx_apply_append(v, line + 1);
		break;
	case 'F':
		r = idx_apply_flags(v, line + 1);
		break;
	case 'X':
		r = idx_apply_expunge(v, line + 1);
		break;
	case 'K':
		r = idx_apply_keyword(v, line + 1);
		break;
	case 'R':
		r = idx_apply_recent(v, line + 1);
		break;
	case 'S':
		r = idx_apply_scan(v, line + 1);
		break;
	default:
		return IDX_READ_CORRUPT;
	}
	v->log_records++;
	return r;
}

/* Applies the complete lines of buf[0..len); *used: bytes consumed. */
static int idx_feed(struct mail_view *v, char *buf, size_t len, size_t *used)
{
	size_t off = 0;

	while (off < len) {
		char *nl = memchr(buf + off, '\n', len - off);
		size_t llen;
		int r;

		if (nl == NULL)
			break;
		llen = (size_t)(nl - (buf + off));
		if (llen > MAIL_INDEX_MAX_LINE ||
		    memchr(buf + off, '\0', llen) != NULL)
			return IDX_READ_CORRUPT;
		*nl = '\0';
		r = idx_apply_line(v, buf + off);
		*nl = '\n';
		if (r != 0)
			return r;
		off += llen + 1;
	}
	*used = off;
	if (len - off > MAIL_INDEX_MAX_LINE)
		return IDX_READ_CORRUPT;
	return 0;
}

int mail_index_check(const void *data, size_t len)
{
	struct mail_view *v = xcalloc(1, sizeof(*v));
	char *copy = xmalloc(len + 1);
	size_t used = 0;
	int r;

	memcpy(copy, data, len);
	v->folder_fd = v->new_fd = v->cur_fd = -1;
	v->log_fd = v->lock_fd = v->cache_fd = -1;
	r = idx_feed(v, copy, len, &used);
	free(copy);
	mail_view_close(&v);
	return r == 0 ? 0 : -1;
}

/* ---- the log file ---- */

static int idx_log_open(struct mail_view *v)
{
	struct stat st;
	int fd = openat(v->folder_fd, IDX_LOG, O_RDWR | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		idx_log_trouble(v, errno);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		idx_log_trouble(v, errno);
		return -1;
	}
	if (v->log_fd >= 0)
		close(v->log_fd);
	v->log_fd = fd;
	v->log_dev = st.st_dev;
	v->log_ino = st.st_ino;
	v->log_offset = 0;
	v->log_records = 0;
	v->log_partial = false;
	v->header_seen = false;
	return 0;
}

/* Notes why the log could not be opened. */
static void idx_log_trouble(struct mail_view *v, int err)
{
	char sbuf[64];

	if (err == ENOENT)
		snprintf(v->log_trouble, sizeof(v->log_trouble), "was missing");
	else if (err == EINVAL)
		snprintf(v->log_trouble, sizeof(v->log_trouble),
			 "is not a regular file");
	else
		snprintf(v->log_trouble, sizeof(v->log_trouble),
			 "could not be opened: %s",
			 strerror_r(err, sbuf, sizeof(sbuf)));
}

/*
 * What a failed idx_log_open() means: no log (LOST), a log this process
 * can never use (unreadable, a directory, a symlink: CORRUPT, so that it
 * is set aside and rebuilt instead of failing every SELECT), or a passing
 * I/O error.
 */
static int idx_log_open_result(int err)
{
	switch (err) {
	case ENOENT:
		return IDX_READ_LOST;
	case EACCES:
	case EPERM:
	case EISDIR:
	case EINVAL:
	case ELOOP:
		return IDX_READ_CORRUPT;
	default:
		return IDX_READ_IO;
	}
}

/* Reads from log_offset to the end of the file. */
static int idx_tail(struct mail_view *v)
{
	char *buf = xmalloc(IDX_READ_CHUNK);
	size_t have = 0;
	int r = IDX_READ_OK;

	v->log_partial = false;
	for (;;) {
		ssize_t got =
		    pread(v->log_fd, buf + have, IDX_READ_CHUNK - have,
			  (off_t)(v->log_offset + have));
		size_t used = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = IDX_READ_IO;
			break;
		}
		if (got == 0) {
			v->log_partial = have > 0;
			break;
		}
		have += (size_t)got;
		r = idx_feed(v, buf, have, &used);
		if (r != 0)
			break;
		v->log_offset += used;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	free(buf);
	if (r == IDX_READ_OK && !v->header_seen)
		r = IDX_READ_CORRUPT;
	if (r == IDX_READ_CORRUPT)
		snprintf(v->log_trouble, sizeof(v->log_trouble),
			 "did not parse at byte %" PRIu64, v->log_offset);
	return r;
}

/* Rereads a new log file from the start (after a compaction); what it no
 * longer names was expunged. */
static int idx_reload(struct mail_view *v)
{
	int r;

	if (idx_log_open(v) < 0)
		return idx_log_open_result(errno);
	for (size_t i = 0; i < v->n; i++)
		v->e[i].mentioned = false;
	v->reloading = true;
	r = idx_tail(v);
	v->reloading = false;
	if (r != IDX_READ_OK)
		return r;
	for (size_t i = 0; i < v->n; i++) {
		if (!v->e[i].mentioned) {
			v->e[i].m.expunged = true;
			v->dirty = true;
		}
	}
	return IDX_READ_OK;
}

/* Brings the view up to the end of the current log file. */
static int idx_refresh(struct mail_view *v)
{
	struct stat st;

	if (fstatat(v->folder_fd, IDX_LOG, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? IDX_READ_LOST : IDX_READ_IO;
	if (v->log_fd < 0 || st.st_ino != v->log_ino || st.st_dev != v->log_dev)
		return idx_reload(v);
	return idx_tail(v);
}

/* OFD lock on postd-imap.lock: excludes other views in this process too.
 * Held only while the local files are changed. */
static int idx_lock(struct mail_view *v)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (v->lock_fd < 0) {
		v->lock_fd =
		    openat(v->folder_fd, IDX_LOCK,
			   O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (v->lock_fd < 0)
			return -1;
	}
	while (fcntl(v->lock_fd, F_OFD_SETLKW, &fl) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

static void idx_unlock(struct mail_view *v)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	if (v->lock_fd >= 0)
		fcntl(v->lock_fd, F_OFD_SETLK, &fl);
}

/* Forgets everything (before a rebuild). */
static void idx_reset(struct mail_view *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->e[i].name);
	v->n = 0;
	v->count = 0;
	for (size_t i = 0; i < v->keyword_count; i++)
		XFREE(v->keywords[i]);
	v->keyword_count = 0;
	v->nextuid = 1;
	v->highest_modseq = 1;
	v->recent_uid = 0;
	v->file_last_uid = 0;
	memset(&v->scan_new, 0, sizeof(v->scan_new));
	memset(&v->scan_cur, 0, sizeof(v->scan_cur));
}

/*
 * Takes the lock and reads to the end of the log: what a writer must do
 * before appending. An unterminated record at the end was left by a
 * writer that died (we hold the lock, so none is writing): it is cut off
 * so that the next record starts a line.
 */
static enum mail_status idx_begin(struct mail_view *v, char *error,
				  size_t error_size)
{
	int r;

	if (idx_lock(v) < 0)
		return idx_errno(error, error_size, "lock the index");
	r = idx_refresh(v);
	if (r == IDX_READ_OK && v->log_partial &&
	    ftruncate(v->log_fd, (off_t)v->log_offset) < 0)
		r = IDX_READ_IO;
	if (r == IDX_READ_OK)
		return MAIL_OK;
	if (r == IDX_READ_IO) {
		enum mail_status st =
		    idx_errno(error, error_size, "read the index");

		idx_unlock(v);
		return st;
	}
	/* Lost, corrupt or rebuilt by someone else: the UIDs this view
	 * announced are void; make a good index for the next session. */
	v->uids_void = true;
	if (r != IDX_READ_NEW_UIDV) {
		uint32_t old = v->uidvalidity;

		idx_reset(v);
		v->uidvalidity = old;
		idx_rebuild(v, error, error_size);
	}
	idx_unlock(v);
	idx_err(error, error_size,
		"the folder's index was rebuilt "
		"(UIDVALIDITY changed)");
	return MAIL_TEMPFAIL;
}

/* Appends records at the end (under the lock, after idx_begin) and
 * applies them to the view. */
static enum mail_status idx_write(struct mail_view *v, const struct lines *l,
				  bool own, char *error, size_t error_size)
{
	size_t done = 0, used = 0;
	int r;

	if (l->len == 0)
		return MAIL_OK;
	while (done < l->len) {
		ssize_t w = pwrite(v->log_fd, l->s + done, l->len - done,
				   (off_t)(v->log_offset + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			enum mail_status st;

			if (w == 0)
				errno = EIO;
			st = idx_errno(error, error_size, "write the index");
			if (ftruncate(v->log_fd, (off_t)v->log_offset) < 0)
				log_warn("mail_index: cannot cut a failed "
					 "write off the log");
			return st;
		}
		done += (size_t)w;
	}
	v->own = own;
	r = idx_feed(v, l->s, l->len, &used);
	v->own = false;
	if (r != 0 || used != l->len)
		fatal("mail_index: a record this process wrote does not parse");
	v->log_offset += l->len;
	return MAIL_OK;
}

/* What a client is told OK about is on disk first (the fsync policy in
 * doc/internals/imap-index.md). */
static enum mail_status idx_commit(struct mail_view *v, char *error,
				   size_t error_size)
{
	if (fsync(v->log_fd) < 0)
		return idx_errno(error, error_size, "fsync the index");
	idx_uidnext_write(v);
	return MAIL_OK;
}

/*
 * Records the NEXTUID the log now holds, after its fsync, so the mark is
 * never ahead of what the log keeps. Not fsynced: a mark lost to a power
 * loss only catches fewer cut logs. Fixed width, one pwrite: a reader
 * never sees half of it.
 */
static void idx_uidnext_write(struct mail_view *v)
{
	char line[32];
	int fd, n;

	if (v->nextuid <= v->uidnext_marked)
		return;
	n = snprintf(line, sizeof(line), "%010" PRIu32 " %010" PRIu32 "\n",
		     v->uidvalidity, v->nextuid);
	fd = openat(v->folder_fd, IDX_UIDNEXT_FILE,
		    O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (pwrite(fd, line, (size_t)n, 0) == n)
		v->uidnext_marked = v->nextuid;
	close(fd);
}

/* After a whole log was read: a NEXTUID below the mark under the same
 * UIDVALIDITY means records were lost, and the log is not to be trusted. */
static int idx_uidnext_check(struct mail_view *v)
{
	char line[32] = {0};
	unsigned long uidv, next;
	int fd = openat(v->folder_fd, IDX_UIDNEXT_FILE,
			O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return IDX_READ_OK;
	got = pread(fd, line, sizeof(line) - 1, 0);
	close(fd);
	if (got <= 0 || sscanf(line, "%lu %lu", &uidv, &next) != 2 ||
	    uidv != v->uidvalidity || next <= v->nextuid) {
		v->uidnext_marked = v->nextuid;
		return IDX_READ_OK;
	}
	snprintf(v->log_trouble, sizeof(v->log_trouble),
		 "lost records: NEXTUID %" PRIu32 " where %lu was handed out",
		 v->nextuid, next);
	return IDX_READ_CORRUPT;
}

/* Writes the current state as a new log and puts it in place: tmp file,
 * fsync, rename, fsync of the folder. Then rereads it. */
static int idx_compact(struct mail_view *v)
{
	struct lines l = {0};
	size_t done = 0;
	int fd, r;

	lines_add(&l,
		  IDX_MAGIC "%" PRIu32 " %" PRIu32 " %" PRIu64 " %" PRIu32 "\n",
		  v->uidvalidity, v->nextuid, v->highest_modseq,
		  v->recent_uid < v->nextuid ? v->recent_uid : 0);
	for (size_t i = 0; i < v->keyword_count; i++)
		lines_add(&l, "K %zu %s\n", i, v->keywords[i]);
	for (size_t i = 0; i < v->n; i++) {
		const struct mail_entry *e = &v->e[i];
		const char *info = idx_info(e);

		if (e->m.expunged)
			continue;
		lines_add(&l,
			  "A %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64
			  " %c %s %lld %" PRIu64 " %.*s\n",
			  e->m.uid, e->m.modseq, e->m.flags & IDX_SYSTEM_FLAGS,
			  e->m.keywords, e->in_cur ? 'c' : 'n',
			  info == NULL ? "-" : info,
			  (long long)e->m.internaldate, e->m.size,
			  (int)e->base_len, e->name);
	}
	lines_add(&l, "S %lld %ld %lld %ld\n", (long long)v->scan_new.tv_sec,
		  v->scan_new.tv_nsec, (long long)v->scan_cur.tv_sec,
		  v->scan_cur.tv_nsec);
	fd =
	    openat(v->folder_fd, IDX_LOG_TMP,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	r = fd < 0 ? -1 : 0;
	while (r == 0 && done < l.len) {
		ssize_t w = write(fd, l.s + done, l.len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			r = -1;
		else
			done += (size_t)w;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -1;
	if (fd >= 0 && close(fd) < 0)
		r = -1;
	if (r == 0 &&
	    renameat(v->folder_fd, IDX_LOG_TMP, v->folder_fd, IDX_LOG) < 0)
		r = -1;
	if (r == 0 && fsync(v->folder_fd) < 0)
		r = -1;
	if (r < 0)
		unlinkat(v->folder_fd, IDX_LOG_TMP, 0);
	free(l.s);
	if (r < 0)
		return -1;
	return idx_reload(v) == IDX_READ_OK ? 0 : -1;
}

static void idx_maybe_compact(struct mail_view *v)
{
	size_t live = 0;

	for (size_t i = 0; i < v->n; i++)
		live += !v->e[i].m.expunged;
	if (v->log_records <= IDX_COMPACT_FACTOR * live + IDX_COMPACT_SLACK)
		return;
	if (idx_compact(v) < 0)
		log_warn("mail_index: compacting the index failed: %s",
			 strerror(errno));
}

static uint32_t idx_uidv_read(int folder_fd)
{
	return idx_uidv_file_read(folder_fd, IDX_UIDV_FILE);
}

static uint32_t idx_uidv_file_read(int dir_fd, const char *file)
{
	char buf[16];
	const char *p = buf;
	uint32_t v = 0;
	ssize_t n;
	int fd = openat(dir_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	if (parse_uint32(&p, UINT32_MAX, &v) < 0)
		return 0;
	return v;
}

static void idx_uidv_write(int folder_fd, uint32_t uidv)
{
	idx_uidv_file_write(folder_fd, IDX_UIDV_FILE, uidv);
}

/* The mailbox root of a folder: its parent for a Maildir++ subfolder,
 * itself for INBOX. Opened by "..", never by a path (chroot, INV-U1). */
static int idx_root_open(int folder_fd)
{
	if (faccessat(folder_fd, IDX_SUBFOLDER_MARK, F_OK,
		      AT_SYMLINK_NOFOLLOW) == 0)
		return openat(folder_fd, "..", IDX_DIR_FLAGS);
	return fcntl(folder_fd, F_DUPFD_CLOEXEC, 0);
}

static void idx_uidv_file_write(int dir_fd, const char *file, uint32_t uidv)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%" PRIu32 "\n", uidv);
	int fd =
	    openat(dir_fd, file,
		   O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
		log_warn("mail_index: cannot record the UIDVALIDITY");
	close(fd);
}

/*
 * The index is lost or unreadable: every file gets a new UID under a new
 * UIDVALIDITY (RFC 9051 2.3.1.1 allows nothing else), larger than the old
 * one. Called under the lock with a reset view.
 */
static enum mail_status idx_rebuild(struct mail_view *v, char *error,
				    size_t error_size)
{
	struct lines l = {0};
	uint32_t now = (uint32_t)time(NULL);
	size_t used = 0;
	int r;
	uint32_t last, root_last = 0;
	int root_fd = idx_root_open(v->folder_fd);

	last = idx_uidv_read(v->folder_fd);
	if (root_fd >= 0)
		root_last = idx_uidv_file_read(root_fd, IDX_UIDV_ROOT_FILE);
	if (last > v->uidvalidity)
		v->uidvalidity = last;
	if (root_last > v->uidvalidity)
		v->uidvalidity = root_last;
	v->uidvalidity = now > v->uidvalidity ? now : v->uidvalidity + 1;
	idx_uidv_write(v->folder_fd, v->uidvalidity);
	if (root_fd >= 0) {
		idx_uidv_file_write(root_fd, IDX_UIDV_ROOT_FILE,
				    v->uidvalidity);
		close(root_fd);
	}
	v->header_seen = true;
	r = idx_scan(v, &l);
	if (r == 0) {
		v->own = true;
		r = idx_feed(v, l.s, l.len, &used);
		v->own = false;
	}
	free(l.s);
	if (r == 0) {
		idx_log_set_aside(v);
		if (idx_compact(v) < 0)
			r = -1;
	}
	if (r != 0)
		return idx_errno(error, error_size, "rebuild the index");
	/* A new folder's first index is no news; anything else is. */
	if (last != 0 || v->n > 0)
		log_warn("mail_index: rebuilt a folder index from its Maildir: "
			 "the index %s (%zu messages, new UIDVALIDITY %" PRIu32
			 ")",
			 v->log_trouble[0] ? v->log_trouble : "was missing",
			 v->n, v->uidvalidity);
	return MAIL_OK;
}

/* A log that is there but cannot be used (a directory, unreadable) is
 * renamed aside, kept for a look, so that the new one can take its name. */
static void idx_log_set_aside(struct mail_view *v)
{
	char aside[64];
	struct stat st;
	int fd;

	if (fstatat(v->folder_fd, IDX_LOG, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISREG(st.st_mode)) {
		fd = openat(v->folder_fd, IDX_LOG,
			    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			return;
		}
	}
	snprintf(aside, sizeof(aside), IDX_LOG ".unusable.%lld",
		 (long long)time(NULL));
	if (renameat(v->folder_fd, IDX_LOG, v->folder_fd, aside) == 0)
		log_warn("mail_index: set an unusable index aside as %s",
			 aside);
}

/* ---- scanning the Maildir ---- */

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->f[i].name);
	XFREE(s->f);
	s->n = s->alloc = 0;
}

/* One readdir of new/ or cur/; the mtime is taken first, so a change
 * during the read shows up as a later mtime and another scan. */
static int scan_dir(int dir_fd, bool in_cur, struct scan *s,
		    struct timespec *mtime_r)
{
	struct stat st;
	struct dirent *de;
	DIR *dir;
	int fd = dup(dir_fd);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	*mtime_r = st.st_mtim;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL && s->n < MAIL_MAX_MESSAGES * 2) {
		size_t blen = strcspn(de->d_name, ":");
		const char *info =
		    de->d_name[blen] == ':' ? de->d_name + blen + 1 : NULL;

		if (de->d_name[0] == '.' || de->d_type == DT_DIR ||
		    !idx_valid_base(de->d_name, blen) ||
		    (info != NULL && !idx_valid_info(info)))
			continue;
		if (s->n == s->alloc) {
			s->alloc = s->alloc * 2 + 256;
			s->f = xreallocarray(s->f, s->alloc, sizeof(*s->f));
		}
		memset(&s->f[s->n], 0, sizeof(s->f[s->n]));
		s->f[s->n].name = xstrdup(de->d_name);
		s->f[s->n].base_len = (uint32_t)blen;
		s->f[s->n].in_cur = in_cur;
		s->n++;
	}
	closedir(dir);
	return 0;
}

/* The directories whose mtime moved since the last scan (SCAN_NEW,
 * SCAN_CUR bits). */
static unsigned scan_which(struct mail_view *v)
{
	struct stat sn, sc;
	unsigned which = 0;

	if (fstat(v->new_fd, &sn) < 0 ||
	    sn.st_mtim.tv_sec != v->scan_new.tv_sec ||
	    sn.st_mtim.tv_nsec != v->scan_new.tv_nsec)
		which |= SCAN_NEW;
	if (fstat(v->cur_fd, &sc) < 0 ||
	    sc.st_mtim.tv_sec != v->scan_cur.tv_sec ||
	    sc.st_mtim.tv_nsec != v->scan_cur.tv_nsec)
		which |= SCAN_CUR;
	return which;
}

/* new/ first: a file moving to cur/ meanwhile is seen twice rather than
 * missed. A directory not in which keeps its recorded mtime. */
static int scan_both(struct mail_view *v, unsigned which, struct scan *s,
		     struct timespec *mt_new, struct timespec *mt_cur)
{
	*mt_new = v->scan_new;
	*mt_cur = v->scan_cur;
	if ((which & SCAN_NEW) && scan_dir(v->new_fd, false, s, mt_new) < 0)
		return -1;
	if ((which & SCAN_CUR) && scan_dir(v->cur_fd, true, s, mt_cur) < 0)
		return -1;
	return 0;
}

static int scan_cmp_base(const void *a, const void *b)
{
	const struct scan_file *x = *(struct scan_file *const *)a;
	const struct scan_file *y = *(struct scan_file *const *)b;
	size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->base_len != y->base_len)
		return x->base_len < y->base_len ? -1 : 1;
	return (int)y->in_cur - (int)x->in_cur; /* cur/ first */
}

/* Delivery order: mtime, then name (INV-I1: UIDs in arrival order). */
static int scan_cmp_delivery(const void *a, const void *b)
{
	const struct scan_file *x = *(struct scan_file *const *)a;
	const struct scan_file *y = *(struct scan_file *const *)b;

	if (x->mtime != y->mtime)
		return x->mtime < y->mtime ? -1 : 1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool idx_dirs_changed(struct mail_view *v)
{
	return scan_which(v) != 0;
}

/* An internal date the index can hold: an APPEND may name a day before
 * 1970 and a copied Maildir may carry any mtime, but a record outside
 * 0..IDX_MAX_DATE would not parse back. The earliest or latest date the
 * index holds stands in. */
static time_t idx_date(time_t t)
{
	if (t < 0)
		return 0;
	if ((uint64_t)t > IDX_MAX_DATE)
		return (time_t)IDX_MAX_DATE;
	return t;
}

/* New files: UIDs in delivery order, internal date from the mtime
 * (INV-T1), size from ",W=" or by reading the file once. */
static void idx_scan_new(struct mail_view *v, struct scan_file **fresh,
			 size_t nfresh, struct lines *out)
{
	uint32_t uid = v->nextuid;
	uint64_t ms = v->highest_modseq;
	size_t kept = 0;

	for (size_t i = 0; i < nfresh; i++) {
		struct scan_file *f = fresh[i];
		struct stat st;

		if (fstatat(f->in_cur ? v->cur_fd : v->new_fd, f->name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		f->mtime = st.st_mtim.tv_sec;
		f->mtime_ns = st.st_mtim.tv_nsec;
		fresh[kept++] = f;
	}
	qsort(fresh, kept, sizeof(*fresh), scan_cmp_delivery);
	for (size_t i = 0; i < kept && uid < UINT32_MAX - 1; i++) {
		struct scan_file *f = fresh[i];
		const char *info = f->name[f->base_len] == ':'
				       ? f->name + f->base_len + 1
				       : NULL;
		uint64_t size = 0;
		char base[MAILDIR_MAX_NAME + 1];

		memcpy(base, f->name, f->base_len);
		base[f->base_len] = '\0';
		if (!maildir_name_wire_size(base, &size)) {
			int fd =
			    openat(f->in_cur ? v->cur_fd : v->new_fd, f->name,
				   O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd < 0)
				continue;
			if (msg_wire_size_fd(fd, &size) < 0)
				size = 0;
			close(fd);
		}
		lines_add(out,
			  "A %" PRIu32 " %" PRIu64 " %" PRIu32 " 0 %c %s %lld "
			  "%" PRIu64 " %s\n",
			  uid++, ++ms, idx_flags_from_info(info),
			  f->in_cur ? 'c' : 'n', info == NULL ? "-" : info,
			  (long long)idx_date(f->mtime),
			  size > IDX_MAX_SIZE ? 0 : size, base);
	}
}

/*
 * Compares the Maildir with the view (under the lock, after idx_begin)
 * and writes the differences as records into out: F for renamed flags, X
 * for vanished files, A for new ones, then S with the directory mtimes.
 */
static int idx_scan(struct mail_view *v, struct lines *out)
{
	struct scan s = {0}, again = {0};
	struct timespec mt_new, mt_cur, t1, t2;
	struct hkey *keys = xcalloc(v->n + 1, sizeof(*keys));
	uint32_t *match = xcalloc(v->n + 1, sizeof(*match));
	struct scan_file **fresh = NULL;
	struct idx_hash h = {0};
	size_t nfresh = 0, gone = 0;
	uint64_t ms = v->highest_modseq;
	unsigned which = scan_which(v);
	int r = -1;

	/* Only a directory that changed is read: a delivery costs a read of
	 * new/, not of a large cur/. The log (read first, under the lock)
	 * already says where other sessions moved files. */
	if (scan_both(v, which, &s, &mt_new, &mt_cur) < 0)
		goto out;
	for (size_t i = 0; i < v->n; i++) {
		if (!v->e[i].m.expunged)
			keys[i] = (struct hkey){v->e[i].name, v->e[i].base_len};
	}
	idx_hash_build(&h, keys, v->n);
	fresh = xcalloc(s.n + 1, sizeof(*fresh));
	for (size_t j = 0; j < s.n; j++) {
		ssize_t i = idx_hash_find(&h, s.f[j].name, s.f[j].base_len);

		if (i < 0) {
			fresh[nfresh++] = &s.f[j];
		} else if (match[i] == 0 || s.f[j].in_cur) {
			match[i] = (uint32_t)j + 1;
		}
	}
	for (size_t i = 0; i < v->n; i++) {
		bool scanned = (which & (v->e[i].in_cur ? SCAN_CUR : SCAN_NEW));

		/* Not looked for: counts as found where it was. */
		if (!scanned && match[i] == 0)
			match[i] = UINT32_MAX;
		gone += !v->e[i].m.expunged && match[i] == 0;
	}
	/* A file renamed while readdir ran can be missed: only what a
	 * second look also misses is gone. */
	if (gone > 0) {
		struct hkey *k2;
		struct idx_hash h2;

		if (scan_both(v, which, &again, &t1, &t2) < 0)
			goto out;
		k2 = xcalloc(again.n + 1, sizeof(*k2));
		for (size_t j = 0; j < again.n; j++)
			k2[j] =
			    (struct hkey){again.f[j].name, again.f[j].base_len};
		idx_hash_build(&h2, k2, again.n);
		for (size_t i = 0; i < v->n; i++) {
			ssize_t j;

			if (v->e[i].m.expunged || match[i] != 0)
				continue;
			j = idx_hash_find(&h2, v->e[i].name, v->e[i].base_len);
			if (j < 0)
				lines_add(out, "X %" PRIu32 " %" PRIu64 "\n",
					  v->e[i].m.uid, ++ms);
		}
		free(h2.slots);
		free(k2);
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct mail_entry *e = &v->e[i];
		const struct scan_file *f;
		const char *info;
		uint32_t flags;

		if (match[i] == 0 || match[i] == UINT32_MAX || e->m.expunged)
			continue;
		f = &s.f[match[i] - 1];
		if (f->in_cur == e->in_cur && strcmp(f->name, e->name) == 0)
			continue;
		info = f->name[f->base_len] == ':' ? f->name + f->base_len + 1
						   : NULL;
		flags = idx_flags_from_info(info);
		lines_add(out,
			  "F %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64
			  " %c %s\n",
			  e->m.uid,
			  flags == (e->m.flags & IDX_SYSTEM_FLAGS) ? e->m.modseq
								   : ++ms,
			  flags, e->m.keywords, f->in_cur ? 'c' : 'n',
			  info == NULL ? "-" : info);
	}
	/* The same base in new/ and cur/ counts once, from cur/. */
	qsort(fresh, nfresh, sizeof(*fresh), scan_cmp_base);
	{
		size_t w = 0;

		for (size_t j = 0; j < nfresh; j++) {
			if (w > 0 &&
			    fresh[w - 1]->base_len == fresh[j]->base_len &&
			    memcmp(fresh[w - 1]->name, fresh[j]->name,
				   fresh[j]->base_len) == 0)
				continue;
			fresh[w++] = fresh[j];
		}
		nfresh = w;
	}
	v->highest_modseq = ms;
	idx_scan_new(v, fresh, nfresh, out);
	v->highest_modseq = ms > v->highest_modseq ? ms : v->highest_modseq;
	lines_add(out, "S %lld %ld %lld %ld\n", (long long)mt_new.tv_sec,
		  mt_new.tv_nsec, (long long)mt_cur.tv_sec, mt_cur.tv_nsec);
	r = 0;
out:
	free(h.slots);
	free(keys);
	free(match);
	free(fresh);
	scan_free(&s);
	scan_free(&again);
	return r;
}

/* The file of e moved (another program changed its flags): find its base
 * in cur/ or new/. */
static int idx_relocate(struct mail_view *v, struct mail_entry *e)
{
	struct scan s = {0};
	struct timespec t1, t2;
	int r = -1;

	if (scan_both(v, SCAN_NEW | SCAN_CUR, &s, &t1, &t2) < 0)
		return -1;
	for (size_t j = s.n; j-- > 0;) {
		if (s.f[j].base_len == e->base_len &&
		    memcmp(s.f[j].name, e->name, e->base_len) == 0) {
			free(e->name);
			e->name = xstrdup(s.f[j].name);
			e->in_cur = s.f[j].in_cur;
			r = 0;
			break;
		}
	}
	scan_free(&s);
	return r;
}

/* ---- views ---- */

/* Opens the folder's index without syncing it with the Maildir. */
static enum mail_status idx_open(int folder_fd, bool readonly,
				 struct mail_view **view_r, char *error,
				 size_t error_size)
{
	struct mail_view *v = xcalloc(1, sizeof(*v));
	enum mail_status st = MAIL_OK;
	uint32_t old;
	int r;

	*view_r = NULL;
	v->folder_fd = folder_fd;
	v->readonly = readonly;
	v->log_fd = v->lock_fd = v->cache_fd = -1;
	v->nextuid = 1;
	v->highest_modseq = 1;
	v->new_fd = openat(folder_fd, "new", IDX_DIR_FLAGS);
	v->cur_fd = openat(folder_fd, "cur", IDX_DIR_FLAGS);
	if (v->new_fd < 0 || v->cur_fd < 0) {
		st = errno == ENOENT ? MAIL_NOT_FOUND : MAIL_TEMPFAIL;
		idx_errno(error, error_size, "open the folder");
		mail_view_close(&v);
		return st;
	}
	r = idx_log_open(v) < 0 ? idx_log_open_result(errno) : idx_tail(v);
	if (r == IDX_READ_OK)
		r = idx_uidnext_check(v);
	if (r == IDX_READ_IO) {
		st = idx_errno(error, error_size, "read the index");
		mail_view_close(&v);
		return st;
	}
	if (r != IDX_READ_OK) {
		/* Check again under the lock: another session may have
		 * rebuilt it meanwhile. */
		if (idx_lock(v) < 0) {
			st = idx_errno(error, error_size, "lock the index");
			mail_view_close(&v);
			return st;
		}
		/* From scratch: what the bad read left is forgotten. */
		old = v->uidvalidity;
		idx_reset(v);
		v->uidvalidity = 0;
		if (v->log_fd >= 0)
			close(v->log_fd);
		v->log_fd = -1;
		r = idx_refresh(v);
		if (r == IDX_READ_OK)
			r = idx_uidnext_check(v);
		if (r != IDX_READ_OK) {
			if (old > v->uidvalidity)
				v->uidvalidity = old;
			idx_reset(v);
			st = idx_rebuild(v, error, error_size);
		}
		idx_unlock(v);
	}
	if (st != MAIL_OK)
		mail_view_close(&v);
	*view_r = v;
	return st;
}

enum mail_status mail_view_open(int folder_fd, bool readonly,
				struct mail_view **view_r, char *error,
				size_t error_size)
{
	enum mail_status st =
	    idx_open(folder_fd, readonly, view_r, error, error_size);

	if (st != MAIL_OK)
		return st;
	/* Every message counts as announced: the session reports EXISTS
	 * from the count at SELECT. */
	st = mail_view_sync(*view_r, true, NULL, NULL, error, error_size);
	if (st != MAIL_OK)
		mail_view_close(view_r);
	return st;
}

void mail_view_close(struct mail_view **vp)
{
	struct mail_view *v = *vp;

	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++)
		free(v->e[i].name);
	free(v->e);
	for (size_t i = 0; i < v->keyword_count; i++)
		free(v->keywords[i]);
	if (v->log_fd >= 0)
		close(v->log_fd);
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	if (v->cache_fd >= 0)
		close(v->cache_fd);
	if (v->new_fd >= 0)
		close(v->new_fd);
	if (v->cur_fd >= 0)
		close(v->cur_fd);
	free(v->cslots);
	XFREE(*vp);
}

uint32_t mail_view_uidvalidity(const struct mail_view *view)
{
	return view->uidvalidity;
}

bool mail_view_uids_void(const struct mail_view *view)
{
	return view->uids_void;
}

uint32_t mail_view_uidnext(const struct mail_view *view)
{
	return view->nextuid;
}

uint64_t mail_view_highest_modseq(const struct mail_view *view)
{
	return view->highest_modseq;
}

size_t mail_view_count(const struct mail_view *view)
{
	return view->count;
}

const struct mail_msg *mail_view_msg(const struct mail_view *view, size_t seq0)
{
	return seq0 < view->count ? &view->e[seq0].m : NULL;
}

size_t mail_view_find_uid(const struct mail_view *view, uint32_t uid)
{
	ssize_t i = idx_find(view, uid, view->count);

	return i < 0 ? SIZE_MAX : (size_t)i;
}

size_t mail_view_recent_count(const struct mail_view *view)
{
	size_t n = 0;

	for (size_t i = 0; i < view->count; i++)
		n += (view->e[i].m.flags & MAIL_RECENT) != 0;
	return n;
}

size_t mail_view_keyword_count(const struct mail_view *view)
{
	return view->keyword_count;
}

const char *mail_view_keyword(const struct mail_view *view, size_t i)
{
	return i < view->keyword_count ? view->keywords[i] : NULL;
}

static int idx_keyword_find(const struct mail_view *v, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < v->keyword_count; i++) {
		if (strlen(v->keywords[i]) == len &&
		    ascii_strncaseeq(v->keywords[i], name, len))
			return (int)i;
	}
	return -1;
}

int mail_view_keyword_bit(struct mail_view *view, const char *name, bool create)
{
	struct lines l = {0};
	int bit = idx_keyword_find(view, name);

	if (bit >= 0 || !create || !idx_valid_keyword(name))
		return bit;
	if (idx_begin(view, NULL, 0) != MAIL_OK)
		return -1;
	bit = idx_keyword_find(view, name);
	if (bit < 0 && view->keyword_count < MAIL_MAX_KEYWORDS) {
		lines_add(&l, "K %zu %s\n", view->keyword_count, name);
		if (idx_write(view, &l, true, NULL, 0) == MAIL_OK)
			bit = (int)view->keyword_count - 1;
	}
	idx_unlock(view);
	free(l.s);
	return bit;
}

/* Tells the client what changed, in the order RFC 9051 7.5 asks. */
static void idx_announce(struct mail_view *v, bool allow_expunge,
			 const struct mail_sync_cb *cb, void *ctx)
{
	size_t w = 0, old_count = v->count;

	/* The usual sync finds nothing: no pass over a large folder. */
	if (!v->dirty && v->n == v->count)
		return;
	v->dirty = false;
	for (size_t r = 0; r < v->n; r++) {
		struct mail_entry *e = &v->e[r];

		if (e->m.expunged && (r >= old_count || allow_expunge)) {
			if (r < old_count) {
				v->count--;
				if (cb != NULL && cb->expunged != NULL)
					cb->expunged(ctx, w);
			}
			free(e->name);
			continue;
		}
		/* Held back: told at a later sync. */
		if (e->m.expunged)
			v->dirty = true;
		v->e[w++] = *e;
	}
	v->n = w;
	for (size_t i = 0; i < v->count; i++) {
		if (!v->e[i].changed)
			continue;
		v->e[i].changed = false;
		if (!v->e[i].m.expunged && cb != NULL &&
		    cb->flags_changed != NULL)
			cb->flags_changed(ctx, i);
	}
	for (size_t i = v->count; i < v->n; i++)
		v->e[i].changed = false;
	if (v->n > v->count) {
		v->count = v->n;
		if (cb != NULL && cb->exists != NULL)
			cb->exists(ctx, v->count);
	}
}

enum mail_status mail_view_sync(struct mail_view *view, bool allow_expunge,
				const struct mail_sync_cb *cb, void *ctx,
				char *error, size_t error_size)
{
	struct mail_view *v = view;
	enum mail_status st = MAIL_OK;
	struct lines l = {0};
	uint32_t last;
	int r = idx_refresh(v);

	if (r == IDX_READ_IO)
		return idx_errno(error, error_size, "read the index");
	last = v->n > 0 ? v->e[v->n - 1].m.uid : 0;
	if (r != IDX_READ_OK || idx_dirs_changed(v) ||
	    (!v->readonly && last > v->recent_uid)) {
		st = idx_begin(v, error, error_size);
		if (st != MAIL_OK)
			return st;
		if (idx_dirs_changed(v)) {
			if (idx_scan(v, &l) < 0)
				st = idx_errno(error, error_size,
					       "read the Maildir");
			if (st == MAIL_OK)
				st = idx_write(v, &l, false, error, error_size);
			/* INV-I1: the UIDs given to new files are on disk
			 * before a client can see them. */
			if (st == MAIL_OK)
				st = idx_commit(v, error, error_size);
			l.len = 0;
		}
		last = v->n > 0 ? v->e[v->n - 1].m.uid : 0;
		if (st == MAIL_OK && !v->readonly && last > v->recent_uid) {
			lines_add(&l, "R %" PRIu32 "\n", last);
			st = idx_write(v, &l, true, error, error_size);
		}
		if (st == MAIL_OK)
			idx_maybe_compact(v);
		idx_unlock(v);
		free(l.s);
		if (st != MAIL_OK)
			return st;
	}
	idx_mark_unclaimed_recent(v);
	idx_announce(v, allow_expunge, cb, ctx);
	return MAIL_OK;
}

/* A read-only view (EXAMINE) claims nothing (RFC 3501 6.3.2: EXAMINE
 * MUST NOT cause messages to lose \Recent), but it still shows as
 * \Recent, and counts in RECENT, what no session has claimed yet. */
static void idx_mark_unclaimed_recent(struct mail_view *v)
{
	if (!v->readonly)
		return;
	for (size_t i = v->n; i-- > 0 && v->e[i].m.uid > v->recent_uid;)
		v->e[i].m.flags |= MAIL_RECENT;
}

enum mail_status mail_view_store(struct mail_view *view, size_t seq0,
				 enum mail_store_mode mode, uint32_t flags,
				 uint64_t keywords, char *error,
				 size_t error_size)
{
	struct mail_view *v = view;
	struct mail_entry *e;
	struct lines l = {0};
	struct stat before, after;
	char info[IDX_MAX_INFO + 1];
	uint64_t kw_mask, nkw;
	uint32_t nflags;
	enum mail_status st;
	bool scanned_cur, renamed;

	if (v->readonly) {
		idx_err(error, error_size, "the folder is read-only");
		return MAIL_TEMPFAIL;
	}
	if (seq0 >= v->count) {
		idx_err(error, error_size, "no such message");
		return MAIL_NOT_FOUND;
	}
	st = idx_begin(v, error, error_size);
	if (st != MAIL_OK)
		return st;
	e = &v->e[seq0];
	if (e->m.expunged) {
		idx_unlock(v);
		idx_err(error, error_size, "message %" PRIu32 " was expunged",
			e->m.uid);
		return MAIL_NOT_FOUND;
	}
	kw_mask = v->keyword_count >= 64
		      ? UINT64_MAX
		      : ((uint64_t)1 << v->keyword_count) - 1;
	flags &= IDX_SYSTEM_FLAGS;
	keywords &= kw_mask;
	nflags = e->m.flags & IDX_SYSTEM_FLAGS;
	nkw = e->m.keywords;
	if (mode == MAIL_STORE_SET) {
		nflags = flags;
		nkw = keywords;
	} else if (mode == MAIL_STORE_ADD) {
		nflags |= flags;
		nkw |= keywords;
	} else {
		nflags &= ~flags;
		nkw &= ~keywords;
	}
	if (nflags == (e->m.flags & IDX_SYSTEM_FLAGS) && nkw == e->m.keywords) {
		idx_unlock(v);
		return MAIL_OK;
	}
	idx_info_with_flags(idx_info(e), nflags, info, sizeof(info));
	scanned_cur = fstat(v->cur_fd, &before) == 0 &&
		      before.st_mtim.tv_sec == v->scan_cur.tv_sec &&
		      before.st_mtim.tv_nsec == v->scan_cur.tv_nsec;
	renamed = !e->in_cur ||
		  strcmp(idx_info(e) == NULL ? "" : idx_info(e), info) != 0;
	if (renamed) {
		char *name = idx_make_name(e->name, e->base_len, info);
		int rr = renameat(e->in_cur ? v->cur_fd : v->new_fd, e->name,
				  v->cur_fd, name);

		if (rr < 0 && errno == ENOENT && idx_relocate(v, e) == 0)
			rr = renameat(e->in_cur ? v->cur_fd : v->new_fd,
				      e->name, v->cur_fd, name);
		free(name);
		/* Not fsynced: a flag change survives kill -9 (the rename is
		 * done before OK) and a power loss may undo it, as with
		 * Dovecot's default mail_fsync=optimized (imap-index.md). */
		if (rr < 0) {
			st = errno == ENOENT ? MAIL_NOT_FOUND : MAIL_TEMPFAIL;
			idx_errno(error, error_size, "rename message file");
			idx_unlock(v);
			return st;
		}
	}
	lines_add(&l,
		  "F %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64 " c %s\n",
		  e->m.uid, v->highest_modseq + 1, nflags, nkw, info);
	/* Our own rename need not make every view rescan cur/, if cur/ was
	 * scanned before it (doc/internals/imap-index.md). */
	if (renamed && scanned_cur && fstat(v->cur_fd, &after) == 0)
		lines_add(&l, "S %lld %ld %lld %ld\n",
			  (long long)v->scan_new.tv_sec, v->scan_new.tv_nsec,
			  (long long)after.st_mtim.tv_sec,
			  after.st_mtim.tv_nsec);
	/* The F record is written, not fsynced (see above). */
	st = idx_write(v, &l, true, error, error_size);
	if (st == MAIL_OK)
		idx_maybe_compact(v);
	idx_unlock(v);
	free(l.s);
	return st;
}

/*
 * Removes the files of the doomed entries and writes their X records into
 * out; fsyncs the folders they left. In INBOX a file is moved into the
 * POP3 hold folder rather than unlinked: a POP3 session that listed it
 * keeps it until it ends (INV-P2), and IMAP never waits for that session
 * (doc/internals/storage.md). For every IMAP view the file is gone at once.
 */
static enum mail_status idx_remove_files(struct mail_view *v, struct lines *out,
					 char *error, size_t error_size)
{
	bool from_new = false, from_cur = false;
	uint64_t ms = v->highest_modseq;
	bool inbox = idx_is_inbox(v);
	int hold_fd = -1;

	if (inbox) {
		hold_fd = maildir_hold_open(v->folder_fd, true);
		if (hold_fd < 0)
			return idx_errno(error, error_size,
					 "open the POP3 hold folder");
	}
	for (size_t i = 0; i < v->n; i++) {
		struct mail_entry *e = &v->e[i];
		int r;

		if (!e->doomed)
			continue;
		r = idx_remove_file(v, e, hold_fd);
		if (r < 0 && errno == ENOENT && idx_relocate(v, e) == 0)
			r = idx_remove_file(v, e, hold_fd);
		if (r < 0 && errno != ENOENT) {
			/* The message stays, and the client sees it stay. */
			char name[2 * MAILDIR_MAX_NAME];
			int err = errno;

			log_warn("mail_index: cannot expunge %s: %s",
				 log_escape(name, sizeof(name), e->name,
					    strlen(e->name)),
				 strerror(err));
			e->doomed = false;
			continue;
		}
		from_new |= !e->in_cur;
		from_cur |= e->in_cur;
		lines_add(out, "X %" PRIu32 " %" PRIu64 "\n", e->m.uid, ++ms);
	}
	if (hold_fd >= 0)
		close(hold_fd);
	if ((from_new && fsync(v->new_fd) < 0) ||
	    (from_cur && fsync(v->cur_fd) < 0))
		return idx_errno(error, error_size, "fsync the folder");
	/* After the fsyncs: what a crash could still bring back to new/ or
	 * cur/ must not be gone from the hold folder. */
	if (inbox && (from_new || from_cur))
		mailbox_hold_release(v->folder_fd);
	return MAIL_OK;
}

/*
 * Expunges the doomed entries, under the lock: their files removed (and
 * those removals fsynced), their X records written into the log, and the
 * view told. The records are not fsynced: one lost to a power loss is
 * found again by the next scan, as a file that is gone.
 */
static enum mail_status idx_expunge_doomed(struct mail_view *v, struct lines *l,
					   const struct mail_sync_cb *cb,
					   void *ctx, char *error,
					   size_t error_size)
{
	enum mail_status st = idx_remove_files(v, l, error, error_size);

	if (st == MAIL_OK)
		st = idx_write(v, l, true, error, error_size);
	idx_drop_doomed(v, cb, ctx);
	if (st == MAIL_OK)
		idx_maybe_compact(v);
	return st;
}

static int idx_remove_file(struct mail_view *v, const struct mail_entry *e,
			   int hold_fd)
{
	int dir_fd = e->in_cur ? v->cur_fd : v->new_fd;

	if (hold_fd >= 0)
		return maildir_hold_move(dir_fd, e->name, hold_fd);
	return unlinkat(dir_fd, e->name, 0);
}

/* INBOX is the Maildir root; every Maildir++ sub-folder has the
 * "maildirfolder" file (folder.c makes it, as other Maildir++ servers
 * do). Only INBOX is seen by POP3. */
static bool idx_is_inbox(const struct mail_view *v)
{
	return faccessat(v->folder_fd, "maildirfolder", F_OK,
			 AT_SYMLINK_NOFOLLOW) < 0 &&
	       errno == ENOENT;
}

/* Takes the doomed entries out of the view, reporting each. */
static void idx_drop_doomed(struct mail_view *v, const struct mail_sync_cb *cb,
			    void *ctx)
{
	size_t w = 0, old_count = v->count;

	for (size_t r = 0; r < v->n; r++) {
		struct mail_entry *e = &v->e[r];

		if (e->doomed && e->m.expunged) {
			if (r < old_count) {
				v->count--;
				if (cb != NULL && cb->expunged != NULL)
					cb->expunged(ctx, w);
			}
			free(e->name);
			continue;
		}
		e->doomed = false;
		v->e[w++] = *e;
	}
	v->n = w;
}

static int idx_cmp_uid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

enum mail_status mail_view_expunge(struct mail_view *view, const uint32_t *uids,
				   size_t uid_count,
				   const struct mail_sync_cb *cb, void *ctx,
				   char *error, size_t error_size)
{
	if (view->readonly) {
		idx_err(error, error_size, "the folder is read-only");
		return MAIL_TEMPFAIL;
	}
	return idx_expunge(view, uids, uid_count, true, cb, ctx, error,
			   error_size);
}

enum mail_status mail_view_expunge_uids(struct mail_view *view,
					const uint32_t *uids, size_t uid_count,
					char *error, size_t error_size)
{
	return idx_expunge(view, uids, uid_count, false, NULL, NULL, error,
			   error_size);
}

/* EXPUNGE proper: the messages of uids (all when NULL), only those with
 * \Deleted when need_deleted is set (a client's EXPUNGE). */
static enum mail_status idx_expunge(struct mail_view *v, const uint32_t *uids,
				    size_t uid_count, bool need_deleted,
				    const struct mail_sync_cb *cb, void *ctx,
				    char *error, size_t error_size)
{
	struct lines l = {0};
	uint32_t *sorted = NULL;
	enum mail_status st;

	if (uids != NULL) {
		sorted = xreallocarray(NULL, uid_count + 1, sizeof(*sorted));
		memcpy(sorted, uids, uid_count * sizeof(*uids));
		qsort(sorted, uid_count, sizeof(*sorted), idx_cmp_uid);
	}
	st = idx_begin(v, error, error_size);
	if (st != MAIL_OK) {
		free(sorted);
		return st;
	}
	for (size_t i = 0; i < v->count; i++) {
		struct mail_entry *e = &v->e[i];

		e->doomed = !e->m.expunged &&
			    (!need_deleted || (e->m.flags & MAIL_DELETED)) &&
			    (sorted == NULL ||
			     bsearch(&e->m.uid, sorted, uid_count,
				     sizeof(*sorted), idx_cmp_uid) != NULL);
	}
	st = idx_expunge_doomed(v, &l, cb, ctx, error, error_size);
	idx_unlock(v);
	free(l.s);
	free(sorted);
	return st;
}

/* The copy of a file where a hard link is impossible (another file
 * system): tmp/, fsync, rename into place. */
static int idx_copy_file(int src_dir, const char *src, int tmp_fd, int dst_dir,
			 const char *dst, time_t mtime)
{
	char buf[65536];
	struct timespec times[2] = {{0, UTIME_OMIT}, {mtime, 0}};
	int in = openat(src_dir, src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int out, r = 0, saved;

	if (in < 0)
		return -1;
	out =
	    openat(tmp_fd, dst,
		   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		saved = errno;
		close(in);
		errno = saved;
		return -1;
	}
	for (;;) {
		ssize_t got = read(in, buf, sizeof(buf));
		size_t done = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r = got < 0 ? -1 : 0;
			break;
		}
		while (r == 0 && done < (size_t)got) {
			ssize_t w = write(out, buf + done, (size_t)got - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				r = -1;
			else
				done += (size_t)w;
		}
		if (r < 0)
			break;
	}
	saved = errno;
	if (r == 0 && (futimens(out, times) < 0 || fsync(out) < 0))
		r = -1;
	if (close(out) < 0)
		r = -1;
	if (r == 0 && renameat(tmp_fd, dst, dst_dir, dst) < 0)
		r = -1;
	if (r < 0) {
		saved = errno;
		unlinkat(tmp_fd, dst, 0);
	}
	close(in);
	errno = saved;
	return r;
}

/* A fresh name for a copy: a new unique part, the source's ",S=..,W=.."
 * fields, and the info. */
static int idx_copy_name(const struct mail_entry *e, char *base,
			 size_t base_size, char *name, size_t name_size)
{
	const char *fields = memchr(e->name, ',', e->base_len);
	size_t flen =
	    fields == NULL ? 0 : e->base_len - (size_t)(fields - e->name);
	char info[IDX_MAX_INFO + 1];
	int n;

	if (maildir_unique_name(base, base_size) < 0)
		return -1;
	n = snprintf(base + strlen(base), base_size - strlen(base), "%.*s",
		     (int)flen, fields == NULL ? "" : fields);
	if (n < 0 || strlen(base) > MAILDIR_MAX_NAME - IDX_MAX_INFO - 2)
		return -1;
	if ((e->m.flags & IDX_SYSTEM_FLAGS) == 0) {
		snprintf(name, name_size, "%s", base);
		return 0;
	}
	idx_info_with_flags(NULL, e->m.flags, info, sizeof(info));
	snprintf(name, name_size, "%s:%s", base, info);
	return 0;
}

/* Links (or copies) the sources into dest and writes their A records. */
static enum mail_status idx_copy_into(struct mail_view *v, const size_t *seq0s,
				      size_t n, struct mail_view *d,
				      uint32_t *dest_uids_r, char *error,
				      size_t error_size)
{
	struct lines al = {0};
	char(*names)[MAILDIR_MAX_NAME + 1] = xcalloc(n + 1, sizeof(*names));
	int tmp_fd = openat(d->folder_fd, "tmp", IDX_DIR_FLAGS);
	enum mail_status st = MAIL_OK;
	size_t made = 0;

	/* The target's lock before the first link: a session syncing the
	 * target meanwhile would find the new files and give them UIDs of
	 * its own, and the A records below would give them a second one
	 * (INV-I1). */
	if (tmp_fd >= 0)
		st = idx_begin(d, error, error_size);
	if (st != MAIL_OK) {
		close(tmp_fd);
		free(names);
		return st;
	}
	for (; made < n && st == MAIL_OK && tmp_fd >= 0; made++) {
		struct mail_entry *e = &v->e[seq0s[made]];
		char base[MAILDIR_MAX_NAME + 1];
		int dst =
		    (e->m.flags & IDX_SYSTEM_FLAGS) ? d->cur_fd : d->new_fd;
		int src, r;

		if (idx_copy_name(e, base, sizeof(base), names[made],
				  sizeof(names[made])) < 0) {
			st = idx_errno(error, error_size, "name a copy");
			break;
		}
		src = e->in_cur ? v->cur_fd : v->new_fd;
		r = linkat(src, e->name, dst, names[made], 0);
		if (r < 0 && errno == ENOENT && idx_relocate(v, e) == 0)
			r = linkat(e->in_cur ? v->cur_fd : v->new_fd, e->name,
				   dst, names[made], 0);
		if (r < 0 && errno != ENOENT)
			r = idx_copy_file(e->in_cur ? v->cur_fd : v->new_fd,
					  e->name, tmp_fd, dst, names[made],
					  e->m.internaldate);
		if (r < 0) {
			st = errno == ENOENT ? MAIL_NOT_FOUND : MAIL_TEMPFAIL;
			idx_errno(error, error_size, "copy a message");
			break;
		}
	}
	if (tmp_fd < 0)
		st = idx_errno(error, error_size, "open the target folder");
	else
		close(tmp_fd);
	if (st == MAIL_OK && (fsync(d->new_fd) < 0 || fsync(d->cur_fd) < 0))
		st = idx_errno(error, error_size, "fsync the target folder");
	if (st != MAIL_OK) {
		for (size_t i = 0; i < made; i++) {
			unlinkat(d->new_fd, names[i], 0);
			unlinkat(d->cur_fd, names[i], 0);
		}
		if (tmp_fd >= 0)
			idx_unlock(d);
		free(names);
		return st;
	}
	/* Keywords travel by name; past the target's limit they are
	 * dropped. */
	for (size_t i = 0; i < v->keyword_count; i++) {
		if (idx_keyword_find(d, v->keywords[i]) < 0 &&
		    d->keyword_count < MAIL_MAX_KEYWORDS) {
			struct lines one = {0};

			lines_add(&one, "K %zu %s\n", d->keyword_count,
				  v->keywords[i]);
			if (idx_write(d, &one, true, error, error_size) !=
			    MAIL_OK) {
				free(one.s);
				break;
			}
			free(one.s);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct mail_entry *e = &v->e[seq0s[i]];
		uint64_t kw = 0;
		const char *colon = strchr(names[i], ':');

		for (size_t k = 0; k < v->keyword_count; k++) {
			int bit = idx_keyword_find(d, v->keywords[k]);

			if ((e->m.keywords >> k) & 1 && bit >= 0)
				kw |= (uint64_t)1 << bit;
		}
		dest_uids_r[i] = d->nextuid + (uint32_t)i;
		lines_add(&al,
			  "A %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64
			  " %c %s %lld %" PRIu64 " %.*s\n",
			  dest_uids_r[i], d->highest_modseq + 1 + i,
			  e->m.flags & IDX_SYSTEM_FLAGS, kw,
			  colon != NULL ? 'c' : 'n',
			  colon != NULL ? colon + 1 : "-",
			  (long long)e->m.internaldate, e->m.size,
			  (int)(colon != NULL ? (size_t)(colon - names[i])
					      : strlen(names[i])),
			  names[i]);
	}
	st = idx_write(d, &al, false, error, error_size);
	if (st == MAIL_OK)
		st = idx_commit(d, error, error_size);
	if (st == MAIL_OK)
		idx_maybe_compact(d);
	idx_unlock(d);
	free(al.s);
	free(names);
	return st;
}

enum mail_status mail_view_copy(struct mail_view *view, const size_t *seq0s,
				size_t n, int dest_fd, bool move,
				uint32_t *dest_uidvalidity_r,
				uint32_t *dest_uids_r,
				const struct mail_sync_cb *cb, void *ctx,
				char *error, size_t error_size)
{
	struct mail_view *v = view, *d;
	struct lines l = {0};
	enum mail_status st;

	if (move && v->readonly) {
		idx_err(error, error_size, "the folder is read-only");
		return MAIL_TEMPFAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (seq0s[i] >= v->count || v->e[seq0s[i]].m.expunged) {
			idx_err(error, error_size, "a message was expunged");
			return MAIL_NOT_FOUND;
		}
	}
	st = idx_open(dest_fd, false, &d, error, error_size);
	if (st != MAIL_OK)
		return st;
	if (d->nextuid > UINT32_MAX - n - 1) {
		mail_view_close(&d);
		idx_err(error, error_size, "no UIDs left in the target");
		return MAIL_LIMIT;
	}
	st = idx_copy_into(v, seq0s, n, d, dest_uids_r, error, error_size);
	*dest_uidvalidity_r = d->uidvalidity;
	mail_view_close(&d);
	if (st != MAIL_OK || !move)
		return st;
	/* MOVE (RFC 6851): the copies are durable; now the sources go. */
	st = idx_begin(v, error, error_size);
	if (st != MAIL_OK)
		return st;
	for (size_t i = 0; i < v->n; i++)
		v->e[i].doomed = false;
	for (size_t i = 0; i < n; i++)
		v->e[seq0s[i]].doomed = !v->e[seq0s[i]].m.expunged;
	st = idx_expunge_doomed(v, &l, cb, ctx, error, error_size);
	idx_unlock(v);
	free(l.s);
	return st;
}

int mail_view_msg_open(struct mail_view *view, size_t seq0, char *error,
		       size_t error_size)
{
	struct mail_entry *e;
	int fd;

	if (seq0 >= view->count) {
		idx_err(error, error_size, "no such message");
		return -1;
	}
	e = &view->e[seq0];
	fd = openat(e->in_cur ? view->cur_fd : view->new_fd, e->name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && idx_relocate(view, e) == 0)
		fd = openat(e->in_cur ? view->cur_fd : view->new_fd, e->name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		idx_err(error, error_size, "message UID %" PRIu32 " is gone",
			e->m.uid);
	return fd;
}

/* ---- APPEND ---- */

enum mail_status mail_append_begin(int folder_fd, struct mail_append **a_r,
				   char *error, size_t error_size)
{
	const char *why = "";
	struct maildir_delivery *d = maildir_delivery_begin(folder_fd, &why);

	*a_r = NULL;
	if (d == NULL) {
		idx_err(error, error_size, "%s", why);
		return errno == ENOSPC || errno == EDQUOT ? MAIL_NOSPACE
							  : MAIL_TEMPFAIL;
	}
	*a_r = xcalloc(1, sizeof(**a_r));
	(*a_r)->folder_fd = folder_fd;
	(*a_r)->d = d;
	return MAIL_OK;
}

enum mail_status mail_append_write(struct mail_append *a, const void *data,
				   size_t len, char *error, size_t error_size)
{
	const char *why = "";

	if (maildir_delivery_write(a->d, data, len, &why) < 0) {
		idx_err(error, error_size, "%s", why);
		return errno == ENOSPC || errno == EDQUOT ? MAIL_NOSPACE
							  : MAIL_TEMPFAIL;
	}
	return MAIL_OK;
}

void mail_append_abort(struct mail_append **a)
{
	if (*a == NULL)
		return;
	maildir_delivery_abort(&(*a)->d);
	XFREE(*a);
}

/* Records the delivered file new/name (or cur/) with its flags. */
static enum mail_status idx_append_record(struct mail_view *v, const char *name,
					  bool in_cur, uint32_t flags,
					  const char *const *keywords,
					  size_t keyword_count, time_t date,
					  uint32_t *uid_r, char *error,
					  size_t error_size)
{
	struct lines l = {0};
	size_t blen = strcspn(name, ":");
	const char *info = name[blen] == ':' ? name + blen + 1 : NULL;
	uint64_t kw = 0, size = 0;
	enum mail_status st = idx_begin(v, error, error_size);
	ssize_t known = -1;

	if (st != MAIL_OK)
		return st;
	for (size_t i = 0; i < keyword_count; i++) {
		int bit = idx_keyword_find(v, keywords[i]);

		if (bit < 0 && idx_valid_keyword(keywords[i]) &&
		    v->keyword_count < MAIL_MAX_KEYWORDS) {
			lines_add(&l, "K %zu %s\n", v->keyword_count,
				  keywords[i]);
			st = idx_write(v, &l, true, error, error_size);
			l.len = 0;
			bit = st == MAIL_OK ? (int)v->keyword_count - 1 : -1;
		}
		if (bit < 0) {
			idx_unlock(v);
			free(l.s);
			idx_err(error, error_size, "too many keywords");
			return st == MAIL_OK ? MAIL_LIMIT : st;
		}
		kw |= (uint64_t)1 << bit;
	}
	/* A scan by another session may have indexed the file already. */
	for (size_t i = v->n; i-- > 0;) {
		if (v->e[i].base_len == blen &&
		    memcmp(v->e[i].name, name, blen) == 0) {
			known = (ssize_t)i;
			break;
		}
	}
	maildir_name_wire_size(name, &size);
	if (known >= 0) {
		*uid_r = v->e[known].m.uid;
		lines_add(&l,
			  "F %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64
			  " %c %s\n",
			  *uid_r, v->highest_modseq + 1, flags, kw,
			  in_cur ? 'c' : 'n', info == NULL ? "-" : info);
	} else {
		*uid_r = v->nextuid;
		lines_add(&l,
			  "A %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64
			  " %c %s %lld %" PRIu64 " %.*s\n",
			  *uid_r, v->highest_modseq + 1, flags, kw,
			  in_cur ? 'c' : 'n', info == NULL ? "-" : info,
			  (long long)date, size, (int)blen, name);
	}
	st = idx_write(v, &l, false, error, error_size);
	if (st == MAIL_OK)
		st = idx_commit(v, error, error_size);
	idx_unlock(v);
	free(l.s);
	return st;
}

enum mail_status mail_append_commit(struct mail_append **ap, uint32_t flags,
				    const char *const *keywords,
				    size_t keyword_count, time_t internaldate,
				    uint32_t *uidvalidity_r, uint32_t *uid_r,
				    char *error, size_t error_size)
{
	struct mail_append *a = *ap;
	char name[MAILDIR_MAX_NAME + 1], final[MAILDIR_MAX_NAME + 1];
	struct timespec times[2] = {{0, UTIME_OMIT}, {0, 0}};
	struct mail_view *v = NULL;
	enum mail_status st;
	const char *why = "";
	int err = 0, folder_fd = a->folder_fd, new_fd, cur_fd;
	bool in_cur = false;

	flags &= IDX_SYSTEM_FLAGS;
	if (keyword_count > MAIL_MAX_KEYWORDS) {
		mail_append_abort(ap);
		idx_err(error, error_size, "too many keywords");
		return MAIL_LIMIT;
	}
	/* INV-D1: file and new/ fsynced by the delivery. */
	if (maildir_delivery_commit(&a->d, name, sizeof(name), &err, &why) <
	    0) {
		XFREE(*ap);
		idx_err(error, error_size, "%s", why);
		return err == ENOSPC || err == EDQUOT ? MAIL_NOSPACE
						      : MAIL_TEMPFAIL;
	}
	XFREE(*ap);
	new_fd = openat(folder_fd, "new", IDX_DIR_FLAGS);
	cur_fd = openat(folder_fd, "cur", IDX_DIR_FLAGS);
	snprintf(final, sizeof(final), "%s", name);
	/* Date and flags first: a scan that meets the file before it is
	 * recorded below takes both from the file. */
	times[1].tv_sec =
	    internaldate != 0 ? idx_date(internaldate) : time(NULL);
	if (new_fd < 0 || cur_fd < 0 ||
	    utimensat(new_fd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("mail_index: cannot set an appended message's date");
	if (flags != 0) {
		char info[IDX_MAX_INFO + 1];

		idx_info_with_flags(NULL, flags, info, sizeof(info));
		snprintf(final, sizeof(final), "%s:%s", name, info);
		if (new_fd < 0 || cur_fd < 0 ||
		    renameat(new_fd, name, cur_fd, final) < 0 ||
		    fsync(cur_fd) < 0) {
			st = idx_errno(error, error_size, "flag the message");
			if (new_fd >= 0)
				unlinkat(new_fd, name, 0);
			goto out;
		}
		in_cur = true;
	}
	st = idx_open(folder_fd, false, &v, error, error_size);
	if (st != MAIL_OK) {
		unlinkat(in_cur ? cur_fd : new_fd, final, 0);
		goto out;
	}
	st = idx_append_record(v, final, in_cur, flags, keywords, keyword_count,
			       times[1].tv_sec, uid_r, error, error_size);
	if (st != MAIL_OK)
		unlinkat(in_cur ? cur_fd : new_fd, final, 0);
	*uidvalidity_r = v->uidvalidity;
	mail_view_close(&v);
out:
	if (new_fd >= 0)
		close(new_fd);
	if (cur_fd >= 0)
		close(cur_fd);
	return st;
}

enum mail_status mail_folder_status(int folder_fd,
				    struct mail_folder_status *st, char *error,
				    size_t error_size)
{
	struct mail_view *v;
	enum mail_status s =
	    mail_view_open(folder_fd, true, &v, error, error_size);

	memset(st, 0, sizeof(*st));
	if (s != MAIL_OK)
		return s;
	for (size_t i = 0; i < v->count; i++) {
		const struct mail_msg *m = &v->e[i].m;

		st->messages++;
		st->recent += m->uid > v->recent_uid;
		st->unseen += (m->flags & MAIL_SEEN) == 0;
		st->deleted += (m->flags & MAIL_DELETED) != 0;
		st->size += m->size;
	}
	st->uidnext = v->nextuid;
	st->uidvalidity = v->uidvalidity;
	st->highest_modseq = v->highest_modseq;
	mail_view_close(&v);
	return MAIL_OK;
}

/* ---- the cache ----
 *
 * postd-imap.cache: a 16-byte header ("PDIC", version, UIDVALIDITY,
 * zero), then records of four 32-bit little-endian words (magic, UID,
 * length, checksum) and the blob. Append-only, never fsynced, thrown away
 * when it outgrows MAIL_CACHE_MAX_FILE or its UIDVALIDITY is stale: it
 * is only a cache, and a record that does not check out is a miss. */

#define CACHE_MAGIC 0x52484350u /* "PCHR" */
#define CACHE_HEADER 16
/* Dead records allowed beyond two per live message before the cache
 * starts again (as the log is compacted at 2 x live + 1000 records). */
#define CACHE_SLACK_RECORDS 256

static uint32_t cache_sum(const void *data, size_t len)
{
	return idx_hash_str(data, len);
}

static void cache_reset_map(struct mail_view *v)
{
	free(v->cslots);
	v->cslots = xcalloc(64, sizeof(*v->cslots));
	v->cmask = 63;
	v->cused = 0;
	v->cache_records = 0;
}

static void cache_map_put(struct mail_view *v, uint32_t uid, uint64_t off,
			  uint32_t len)
{
	size_t j;

	if (v->cslots == NULL)
		cache_reset_map(v);
	if ((v->cused + 1) * 2 > v->cmask + 1) {
		struct cache_slot *old = v->cslots;
		size_t oldsize = v->cmask + 1;

		v->cslots = xcalloc(oldsize * 2, sizeof(*v->cslots));
		v->cmask = oldsize * 2 - 1;
		v->cused = 0;
		for (size_t i = 0; i < oldsize; i++) {
			if (old[i].uid != 0)
				cache_map_put(v, old[i].uid, old[i].off,
					      old[i].len);
		}
		free(old);
	}
	j = (uid * 2654435761u) & v->cmask;
	while (v->cslots[j].uid != 0 && v->cslots[j].uid != uid)
		j = (j + 1) & v->cmask;
	v->cused += v->cslots[j].uid == 0;
	v->cslots[j] = (struct cache_slot){uid, len, off};
}

static const struct cache_slot *cache_map_get(const struct mail_view *v,
					      uint32_t uid)
{
	size_t j;

	if (v->cslots == NULL)
		return NULL;
	j = (uid * 2654435761u) & v->cmask;
	while (v->cslots[j].uid != 0) {
		if (v->cslots[j].uid == uid)
			return &v->cslots[j];
		j = (j + 1) & v->cmask;
	}
	return NULL;
}

static void cache_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t cache_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Opens (or with create, makes) the cache file of this UIDVALIDITY. */
static int cache_open(struct mail_view *v, bool create)
{
	unsigned char hdr[CACHE_HEADER];
	struct stat st;
	int fd = openat(v->folder_fd, IDX_CACHE,
			O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 &&
	    (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	     pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	     memcmp(hdr, "PDIC", 4) != 0 || cache_get32(hdr + 4) != 1 ||
	     cache_get32(hdr + 8) != v->uidvalidity)) {
		close(fd);
		fd = -1;
		if (!create)
			return -1;
	}
	if (fd < 0 && create) {
		int tmp = openat(v->folder_fd, IDX_CACHE_TMP,
				 O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
				     O_CLOEXEC,
				 0600);

		if (tmp < 0)
			return -1;
		memcpy(hdr, "PDIC", 4);
		cache_le32(hdr + 4, 1);
		cache_le32(hdr + 8, v->uidvalidity);
		cache_le32(hdr + 12, 0);
		if (write(tmp, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
		    renameat(v->folder_fd, IDX_CACHE_TMP, v->folder_fd,
			     IDX_CACHE) < 0) {
			close(tmp);
			unlinkat(v->folder_fd, IDX_CACHE_TMP, 0);
			return -1;
		}
		close(tmp);
		fd = openat(v->folder_fd, IDX_CACHE,
			    O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
	}
	if (fd < 0)
		return -1;
	if (v->cache_fd >= 0)
		close(v->cache_fd);
	v->cache_fd = fd;
	v->cache_dev = st.st_dev;
	v->cache_ino = st.st_ino;
	v->cache_off = CACHE_HEADER;
	cache_reset_map(v);
	return 0;
}

/* Reads the record headers others appended since we last looked. */
static void cache_tail(struct mail_view *v)
{
	struct stat st;

	if (fstatat(v->folder_fd, IDX_CACHE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if ((v->cache_fd < 0 || st.st_ino != v->cache_ino ||
	     st.st_dev != v->cache_dev) &&
	    cache_open(v, false) < 0)
		return;
	for (;;) {
		unsigned char h[16];
		uint32_t len;

		if (pread(v->cache_fd, h, sizeof(h), (off_t)v->cache_off) !=
			(ssize_t)sizeof(h) ||
		    cache_get32(h) != CACHE_MAGIC)
			break;
		len = cache_get32(h + 8);
		if (len > MAIL_CACHE_MAX_BLOB ||
		    v->cache_off + 16 + len > (uint64_t)st.st_size)
			break;
		cache_map_put(v, cache_get32(h + 4), v->cache_off, len);
		v->cache_off += 16 + (uint64_t)len;
		v->cache_records++;
	}
}

enum mail_status mail_view_cache_get(struct mail_view *view, size_t seq0,
				     void **blob_r, size_t *len_r)
{
	const struct cache_slot *s;
	unsigned char h[16];
	unsigned char *blob;
	uint32_t uid;

	*blob_r = NULL;
	*len_r = 0;
	if (seq0 >= view->count)
		return MAIL_NOT_FOUND;
	uid = view->e[seq0].m.uid;
	s = cache_map_get(view, uid);
	if (s == NULL) {
		cache_tail(view);
		s = cache_map_get(view, uid);
	}
	if (s == NULL || view->cache_fd < 0)
		return MAIL_NOT_FOUND;
	blob = xmalloc((size_t)s->len + 1);
	if (pread(view->cache_fd, h, sizeof(h), (off_t)s->off) !=
		(ssize_t)sizeof(h) ||
	    cache_get32(h + 4) != uid || cache_get32(h + 8) != s->len ||
	    pread(view->cache_fd, blob, s->len, (off_t)s->off + 16) !=
		(ssize_t)s->len ||
	    cache_get32(h + 12) != cache_sum(blob, s->len)) {
		free(blob);
		return MAIL_NOT_FOUND;
	}
	*blob_r = blob;
	*len_r = s->len;
	return MAIL_OK;
}

void mail_view_cache_put(struct mail_view *view, size_t seq0, const void *blob,
			 size_t len)
{
	unsigned char *rec;
	struct stat st;
	off_t end;

	if (seq0 >= view->count || len > MAIL_CACHE_MAX_BLOB)
		return;
	cache_tail(view);
	if (view->cache_fd < 0 && cache_open(view, true) < 0)
		return;
	if (fstat(view->cache_fd, &st) < 0)
		return;
	/* Full, or mostly records of messages long expunged (every new
	 * view reads each record's header once): start again; others see
	 * the new inode. */
	if ((uint64_t)st.st_size + 16 + len > MAIL_CACHE_MAX_FILE ||
	    view->cache_records > 2 * view->count + CACHE_SLACK_RECORDS) {
		unlinkat(view->folder_fd, IDX_CACHE, 0);
		if (cache_open(view, true) < 0)
			return;
	}
	rec = xmalloc(16 + len);
	cache_le32(rec, CACHE_MAGIC);
	cache_le32(rec + 4, view->e[seq0].m.uid);
	cache_le32(rec + 8, (uint32_t)len);
	cache_le32(rec + 12, cache_sum(blob, len));
	memcpy(rec + 16, blob, len);
	/* One write with O_APPEND: records of two writers never mix. */
	if (write(view->cache_fd, rec, 16 + len) == (ssize_t)(16 + len)) {
		end = lseek(view->cache_fd, 0, SEEK_CUR);
		if (end >= (off_t)(16 + len))
			cache_map_put(view, view->e[seq0].m.uid,
				      (uint64_t)end - 16 - len, (uint32_t)len);
		/* Read past it now and counted once; behind another
		 * writer's record, cache_tail() reads and counts both. */
		if (end >= (off_t)(16 + len) &&
		    (uint64_t)end - 16 - len == view->cache_off) {
			view->cache_off = (uint64_t)end;
			view->cache_records++;
		}
	}
	free(rec);
}
