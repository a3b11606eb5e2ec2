#include "auth/alias.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/parse.h"
#include "lib/xmalloc.h"

struct alias_entry {
	char *key; /* "user@domain" or "@domain", lowercase */
	char **targets;
	size_t target_count;
	char *joined;	   /* targets joined by ", ", for listing */
	bool domain_alias; /* "@a  @b": the one target is "@b" */
};

struct alias_table {
	struct alias_entry *entries;
	size_t count, alloc;
	/* Open addressing: index + 1 into entries, 0 for an empty slot. */
	size_t *slots;
	size_t slot_count; /* a power of two, kept at most half full */
};

/* One expansion in progress. */
struct alias_ctx {
	const struct alias_table *t;
	const struct alias_env *env;
	struct alias_result *out;
	enum alias_status status;
	unsigned steps;
	const char *path[ALIAS_MAX_DEPTH]; /* the addresses being expanded */
	size_t depth;
};

/* What alias_table_load_file() gathers. */
struct alias_load {
	const char *path;
	char *errors;
	size_t errors_len;
	unsigned error_count;
};

static uint64_t alias_hash(const char *s);
static size_t *alias_slot(const struct alias_table *t, const char *key);
static void alias_grow_slots(struct alias_table *t);
static const struct alias_entry *alias_lookup(const struct alias_table *t,
					      const char *key);
static char *alias_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static bool alias_local_part_valid(const char *s, size_t len);
static bool alias_domain_valid(const char *s);
static bool alias_addr_valid(const char *s, bool allow_bare_domain);
static int alias_split_targets(const char *targets, char ***list_r,
			       size_t *count_r, char **error);
static void alias_free_list(char **list, size_t count);
static void alias_load_error(struct alias_load *l, int line, const char *msg);
static void alias_load_logical(struct alias_table *t, struct alias_load *l,
			       int line, char *text);
static int alias_expand_addr(struct alias_ctx *c, const char *addr,
			     const char *ext);
static int alias_resolve_local(struct alias_ctx *c, const char *addr,
			       const char *at, const char *ext);
static int alias_expand_entry(struct alias_ctx *c, const struct alias_entry *e,
			      const char *self, const char *ext);
static void alias_with_extension(const struct alias_env *env,
				 const char *target, const char *ext,
				 char *out);
static int alias_add_result(struct alias_ctx *c, const char *addr, bool remote);
static int alias_stop(struct alias_ctx *c, enum alias_status status,
		      const char *addr);
static void alias_note_unknown(struct alias_ctx *c, const char *addr);
static bool alias_strip_subaddress(const struct alias_env *env,
				   const char *addr, const char *at, char *out,
				   char *ext);
static const char *alias_role_target(const struct alias_env *env,
				     const char *addr, const char *at);

static uint64_t alias_hash(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Returns the slot holding key, or the empty slot where it belongs. */
static size_t *alias_slot(const struct alias_table *t, const char *key)
{
	size_t mask = t->slot_count - 1;
	size_t i = (size_t)alias_hash(key) & mask;

	while (t->slots[i] != 0 &&
	       strcmp(t->entries[t->slots[i] - 1].key, key) != 0)
		i = (i + 1) & mask;
	return &t->slots[i];
}

static void alias_grow_slots(struct alias_table *t)
{
	size_t old_count = t->slot_count;

	if (old_count != 0 && t->count < old_count / 2)
		return;
	t->slot_count = old_count == 0 ? 64 : old_count * 2;
	free(t->slots);
	t->slots = xcalloc(t->slot_count, sizeof(*t->slots));
	for (size_t i = 0; i < t->count; i++)
		*alias_slot(t, t->entries[i].key) = i + 1;
}

static const struct alias_entry *alias_lookup(const struct alias_table *t,
					      const char *key)
{
	size_t slot;

	if (t == NULL || t->count == 0)
		return NULL;
	slot = *alias_slot(t, key);
	return slot == 0 ? NULL : &t->entries[slot - 1];
}

static char *alias_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return xstrdup(buf);
}

struct alias_table *alias_table_new(void)
{
	struct alias_table *t = xcalloc(1, sizeof(*t));

