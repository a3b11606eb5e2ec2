/* DKIM signatures checked by an independent verifier: Python's dkimpy
 * (Debian python3-dkim, python3-nacl for Ed25519), with the public key
 * handed to it instead of a DNS lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "delivery/dkim.h"
#include "lib/log.h"

#define PYTHON "/usr/bin/python3"

/* argv: message file, TXT record file. Exit 0: verified, 1: not. */
static const char verify_py[] =
    "import dkim, sys\n"
    "msg = open(sys.argv[1], 'rb').read()\n"
    "txt = open(sys.argv[2], 'rb').read().strip()\n"
    "def dnsfunc(name, timeout=5):\n"
    "    assert name == b'sel1._domainkey.example.org.', name\n"
    "    return txt\n"
    "sys.exit(0 if dkim.verify(msg, dnsfunc=dnsfunc) else 1)\n";

struct fixture {
	char dir[64];
	char rsa_key[128], ed_key[128], rsa_txt[128], ed_txt[128];
	char py[128];
};

static const char stored_msg[] = "Return-Path: <alice@example.org>\n"
				 "Received: from client by mx.example.org\n"
				 "From: Alice  Example <alice@example.org>\n"
				 "To: bob@remote.example,\n"
				 "\tcarol@remote.example\n"
				 "Subject:   lunch   on friday \n"
				 "Date: Tue, 14 Nov 2023 22:13:20 +0000\n"
				 "Message-ID: <orig-1@example.org>\n"
				 "X-Not-Signed: yes\n"
				 "MIME-Version: 1.0\n"
				 "Content-Type: text/plain; charset=utf-8\n"
				 "\n"
				 "Hello Bob,\n"
				 "  indented   line with  spaces   \n"
				 "\n"
				 "tab\there\n"
				 "\n"
				 "\n";
#define SKIP (sizeof("Return-Path: <alice@example.org>\n") - 1)

