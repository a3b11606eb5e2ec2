/*
 * Tokens of structured header values (RFC 5322 section 3, RFC 2045
 * section 5.1, RFC 2231 section 3), parsed the way Dovecot's lib-mail
 * parses them so that our ENVELOPE and BODYSTRUCTURE agree with it on
 * broken mail too: case is kept, comments are skipped, and a parse error
 * stops at what was read so far instead of failing the message.
 */
#include "mime/mime_rfc822.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "mime/mime_int.h"

static bool is_atext(unsigned char c);
static bool is_mime_token_char(unsigned char c);
static int skip_comment(struct mime_rp *rp);
static int parse_quoted(struct mime_rp *rp, struct mime_str *out);
static int parse_atom_or_dot(struct mime_rp *rp, struct mime_str *out);
static int parse_dot_atom(struct mime_rp *rp, struct mime_str *out);
static int parse_phrase(struct mime_rp *rp, struct mime_str *out);
static int parse_domain(struct mime_rp *rp, struct mime_str *out);
static int parse_content_param(struct mime_rp *rp, struct mime_str *key,
			       struct mime_str *value);

void mime_str_add(struct mime_str *d, const void *p, size_t n)
{
	if (d->len + n + 1 > d->cap) {
		size_t cap = d->cap == 0 ? 64 : d->cap;

		while (cap < d->len + n + 1)
			cap *= 2;
		d->s = xreallocarray(d->s, cap, 1);
		d->cap = cap;
	}
	if (n > 0)
		memcpy(d->s + d->len, p, n);
	d->len += n;
	d->s[d->len] = '\0';
}

void mime_str_addc(struct mime_str *d, char c)
{
	mime_str_add(d, &c, 1);
}

char *mime_str_take(struct mime_str *d)
{
	char *s;

	if (d->s == NULL)
		return xstrdup("");
	s = d->s;
	d->s = NULL;
	d->len = d->cap = 0;
	return s;
}

void mime_str_free(struct mime_str *d)
{
	XFREE(d->s);
	d->len = d->cap = 0;
}

static void str_reset(struct mime_str *d)
{
	d->len = 0;
	if (d->s != NULL)
		d->s[0] = '\0';
}

/* RFC 5322 atext; 8-bit octets count as atext so that raw UTF-8 passes
 * (Dovecot's table does the same). */
static bool is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 2045 token: atext without the tspecials "/", "?" and "=", plus
 * "." (which atext lacks). */
static bool is_mime_token_char(unsigned char c)
{
	if (c == '.')
		return true;
	return is_atext(c) && c != '/' && c != '?' && c != '=';
}

void mime_rp_init(struct mime_rp *rp, const char *s, size_t len)
{
	rp->data = (const unsigned char *)s;
	rp->end = rp->data + len;
	rp->last_comment = NULL;
	rp->nul_replace = false;
}

/* A comment, nested ones included; its text goes to last_comment. */
static int skip_comment(struct mime_rp *rp)
{
	const unsigned char *start = ++rp->data;
	unsigned level = 1;

	if (rp->last_comment != NULL)
		str_reset(rp->last_comment);
	for (; rp->data < rp->end; rp->data++) {
		switch (*rp->data) {
		case '(':
			level++;
			break;
		case ')':
			if (--level == 0) {
				if (rp->last_comment != NULL)
					mime_str_add(
					    rp->last_comment, start,
					    (size_t)(rp->data - start));
				rp->data++;
				return 1;
			}
			break;
		case '\\':
			if (rp->last_comment != NULL)
				mime_str_add(rp->last_comment, start,
					     (size_t)(rp->data - start));
			start = rp->data + 1;
			if (rp->data + 1 < rp->end)
				rp->data++;
			break;
		case '\0':
			if (rp->last_comment != NULL && rp->nul_replace) {
				mime_str_add(rp->last_comment, start,
					     (size_t)(rp->data - start));
				mime_str_add(rp->last_comment, "\xef\xbf\xbd",
					     3);
				start = rp->data + 1;
			}
			break;
		default:
			break;
		}
	}
	return -1;
}

