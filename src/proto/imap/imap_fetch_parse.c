/*
 * FETCH attributes and STORE flags. The tokenizer hands a fetch attribute
 * over as one atom, brackets included ("BODY.PEEK[HEADER.FIELDS (A B)]<0.9>"),
 * so the section grammar (RFC 9051 9: section-spec, section-part,
 * header-list, partial) is read here from that atom's text.
 */
#include "proto/imap/imap_fetch_parse.h"

#include <string.h>

#include "lib/postd_limits.h"

/* What a bare attribute name stands for. */
struct fetch_name {
	const char *name;
	enum imap_fetch_item item;
};

static const struct fetch_name simple_names[] = {
    {"FLAGS", IMAP_FETCH_FLAGS},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
    {"RFC822", IMAP_FETCH_RFC822},
    {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
    {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
    {"ENVELOPE", IMAP_FETCH_ENVELOPE},
    {"BODY", IMAP_FETCH_BODY},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    {"UID", IMAP_FETCH_UID},
    {"MODSEQ", IMAP_FETCH_MODSEQ},
};

static const struct {
	const char *name;
	enum imap_fetch_item items[5];
	size_t count;
} macros[] = {
    {"ALL",
     {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE,
      IMAP_FETCH_ENVELOPE},
     4},
    {"FAST",
     {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE},
     3},
    {"FULL",
     {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE,
      IMAP_FETCH_ENVELOPE, IMAP_FETCH_BODY},
     5},
};

static const struct {
	const char *name;
	uint32_t flag;
} system_flags[] = {
    {"\\Seen", MAIL_SEEN},	 {"\\Answered", MAIL_ANSWERED},
    {"\\Flagged", MAIL_FLAGGED}, {"\\Deleted", MAIL_DELETED},
    {"\\Draft", MAIL_DRAFT},	 {"\\Recent", MAIL_RECENT},
};

static bool span_eq(const char *s, size_t len, const char *word);
static bool span_prefix(const char **p, const char *end, const char *word);
static int parse_number64(const char **p, const char *end, bool nonzero,
			  uint64_t *v_r);
static const char *item_name(enum imap_fetch_item item);
static void add_att(struct imap_fetch *f, const struct imap_fetch_att *att);
static int parse_att(struct imap_fetch *f, const struct imap_arg *arg,
		     const char **error_r);
static int parse_section_att(struct imap_fetch *f, const char *s, size_t len,
			     struct imap_fetch_att *att, const char **error_r);
static int parse_section(struct imap_arena *arena, const char *s,
			 const char *end, bool binary,
			 struct mime_section *sec);
static int parse_field_list(struct imap_arena *arena, const char *p,
			    const char *end, struct mime_section *sec);
static int parse_partial(const char *p, const char *end,
			 struct imap_fetch_att *att);
static int parse_modifiers(struct imap_fetch *f, const struct imap_arg *arg,
			   const char **error_r);
static bool valid_field_name(const char *s, size_t len);
static bool is_atom_char(unsigned char c);
static int parse_flag(const struct imap_arg *arg, struct imap_arena *arena,
		      struct imap_flags *out, size_t *cap,
		      const char **error_r);
static int parse_unchangedsince(const struct imap_arg *list,
				struct imap_store *out);
static int atom_number64(const struct imap_arg *arg, bool nonzero,
			 uint64_t *v_r);

/* s[0..len) equals word, ASCII case-insensitively. */
static bool span_eq(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	if (len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char a = s[i];
		char b = word[i];

		if (a >= 'a' && a <= 'z')
			a = (char)(a - 'a' + 'A');
		if (b >= 'a' && b <= 'z')
			b = (char)(b - 'a' + 'A');
		if (a != b)
			return false;
	}
	return true;
}

/* When [*p, end) starts with word (case-insensitively), skips it. */
static bool span_prefix(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *p) < n || !span_eq(*p, n, word))
		return false;
	*p += n;
	return true;
}

/* number64 (RFC 9051 9): up to 2^63 - 1; nz-number64 when nonzero. */
static int parse_number64(const char **p, const char *end, bool nonzero,
			  uint64_t *v_r)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return -1;
	while (s < end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');

		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	if (nonzero && v == 0)
		return -1;
	*p = s;
	*v_r = v;
	return 0;
}

static const char *item_name(enum imap_fetch_item item)
{
	for (size_t i = 0; i < sizeof(simple_names) / sizeof(simple_names[0]);
	     i++) {
		if (simple_names[i].item == item)
			return simple_names[i].name;
	}
	return "?";
}

