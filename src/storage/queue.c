/*
 * The outbound queue's entries on disk, from the moment spool.c links a
 * message in until src/delivery/ has sent or bounced it; no Maildir here.
 *
 * The outbound queue folder: envelopes that validate themselves (INV-D2)
 * and start-up recovery (INV-D4). Every name below the queue folder is
 * either a fixed folder name or an id that passed queue_id_valid(), and
 * every open is beneath a directory descriptor with O_NOFOLLOW (INV-U1).
 */
#include "storage/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include "lib/log.h"
#include "lib/parse.h"
#include "lib/safe_open.h"
#include "lib/xmalloc.h"

#define QUEUE_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
/* "ID.env" / "ID.msg" in tmp/ and quarantine/. */
#define QUEUE_MAX_FILE_NAME (QUEUE_MAX_ID + 16)
/* What an envelope file must be before anyone reads it. */
static const struct safe_open_rules queue_envelope_rules = {QUEUE_MAX_ENVELOPE,
							    true};
/* Entries of one id kept side by side in quarantine/. */
#define QUEUE_QUARANTINE_TRIES 100

/* A growing text buffer for one envelope (bounded by
 * QUEUE_MAX_ENVELOPE). */
struct queue_text {
	char *data;
	size_t len, size;
	bool overflow;
};

static const char *queue_error(const char *what, int err);
static int queue_subdir(int queue_fd, const char *name);
static void queue_text_add(struct queue_text *t, const char *s, size_t len);
static void queue_text_printf(struct queue_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static bool queue_escape(struct queue_text *t, const char *s, size_t max);
static int queue_unescape(const char *s, size_t len, size_t max, char **out_r);
static int queue_format(const struct queue_envelope *env, struct queue_text *t,
			const char **error_r);
static int queue_write_all(int fd, const char *p, size_t len);
static int queue_write_tmp(int tmp_fd, const char *tmp_name,
			   const struct queue_text *t, const char **error_r);
static int queue_read_file(int dir_fd, const char *name, char **data_r,
			   size_t *len_r, const char **error_r);
static int queue_next_line(char **p, char *end, char **line_r);
static int queue_parse_field(char **p, char *end, const char *key,
			     char **value_r);
static int queue_parse_number(char **p, char *end, const char *key,
			      uint64_t max, uint64_t *v_r);
static int queue_parse_path(const char *value, char **addr_r);
static int queue_parse_rcpt(char *value, struct queue_rcpt *r);
static int queue_parse(char *data, size_t len, const char *id,
		       struct queue_envelope *env, const char **error_r);
static int queue_check_msg(int queue_fd, int msg_dir_fd,
			   const struct queue_envelope *env,
			   const char **error_r);
static int queue_load_fds(int queue_fd, int env_fd, int msg_fd, const char *id,
			  struct queue_envelope **env_r, const char **error_r);
static int queue_lock_in(int msg_fd, const char *id, bool wait,
			 const char **error_r);
static int queue_move(int from_fd, const char *from, int to_fd, const char *to);
static int queue_fsync_dir(int queue_fd, const char *name);
static int queue_quarantine_move(int from_fd, const char *id, int q_fd,
				 const char *ext);
static int queue_hexval(char c);
static const char *queue_state_name(enum queue_rcpt_state s);
static unsigned queue_recover_tmp(int queue_fd);
static int queue_recover_msg(int queue_fd, time_t now,
			     struct queue_recover_stats *r,
			     const char **error_r);
static int queue_list_nothing(void *ctx, const struct queue_envelope *env);
static int queue_load_in(int queue_fd, const char *sub, const char *id,
			 struct queue_envelope **env_r, const char **error_r);
static int queue_list_in(int queue_fd, const char *sub, queue_list_fn *fn,
			 void *ctx, unsigned *quarantined_r,
			 const char **error_r);
static int queue_move_entry(int queue_fd, const char *id, const char *from,
			    const char *to, const char **error_r);

static __thread char queue_errbuf[256];

static const char *queue_error(const char *what, int err)
{
	char sbuf[128];
	const char *s = strerror_r(err, sbuf, sizeof(sbuf));

	snprintf(queue_errbuf, sizeof(queue_errbuf), "%s: %s", what, s);
	return queue_errbuf;
}

static int queue_subdir(int queue_fd, const char *name)
{
	return openat(queue_fd, name, QUEUE_DIR_FLAGS);
}

int queue_open(int data_fd, bool create, const char **error_r)
{
	static const char *const subdirs[] = {
	    QUEUE_SUBDIR_TMP, QUEUE_SUBDIR_MSG, QUEUE_SUBDIR_ENV,
	    QUEUE_SUBDIR_QUARANTINE};
	int fd, sub, saved;

	if (create && mkdirat(data_fd, QUEUE_DIR, 0700) < 0 &&
	    errno != EEXIST) {
		*error_r = queue_error("mkdir queue", errno);
		return -1;
	}
	fd = openat(data_fd, QUEUE_DIR, QUEUE_DIR_FLAGS);
	if (fd < 0) {
		*error_r = queue_error("open queue", errno);
		return -1;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (create && mkdirat(fd, subdirs[i], 0700) < 0 &&
		    errno != EEXIST) {
			*error_r = queue_error("mkdir queue folder", errno);
			goto fail;
		}
		sub = queue_subdir(fd, subdirs[i]);
		if (sub < 0) {
			*error_r = queue_error("open queue folder", errno);
			goto fail;
		}
		close(sub);
	}
	/* hold/ came with the second format: a queue made before it gets
	 * it on the daemon's next start (create); until then it is simply
	 * empty. */
	if (create && mkdirat(fd, QUEUE_SUBDIR_HOLD, 0700) < 0 &&
	    errno != EEXIST) {
		*error_r = queue_error("mkdir queue folder", errno);
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void queue_id_new(char *id_r, size_t id_size)
{
	unsigned char rnd[8];
	char hex[sizeof(rnd) * 2 + 1];
	struct timeval tv;

	if (sodium_init() < 0)
		fatal("sodium_init failed");
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	gettimeofday(&tv, NULL);
	/* Hex time first, so that ids sort roughly by age. */
	snprintf(id_r, id_size, "%09llx%05lx%s", (long long)tv.tv_sec,
		 (long)tv.tv_usec, hex);
}

bool queue_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n] != '\0'; n++) {
		char c = id[n];

		if (n >= QUEUE_MAX_ID ||
		    !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z')))
			return false;
	}
	return n > 0;
}

static void queue_text_add(struct queue_text *t, const char *s, size_t len)
{
	if (t->overflow || len > QUEUE_MAX_ENVELOPE - t->len) {
		t->overflow = true;
		return;
	}
	if (t->len + len + 1 > t->size) {
		size_t size = t->size == 0 ? 1024 : t->size;

		while (size < t->len + len + 1)
			size *= 2;
		t->data = xreallocarray(t->data, size, 1);
		t->size = size;
	}
	memcpy(t->data + t->len, s, len);
	t->len += len;
	t->data[t->len] = '\0';
}

static void queue_text_printf(struct queue_text *t, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		t->overflow = true;
		return;
	}
	queue_text_add(t, line, (size_t)n);
}