int mime_rp_skip_lwsp(struct mime_rp *rp)
{
	while (rp->data < rp->end) {
		unsigned char c = *rp->data;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			rp->data++;
			continue;
		}
		if (c != '(')
			break;
		if (skip_comment(rp) < 0)
			return -1;
	}
	return rp->data < rp->end ? 1 : 0;
}

int mime_rp_mime_token(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start = rp->data;

	while (rp->data < rp->end && is_mime_token_char(*rp->data))
		rp->data++;
	mime_str_add(out, start, (size_t)(rp->data - start));
	return mime_rp_skip_lwsp(rp);
}

int mime_rp_atom(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start = rp->data;

	if (rp->data >= rp->end || !is_atext(*rp->data))
		return -1;
	while (rp->data < rp->end && is_atext(*rp->data))
		rp->data++;
	mime_str_add(out, start, (size_t)(rp->data - start));
	return mime_rp_skip_lwsp(rp);
}

/* A quoted string without its quotes and backslashes; line breaks
 * inside are dropped (folding), a bare CR is kept. */
static int parse_quoted(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start = ++rp->data;

	for (; rp->data < rp->end; rp->data++) {
		switch (*rp->data) {
		case '"':
			mime_str_add(out, start, (size_t)(rp->data - start));
			rp->data++;
			return mime_rp_skip_lwsp(rp);
		case '\n': {
			/* folding: the (CR)LF goes, a bare CR stays */
			const unsigned char *e = rp->data;

			if (e > start && e[-1] == '\r')
				e--;
			mime_str_add(out, start, (size_t)(e - start));
			start = rp->data + 1;
			break;
		}
		case '\\':
			if (rp->data + 1 >= rp->end)
				return -1;
			mime_str_add(out, start, (size_t)(rp->data - start));
			rp->data++;
			start = rp->data;
			break;
		case '\0':
			if (rp->nul_replace) {
				mime_str_add(out, start,
					     (size_t)(rp->data - start));
				mime_str_add(out, "\xef\xbf\xbd", 3);
				start = rp->data + 1;
			}
			break;
		default:
			break;
		}
	}
	return -1;
}

static int parse_atom_or_dot(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start = rp->data;

	while (rp->data < rp->end && (is_atext(*rp->data) || *rp->data == '.'))
		rp->data++;
	mime_str_add(out, start, (size_t)(rp->data - start));
	return mime_rp_skip_lwsp(rp);
}

/* dot-atom, blanks and comments allowed around the dots (RFC 822). */
static int parse_dot_atom(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start;
	int ret;

	if (rp->data >= rp->end || !is_atext(*rp->data))
		return -1;
	for (start = rp->data++; rp->data < rp->end;) {
		if (is_atext(*rp->data)) {
			rp->data++;
			continue;
		}
		if (start == rp->data)
			return -1;
		mime_str_add(out, start, (size_t)(rp->data - start));
		if ((ret = mime_rp_skip_lwsp(rp)) <= 0)
			return ret;
		if (*rp->data != '.')
			return 1;
		rp->data++;
		mime_str_addc(out, '.');
		if ((ret = mime_rp_skip_lwsp(rp)) <= 0)
			return ret;
		start = rp->data;
	}
	mime_str_add(out, start, (size_t)(rp->data - start));
	return 0;
}

/* A phrase: words joined by one space. */
static int parse_phrase(struct mime_rp *rp, struct mime_str *out)
{
	int ret;

	if (rp->data >= rp->end)
		return 0;
	if (*rp->data == '.')
		return -1;
	for (;;) {
		if (*rp->data == '"')
			ret = parse_quoted(rp, out);
		else
			ret = parse_atom_or_dot(rp, out);
		if (ret <= 0)
			return ret;
		if (!is_atext(*rp->data) && *rp->data != '"' &&
		    *rp->data != '.')
			break;
		mime_str_addc(out, ' ');
	}
	return mime_rp_skip_lwsp(rp);
}