static void add_att(struct imap_fetch *f, const struct imap_fetch_att *att)
{
	if (f->count == f->cap) {
		/* doubling: the arena keeps the old array until the end */
		size_t cap = f->cap < 8 ? 8 : f->cap * 2;
		struct imap_fetch_att *grown =
		    imap_arena_alloc(f->arena, cap * sizeof(*grown));

		if (f->count > 0)
			memcpy(grown, f->atts, f->count * sizeof(*grown));
		f->atts = grown;
		f->cap = cap;
	}
	f->atts[f->count] = *att;
	if (f->atts[f->count].label == NULL)
		f->atts[f->count].label = item_name(att->item);
	f->count++;
	switch (att->item) {
	case IMAP_FETCH_FLAGS:
	case IMAP_FETCH_INTERNALDATE:
	case IMAP_FETCH_RFC822_SIZE:
	case IMAP_FETCH_UID:
	case IMAP_FETCH_MODSEQ:
		break;
	default:
		f->needs_message = true;
	}
	if (!att->peek && (att->item == IMAP_FETCH_RFC822 ||
			   att->item == IMAP_FETCH_RFC822_TEXT ||
			   att->item == IMAP_FETCH_BODY_SECTION ||
			   att->item == IMAP_FETCH_BINARY))
		f->sets_seen = true;
}

int imap_fetch_parse(const struct imap_arg *args, size_t count,
		     struct imap_fetch *out, const char **error_r)
{
	const struct imap_arg *atts = args;
	size_t n = 1;

	memset(out, 0, sizeof(*out));
	if (count == 0 || count > 2) {
		*error_r = "FETCH needs attributes";
		return -1;
	}
	out->arena = imap_arena_new();
	if (args[0].type == IMAP_ARG_ATOM) {
		for (size_t m = 0; m < sizeof(macros) / sizeof(macros[0]);
		     m++) {
			if (!imap_arg_is_atom(&args[0], macros[m].name))
				continue;
			for (size_t i = 0; i < macros[m].count; i++) {
				struct imap_fetch_att att = {0};

				att.item = macros[m].items[i];
				add_att(out, &att);
			}
			n = 0;
		}
	} else if (args[0].type == IMAP_ARG_LIST && args[0].list_count > 0) {
		atts = args[0].list;
		n = args[0].list_count;
	} else {
		*error_r = "Invalid FETCH attributes";
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (parse_att(out, &atts[i], error_r) < 0)
			goto fail;
	}
	if (count == 2 && parse_modifiers(out, &args[1], error_r) < 0)
		goto fail;
	return 0;
fail:
	imap_fetch_free(out);
	return -1;
}

/* "(CHANGEDSINCE n)": the only FETCH modifier without QRESYNC. */
static int parse_modifiers(struct imap_fetch *f, const struct imap_arg *arg,
			   const char **error_r)
{
	bool have_modseq = false;

	if (arg->type != IMAP_ARG_LIST || arg->list_count != 2 ||
	    !imap_arg_is_atom(&arg->list[0], "CHANGEDSINCE") ||
	    atom_number64(&arg->list[1], true, &f->changedsince) < 0) {
		*error_r = "Invalid FETCH modifiers";
		return -1;
	}
	f->changedsince_set = true;
	for (size_t i = 0; i < f->count; i++)
		have_modseq |= f->atts[i].item == IMAP_FETCH_MODSEQ;
	if (!have_modseq) {
		struct imap_fetch_att att = {0};

		att.item = IMAP_FETCH_MODSEQ;
		add_att(f, &att);
	}
	return 0;
}

void imap_fetch_ensure_uid(struct imap_fetch *fetch)
{
	struct imap_fetch_att att = {0};

	for (size_t i = 0; i < fetch->count; i++) {
		if (fetch->atts[i].item == IMAP_FETCH_UID)
			return;
	}
	if (fetch->arena == NULL)
		fetch->arena = imap_arena_new();
	att.item = IMAP_FETCH_UID;
	add_att(fetch, &att);
}

void imap_fetch_free(struct imap_fetch *fetch)
{
	imap_arena_free(&fetch->arena);
	memset(fetch, 0, sizeof(*fetch));
}