/* INV-S2: no CR, LF, NUL or space reaches the envelope. Control bytes
 * are refused outright: no valid path or error text has them. */
static bool queue_escape(struct queue_text *t, const char *s, size_t max)
{
	static const char hexdig[] = "0123456789ABCDEF";
	size_t len = strlen(s);

	if (len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3] = {'+', hexdig[c >> 4], hexdig[c & 15]};

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c > 0x20 && c < 0x7f && c != '+' && c != '=' && c != '<' &&
		    c != '>')
			queue_text_add(t, (const char *)&s[i], 1);
		else
			queue_text_add(t, esc, 3);
	}
	return true;
}

static int queue_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The inverse of queue_escape(): exactly one spelling per byte is
 * accepted, so a garbled field cannot pass as another value. */
static int queue_unescape(const char *s, size_t len, size_t max, char **out_r)
{
	char *out = xmalloc(len + 1);
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			int hi, lo;

			if (len - i < 3)
				goto fail;
			hi = queue_hexval(s[i + 1]);
			lo = queue_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto fail;
			c = (unsigned char)(hi * 16 + lo);
			if (c < 0x20 || c == 0x7f)
				goto fail;
			if (c > 0x20 && c < 0x7f && c != '+' && c != '=' &&
			    c != '<' && c != '>')
				goto fail;
			i += 2;
		} else if (c <= 0x20 || c >= 0x7f || c == '=' || c == '<' ||
			   c == '>') {
			goto fail;
		}
		if (n >= max)
			goto fail;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	*out_r = out;
	return 0;
fail:
	free(out);
	return -1;
}

static const char *queue_state_name(enum queue_rcpt_state s)
{
	switch (s) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_SENT:
		return "sent";
	case QUEUE_RCPT_FAILED:
		return "failed";
	}
	return NULL;
}

static int queue_format(const struct queue_envelope *env, struct queue_text *t,
			const char **error_r)
{
	if (!queue_id_valid(env->id)) {
		*error_r = "invalid queue id";
		return -1;
	}
	if (env->rcpt_count == 0 || env->rcpt_count > QUEUE_MAX_RCPTS ||
	    env->skip > env->size) {
		*error_r = "invalid envelope";
		return -1;
	}
	queue_text_printf(t, "postd-queue %d\n", QUEUE_FORMAT_VERSION);
	queue_text_printf(t, "id %s\n", env->id);
	queue_text_printf(t, "created %" PRIu64 "\n", env->created);
	queue_text_printf(t, "size %" PRIu64 "\n", env->size);
	queue_text_printf(t, "skip %" PRIu64 "\n", env->skip);
	queue_text_add(t, "sender <", 8);
	if (!queue_escape(t, env->sender, SMTP_MAX_PATH)) {
		*error_r = "sender address cannot be queued";
		return -1;
	}
	queue_text_add(t, ">\n", 2);
	queue_text_printf(t, "notified %s\n",
			  env->delay_notified ? "delay" : "-");
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];
		const char *state = queue_state_name(r->state);

		queue_text_add(t, "rcpt <", 6);
		if (state == NULL || r->addr[0] == '\0' ||
		    !queue_escape(t, r->addr, SMTP_MAX_PATH)) {
			*error_r = "recipient cannot be queued";
			return -1;
		}
		queue_text_printf(t, "> %s %" PRIu32 " %" PRIu64 " ", state,
				  r->attempts, r->next_try);
		if (r->last_error == NULL || r->last_error[0] == '\0')
			queue_text_add(t, "-", 1);
		else if (!queue_escape(t, r->last_error, QUEUE_MAX_ERROR)) {
			*error_r = "recipient error text cannot be queued";
			return -1;
		}
		queue_text_add(t, "\n", 1);
	}
	queue_text_add(t, "end\n", 4);
	if (t->overflow) {
		*error_r = "envelope too big";
		return -1;
	}
	return 0;
}

static int queue_write_all(int fd, const char *p, size_t len)
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

