/*
 * The IMAP command tokenizer (RFC 9051 section 9). Every error is a short,
 * fixed message that is safe to send after "BAD": it never echoes input.
 * Bounds: IMAP_MAX_TAG, IMAP_MAX_ARGS (all lists counted) and
 * IMAP_MAX_LIST_DEPTH, checked while reading so that a hostile command
 * cannot make the parser recurse or allocate beyond them (INV-S3).
 */
#include "proto/imap/imap_parse.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xmalloc.h"

/* Arena chunks: small commands fit in one; bigger items get their own. */
#define ARENA_CHUNK 4096
#define ARENA_ALIGN alignof(max_align_t)

struct arena_chunk {
	struct arena_chunk *next;
	size_t used;
	size_t size;
	alignas(max_align_t) unsigned char data[];
};

struct imap_arena {
	struct arena_chunk *chunks;
};

/* The cursor over one command's wire bytes. */
struct parse_ctx {
	const char *p;
	const char *end;
	struct imap_arena *arena;
	size_t arg_total;
	const char *error;
};

/* A list being collected before it is copied into the arena. */
struct arg_vec {
	struct imap_arg *v;
	size_t count;
	size_t cap;
};

static bool is_tag_char(unsigned char c);
static bool is_atom_char(unsigned char c);
static int parse_tag(struct parse_ctx *ctx, struct imap_command *cmd);
static int parse_name(struct parse_ctx *ctx, struct imap_command *cmd);
static int parse_elements(struct parse_ctx *ctx, size_t depth, bool in_list,
			  struct imap_arg **args_r, size_t *count_r);
static int parse_element(struct parse_ctx *ctx, size_t depth,
			 struct imap_arg *arg);
static int parse_list(struct parse_ctx *ctx, size_t depth,
		      struct imap_arg *arg);
static int parse_quoted(struct parse_ctx *ctx, struct imap_arg *arg);
static int parse_literal(struct parse_ctx *ctx, struct imap_arg *arg);
static int parse_atom(struct parse_ctx *ctx, struct imap_arg *arg);
static const char *atom_bracket_end(const char *p, const char *end);
static int fail(struct parse_ctx *ctx, const char *error);
static void vec_push(struct arg_vec *vec, const struct imap_arg *arg);
static int parse_literal_size(const char *p, const char *end, bool *nonsync,
			      uint64_t *size_r);

struct imap_arena *imap_arena_new(void)
{
	return xcalloc(1, sizeof(struct imap_arena));
}

void imap_arena_free(struct imap_arena **arena)
{
	struct arena_chunk *c;

	if (*arena == NULL)
		return;
	c = (*arena)->chunks;
	while (c != NULL) {
		struct arena_chunk *next = c->next;

		free(c);
		c = next;
	}
	XFREE(*arena);
}

void *imap_arena_alloc(struct imap_arena *arena, size_t size)
{
	struct arena_chunk *c = arena->chunks;
	size_t rounded;
	void *p;

	if (size > SIZE_MAX - ARENA_ALIGN - sizeof(*c))
		abort();
	rounded = (size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
	if (rounded == 0)
		rounded = ARENA_ALIGN;
	if (c == NULL || c->size - c->used < rounded) {
		size_t chunk = rounded > ARENA_CHUNK ? rounded : ARENA_CHUNK;

		c = xmalloc(sizeof(*c) + chunk);
		c->used = 0;
		c->size = chunk;
		/* A big item's own chunk goes behind the current one, so
		 * that the current one's free space stays usable. */
		if (arena->chunks != NULL && rounded > ARENA_CHUNK) {
			c->next = arena->chunks->next;
			arena->chunks->next = c;
		} else {
			c->next = arena->chunks;
			arena->chunks = c;
		}
	}
	p = c->data + c->used;
	c->used += rounded;
	memset(p, 0, rounded);
	return p;
}

char *imap_arena_strndup(struct imap_arena *arena, const char *s, size_t len)
{
	char *d;

	if (len == SIZE_MAX)
		abort();
	d = imap_arena_alloc(arena, len + 1);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

bool imap_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/* The digits (and '+') between '{' and '}' at [p, end). */
static int parse_literal_size(const char *p, const char *end, bool *nonsync,
			      uint64_t *size_r)
{
	uint64_t v = 0;
	const char *start = p;

	while (p < end && *p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_C(1) << 63) / 10 ||
		    v * 10 + d > (UINT64_C(1) << 63))
			return -1;
		v = v * 10 + d;
		p++;
	}
	if (p == start)
		return -1;
	*nonsync = false;
	if (p < end && *p == '+') {
		*nonsync = true;
		p++;
	}
	if (p != end)
		return -1;
	*size_r = v;
	return 0;
}

