/*
 * The queue runner (see delivery.h and doc/internals/delivery.md).
 *
 * One libevent loop. A scan walks env/ (at start, when inotify sees a new
 * envelope, on a periodic timer, and when the earliest next_try comes)
 * and starts an attempt for each due entry not already in flight. An
 * attempt holds the entry's lock, groups its due recipients by domain
 * and handles the groups one after the other: local ones into the
 * Maildir, remote ones over one SMTP session each. After every group the
 * envelope is rewritten (INV-D4: right after the 250 of DATA, so a crash
 * repeats at most that group's copy).
 */
#include "delivery/delivery.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "delivery/dkim.h"
#include "delivery/dns.h"
#include "delivery/dsn.h"
#include "delivery/route.h"
#include "delivery/smtp_client.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/srs.h"
#include "lib/username.h"
#include "lib/xmalloc.h"
#include "storage/maildir.h"
#include "storage/queue.h"

/* RFC 5321 section 4.5.3.2 timeouts (seconds). */
#define DELIVERY_CONNECT_TIMEOUT 30
#define DELIVERY_COMMAND_TIMEOUT 300
#define DELIVERY_DATA_END_TIMEOUT 600
/* The safety-net rescan of env/ (inotify does the real work). */
#define DELIVERY_RESCAN_SECS 60
/* Attempts in flight at once (one per queue entry). */
#define DELIVERY_MAX_ATTEMPTS 200
/* Bytes read from msg/ID per step and the output level that asks for
 * the next step. */
#define DELIVERY_CHUNK 65536
/* A connection that delivered a message waits this long for the next
 * message to the same destination, and at most this many wait. */
#define DELIVERY_IDLE_SECS 5
#define DELIVERY_MAX_IDLE 100
/* A dsn_queue failure is retried this soon. */
#define DELIVERY_DSN_RETRY 60

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

static int delivery_read_auth(struct delivery *d, char *error, size_t size);
static void delivery_load_srs(struct delivery *d);
static int delivery_dsn_queue(struct delivery *d,
			      const struct queue_envelope *env,
			      enum dsn_action action,
			      const struct dsn_rcpt *rcpts, size_t rcpt_count,
			      time_t now, char *id_r, size_t id_size,
			      const char **error_r);
static SSL_CTX *delivery_ctx_new(const struct config *cfg, bool verify,
				 char *error, size_t size);
static void delivery_scan(struct delivery *d);
static int delivery_scan_one(void *ctx, const struct queue_envelope *env);
static void delivery_schedule_wake(struct delivery *d, time_t when);
static void delivery_load_one(struct delivery *d, const char *id);
static void delivery_sched_put(struct delivery *d, const char *id,
			       uint64_t due);
static void delivery_run_due(struct delivery *d);
static uint64_t delivery_hash(const char *id);
static struct sched_slot *sched_find(struct delivery *d, const char *id);
static void sched_rehash(struct delivery *d, size_t count);
static void sched_set(struct delivery *d, const char *id, uint64_t due);
static void heap_push(struct delivery *d, const char *id, uint64_t due);
static void heap_pop(struct delivery *d);
static bool heap_before(const struct delivery_sched *x,
			const struct delivery_sched *y);
static void heap_rebuild(struct delivery *d);
static void *commit_thread(void *arg);
static void commit_start(struct delivery *d);
static void commit_mark(struct delivery *d);
static void commit_stop(struct delivery *d);
static void delivery_wake_cb(evutil_socket_t fd, short what, void *arg);
static void delivery_rescan_cb(evutil_socket_t fd, short what, void *arg);
static void delivery_inotify_cb(evutil_socket_t fd, short what, void *arg);
static void delivery_signal_cb(evutil_socket_t fd, short what, void *arg);
static void delivery_maybe_exit(struct delivery *d);
static struct dest *delivery_dest(struct delivery *d, const char *key);
static bool delivery_in_flight(struct delivery *d, const char *id);

static void attempt_start(struct delivery *d, const char *id);
static int attempt_scan_msg(struct attempt *a);
static void attempt_group(struct attempt *a, time_t now);
static void attempt_step(struct attempt *a);
static void attempt_step_cb(evutil_socket_t fd, short what, void *arg);
static void attempt_delay_cb(evutil_socket_t fd, short what, void *arg);
static void attempt_delay_check(struct attempt *a, time_t now);
static void attempt_group_done(struct attempt *a);
static void attempt_finish(struct attempt *a);
static bool attempt_pending(const struct attempt *a);
static void attempt_local(struct attempt *a, struct group *g);
static void attempt_remote(struct attempt *a, struct group *g);
static void attempt_result(struct attempt *a, size_t ri, unsigned cls,
			   const char *reply, const char *status,
			   const char *relay, const char *tls);
static void attempt_bounce(struct attempt *a, struct group *g);
static unsigned attempt_timeout(struct attempt *a, unsigned base);
static const char *attempt_sender_domain(struct attempt *a);

static void sess_dns_cb(void *ctx, const struct dns_result *res);
static void sess_connect_next(struct session *s);
static void sess_event_cb(struct bufferevent *bev, short what, void *arg);
static void sess_read_cb(struct bufferevent *bev, void *arg);
static void sess_write_cb(struct bufferevent *bev, void *arg);
static void sess_timer_cb(evutil_socket_t fd, short what, void *arg);
static void sess_reply(struct session *s, const struct smtp_reply *r);
static void sess_send(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sess_set_timer(struct session *s, unsigned secs);
static void sess_host_failed(struct session *s, const char *why);
static void sess_close_conn(struct session *s);
static void sess_nodelay(struct session *s);
static void sess_body_end(struct session *s);
static void sess_finish(struct session *s, unsigned cls, const char *reply,
			const char *status);
static void sess_after_ehlo(struct session *s);
static bool sess_loops_back(const struct session *s,
			    const struct smtp_reply *r);
static void sess_start_tls(struct session *s);
static bool sess_must_verify(const struct session *s);
static void sess_tls_failed(struct session *s);
static void sess_send_envelope(struct session *s);
static void sess_body_more(struct session *s);
static void sess_free(struct session **s);
static void sess_resolve(struct session *s);
static bool sess_park(struct session *s);
static bool sess_take_idle(struct session *s);
static bool idle_fits(const struct idle_conn *ic, const struct session *s);
static void idle_free(struct idle_conn *ic);
static void idle_event_cb(struct bufferevent *bev, short what, void *arg);
static void idle_read_cb(struct bufferevent *bev, void *arg);
static void idle_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------------------- setup */

/* Read as root, like the DKIM keys: the file is root's alone. */
static void delivery_load_srs(struct delivery *d)
{
	char error[512];

	if (srs_secrets_load(&d->srs, d->cfg->srs_secret_file, error,
			     sizeof(error)) < 0)
		log_error("queue runner: srs_secret_file %s; DSNs to SRS "
			  "addresses are not decoded",
			  error);
}

/*
 * A DSN for a forwarded message goes to its SRS reverse-path; decoded
 * here, it goes straight to the original sender, as the bounce of a
 * remote server does through smtp_rcpt_srs. The envelope is our own, so
 * the age check uses the time the entry was made, not now: a message may
 * stay queued for all of queue_lifetime.
 */
static int delivery_dsn_queue(struct delivery *d,
			      const struct queue_envelope *env,
			      enum dsn_action action,
			      const struct dsn_rcpt *rcpts, size_t rcpt_count,
			      time_t now, char *id_r, size_t id_size,
			      const char **error_r)
{
	struct queue_envelope decoded = *env;
	char addr[SRS_MAX_ADDRESS], logged[SRS_MAX_ADDRESS * 4];
	char logged_to[SRS_MAX_ADDRESS * 4];
	const char *at = strrchr(env->sender, '@');
	enum srs_result r;

	if (at != NULL && strcasecmp(at + 1, config_srs_domain(d->cfg)) == 0 &&
	    srs_is_srs_local(env->sender, (size_t)(at - env->sender))) {
		r = srs_reverse(&d->srs, env->sender,
				(size_t)(at - env->sender),
				(time_t)env->created, addr, sizeof(addr));
		if (r == SRS_OK) {
			log_info("id=%s DSN to SRS <%s> goes to <%s>", env->id,
				 log_escape_word(logged, sizeof(logged),
						 env->sender),
				 log_escape_word(logged_to, sizeof(logged_to),
						 addr));
			decoded.sender = addr;
		} else {
			log_warn("id=%s DSN to SRS <%s>: not decoded (%s)",
				 env->id,
				 log_escape_word(logged, sizeof(logged),
						 env->sender),
				 srs_result_name(r));
		}
	}
	return dsn_queue(d->queue_fd, d->cfg, &decoded, action, rcpts,
			 rcpt_count, now, id_r, id_size, error_r);
}

struct delivery *delivery_prepare(const struct config *cfg, int queue_fd,
				  int mail_root_fd, char *error,
				  size_t error_size)
{
	struct delivery *d = xcalloc(1, sizeof(*d));
	char path[64];
	const char *qerr;

	d->cfg = cfg;
	d->queue_fd = queue_fd;
	d->mail_root_fd = mail_root_fd;
	d->inotify_fd = -1;
	if (queue_dirs_open(queue_fd, &d->dirs, &qerr) < 0) {
		snprintf(error, error_size, "queue: %s", qerr);
		free(d);
		return NULL;
	}
	d->base = event_base_new();
	if (d->base == NULL) {
		snprintf(error, error_size, "event_base_new failed");
		goto fail;
	}
	d->dns = dns_resolver_new(d->base, cfg, error, error_size);
	if (d->dns == NULL)
		goto fail;
	d->ctx_may = delivery_ctx_new(cfg, false, error, error_size);
	if (d->ctx_may == NULL)
		goto fail;
	d->ctx_verify = delivery_ctx_new(cfg, true, error, error_size);
	if (d->ctx_verify == NULL)
		goto fail;
	d->dkim = dkim_signer_load(cfg, error, error_size);
	if (d->dkim == NULL)
		goto fail;
	if (cfg->relay_auth != NULL &&
	    delivery_read_auth(d, error, error_size) < 0)
		goto fail;
	delivery_load_srs(d);
	if (cfg->relay_auth_insecure)
		log_warn("queue runner: relay_auth_insecure: the relay_auth "
			 "password goes to %s over TLS whose certificate is "
			 "not verified",
			 cfg->relay_host->host);
	/* The watch is made before the chroot, through /proc, and keeps
	 * working after it. Made as root in the run user's queue/: a link
	 * put in place of env/ is not followed. */
	d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/fd/%d/" QUEUE_SUBDIR_ENV,
		 queue_fd);
	if (d->inotify_fd < 0 ||
	    inotify_add_watch(d->inotify_fd, path,
			      IN_MOVED_TO | IN_CREATE | IN_DONT_FOLLOW |
				  IN_ONLYDIR) < 0) {
		log_warn("queue runner: inotify on %s: %s; rescanning every "
			 "%d s only",
			 path, strerror(errno), DELIVERY_RESCAN_SECS);
		if (d->inotify_fd >= 0)
			close(d->inotify_fd);
		d->inotify_fd = -1;
	}
	return d;
fail:
	queue_dirs_close(&d->dirs);
	if (d->dns != NULL)
		dns_resolver_free(&d->dns);
	if (d->ctx_may != NULL)
		SSL_CTX_free(d->ctx_may);
	if (d->ctx_verify != NULL)
		SSL_CTX_free(d->ctx_verify);
	if (d->base != NULL)
		event_base_free(d->base);
	free(d);
	return NULL;
}

