/*
 * DKIM signer (RFC 6376) with OpenSSL EVP: rsa-sha256 and, per RFC 8463,
 * ed25519-sha256 (PureEdDSA over the SHA-256 hash of the header data).
 * Relaxed/relaxed canonicalisation written here (RFC 6376 3.4.2, 3.4.4);
 * why not libopendkim: doc/internals/dkim.md.
 *
 * The message is read in its stored form (LF line ends) and hashed as
 * it is sent (CRLF): every stored LF is a CRLF on the wire.
 */
#include "delivery/dkim.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "lib/postd_limits.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

/* RFC 6376 3.5 recommends lines of at most 78 columns. */
#define DKIM_FOLD 78
/* The signed header set (dkim.h), in h= order. */
static const char *const dkim_sign_headers[] = {
    "from",	  "to",		  "cc",		  "subject",
    "date",	  "message-id",	  "reply-to",	  "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding",
};

struct dkim_key {
	char *domain; /* lowercase, "*" for the default key */
	EVP_PKEY *pkey;
	bool ed25519;
};

struct dkim_signer {
	char *selector;
	struct dkim_key *keys;
	size_t key_count;
};

/* One header field in the stored header section. */
struct dkim_field {
	const char *start; /* the name */
	size_t len;	   /* up to and including its last LF */
	size_t name_len;
};

/* Streaming relaxed body canonicalisation (RFC 6376 3.4.4). */
struct dkim_body {
	EVP_MD_CTX *md;
	unsigned long empty_lines; /* held back: dropped at the end */
	bool line_has_content;
	bool pending_wsp;
};

static bool dkim_name_valid(const char *s);
static const struct dkim_key *dkim_find_key(const struct dkim_signer *s,
					    const char *domain);
static int dkim_pread_all(int fd, char *buf, size_t len, uint64_t off);
static size_t dkim_split_fields(const char *hdr, size_t len,
				struct dkim_field **fields_r);
static void dkim_canon_header(struct buf *out, const char *field, size_t len);
static void dkim_body_update(struct dkim_body *b, const char *p, size_t len);
static void dkim_body_final(struct dkim_body *b);
static int dkim_hash_body(int fd, uint64_t off, uint64_t end, unsigned char *bh,
			  const char **error_r);
static int dkim_append_b64(struct buf *out, const unsigned char *bin,
			   size_t len, size_t col);
static int dkim_do_sign(const struct dkim_key *k, const struct buf *data,
			unsigned char **sig_r, size_t *sig_len_r);

static bool dkim_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DKIM_MAX_NAME)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' &&
		    *s != '_')
			return false;
	return true;
}

struct dkim_signer *dkim_signer_load(const struct config *cfg, char *error,
				     size_t error_size)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));

	if (cfg->dkim_key_count > 0 && (cfg->dkim_selector == NULL ||
					!dkim_name_valid(cfg->dkim_selector))) {
		snprintf(error, error_size,
			 "dkim_key needs a valid dkim_selector");
		goto fail;
	}
	if (cfg->dkim_selector != NULL)
		s->selector = xstrdup(cfg->dkim_selector);
	s->keys = xcalloc(cfg->dkim_key_count + 1, sizeof(*s->keys));
	for (size_t i = 0; i < cfg->dkim_key_count; i++) {
		const struct config_dkim_key *ck = &cfg->dkim_keys[i];
		struct dkim_key *k = &s->keys[s->key_count];
		FILE *f;
		int type;

		if (strcmp(ck->domain, "*") != 0 &&
		    !dkim_name_valid(ck->domain)) {
			snprintf(error, error_size,
				 "dkim_key: invalid domain %.100s", ck->domain);
			goto fail;
		}
		f = fopen(ck->path, "re");
		if (f == NULL) {
			snprintf(error, error_size, "dkim_key %.200s: %s",
				 ck->path, strerror(errno));
			goto fail;
		}
		k->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (k->pkey == NULL) {
			snprintf(error, error_size,
				 "dkim_key %.200s: not a PEM private key",
				 ck->path);
			goto fail;
		}
		s->key_count++;
		type = EVP_PKEY_get_base_id(k->pkey);
		if (type == EVP_PKEY_ED25519) {
			k->ed25519 = true;
		} else if (type == EVP_PKEY_RSA) {
			/* RFC 8301: at least 1024 bits. */
			if (EVP_PKEY_get_bits(k->pkey) < 1024) {
				snprintf(error, error_size,
					 "dkim_key %.200s: RSA key shorter "
					 "than 1024 bits",
					 ck->path);
				goto fail;
			}
		} else {
			snprintf(error, error_size,
				 "dkim_key %.200s: neither RSA nor Ed25519",
				 ck->path);
			goto fail;
		}
		k->domain = xstrdup(ck->domain);
		for (char *p = k->domain; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	return s;
fail:
	dkim_signer_free(&s);
	return NULL;
}

void dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->key_count; i++) {
		EVP_PKEY_free(s->keys[i].pkey);
		free(s->keys[i].domain);
	}
	free(s->keys);
	free(s->selector);
	XFREE(*sp);
}

