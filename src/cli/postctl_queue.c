/*
 * postctl queue: list, show, delete, retry, hold and release entries of
 * the outbound queue (DATA_DIR/queue, see storage/queue.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli/postctl.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "storage/queue.h"

/* One line of "queue list". */
struct postctl_queue_item {
	char id[QUEUE_MAX_ID + 1];
	uint64_t created;
	uint64_t size;
	char *sender;
	size_t rcpt_count;
	uint32_t attempts; /* the most any recipient had */
	uint64_t next_try; /* earliest pending recipient; UINT64_MAX: none */
	bool held;
};

struct postctl_queue_items {
	struct postctl_queue_item *v;
	size_t count;
	bool held; /* the walk in progress is over hold/ */
};

/* The search of "show" through hold/. */
struct postctl_queue_find {
	const char *id;
	struct queue_envelope *env;
};

static int postctl_queue_open(const struct config *cfg, int *queue_fd_r);
static void postctl_format_age(uint64_t created, char *out, size_t size);
static int postctl_queue_collect(void *ctx, const struct queue_envelope *env);
static int postctl_queue_item_cmp(const void *a, const void *b);
static int postctl_queue_list(const struct config *cfg);
static void postctl_print_escaped(const char *s, size_t len, bool keep_lf);
static int postctl_queue_print_header(int queue_fd,
				      const struct queue_envelope *env);
static int postctl_queue_show(const struct config *cfg, const char *id);
static int postctl_queue_delete(const struct config *cfg, const char *id);
static const char *postctl_rcpt_state(enum queue_rcpt_state s);
static void postctl_format_next(uint64_t next_try, char *out, size_t size);
static void postctl_format_date(uint64_t t, char *out, size_t size);
static int postctl_queue_find_held(void *ctx, const struct queue_envelope *env);
static int postctl_queue_no_entry(const char *id, int queue_fd);
static int postctl_queue_retry_one(int queue_fd, const char *id, bool quiet);
static int postctl_queue_collect_id(void *ctx,
				    const struct queue_envelope *env);
static int postctl_queue_retry(const struct config *cfg, const char *id);
static int postctl_queue_hold(const struct config *cfg, const char *id,
			      bool hold);

/*
 * DATA_DIR/queue, opened beneath DATA_DIR with O_NOFOLLOW, then the
 * privileges dropped as for deliver: whatever postctl renames (into
 * quarantine/) or removes stays owned by the account postd runs as.
 * Returns EX_OK and *queue_fd_r (-1 when there is no queue yet), or an
 * exit code with a message printed.
 */
static int postctl_queue_open(const struct config *cfg, int *queue_fd_r)
{
	const char *error;
	int data_fd;

	*queue_fd_r = -1;
	data_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data_fd < 0 && errno == ENOENT)
		return EX_OK;
	if (data_fd < 0) {
		fprintf(stderr, "postctl: cannot open data_dir %s: %s\n",
			cfg->data_dir, strerror(errno));
		return EX_TEMPFAIL;
	}
	*queue_fd_r = queue_open(data_fd, false, &error);
	close(data_fd);
	if (*queue_fd_r < 0 && errno != ENOENT) {
		fprintf(stderr, "postctl: cannot open the queue in %s: %s\n",
			cfg->data_dir, error);
		return EX_TEMPFAIL;
	}
	if (postctl_drop_privileges(cfg) < 0) {
		if (*queue_fd_r >= 0)
			close(*queue_fd_r);
		*queue_fd_r = -1;
		return EX_TEMPFAIL;
	}
	return EX_OK;
}

/* "45s", "12m", "5h", "3d"; "0s" for a time in the future (a clock that
 * went back). */
static void postctl_format_age(uint64_t created, char *out, size_t size)
{
	time_t now = time(NULL);
	uint64_t age = (uint64_t)now > created ? (uint64_t)now - created : 0;

	if (age < 120)
		snprintf(out, size, "%" PRIu64 "s", age);
	else if (age < 2 * 3600)
		snprintf(out, size, "%" PRIu64 "m", age / 60);
	else if (age < 2 * 86400)
		snprintf(out, size, "%" PRIu64 "h", age / 3600);
	else
		snprintf(out, size, "%" PRIu64 "d", age / 86400);
}