/*
 * Writes text as tmp_fd/tmp_name (created, never replaced), fsynced and
 * closed, each step checked (INV-D1; a failed fsync is not retried). On
 * failure nothing is left behind. Returns 0, or -1 with errno and error_r;
 * EEXIST means the name is taken.
 */
static int queue_write_tmp(int tmp_fd, const char *tmp_name,
			   const struct queue_text *t, const char **error_r)
{
	int fd, err, r;

	fd = openat(tmp_fd, tmp_name,
		    O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = queue_error("create envelope", errno);
		return -1;
	}
	if (queue_write_all(fd, t->data, t->len) < 0 || fsync(fd) < 0) {
		err = errno;
		*error_r = queue_error("write envelope", err);
		close(fd);
		unlinkat(tmp_fd, tmp_name, 0);
		errno = err;
		return -1;
	}
	r = close(fd);
	if (r < 0) {
		err = errno;
		*error_r = queue_error("close envelope", err);
		unlinkat(tmp_fd, tmp_name, 0);
		errno = err;
		return -1;
	}
	return 0;
}

int queue_envelope_write(int queue_fd, const struct queue_envelope *env,
			 int *errno_r, const char **error_r)
{
	struct queue_text t = {0};
	char tmp_name[QUEUE_MAX_FILE_NAME];
	int tmp_fd = -1, env_fd = -1, r;
	bool created = false;

	*errno_r = 0;
	if (queue_format(env, &t, error_r) < 0) {
		*errno_r = EINVAL;
		goto fail;
	}
	snprintf(tmp_name, sizeof(tmp_name), "%s.env", env->id);
	tmp_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_TMP);
	env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_ENV);
	if (tmp_fd < 0 || env_fd < 0) {
		*errno_r = errno;
		*error_r = queue_error("open queue folder", errno);
		goto fail;
	}
	if (queue_write_tmp(tmp_fd, tmp_name, &t, error_r) < 0) {
		*errno_r = errno;
		goto fail;
	}
	created = true;
	/* Never replace an entry: ids are unique, and a clash must not
	 * hide another message's envelope. */
	r = renameat2(tmp_fd, tmp_name, env_fd, env->id, RENAME_NOREPLACE);
	if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
		r = linkat(tmp_fd, tmp_name, env_fd, env->id, 0);
		if (r == 0)
			unlinkat(tmp_fd, tmp_name, 0);
	}
	if (r < 0) {
		*errno_r = errno;
		*error_r = queue_error("rename envelope into env/", errno);
		goto fail;
	}
	close(tmp_fd);
	close(env_fd);
	free(t.data);
	return 0;
fail:
	if (created)
		unlinkat(tmp_fd, tmp_name, 0);
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (env_fd >= 0)
		close(env_fd);
	free(t.data);
	errno = *errno_r;
	return -1;
}

/* The whole file, at most QUEUE_MAX_ENVELOPE bytes. Returns 1, 0 if it
 * does not exist, -1 on a read error (errno set) or -2 if too big. */
static int queue_read_file(int dir_fd, const char *name, char **data_r,
			   size_t *len_r, const char **error_r)
{
	struct stat st;
	const char *cause;
	char *data;
	size_t len = 0;
	int fd, saved;

	/* Root reads env/ and hold/ at start-up (queue_recover()), and the
	 * run user owns them: a FIFO must not hang the open, and a link to
	 * a root-only file must not be read. An envelope only ever has one
	 * name (written in tmp/, renamed into place). */
	fd = safe_open_regular(dir_fd, name, O_RDONLY, &queue_envelope_rules,
			       &st, &cause);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		saved = errno;
		snprintf(queue_errbuf, sizeof(queue_errbuf), "envelope %s",
			 cause);
		*error_r = queue_errbuf;
		if (!safe_open_refused(saved))
			*error_r = queue_error("open envelope", saved);
		errno = saved;
		return safe_open_refused(saved) ? -2 : -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	/* Read one byte past the size seen, to notice growth. */
	for (;;) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			*error_r = queue_error("read envelope", errno);
			free(data);
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			*error_r = "envelope changed while read";
			free(data);
			close(fd);
			return -2;
		}
	}
	close(fd);
	data[len] = '\0';
	*data_r = data;
	*len_r = len;
	return 1;
}

/* The next LF-terminated line, NUL-terminated in place. */
static int queue_next_line(char **p, char *end, char **line_r)
{
	char *lf = memchr(*p, '\n', (size_t)(end - *p));

	if (lf == NULL || lf - *p > QUEUE_MAX_LINE)
		return -1;
	*lf = '\0';
	if (memchr(*p, '\r', (size_t)(lf - *p)) != NULL ||
	    strlen(*p) != (size_t)(lf - *p))
		return -1;
	*line_r = *p;
	*p = lf + 1;
	return 0;
}

/* A line "KEY VALUE"; value_r points into the line. */
static int queue_parse_field(char **p, char *end, const char *key,
			     char **value_r)
{
	size_t klen = strlen(key);
	char *line;

	if (queue_next_line(p, end, &line) < 0 ||
	    strncmp(line, key, klen) != 0 || line[klen] != ' ')
		return -1;
	*value_r = line + klen + 1;
	return 0;
}

static int queue_parse_number(char **p, char *end, const char *key,
			      uint64_t max, uint64_t *v_r)
{
	const char *cur;
	char *value;

	if (queue_parse_field(p, end, key, &value) < 0)
		return -1;
	cur = value;
	/* No leading zeros: one spelling per value. */
	if ((cur[0] == '0' && cur[1] != '\0') ||
	    parse_uint64(&cur, max, v_r) < 0 || parse_end(&cur) < 0)
		return -1;
	return 0;
}

