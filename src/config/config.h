/*
 * postd.conf: the configuration struct, its embedded default, and the
 * strict key = value parser. See postd.conf(5) for every key.
 */
#ifndef POSTD_CONFIG_H
#define POSTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* A listener's protocol; the name is the suffix of its listen.NAME key. */
enum listen_proto {
	LISTEN_POP3,
	LISTEN_POP3S,
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SUBMISSIONS,
	LISTEN_IMAP,
	LISTEN_IMAPS,
	LISTEN_HTTP, /* autoconfig, Autodiscover, /metrics, /healthz */
	LISTEN_PROTO_COUNT
};

enum plaintext_auth {
	PLAINTEXT_AUTH_NO,
	PLAINTEXT_AUTH_LOOPBACK, /* allowed only from 127.0.0.0/8 and ::1 */
	PLAINTEXT_AUTH_YES,
	PLAINTEXT_AUTH_UNSET, /* no plaintext_auth.NAME: the global holds */
};

/* Retention values: seconds, or one of these. */
#define CONFIG_NEVER (-1)
#define CONFIG_UNSET (-2) /* per domain: not set, the global value holds */

/* retention.DOMAIN / retention_unread.DOMAIN */
struct config_domain_retention {
	char *domain;		  /* lowercase */
	int64_t retention;	  /* seconds, CONFIG_NEVER or CONFIG_UNSET */
	int64_t retention_unread; /* seconds, CONFIG_NEVER or CONFIG_UNSET */
};

/* autoexpunge.FOLDER: messages of a user's folder (an IMAP name,
 * validated by folder_name_valid(), never INBOX) are removed this long
 * after their delivery or APPEND time by the retention pass. */
struct config_autoexpunge {
	char *folder;  /* UTF-8, '/' separated, as IMAP names it */
	int64_t after; /* seconds, or CONFIG_NEVER */
};

/* Outbound TLS: may = STARTTLS when offered, certificate not checked
 * (RFC 7435 opportunistic); verify = STARTTLS required and the
 * certificate must match the MX host name. DANE (RFC 7672) is not
 * implemented, and the config refuses it. */
enum tls_policy {
	TLS_POLICY_MAY,
	TLS_POLICY_VERIFY,
};

/* transport.DOMAIN = HOST:PORT, and relay_host: a fixed next hop. */
struct config_route {
	char *domain; /* lowercase; NULL for relay_host */
	char *host;   /* name or numeric address, without brackets */
	char *port;   /* numeric */
	int line;
};

struct config_domain_tls {
	char *domain;
	enum tls_policy policy;
};

/* dkim_key.DOMAIN = PATH (domain "*" for the plain dkim_key key). */
struct config_dkim_key {
	char *domain;
	char *path;
};

/* One network of proxy_trusted: family AF_INET or AF_INET6, the address
 * in network order, and the prefix length in bits. */
struct config_cidr {
	int family;
	uint8_t addr[16];
	unsigned prefix;
};

struct listen_addr {
	enum listen_proto proto;
	char *host; /* numeric address or name; "*" means every address */
	char *port; /* numeric */
	int line;   /* where it was configured, for error messages */
};

enum userdb_kind {
	USERDB_FILE = 0, /* users_file, Dovecot's passwd-file form */
	USERDB_PGSQL,	 /* PostgreSQL through libpq */
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
	/* plaintext_auth.NAME per listener protocol, or PLAINTEXT_AUTH_UNSET */
	enum plaintext_auth plaintext_auth_listener[LISTEN_PROTO_COUNT];
	bool apop;
	unsigned workers;		   /* 0 ("auto"): one per core */
	unsigned max_connections;	   /* per postd, all protocols */
	unsigned max_connections_per_peer; /* per remote address */
	unsigned timeout_preauth;	   /* seconds before login */
	unsigned timeout_idle;		   /* pop3_idle_timeout, seconds */
	unsigned timeout_smtp;		   /* SMTP: seconds without input */
	unsigned auth_failure_delay_ms;	   /* base delay of a failed login */
	/* Where users live: the users file or PostgreSQL (userdb = pgsql). */
	enum userdb_kind userdb;
	char *pgsql_conninfo;	       /* libpq connection string */
	char *pgsql_conninfo_failover; /* tried when the first is down */
	unsigned pgsql_pool_size;      /* connections */
	unsigned pgsql_query_timeout_ms;
	char *pgsql_user_query;	   /* $1: the canonical user name */
	char *pgsql_alias_query;   /* every alias: address, targets */
	char *pgsql_iterate_query; /* every user, for the retention pass */
	unsigned userdb_cache_ttl; /* seconds a found user is kept */
	unsigned userdb_negative_cache_ttl; /* seconds an unknown one is */
	bool log_debug;
	/* SMTP */
	unsigned max_message_size;   /* octets (RFC 1870 SIZE) */
	unsigned max_recipients;     /* per message */
	bool smtp_auth;		     /* smtp_port25_auth: AUTH on 25 */
	bool sender_login_match;     /* submission: MAIL FROM and From: must
				      * be the user's own address */
	bool smtp_normalize_bare_lf; /* store bare LF as CRLF instead of
				      * refusing the message */