static int postctl_queue_collect(void *ctx, const struct queue_envelope *env)
{
	struct postctl_queue_items *items = ctx;
	struct postctl_queue_item *it;

	items->v = xreallocarray(items->v, items->count + 1, sizeof(*items->v));
	it = &items->v[items->count++];
	snprintf(it->id, sizeof(it->id), "%s", env->id);
	it->created = env->created;
	it->size = env->size;
	it->sender = xstrdup(env->sender);
	it->rcpt_count = env->rcpt_count;
	it->held = items->held;
	it->attempts = 0;
	it->next_try = UINT64_MAX;
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (r->attempts > it->attempts)
			it->attempts = r->attempts;
		if (r->state == QUEUE_RCPT_PENDING &&
		    r->next_try < it->next_try)
			it->next_try = r->next_try;
	}
	return 0;
}

/* "now", "in 45s", "in 12m", "in 5h", "in 3d"; "-" when nothing is
 * pending. */
static void postctl_format_next(uint64_t next_try, char *out, size_t size)
{
	time_t now = time(NULL);
	uint64_t d;

	if (next_try == UINT64_MAX) {
		snprintf(out, size, "-");
		return;
	}
	if (next_try <= (uint64_t)now) {
		snprintf(out, size, "now");
		return;
	}
	d = next_try - (uint64_t)now;
	if (d < 120)
		snprintf(out, size, "in %" PRIu64 "s", d);
	else if (d < 2 * 3600)
		snprintf(out, size, "in %" PRIu64 "m", d / 60);
	else if (d < 2 * 86400)
		snprintf(out, size, "in %" PRIu64 "h", d / 3600);
	else
		snprintf(out, size, "in %" PRIu64 "d", d / 86400);
}

static void postctl_format_date(uint64_t t, char *out, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > (uint64_t)INT64_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "?");
}

/* Oldest first; ids break ties so the order is stable. */
static int postctl_queue_item_cmp(const void *a, const void *b)
{
	const struct postctl_queue_item *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

int postctl_stdout_done(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "postctl: cannot write the output: %s\n",
			strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

static int postctl_queue_list(const struct config *cfg)
{
	struct postctl_queue_items items = {NULL, 0, false};
	unsigned quarantined = 0;
	uint64_t total = 0;
	const char *error;
	int queue_fd, rc;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd >= 0) {
		unsigned held_bad = 0;

		if (queue_list(queue_fd, postctl_queue_collect, &items,
			       &quarantined, &error) < 0) {
			fprintf(stderr, "postctl: cannot read the queue: %s\n",
				error);
			rc = EX_TEMPFAIL;
		}
		items.held = true;
		if (queue_list_held(queue_fd, postctl_queue_collect, &items,
				    &held_bad, &error) < 0) {
			fprintf(stderr,
				"postctl: cannot read the held entries: %s\n",
				error);
			rc = EX_TEMPFAIL;
		}
		quarantined += held_bad;
		close(queue_fd);
	}
	if (items.count > 0)
		qsort(items.v, items.count, sizeof(*items.v),
		      postctl_queue_item_cmp);
	for (size_t i = 0; i < items.count; i++) {
		const struct postctl_queue_item *it = &items.v[i];
		char age[32], next[32], sender[4 * SMTP_MAX_PATH + 1];

		postctl_format_age(it->created, age, sizeof(age));
		postctl_format_next(it->held ? UINT64_MAX : it->next_try, next,
				    sizeof(next));
		/* Addresses are peer data: escaped for the terminal. */
		log_escape(sender, sizeof(sender), it->sender,
			   strlen(it->sender));
		printf("%s %s %" PRIu64 " <%s> %zu attempts=%" PRIu32
		       " next=%s%s\n",
		       it->id, age, it->size, sender, it->rcpt_count,
		       it->attempts, it->held ? "-" : next,
		       it->held ? " HELD" : "");
		total += it->size;
		free(it->sender);
	}
	free(items.v);
	if (items.count == 0)
		printf("queue is empty\n");
	else
		printf("%zu %s, %" PRIu64 " bytes\n", items.count,
		       items.count == 1 ? "entry" : "entries", total);
	if (quarantined > 0)
		fprintf(stderr,
			"postctl: %u invalid %s moved to %s/%s/%s/ (see the "
			"log)\n",
			quarantined, quarantined == 1 ? "entry" : "entries",
			cfg->data_dir, QUEUE_DIR, QUEUE_SUBDIR_QUARANTINE);
	if (postctl_stdout_done() != EX_OK)
		return EX_IOERR;
	return rc;
}

/* Message text for the terminal: control bytes (but LF and tab, when
 * keep_lf) and bytes >= 0x7f as \xHH, so a message cannot send escape
 * sequences to the operator's terminal. */
static void postctl_print_escaped(const char *s, size_t len, bool keep_lf)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((keep_lf && (c == '\n' || c == '\t')) ||
		    (c >= 0x20 && c < 0x7f && c != '\\'))
			putchar(c);
		else
			printf("\\x%02X", c);
	}
}