/* "<ESCAPED>" or "<>". */
static int queue_parse_path(const char *value, char **addr_r)
{
	size_t len = strlen(value);

	if (len < 2 || value[0] != '<' || value[len - 1] != '>')
		return -1;
	return queue_unescape(value + 1, len - 2, SMTP_MAX_PATH, addr_r);
}

/* "<ADDR> STATE ATTEMPTS NEXT_TRY LAST_ERROR" */
static int queue_parse_rcpt(char *value, struct queue_rcpt *r)
{
	char *fields[5], *save = value, *sp;
	const char *cur;
	uint64_t v;
	size_t n = 0;

	/* Four fields end at a space; the last takes the rest and must
	 * hold none. */
	while (n < 4) {
		sp = strchr(save, ' ');
		if (sp == NULL)
			return -1;
		*sp = '\0';
		fields[n++] = save;
		save = sp + 1;
	}
	fields[n++] = save;
	if (strchr(fields[4], ' ') != NULL)
		return -1;
	if (queue_parse_path(fields[0], &r->addr) < 0)
		return -1;
	if (r->addr[0] == '\0')
		return -1;
	if (strcmp(fields[1], "pending") == 0)
		r->state = QUEUE_RCPT_PENDING;
	else if (strcmp(fields[1], "sent") == 0)
		r->state = QUEUE_RCPT_SENT;
	else if (strcmp(fields[1], "failed") == 0)
		r->state = QUEUE_RCPT_FAILED;
	else
		return -1;
	cur = fields[2];
	if ((cur[0] == '0' && cur[1] != '\0') ||
	    parse_uint64(&cur, UINT32_MAX, &v) < 0 || parse_end(&cur) < 0)
		return -1;
	r->attempts = (uint32_t)v;
	cur = fields[3];
	if ((cur[0] == '0' && cur[1] != '\0') ||
	    parse_uint64(&cur, UINT64_MAX, &r->next_try) < 0 ||
	    parse_end(&cur) < 0)
		return -1;
	if (strcmp(fields[4], "-") != 0 &&
	    queue_unescape(fields[4], strlen(fields[4]), QUEUE_MAX_ERROR,
			   &r->last_error) < 0)
		return -1;
	return 0;
}

/* INV-D2: the fields in their order, and nothing else. */
static int queue_parse(char *data, size_t len, const char *id,
		       struct queue_envelope *env, const char **error_r)
{
	char *p = data, *end = data + len, *line, *value;
	uint64_t version;

	if (queue_parse_number(&p, end, "postd-queue", UINT32_MAX, &version) <
	    0) {
		*error_r = "missing or garbled version line";
		return -1;
	}
	/* Version 1 files (written before the delay notice existed) still
	 * load: they have no "notified" line. */
	if (version != 1 && version != QUEUE_FORMAT_VERSION) {
		*error_r = "unknown envelope version";
		return -1;
	}
	if (queue_parse_field(&p, end, "id", &value) < 0 ||
	    strcmp(value, id) != 0) {
		*error_r = "id does not match the file name";
		return -1;
	}
	snprintf(env->id, sizeof(env->id), "%s", id);
	if (queue_parse_number(&p, end, "created", UINT64_MAX, &env->created) <
		0 ||
	    queue_parse_number(&p, end, "size", UINT64_MAX, &env->size) < 0 ||
	    queue_parse_number(&p, end, "skip", env->size, &env->skip) < 0) {
		*error_r = "garbled created, size or skip";
		return -1;
	}
	if (queue_parse_field(&p, end, "sender", &value) < 0 ||
	    queue_parse_path(value, &env->sender) < 0) {
		*error_r = "garbled sender";
		return -1;
	}
	if (version >= 2) {
		if (queue_parse_field(&p, end, "notified", &value) < 0 ||
		    (strcmp(value, "-") != 0 && strcmp(value, "delay") != 0)) {
			*error_r = "garbled notified line";
			return -1;
		}
		env->delay_notified = strcmp(value, "delay") == 0;
	}
	for (;;) {
		struct queue_rcpt *r;

		if (queue_next_line(&p, end, &line) < 0) {
			*error_r = "truncated envelope (no end marker)";
			return -1;
		}
		if (strcmp(line, "end") == 0)
			break;
		if (strncmp(line, "rcpt ", 5) != 0) {
			*error_r = "unknown envelope line";
			return -1;
		}
		if (env->rcpt_count >= QUEUE_MAX_RCPTS) {
			*error_r = "too many recipients";
			return -1;
		}
		env->rcpts = xreallocarray(env->rcpts, env->rcpt_count + 1,
					   sizeof(*env->rcpts));
		r = &env->rcpts[env->rcpt_count++];
		memset(r, 0, sizeof(*r));
		if (queue_parse_rcpt(line + 5, r) < 0) {
			*error_r = "garbled recipient";
			return -1;
		}
	}
	if (env->rcpt_count == 0) {
		*error_r = "no recipients";
		return -1;
	}
	if (p != end) {
		*error_r = "data after the end marker";
		return -1;
	}
	return 0;
}

/* msg/ID must be a regular file of the recorded size. Returns 0, -1
 * (invalid) or -2 (cannot tell: a read error). */
static int queue_check_msg(int queue_fd, int msg_dir_fd,
			   const struct queue_envelope *env,
			   const char **error_r)
{
	struct stat st;
	int msg_fd = msg_dir_fd >= 0 ? msg_dir_fd
				     : queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	int r;

	if (msg_fd < 0) {
		*error_r = queue_error("open msg/", errno);
		return -2;
	}
	r = fstatat(msg_fd, env->id, &st, AT_SYMLINK_NOFOLLOW);
	if (msg_fd != msg_dir_fd)
		close(msg_fd);
	if (r < 0 && errno == ENOENT) {
		*error_r = "message file missing";
		return -1;
	}
	if (r < 0) {
		*error_r = queue_error("stat message", errno);
		return -2;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != env->size) {
		*error_r = "message file has the wrong size";
		return -1;
	}
	return 0;
}