static int parse_att(struct imap_fetch *f, const struct imap_arg *arg,
		     const char **error_r)
{
	struct imap_fetch_att att = {0};
	const char *bracket;

	if (arg->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid FETCH attribute";
		return -1;
	}
	bracket = memchr(arg->str, '[', arg->len);
	if (bracket != NULL) {
		if (parse_section_att(f, arg->str, arg->len, &att, error_r) < 0)
			return -1;
		add_att(f, &att);
		return 0;
	}
	for (size_t i = 0; i < sizeof(simple_names) / sizeof(simple_names[0]);
	     i++) {
		if (!imap_arg_is_atom(arg, simple_names[i].name))
			continue;
		att.item = simple_names[i].item;
		/* the RFC822 forms are sections too, so that the session
		 * reads all content one way */
		if (att.item == IMAP_FETCH_RFC822_HEADER) {
			att.section.kind = MIME_SECTION_HEADER;
			att.peek = true;
		} else if (att.item == IMAP_FETCH_RFC822_TEXT) {
			att.section.kind = MIME_SECTION_TEXT;
		}
		add_att(f, &att);
		return 0;
	}
	*error_r = "Unknown FETCH attribute";
	return -1;
}

/* BODY[...], BODY.PEEK[...], BINARY[...], BINARY.PEEK[...],
 * BINARY.SIZE[...], each with an optional <partial> but the last. */
static int parse_section_att(struct imap_fetch *f, const char *s, size_t len,
			     struct imap_fetch_att *att, const char **error_r)
{
	const char *end = s + len;
	const char *open = memchr(s, '[', len);
	const char *close;
	const char *prefix = s;
	struct buf *label;
	bool binary = true;

	if (span_prefix(&prefix, open, "BODY.PEEK")) {
		att->item = IMAP_FETCH_BODY_SECTION;
		att->peek = true;
		binary = false;
	} else if (span_prefix(&prefix, open, "BODY")) {
		att->item = IMAP_FETCH_BODY_SECTION;
		binary = false;
	} else if (span_prefix(&prefix, open, "BINARY.PEEK")) {
		att->item = IMAP_FETCH_BINARY;
		att->peek = true;
	} else if (span_prefix(&prefix, open, "BINARY.SIZE")) {
		att->item = IMAP_FETCH_BINARY_SIZE;
	} else if (span_prefix(&prefix, open, "BINARY")) {
		att->item = IMAP_FETCH_BINARY;
	}
	if (prefix != open) {
		*error_r = "Unknown FETCH attribute";
		return -1;
	}
	close = memchr(open, ']', (size_t)(end - open));
	if (close == NULL ||
	    memchr(open + 1, '[', (size_t)(close - open - 1)) ||
	    parse_section(f->arena, open + 1, close, binary, &att->section) <
		0) {
		*error_r = "Invalid section";
		return -1;
	}
	if (close + 1 != end) {
		if (att->item == IMAP_FETCH_BINARY_SIZE ||
		    parse_partial(close + 1, end, att) < 0) {
			*error_r = "Invalid partial";
			return -1;
		}
	}
	/* The response echoes the section as the client wrote it; PEEK is
	 * not part of the name, and a partial shows only its origin. */
	label = buf_new(len + 32);
	buf_append_str(label, att->item == IMAP_FETCH_BODY_SECTION ? "BODY"
			      : att->item == IMAP_FETCH_BINARY_SIZE
				  ? "BINARY.SIZE"
				  : "BINARY");
	buf_append(label, open, (size_t)(close + 1 - open));
	if (att->partial)
		buf_printf(label, "<%llu>", (unsigned long long)att->offset);
	att->label =
	    imap_arena_strndup(f->arena, buf_data(label), buf_len(label));
	buf_free(&label);
	return 0;
}

/* "<" number64 "." nz-number64 ">" and nothing after it. */
static int parse_partial(const char *p, const char *end,
			 struct imap_fetch_att *att)
{
	if (p == end || *p++ != '<')
		return -1;
	if (parse_number64(&p, end, false, &att->offset) < 0)
		return -1;
	if (p == end || *p++ != '.')
		return -1;
	if (parse_number64(&p, end, true, &att->count) < 0)
		return -1;
	if (p == end || *p++ != '>' || p != end)
		return -1;
	att->partial = true;
	return 0;
}

/*
 * section-spec = section-msgtext / (section-part ["." section-text]);
 * BINARY takes only section-part (section-binary).
 */