/* relay_auth: one line "user password", read as root (the file should
 * be root's alone; the main config stays world-readable). */
static int delivery_read_auth(struct delivery *d, char *error, size_t size)
{
	char line[1024];
	FILE *f = fopen(d->cfg->relay_auth, "re");
	char *sp, *end;

	if (f == NULL) {
		snprintf(error, size, "relay_auth %s: %s", d->cfg->relay_auth,
			 strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		snprintf(error, size, "relay_auth %s: empty",
			 d->cfg->relay_auth);
		return -1;
	}
	fclose(f);
	end = line + strcspn(line, "\r\n");
	*end = '\0';
	sp = strchr(line, ' ');
	if (sp == NULL || sp == line || sp[1] == '\0') {
		snprintf(error, size,
			 "relay_auth %s: expected one line \"user password\"",
			 d->cfg->relay_auth);
		return -1;
	}
	*sp = '\0';
	d->auth_user = xstrdup(line);
	d->auth_pass = xstrdup(sp + 1);
	OPENSSL_cleanse(line, sizeof(line));
	return 0;
}

/* The client contexts: "may" checks nothing (RFC 7435), "verify" loads
 * the CA file now, before the chroot hides it. */
static SSL_CTX *delivery_ctx_new(const struct config *cfg, bool verify,
				 char *error, size_t size)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *ca;

	if (ctx == NULL) {
		snprintf(error, size, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ca = cfg->tls_ca_file != NULL ? cfg->tls_ca_file
				      : X509_get_default_cert_file();
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		if (cfg->tls_ca_file != NULL) {
			snprintf(error, size, "tls_ca_file %s: cannot load",
				 ca);
			SSL_CTX_free(ctx);
			return NULL;
		}
		log_warn("queue runner: no CA bundle at %s: tls_policy "
			 "verify and relay_auth will fail",
			 ca);
		ERR_clear_error();
	}
	return ctx;
}

int delivery_run(struct delivery *d)
{
	struct timeval tv = {DELIVERY_RESCAN_SECS, 0};
	struct attempt *a;

	d->wake_ev = evtimer_new(d->base, delivery_wake_cb, d);
	d->rescan_ev =
	    event_new(d->base, -1, EV_PERSIST, delivery_rescan_cb, d);
	d->term_ev = evsignal_new(d->base, SIGTERM, delivery_signal_cb, d);
	d->quit_ev = evsignal_new(d->base, SIGQUIT, delivery_signal_cb, d);
	if (d->wake_ev == NULL || d->rescan_ev == NULL || d->term_ev == NULL ||
	    d->quit_ev == NULL)
		fatal("queue runner: event_new failed");
	event_add(d->rescan_ev, &tv);
	event_add(d->term_ev, NULL);
	event_add(d->quit_ev, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (d->inotify_fd >= 0) {
		d->inotify_ev =
		    event_new(d->base, d->inotify_fd, EV_READ | EV_PERSIST,
			      delivery_inotify_cb, d);
		event_add(d->inotify_ev, NULL);
	}
	commit_start(d);
	log_info("queue runner started");
	delivery_scan(d);
	event_base_dispatch(d->base);

	/* SIGTERM: entries stay queued as last written; locks go with the
	 * descriptors. */
	while ((a = d->attempts) != NULL) {
		d->attempts = a->next;
		if (a->sess != NULL)
			sess_free(&a->sess);
		queue_entry_unlock(&a->lock_fd);
	}
	/* The last removals made durable before the next runner starts. */
	commit_stop(d);
	queue_dirs_close(&d->dirs);
	log_info("queue runner stopped");
	return 0;
}

static void delivery_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;

	(void)what;
	if (fd == SIGTERM) {
		event_base_loopbreak(d->base);
		return;
	}
	log_info("queue runner: finishing %zu attempts in flight",
		 d->attempt_count);
	d->draining = true;
	delivery_maybe_exit(d);
}

static void delivery_maybe_exit(struct delivery *d)
{
	if (d->draining && d->attempt_count == 0)
		event_base_loopbreak(d->base);
}

/* ----------------------------------------------------------- scheduling */

/* inotify names each new envelope: load just that one. Our own
 * envelope updates show up too; entries in flight are skipped. */
static void delivery_inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;
	char buf[8192]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				delivery_scan(d);
				continue;
			}
			if (ev->len > 0 && queue_id_valid(ev->name))
				delivery_load_one(d, ev->name);
		}
	}
	delivery_run_due(d);
}

static void delivery_load_one(struct delivery *d, const char *id)
{
	struct queue_envelope *env;
	const char *error;
	int r;

	if (d->draining || delivery_in_flight(d, id))
		return;
	r = queue_entry_load(d->queue_fd, id, &env, &error);
	if (r < 0)
		log_warn("queue runner: %s: %s", id, error);
	if (r <= 0)
		return;
	delivery_scan_one(d, env);
	queue_envelope_free(&env);
}

static void delivery_rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	delivery_scan(arg);
}

static void delivery_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery *d = arg;

	(void)fd;
	(void)what;
	d->next_wake = 0;
	delivery_run_due(d);
}

static void delivery_schedule_wake(struct delivery *d, time_t when)
{
	time_t now = time(NULL);
	struct timeval tv = {0, 0};

	if (d->next_wake != 0 && d->next_wake <= when &&
	    evtimer_pending(d->wake_ev, NULL))
		return;
	d->next_wake = when;
	tv.tv_sec = when > now ? when - now : 0;
	evtimer_add(d->wake_ev, &tv);
}

/* The full walk of env/: at start and every DELIVERY_RESCAN_SECS, in
 * case an inotify event was lost. */
static void delivery_scan(struct delivery *d)
{
	const char *error;

	if (d->draining)
		return;
	if (queue_list(d->queue_fd, delivery_scan_one, d, NULL, &error) < 0)
		log_error("queue runner: scanning the queue: %s", error);
	delivery_run_due(d);
}

/* Puts env into the schedule at its next due time. */
static int delivery_scan_one(void *ctx, const struct queue_envelope *env)
{
	struct delivery *d = ctx;
	uint64_t due = UINT64_MAX;
	size_t i;

	if (delivery_in_flight(d, env->id))
		return 0;
	for (i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state == QUEUE_RCPT_PENDING &&
		    env->rcpts[i].next_try < due)
			due = env->rcpts[i].next_try;
	}
	if (due == UINT64_MAX) {
		/* Nothing pending: a crash came before the delete. */
		due = 0;
	}
	if (d->cfg->delay_warning_time > 0 && !env->delay_notified &&
	    env->sender[0] != '\0') {
		uint64_t warn = env->created + d->cfg->delay_warning_time;

		if (warn < due)
			due = warn;
	}
	delivery_sched_put(d, env->id, due);
	return 0;
}

