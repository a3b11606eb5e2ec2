/*
 * What the files of src/config share: the key table, the parser state and
 * the helpers the setters use. Not for use outside src/config and its
 * unit tests (config.h is the interface).
 */
#ifndef POSTD_CONFIG_INTERNAL_H
#define POSTD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* More than the table has rows (a _Static_assert checks it). */
#define CONFIG_KEY_SLOTS 128
#define CONFIG_EMBEDDED_NAME "embedded default"

struct config_parser;
struct config_key;

typedef int config_setter(struct config_parser *p, const struct config_key *k,
			  char *value);

/* What a value looks like. 0 (a row that does not say): taken from the
 * setter, see config_key_type(). */
enum config_type {
	CONFIG_TYPE_AUTO = 0,
	CONFIG_TYPE_TEXT,     /* a name, a domain, an account, ... */
	CONFIG_TYPE_PATH,     /* relative: to the file's folder */
	CONFIG_TYPE_BOOL,     /* yes or no */
	CONFIG_TYPE_NUMBER,   /* unsigned integer, within min..max */
	CONFIG_TYPE_DURATION, /* number with unit ms/s/m/h/d, in min..max ms */
	CONFIG_TYPE_CHOICE,   /* one of a few words */
	CONFIG_TYPE_LIST,     /* space-separated words */
};

/* Where a key applies. A prefix key ("retention.") that does not say is
 * per domain: its suffix is a domain name. */
enum config_scope {
	CONFIG_SCOPE_GLOBAL = 0,
	CONFIG_SCOPE_LISTENER, /* listen.NAME, plaintext_auth.NAME */
	CONFIG_SCOPE_DOMAIN,   /* retention.DOMAIN, transport.DOMAIN, ... */
	CONFIG_SCOPE_FOLDER,   /* autoexpunge.FOLDER: an IMAP folder name */
};

/*
 * One row per key: how to parse it, where it goes, its bounds, default and
 * documentation. Only .name and .set are required; a row that leaves the
 * rest out gets the setter's own bounds and no default (the field stays
 * zero). postd.conf(5) must list every row (tests/unit/test_config_keys.c).
 */
struct config_key {
	const char *name;
	config_setter *set;
	size_t offset; /* into struct config */
	enum config_type type;
	/* Integers: the value; durations: in ms. Both 0: the setter's own
	 * (any unsigned, or up to CONFIG_MAX_TIMEOUT for a duration). */
	uint64_t min, max;
	const char *min_why; /* said when a value is below min */
	/* The value a file gets when it does not set the key, as text parsed
	 * by .set when the config is created. NULL: zero, or set in code
	 * (config_set_defaults()). */
	const char *default_value;
	enum config_scope scope;
	const char *summary; /* one line, as in postd.conf(5) */
	/* A deprecated name: still accepted, with a warning naming this key,
	 * whose row does the parsing. */
	const char *replaced_by;
	bool store_ms;		 /* durations: store ms instead of seconds */
	enum listen_proto proto; /* listen.* keys */
	bool repeatable;
	bool prefix; /* name ends in '.': "transport." matches transport.D */
	bool listener_suffix; /* older spelling of CONFIG_SCOPE_LISTENER */
	bool allow_empty;     /* "key =" means "none" */
};

struct config_parser {
	const char *path; /* as given, for messages */
	char *dir;	  /* relative paths are resolved against it */
	FILE *errors;
	int error_count;
	int line;
	const char *suffix; /* the DOMAIN of a prefix key being set */
	struct config *cfg;
	/* per key: where it was first set, 0 if not */
	int first_line[CONFIG_KEY_SLOTS];
	unsigned listen_per_key[LISTEN_PROTO_COUNT];
};

#define OFF(field) offsetof(struct config, field)
#define FIELD(p, k, type) ((type *)((char *)(p)->cfg + (k)->offset))

extern const struct config_key config_keys[];
extern const size_t config_key_count;

/* config_keys.c */
const struct config_key *config_find_key(const char *name,
					 const char **suffix_r);
enum config_type config_key_type(const struct config_key *k);
const char *config_type_name(enum config_type type);
enum config_scope config_key_scope(const struct config_key *k);
const char *config_scope_name(enum config_scope scope);
/* Applies every row's default_value to p->cfg; returns the number of
 * defaults that did not parse (0, or a bug the unit test catches). */
int config_apply_defaults(struct config_parser *p);
/* yes or no into a bool field (also for proxy_protocol.NAME). */
config_setter config_set_bool;
int config_store_path(struct config_parser *p, const char *key,
		      const char *value, char **field);

/* config_listen.c */
config_setter config_set_listen, config_set_plaintext_auth,
    config_set_listener_plaintext_auth, config_set_listener_proxy_protocol,
    config_set_proxy_trusted;
void config_add_listen(struct config *cfg, enum listen_proto proto,
		       const char *host, const char *port, int line);
int config_split_hostport(struct config_parser *p, const char *key,
			  const char *word, const char *default_port,
			  char *host, size_t host_size, char *port,
			  size_t port_size);

/* config_check.c */
bool config_is_loopback_host(const char *host);

/* config.c */
void config_error(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like config_error but not an error: the file still loads. */
void config_warning(struct config_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *config_quote(char *dst, size_t size, const char *s);
char *config_next_word(char **cursor);
bool config_valid_hostname(const char *s, size_t max);
char *config_path_join(const char *dir, const char *name);

#endif