int imap_line_literal(const char *line, size_t len,
		      struct imap_literal_ann *ann)
{
	const char *end = line + len;
	const char *open;
	const char *q;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	open = NULL;
	for (q = end - 1; q > line; q--) {
		if (q[-1] == '{') {
			open = q - 1;
			break;
		}
		if (!((q[-1] >= '0' && q[-1] <= '9') || q[-1] == '+'))
			return 0;
	}
	if (open == NULL)
		return 0;
	if (parse_literal_size(open + 1, end - 1, &ann->nonsync, &ann->size) <
	    0)
		return -1;
	ann->binary = open > line && open[-1] == '~';
	return 1;
}

/* tag = 1*<any ASTRING-CHAR except "+">: no atom-specials but ']'. */
static bool is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* ATOM-CHAR: CHAR except atom-specials. */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

static int fail(struct parse_ctx *ctx, const char *error)
{
	if (ctx->error == NULL)
		ctx->error = error;
	return -1;
}

static int parse_tag(struct parse_ctx *ctx, struct imap_command *cmd)
{
	const char *start = ctx->p;
	size_t n;

	while (ctx->p < ctx->end && is_tag_char((unsigned char)*ctx->p))
		ctx->p++;
	n = (size_t)(ctx->p - start);
	if (n == 0)
		return fail(ctx, ctx->p == ctx->end ? "Empty command"
						    : "Invalid tag");
	if (ctx->p < ctx->end && *ctx->p != ' ')
		return fail(ctx, "Invalid tag");
	if (n > IMAP_MAX_TAG)
		return fail(ctx, "Tag too long");
	memcpy(cmd->tag, start, n);
	cmd->tag[n] = '\0';
	if (ctx->p == ctx->end)
		return fail(ctx, "Missing command");
	ctx->p++;
	return 0;
}