static void delivery_sched_put(struct delivery *d, const char *id, uint64_t due)
{
	struct sched_slot *sl = sched_find(d, id);

	if (sl != NULL && sl->due == due)
		return; /* its heap node is still valid */
	sched_set(d, id, due);
	heap_push(d, id, due);
	/* Stale nodes pile up when due times change often: rebuild. */
	if (d->heap_count > 2 * d->slot_used + 1024)
		heap_rebuild(d);
}

/* Starts every scheduled entry that is due (up to the attempt cap) and
 * sets the timer for the earliest of the rest. */
static void delivery_run_due(struct delivery *d)
{
	time_t now = time(NULL);
	uint64_t next = UINT64_MAX;

	if (d->draining)
		return;
	while (d->heap_count > 0) {
		struct delivery_sched e = d->heap[0];
		struct sched_slot *sl = sched_find(d, e.id);

		if (sl == NULL || sl->due != e.due) {
			heap_pop(d); /* stale */
			continue;
		}
		if (e.due > (uint64_t)now ||
		    d->attempt_count >= DELIVERY_MAX_ATTEMPTS) {
			next = e.due;
			break;
		}
		heap_pop(d);
		sl->state = SLOT_GONE;
		d->slot_used--;
		d->slot_gone++;
		if (!delivery_in_flight(d, e.id))
			attempt_start(d, e.id);
	}
	if (next != UINT64_MAX)
		delivery_schedule_wake(d, next > (uint64_t)now ? (time_t)next
							       : now + 1);
}

/* FNV-1a: ids are random hex, any cheap hash spreads them. */
static uint64_t delivery_hash(const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return h;
}

static struct sched_slot *sched_find(struct delivery *d, const char *id)
{
	size_t mask = d->slot_count - 1, i;

	if (d->slot_count == 0)
		return NULL;
	for (i = delivery_hash(id) & mask;; i = (i + 1) & mask) {
		struct sched_slot *sl = &d->slots[i];

		if (sl->state == SLOT_EMPTY)
			return NULL;
		if (sl->state == SLOT_USED && strcmp(sl->id, id) == 0)
			return sl;
	}
}

static void sched_rehash(struct delivery *d, size_t count)
{
	struct sched_slot *old = d->slots;
	size_t old_count = d->slot_count;

	d->slots = xcalloc(count, sizeof(*d->slots));
	d->slot_count = count;
	d->slot_used = d->slot_gone = 0;
	for (size_t i = 0; i < old_count; i++) {
		if (old[i].state == SLOT_USED)
			sched_set(d, old[i].id, old[i].due);
	}
	free(old);
}

static void sched_set(struct delivery *d, const char *id, uint64_t due)
{
	struct sched_slot *sl = sched_find(d, id);
	size_t mask, i;

	if (sl != NULL) {
		sl->due = due;
		return;
	}
	/* At most 3/4 full, counting removed slots (they lengthen probes
	 * and an unbounded number would leave no empty slot). */
	if ((d->slot_used + d->slot_gone + 1) * 4 > d->slot_count * 3) {
		size_t n = 64;

		while (n < (d->slot_used + 1) * 4)
			n *= 2;
		sched_rehash(d, n);
	}
	mask = d->slot_count - 1;
	for (i = delivery_hash(id) & mask; d->slots[i].state == SLOT_USED;
	     i = (i + 1) & mask)
		;
	sl = &d->slots[i];
	if (sl->state == SLOT_GONE)
		d->slot_gone--;
	snprintf(sl->id, sizeof(sl->id), "%s", id);
	sl->state = SLOT_USED;
	sl->due = due;
	d->slot_used++;
}

/* Earlier due first; among equals the older entry (ids begin with the
 * creation time in hex, fixed width), so a queue drains in FIFO order
 * and entries a crash interrupted, being the oldest, go first. */
static bool heap_before(const struct delivery_sched *x,
			const struct delivery_sched *y)
{
	return x->due < y->due ||
	       (x->due == y->due && strcmp(x->id, y->id) < 0);
}

static void heap_push(struct delivery *d, const char *id, uint64_t due)
{
	struct delivery_sched e;
	size_t i;

	if (d->heap_count == d->heap_alloc) {
		d->heap_alloc = d->heap_alloc ? 2 * d->heap_alloc : 64;
		d->heap =
		    xreallocarray(d->heap, d->heap_alloc, sizeof(*d->heap));
	}
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.due = due;
	i = d->heap_count++;
	while (i > 0 && heap_before(&e, &d->heap[(i - 1) / 2])) {
		d->heap[i] = d->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	d->heap[i] = e;
}

static void heap_pop(struct delivery *d)
{
	struct delivery_sched last = d->heap[--d->heap_count];
	size_t i = 0, n = d->heap_count;

	if (n == 0)
		return;
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && heap_before(&d->heap[c + 1], &d->heap[c]))
			c++;
		if (!heap_before(&d->heap[c], &last))
			break;
		d->heap[i] = d->heap[c];
		i = c;
	}
	d->heap[i] = last;
}

/* Only the valid nodes, from the table. */
static void heap_rebuild(struct delivery *d)
{
	d->heap_count = 0;
	for (size_t i = 0; i < d->slot_count; i++) {
		if (d->slots[i].state == SLOT_USED)
			heap_push(d, d->slots[i].id, d->slots[i].due);
	}
}

/* ------------------------------------------------------- group commit */

static void commit_start(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;
	int r;

	c->dirs = &d->dirs;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	r = pthread_create(&c->thread, NULL, commit_thread, c);
	if (r != 0)
		fatal("queue runner: pthread_create: %s", strerror(r));
	c->running = true;
}

static void *commit_thread(void *arg)
{
	struct delivery_commit *c = arg;
	const char *error;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->dirty && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->dirty)
			break; /* stop, and nothing left to sync */
		c->dirty = false;
		pthread_mutex_unlock(&c->mu);
		/* Removals that come meanwhile set dirty again and share
		 * the next round. A failure is not retried on the same
		 * descriptor (INV-D1); it costs at most a re-delivery. */
		if (queue_dirs_sync(c->dirs, &error) < 0)
			log_error("queue runner: removals: %s", error);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* A removal happened: the thread fsyncs env/ and msg/ soon. */