/* "@" domain: a dot-atom or a domain literal. */
static int parse_domain(struct mime_rp *rp, struct mime_str *out)
{
	const unsigned char *start;
	int ret;

	rp->data++;
	if ((ret = mime_rp_skip_lwsp(rp)) <= 0)
		return -1;
	if (*rp->data != '[')
		return parse_dot_atom(rp, out);
	for (start = rp->data; rp->data < rp->end; rp->data++) {
		if (*rp->data == '\\') {
			if (rp->data + 1 >= rp->end)
				break;
			mime_str_add(out, start, (size_t)(rp->data - start));
			start = ++rp->data;
		} else if (*rp->data == ']') {
			rp->data++;
			mime_str_add(out, start, (size_t)(rp->data - start));
			return mime_rp_skip_lwsp(rp);
		}
	}
	return -1;
}

/* ";" attribute "=" value. 1: one read, 0: none left, -1: broken. */
static int parse_content_param(struct mime_rp *rp, struct mime_str *key,
			       struct mime_str *value)
{
	int ret;

	str_reset(key);
	str_reset(value);
	if (rp->data >= rp->end)
		return 0;
	if (*rp->data != ';')
		return -1;
	rp->data++;
	if (mime_rp_skip_lwsp(rp) <= 0)
		return -1;
	if (mime_rp_mime_token(rp, key) <= 0 || key->len == 0)
		return -1;
	if (*rp->data != '=')
		return -1;
	rp->data++;
	if ((ret = mime_rp_skip_lwsp(rp)) <= 0) {
		/* "name=" at the end: an empty value */
	} else if (*rp->data == '"') {
		ret = parse_quoted(rp, value);
	} else if (*rp->data == '=') {
		/* name==?utf-8?b?...?= (broken, but common) */
		while (rp->data < rp->end && *rp->data != ';' &&
		       *rp->data != ' ' && *rp->data != '\t' &&
		       *rp->data != '\r' && *rp->data != '\n')
			mime_str_addc(value, (char)*rp->data++);
	} else {
		ret = mime_rp_mime_token(rp, value);
	}
	return ret < 0 ? -1 : 1;
}

/* One RFC 2231 section (name*N or name*N*). */
struct cont_param {
	char *name, *value;
	unsigned idx;
	bool extended;
};

static int cont_cmp(const void *a, const void *b)
{
	const struct cont_param *x = a, *y = b;
	int c = strcasecmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx ? 1 : 0;
}

/* name*N[*] or name*: fills c and returns true when key is such a
 * section. Dovecot gives "name*" the index of the section read before it
 * (its parser state is reused), so "name*" after "title*2" becomes
 * "name*2*": kept, because BODYSTRUCTURE must match. */
static bool split_continuation(const char *key, struct cont_param *c,
			       unsigned *last_idx)
{
	const char *star = strchr(key, '*'), *p;
	unsigned long idx = 0;

	if (star == NULL || star == key)
		return false;
	p = star + 1;
	if (*p == '\0') {
		c->extended = true;
		c->idx = *last_idx;
		c->name = xstrndup(key, (size_t)(star - key));
		return true;
	}
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9') {
		idx = idx * 10 + (unsigned long)(*p - '0');
		if (idx > 100000)
			return false;
		p++;
	}
	c->extended = *p == '*';
	if (c->extended)
		p++;
	if (*p != '\0')
		return false;
	c->name = xstrndup(key, (size_t)(star - key));
	c->idx = (unsigned)idx;
	*last_idx = c->idx;
	return true;
}

static void params_push(struct mime_param **params, size_t *count, size_t *cap,
			char *name, char *value)
{
	if (*count == *cap) {
		*cap = *cap == 0 ? 4 : *cap * 2;
		*params = xreallocarray(*params, *cap, sizeof(**params));
	}
	(*params)[*count].name = name;
	(*params)[*count].value = value;
	(*count)++;
}

/* Merges sorted sections of one name, or keeps them apart when an
 * index is missing (then they are not RFC 2231 sections after all). */