	alias_grow_slots(t);
	return t;
}

void alias_table_free(struct alias_table **tp)
{
	struct alias_table *t = *tp;

	if (t == NULL)
		return;
	for (size_t i = 0; i < t->count; i++) {
		free(t->entries[i].key);
		alias_free_list(t->entries[i].targets,
				t->entries[i].target_count);
		free(t->entries[i].joined);
	}
	free(t->entries);
	free(t->slots);
	free(t);
	*tp = NULL;
}

size_t alias_table_count(const struct alias_table *t)
{
	return t == NULL ? 0 : t->count;
}

const char *alias_table_entry(const struct alias_table *t, size_t i,
			      const char **targets_r)
{
	if (t == NULL || i >= t->count)
		return NULL;
	if (targets_r != NULL)
		*targets_r = t->entries[i].joined;
	return t->entries[i].key;
}

/* RFC 5322 dot-atom: atext and single inner dots. Quoted local parts
 * are not taken: nothing in an alias file needs them. */
static bool alias_local_part_valid(const char *s, size_t len)
{
	static const char atext_special[] = "!#$%&'*+-/=?^_`{|}~";

	if (len == 0 || len > SMTP_MAX_LOCALPART || s[0] == '.' ||
	    s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '.' && s[i + 1] != '.')
			continue;
		if (ch != '\0' && strchr(atext_special, ch) != NULL)
			continue;
		return false;
	}
	return true;
}

/* Lowercase dot-separated labels of [a-z0-9-]. */
static bool alias_domain_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > MAILBOX_MAX_DOMAIN)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char ch = s[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > SMTP_MAX_LABEL ||
			    s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') ||
			   (ch >= '0' && ch <= '9') || ch == '-') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* "local@domain", or "@domain" if allowed; already lowercase. */
static bool alias_addr_valid(const char *s, bool allow_bare_domain)
{
	const char *at = strrchr(s, '@');

	if (at == NULL || strlen(s) >= ALIAS_ADDR_SIZE - 2)
		return false;
	if (at == s)
		return allow_bare_domain && alias_domain_valid(at + 1);
	return alias_local_part_valid(s, (size_t)(at - s)) &&
	       alias_domain_valid(at + 1);
}

static void alias_free_list(char **list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(list[i]);
	free(list);
}

/* virtual(5): targets are separated by commas and/or white space. */
static int alias_split_targets(const char *targets, char ***list_r,
			       size_t *count_r, char **error)
{
	char **list = NULL;
	size_t count = 0;
	const char *p = targets;

	while (*p != '\0') {
		size_t len = strcspn(p, ", \t\r\n");
		char *addr;

		if (len == 0) {
			p++;
			continue;
		}
		if (count >= ALIAS_MAX_TARGETS_PER_ENTRY) {
			*error =
			    alias_error("more than %u targets",
					(unsigned)ALIAS_MAX_TARGETS_PER_ENTRY);
			goto fail;
		}
		addr = xstrndup(p, len);
		ascii_lowercase(addr);
		if (!alias_addr_valid(addr, true)) {
			*error = alias_error("invalid target address \"%.*s\"",
					     len > 80 ? 80 : (int)len, p);
			free(addr);
			goto fail;
		}
		list = xreallocarray(list, count + 1, sizeof(*list));
		list[count++] = addr;
		p += len;
	}
	if (count == 0) {
		*error = alias_error("no target");
		goto fail;
	}
	*list_r = list;
	*count_r = count;
	return 0;
fail:
	alias_free_list(list, count);
	return -1;
}