int queue_entry_load(int queue_fd, const char *id,
		     struct queue_envelope **env_r, const char **error_r)
{
	return queue_load_in(queue_fd, QUEUE_SUBDIR_ENV, id, env_r, error_r);
}

/* queue_entry_load() from env/ or hold/. */
static int queue_load_in(int queue_fd, const char *sub, const char *id,
			 struct queue_envelope **env_r, const char **error_r)
{
	int env_fd, r, saved;

	*env_r = NULL;
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	env_fd = queue_subdir(queue_fd, sub);
	if (env_fd < 0 && errno == ENOENT &&
	    strcmp(sub, QUEUE_SUBDIR_HOLD) == 0)
		return 0;
	if (env_fd < 0) {
		*error_r = queue_error("open envelope folder", errno);
		return -1;
	}
	r = queue_load_fds(queue_fd, env_fd, -1, id, env_r, error_r);
	saved = errno;
	close(env_fd);
	errno = saved;
	return r;
}

/* The loader proper: env_fd is env/ or hold/; msg_fd is msg/ or -1 (then
 * opened by name). Both are borrowed. */
static int queue_load_fds(int queue_fd, int env_fd, int msg_fd, const char *id,
			  struct queue_envelope **env_r, const char **error_r)
{
	struct queue_envelope *env;
	char *data = NULL;
	size_t len = 0;
	int r;

	*env_r = NULL;
	r = queue_read_file(env_fd, id, &data, &len, error_r);
	if (r == 0)
		return 0;
	if (r == -1)
		return -1;
	env = xcalloc(1, sizeof(*env));
	if (r == -2 || queue_parse(data, len, id, env, error_r) < 0 ||
	    (r = queue_check_msg(queue_fd, msg_fd, env, error_r)) == -1) {
		/* INV-D2: never returned, never delivered. */
		free(data);
		queue_envelope_free(&env);
		queue_quarantine(queue_fd, id, *error_r);
		errno = EBADMSG;
		return -1;
	}
	free(data);
	if (r == -2) {
		queue_envelope_free(&env);
		errno = EIO;
		return -1;
	}
	*env_r = env;
	return 1;
}

void queue_envelope_free(struct queue_envelope **envp)
{
	struct queue_envelope *env = *envp;

	if (env == NULL)
		return;
	for (size_t i = 0; i < env->rcpt_count; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].last_error);
	}
	free(env->rcpts);
	free(env->sender);
	XFREE(*envp);
}

/* rename without replacing: a quarantined name is never overwritten. */
static int queue_move(int from_fd, const char *from, int to_fd, const char *to)
{
	int r = renameat2(from_fd, from, to_fd, to, RENAME_NOREPLACE);

	if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
		r = linkat(from_fd, from, to_fd, to, 0);
		if (r == 0)
			r = unlinkat(from_fd, from, 0);
	}
	return r;
}

/* quarantine/ID.EXT, or ID.N.EXT when an earlier entry of the same id
 * is already there: nothing in quarantine/ is ever replaced. 0 also
 * when there was nothing to move. */