static void merge_continuations(struct cont_param *c, size_t n,
				struct mime_param **params, size_t *count,
				size_t *cap)
{
	size_t i, j, next;

	for (i = 0; i < n; i = next) {
		bool ok = true, ext = false;
		struct mime_str v = {0};

		for (j = i; j < n && strcasecmp(c[j].name, c[i].name) == 0;
		     j++) {
			if (c[j].idx != j - i)
				ok = false;
			ext = ext || c[j].extended;
		}
		next = j;
		if (!ok) {
			for (j = i; j < next; j++) {
				struct mime_str k = {0};
				char num[16];
				int nl = snprintf(num, sizeof(num), "*%u%s",
						  c[j].idx,
						  c[j].extended ? "*" : "");

				mime_str_add(&k, c[j].name, strlen(c[j].name));
				mime_str_add(&k, num, (size_t)nl);
				params_push(params, count, cap,
					    mime_str_take(&k),
					    xstrdup(c[j].value));
			}
			continue;
		}
		if (!c[i].extended && ext)
			mime_str_add(&v, "''", 2);
		for (j = i; j < next; j++)
			mime_str_add(&v, c[j].value, strlen(c[j].value));
		{
			struct mime_str k = {0};

			mime_str_add(&k, c[i].name, strlen(c[i].name));
			if (ext)
				mime_str_addc(&k, '*');
			params_push(params, count, cap, mime_str_take(&k),
				    mime_str_take(&v));
		}
	}
}

void mime_rp_params(struct mime_rp *rp, struct mime_param **params_r,
		    size_t *count_r)
{
	struct mime_str key = {0}, value = {0};
	struct cont_param *conts = NULL;
	size_t nconts = 0, capconts = 0, count = 0, cap = 0, i;
	struct mime_param *params = NULL;
	unsigned last_idx = 0;
	int ret;

	while ((ret = parse_content_param(rp, &key, &value)) != 0) {
		struct cont_param c;

		if (count + nconts >= MIME_MAX_PARAMS)
			break;
		if (ret < 0) {
			/* try to go on after the broken part */
			if (rp->data >= rp->end)
				break;
			rp->data++;
			continue;
		}
		if (!split_continuation(key.s, &c, &last_idx)) {
			params_push(&params, &count, &cap, xstrdup(key.s),
				    xstrdup(value.s != NULL ? value.s : ""));
			continue;
		}
		c.value = xstrdup(value.s != NULL ? value.s : "");
		if (nconts == capconts) {
			capconts = capconts == 0 ? 4 : capconts * 2;
			conts = xreallocarray(conts, capconts, sizeof(*conts));
		}
		conts[nconts++] = c;
	}
	if (nconts > 0) {
		qsort(conts, nconts, sizeof(*conts), cont_cmp);
		merge_continuations(conts, nconts, &params, &count, &cap);
	}
	for (i = 0; i < nconts; i++) {
		free(conts[i].name);
		free(conts[i].value);
	}
	free(conts);
	mime_str_free(&key);
	mime_str_free(&value);
	*params_r = params;
	*count_r = count;
}

/* ---- addresses (RFC 5322 section 3.4, Dovecot's message-address.c) ---- */

struct addr_ctx {
	struct mime_rp rp;
	struct mime_str str, comment;
	struct mime_addr cur;
	struct mime_addrs *list;
};

static void addr_free_fields(struct mime_addr *a)
{
	XFREE(a->name);
	XFREE(a->route);
	XFREE(a->mailbox);
	XFREE(a->domain);
}

static void add_address(struct addr_ctx *ctx)
{
	struct mime_addrs *l = ctx->list;

	if (l->n >= MIME_MAX_ADDRESSES) {
		addr_free_fields(&ctx->cur);
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap == 0 ? 4 : l->cap * 2;
		l->a = xreallocarray(l->a, l->cap, sizeof(*l->a));
	}
	l->a[l->n++] = ctx->cur;
	memset(&ctx->cur, 0, sizeof(ctx->cur));
}

static void set_field(char **field, struct mime_str *s)
{
	free(*field);
	*field = xstrndup(s->s != NULL ? s->s : "", s->len);
}

