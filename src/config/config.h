/*
 * postd.conf: the configuration struct, its embedded default, and the
 * strict key = value parser. See postd.conf(5) for every key.
 */
#ifndef POSTD_CONFIG_H
#define POSTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* A listener's protocol; the name is the suffix of its listen.NAME key. */
enum listen_proto {
	LISTEN_POP3,
	LISTEN_POP3S,
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SUBMISSIONS,
	LISTEN_IMAP,
	LISTEN_IMAPS,
	LISTEN_PROTO_COUNT
};

enum plaintext_auth {
	PLAINTEXT_AUTH_NO,
	PLAINTEXT_AUTH_LOOPBACK, /* allowed only from 127.0.0.0/8 and ::1 */
	PLAINTEXT_AUTH_YES,
};

struct listen_addr {
	enum listen_proto proto;
	char *host; /* numeric address or name; "*" means every address */
	char *port; /* numeric */
	int line;   /* where it was configured, for error messages */
};

struct config {
	char *path; /* the file it came from, NULL for the embedded default */
	char *hostname;
	char **domains; /* lowercase, NULL-terminated */
	size_t domain_count;
	char *data_dir;
	char *users_file;
	char *tls_cert;
	char *tls_key;
	char *user; /* the unprivileged account workers run as */
	struct listen_addr *listen;
	size_t listen_count;
	char *auth_default_domain; /* NULL: login names must carry a domain */
	enum plaintext_auth plaintext_auth;
	bool apop;
	unsigned workers;		   /* 0: one per core */
	unsigned max_connections;	   /* per postd, all protocols */
	unsigned max_connections_per_peer; /* per remote address */
	unsigned timeout_preauth;	   /* seconds before login */
	unsigned timeout_idle;		   /* seconds after login */
	unsigned auth_failure_delay_ms;	   /* base delay of a failed login */
	bool log_debug;
	/* SMTP */
	unsigned max_message_size;   /* octets (RFC 1870 SIZE) */
	unsigned max_recipients;     /* per message */
	bool smtp_auth;		     /* offer AUTH on listen.smtp too */
	bool sender_login_match;     /* submission: MAIL FROM and From: must
				      * be the user's own address */
	bool smtp_normalize_bare_lf; /* store bare LF/CR as CRLF instead of
				      * refusing the message */
};

/* "pop3", "pop3s", ... */
const char *config_proto_name(enum listen_proto proto);
/* True for protocols that start TLS on connect (pop3s, submissions,
 * imaps). */
bool config_proto_implicit_tls(enum listen_proto proto);

/*
 * Parses the file at path. Every error is printed to errors as
 * "PATH:LINE: message" and parsing goes on, so one run shows them all.
 * Returns 0 and sets *cfg_r, or -1 after printing at least one error.
 */
int config_load(const char *path, FILE *errors, struct config **cfg_r);

/*
 * The embedded default used when postd runs without -c: everything under
 * base_dir (normally the working directory), loopback on unprivileged
 * ports, the domain "localhost" with auth_default_domain set to it.
 */
struct config *config_default(const char *base_dir);

/*
 * Checks what cannot be checked line by line (a listener that needs TLS
 * without tls_cert, ...). Prints each problem to errors; returns the
 * number of problems.
 */
int config_validate(const struct config *cfg, FILE *errors);

/* True if domain (any case) is one of cfg->domains. */
bool config_is_local_domain(const struct config *cfg, const char *domain);

void config_free(struct config **cfg);

#endif