static int queue_quarantine_move(int from_fd, const char *id, int q_fd,
				 const char *ext)
{
	char name[QUEUE_MAX_FILE_NAME];

	for (unsigned n = 0; n < QUEUE_QUARANTINE_TRIES; n++) {
		if (n == 0)
			snprintf(name, sizeof(name), "%s.%s", id, ext);
		else
			snprintf(name, sizeof(name), "%s.%u.%s", id, n, ext);
		if (queue_move(from_fd, id, q_fd, name) == 0 || errno == ENOENT)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

int queue_quarantine(int queue_fd, const char *id, const char *reason)
{
	static const char *const subs[] = {QUEUE_SUBDIR_ENV, QUEUE_SUBDIR_HOLD,
					   QUEUE_SUBDIR_MSG};
	static const char *const exts[] = {"env", "env", "msg"};
	char escaped[256];
	int q_fd, rc = 0;

	if (!queue_id_valid(id))
		return -1;
	q_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_QUARANTINE);
	if (q_fd < 0) {
		log_error("queue: cannot open quarantine/: %s",
			  strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		int fd = queue_subdir(queue_fd, subs[i]);

		if (fd < 0 && errno == ENOENT && i == 1)
			continue; /* a queue without hold/ yet */
		if (fd < 0 || queue_quarantine_move(fd, id, q_fd, exts[i]) < 0)
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	if (fsync(q_fd) < 0)
		rc = -1;
	close(q_fd);
	log_escape(escaped, sizeof(escaped), reason, strlen(reason));
	log_warn("queue: entry %s quarantined: %s%s", id, escaped,
		 rc < 0 ? " (moving it failed)" : "");
	return rc;
}

int queue_list(int queue_fd, queue_list_fn *fn, void *ctx,
	       unsigned *quarantined_r, const char **error_r)
{
	return queue_list_in(queue_fd, QUEUE_SUBDIR_ENV, fn, ctx, quarantined_r,
			     error_r);
}

int queue_list_held(int queue_fd, queue_list_fn *fn, void *ctx,
		    unsigned *quarantined_r, const char **error_r)
{
	return queue_list_in(queue_fd, QUEUE_SUBDIR_HOLD, fn, ctx,
			     quarantined_r, error_r);
}

static int queue_list_in(int queue_fd, const char *sub, queue_list_fn *fn,
			 void *ctx, unsigned *quarantined_r,
			 const char **error_r)
{
	struct queue_envelope *env;
	struct dirent *de;
	const char *error;
	DIR *dir;
	int fd, msg_fd, r, rc = 0;

	if (quarantined_r != NULL)
		*quarantined_r = 0;
	fd = queue_subdir(queue_fd, sub);
	if (fd < 0 && errno == ENOENT && strcmp(sub, QUEUE_SUBDIR_HOLD) == 0)
		return 0;
	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		*error_r = queue_error("open envelope folder", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Opened once for the walk, not once per entry (-1: by name). */
	msg_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	while (rc == 0 && (errno = 0, de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!queue_id_valid(de->d_name)) {
			/* Not ours to parse; quarantine cannot name it
			 * either, so it is only reported. */
			log_warn("queue: ignoring a file with an invalid id "
				 "in %s/",
				 sub);
			continue;
		}
		r = queue_load_fds(queue_fd, fd, msg_fd, de->d_name, &env,
				   &error);
		if (r < 0 && errno == EBADMSG) {
			if (quarantined_r != NULL)
				(*quarantined_r)++;
			continue;
		}
		if (r < 0) {
			*error_r = error;
			rc = -1;
			break;
		}
		if (r == 0)
			continue; /* deleted meanwhile */
		rc = fn(ctx, env);
		queue_envelope_free(&env);
	}
	if (rc == 0 && de == NULL && errno != 0) {
		*error_r = queue_error("read envelope folder", errno);
		rc = -1;
	}
	if (msg_fd >= 0)
		close(msg_fd);
	closedir(dir);
	return rc;
}

static int queue_fsync_dir(int queue_fd, const char *name)
{
	int fd = queue_subdir(queue_fd, name), r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

int queue_delete(int queue_fd, const char *id, const char **error_r)
{
	int env_fd, msg_fd, r;

	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_ENV);
	if (env_fd < 0) {
		*error_r = queue_error("open env/", errno);
		return -1;
	}
	r = unlinkat(env_fd, id, 0);
	close(env_fd);
	if (r < 0 && errno == ENOENT) {
		/* A held entry can be deleted too. */
		env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_HOLD);
		r = env_fd < 0 ? -1 : unlinkat(env_fd, id, 0);
		if (r == 0)
			r = fsync(env_fd);
		if (env_fd >= 0)
			close(env_fd);
		if (env_fd < 0)
			errno = ENOENT;
	}
	if (r < 0) {
		*error_r = errno == ENOENT
			       ? "no such queue entry"
			       : queue_error("remove envelope", errno);
		return -1;
	}
	msg_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	if (msg_fd < 0 || (unlinkat(msg_fd, id, 0) < 0 && errno != ENOENT)) {
		*error_r = queue_error("remove message", errno);
		if (msg_fd >= 0)
			close(msg_fd);
		return -1;
	}
	close(msg_fd);
	if (queue_fsync_dir(queue_fd, QUEUE_SUBDIR_ENV) < 0 ||
	    queue_fsync_dir(queue_fd, QUEUE_SUBDIR_MSG) < 0) {
		*error_r = queue_error("fsync queue folder", errno);
		return -1;
	}
	return 0;
}

/* Removes every file in tmp/. */
static unsigned queue_recover_tmp(int queue_fd)
{
	struct dirent *de;
	unsigned removed = 0;
	DIR *dir;
	int fd = queue_subdir(queue_fd, QUEUE_SUBDIR_TMP);

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}

/* Messages without an envelope, old enough not to be in flight. */
static int queue_recover_msg(int queue_fd, time_t now,
			     struct queue_recover_stats *r,
			     const char **error_r)
{
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int msg_fd, env_fd, hold_fd;

	hold_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_HOLD);
	env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_ENV);
	msg_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	if (env_fd < 0 || msg_fd < 0 || (dir = fdopendir(msg_fd)) == NULL) {
		*error_r = queue_error("open queue folder", errno);
		if (env_fd >= 0)
			close(env_fd);
		if (msg_fd >= 0)
			close(msg_fd);
		if (hold_fd >= 0)
			close(hold_fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || !queue_id_valid(de->d_name))
			continue;
		if (fstatat(env_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			0 ||
		    errno != ENOENT)
			continue;
		/* A held entry is no orphan. */
		if (hold_fd >= 0 && (fstatat(hold_fd, de->d_name, &st,
					     AT_SYMLINK_NOFOLLOW) == 0 ||
				     errno != ENOENT))
			continue;
		if (fstatat(msg_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_mtime >= now - QUEUE_ORPHAN_AGE)
			continue;
		if (queue_quarantine(queue_fd, de->d_name,
				     "message without an envelope") == 0)
			r->quarantined++;
	}
	closedir(dir);
	close(env_fd);
	if (hold_fd >= 0)
		close(hold_fd);
	return 0;
}

static int queue_list_nothing(void *ctx, const struct queue_envelope *env)
{
	(void)ctx;
	(void)env;
	return 0;
}

int queue_recover(int queue_fd, time_t now, struct queue_recover_stats *r,
		  const char **error_r)
{
	unsigned quarantined;

	r->tmp_removed = queue_recover_tmp(queue_fd);
	r->quarantined = 0;
	/* INV-D4: envelopes first, so that a message whose envelope was
	 * just quarantined is not looked at twice. */
	if (queue_list(queue_fd, queue_list_nothing, NULL, &quarantined,
		       error_r) < 0)
		return -1;
	r->quarantined += quarantined;
	if (queue_list_held(queue_fd, queue_list_nothing, NULL, &quarantined,
			    error_r) < 0)
		return -1;
	r->quarantined += quarantined;
	if (queue_recover_msg(queue_fd, now, r, error_r) < 0)
		return -1;
	return 0;
}

int queue_entry_lock(int queue_fd, const char *id, bool wait,
		     const char **error_r)
{
	int msg_fd, fd, saved;

	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	msg_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	if (msg_fd < 0) {
		*error_r = queue_error("open msg/", errno);
		return -1;
	}
	fd = queue_lock_in(msg_fd, id, wait, error_r);
	saved = errno;
	close(msg_fd);
	errno = saved;
	return fd;
}

/* queue_entry_lock() beneath an open msg/. */
static int queue_lock_in(int msg_fd, const char *id, bool wait,
			 const char **error_r)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat st;
	int fd, r, saved;

	fd = openat(msg_fd, id, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	saved = errno;
	if (fd < 0) {
		*error_r = saved == ENOENT ? "no such queue entry"
					   : queue_error("open message", saved);
		errno = saved;
		return -1;
	}
	/* OFD locks belong to the open file description, not the process:
	 * two descriptors of one process exclude each other too, and
	 * closing some other descriptor of the file never drops it. */
	do
		r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		saved = errno == EACCES ? EAGAIN : errno;
		*error_r = saved == EAGAIN
			       ? "queue entry is busy"
			       : queue_error("lock queue entry", saved);
		close(fd);
		errno = saved;
		return -1;
	}
	/* Deleted while we waited: the lock is on a dead inode. */
	if (fstat(fd, &st) < 0 || st.st_nlink == 0) {
		close(fd);
		*error_r = "no such queue entry";
		errno = ENOENT;
		return -1;
	}
	return fd;
}

void queue_entry_unlock(int *lock_fd)
{
	if (*lock_fd >= 0) {
		/* Closing the only descriptor of the description releases
		 * the OFD lock. */
		close(*lock_fd);
		*lock_fd = -1;
	}
}

int queue_envelope_update(int queue_fd, const struct queue_envelope *env,
			  const char **error_r)
{
	static unsigned counter;
	struct queue_text t = {0};
	char tmp_name[QUEUE_MAX_FILE_NAME + 16];
	int tmp_fd = -1, env_fd = -1, err = 0, r;
	bool created = false;
	struct stat st;

	if (queue_format(env, &t, error_r) < 0) {
		err = EINVAL;
		goto fail;
	}
	tmp_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_TMP);
	env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_ENV);
	if (tmp_fd < 0 || env_fd < 0) {
		err = errno;
		*error_r = queue_error("open queue folder", err);
		goto fail;
	}
	/* Checked under the caller's lock: hold and delete take it too, so
	 * env/ID cannot go away between this check and the rename. */
	if (fstatat(env_fd, env->id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		err = errno;
		*error_r = err == ENOENT ? "no such queue entry"
					 : queue_error("stat envelope", err);
		goto fail;
	}
	for (unsigned i = 0;; i++) {
		snprintf(tmp_name, sizeof(tmp_name), "%s.env.%u", env->id,
			 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
		r = queue_write_tmp(tmp_fd, tmp_name, &t, error_r);
		if (r == 0 || errno != EEXIST || i >= QUEUE_QUARANTINE_TRIES)
			break;
	}
	if (r < 0) {
		err = errno;
		goto fail;
	}
	created = true;
	if (renameat(tmp_fd, tmp_name, env_fd, env->id) < 0) {
		err = errno;
		*error_r = queue_error("rename envelope into env/", err);
		goto fail;
	}
	created = false;
	if (fsync(env_fd) < 0) {
		err = errno;
		*error_r = queue_error("fsync env/", err);
		goto fail;
	}
	close(tmp_fd);
	close(env_fd);
	free(t.data);
	return 0;
fail:
	if (created)
		unlinkat(tmp_fd, tmp_name, 0);
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (env_fd >= 0)
		close(env_fd);
	free(t.data);
	errno = err;
	return -1;
}

/* Renames from/ID to to/ID (never replacing) under the entry's lock and
 * fsyncs both folders. */
static int queue_move_entry(int queue_fd, const char *id, const char *from,
			    const char *to, const char **error_r)
{
	int lock_fd, from_fd = -1, to_fd = -1, err = 0;

	lock_fd = queue_entry_lock(queue_fd, id, true, error_r);
	if (lock_fd < 0)
		return -1;
	/* A queue made before hold/ existed (or by a first start that does
	 * not know it) gets the folder on the first hold; postctl has
	 * become the queue's owner by now, so it is owned right. */
	if (strcmp(to, QUEUE_SUBDIR_HOLD) == 0 &&
	    mkdirat(queue_fd, QUEUE_SUBDIR_HOLD, 0700) == 0 &&
	    fsync(queue_fd) < 0) {
		err = errno;
		*error_r = queue_error("fsync queue folder", err);
		goto out;
	}
	from_fd = queue_subdir(queue_fd, from);
	to_fd = queue_subdir(queue_fd, to);
	if (from_fd < 0 || to_fd < 0) {
		err = errno;
		*error_r = err == ENOENT
			       ? "no such queue entry"
			       : queue_error("open queue folder", err);
		goto out;
	}
	if (queue_move(from_fd, id, to_fd, id) < 0) {
		err = errno;
		*error_r = err == ENOENT ? "no such queue entry"
			   : err == EEXIST
			       ? "entry exists in both folders"
			       : queue_error("rename envelope", err);
		goto out;
	}
	/* The destination first: the entry must not vanish from both. */
	if (fsync(to_fd) < 0 || fsync(from_fd) < 0) {
		err = errno;
		*error_r = queue_error("fsync queue folder", err);
	}
out:
	if (from_fd >= 0)
		close(from_fd);
	if (to_fd >= 0)
		close(to_fd);
	queue_entry_unlock(&lock_fd);
	errno = err;
	return err == 0 ? 0 : -1;
}

int queue_hold(int queue_fd, const char *id, const char **error_r)
{
	return queue_move_entry(queue_fd, id, QUEUE_SUBDIR_ENV,
				QUEUE_SUBDIR_HOLD, error_r);
}

int queue_release(int queue_fd, const char *id, const char **error_r)
{
	return queue_move_entry(queue_fd, id, QUEUE_SUBDIR_HOLD,
				QUEUE_SUBDIR_ENV, error_r);
}

int queue_retry_now(int queue_fd, const char *id, const char **error_r)
{
	struct queue_envelope *env = NULL;
	int lock_fd, r, err = 0;

	lock_fd = queue_entry_lock(queue_fd, id, true, error_r);
	if (lock_fd < 0)
		return -1;
	r = queue_entry_load(queue_fd, id, &env, error_r);
	if (r <= 0) {
		err = r == 0 ? ENOENT : errno;
		if (r == 0)
			*error_r = "no such queue entry";
		goto out;
	}
	for (size_t i = 0; i < env->rcpt_count; i++)
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING)
			env->rcpts[i].next_try = 0;
	if (queue_envelope_update(queue_fd, env, error_r) < 0)
		err = errno;
out:
	queue_envelope_free(&env);
	queue_entry_unlock(&lock_fd);
	errno = err;
	return err == 0 ? 0 : -1;
}

int queue_dirs_open(int queue_fd, struct queue_dirs *dirs_r,
		    const char **error_r)
{
	dirs_r->queue_fd = queue_fd;
	dirs_r->env_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_ENV);
	dirs_r->msg_fd = queue_subdir(queue_fd, QUEUE_SUBDIR_MSG);
	if (dirs_r->env_fd < 0 || dirs_r->msg_fd < 0) {
		int saved = errno;

		*error_r = queue_error("open queue folder", saved);
		queue_dirs_close(dirs_r);
		errno = saved;
		return -1;
	}
	return 0;
}