/* The header section of msg/ID from offset skip, up to the empty line
 * (at most QUEUE_SHOW_MAX_HEADER bytes). */
static int postctl_queue_print_header(int queue_fd,
				      const struct queue_envelope *env)
{
	static char buf[QUEUE_SHOW_MAX_HEADER];
	const char *error;
	size_t len, end;
	bool cut;

	if (queue_read_header(queue_fd, env, buf, sizeof(buf), &len, &end, &cut,
			      &error) < 0) {
		fprintf(stderr, "postctl: %s: %s\n", error, strerror(errno));
		return -1;
	}
	postctl_print_escaped(buf, end, true);
	if (end > 0 && buf[end - 1] != '\n')
		putchar('\n');
	if (cut)
		printf("[header longer than %d bytes: cut]\n",
		       QUEUE_SHOW_MAX_HEADER);
	return 0;
}

static const char *postctl_rcpt_state(enum queue_rcpt_state s)
{
	switch (s) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_SENT:
		return "sent";
	case QUEUE_RCPT_FAILED:
		return "failed";
	}
	return "?";
}

static int postctl_queue_show(const struct config *cfg, const char *id)
{
	struct queue_envelope *env = NULL;
	char age[32], when[64];
	const char *error;
	bool held = false;
	struct tm tm;
	time_t t;
	int queue_fd, rc, r;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd < 0) {
		fprintf(stderr, "postctl: no queue entry %s\n", id);
		return EX_NOUSER;
	}
	r = queue_entry_load(queue_fd, id, &env, &error);
	if (r == 0) {
		struct postctl_queue_find find = {id, NULL};

		/* Not in env/: perhaps on hold. */
		if (queue_list_held(queue_fd, postctl_queue_find_held, &find,
				    NULL, &error) < 0 ||
		    find.env == NULL) {
			fprintf(stderr, "postctl: no queue entry %s\n", id);
			close(queue_fd);
			return EX_NOUSER;
		}
		env = find.env;
		held = true;
		r = 1;
	}
	if (r < 0) {
		bool bad = errno == EBADMSG;

		fprintf(stderr, "postctl: queue entry %s: %s%s\n", id, error,
			bad ? " (moved to quarantine/)" : "");
		close(queue_fd);
		return bad ? EX_DATAERR : EX_TEMPFAIL;
	}
	t = (time_t)env->created;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	postctl_format_age(env->created, age, sizeof(age));
	printf("id: %s\n", env->id);
	printf("state: %s\n",
	       held ? "held (postctl queue release ID)" : "queued");
	printf("created: %s (%s ago)\n", when, age);
	printf("size: %" PRIu64 "\n", env->size);
	printf("skip: %" PRIu64 "\n", env->skip);
	printf("sender: <");
	postctl_print_escaped(env->sender, strlen(env->sender), false);
	printf(">\n");
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const struct queue_rcpt *r_ = &env->rcpts[i];

		char next_date[64], next_rel[32];

		if (r_->state == QUEUE_RCPT_PENDING) {
			postctl_format_date(r_->next_try, next_date,
					    sizeof(next_date));
			postctl_format_next(held ? UINT64_MAX : r_->next_try,
					    next_rel, sizeof(next_rel));
			if (r_->next_try == 0)
				snprintf(next_date, sizeof(next_date), "now");
		} else {
			snprintf(next_date, sizeof(next_date), "-");
			next_rel[0] = '\0';
		}
		printf("rcpt: <");
		postctl_print_escaped(r_->addr, strlen(r_->addr), false);
		printf(
		    "> %s attempts=%" PRIu32 " next-try=%s%s%s%s last-error=",
		    postctl_rcpt_state(r_->state), r_->attempts, next_date,
		    next_rel[0] != '\0' && strcmp(next_rel, "now") != 0 ? " ("
									: "",
		    next_rel[0] != '\0' && strcmp(next_rel, "now") != 0
			? next_rel
			: "",
		    next_rel[0] != '\0' && strcmp(next_rel, "now") != 0 ? ")"
									: "");
		if (r_->last_error != NULL)
			postctl_print_escaped(r_->last_error,
					      strlen(r_->last_error), false);
		else
			putchar('-');
		putchar('\n');
	}
	printf("\n");
	r = postctl_queue_print_header(queue_fd, env);
	queue_envelope_free(&env);
	close(queue_fd);
	if (postctl_stdout_done() != EX_OK)
		return EX_IOERR;
	return r < 0 ? EX_TEMPFAIL : EX_OK;
}