static void commit_mark(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;
	const char *error;

	if (!c->running) {
		if (queue_dirs_sync(&d->dirs, &error) < 0)
			log_error("queue runner: removals: %s", error);
		return;
	}
	pthread_mutex_lock(&c->mu);
	c->dirty = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Waits for the last round: every removal is durable afterwards. */
static void commit_stop(struct delivery *d)
{
	struct delivery_commit *c = &d->commit;

	if (!c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	c->running = false;
}

static bool delivery_in_flight(struct delivery *d, const char *id)
{
	for (struct attempt *a = d->attempts; a != NULL; a = a->next) {
		if (strcmp(a->env->id, id) == 0)
			return true;
	}
	return false;
}

static struct dest *delivery_dest(struct delivery *d, const char *key)
{
	struct dest *x;

	for (x = d->dests; x != NULL; x = x->next) {
		if (strcmp(x->key, key) == 0)
			return x;
	}
	x = xcalloc(1, sizeof(*x));
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->next = d->dests;
	d->dests = x;
	return x;
}

/* -------------------------------------------------------------- attempts */

static void attempt_start(struct delivery *d, const char *id)
{
	struct attempt *a;
	const char *error;
	int lock_fd, r;
	struct queue_envelope *env;

	lock_fd = queue_entry_lock_at(&d->dirs, id, false, &error);
	if (lock_fd < 0) {
		if (errno != EAGAIN && errno != ENOENT)
			log_warn("queue runner: lock %s: %s", id, error);
		return;
	}
	/* Load again under the lock: postctl may have changed it. */
	r = queue_entry_load_at(&d->dirs, id, &env, &error);
	if (r <= 0) {
		if (r < 0)
			log_warn("queue runner: %s: %s", id, error);
		queue_entry_unlock(&lock_fd);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->d = d;
	a->env = env;
	a->lock_fd = lock_fd;
	/* The lock descriptor is msg/ID itself (O_RDWR): read through it
	 * instead of opening the file a second time. */
	a->msg_fd = lock_fd;
	a->next = d->attempts;
	if (d->attempts != NULL)
		d->attempts->prev = a;
	d->attempts = a;
	d->attempt_count++;
	a->fail_status = xcalloc(env->rcpt_count, sizeof(char *));
	a->step_ev = evtimer_new(d->base, attempt_step_cb, a);
	a->delay_ev = evtimer_new(d->base, attempt_delay_cb, a);
	if (attempt_scan_msg(a) < 0) {
		a->msg_unreadable = true;
		log_error("queue runner: %s: cannot read the message: %s", id,
			  strerror(errno));
		attempt_finish(a);
		return;
	}
	attempt_group(a, time(NULL));
	attempt_delay_check(a, time(NULL));
	attempt_step(a);
}

/* One pass over the message: 8-bit bytes (BODY=8BITMIME) and the size
 * on the wire (SIZE=). */
static int attempt_scan_msg(struct attempt *a)
{
	char buf[DELIVERY_CHUNK];
	uint64_t off = a->env->skip, lines = 0;
	ssize_t n;

	while (off < a->env->size) {
		size_t want = sizeof(buf);

		if (a->env->size - off < want)
			want = (size_t)(a->env->size - off);
		n = pread(a->msg_fd, buf, want, (off_t)off);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		for (ssize_t i = 0; i < n; i++) {
			if ((unsigned char)buf[i] >= 0x80)
				a->eightbit = true;
			else if (buf[i] == '\n')
				lines++;
		}
		off += (uint64_t)n;
	}
	a->wire_size = a->env->size - a->env->skip + lines;
	a->needs_utf8 = smtp_client_needs_utf8(a->env->sender);
	return 0;
}

/* Due pending recipients, grouped by domain (lowercase). */
static void attempt_group(struct attempt *a, time_t now)
{
	struct queue_envelope *env = a->env;
	struct group **tail = &a->groups;

	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt *rc = &env->rcpts[i];
		const char *at = strrchr(rc->addr, '@');
		char dom[SMTP_MAX_DOMAIN + 1];
		struct group *g;

		if (rc->state != QUEUE_RCPT_PENDING ||
		    rc->next_try > (uint64_t)now)
			continue;
		snprintf(dom, sizeof(dom), "%s", at != NULL ? at + 1 : "");
		ascii_lowercase(dom);
		for (g = a->groups; g != NULL; g = g->next) {
			if (strcmp(g->domain, dom) == 0)
				break;
		}
		if (g == NULL) {
			g = xcalloc(1, sizeof(*g));
			snprintf(g->domain, sizeof(g->domain), "%s", dom);
			g->idx = xcalloc(env->rcpt_count, sizeof(size_t));
			*tail = g;
			tail = &g->next;
		}
		g->idx[g->count++] = i;
		if (smtp_client_needs_utf8(rc->addr))
			a->needs_utf8 = true;
	}
	a->cur = NULL;
}

/* The delayed DSN (RFC 3464 Action: delayed) once per entry, when it
 * has waited delay_warning_time; also while an attempt hangs. */
static void attempt_delay_check(struct attempt *a, time_t now)
{
	const struct config *cfg = a->d->cfg;
	struct queue_envelope *env = a->env;
	struct dsn_rcpt *dr;
	size_t n = 0;
	char id[QUEUE_MAX_ID + 1];
	const char *error;
	uint64_t warn = env->created + cfg->delay_warning_time;
	int r;

	if (cfg->delay_warning_time == 0 || env->delay_notified ||
	    env->sender[0] == '\0')
		return;
	if ((uint64_t)now < warn) {
		struct timeval tv = {(time_t)(warn - (uint64_t)now), 0};

		evtimer_add(a->delay_ev, &tv);
		return;
	}
	dr = xcalloc(env->rcpt_count, sizeof(*dr));
	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (env->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		dr[n].addr = env->rcpts[i].addr;
		dr[n].status = "4.4.7";
		dr[n].diagnostic = env->rcpts[i].last_error;
		dr[n].reason = "the message could not be delivered yet; "
			       "delivery will be retried";
		n++;
	}
	r = n > 0 ? delivery_dsn_queue(a->d, env, DSN_DELAYED, dr, n, now, id,
				       sizeof(id), &error)
		  : 0;
	free(dr);
	if (r < 0) {
		log_error("queue runner: %s: delayed DSN: %s", env->id, error);
		return;
	}
	if (r > 0)
		log_info("id=%s delayed DSN queued as %s", env->id, id);
	env->delay_notified = true;
	if (queue_envelope_update(a->d->queue_fd, env, &error) < 0)
		log_error("queue runner: %s: update: %s", env->id, error);
}

static void attempt_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	attempt_delay_check(arg, time(NULL));
}

/* Runs the next group from the event loop, never from inside a
 * bufferevent callback of the session that just ended. */
static void attempt_step(struct attempt *a)
{
	struct timeval tv = {0, 0};

	evtimer_add(a->step_ev, &tv);
}

static void attempt_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;
	const char *error;

	(void)fd;
	(void)what;
	if (a->sess != NULL)
		sess_free(&a->sess);
	a->cur = a->cur == NULL ? a->groups : a->cur->next;
	if (a->cur == NULL) {
		attempt_finish(a);
		return;
	}
	if (a->d->draining && a->d->attempt_count > 0 && a->cur != a->groups) {
		/* SIGQUIT: the group in flight is done; start no other. */
		attempt_finish(a);
		return;
	}
	if (route_for_domain(a->d->cfg, a->cur->domain, &a->cur->route,
			     &error) < 0) {
		for (size_t i = 0; i < a->cur->count; i++)
			attempt_result(a, a->cur->idx[i], 4, error, "4.3.5",
				       "none", "no TLS");
		attempt_group_done(a);
		return;
	}
	if (a->cur->route.kind == ROUTE_LOCAL)
		attempt_local(a, a->cur);
	else
		attempt_remote(a, a->cur);
}

/* After every group: bounces first, then the envelope (INV-D4). */
static void attempt_group_done(struct attempt *a)
{
	const char *error;

	attempt_bounce(a, a->cur);
	/* INV-D4: a partial result (some recipients still pending) is made
	 * durable before the runner goes on. When none is pending the entry
	 * is removed right away (attempt_finish) and the rewrite would be
	 * wasted: a crash before the removal repeats the entry once, which
	 * the rewrite could not prevent either (it comes after the 250 too).
	 * A bounce's DSN is already durable (dsn_queue fsyncs it). */
	if (attempt_pending(a) &&
	    queue_envelope_update(a->d->queue_fd, a->env, &error) < 0)
		log_error("queue runner: %s: envelope update: %s", a->env->id,
			  error);
	if (a->cur->dest != NULL) {
		struct dest *x = a->cur->dest;

		a->cur->dest = NULL;
		x->active--;
		/* Wake the first attempt waiting for this destination. */
		for (struct attempt **w = &a->d->waiting; *w != NULL;
		     w = &(*w)->wait_next) {
			if (strcmp((*w)->cur->route.key, x->key) == 0) {
				struct attempt *n = *w;

				*w = n->wait_next;
				n->wait_next = NULL;
				attempt_remote(n, n->cur);
				break;
			}
		}
	}
	attempt_step(a);
}

/* Does any recipient of the entry still wait for a delivery? */
static bool attempt_pending(const struct attempt *a)
{
	for (size_t i = 0; i < a->env->rcpt_count; i++) {
		if (a->env->rcpts[i].state == QUEUE_RCPT_PENDING)
			return true;
	}
	return false;
}

static void attempt_finish(struct attempt *a)
{
	struct delivery *d = a->d;
	struct group *g;
	const char *error;
	bool pending = attempt_pending(a);
	bool readable = a->msg_fd >= 0 && !a->msg_unreadable;

	if (!pending && readable) {
		/* Unlinked now, under the lock; the folder fsyncs follow in
		 * the commit thread (group commit, see delivery.md). */
		if (queue_entry_remove(&d->dirs, a->env->id, &error) < 0 &&
		    errno != ENOENT)
			log_error("queue runner: %s: delete: %s", a->env->id,
				  error);
		else
			log_info("id=%s removed from the queue", a->env->id);
		commit_mark(d);
	}
	if (a->sess != NULL)
		sess_free(&a->sess);
	queue_entry_unlock(&a->lock_fd);
	a->msg_fd = -1;
	while ((g = a->groups) != NULL) {
		a->groups = g->next;
		free(g->idx);
		free(g);
	}
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		d->attempts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	d->attempt_count--;
	if (pending && readable)
		delivery_scan_one(d, a->env);
	event_free(a->step_ev);
	event_free(a->delay_ev);
	free(a->dkim_header);
	for (size_t i = 0; i < a->env->rcpt_count; i++)
		free(a->fail_status[i]);
	free(a->fail_status);
	queue_envelope_free(&a->env);
	free(a);
	/* The next due time of this entry, and those that waited for a
	 * free attempt slot. */
	if (!d->draining)
		delivery_run_due(d);
	delivery_maybe_exit(d);
}

static unsigned attempt_timeout(struct attempt *a, unsigned base)
{
	/* A server that hangs must not keep an entry past its lifetime:
	 * the bounce is due then. */
	time_t now = time(NULL);
	uint64_t end = a->env->created + a->d->cfg->queue_lifetime;

	if (end > (uint64_t)now && end - (uint64_t)now + 1 < base)
		return (unsigned)(end - (uint64_t)now + 1);
	if (end <= (uint64_t)now)
		return base < 5 ? base : 5;
	return base;
}