static int parse_local_part(struct addr_ctx *ctx)
{
	int ret;

	str_reset(&ctx->str);
	/* dots anywhere (".a", "a..b"), as Dovecot reads an envelope */
	if (*ctx->rp.data == '"')
		ret = parse_quoted(&ctx->rp, &ctx->str);
	else
		ret = parse_atom_or_dot(&ctx->rp, &ctx->str);
	if (ret < 0)
		return -1;
	set_field(&ctx->cur.mailbox, &ctx->str);
	return ret;
}

static int parse_addr_domain(struct addr_ctx *ctx)
{
	int ret;

	str_reset(&ctx->str);
	if ((ret = parse_domain(&ctx->rp, &ctx->str)) < 0)
		return -1;
	set_field(&ctx->cur.domain, &ctx->str);
	return ret;
}

/* "@" domain *("," "@" domain) ":" before the local part (obs-route). */
static int parse_route(struct addr_ctx *ctx)
{
	struct mime_str route = {0};
	int ret;

	for (;;) {
		mime_str_addc(&route, '@');
		str_reset(&ctx->str);
		if ((ret = parse_domain(&ctx->rp, &ctx->str)) <= 0)
			break;
		mime_str_add(&route, ctx->str.s, ctx->str.len);
		while (*ctx->rp.data == ',') {
			ctx->rp.data++;
			if ((ret = mime_rp_skip_lwsp(&ctx->rp)) <= 0)
				break;
		}
		if (ret <= 0 || *ctx->rp.data != '@')
			break;
		mime_str_addc(&route, ',');
	}
	free(ctx->cur.route);
	ctx->cur.route = mime_str_take(&route);
	return ret;
}

static int parse_angle_addr(struct addr_ctx *ctx)
{
	ctx->rp.data++;
	if (mime_rp_skip_lwsp(&ctx->rp) <= 0)
		return -1;
	if (*ctx->rp.data == '@') {
		if (parse_route(ctx) > 0 && *ctx->rp.data == ':') {
			ctx->rp.data++;
		} else {
			free(ctx->cur.route);
			ctx->cur.route = xstrdup("INVALID_ROUTE");
			if (ctx->rp.data >= ctx->rp.end)
				return -1;
		}
		if (mime_rp_skip_lwsp(&ctx->rp) <= 0)
			return -1;
	}
	if (*ctx->rp.data != '>') {
		if (parse_local_part(ctx) <= 0)
			return -1;
		if (*ctx->rp.data == '@' && parse_addr_domain(ctx) <= 0)
			return -1;
	}
	if (*ctx->rp.data != '>')
		return -1;
	ctx->rp.data++;
	return mime_rp_skip_lwsp(&ctx->rp);
}

static int parse_name_addr(struct addr_ctx *ctx)
{
	str_reset(&ctx->str);
	if (parse_phrase(&ctx->rp, &ctx->str) <= 0 || *ctx->rp.data != '<')
		return -1;
	if (ctx->str.len > 0)
		set_field(&ctx->cur.name, &ctx->str);
	if (parse_angle_addr(ctx) < 0) {
		free(ctx->cur.domain);
		ctx->cur.domain = xstrdup("SYNTAX_ERROR");
	}
	return ctx->rp.data < ctx->rp.end ? 1 : 0;
}