/* dkim_key.DOMAIN first, then the default key "*". */
static const struct dkim_key *dkim_find_key(const struct dkim_signer *s,
					    const char *domain)
{
	const struct dkim_key *def = NULL;

	for (size_t i = 0; i < s->key_count; i++) {
		if (strcasecmp(s->keys[i].domain, domain) == 0)
			return &s->keys[i];
		if (strcmp(s->keys[i].domain, "*") == 0)
			def = &s->keys[i];
	}
	return def;
}

static int dkim_pread_all(int fd, char *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    pread(fd, buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO; /* shorter than the queue said */
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Header fields of hdr (which ends after its last field's LF). */
static size_t dkim_split_fields(const char *hdr, size_t len,
				struct dkim_field **fields_r)
{
	struct dkim_field *v = NULL;
	size_t n = 0, pos = 0;

	while (pos < len) {
		const char *start = hdr + pos;
		const char *colon;
		size_t flen = 0;

		/* The field runs until a line that does not start with
		 * WSP (RFC 5322 folding). */
		do {
			const char *lf =
			    memchr(hdr + pos + flen, '\n', len - pos - flen);

			flen =
			    lf == NULL ? len - pos : (size_t)(lf - start) + 1;
		} while (pos + flen < len &&
			 (hdr[pos + flen] == ' ' || hdr[pos + flen] == '\t'));
		colon = memchr(start, ':', flen);
		if (colon != NULL && start[0] != ' ' && start[0] != '\t') {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n].start = start;
			v[n].len = flen;
			v[n].name_len = (size_t)(colon - start);
			/* WSP before the colon is not part of the name. */
			while (v[n].name_len > 0 &&
			       (start[v[n].name_len - 1] == ' ' ||
				start[v[n].name_len - 1] == '\t'))
				v[n].name_len--;
			n++;
		}
		pos += flen;
	}
	*fields_r = v;
	return n;
}

/*
 * Relaxed header canonicalisation (RFC 6376 3.4.2): name lowercased,
 * line breaks removed (unfolded), runs of WSP made one SP, WSP around
 * the colon and at the end removed, CRLF appended. A field is one
 * stored line or several (LF or CRLF breaks, as in the signature we
 * build).
 */
static void dkim_canon_header(struct buf *out, const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);
	size_t name_end, i;
	bool wsp = false, started = false;

	if (colon == NULL)
		return;
	name_end = (size_t)(colon - field);
	while (name_end > 0 &&
	       (field[name_end - 1] == ' ' || field[name_end - 1] == '\t'))
		name_end--;
	for (i = 0; i < name_end; i++) {
		char c = (char)tolower((unsigned char)field[i]);

		buf_append(out, &c, 1);
	}
	buf_append(out, ":", 1);
	for (i = (size_t)(colon - field) + 1; i < len; i++) {
		char c = field[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c == ' ' || c == '\t') {
			wsp = true;
			continue;
		}
		if (wsp && started)
			buf_append(out, " ", 1);
		wsp = false;
		started = true;
		buf_append(out, &c, 1);
	}
	buf_append(out, "\r\n", 2);
}

/* The stored body: LF is CRLF on the wire. A stored CR is content. */
static void dkim_body_update(struct dkim_body *b, const char *p, size_t len)
{
	static const char crlfs[] = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n";
	char out[8192];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		/* Room for held-back CRLFs is made by flushing first. */
		if (n + 4 > sizeof(out)) {
			EVP_DigestUpdate(b->md, out, n);
			n = 0;
		}
		if (c == '\n') {
			if (b->line_has_content) {
				out[n++] = '\r';
				out[n++] = '\n';
			} else {
				b->empty_lines++;
			}
			b->line_has_content = false;
			b->pending_wsp = false;
		} else if (c == ' ' || c == '\t') {
			b->pending_wsp = true;
		} else {
			if (!b->line_has_content) {
				/* Held-back empty lines were not the end. */
				EVP_DigestUpdate(b->md, out, n);
				n = 0;
				while (b->empty_lines > 0) {
					unsigned long k = b->empty_lines > 8
							      ? 8
							      : b->empty_lines;

					EVP_DigestUpdate(b->md, crlfs, 2 * k);
					b->empty_lines -= k;
				}
				b->line_has_content = true;
			}
			/* A run of WSP, leading or inner, is one SP;
			 * trailing WSP never gets here. */
			if (b->pending_wsp)
				out[n++] = ' ';
			b->pending_wsp = false;
			out[n++] = c;
		}
	}
	EVP_DigestUpdate(b->md, out, n);
}