static const char *attempt_sender_domain(struct attempt *a)
{
	const char *at = strrchr(a->env->sender, '@');

	return at != NULL ? at + 1 : NULL;
}

/*
 * Records one recipient's outcome and logs it. cls 2: sent; 4: deferred
 * with backoff, or failed with 4.4.7 past queue_lifetime; 5: failed.
 * Failed recipients stay pending here and are marked failed only after
 * their DSN is queued (attempt_bounce).
 */
static void attempt_result(struct attempt *a, size_t ri, unsigned cls,
			   const char *reply, const char *status,
			   const char *relay, const char *tls)
{
	const struct config *cfg = a->d->cfg;
	struct queue_rcpt *rc = &a->env->rcpts[ri];
	time_t now = time(NULL);
	char addr[SMTP_MAX_PATH * 4], rep[QUEUE_MAX_ERROR * 4];
	char outcome[64];
	long delay = (long)((uint64_t)now - a->env->created);
	struct group *g = a->cur;

	log_escape_word(addr, sizeof(addr), rc->addr);
	log_escape(rep, sizeof(rep), reply, strlen(reply));
	free(rc->last_error);
	rc->last_error = xstrndup(reply, QUEUE_MAX_ERROR);
	rc->attempts++;
	if (cls == 2) {
		rc->state = QUEUE_RCPT_SENT;
		snprintf(outcome, sizeof(outcome), "sent");
		metrics_add(g != NULL && g->route.kind == ROUTE_LOCAL
				? METRIC_MESSAGES_DELIVERED
				: METRIC_MESSAGES_RELAYED,
			    1);
	} else if (cls == 4 &&
		   (uint64_t)now < a->env->created + cfg->queue_lifetime) {
		uint64_t wait =
		    cfg->queue_retry_min > 0 ? cfg->queue_retry_min : 1;
		struct tm tm;
		time_t next;

		for (uint32_t i = 1;
		     i < rc->attempts && wait < cfg->queue_retry_max; i++)
			wait *= 2;
		if (wait > cfg->queue_retry_max)
			wait = cfg->queue_retry_max;
		/* Up to 10% jitter, so entries that failed together do not
		 * all come back in the same second. */
		wait += (uint64_t)random() % (wait / 10 + 1);
		next = now + (time_t)wait;
		rc->next_try = (uint64_t)next;
		gmtime_r(&next, &tm);
		strftime(outcome, sizeof(outcome),
			 "deferred until %Y-%m-%dT%H:%M:%SZ", &tm);
	} else {
		/* Bounced: marked failed once the DSN is queued. */
		rc->next_try = 0;
		snprintf(outcome, sizeof(outcome), "bounced");
		free(a->fail_status[ri]);
		a->fail_status[ri] = xstrdup(cls == 4 ? "4.4.7" : status);
	}
	log_info("id=%s rcpt=%s relay=%s tls=\"%s\" delay=%lds reply=\"%s\" "
		 "status=%s",
		 a->env->id, addr, relay, tls, delay, rep, outcome);
}

/* Queues one DSN for the group's failed recipients, then marks them
 * failed for good; if the DSN cannot be queued they stay pending and
 * come back soon (a crash in between: at most a second bounce). */
static void attempt_bounce(struct attempt *a, struct group *g)
{
	struct queue_envelope *env = a->env;
	struct dsn_rcpt *dr = xcalloc(g->count, sizeof(*dr));
	size_t n = 0;
	char id[QUEUE_MAX_ID + 1];
	const char *error = "";
	int r;

	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		struct queue_rcpt *rc = &env->rcpts[ri];
		const char *le = rc->last_error != NULL ? rc->last_error : "";

		if (a->fail_status[ri] == NULL)
			continue;
		dr[n].addr = rc->addr;
		dr[n].status = a->fail_status[ri];
		/* A remote reply is the Diagnostic-Code; a local cause
		 * (DNS, timeouts) is only described. */
		dr[n].diagnostic = (le[0] >= '2' && le[0] <= '5' &&
				    le[1] >= '0' && le[1] <= '9')
				       ? le
				       : NULL;
		dr[n].remote_mta =
		    g->route.kind == ROUTE_LOCAL ? NULL : g->route.host;
		dr[n].reason = le;
		n++;
	}
	if (n == 0) {
		free(dr);
		return;
	}
	r = delivery_dsn_queue(a->d, env, DSN_FAILED, dr, n, time(NULL), id,
			       sizeof(id), &error);
	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		struct queue_rcpt *rc = &env->rcpts[ri];

		if (a->fail_status[ri] == NULL)
			continue;
		free(a->fail_status[ri]);
		a->fail_status[ri] = NULL;
		if (r < 0) {
			rc->next_try =
			    (uint64_t)time(NULL) + DELIVERY_DSN_RETRY;
		} else {
			rc->state = QUEUE_RCPT_FAILED;
			metrics_add(METRIC_MESSAGES_BOUNCED, 1);
		}
	}
	if (r < 0)
		log_error("queue runner: %s: cannot queue the DSN: %s", env->id,
			  error);
	else if (r > 0)
		log_info("id=%s DSN for %zu recipients queued as %s", env->id,
			 n, id);
	else
		log_info("id=%s null sender: no DSN for %zu recipients",
			 env->id, n);
	free(dr);
}

/* Local domains: straight into the Maildir, Return-Path kept. */
static void attempt_local(struct attempt *a, struct group *g)
{
	char buf[DELIVERY_CHUNK];

	for (size_t k = 0; k < g->count; k++) {
		size_t ri = g->idx[k];
		char lower[SMTP_MAX_PATH + 1];
		const char *error = NULL;
		struct maildir_delivery *md = NULL;
		char name[256];
		int fd = -1, err = 0;
		uint64_t off = 0;

		snprintf(lower, sizeof(lower), "%s", a->env->rcpts[ri].addr);
		ascii_lowercase(lower);
		if (!username_is_canonical(lower)) {
			attempt_result(a, ri, 5, "invalid mailbox name",
				       "5.1.3", "local", "no TLS");
			continue;
		}
		fd = maildir_open(a->d->mail_root_fd, lower, true, &error);
		if (fd >= 0)
			md = maildir_delivery_begin(fd, &error);
		while (md != NULL && off < a->env->size) {
			size_t want = sizeof(buf);
			ssize_t n;

			if (a->env->size - off < want)
				want = (size_t)(a->env->size - off);
			n = pread(a->msg_fd, buf, want, (off_t)off);
			if (n <= 0) {
				error = "read error on the queued message";
				maildir_delivery_abort(&md);
				break;
			}
			if (maildir_delivery_write(md, buf, (size_t)n, &error) <
			    0) {
				maildir_delivery_abort(&md);
				break;
			}
			off += (uint64_t)n;
		}
		if (md != NULL &&
		    maildir_delivery_commit(&md, name, sizeof(name), &err,
					    &error) == 0)
			error = NULL;
		else if (error == NULL)
			error = "cannot open the mailbox";
		if (fd >= 0)
			close(fd);
		if (error == NULL) {
			attempt_result(a, ri, 2, "250 2.0.0 delivered", "2.0.0",
				       "local", "no TLS");
		} else {
			char msg[QUEUE_MAX_ERROR];

			snprintf(msg, sizeof(msg), "451 4.3.0 %s", error);
			attempt_result(a, ri, 4, msg, "4.3.0", "local",
				       "no TLS");
		}
	}
	attempt_group_done(a);
}

/* ---------------------------------------------------------- SMTP session */

static void attempt_remote(struct attempt *a, struct group *g)
{
	struct delivery *d = a->d;
	struct session *s;
	struct dest *x = delivery_dest(d, g->route.key);

	if (d->cfg->max_connections_per_destination > 0 &&
	    x->active >= d->cfg->max_connections_per_destination) {
		struct attempt **w = &d->waiting;

		while (*w != NULL)
			w = &(*w)->wait_next;
		*w = a;
		return;
	}
	x->active++;
	g->dest = x;
	s = xcalloc(1, sizeof(*s));
	s->a = a;
	s->base = d->base;
	s->timer = evtimer_new(d->base, sess_timer_cb, s);
	s->rcpt_code = xcalloc(g->count, sizeof(int));
	snprintf(s->relay, sizeof(s->relay), "%s", g->route.host);
	snprintf(s->tls_version, sizeof(s->tls_version), "no TLS");
	a->sess = s;
	if (g->route.auth && d->auth_user == NULL) {
		sess_finish(s, 4, "relay_auth has no credentials", "4.7.0");
		return;
	}
	if (sess_take_idle(s)) {
		sess_send_envelope(s);
		return;
	}
	sess_resolve(s);
}

static void sess_resolve(struct session *s)
{
	struct delivery *d = s->a->d;
	struct group *g = s->a->cur;

	if (g->route.kind == ROUTE_MX)
		s->query =
		    dns_resolve_mx(d->dns, g->route.host, sess_dns_cb, s);
	else
		s->query =
		    dns_resolve_host(d->dns, g->route.host, sess_dns_cb, s);
}