void queue_dirs_close(struct queue_dirs *dirs)
{
	if (dirs->env_fd >= 0)
		close(dirs->env_fd);
	if (dirs->msg_fd >= 0)
		close(dirs->msg_fd);
	dirs->env_fd = dirs->msg_fd = -1;
}

int queue_entry_lock_at(const struct queue_dirs *dirs, const char *id,
			bool wait, const char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	return queue_lock_in(dirs->msg_fd, id, wait, error_r);
}

int queue_entry_load_at(const struct queue_dirs *dirs, const char *id,
			struct queue_envelope **env_r, const char **error_r)
{
	*env_r = NULL;
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	return queue_load_fds(dirs->queue_fd, dirs->env_fd, dirs->msg_fd, id,
			      env_r, error_r);
}

/* env/ID first: once it is gone the entry no longer exists, and a crash
 * before msg/ID goes leaves an orphan that recovery quarantines, never a
 * delivery (INV-D4). No fsync here: see queue.h. */
int queue_entry_remove(const struct queue_dirs *dirs, const char *id,
		       const char **error_r)
{
	if (!queue_id_valid(id)) {
		*error_r = "invalid queue id";
		errno = EINVAL;
		return -1;
	}
	if (unlinkat(dirs->env_fd, id, 0) < 0) {
		*error_r = errno == ENOENT
			       ? "no such queue entry"
			       : queue_error("remove envelope", errno);
		return -1;
	}
	if (unlinkat(dirs->msg_fd, id, 0) < 0 && errno != ENOENT) {
		*error_r = queue_error("remove message", errno);
		return -1;
	}
	return 0;
}