static void dkim_body_final(struct dkim_body *b)
{
	/* The wire form always ends with CRLF; empty lines at the end
	 * are dropped, and an empty body hashes as nothing. */
	if (b->line_has_content)
		EVP_DigestUpdate(b->md, "\r\n", 2);
}

static int dkim_hash_body(int fd, uint64_t off, uint64_t end, unsigned char *bh,
			  const char **error_r)
{
	struct dkim_body b = {0};
	char *chunk = xmalloc(DKIM_CHUNK);
	unsigned int len = 0;
	int rc = -1;

	b.md = EVP_MD_CTX_new();
	if (b.md == NULL || EVP_DigestInit_ex(b.md, EVP_sha256(), NULL) != 1) {
		*error_r = "dkim: cannot start SHA-256";
		goto out;
	}
	while (off < end) {
		size_t n =
		    end - off > DKIM_CHUNK ? DKIM_CHUNK : (size_t)(end - off);

		if (dkim_pread_all(fd, chunk, n, off) < 0) {
			*error_r = "dkim: cannot read the message";
			goto out;
		}
		dkim_body_update(&b, chunk, n);
		off += n;
	}
	dkim_body_final(&b);
	if (EVP_DigestFinal_ex(b.md, bh, &len) != 1 || len != 32) {
		*error_r = "dkim: SHA-256 failed";
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(b.md);
	free(chunk);
	return rc;
}

/* base64 folded at DKIM_FOLD columns with CRLF TAB; col is the column
 * the first byte lands in. -1 if out refused a piece (then what it holds
 * must not be used: later, shorter pieces may have fitted). */
static int dkim_append_b64(struct buf *out, const unsigned char *bin,
			   size_t len, size_t col)
{
	size_t b64_len =
	    sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(b64_len);
	size_t n, pos = 0;
	int rc = 0;

	sodium_bin2base64(b64, b64_len, bin, len,
			  sodium_base64_VARIANT_ORIGINAL);
	n = strlen(b64);
	while (pos < n) {
		size_t room = col < DKIM_FOLD ? DKIM_FOLD - col : 1;
		size_t take = n - pos < room ? n - pos : room;

		if (buf_append(out, b64 + pos, take) < 0)
			rc = -1;
		pos += take;
		if (pos < n) {
			if (buf_append(out, "\r\n\t", 3) < 0)
				rc = -1;
			col = 8; /* a tab */
		}
	}
	free(b64);
	return rc;
}

static int dkim_do_sign(const struct dkim_key *k, const struct buf *data,
			unsigned char **sig_r, size_t *sig_len_r)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char hash[32];
	const unsigned char *in = (const unsigned char *)buf_data(data);
	size_t in_len = buf_len(data), sig_len = 0;
	unsigned char *sig = NULL;
	int rc = -1;

	if (ctx == NULL)
		return -1;
	if (k->ed25519) {
		/* RFC 8463 3: Ed25519 signs the SHA-256 of the data. */
		if (EVP_Digest(in, in_len, hash, NULL, EVP_sha256(), NULL) != 1)
			goto out;
		in = hash;
		in_len = sizeof(hash);
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1)
			goto out;
	} else if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) !=
		   1) {
		goto out;
	}
	if (EVP_DigestSign(ctx, NULL, &sig_len, in, in_len) != 1)
		goto out;
	sig = xmalloc(sig_len);
	if (EVP_DigestSign(ctx, sig, &sig_len, in, in_len) != 1) {
		free(sig);
		goto out;
	}
	*sig_r = sig;
	*sig_len_r = sig_len;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int dkim_sign(const struct dkim_signer *s, const char *domain, int msg_fd,
	      uint64_t skip, uint64_t size, char **header_r,
	      const char **error_r)
{
	const size_t nsign =
	    sizeof(dkim_sign_headers) / sizeof(dkim_sign_headers[0]);
	const struct dkim_key *k;
	struct dkim_field *fields = NULL;
	struct buf *hdr_data = NULL, *sig_hdr = NULL;
	unsigned char bh[32], *sig = NULL;
	char *hdr = NULL;
	const char *blank;
	size_t hdr_len, field_count, sig_len, col, body_off;
	unsigned used[sizeof(dkim_sign_headers) / sizeof(dkim_sign_headers[0])];
	char d[DKIM_MAX_NAME + 1];
	bool first = true, too_big = false;
	int rc = -1;

	*header_r = NULL;
	k = dkim_find_key(s, domain);
	if (k == NULL)
		return 0;
	if (!dkim_name_valid(domain)) {
		*error_r = "dkim: invalid signing domain";
		return -1;
	}
	/* d= in lowercase: the key is looked up at that name. */
	for (size_t i = 0; domain[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[strlen(domain)] = '\0';
	if (skip > size) {
		*error_r = "dkim: skip beyond the message";
		return -1;
	}
	/* The header section: up to the first empty line. */
	hdr_len = size - skip > DKIM_MAX_HEADER ? DKIM_MAX_HEADER
						: (size_t)(size - skip);
	hdr = xmalloc(hdr_len + 1);
	if (dkim_pread_all(msg_fd, hdr, hdr_len, skip) < 0) {
		*error_r = "dkim: cannot read the message";
		goto out;
	}
	hdr[hdr_len] = '\0';
	if (hdr_len > 0 && hdr[0] == '\n') {
		body_off = 1;
		hdr_len = 0;
	} else if ((blank = memmem(hdr, hdr_len, "\n\n", 2)) != NULL) {
		hdr_len = (size_t)(blank - hdr) + 1;
		body_off = hdr_len + 1;
	} else if (size - skip <= DKIM_MAX_HEADER) {
		body_off = hdr_len; /* no body at all */
	} else {
		*error_r = "dkim: header section too big to sign";
		goto out;
	}
	field_count = dkim_split_fields(hdr, hdr_len, &fields);

	if (dkim_hash_body(msg_fd, skip + body_off, size, bh, error_r) < 0)
		goto out;

	/* The signature header with an empty b=, folded as sent. */
	sig_hdr = buf_new(DKIM_MAX_SIG_HEADER);
	/* buf refuses an append past its maximum but takes a later, shorter
	 * one: every refusal is remembered, so a header with a piece missing
	 * (an h= shorter than the data signed, a cut b=) is never used. */
	too_big |=
	    buf_printf(sig_hdr,
		       "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;\r\n"
		       "\td=%s; s=%s; t=%lld;\r\n\th=",
		       k->ed25519 ? "ed25519-sha256" : "rsa-sha256", d,
		       s->selector, (long long)time(NULL)) < 0;
	col = 10;
	memset(used, 0, sizeof(used));
	for (size_t i = 0; i < nsign; i++) {
		size_t nlen = strlen(dkim_sign_headers[i]);
		unsigned present = 0;

		for (size_t f = 0; f < field_count; f++)
			if (fields[f].name_len == nlen &&
			    strncasecmp(fields[f].start, dkim_sign_headers[i],
					nlen) == 0)
				present++;
		/* From once more than present: oversigned, so no From
		 * can be added on the way (RFC 6376 8.15). */
		if (i == 0)
			present++;
		used[i] = present;
		for (unsigned p = 0; p < present; p++) {
			if (col + nlen + 1 > DKIM_FOLD) {
				/* FWS is allowed before the colon. */
				too_big |=
				    buf_append_str(sig_hdr, "\r\n\t") < 0;
				col = 8;
			}
			too_big |= buf_printf(sig_hdr, "%s%s", first ? "" : ":",
					      dkim_sign_headers[i]) < 0;
			first = false;
			col += nlen + 1;
		}
	}
	too_big |= buf_append_str(sig_hdr, ";\r\n\tbh=") < 0;
	too_big |= dkim_append_b64(sig_hdr, bh, sizeof(bh), 12) < 0;
	too_big |= buf_append_str(sig_hdr, ";\r\n\tb=") < 0;
	if (too_big) {
		*error_r = "dkim: too many header fields to sign";
		goto out;
	}

	/* The data signed: each h= field, bottom-up per name (RFC 6376
	 * 5.4.2), then the signature header itself without its CRLF. */
	hdr_data = buf_new(DKIM_MAX_HEADER * 2 + DKIM_MAX_SIG_HEADER);
	for (size_t i = 0; i < nsign; i++) {
		size_t nlen = strlen(dkim_sign_headers[i]);
		unsigned want = used[i];

		for (size_t f = field_count; f > 0 && want > 0; f--) {
			const struct dkim_field *fl = &fields[f - 1];

			if (fl->name_len == nlen &&
			    strncasecmp(fl->start, dkim_sign_headers[i],
					nlen) == 0) {
				dkim_canon_header(hdr_data, fl->start, fl->len);
				want--;
			}
		}
	}
	dkim_canon_header(hdr_data, buf_data(sig_hdr), buf_len(sig_hdr));
	/* Without the CRLF the canonical form ends in. */
	if (buf_len(hdr_data) < 2) {
		*error_r = "dkim: header data too big";
		goto out;
	}
	{
		struct buf *signed_data = buf_new(buf_len(hdr_data));

		buf_append(signed_data, buf_data(hdr_data),
			   buf_len(hdr_data) - 2);
		rc = dkim_do_sign(k, signed_data, &sig, &sig_len);
		buf_free(&signed_data);
	}
	if (rc < 0) {
		*error_r = "dkim: signing failed";
		goto out;
	}
	rc = -1;
	if (dkim_append_b64(sig_hdr, sig, sig_len, 11) < 0 ||
	    buf_append_str(sig_hdr, "\r\n") < 0) {
		*error_r = "dkim: signature header too big";
		goto out;
	}
	*header_r = xstrdup(buf_data(sig_hdr));
	rc = 1;
out:
	free(sig);
	free(fields);
	free(hdr);
	buf_free(&hdr_data);
	buf_free(&sig_hdr);
	return rc;
}