/* Takes an idle connection to this group's destination, if one waits. */
static bool sess_take_idle(struct session *s)
{
	struct delivery *d = s->a->d;
	struct idle_conn *ic;

	for (ic = d->idle; ic != NULL; ic = ic->next) {
		if (idle_fits(ic, s))
			break;
	}
	if (ic == NULL)
		return false;
	s->bev = ic->bev;
	ic->bev = NULL;
	s->ehlo = ic->ehlo;
	s->tls = ic->tls;
	s->verified = ic->verified;
	s->authed = ic->authed;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", ic->tls_version);
	snprintf(s->relay, sizeof(s->relay), "%s", ic->relay);
	idle_free(ic);
	s->reused = true;
	smtp_reply_parser_init(&s->parser);
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
			  s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return true;
}

/* The key alone is not enough: transports and relay_host to one
 * HOST:PORT share it while their recipient domains' tls_policy and
 * relay_auth differ. A connection opened under "may" must not carry
 * mail that requires a verified certificate, and one that skipped AUTH
 * must not carry relay_auth mail (nor the other way round). */
static bool idle_fits(const struct idle_conn *ic, const struct session *s)
{
	return strcmp(ic->key, s->a->cur->route.key) == 0 &&
	       ic->authed == s->a->cur->route.auth &&
	       (ic->verified || !sess_must_verify(s));
}

/* After a delivered message: keeps the connection for the next one to
 * the same destination instead of QUIT. */
static bool sess_park(struct session *s)
{
	struct delivery *d = s->a->d;
	struct idle_conn *ic;
	struct timeval tv = {DELIVERY_IDLE_SECS, 0};

	if (d->draining || d->idle_count >= DELIVERY_MAX_IDLE || s->bev == NULL)
		return false;
	ic = xcalloc(1, sizeof(*ic));
	ic->d = d;
	snprintf(ic->key, sizeof(ic->key), "%s", s->a->cur->route.key);
	ic->bev = s->bev;
	s->bev = NULL;
	ic->ehlo = s->ehlo;
	ic->tls = s->tls;
	ic->verified = s->verified;
	ic->authed = s->authed;
	snprintf(ic->tls_version, sizeof(ic->tls_version), "%s",
		 s->tls_version);
	snprintf(ic->relay, sizeof(ic->relay), "%s", s->relay);
	ic->timer = evtimer_new(d->base, idle_timer_cb, ic);
	evtimer_add(ic->timer, &tv);
	bufferevent_setcb(ic->bev, idle_read_cb, NULL, idle_event_cb, ic);
	ic->next = d->idle;
	if (d->idle != NULL)
		d->idle->prev = ic;
	d->idle = ic;
	d->idle_count++;
	return true;
}

static void idle_free(struct idle_conn *ic)
{
	struct delivery *d = ic->d;

	if (ic->prev != NULL)
		ic->prev->next = ic->next;
	else
		d->idle = ic->next;
	if (ic->next != NULL)
		ic->next->prev = ic->prev;
	d->idle_count--;
	if (ic->bev != NULL)
		bufferevent_free(ic->bev);
	event_free(ic->timer);
	free(ic);
}

/* Anything from an idle server (a 421, EOF) ends the connection. */
static void idle_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	idle_free(arg);
}

static void idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	idle_free(arg);
}

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct idle_conn *ic = arg;

	(void)fd;
	(void)what;
	/* QUIT goes out best effort; the close does not wait for it. */
	bufferevent_write(ic->bev, "QUIT\r\n", 6);
	bufferevent_flush(ic->bev, EV_WRITE, BEV_FLUSH);
	idle_free(ic);
}

static void sess_dns_cb(void *ctx, const struct dns_result *res)
{
	struct session *s = ctx;
	char msg[512];

	s->query = NULL;
	switch (res->status) {
	case DNS_OK:
		break;
	case DNS_TEMPFAIL:
		snprintf(msg, sizeof(msg), "DNS: %s", res->error);
		sess_finish(s, 4, msg, "4.4.3");
		return;
	case DNS_NULL_MX:
		snprintf(msg, sizeof(msg),
			 "the domain accepts no mail (null MX, RFC 7505)");
		sess_finish(s, 5, msg, "5.1.10");
		return;
	case DNS_NXDOMAIN:
	case DNS_NO_ADDRESS:
	default:
		snprintf(msg, sizeof(msg), "DNS: %s", res->error);
		if (s->a->cur->route.kind != ROUTE_MX) {
			/* A transport or relay_host the admin named that does
			 * not resolve is a configuration error: the mail
			 * waits for the fix instead of bouncing. */
			log_warn("id=%s route %s for %s does not resolve: %s",
				 s->a->env->id, s->a->cur->route.host,
				 s->a->cur->domain, res->error);
			sess_finish(s, 4, msg, "4.4.4");
			return;
		}
		sess_finish(s, 5, msg, "5.1.2");
		return;
	}
	s->host_count = res->host_count;
	s->hosts = xcalloc(res->host_count + 1, sizeof(*s->hosts));
	for (size_t i = 0; i < res->host_count; i++) {
		s->hosts[i] = res->hosts[i];
		s->hosts[i].addrs = xcalloc(res->hosts[i].addr_count + 1,
					    sizeof(struct sockaddr_storage));
		memcpy(s->hosts[i].addrs, res->hosts[i].addrs,
		       res->hosts[i].addr_count *
			   sizeof(struct sockaddr_storage));
	}
	snprintf(s->last_error, sizeof(s->last_error),
		 "no address to connect to");
	sess_connect_next(s);
}

/* Connects to the next address (host by host, address by address). */
static void sess_connect_next(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	sess_close_conn(s);
	while (s->host_i < s->host_count) {
		struct dns_host *h = &s->hosts[s->host_i];

		if (s->addr_i >= h->addr_count) {
			s->host_i++;
			s->addr_i = 0;
			s->no_tls = false;
			continue;
		}
		struct sockaddr_storage ss = h->addrs[s->addr_i];
		socklen_t len;
		char addr[INET6_ADDRSTRLEN] = "?";

		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_port = htons((uint16_t)g->route.port);
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr,
				  sizeof(addr));
			len = sizeof(*sin6);
		} else {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_port = htons((uint16_t)g->route.port);
			inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
			len = sizeof(*sin);
		}
		snprintf(s->relay, sizeof(s->relay), "%s[%s]:%u", h->name, addr,
			 g->route.port);
		snprintf(s->tls_version, sizeof(s->tls_version), "no TLS");
		s->tls = false;
		s->verified = false;
		s->authed = false;
		s->ehlo_tls = false;
		s->replies_expected = s->replies_seen = 0;
		s->rcpt_accepted = 0;
		smtp_reply_parser_init(&s->parser);
		s->bev =
		    bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL)
			fatal("bufferevent_socket_new failed");
		bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb,
				  sess_event_cb, s);
		s->state = S_CONNECT;
		sess_set_timer(s, DELIVERY_CONNECT_TIMEOUT);
		if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss,
					       (int)len) < 0) {
			snprintf(s->last_error, sizeof(s->last_error),
				 "connect to %s: %s", s->relay,
				 strerror(errno));
			s->addr_i++;
			sess_close_conn(s);
			continue;
		}
		sess_nodelay(s);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	/* Every host failed: a temporary failure (RFC 5321 section 5.1). */
	sess_finish(s, 4, s->last_error, "4.4.1");
}

/*
 * Without TCP_NODELAY, Nagle holds a small segment (the final dot, a
 * pipelined command group) until the peer ACKs the previous one, and the
 * peer delays that ACK (~40 ms on Linux) while it waits for the rest:
 * one message per 40 ms per connection. The runner writes whole command
 * groups and body chunks at once, so it has no tinygrams to coalesce.
 */
static void sess_nodelay(struct session *s)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(s->bev);

	if (fd >= 0 &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_warn("queue runner: TCP_NODELAY: %s", strerror(errno));
}

static void sess_close_conn(struct session *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

static void sess_set_timer(struct session *s, unsigned secs)
{
	struct timeval tv = {attempt_timeout(s->a, secs), 0};

	evtimer_add(s->timer, &tv);
}

static void sess_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->data_sent)
		/* No answer to the final dot: it may have been delivered;
		 * retrying risks a duplicate, which beats a loss. */
		sess_finish(s, 4, "timeout waiting for the reply to DATA",
			    "4.4.2");
	else
		sess_host_failed(s, "timeout");
}

/* This address failed before any recipient got an answer: the next. */
static void sess_host_failed(struct session *s, const char *why)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", s->relay, why);
	if (s->reused && s->replies_seen == 0 && !s->data_sent) {
		/* The idle connection went away meanwhile: a new one. */
		s->reused = false;
		sess_close_conn(s);
		s->state = S_CONNECT;
		sess_resolve(s);
		return;
	}
	if (s->state >= S_MAIL && s->state != S_QUIT) {
		/* Lost mid-transaction: do not send again elsewhere now. */
		sess_finish(s, 4, s->last_error, "4.4.2");
		return;
	}
	s->addr_i++;
	sess_connect_next(s);
}