	/* Longest line in a message, octets with CRLF. */
	unsigned smtp_max_line_length;
	/* Received: fields a message may carry; more is a mail loop. */
	unsigned max_received_headers;
	/* Retention (RFC 2449 section 6.7 EXPIRE) and LOGIN-DELAY (6.5) */
	int64_t retention;	  /* seconds after first retrieval */
	int64_t retention_unread; /* seconds after delivery, never read */
	struct config_domain_retention *domain_retention;
	size_t domain_retention_count;
	struct config_autoexpunge *autoexpunge; /* autoexpunge.FOLDER */
	size_t autoexpunge_count;
	unsigned login_delay;	  /* seconds between POP3 logins, 0: none */
	unsigned expire_interval; /* seconds between purge runs */
	/* Outbound queue */
	struct config_route *relay_host; /* smarthost, NULL: MX delivery */
	char *relay_auth;		 /* file with "user password" */
	bool relay_auth_insecure; /* AUTH over unverified TLS (loopback) */
	char **dns_servers; /* "ADDR", "ADDR:PORT", "[V6]:PORT"; NULL-term. */
	size_t dns_server_count;
	struct config_route *transports;
	size_t transport_count;
	enum tls_policy tls_policy;
	struct config_domain_tls *domain_tls;
	size_t domain_tls_count;
	char *tls_ca_file;	 /* for verify; NULL: the system's CA bundle */
	unsigned queue_lifetime; /* seconds until a bounce */
	unsigned
	    delay_warning_time;	  /* seconds until a "delayed" DSN, 0: none */
	unsigned queue_retry_min; /* first retry after this many seconds */
	unsigned queue_retry_max; /* backoff cap, seconds */
	unsigned max_connections_per_destination;
	unsigned mx_port; /* port for MX delivery: 25 but in tests */
	char *dkim_selector;
	struct config_dkim_key *dkim_keys;
	size_t dkim_key_count;
	/* Addressing */
	char *aliases_file;	  /* virtual(5) format; NULL: none */
	char *postmaster_address; /* where postmaster@ goes; NULL: the
				   * first user of users_file */
	char *abuse_address;	  /* where abuse@ goes; NULL: nowhere */
	char recipient_delimiter; /* '\0': no subaddresses */
	unsigned alias_max_expansions;
	/* Forwarding (SRS, doc/internals/srs.md) */
	char *srs_domain;      /* NULL: the first of domains */
	char *srs_secret_file; /* default DATA_DIR/srs.secret */
	/* PROXY protocol: which listeners expect a header, from where, and
	 * how long a header may take to arrive (seconds). */
	bool proxy_protocol[LISTEN_PROTO_COUNT];
	struct config_cidr *proxy_trusted;
	size_t proxy_trusted_count;
	unsigned proxy_protocol_timeout;
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
 * The local domain of the embedded default (the demo user is demo@ it).
 * A dotted name, since clients such as git send-email refuse an address
 * whose domain has no dot; under .localhost (RFC 6761), so it can never
 * be someone else's domain and mail for it never leaves the machine.
 */
#define CONFIG_EMBEDDED_DOMAIN "postd.localhost"

/*
 * The embedded default used when postd runs without -c: everything under
 * base_dir (normally the working directory), loopback on unprivileged
 * ports, the domain CONFIG_EMBEDDED_DOMAIN with auth_default_domain set
 * to it.
 */
struct config *config_default(const char *base_dir);

/*
 * Checks what cannot be checked line by line (a listener that needs TLS
 * without tls_cert, ...). Prints each problem to errors; returns the
 * number of problems.
 */
int config_validate(const struct config *cfg, FILE *errors);

/* The plaintext_auth policy of a listener protocol: its own
 * plaintext_auth.NAME if set, else the global plaintext_auth. */
enum plaintext_auth config_plaintext_auth(const struct config *cfg,
					  enum listen_proto proto);
/* "no", "loopback" or "yes". */
const char *config_plaintext_auth_name(enum plaintext_auth value);
/* One line for postd -t: the policy of each configured listener that takes
 * passwords before TLS, as "plaintext_auth: pop3=loopback submission=no". */
void config_print_plaintext_auth(const struct config *cfg, FILE *out);

/* True if sa (IPv4-mapped IPv6 counts as IPv4) is in one of the
 * proxy_trusted networks. */
bool config_proxy_trusted(const struct config *cfg, const struct sockaddr *sa);

/* True if domain (any case) is one of cfg->domains. */
bool config_is_local_domain(const struct config *cfg, const char *domain);

/* Retention for a user of domain: the domain's value if set, else the
 * global one. Seconds or CONFIG_NEVER. */
int64_t config_retention(const struct config *cfg, const char *domain,
			 bool unread);
/* True if some domain has its own retention (CAPA then says USER). */
bool config_retention_varies(const struct config *cfg);

/* The transport.DOMAIN route for domain, else NULL (then relay_host, if
 * set, else MX). */
const struct config_route *config_transport(const struct config *cfg,
					    const char *domain);
enum tls_policy config_tls_policy(const struct config *cfg, const char *domain);
const char *config_tls_policy_name(enum tls_policy policy);
/* The DKIM key file for a sender domain: dkim_key.DOMAIN, else dkim_key,
 * else NULL (no signature). */
const char *config_dkim_key(const struct config *cfg, const char *domain);
/* The domain of the SRS addresses postd makes (srs_domain, else the first
 * local domain), lowercase. */
const char *config_srs_domain(const struct config *cfg);

/*
 * Keys a reload (SIGHUP) cannot apply, because the parent acts on them
 * once at start: data_dir (its folders are opened then) and user (owner
 * of everything in data_dir). NULL-terminated.
 */
extern const char *const config_restart_keys[];

/*
 * For each restart key whose value differs in fresh from running: calls
 * changed(key, running value, fresh value, arg), then puts the running
 * value back into fresh, so the reload applies every other key and keeps
 * these. Returns how many differed.
 */
unsigned config_keep_restart_keys(
    struct config *fresh, const struct config *running,
    void (*changed)(const char *key, const char *running_value,
		    const char *fresh_value, void *arg),
    void *arg);

void config_free(struct config **cfg);

#endif
