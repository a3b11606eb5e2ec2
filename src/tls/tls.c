#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "lib/log.h"

/* The embedded default's certificate is valid this long. */
#define TLS_SELF_SIGNED_DAYS 825

static void tls_error(char *error, size_t error_size, const char *what);
static int tls_add_ext(X509 *cert, int nid, const char *value);
static int tls_write_pem(const char *path, mode_t mode, X509 *cert,
			 EVP_PKEY *key, char *error, size_t error_size);

static void tls_error(char *error, size_t error_size, const char *what)
{
	char ossl[200];
	unsigned long err = ERR_get_error();

	if (err != 0)
		ERR_error_string_n(err, ossl, sizeof(ossl));
	else
		snprintf(ossl, sizeof(ossl), "%s",
			 errno != 0 ? strerror(errno) : "unknown error");
	snprintf(error, error_size, "%s: %s", what, ossl);
	ERR_clear_error();
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    char *error, size_t error_size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char what[512];

	if (ctx == NULL) {
		tls_error(error, error_size, "SSL_CTX_new");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE |
				     SSL_OP_NO_RENEGOTIATION);
	/* Idle connections keep no 34 KiB of TLS buffers each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"postd", 5);
	errno = 0;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(what, sizeof(what), "loading certificate %s",
			 cert_file);
		tls_error(error, error_size, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	errno = 0;
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(what, sizeof(what), "loading key %s", key_file);
		tls_error(error, error_size, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(what, sizeof(what), "key %s does not match %s",
			 key_file, cert_file);
		tls_error(error, error_size, what);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int tls_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

static int tls_write_pem(const char *path, mode_t mode, X509 *cert,
			 EVP_PKEY *key, char *error, size_t error_size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0) {
		snprintf(error, error_size, "creating %s: %s", path,
			 strerror(errno));
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		snprintf(error, error_size, "fdopen %s: %s", path,
			 strerror(errno));
		return -1;
	}
	ok = cert != NULL
		 ? PEM_write_X509(f, cert)
		 : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		snprintf(error, error_size, "writing %s failed", path);
		unlink(path);
		return -1;
	}
	return 0;
}

int tls_make_self_signed(const char *cert_file, const char *key_file,
			 const char *hostname, char *error, size_t error_size)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	X509_NAME *name;
	char san[600];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (access(cert_file, F_OK) == 0)
		return 0;
	/* A key left without its certificate by an interrupted first start
	 * is replaced. */
	if (unlink(key_file) < 0 && errno != ENOENT) {
		snprintf(error, error_size, "removing %s: %s", key_file,
			 strerror(errno));
		return -1;
	}
	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (key == NULL || cert == NULL) {
		tls_error(error, error_size, "generating a key");
		goto out;
	}
	X509_set_version(cert, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert),
			(long)TLS_SELF_SIGNED_DAYS * 24 * 3600);
	X509_set_pubkey(cert, key);
	name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
				   (const unsigned char *)"postd self-signed",
				   -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(cert, name);
	snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1",
		 hostname);
	if (tls_add_ext(cert, NID_subject_alt_name, san) < 0 ||
	    tls_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_add_ext(cert, NID_ext_key_usage, "serverAuth") < 0) {
		tls_error(error, error_size, "certificate extensions");
		goto out;
	}
	if (X509_sign(cert, key, EVP_sha256()) == 0) {
		tls_error(error, error_size, "signing the certificate");
		goto out;
	}
	if (tls_write_pem(key_file, 0600, NULL, key, error, error_size) < 0)
		goto out;
	if (tls_write_pem(cert_file, 0644, cert, NULL, error, error_size) < 0) {
		unlink(key_file);
		goto out;
	}
	rc = 1;
out:
	BN_free(bn);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