static void run(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char cmd[1024];
	FILE *fp;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_dkim.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->rsa_key, sizeof(f->rsa_key), "%s/rsa.pem", f->dir);
	snprintf(f->ed_key, sizeof(f->ed_key), "%s/ed.pem", f->dir);
	snprintf(f->rsa_txt, sizeof(f->rsa_txt), "%s/rsa.txt", f->dir);
	snprintf(f->ed_txt, sizeof(f->ed_txt), "%s/ed.txt", f->dir);
	snprintf(f->py, sizeof(f->py), "%s/verify.py", f->dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
		 "-out %s 2>/dev/null && "
		 "printf 'v=DKIM1; k=rsa; p=%%s' \"$(openssl pkey -in %s "
		 "-pubout -outform DER | base64 -w0)\" > %s",
		 f->rsa_key, f->rsa_key, f->rsa_txt);
	run(cmd);
	/* RFC 8463: p= is the raw 32-byte key, the end of the DER. */
	snprintf(cmd, sizeof(cmd),
		 "openssl genpkey -algorithm ed25519 -out %s && "
		 "printf 'v=DKIM1; k=ed25519; p=%%s' \"$(openssl pkey -in %s "
		 "-pubout -outform DER | tail -c 32 | base64 -w0)\" > %s",
		 f->ed_key, f->ed_key, f->ed_txt);
	run(cmd);
	fp = fopen(f->py, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(verify_py, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int open_msg(struct fixture *f, const char *text, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/msg", f->dir);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	return fd;
}

/* Writes the wire form (signature, then the stored message after skip
 * with LF as CRLF) and runs the verifier. Returns its exit status. */
static int verify(struct fixture *f, const char *sig, const char *text,
		  size_t skip, const char *txt)
{
	char path[128], cmd[512];
	FILE *fp;
	int st;

	snprintf(path, sizeof(path), "%s/wire", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(sig, fp);
	for (const char *p = text + skip; *p != '\0'; p++) {
		if (*p == '\n')
			fputc('\r', fp);
		fputc(*p, fp);
	}
	assert_int_equal(fclose(fp), 0);
	snprintf(cmd, sizeof(cmd), PYTHON " %s %s %s", f->py, path, txt);
	st = system(cmd);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static struct dkim_signer *load(const char *domain, const char *path)
{
	struct config_dkim_key key = {.domain = (char *)domain,
				      .path = (char *)path};
	struct config cfg = {.dkim_selector = (char *)"sel1",
			     .dkim_keys = &key,
			     .dkim_key_count = 1};
	struct dkim_signer *s;
	char err[256] = "";

	s = dkim_signer_load(&cfg, err, sizeof(err));
	if (s == NULL)
		fail_msg("load: %s", err);
	return s;
}

static void sign_and_verify(struct fixture *f, const char *key, const char *txt,
			    const char *alg)
{
	struct dkim_signer *s = load("*", key);
	const char *err = NULL;
	char *sig = NULL;
	int fd = open_msg(f, stored_msg, sizeof(stored_msg) - 1);
	off_t pos;

	assert_int_equal(dkim_sign(s, "example.org", fd, SKIP,
				   sizeof(stored_msg) - 1, &sig, &err),
			 1);
	/* pread only: the offset is where the write left it. */
	pos = lseek(fd, 0, SEEK_CUR);
	assert_int_equal(pos, (off_t)sizeof(stored_msg) - 1);
	close(fd);
	assert_non_null(sig);
	assert_memory_equal(sig, "DKIM-Signature: v=1; a=", 23);
	assert_non_null(strstr(sig, alg));
	assert_non_null(strstr(sig, "c=relaxed/relaxed;"));
	assert_non_null(strstr(sig, "d=example.org; s=sel1; t="));
	/* From oversigned; X-Not-Signed and Received not signed. */
	assert_non_null(strstr(sig, "h=from:from:to:subject:date:message-id:"));
	assert_null(strstr(sig, "x-not-signed"));
	assert_null(strstr(sig, "received"));
	assert_null(strstr(sig, " l="));
	/* Lines of at most 78 columns, CRLF, continued with a tab. */
	for (const char *p = sig; *p != '\0';) {
		const char *crlf = strstr(p, "\r\n");

		assert_non_null(crlf);
		assert_true(crlf - p <= 78);
		p = crlf + 2;
		assert_true(*p == '\0' || *p == '\t');
	}
	assert_int_equal(verify(f, sig, stored_msg, SKIP, txt), 0);

	/* A changed body, or a changed signed header, fails. */
	{
		char bad[sizeof(stored_msg)];

		memcpy(bad, stored_msg, sizeof(stored_msg));
		*strstr(bad, "Bob") = 'R';
		assert_int_equal(verify(f, sig, bad, SKIP, txt), 1);
		memcpy(bad, stored_msg, sizeof(stored_msg));
		*strstr(bad, "lunch") = 'p';
		assert_int_equal(verify(f, sig, bad, SKIP, txt), 1);
		/* Whitespace changes relaxed canonicalisation ignores. */
		memcpy(bad, stored_msg, sizeof(stored_msg));
		memcpy(strstr(bad, "  indented"), "\t indented", 10);
		assert_int_equal(verify(f, sig, bad, SKIP, txt), 0);
	}
	free(sig);
	dkim_signer_free(&s);
	assert_null(s);
}

static void test_dkim_rsa_sha256_verifies(void **state)
{
	struct fixture *f = *state;

	sign_and_verify(f, f->rsa_key, f->rsa_txt, "a=rsa-sha256;");
}

static void test_dkim_ed25519_sha256_verifies(void **state)
{
	struct fixture *f = *state;

	sign_and_verify(f, f->ed_key, f->ed_txt, "a=ed25519-sha256;");
}

/* Corner cases of the body: none at all, only empty lines, no final
 * LF, a long body across read chunks; From added by an attacker after
 * signing fails (oversigning). */
static void test_dkim_bodies(void **state)
{
	struct fixture *f = *state;
	static const char *const bodies[] = {"", "\n\n\n", "no final lf",
					     "x \n\n  \n"};
	struct dkim_signer *s = load("example.org", f->ed_key);
	const char *err = NULL;
	char *text = malloc(300000), *sig = NULL;
	size_t len;
	int fd;

	assert_non_null(text);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		len = (size_t)snprintf(text, 300000,
				       "From: a@example.org\n"
				       "Subject: b%zu\n\n%s",
				       i, bodies[i]);
		fd = open_msg(f, text, len);
		assert_int_equal(
		    dkim_sign(s, "EXAMPLE.org", fd, 0, len, &sig, &err), 1);
		close(fd);
		if (verify(f, sig, text, 0, f->ed_txt) != 0)
			fail_msg("body %zu did not verify", i);
		free(sig);
	}
	/* 200 KB: several 64 KiB chunks, lines cut across chunks. */
	len = (size_t)snprintf(text, 300000, "From: a@example.org\n\n");
	for (int i = 0; len < 200000; i++)
		len += (size_t)snprintf(text + len, 300000 - len,
					"line %d   with\t\tspace \n%s", i,
					i % 7 == 0 ? "\n" : "");
	fd = open_msg(f, text, len);
	assert_int_equal(dkim_sign(s, "example.org", fd, 0, len, &sig, &err),
			 1);
	close(fd);
	assert_int_equal(verify(f, sig, text, 0, f->ed_txt), 0);
	/* A second From header added in transit. */
	{
		char *forged = malloc(len + 64);

		assert_non_null(forged);
		snprintf(forged, len + 64, "From: evil@example.org\n%s", text);
		assert_int_equal(verify(f, sig, forged, 0, f->ed_txt), 1);
		free(forged);
	}
	free(sig);
	free(text);
	/* No key for another domain: 0, no header. */
	fd = open_msg(f, stored_msg, sizeof(stored_msg) - 1);
	sig = (char *)"x";
	assert_int_equal(dkim_sign(s, "other.example", fd, SKIP,
				   sizeof(stored_msg) - 1, &sig, &err),
			 0);
	assert_null(sig);
	close(fd);
	dkim_signer_free(&s);
}

static void test_dkim_load_errors(void **state)
{
	struct fixture *f = *state;
	struct config_dkim_key key = {.domain = (char *)"*",
				      .path = (char *)"/nonexistent/key.pem"};
	struct config cfg = {.dkim_selector = (char *)"sel1",
			     .dkim_keys = &key,
			     .dkim_key_count = 1};
	struct config none = {0};
	struct dkim_signer *s;
	const char *err = NULL;
	char error[256], *sig = NULL;
	int fd;

	assert_null(dkim_signer_load(&cfg, error, sizeof(error)));
	assert_non_null(strstr(error, "/nonexistent/key.pem"));
	key.path = f->py; /* not a key */
	assert_null(dkim_signer_load(&cfg, error, sizeof(error)));
	assert_non_null(strstr(error, "not a PEM private key"));
	key.path = f->rsa_key;
	cfg.dkim_selector = (char *)"bad selector;";
	assert_null(dkim_signer_load(&cfg, error, sizeof(error)));
	/* No keys: a signer that signs nothing. */
	s = dkim_signer_load(&none, error, sizeof(error));
	assert_non_null(s);
	fd = open_msg(f, stored_msg, sizeof(stored_msg) - 1);
	assert_int_equal(dkim_sign(s, "example.org", fd, SKIP,
				   sizeof(stored_msg) - 1, &sig, &err),
			 0);
	close(fd);
	dkim_signer_free(&s);
}

/* So many signed header fields that h= does not fit the signature
 * header: either no signature at all, or one that verifies; never a
 * header with a piece silently missing (the counts step across the
 * edge where the h= list fills the header's bound). */
static void test_dkim_too_many_signed_fields(void **state)
{
	static const char rp[] = "Return-Path: <a@example.org>\n";
	struct fixture *f = *state;
	struct dkim_signer *s = load("*", f->rsa_key);
	size_t cap = 64 * 1024;
	char *text = malloc(cap);

	assert_non_null(text);
	for (int count = 2450; count <= 2600; count += 25) {
		const char *err = NULL;
		char *sig = NULL;
		size_t len;
		int fd, rc;

		len =
		    (size_t)snprintf(text, cap, "%sFrom: a@example.org\n", rp);
		for (int i = 0; i < count; i++)
			len += (size_t)snprintf(text + len, cap - len,
						"Cc: c%d\n", i);
		len += (size_t)snprintf(text + len, cap - len, "\nbody\n");
		assert_true(len < cap);
		fd = open_msg(f, text, len);
		rc = dkim_sign(s, "example.org", fd, sizeof(rp) - 1, len, &sig,
			       &err);
		close(fd);
		if (rc == 1) {
			assert_int_equal(
			    verify(f, sig, text, sizeof(rp) - 1, f->rsa_txt),
			    0);
		} else {
			assert_int_equal(rc, -1);
			assert_null(sig);
			assert_non_null(err);
		}
		free(sig);
	}
	free(text);
	dkim_signer_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dkim_rsa_sha256_verifies),
	    cmocka_unit_test(test_dkim_ed25519_sha256_verifies),
	    cmocka_unit_test(test_dkim_bodies),
	    cmocka_unit_test(test_dkim_load_errors),
	    cmocka_unit_test(test_dkim_too_many_signed_fields),
	};

	log_set_level(LOG_LEVEL_ERROR);
	if (access(PYTHON, X_OK) != 0 ||
	    system(PYTHON " -c 'import dkim, nacl' 2>/dev/null") != 0) {
		fprintf(stderr, "python3-dkim or python3-nacl missing\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