static void sess_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECT) {
			s->state = S_GREETING;
			sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
			return;
		}
		if (s->state == S_TLS) {
			SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

			s->tls = true;
			/* Checked during the handshake, or it failed. */
			s->verified = sess_must_verify(s);
			snprintf(s->tls_version, sizeof(s->tls_version), "%s",
				 SSL_get_version(ssl));
			s->state = S_EHLO;
			s->ehlo_tls = true;
			sess_send(s, "EHLO %s\r\n", s->a->d->cfg->hostname);
			return;
		}
		return;
	}
	if (s->state == S_TLS) {
		sess_tls_failed(s);
		return;
	}
	if (s->state == S_QUIT) {
		sess_close_conn(s);
		return;
	}
	if (s->data_sent) {
		sess_finish(s, 4, "connection lost after DATA", "4.4.2");
		return;
	}
	sess_host_failed(
	    s, (what & BEV_EVENT_EOF)
		   ? "connection closed"
		   : (errno != 0 ? strerror(errno) : "connection error"));
}

static void sess_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (s->bev == bev && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		struct smtp_reply *r;
		const char *error;
		size_t used;
		int rv;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		r = xmalloc(sizeof(*r));
		rv = smtp_reply_parse(&s->parser, v.iov_base, v.iov_len, &used,
				      r, &error);
		evbuffer_drain(in, used);
		if (rv < 0) {
			free(r);
			sess_host_failed(s, error);
			return;
		}
		if (rv == 1) {
			sess_reply(s, r);
			free(r);
			/* The session may be gone, or the bev replaced by
			 * TLS (plaintext after STARTTLS is dropped). */
			if (s->a == NULL || s->bev != bev)
				return;
		} else {
			free(r);
		}
	}
}

static void sess_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == S_BODY && !s->body_done)
		sess_body_more(s);
}

static void sess_send(struct session *s, const char *fmt, ...)
{
	char line[SMTP_MAX_PATH * 2 + 1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		fatal("queue runner: command too long");
	bufferevent_write(s->bev, line, (size_t)n);
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

/* True when the EHLO reply names this server (its first word is our
 * hostname, RFC 5321 section 4.1.1.1). */
static bool sess_loops_back(const struct session *s, const struct smtp_reply *r)
{
	const char *name = s->a->d->cfg->hostname;
	size_t len = strlen(name);

	return r->text_len >= len && strncasecmp(r->text, name, len) == 0 &&
	       (r->text[len] == '\0' || r->text[len] == ' ' ||
		r->text[len] == '\n');
}

static void sess_reply(struct session *s, const struct smtp_reply *r)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;
	unsigned cls = smtp_reply_class(r);
	char text[QUEUE_MAX_ERROR];

	smtp_reply_format(r, text, sizeof(text));
	switch (s->state) {
	case S_CONNECT:
	case S_GREETING:
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		s->state = S_EHLO;
		sess_send(s, "EHLO %s\r\n", a->d->cfg->hostname);
		return;
	case S_EHLO:
		if (cls == 5 && !s->ehlo_tls) {
			s->state = S_HELO;
			sess_send(s, "HELO %s\r\n", a->d->cfg->hostname);
			return;
		}
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		if (g->route.kind == ROUTE_MX && sess_loops_back(s, r)) {
			char msg[QUEUE_MAX_ERROR];

			/* An MX that is this server (a DNS mistake, or
			 * a hostile MX pointing at us): Postfix's "mail
			 * for DOMAIN loops back to myself". */
			snprintf(msg, sizeof(msg),
				 "mail for %s loops back to myself: the MX "
				 "host greets as %s",
				 g->domain, a->d->cfg->hostname);
			sess_finish(s, 5, msg, "5.4.6");
			return;
		}
		smtp_ehlo_parse(r, &s->ehlo);
		sess_after_ehlo(s);
		return;
	case S_HELO:
		if (cls != 2) {
			sess_host_failed(s, text);
			return;
		}
		memset(&s->ehlo, 0, sizeof(s->ehlo));
		sess_after_ehlo(s);
		return;
	case S_STARTTLS:
		if (cls != 2) {
			if (g->route.tls == TLS_POLICY_MAY && !g->route.auth) {
				s->no_tls = true;
				sess_after_ehlo(s);
			} else {
				sess_host_failed(s, text);
			}
			return;
		}
		sess_start_tls(s);
		return;
	case S_AUTH:
		if (cls != 2) {
			/* Wrong credentials are the admin's to fix; the
			 * mail waits (RFC 4954 535 is a 5xx, but a bounce
			 * for a config error helps nobody). */
			log_warn("id=%s %s refused AUTH: %s", a->env->id,
				 s->relay, text);
			sess_finish(s, 4, text, "4.7.0");
			return;
		}
		s->authed = true;
		sess_send_envelope(s);
		return;
	case S_MAIL:
		s->replies_seen++;
		if (s->replies_seen == 1) {
			if (cls != 2) {
				sess_finish(
				    s, cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"));
				return;
			}
		} else {
			size_t k = s->replies_seen - 2;

			s->rcpt_code[k] = (int)cls;
			if (cls == 2) {
				s->rcpt_accepted++;
			} else {
				attempt_result(
				    a, g->idx[k], cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"),
				    s->relay, s->tls_version);
			}
			if (!s->ehlo.pipelining && k + 1 < g->count) {
				const char *ra =
				    a->env->rcpts[g->idx[k + 1]].addr;

				sess_send(s, "RCPT TO:<%s>\r\n", ra);
				return;
			}
		}
		if (s->replies_seen == 1 && !s->ehlo.pipelining) {
			sess_send(s, "RCPT TO:<%s>\r\n",
				  a->env->rcpts[g->idx[0]].addr);
			return;
		}
		if (s->replies_seen < g->count + 1)
			return;
		if (s->rcpt_accepted == 0) {
			/* Every RCPT answered and refused. */
			s->state = S_QUIT;
			sess_send(s, "QUIT\r\n");
			sess_finish(s, 0, NULL, NULL);
			return;
		}
		s->state = S_DATA;
		sess_send(s, "DATA\r\n");
		return;
	case S_DATA:
		if (r->code != 354) {
			sess_finish(s, cls == 5 ? 5 : 4, text,
				    r->enhanced[0]
					? r->enhanced
					: (cls == 5 ? "5.0.0" : "4.0.0"));
			return;
		}
		s->state = S_BODY;
		smtp_data_encoder_init(&s->enc);
		s->body_off = a->env->skip;
		s->body_done = false;
		if (a->dkim_header != NULL)
			bufferevent_write(s->bev, a->dkim_header, a->dkim_len);
		bufferevent_setwatermark(s->bev, EV_WRITE, DELIVERY_CHUNK, 0);
		sess_body_more(s);
		return;
	case S_BODY:
	case S_DOT:
		s->data_sent = false;
		sess_finish(s, cls == 5 ? 5 : (cls == 2 ? 2 : 4), text,
			    r->enhanced[0] ? r->enhanced
					   : (cls == 5 ? "5.0.0" : "4.0.0"));
		return;
	case S_TLS:
	case S_QUIT:
		return;
	}
}

static void sess_after_ehlo(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	if (!s->tls && !s->no_tls && s->ehlo.starttls) {
		s->state = S_STARTTLS;
		sess_send(s, "STARTTLS\r\n");
		return;
	}
	if (!s->tls && (g->route.tls == TLS_POLICY_VERIFY || g->route.auth)) {
		if (g->route.auth)
			log_warn("id=%s relay_host %s: no TLS; relay_auth "
				 "credentials not sent, mail deferred; fix: "
				 "enable STARTTLS on the smarthost",
				 a->env->id, s->relay);
		sess_host_failed(s, g->route.auth
					? "refusing AUTH without TLS"
					: "TLS required (tls_policy verify) "
					  "but not available");
		return;
	}
	if (g->route.auth) {
		/* AUTH PLAIN: "\0user\0password" in base64. */
		if (a->d->cfg->relay_auth_insecure)
			log_warn("id=%s %s: relay_auth_insecure: AUTH over TLS "
				 "that is not verified",
				 a->env->id, s->relay);
		size_t ul = strlen(a->d->auth_user),
		       pl = strlen(a->d->auth_pass);
		unsigned char raw[1024];
		unsigned char b64[1400];

		if (ul + pl + 2 > sizeof(raw)) {
			sess_finish(s, 4, "relay_auth too long", "4.7.0");
			return;
		}
		raw[0] = '\0';
		memcpy(raw + 1, a->d->auth_user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, a->d->auth_pass, pl);
		EVP_EncodeBlock(b64, raw, (int)(ul + pl + 2));
		OPENSSL_cleanse(raw, sizeof(raw));
		s->state = S_AUTH;
		sess_send(s, "AUTH PLAIN %s\r\n", (char *)b64);
		OPENSSL_cleanse(b64, sizeof(b64));
		return;
	}
	sess_send_envelope(s);
}

/* The certificate is checked under tls_policy verify, and always before
 * relay_auth credentials go out (unless relay_auth_insecure allows a
 * smarthost on this machine): an unverified peer may be anyone on the
 * path, or whoever answers DNS for relay_host. */
static bool sess_must_verify(const struct session *s)
{
	const struct route *r = &s->a->cur->route;

	return r->tls == TLS_POLICY_VERIFY ||
	       (r->auth && !s->a->d->cfg->relay_auth_insecure);
}

/* The handshake failed: opportunistic TLS retries in plaintext, anything
 * that needed TLS fails this host. A relay_auth route says why and what
 * to change, as the mail waits until the admin acts. */
static void sess_tls_failed(struct session *s)
{
	const struct route *r = &s->a->cur->route;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	/* Without SSL_VERIFY_PEER the result is recorded but did not end
	 * the handshake. */
	long vr = ssl != NULL && sess_must_verify(s)
		      ? SSL_get_verify_result(ssl)
		      : X509_V_OK;
	unsigned long e = bufferevent_get_openssl_error(s->bev);
	bool name = vr == X509_V_ERR_HOSTNAME_MISMATCH ||
		    vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
	char msg[256];

	if (vr != X509_V_OK)
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s: %s",
			 name ? "name mismatch" : "certificate not trusted",
			 X509_verify_cert_error_string(vr));
	else
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s",
			 e != 0 ? ERR_reason_error_string(e) : "closed");
	ERR_clear_error();
	if (r->tls == TLS_POLICY_MAY && !r->auth) {
		/* Opportunistic: this host again, in plaintext. */
		log_info("id=%s %s: %s; retrying without TLS", s->a->env->id,
			 s->relay, msg);
		s->no_tls = true;
		sess_connect_next(s);
		return;
	}
	if (r->auth)
		log_warn("id=%s relay_host %s: %s; relay_auth credentials not "
			 "sent, mail deferred; fix: %s",
			 s->a->env->id, s->relay, msg,
			 name ? "set relay_host to a name the certificate "
				"carries"
			 : vr != X509_V_OK
			     ? "put the CA that signed the certificate in "
			       "tls_ca_file (or, for a smarthost on this "
			       "machine, set relay_auth_insecure = yes)"
			     : "check TLS on the smarthost");
	sess_host_failed(s, msg);
}

