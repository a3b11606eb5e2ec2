/*
 * Sort and thread keys from a message's header (imap_sortkeys.h). GMime
 * decodes RFC 2047 words, addresses and dates, as it does for SEARCH
 * (src/mime); the base subject rules are RFC 5256 section 2.1, step by
 * step. Only the header is read: up to its blank line and at most
 * MIME_MAX_HEADER_BYTES.
 */
#include "proto/imap/imap_sortkeys.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "proto/imap/imap_mailbox.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_start(void);
static char *header_get(const char *hdr, size_t len, const char *name);
static char *decode_text(const char *raw);
static void casemap(char *s);
static void drop_prefix(char *s, size_t n);
static void normalise_blanks(char *s);
static bool strip_trailers(char *s);
static size_t blob_len(const char *s);
static size_t leader_len(const char *s, bool *refwd_r);
static bool strip_leaders(char *s, bool *reply);
static void first_address(const char *raw, char **mailbox_r, char **display_r);
static time_t parse_date(const char *raw);
static size_t parse_msgids(const char *raw, char ***ids_r, size_t max);
static char *read_header(struct imap_session *s, size_t seq0, size_t *len_r);

static void gmime_start(void)
{
	g_mime_init();
}

/* The first field called name, unfolded (line ends removed, the blanks
 * of continuation lines kept), without the blanks after the colon. */
static char *header_get(const char *hdr, size_t len, const char *name)
{
	size_t name_len = strlen(name), i = 0;

	while (i < len && hdr[i] != '\r' && hdr[i] != '\n') {
		size_t start = i, end;
		char *out;
		size_t o = 0;

		/* the field runs until a line that does not start with a
		 * blank */
		end = i;
		while (end < len) {
			const char *nl = memchr(hdr + end, '\n', len - end);

			end = nl == NULL ? len : (size_t)(nl - hdr) + 1;
			if (end >= len || (hdr[end] != ' ' && hdr[end] != '\t'))
				break;
		}
		i = end;
		if (end - start <= name_len || hdr[start + name_len] != ':' ||
		    strncasecmp(hdr + start, name, name_len) != 0)
			continue;
		start += name_len + 1;
		while (start < end && (hdr[start] == ' ' || hdr[start] == '\t'))
			start++;
		out = xmalloc(end - start + 1);
		for (size_t j = start; j < end; j++)
			if (hdr[j] != '\r' && hdr[j] != '\n')
				out[o++] = hdr[j] == '\0' ? ' ' : hdr[j];
		out[o] = '\0';
		return out;
	}
	return NULL;
}

static char *decode_text(const char *raw)
{
	char *dec, *out;

	pthread_once(&gmime_once, gmime_start);
	dec = g_mime_utils_header_decode_text(NULL, raw);
	if (dec == NULL)
		return xstrdup(raw);
	out = xstrdup(dec);
	g_free(dec);
	return out;
}

/* i;ascii-casemap: a-z as A-Z, every other octet as it is. */
static void casemap(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
}

/* s without its first n octets (n <= strlen(s)). */
static void drop_prefix(char *s, size_t n)
{
	size_t i = 0;

	for (; s[i + n] != '\0'; i++)
		s[i] = s[i + n];
	s[i] = '\0';
}

/* RFC 5256 2.1 (1): tabs and line breaks become blanks, runs of blanks
 * one blank. */
static void normalise_blanks(char *s)
{
	char *w = s;
	bool blank = false;

	for (const char *r = s; *r != '\0'; r++) {
		bool b = *r == ' ' || *r == '\t' || *r == '\r' || *r == '\n';

		if (b && blank)
			continue;
		*w++ = b ? ' ' : *r;
		blank = b;
	}
	*w = '\0';
}

/* (2): trailing "(fwd)" and blanks. True when a "(fwd)" went. */
static bool strip_trailers(char *s)
{
	size_t n = strlen(s);
	bool removed = false;

	for (;;) {
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n >= 5 && strncasecmp(s + n - 5, "(fwd)", 5) == 0) {
			n -= 5;
			removed = true;
			continue;
		}
		break;
	}
	s[n] = '\0';
	return removed;
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP at s: its length, or 0. */
static size_t blob_len(const char *s)
{
	size_t i = 1;

	if (s[0] != '[')
		return 0;
	while (s[i] != '\0' && s[i] != '[' && s[i] != ']')
		i++;
	if (s[i] != ']')
		return 0;
	i++;
	while (s[i] == ' ')
		i++;
	return i;
}