int alias_table_add(struct alias_table *t, const char *key, const char *targets,
		    char **error)
{
	struct alias_entry e = {0};
	size_t joined_len = 0;
	bool bare;

	*error = NULL;
	if (t->count >= ALIAS_MAX_ENTRIES) {
		*error = alias_error("more than %u aliases",
				     (unsigned)ALIAS_MAX_ENTRIES);
		return -1;
	}
	e.key = xstrdup(key);
	ascii_lowercase(e.key);
	if (!alias_addr_valid(e.key, true)) {
		*error = alias_error("invalid alias address \"%.80s\"", key);
		free(e.key);
		return -1;
	}
	if (alias_lookup(t, e.key) != NULL) {
		*error = alias_error("duplicate alias %s", e.key);
		free(e.key);
		return -1;
	}
	if (alias_split_targets(targets, &e.targets, &e.target_count, error) <
	    0) {
		free(e.key);
		return -1;
	}
	bare = e.key[0] == '@';
	for (size_t i = 0; i < e.target_count; i++) {
		/* "@b" only as the one target of "@a": a domain alias. */
		if (e.targets[i][0] == '@' && (!bare || e.target_count != 1)) {
			*error = alias_error("%s: a target \"@domain\" needs "
					     "an \"@domain\" alias and must be "
					     "its only target",
					     e.key);
			free(e.key);
			alias_free_list(e.targets, e.target_count);
			return -1;
		}
		joined_len += strlen(e.targets[i]) + 2;
	}
	e.domain_alias = e.targets[0][0] == '@';
	e.joined = xcalloc(1, joined_len + 1);
	for (size_t i = 0, pos = 0; i < e.target_count; i++) {
		size_t len = strlen(e.targets[i]);

		if (i > 0) {
			memcpy(e.joined + pos, ", ", 2);
			pos += 2;
		}
		memcpy(e.joined + pos, e.targets[i], len + 1);
		pos += len;
	}
	if (t->count == t->alloc) {
		t->alloc = t->alloc == 0 ? 16 : t->alloc * 2;
		t->entries =
		    xreallocarray(t->entries, t->alloc, sizeof(*t->entries));
	}
	t->entries[t->count++] = e;
	alias_grow_slots(t);
	*alias_slot(t, e.key) = t->count;
	return 0;
}