static int parse_name(struct parse_ctx *ctx, struct imap_command *cmd)
{
	const char *start = ctx->p;
	size_t n;

	while (ctx->p < ctx->end && is_atom_char((unsigned char)*ctx->p))
		ctx->p++;
	n = (size_t)(ctx->p - start);
	if (n == 0)
		return fail(ctx, "Missing command");
	if (ctx->p < ctx->end && *ctx->p != ' ')
		return fail(ctx, "Invalid command name");
	if (n >= sizeof(cmd->name))
		return fail(ctx, "Unknown command");
	for (size_t i = 0; i < n; i++) {
		char c = start[i];

		cmd->name[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	cmd->name[n] = '\0';
	return 0;
}

int imap_parse_command(const char *wire, size_t len, struct imap_command *cmd,
		       const char **error_r)
{
	struct parse_ctx ctx = {wire, wire + len, NULL, 0, NULL};

	memset(cmd, 0, sizeof(*cmd));
	cmd->tag[0] = '*';
	if (parse_tag(&ctx, cmd) < 0 || parse_name(&ctx, cmd) < 0) {
		*error_r = ctx.error;
		return -1;
	}
	ctx.arena = imap_arena_new();
	cmd->arena = ctx.arena;
	if (ctx.p < ctx.end) {
		if (parse_elements(&ctx, 0, false, &cmd->args,
				   &cmd->arg_count) == 0)
			return 0;
		imap_command_free(cmd);
		*error_r = ctx.error;
		return -1;
	}
	return 0;
}

void imap_command_free(struct imap_command *cmd)
{
	imap_arena_free(&cmd->arena);
	cmd->args = NULL;
	cmd->arg_count = 0;
}

static void vec_push(struct arg_vec *vec, const struct imap_arg *arg)
{
	if (vec->count == vec->cap) {
		vec->cap = vec->cap == 0 ? 8 : vec->cap * 2;
		vec->v = xreallocarray(vec->v, vec->cap, sizeof(*vec->v));
	}
	vec->v[vec->count++] = *arg;
}

/*
 * Elements separated by spaces, up to the end of the command or, in a
 * list, its ')'. Extra spaces are tolerated (as other servers do); a
 * missing one is not, so "(a)(b)" and "\"a\"b" are errors.
 */
static int parse_elements(struct parse_ctx *ctx, size_t depth, bool in_list,
			  struct imap_arg **args_r, size_t *count_r)
{
	struct arg_vec vec = {NULL, 0, 0};
	int r = 0;

	for (;;) {
		struct imap_arg arg;

		while (ctx->p < ctx->end && *ctx->p == ' ')
			ctx->p++;
		if (ctx->p == ctx->end) {
			if (in_list)
				r = fail(ctx, "Missing ')'");
			break;
		}
		if (*ctx->p == ')') {
			if (!in_list)
				r = fail(ctx, "Unexpected ')'");
			else
				ctx->p++;
			break;
		}
		if (++ctx->arg_total > IMAP_MAX_ARGS) {
			r = fail(ctx, "Too many arguments");
			break;
		}
		memset(&arg, 0, sizeof(arg));
		if (parse_element(ctx, depth, &arg) < 0) {
			r = -1;
			break;
		}
		vec_push(&vec, &arg);
		if (ctx->p < ctx->end && *ctx->p != ' ' && *ctx->p != ')') {
			r = fail(ctx, "Missing space between arguments");
			break;
		}
	}
	if (r == 0 && vec.count > 0) {
		*args_r =
		    imap_arena_alloc(ctx->arena, vec.count * sizeof(*vec.v));
		memcpy(*args_r, vec.v, vec.count * sizeof(*vec.v));
	} else {
		*args_r = NULL;
	}
	*count_r = r == 0 ? vec.count : 0;
	free(vec.v);
	return r;
}

static int parse_element(struct parse_ctx *ctx, size_t depth,
			 struct imap_arg *arg)
{
	switch (*ctx->p) {
	case '(':
		return parse_list(ctx, depth, arg);
	case '"':
		return parse_quoted(ctx, arg);
	case '{':
		return parse_literal(ctx, arg);
	case '~':
		if (ctx->end - ctx->p > 1 && ctx->p[1] == '{')
			return parse_literal(ctx, arg);
		return parse_atom(ctx, arg);
	default:
		return parse_atom(ctx, arg);
	}
}

static int parse_list(struct parse_ctx *ctx, size_t depth, struct imap_arg *arg)
{
	if (depth + 1 > IMAP_MAX_LIST_DEPTH)
		return fail(ctx, "Lists nested too deeply");
	ctx->p++;
	arg->type = IMAP_ARG_LIST;
	return parse_elements(ctx, depth + 1, true, &arg->list,
			      &arg->list_count);
}

/* quoted = DQUOTE *QUOTED-CHAR DQUOTE, with UTF-8 (RFC 9051 utf8-quoted).
 */
static int parse_quoted(struct parse_ctx *ctx, struct imap_arg *arg)
{
	const char *p = ctx->p + 1;
	char *out;
	size_t n = 0;

	/* The unescaped form is never longer than the quoted one. */
	for (const char *q = p; q < ctx->end && *q != '"'; q++) {
		if (*q == '\\' && ctx->end - q > 1)
			q++;
		n++;
	}
	out = imap_arena_alloc(ctx->arena, n + 1);
	n = 0;
	for (;;) {
		unsigned char c;

		if (p == ctx->end)
			return fail(ctx, "Unterminated quoted string");
		c = (unsigned char)*p++;
		if (c == '"')
			break;
		if (c == '\0')
			return fail(ctx, "NUL in quoted string");
		if (c == '\r' || c == '\n')
			return fail(ctx, "CR or LF in quoted string");
		if (c == '\\') {
			if (p == ctx->end)
				return fail(ctx, "Unterminated quoted string");
			c = (unsigned char)*p++;
			if (c != '\\' && c != '"')
				return fail(ctx,
					    "Invalid escape in quoted string");
		}
		out[n++] = (char)c;
	}
	if (!imap_utf8_valid(out, n))
		return fail(ctx, "Invalid UTF-8 in quoted string");
	out[n] = '\0';
	arg->type = IMAP_ARG_QUOTED;
	arg->str = out;
	arg->len = n;
	ctx->p = p;
	return 0;
}

/* "{N}" / "{N+}" / "~{N}" / "~{N+}", CRLF, then N bytes. */
static int parse_literal(struct parse_ctx *ctx, struct imap_arg *arg)
{
	const char *p = ctx->p;
	const char *close;
	bool binary = false;
	bool nonsync;
	uint64_t size;

	if (*p == '~') {
		binary = true;
		p++;
	}
	p++; /* '{' */
	close = memchr(p, '}', (size_t)(ctx->end - p));
	if (close == NULL || parse_literal_size(p, close, &nonsync, &size) < 0)
		return fail(ctx, "Invalid literal announcement");
	p = close + 1;
	if (ctx->end - p < 2 || p[0] != '\r' || p[1] != '\n')
		return fail(ctx, "Literal announcement must end the line");
	p += 2;
	if (size > (uint64_t)(ctx->end - p))
		return fail(ctx, "Literal data missing");
	if (!binary && memchr(p, '\0', (size_t)size) != NULL)
		return fail(ctx, "NUL in literal (literal8 allows it)");
	arg->type = IMAP_ARG_LITERAL;
	arg->str = imap_arena_strndup(ctx->arena, p, (size_t)size);
	arg->len = (size_t)size;
	arg->literal8 = binary;
	ctx->p = p + size;
	return 0;
}

/*
 * After a '[' in an atom: the byte after its matching ']', or NULL when
 * there is none on this line. Inside, anything printable goes, spaces and
 * parentheses included (BODY[HEADER.FIELDS (FROM TO)]).
 */
static const char *atom_bracket_end(const char *p, const char *end)
{
	size_t depth = 1;

	for (; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c >= 0x7f)
			return NULL;
		if (c == '[') {
			depth++;
		} else if (c == ']' && --depth == 0) {
			return p + 1;
		}
	}
	return NULL;
}

/*
 * An atom, read as servers read them: besides ATOM-CHAR, '%' and '*'
 * (LIST patterns, "1:*"), ']' (astring) and '\' (flags) are accepted;
 * CTL, 8-bit, '"' and '{' are not.
 */
static int parse_atom(struct parse_ctx *ctx, struct imap_arg *arg)
{
	const char *start = ctx->p;
	const char *p = start;
	bool brackets = true;

	while (p < ctx->end && *p != ' ' && *p != '(' && *p != ')') {
		unsigned char c = (unsigned char)*p;

		if (c == '[' && brackets) {
			const char *after = atom_bracket_end(p + 1, ctx->end);

			if (after != NULL) {
				p = after;
				continue;
			}
			/* One unmatched '[' ends the matching for this atom:
			 * trying again at every later '[' would make a line
			 * of them cost its length squared. */
			brackets = false;
		}
		if (c == '\r' || c == '\n')
			return fail(ctx, "Unexpected CR or LF");
		if (c == '\0')
			return fail(ctx, "NUL in command");
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '{')
			return fail(ctx, "Invalid characters in atom");
		p++;
	}
	arg->len = (size_t)(p - start);
	arg->str = imap_arena_strndup(ctx->arena, start, arg->len);
	arg->type = arg->len == 3 && (start[0] | 0x20) == 'n' &&
			    (start[1] | 0x20) == 'i' && (start[2] | 0x20) == 'l'
			? IMAP_ARG_NIL
			: IMAP_ARG_ATOM;
	ctx->p = p;
	return 0;
}