/* STARTTLS (RFC 3207): drop any plaintext that came after the 220
 * (INV-S1), then handshake over the same socket. */
static void sess_start_tls(struct session *s)
{
	bool verify = sess_must_verify(s);
	SSL *ssl = SSL_new(verify ? s->a->d->ctx_verify : s->a->d->ctx_may);
	evutil_socket_t fd = bufferevent_getfd(s->bev);
	struct dns_host *h = &s->hosts[s->host_i];

	if (ssl == NULL)
		fatal("SSL_new failed");
	/* SNI is for names only (RFC 6066 section 3). */
	if (strchr(h->name, ':') == NULL &&
	    strspn(h->name, "0123456789.") != strlen(h->name))
		SSL_set_tlsext_host_name(ssl, h->name);
	if (verify) {
		/* An address literal as next hop (a transport to
		 * 127.0.0.1) matches an IP subjectAltName instead. */
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, h->name) != 1) {
			ERR_clear_error();
			SSL_set1_host(ssl, h->name);
		}
	}
	evbuffer_drain(bufferevent_get_input(s->bev),
		       evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(s->bev, -1);
	bufferevent_free(s->bev);
	s->bev = bufferevent_openssl_socket_new(s->base, fd, ssl,
						BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatal("bufferevent_openssl_socket_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, sess_read_cb, sess_write_cb, sess_event_cb,
			  s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtp_reply_parser_init(&s->parser);
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	s->state = S_TLS;
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

static void sess_send_envelope(struct session *s)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;
	char params[128] = "";
	size_t pl = 0;

	if (a->needs_utf8 && !s->ehlo.smtputf8) {
		sess_finish(s, 5,
			    "the remote server does not offer SMTPUTF8, "
			    "needed for these addresses",
			    "5.6.7");
		return;
	}
	if (s->ehlo.size) {
		if (s->ehlo.size_max != 0 && a->wire_size > s->ehlo.size_max) {
			sess_finish(s, 5,
				    "the message is larger than the remote "
				    "server's SIZE limit",
				    "5.3.4");
			return;
		}
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
				       " SIZE=%llu",
				       (unsigned long long)a->wire_size);
	}
	/* 8-bit without 8BITMIME is sent as it is (see delivery.md). */
	if (a->eightbit && s->ehlo.eightbitmime)
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
				       " BODY=8BITMIME");
	if (a->needs_utf8)
		snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");
	if (a->dkim_header == NULL && a->env->sender[0] != '\0') {
		const char *dom = attempt_sender_domain(a);
		const char *error;

		if (dom != NULL &&
		    dkim_sign(a->d->dkim, dom, a->msg_fd, a->env->skip,
			      a->env->size, &a->dkim_header, &error) < 0)
			log_warn("id=%s DKIM signing failed: %s", a->env->id,
				 error);
		if (a->dkim_header != NULL)
			a->dkim_len = strlen(a->dkim_header);
	}
	s->state = S_MAIL;
	s->replies_seen = 0;
	s->rcpt_accepted = 0;
	s->replies_expected = g->count + 1;
	sess_send(s, "MAIL FROM:<%s>%s\r\n", a->env->sender, params);
	if (s->ehlo.pipelining) {
		for (size_t k = 0; k < g->count; k++)
			sess_send(s, "RCPT TO:<%s>\r\n",
				  a->env->rcpts[g->idx[k]].addr);
	}
}

/* Streams the message from msg/ID: one chunk whenever the output falls
 * below the watermark, so a big message never sits in memory. */
static void sess_body_more(struct session *s)
{
	struct attempt *a = s->a;
	char in[DELIVERY_CHUNK];
	char *out;
	size_t want, n;
	ssize_t got;

	if (a->env->size <= s->body_off) {
		char end[8];

		n = smtp_data_encode_end(&s->enc, end);
		bufferevent_write(s->bev, end, n);
		sess_body_end(s);
		return;
	}
	want = sizeof(in);
	if (a->env->size - s->body_off < want)
		want = (size_t)(a->env->size - s->body_off);
	got = pread(a->msg_fd, in, want, (off_t)s->body_off);
	if (got <= 0) {
		sess_finish(s, 4, "read error on the queued message", "4.3.0");
		return;
	}
	/* Room for the end too: the last chunk and the final dot go out
	 * in one write (one segment for a small message). */
	out = xmalloc(2 * (size_t)got + 8);
	n = smtp_data_encode(&s->enc, in, (size_t)got, out);
	s->body_off += (uint64_t)got;
	if (s->body_off >= a->env->size) {
		n += smtp_data_encode_end(&s->enc, out + n);
		bufferevent_write(s->bev, out, n);
		free(out);
		sess_body_end(s);
		return;
	}
	bufferevent_write(s->bev, out, n);
	free(out);
	sess_set_timer(s, DELIVERY_COMMAND_TIMEOUT);
}

/* The final dot is written: wait for the reply to the message. */
static void sess_body_end(struct session *s)
{
	s->body_done = true;
	s->data_sent = true;
	s->state = S_DOT;
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	sess_set_timer(s, DELIVERY_DATA_END_TIMEOUT);
}

/*
 * The group's end. cls 0: every recipient already has its result (all
 * refused at RCPT). Otherwise cls/reply apply to the recipients without
 * one: all of them before RCPT, the accepted ones after DATA.
 */
static void sess_finish(struct session *s, unsigned cls, const char *reply,
			const char *status)
{
	struct attempt *a = s->a;
	struct group *g = a->cur;

	if (cls != 0) {
		for (size_t k = 0; k < g->count; k++) {
			if (s->rcpt_code[k] != 0 && s->rcpt_code[k] != 2)
				continue;
			attempt_result(a, g->idx[k], cls, reply, status,
				       s->relay, s->tls_version);
		}
	}
	evtimer_del(s->timer);
	if (cls == 2 && s->state == S_DOT && sess_park(s)) {
		s->state = S_QUIT;
		attempt_group_done(a);
		return;
	}
	if (s->bev != NULL && s->state != S_QUIT) {
		/* A polite end where the connection still works. */
		if (cls == 2 || cls == 0 ||
		    (s->state >= S_MAIL && !s->data_sent))
			bufferevent_write(s->bev, "QUIT\r\n", 6);
	}
	s->state = S_QUIT;
	if (s->bev != NULL)
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
	attempt_group_done(a);
}

static void sess_free(struct session **sp)
{
	struct session *s = *sp;

	if (s == NULL)
		return;
	if (s->query != NULL)
		dns_query_cancel(&s->query);
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->timer != NULL)
		event_free(s->timer);
	for (size_t i = 0; i < s->host_count; i++)
		free(s->hosts[i].addrs);
	free(s->hosts);
	free(s->rcpt_code);
	free(s);
	*sp = NULL;
}