static void alias_load_error(struct alias_load *l, int line, const char *msg)
{
	char buf[700];
	int n;

	if (++l->error_count > ALIAS_MAX_REPORTED_ERRORS)
		return;
	n = snprintf(buf, sizeof(buf), "%s%s:%d: %s",
		     l->errors_len > 0 ? "\n" : "", l->path, line, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	l->errors = xreallocarray(l->errors, l->errors_len + (size_t)n + 1, 1);
	memcpy(l->errors + l->errors_len, buf, (size_t)n + 1);
	l->errors_len += (size_t)n;
}

/* One logical line: "KEY TARGETS". */
static void alias_load_logical(struct alias_table *t, struct alias_load *l,
			       int line, char *text)
{
	char *key = text, *rest;
	char *error = NULL;

	key += strspn(key, " \t\r");
	if (*key == '\0' || *key == '#')
		return;
	rest = key + strcspn(key, " \t\r:");
	/* Postfix's aliases(5) writes "key: targets"; take it too. */
	if (*rest == ':')
		*rest++ = '\0';
	else if (*rest != '\0')
		*rest++ = '\0';
	/* A key without '@' declares a virtual alias domain in Postfix;
	 * here the local domains are the `domains` key. */
	if (strchr(key, '@') == NULL)
		return;
	if (alias_table_add(t, key, rest, &error) < 0) {
		alias_load_error(l, line, error);
		free(error);
	}
}

int alias_table_load_file(struct alias_table *t, const char *path, char **error)
{
	struct alias_load l = {.path = path};
	char line[ALIAS_MAX_LINE + 2];
	char *logical = xmalloc(ALIAS_MAX_LOGICAL_LINE + 1);
	size_t logical_len = 0;
	int lineno = 0, logical_line = 0;
	bool logical_bad = false;
	FILE *f;

	*error = NULL;
	f = fopen(path, "re");
	if (f == NULL) {
		*error =
		    alias_error("cannot open %s: %s", path, strerror(errno));
		free(logical);
		return -1;
	}
	logical[0] = '\0';
	for (;;) {
		bool eof = fgets(line, sizeof(line), f) == NULL;
		size_t len = eof ? 0 : strlen(line);
		bool continues;

		if (!eof) {
			lineno++;
			if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
				int ch;

				alias_load_error(&l, lineno, "line too long");
				while ((ch = getc(f)) != EOF && ch != '\n')
					;
				/* A new entry ends the one before; its own
				 * continuation lines go with it. */
				if (line[0] != ' ' && line[0] != '\t') {
					if (logical_line != 0 && !logical_bad)
						alias_load_logical(t, &l,
								   logical_line,
								   logical);
					logical_line = lineno;
					logical_len = 0;
				}
				logical_bad = true;
				continue;
			}
			if (len > 0 && line[len - 1] == '\n')
				line[--len] = '\0';
			if (memchr(line, '\0', len) != NULL)
				len = strlen(line);
		}
		/* virtual(5): a line that starts with white space continues
		 * the logical line; a comment line never does. */
		continues = !eof && (line[0] == ' ' || line[0] == '\t') &&
			    line[strspn(line, " \t\r")] != '#' &&
			    line[strspn(line, " \t\r")] != '\0';
		if (continues && logical_line != 0) {
			if (logical_len + 1 + len > ALIAS_MAX_LOGICAL_LINE) {
				if (!logical_bad)
					alias_load_error(&l, logical_line,
							 "entry too long");
				logical_bad = true;
				continue;
			}
			logical[logical_len++] = ' ';
			memcpy(logical + logical_len, line, len + 1);
			logical_len += len;
			continue;
		}
		if (eof || line[strspn(line, " \t\r")] == '#' ||
		    line[strspn(line, " \t\r")] == '\0' || !continues) {
			if (logical_line != 0 && !logical_bad)
				alias_load_logical(t, &l, logical_line,
						   logical);
			logical_line = 0;
			logical_len = 0;
			logical_bad = false;
		}
		if (eof)
			break;
		if (continues) {
			alias_load_error(&l, lineno,
					 "continuation line without an entry");
			continue;
		}
		if (line[strspn(line, " \t\r")] == '#' ||
		    line[strspn(line, " \t\r")] == '\0')
			continue;
		logical_line = lineno;
		memcpy(logical, line, len + 1);
		logical_len = len;
	}
	if (ferror(f))
		alias_load_error(&l, lineno, "read error");
	fclose(f);
	free(logical);
	if (l.error_count > ALIAS_MAX_REPORTED_ERRORS) {
		char more[96];

		snprintf(more, sizeof(more), "and %u more problems",
			 l.error_count - ALIAS_MAX_REPORTED_ERRORS);
		l.error_count = 0;
		alias_load_error(&l, lineno, more);
	}
	*error = l.errors;
	return l.errors != NULL ? -1 : 0;
}

static int alias_stop(struct alias_ctx *c, enum alias_status status,
		      const char *addr)
{
	if (c->status == ALIAS_OK) {
		c->status = status;
		if (addr != NULL)
			snprintf(c->out->loop, sizeof(c->out->loop), "%s",
				 addr);
	}
	return -1;
}

static int alias_add_result(struct alias_ctx *c, const char *addr, bool remote)
{
	struct alias_result *out = c->out;

	for (size_t i = 0; i < out->count; i++) {
		if (strcmp(out->targets[i].addr, addr) == 0)
			return 0; /* duplicates collapse */
	}
	if (out->count >= ALIAS_MAX_RESULTS)
		return alias_stop(c, ALIAS_TOO_MANY, NULL);
	snprintf(out->targets[out->count].addr,
		 sizeof(out->targets[out->count].addr), "%s", addr);
	out->targets[out->count].remote = remote;
	out->count++;
	return 0;
}

static void alias_note_unknown(struct alias_ctx *c, const char *addr)
{
	if (c->out->unknown_count++ == 0)
		snprintf(c->out->unknown, sizeof(c->out->unknown), "%s", addr);
}

/* RFC 5233: "user+detail@domain" -> "user@domain" into out and the
 * extension "+detail" into ext (both ALIAS_ADDR_SIZE). */
