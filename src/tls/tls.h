/*
 * TLS with OpenSSL: the server context every TLS listener and STARTTLS
 * share, and the self-signed certificate made for the embedded default.
 * The STARTTLS routine itself is conn_starttls() in src/net/conn.c, since
 * it is a step of the connection, not of a protocol.
 */
#ifndef POSTD_TLS_H
#define POSTD_TLS_H

#include <openssl/ssl.h>

/*
 * A server context with TLS 1.2 as the floor, the certificate chain and
 * key loaded (and checked to match), per-connection buffers released when
 * idle so thousands of idle TLS connections stay small. Returns NULL with
 * the cause (OpenSSL's words) in error.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    char *error, size_t error_size);

/*
 * Writes a new self-signed certificate for hostname (and localhost,
 * 127.0.0.1, ::1) and its key, if cert_file does not exist yet. The key
 * file is created with mode 0600. Returns 1 if made, 0 if it existed,
 * -1 with error.
 */
int tls_make_self_signed(const char *cert_file, const char *key_file,
			 const char *hostname, char *error, size_t error_size);

#endif