static int parse_section(struct imap_arena *arena, const char *s,
			 const char *end, bool binary, struct mime_section *sec)
{
	const char *p = s;
	bool dot = false;

	memset(sec, 0, sizeof(*sec));
	sec->kind = MIME_SECTION_ALL;
	while (p < end && *p >= '0' && *p <= '9') {
		uint64_t n;

		if (*p == '0' || parse_number64(&p, end, true, &n) < 0 ||
		    n > UINT32_MAX)
			return -1;
		if (sec->depth == sizeof(sec->part) / sizeof(sec->part[0]))
			return -1;
		sec->part[sec->depth++] = (unsigned)n;
		dot = false;
		if (p < end && *p == '.') {
			dot = true;
			p++;
		} else if (p < end) {
			return -1;
		}
	}
	if (p == end)
		return dot ? -1 : 0;
	if (binary || (sec->depth > 0 && !dot))
		return -1;
	if (span_eq(p, (size_t)(end - p), "HEADER")) {
		sec->kind = MIME_SECTION_HEADER;
	} else if (span_eq(p, (size_t)(end - p), "TEXT")) {
		sec->kind = MIME_SECTION_TEXT;
	} else if (span_eq(p, (size_t)(end - p), "MIME")) {
		if (sec->depth == 0)
			return -1;
		sec->kind = MIME_SECTION_MIME;
	} else if (span_prefix(&p, end, "HEADER.FIELDS.NOT ")) {
		sec->kind = MIME_SECTION_HEADER_FIELDS_NOT;
		return parse_field_list(arena, p, end, sec);
	} else if (span_prefix(&p, end, "HEADER.FIELDS ")) {
		sec->kind = MIME_SECTION_HEADER_FIELDS;
		return parse_field_list(arena, p, end, sec);
	} else {
		return -1;
	}
	return 0;
}

/* RFC 5322 field-name: printable US-ASCII except ':'. */
static bool valid_field_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ':')
			return false;
	}
	return true;
}

/* header-list = "(" header-fld-name *(SP header-fld-name) ")", each an
 * atom or a quoted string; [p, end) must hold exactly that. */
static int parse_field_list(struct imap_arena *arena, const char *p,
			    const char *end, struct mime_section *sec)
{
	const char **names;
	size_t cap;

	if (p == end || *p++ != '(' || end - p < 2 || end[-1] != ')')
		return -1;
	end--;
	/* at most one name per two bytes ("A B C") */
	cap = (size_t)(end - p + 2) / 2;
	names = imap_arena_alloc(arena, cap * sizeof(*names));
	while (p < end) {
		const char *tok_end = p;
		char *name;
		size_t n = 0;

		/* the token's raw extent bounds its unescaped length */
		if (*p == '"') {
			for (tok_end++; tok_end < end && *tok_end != '"';
			     tok_end++) {
				if (*tok_end == '\\' && tok_end + 1 < end)
					tok_end++;
			}
			if (tok_end == end)
				return -1;
			tok_end++;
		} else {
			while (tok_end < end && *tok_end != ' ')
				tok_end++;
		}
		name = imap_arena_alloc(arena, (size_t)(tok_end - p) + 1);
		if (*p == '"') {
			for (p++; p < tok_end - 1; p++) {
				if (*p == '\\')
					p++;
				name[n++] = *p;
			}
		} else {
			while (p < tok_end)
				name[n++] = *p++;
		}
		p = tok_end;
		name[n] = '\0';
		if (!valid_field_name(name, n) || sec->field_count == cap)
			return -1;
		names[sec->field_count++] = name;
		if (p < end && (*p != ' ' || ++p == end))
			return -1;
	}
	if (sec->field_count == 0)
		return -1;
	sec->fields = names;
	return 0;
}

/* ATOM-CHAR (RFC 9051 9): what a keyword may be made of. */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

static int parse_flag(const struct imap_arg *arg, struct imap_arena *arena,
		      struct imap_flags *out, size_t *cap, const char **error_r)
{
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NIL) {
		*error_r = "Flags must be atoms";
		return -1;
	}
	if (arg->str[0] == '\\') {
		for (size_t i = 0;
		     i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
			if (!imap_arg_is_atom(arg, system_flags[i].name))
				continue;
			if (system_flags[i].flag == MAIL_RECENT) {
				*error_r = "\\Recent cannot be set";
				return -1;
			}
			out->system |= system_flags[i].flag;
			return 0;
		}
		*error_r = "Invalid system flag";
		return -1;
	}
	for (size_t i = 0; i < arg->len; i++) {
		if (!is_atom_char((unsigned char)arg->str[i])) {
			*error_r = "Invalid keyword";
			return -1;
		}
	}
	if (arg->len > MAIL_MAX_KEYWORD_LEN) {
		*error_r = "Keyword too long";
		return -1;
	}
	for (size_t i = 0; i < out->keyword_count; i++) {
		if (imap_arg_is_atom(arg, out->keywords[i]))
			return 0;
	}
	if (out->keyword_count == MAIL_MAX_KEYWORDS) {
		*error_r = "Too many keywords";
		return -1;
	}
	if (out->keyword_count == *cap) {
		const char **grown;

		*cap = *cap == 0 ? 8 : *cap * 2;
		grown = imap_arena_alloc(arena, *cap * sizeof(*grown));
		if (out->keyword_count > 0)
			memcpy(grown, out->keywords,
			       out->keyword_count * sizeof(*grown));
		out->keywords = grown;
	}
	out->keywords[out->keyword_count++] =
	    imap_arena_strndup(arena, arg->str, arg->len);
	return 0;
}