static bool alias_strip_subaddress(const struct alias_env *env,
				   const char *addr, const char *at, char *out,
				   char *ext)
{
	const char *sep;

	if (env->delimiter == '\0')
		return false;
	sep = memchr(addr, env->delimiter, (size_t)(at - addr));
	if (sep == NULL || sep == addr)
		return false;
	snprintf(out, ALIAS_ADDR_SIZE, "%.*s%s", (int)(sep - addr), addr, at);
	snprintf(ext, ALIAS_ADDR_SIZE, "%.*s", (int)(at - sep), sep);
	return true;
}

/*
 * Postfix's propagate_unmatched_extensions: an address found without its
 * extension passes the extension on, "info+x@" -> "bob+x@", so that it
 * still reaches the target's own "bob+x@" alias or the remote server.
 * A target that has an extension of its own keeps it alone (appending a
 * second one would skip the admin's "bob+sales@" alias), and one that
 * would grow past RFC 5321's limits keeps none: delivered, not lost.
 */
static void alias_with_extension(const struct alias_env *env,
				 const char *target, const char *ext, char *out)
{
	const char *at = strrchr(target, '@');
	size_t local;

	snprintf(out, ALIAS_ADDR_SIZE, "%s", target);
	if (ext == NULL || at == NULL || at == target)
		return;
	local = (size_t)(at - target);
	if (memchr(target, env->delimiter, local) != NULL ||
	    local + strlen(ext) > SMTP_MAX_LOCALPART ||
	    strlen(target) + strlen(ext) >= ALIAS_ADDR_SIZE - 2)
		return;
	snprintf(out, ALIAS_ADDR_SIZE, "%.*s%s%s", (int)local, target, ext, at);
}

/* RFC 5321 section 4.5.1, RFC 2142: the role addresses of every local
 * domain. */
static const char *alias_role_target(const struct alias_env *env,
				     const char *addr, const char *at)
{
	size_t len = (size_t)(at - addr);

	if (env->postmaster != NULL && len == 10 &&
	    memcmp(addr, "postmaster", 10) == 0)
		return env->postmaster;
	if (env->abuse != NULL && len == 5 && memcmp(addr, "abuse", 5) == 0)
		return env->abuse;
	return NULL;
}

/* ext: the extension the address had when its entry was found without
 * it (NULL: none), passed on to each target. */
static int alias_expand_entry(struct alias_ctx *c, const struct alias_entry *e,
			      const char *self, const char *ext)
{
	char with_ext[ALIAS_ADDR_SIZE];

	for (size_t i = 0; i < e->target_count; i++) {
		const char *target = e->targets[i];

		/* "alice@x  alice@x, bob@x": alice keeps her copy. */
		if (self != NULL && strcmp(target, self) == 0) {
			if (c->env->is_user(self, c->env->ctx)) {
				if (alias_add_result(c, self, false) < 0)
					return -1;
			} else {
				alias_note_unknown(c, self);
			}
			continue;
		}
		alias_with_extension(c->env, target, ext, with_ext);
		if (alias_expand_addr(c, with_ext, NULL) < 0)
			return -1;
	}
	return 0;
}

/*
 * ext: addr is "user@domain" with this extension cut off (step 3 of
 * doc/internals/addressing.md); an alias or a domain alias found for it
 * passes the extension on. A user, a role address and a catch-all do
 * not: the user is the mailbox, the others are about the name.
 */
static int alias_resolve_local(struct alias_ctx *c, const char *addr,
			       const char *at, const char *ext)
{
	char other[ALIAS_ADDR_SIZE], cut[ALIAS_ADDR_SIZE];
	const struct alias_entry *e = alias_lookup(c->t, addr);
	const char *role;

	if (e != NULL)
		return alias_expand_entry(c, e, addr, ext);
	if (c->env->is_user(addr, c->env->ctx))
		return alias_add_result(c, addr, false);
	if (ext == NULL && alias_strip_subaddress(c->env, addr, at, other, cut))
		return alias_expand_addr(c, other, cut);
	role = alias_role_target(c->env, addr, at);
	if (role != NULL)
		return alias_expand_addr(c, role, NULL);
	e = alias_lookup(c->t, at);
	if (e == NULL) {
		alias_note_unknown(c, addr);
		return 0;
	}
	if (!e->domain_alias)
		return alias_expand_entry(c, e, NULL, NULL);
	/* "alice+news@example.net" -> "alice+news@example.org". */
	if ((size_t)snprintf(other, sizeof(other), "%.*s%s%s", (int)(at - addr),
			     addr, ext != NULL ? ext : "",
			     e->targets[0]) >= sizeof(other)) {
		alias_note_unknown(c, addr);
		return 0;
	}
	return alias_expand_addr(c, other, NULL);
}

