/* What the queue runner's files share: its state and entry points. */
/*
 * The runner is one process (delivery.h) split by job:
 *   delivery.c          set-up as root, the event loop, signals
 *   schedule.c          which entry is due when (hash table + heap)
 *   commit_thread.c     the group-commit thread that fsyncs removals
 *   attempt.c           one try of one queue entry: groups, results, DSNs
 *   local_delivery.c    a group for a local domain, into the Maildir
 *   outbound_session.c  a group for a remote domain: the SMTP conversation
 *   conn_cache.c        connections kept open between messages
 * Nothing outside src/delivery/ includes this header.
 */
#ifndef POSTD_DELIVERY_INTERNAL_H
#define POSTD_DELIVERY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "delivery/delivery.h"
#include "delivery/dkim.h"
#include "delivery/dns.h"
#include "delivery/route.h"
#include "delivery/smtp_client.h"
#include "lib/postd_limits.h"
#include "lib/srs.h"
#include "storage/queue.h"

enum sess_state {
	S_CONNECT,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_TLS,
	S_AUTH,
	S_MAIL, /* MAIL and RCPT replies */
	S_DATA,
	S_BODY,
	S_DOT,
	S_QUIT,
};

struct delivery;
struct attempt;

struct dest {
	char key[300];
	unsigned active;
	struct dest *next;
};

/* One SMTP session for one group of one attempt. */
struct session {
	struct attempt *a;
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;
	enum sess_state state;
	struct smtp_reply_parser parser;
	struct smtp_ehlo ehlo;
	struct dns_query *query;
	struct dns_host *hosts; /* copied from the DNS result */
	size_t host_count, host_i, addr_i;
	bool no_tls;	 /* the TLS handshake failed: this host without TLS */
	bool tls;	 /* TLS is up */
	bool verified;	 /* ... and its certificate was checked */
	bool authed;	 /* relay_auth's AUTH was accepted */
	bool ehlo_tls;	 /* the EHLO after STARTTLS */
	char relay[400]; /* "host[addr]:port" for the log */
	char tls_version[16];
	char last_error[QUEUE_MAX_ERROR];
	size_t replies_expected, replies_seen;
	size_t rcpt_accepted;
	int *rcpt_code; /* per group recipient: RCPT reply class */
	char **rcpt_reply;
	struct smtp_data_encoder enc;
	uint64_t body_off;
	bool body_done;
	bool data_sent; /* the final dot was written */
	bool reused;	/* the connection came from the idle pool */
};

/* A connection kept open after a delivery, for the next message to the
 * same destination (the route key). */
struct idle_conn {
	struct delivery *d;
	char key[300];
	struct bufferevent *bev;
	struct event *timer;
	struct smtp_ehlo ehlo;
	bool tls, verified, authed; /* as in struct session */
	char tls_version[16];
	char relay[400];
	struct idle_conn *prev, *next;
};

struct group {
	char domain[SMTP_MAX_DOMAIN + 1];
	size_t *idx; /* indexes into env->rcpts */
	size_t count;
	struct route route;
	struct dest *dest;
	struct group *next;
};

struct attempt {
	struct delivery *d;
	struct attempt *prev, *next;
	struct queue_envelope *env;
	int lock_fd, msg_fd; /* msg_fd is lock_fd: msg/ID */
	bool msg_unreadable; /* leave the entry as it is */
	bool eightbit;
	uint64_t wire_size;
	bool needs_utf8;
	struct group *groups, *cur;
	struct session *sess;
	struct event *step_ev;	   /* runs the next group from the loop */
	struct event *delay_ev;	   /* the delayed DSN while in flight */
	struct attempt *wait_next; /* waiting for a destination slot */
	char *dkim_header;
	size_t dkim_len;
	/* Per recipient: the RFC 3463 status of a failure whose DSN is not
	 * queued yet, else NULL. */
	char **fail_status;
};

/* The schedule: entries not in flight, by due time. A hash table (open
 * addressing) holds each entry's current due time; a binary min-heap
 * orders (due, id) pairs. A heap node whose due time no longer matches
 * the table is stale and skipped when it comes to the top. */
struct delivery_sched {
	char id[QUEUE_MAX_ID + 1];
	uint64_t due;
};

enum { SLOT_EMPTY, SLOT_USED, SLOT_GONE };

struct sched_slot {
	char id[QUEUE_MAX_ID + 1];
	uint8_t state;
	uint64_t due;
};

/*
 * Group commit of removals (INV-D4): the runner unlinks env/ID and msg/ID
 * on the loop at once and only marks the folders dirty; this thread
 * fsyncs env/ and msg/ once for everything removed since its last round,
 * so no connection waits for the disk. A removal that a power loss
 * undoes only means one more delivery of that entry.
 */
struct delivery_commit {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool dirty, stop, running;
	const struct queue_dirs *dirs;
};

struct delivery {
	const struct config *cfg;
	int queue_fd, mail_root_fd;
	struct event_base *base;
	struct dns_resolver *dns;
	SSL_CTX *ctx_may, *ctx_verify;
	struct dkim_signer *dkim;
	struct srs_secrets srs; /* count 0: none (DSNs go to SRS as is) */
	char *auth_user, *auth_pass;
	int inotify_fd;
	struct event *inotify_ev, *rescan_ev, *wake_ev;
	struct event *term_ev, *quit_ev;
	struct attempt *attempts;
	size_t attempt_count;
	struct attempt *waiting; /* for a destination slot, FIFO */
	struct dest *dests;
	bool draining;
	time_t next_wake;
	struct idle_conn *idle;
	size_t idle_count;
	struct delivery_sched *heap; /* min-heap by due (may hold stale) */
	size_t heap_count, heap_alloc;
	struct sched_slot *slots; /* id -> current due; power of two */
	size_t slot_count, slot_used, slot_gone;
	struct queue_dirs dirs; /* env/ and msg/, opened once */
	struct delivery_commit commit;
};

/* delivery.c */
void delivery_maybe_exit(struct delivery *d);

/* schedule.c */
void delivery_scan(struct delivery *d);
int delivery_scan_one(void *ctx, const struct queue_envelope *env);
void delivery_run_due(struct delivery *d);
void delivery_wake_cb(evutil_socket_t fd, short what, void *arg);
void delivery_rescan_cb(evutil_socket_t fd, short what, void *arg);
void delivery_inotify_cb(evutil_socket_t fd, short what, void *arg);

/* commit_thread.c */
void commit_start(struct delivery *d);
void commit_mark(struct delivery *d);
void commit_stop(struct delivery *d);

/* attempt.c */
void attempt_start(struct delivery *d, const char *id);
void attempt_group_done(struct attempt *a);
void attempt_result(struct attempt *a, size_t ri, unsigned cls,
		    const char *reply, const char *status, const char *relay,
		    const char *tls);
unsigned attempt_timeout(struct attempt *a, unsigned base);
const char *attempt_sender_domain(struct attempt *a);

/* local_delivery.c */
void attempt_local(struct attempt *a, struct group *g);

/* outbound_session.c */
void attempt_remote(struct attempt *a, struct group *g);
void sess_free(struct session **s);
bool sess_must_verify(const struct session *s);
void sess_event_cb(struct bufferevent *bev, short what, void *arg);
void sess_read_cb(struct bufferevent *bev, void *arg);
void sess_write_cb(struct bufferevent *bev, void *arg);

/* conn_cache.c */
bool sess_take_idle(struct session *s);
bool sess_park(struct session *s);

#endif