static int postctl_queue_delete(const struct config *cfg, const char *id)
{
	const char *error;
	int queue_fd, rc, lock_fd, r;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd < 0) {
		fprintf(stderr, "postctl: no queue entry %s\n", id);
		return EX_NOUSER;
	}
	/* Wait for an attempt in flight: the runner must not write the
	 * envelope back after it was removed. */
	lock_fd = queue_entry_lock(queue_fd, id, true, &error);
	r = queue_delete(queue_fd, id, &error);
	queue_entry_unlock(&lock_fd);
	if (r < 0) {
		int err = errno;

		fprintf(stderr, "postctl: cannot delete queue entry %s: %s\n",
			id, error);
		close(queue_fd);
		return err == ENOENT ? EX_NOUSER : EX_TEMPFAIL;
	}
	close(queue_fd);
	return EX_OK;
}

static int postctl_queue_find_held(void *ctx, const struct queue_envelope *env)
{
	struct postctl_queue_find *find = ctx;
	struct queue_envelope *copy;

	if (strcmp(env->id, find->id) != 0)
		return 0;
	/* The walk frees its envelope: keep a deep copy. */
	copy = xcalloc(1, sizeof(*copy));
	*copy = *env;
	copy->sender = xstrdup(env->sender);
	copy->rcpts =
	    xreallocarray(NULL, env->rcpt_count, sizeof(*copy->rcpts));
	for (size_t i = 0; i < env->rcpt_count; i++) {
		copy->rcpts[i] = env->rcpts[i];
		copy->rcpts[i].addr = xstrdup(env->rcpts[i].addr);
		copy->rcpts[i].last_error =
		    env->rcpts[i].last_error == NULL
			? NULL
			: xstrdup(env->rcpts[i].last_error);
	}
	find->env = copy;
	return 1;
}

static int postctl_queue_no_entry(const char *id, int queue_fd)
{
	fprintf(stderr, "postctl: no queue entry %s\n", id);
	if (queue_fd >= 0)
		close(queue_fd);
	return EX_NOUSER;
}

/* EX_OK, EX_NOUSER (gone, or held: nothing to retry) or EX_TEMPFAIL. */
static int postctl_queue_retry_one(int queue_fd, const char *id, bool quiet)
{
	const char *error;

	if (queue_retry_now(queue_fd, id, &error) == 0) {
		printf("%s: due now\n", id);
		return EX_OK;
	}
	if (errno == ENOENT) {
		if (!quiet)
			fprintf(stderr, "postctl: no queued entry %s\n", id);
		return EX_NOUSER;
	}
	fprintf(stderr, "postctl: cannot retry queue entry %s: %s\n", id,
		error);
	return EX_TEMPFAIL;
}