static int alias_expand_addr(struct alias_ctx *c, const char *addr,
			     const char *ext)
{
	const char *at = strrchr(addr, '@');
	unsigned max = c->env->max_expansions != 0
			   ? c->env->max_expansions
			   : ALIAS_MAX_EXPANSIONS_DEFAULT;
	int r;

	if (++c->steps > max)
		return alias_stop(c, ALIAS_TOO_MANY, NULL);
	/* The address asked about is local: the caller decided that. */
	if (at == NULL || at == addr ||
	    (c->steps > 1 && !c->env->is_local_domain(at + 1, c->env->ctx)))
		return alias_add_result(c, addr, true);
	for (size_t i = 0; i < c->depth; i++) {
		if (strcmp(c->path[i], addr) == 0)
			return alias_stop(c, ALIAS_LOOP, addr);
	}
	if (c->depth >= ALIAS_MAX_DEPTH)
		return alias_stop(c, ALIAS_TOO_MANY, NULL);
	c->path[c->depth++] = addr;
	r = alias_resolve_local(c, addr, at, ext);
	c->depth--;
	return r;
}

enum alias_status alias_expand(const struct alias_table *t,
			       const struct alias_env *env, const char *addr,
			       struct alias_result *out)
{
	struct alias_ctx c = {.t = t, .env = env, .out = out};
	char lower[ALIAS_ADDR_SIZE];

	memset(out, 0, sizeof(*out));
	if ((size_t)snprintf(lower, sizeof(lower), "%s", addr) >= sizeof(lower))
		return ALIAS_UNKNOWN;
	ascii_lowercase(lower);
	/* Only a name an alias file could hold can be found: nothing
	 * else reaches the targets (INV-S2). */
	if (!alias_addr_valid(lower, false))
		return ALIAS_UNKNOWN;
	if (alias_expand_addr(&c, lower, NULL) < 0) {
		out->count = 0;
		return c.status;
	}
	return out->count == 0 ? ALIAS_UNKNOWN : ALIAS_OK;
}

unsigned alias_table_check(const struct alias_table *t,
			   const struct alias_env *env, const char *prefix,
			   FILE *out)
{
	struct alias_result *r = xmalloc(sizeof(*r));
	unsigned problems = 0;

	for (size_t i = 0; i < alias_table_count(t); i++) {
		const struct alias_entry *e = &t->entries[i];
		char probe[ALIAS_ADDR_SIZE];
		const char *addr = e->key;
		enum alias_status st;

		/* A domain alias is checked with a name nobody has; only
		 * loops matter there, not that the name is unknown. */
		if (e->key[0] == '@') {
			snprintf(probe, sizeof(probe), "postd-check-probe%s",
				 e->key);
			addr = probe;
		}
		st = alias_expand(t, env, addr, r);
		if (st == ALIAS_LOOP) {
			fprintf(out, "%salias %s: loop (%s is reached twice)\n",
				prefix, e->key, r->loop);
			problems++;
		} else if (st == ALIAS_TOO_MANY) {
			fprintf(out,
				"%salias %s: expands to too many addresses "
				"(over alias_max_expansions %u, %d levels or "
				"%d targets)\n",
				prefix, e->key, env->max_expansions,
				ALIAS_MAX_DEPTH, ALIAS_MAX_RESULTS);
			problems++;
		} else if (r->unknown_count > 0 && !e->domain_alias &&
			   (e->key[0] != '@' ||
			    strcmp(r->unknown, probe) != 0)) {
			fprintf(out,
				"%salias %s: target %s is no user, alias or "
				"catch-all\n",
				prefix, e->key, r->unknown);
			problems++;
		}
	}
	free(r);
	return problems;
}