static int parse_addr_spec(struct addr_ctx *ctx)
{
	bool quoted = *ctx->rp.data == '"';
	int ret, ret2 = -2;

	str_reset(&ctx->comment);
	ret = parse_local_part(ctx);
	if (ret != 0 && ctx->rp.data < ctx->rp.end && *ctx->rp.data == '@') {
		ret2 = parse_addr_domain(ctx);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (ctx->comment.len > 0) {
		set_field(&ctx->cur.name, &ctx->comment);
	} else if (ret2 == -2) {
		/* "user" alone is a mailbox, but "user more words" is a
		 * display name without an address (Dovecot's reading) */
		size_t before;

		mime_str_addc(&ctx->str, ' ');
		before = ctx->str.len;
		(void)parse_phrase(&ctx->rp, &ctx->str);
		if (ctx->str.len != before) {
			XFREE(ctx->cur.mailbox);
			set_field(&ctx->cur.name, &ctx->str);
		} else if (quoted) {
			/* "Name" alone is a display name too */
			free(ctx->cur.name);
			ctx->cur.name = ctx->cur.mailbox;
			ctx->cur.mailbox = NULL;
			if (ctx->cur.name != NULL && ctx->cur.name[0] == '\0')
				XFREE(ctx->cur.name);
		} else {
			free(ctx->cur.domain);
			ctx->cur.domain = xstrdup("");
		}
		ret = -1;
	}
	return ret;
}

static int parse_mailbox(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->rp.data;
	int ret;

	if ((ret = parse_name_addr(ctx)) < 0) {
		addr_free_fields(&ctx->cur);
		ctx->rp.data = start;
		ret = parse_addr_spec(ctx);
	}
	if (ctx->cur.mailbox == NULL || ctx->cur.mailbox[0] == '\0') {
		free(ctx->cur.mailbox);
		ctx->cur.mailbox = xstrdup("MISSING_MAILBOX");
	}
	if (ctx->cur.domain == NULL || ctx->cur.domain[0] == '\0') {
		free(ctx->cur.domain);
		ctx->cur.domain = xstrdup("MISSING_DOMAIN");
	}
	add_address(ctx);
	return ret;
}

static int parse_group(struct addr_ctx *ctx)
{
	int ret;

	str_reset(&ctx->str);
	if (parse_phrase(&ctx->rp, &ctx->str) <= 0 || *ctx->rp.data != ':')
		return -1;
	/* from here on it is a group, whatever follows */
	ctx->rp.data++;
	ret = mime_rp_skip_lwsp(&ctx->rp);
	set_field(&ctx->cur.mailbox, &ctx->str);
	add_address(ctx);
	if (ret > 0 && *ctx->rp.data != ';') {
		/* a bad mailbox does not end the group (Dovecot) */
		for (;;) {
			(void)parse_mailbox(ctx);
			if (ctx->rp.data >= ctx->rp.end || *ctx->rp.data != ',')
				break;
			ctx->rp.data++;
			if (mime_rp_skip_lwsp(&ctx->rp) <= 0)
				break;
		}
	}
	if (ret >= 0) {
		if (ctx->rp.data >= ctx->rp.end || *ctx->rp.data != ';') {
			ret = -1;
		} else {
			ctx->rp.data++;
			ret = mime_rp_skip_lwsp(&ctx->rp);
		}
	}
	add_address(ctx); /* the group's end */
	return ret == 0 ? 0 : 1;
}

static int parse_address(struct addr_ctx *ctx)
{
	const unsigned char *start = ctx->rp.data;
	int ret;

	if ((ret = parse_group(ctx)) < 0) {
		addr_free_fields(&ctx->cur);
		ctx->rp.data = start;
		ret = parse_mailbox(ctx);
	}
	return ret;
}

void mime_addrs_parse(const char *value, size_t len, struct mime_addrs *list)
{
	struct addr_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.list = list;
	mime_rp_init(&ctx.rp, value, len);
	ctx.rp.last_comment = &ctx.comment;
	ctx.rp.nul_replace = true;
	if (mime_rp_skip_lwsp(&ctx.rp) > 0) {
		while (list->n < MIME_MAX_ADDRESSES) {
			if (parse_address(&ctx) == 0)
				break;
			if (ctx.rp.data >= ctx.rp.end || *ctx.rp.data != ',')
				break;
			ctx.rp.data++;
			if (mime_rp_skip_lwsp(&ctx.rp) <= 0)
				break;
		}
	}
	addr_free_fields(&ctx.cur);
	mime_str_free(&ctx.str);
	mime_str_free(&ctx.comment);
}

void mime_addrs_free(struct mime_addrs *list)
{
	size_t i;

	for (i = 0; i < list->n; i++)
		addr_free_fields(&list->a[i]);
	XFREE(list->a);
	list->n = list->cap = 0;
}