/* subj-leader = (*subj-blob subj-refwd) / WSP at s: its length, or 0. */
static size_t leader_len(const char *s, bool *refwd_r)
{
	size_t i = 0, b;

	*refwd_r = false;
	if (s[0] == ' ')
		return 1;
	while ((b = blob_len(s + i)) > 0)
		i += b;
	if (strncasecmp(s + i, "re", 2) == 0)
		i += 2;
	else if (strncasecmp(s + i, "fwd", 3) == 0)
		i += 3;
	else if (strncasecmp(s + i, "fw", 2) == 0)
		i += 2;
	else
		return 0;
	while (s[i] == ' ')
		i++;
	i += blob_len(s + i);
	if (s[i] != ':')
		return 0;
	*refwd_r = true;
	return i + 1;
}

/* (3) to (5): leaders, and a leading blob when text remains after it.
 * True when anything changed. */
static bool strip_leaders(char *s, bool *reply)
{
	bool changed = false, again = true;

	while (again) {
		size_t n, b;
		bool refwd;

		again = false;
		while ((n = leader_len(s, &refwd)) > 0) {
			drop_prefix(s, n);
			*reply = *reply || refwd;
			again = true;
		}
		b = blob_len(s);
		if (b > 0 && s[b] != '\0') {
			drop_prefix(s, b);
			again = true;
		}
		changed = changed || again;
	}
	return changed;
}

char *imap_base_subject(const char *raw, bool *reply_r)
{
	char *s = decode_text(raw);
	bool reply = false;

	normalise_blanks(s);
	for (;;) {
		size_t n;

		if (strip_trailers(s))
			reply = true;
		(void)strip_leaders(s, &reply);
		/* (6): "[fwd:" ... "]" around everything */
		n = strlen(s);
		if (n >= 6 && strncasecmp(s, "[fwd:", 5) == 0 &&
		    s[n - 1] == ']') {
			s[n - 1] = '\0';
			drop_prefix(s, 5);
			reply = true;
			continue;
		}
		break;
	}
	casemap(s);
	*reply_r = reply;
	return s;
}

/* The first address: its addr-mailbox (a group: its name, as the
 * ENVELOPE gives it) and its display name (or its address, RFC 5957). */
static void first_address(const char *raw, char **mailbox_r, char **display_r)
{
	InternetAddressList *list;
	InternetAddress *ia;
	const char *name;

	*mailbox_r = NULL;
	*display_r = NULL;
	pthread_once(&gmime_once, gmime_start);
	list = internet_address_list_parse(NULL, raw);
	if (list == NULL)
		return;
	if (internet_address_list_length(list) > 0) {
		ia = internet_address_list_get_address(list, 0);
		name = internet_address_get_name(ia);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			*mailbox_r = xstrdup(name != NULL ? name : "");
			*display_r = xstrdup(name != NULL ? name : "");
		} else {
			InternetAddressMailbox *mb =
			    INTERNET_ADDRESS_MAILBOX(ia);
			const char *addr = mb->addr != NULL ? mb->addr : "";

			*mailbox_r =
			    mb->at > 0 && (size_t)mb->at <= strlen(addr)
				? xstrndup(addr, (size_t)mb->at)
				: xstrdup(addr);
			*display_r = xstrdup(
			    name != NULL && name[0] != '\0' ? name : addr);
		}
	}
	g_object_unref(list);
}