int queue_dirs_sync(const struct queue_dirs *dirs, const char **error_r)
{
	if (fsync(dirs->env_fd) < 0) {
		*error_r = queue_error("fsync env/", errno);
		return -1;
	}
	if (fsync(dirs->msg_fd) < 0) {
		*error_r = queue_error("fsync msg/", errno);
		return -1;
	}
	return 0;
}

int queue_read_header(int queue_fd, const struct queue_envelope *env, char *buf,
		      size_t size, size_t *len_r, size_t *end_r, bool *cut_r,
		      const char **error_r)
{
	const char *blank;
	size_t len = 0;
	int msg_dir, fd, err;

	msg_dir = openat(queue_fd, QUEUE_SUBDIR_MSG,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	fd = msg_dir < 0
		 ? -1
		 : openat(msg_dir, env->id, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	if (msg_dir >= 0)
		close(msg_dir);
	if (fd < 0) {
		errno = err;
		*error_r = "cannot open the message";
		return -1;
	}
	while (len < size) {
		ssize_t n =
		    pread(fd, buf + len, size - len, (off_t)(env->skip + len));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			close(fd);
			errno = err;
			*error_r = "cannot read the message";
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*len_r = len;
	*cut_r = false;
	if (len > 0 && buf[0] == '\n') {
		*end_r = 0;
	} else if ((blank = memmem(buf, len, "\n\n", 2)) != NULL) {
		*end_r = (size_t)(blank - buf) + 1;
	} else if (len == size) {
		blank = memrchr(buf, '\n', len);
		*end_r = blank != NULL ? (size_t)(blank - buf) + 1 : len;
		*cut_r = true;
	} else {
		*end_r = len; /* all header, no body */
	}
	return 0;
}