static int postctl_queue_collect_id(void *ctx, const struct queue_envelope *env)
{
	struct postctl_queue_items *items = ctx;

	items->v = xreallocarray(items->v, items->count + 1, sizeof(*items->v));
	memset(&items->v[items->count], 0, sizeof(items->v[0]));
	snprintf(items->v[items->count].id, sizeof(items->v[0].id), "%s",
		 env->id);
	items->count++;
	return 0;
}

/* One entry, or every entry in env/ (held ones stay held). */
static int postctl_queue_retry(const struct config *cfg, const char *id)
{
	struct postctl_queue_items items = {NULL, 0, false};
	const char *error;
	int queue_fd, rc, r;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (id != NULL) {
		if (queue_fd < 0)
			return postctl_queue_no_entry(id, queue_fd);
		rc = postctl_queue_retry_one(queue_fd, id, false);
		close(queue_fd);
	} else if (queue_fd >= 0) {
		/* Ids first, then each under its lock: an entry delivered
		 * meanwhile is simply gone. */
		if (queue_list(queue_fd, postctl_queue_collect_id, &items, NULL,
			       &error) < 0) {
			fprintf(stderr, "postctl: cannot read the queue: %s\n",
				error);
			rc = EX_TEMPFAIL;
		}
		for (size_t i = 0; i < items.count; i++) {
			r = postctl_queue_retry_one(queue_fd, items.v[i].id,
						    true);
			if (r == EX_TEMPFAIL)
				rc = r;
		}
		free(items.v);
		close(queue_fd);
	}
	if (postctl_stdout_done() != EX_OK)
		return EX_IOERR;
	return rc;
}

static int postctl_queue_hold(const struct config *cfg, const char *id,
			      bool hold)
{
	const char *error;
	int queue_fd, rc, r;

	rc = postctl_queue_open(cfg, &queue_fd);
	if (rc != EX_OK)
		return rc;
	if (queue_fd < 0)
		return postctl_queue_no_entry(id, queue_fd);
	r = hold ? queue_hold(queue_fd, id, &error)
		 : queue_release(queue_fd, id, &error);
	if (r < 0) {
		int err = errno;

		fprintf(stderr, "postctl: cannot %s queue entry %s: %s%s\n",
			hold ? "hold" : "release", id, error,
			err != ENOENT ? ""
			: hold	      ? " (not queued, or already held)"
				      : " (not held)");
		close(queue_fd);
		return err == ENOENT ? EX_NOUSER : EX_TEMPFAIL;
	}
	close(queue_fd);
	printf("%s: %s\n", id, hold ? "held" : "released");
	return postctl_stdout_done();
}

int postctl_queue_main(const struct config *cfg, int argc, char **argv)
{
	static const struct {
		const char *name;
		int min_args, max_args; /* after the command name */
	} cmds[] = {
	    {"list", 0, 0},  {"show", 1, 1}, {"delete", 1, 1},
	    {"retry", 0, 1}, {"hold", 1, 1}, {"release", 1, 1},
	};
	const char *cmd = argc >= 2 ? argv[1] : "";
	const char *id = argc == 3 ? argv[2] : NULL;
	bool ok = false;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			ok = argc - 2 >= cmds[i].min_args &&
			     argc - 2 <= cmds[i].max_args;
	if (!ok) {
		fprintf(stderr, "usage: postctl queue list|show ID|delete ID|"
				"retry [ID]|hold ID|release ID\n");
		return EX_USAGE;
	}
	/* INV-S2: an id becomes a path only once it is known to be
	 * [0-9A-Za-z] and short. */
	if (id != NULL && !queue_id_valid(id)) {
		fprintf(stderr,
			"postctl: invalid queue id: expected 1 to %d "
			"letters and digits\n",
			QUEUE_MAX_ID);
		return EX_USAGE;
	}
	if (strcmp(cmd, "list") == 0)
		return postctl_queue_list(cfg);
	if (strcmp(cmd, "show") == 0)
		return postctl_queue_show(cfg, id);
	if (strcmp(cmd, "retry") == 0)
		return postctl_queue_retry(cfg, id);
	if (strcmp(cmd, "hold") == 0)
		return postctl_queue_hold(cfg, id, true);
	if (strcmp(cmd, "release") == 0)
		return postctl_queue_hold(cfg, id, false);
	return postctl_queue_delete(cfg, id);
}