static time_t parse_date(const char *raw)
{
	GDateTime *dt;
	time_t t;

	pthread_once(&gmime_once, gmime_start);
	dt = g_mime_utils_header_decode_date(raw);
	if (dt == NULL)
		return -1;
	t = (time_t)g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

/* The msg-ids ("<...>", blanks inside dropped) of raw, oldest first; of
 * more than max, the last max (the nearest ancestors). */
static size_t parse_msgids(const char *raw, char ***ids_r, size_t max)
{
	char **ids = NULL;
	size_t count = 0, cap = 0;

	for (const char *p = raw; (p = strchr(p, '<')) != NULL;) {
		const char *end = strchr(p + 1, '>');
		const char *lt = strchr(p + 1, '<');
		char *id;
		size_t o = 0;

		if (end == NULL)
			break;
		if (lt != NULL && lt < end) {
			p = lt;
			continue;
		}
		id = xmalloc((size_t)(end - p));
		for (const char *c = p + 1; c < end; c++)
			if (*c != ' ' && *c != '\t')
				id[o++] = *c;
		id[o] = '\0';
		p = end + 1;
		if (o == 0) {
			free(id);
			continue;
		}
		if (count == max && ids != NULL) {
			free(ids[0]);
			memmove(ids, ids + 1, (count - 1) * sizeof(*ids));
			count--;
		}
		if (count == cap) {
			cap = cap == 0 ? 4 : 2 * cap;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		ids[count++] = id;
	}
	*ids_r = ids;
	return count;
}

void imap_sortkeys_parse(const char *hdr, size_t len, struct imap_sortkeys *k)
{
	static const char *const addr_fields[] = {"From", "To", "Cc"};
	char **addr_keys[] = {&k->from, &k->to, &k->cc};
	char *v, *display;

	memset(k, 0, sizeof(*k));
	k->sent = -1;
	v = header_get(hdr, len, "Subject");
	k->subject = imap_base_subject(v != NULL ? v : "", &k->reply);
	free(v);
	for (size_t i = 0; i < 3; i++) {
		v = header_get(hdr, len, addr_fields[i]);
		display = NULL;
		if (v != NULL)
			first_address(v, addr_keys[i], &display);
		free(v);
		if (*addr_keys[i] == NULL)
			*addr_keys[i] = xstrdup("");
		if (display == NULL)
			display = xstrdup("");
		casemap(*addr_keys[i]);
		casemap(display);
		if (i == 0)
			k->display_from = display;
		else if (i == 1)
			k->display_to = display;
		else
			free(display);
	}
	if ((v = header_get(hdr, len, "Date")) != NULL)
		k->sent = parse_date(v);
	free(v);
	if ((v = header_get(hdr, len, "Message-ID")) != NULL) {
		char **ids;
		size_t n = parse_msgids(v, &ids, 1);

		if (n > 0)
			k->message_id = ids[0];
		free(ids);
	}
	free(v);
	/* RFC 5256 section 3 (1): References, else the first msg-id of
	 * In-Reply-To. */
	if ((v = header_get(hdr, len, "References")) != NULL)
		k->ref_count = parse_msgids(v, &k->refs, IMAP_MAX_THREAD_REFS);
	free(v);
	if (k->ref_count == 0 &&
	    (v = header_get(hdr, len, "In-Reply-To")) != NULL) {
		char **ids;
		size_t n = parse_msgids(v, &ids, SIZE_MAX);

		if (n > 0) {
			k->refs = xcalloc(1, sizeof(*k->refs));
			k->refs[0] = ids[0];
			k->ref_count = 1;
		}
		for (size_t i = 1; i < n; i++)
			free(ids[i]);
		free(ids);
		free(v);
	}
}

void imap_sortkeys_free(struct imap_sortkeys *k)
{
	free(k->subject);
	free(k->from);
	free(k->to);
	free(k->cc);
	free(k->display_from);
	free(k->display_to);
	free(k->message_id);
	for (size_t i = 0; i < k->ref_count; i++)
		free(k->refs[i]);
	free(k->refs);
	memset(k, 0, sizeof(*k));
}

/* The stored header of message seq0, up to its blank line. */
static char *read_header(struct imap_session *s, size_t seq0, size_t *len_r)
{
	char error[256];
	size_t len = 0, cap = 16384;
	char *buf;
	int fd = mail_view_msg_open(s->view, seq0, error, sizeof(error));

	*len_r = 0;
	if (fd < 0)
		return NULL;
	buf = xmalloc(cap + 1);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap >= MIME_MAX_HEADER_BYTES)
				break;
			cap *= 2;
			buf = xreallocarray(buf, cap + 1, 1);
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\n\n") != NULL ||
		    strstr(buf, "\n\r\n") != NULL)
			break;
	}
	close(fd);
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

void imap_sortkeys_load(struct imap_session *s, size_t seq0,
			struct imap_sortkeys *k)
{
	size_t len;
	char *hdr = read_header(s, seq0, &len);

	imap_sortkeys_parse(hdr != NULL ? hdr : "", len, k);
	free(hdr);
	if (k->sent == -1)
		k->sent = mail_view_msg(s->view, seq0)->internaldate;
}