const char *imap_arg_astring(const struct imap_arg *arg)
{
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		if (strlen(arg->str) != arg->len)
			return NULL;
		return arg->str;
	default:
		return NULL;
	}
}

bool imap_arg_is_atom(const struct imap_arg *arg, const char *word)
{
	size_t n = strlen(word);

	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NIL)
		return false;
	if (arg->len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char a = arg->str[i];
		char b = word[i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

int imap_write_string(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	bool quotable = true;
	bool eight_bit = false;
	int r = 0;

	for (size_t i = 0; i < len && quotable; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c == '\r' || c == '\n')
			quotable = false;
		eight_bit |= c >= 0x80;
	}
	if (eight_bit && (!utf8_ok || !imap_utf8_valid(s, len)))
		quotable = false;
	if (!quotable) {
		if (buf_printf(out, "{%zu}\r\n", len) < 0)
			return -1;
		return buf_append(out, s, len);
	}
	r |= buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r |= buf_append(out, "\\", 1);
		r |= buf_append(out, s + i, 1);
	}
	r |= buf_append(out, "\"", 1);
	return r < 0 ? -1 : 0;
}

int imap_write_astring(struct buf *out, const char *s, size_t len, bool utf8_ok)
{
	bool atom = len > 0 && !(len == 3 && (s[0] | 0x20) == 'n' &&
				 (s[1] | 0x20) == 'i' && (s[2] | 0x20) == 'l');

	for (size_t i = 0; i < len && atom; i++) {
		unsigned char c = (unsigned char)s[i];

		atom = is_atom_char(c) || c == ']';
	}
	if (atom)
		return buf_append(out, s, len);
	return imap_write_string(out, s, len, utf8_ok);
}