int imap_flags_parse(const struct imap_arg *args, size_t count,
		     struct imap_arena *arena, struct imap_flags *out,
		     const char **error_r)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	if (count == 1 && args[0].type == IMAP_ARG_LIST) {
		count = args[0].list_count;
		args = args[0].list;
	} else if (count == 0) {
		*error_r = "Missing flags";
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		if (parse_flag(&args[i], arena, out, &cap, error_r) < 0) {
			memset(out, 0, sizeof(*out));
			return -1;
		}
	}
	return 0;
}

int imap_flags_write(uint32_t system, const char *const *keywords,
		     size_t keyword_count, struct buf *out)
{
	bool first = true;
	int r = buf_append_str(out, "(");

	for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]);
	     i++) {
		if ((system & system_flags[i].flag) == 0)
			continue;
		r |= buf_printf(out, "%s%s", first ? "" : " ",
				system_flags[i].name);
		first = false;
	}
	for (size_t i = 0; i < keyword_count; i++) {
		r |= buf_printf(out, "%s%s", first ? "" : " ", keywords[i]);
		first = false;
	}
	r |= buf_append_str(out, ")");
	return r < 0 ? -1 : 0;
}

/* An atom that is exactly a number64. */
static int atom_number64(const struct imap_arg *arg, bool nonzero,
			 uint64_t *v_r)
{
	const char *p = arg->str;
	const char *end = arg->str + arg->len;

	if (arg->type != IMAP_ARG_ATOM ||
	    parse_number64(&p, end, nonzero, v_r) < 0)
		return -1;
	return p == end ? 0 : -1;
}

/* "(UNCHANGEDSINCE n)", RFC 7162 3.1.3; n may be 0. */
static int parse_unchangedsince(const struct imap_arg *list,
				struct imap_store *out)
{
	if (list->list_count != 2 ||
	    !imap_arg_is_atom(&list->list[0], "UNCHANGEDSINCE") ||
	    atom_number64(&list->list[1], false, &out->unchangedsince) < 0)
		return -1;
	out->unchangedsince_set = true;
	return 0;
}

int imap_store_parse(const struct imap_arg *args, size_t count,
		     struct imap_store *out, const char **error_r)
{
	const struct imap_arg *mode;
	const char *p;
	const char *end;
	size_t i = 0;

	memset(out, 0, sizeof(*out));
	if (count > 0 && args[0].type == IMAP_ARG_LIST) {
		if (parse_unchangedsince(&args[0], out) < 0) {
			*error_r = "Invalid STORE modifiers";
			return -1;
		}
		i = 1;
	}
	if (count < i + 2 || args[i].type != IMAP_ARG_ATOM) {
		*error_r = "STORE needs FLAGS and flags";
		return -1;
	}
	mode = &args[i];
	p = mode->str;
	end = p + mode->len;
	out->mode = *p == '+'	? MAIL_STORE_ADD
		    : *p == '-' ? MAIL_STORE_REMOVE
				: MAIL_STORE_SET;
	if (out->mode != MAIL_STORE_SET)
		p++;
	if (!span_prefix(&p, end, "FLAGS") ||
	    (p != end && !(out->silent = span_prefix(&p, end, ".SILENT"))) ||
	    p != end) {
		*error_r = "Invalid STORE data item";
		return -1;
	}
	out->arena = imap_arena_new();
	if (imap_flags_parse(args + i + 1, count - i - 1, out->arena,
			     &out->flags, error_r) < 0) {
		imap_store_free(out);
		return -1;
	}
	return 0;
}

void imap_store_free(struct imap_store *store)
{
	imap_arena_free(&store->arena);
	memset(store, 0, sizeof(*store));
}
