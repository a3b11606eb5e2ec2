#include "auth/auth_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "auth/alias.h"
#include "auth/auth_proto.h"
#include "auth/passwd_file.h"
#include "auth/password.h"
#include "auth/userdb_pgsql.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"

/* An APOP digest: hex MD5 (RFC 1939 section 7). */
#define AUTH_APOP_HEX_LEN 32

struct auth_server;

struct auth_out {
	struct auth_out *next;
	struct auth_reply reply;
};

struct auth_worker {
	struct auth_server *server;
	int fd;
	bool open;
	struct event *read_ev, *write_ev;
	/* Replies waiting for the socket to become writable. */
	struct auth_out *out_head, *out_tail;
	size_t out_count;
};

enum auth_job_state {
	AUTH_JOB_WAITING,  /* in its peer's queue, not yet checked */
	AUTH_JOB_CHECKING, /* with the pool or verified inline */
	AUTH_JOB_HELD,	   /* a failure reply held back */
};

struct auth_job {
	struct auth_job *next;			/* pool queue and done list */
	struct auth_job *wait_next, *wait_prev; /* the peer's queue */
	struct auth_job *hash_next;		/* s->jobs[] chain */
	struct auth_server *server;
	struct auth_peer *peer;
	size_t worker;
	enum auth_job_state state;
	/* The worker cancelled it while it was being checked: the result
	 * still counts for the peer, but no reply goes out. */
	bool cancelled;
	uint64_t arrival_ms;
	struct auth_request req; /* holds the secret until verified */
	/* A copy of the stored hash, so a reload cannot free it under the
	 * thread; for an unknown user the decoy's hash, or NULL when there
	 * are no users at all. */
	char *stored;
	/* stored belongs to another user (auth_server_decoy): verify it for
	 * the time it costs, then fail whatever the result (INV-A1). */
	bool decoy;
	/* userdb = pgsql: the user has been looked up (stored is set). */
	bool looked_up;

	char extra[sizeof(((struct auth_reply *)0)->extra)];
	/* Results, filled in by the pool thread. */
	enum auth_result result;
	enum auth_cause cause;
	const char *error;
	/* A failure reply held back by the tarpit. */
	struct auth_reply reply;
	struct event *timer;
};

/*
 * What the auth process remembers of a peer (an IPv4 address or an IPv6
 * /64, see auth_peer_key()). Its penalty outlives its connections; a
 * slot with requests alive is never given to another peer.
 */
struct auth_peer {
	struct auth_server *server;
	char key[AUTH_PEER_KEY_SIZE];
	uint32_t failures;
	uint64_t failed_ms;  /* last failure: forgotten after a quiet while */
	uint64_t seen_ms;    /* last request: the stalest slot is reused */
	uint64_t checked_ms; /* when its last check started */
	uint32_t jobs;	     /* requests alive, all states */
	uint32_t checking;   /* of which being checked */
	struct auth_job *wait_head, *wait_tail;
	struct event *timer; /* wakes the queue when the penalty is over */
};

struct auth_server {
	const struct config *cfg;
	struct event_base *base;
	struct passwd_db *db;
	struct alias_table *aliases;	  /* NULL: no aliases */
	struct alias_result alias_result; /* scratch for LOOKUP */
	/* userdb = pgsql: users come from the database instead of db. */
	struct userdb_pgsql *pg;
	struct event *alias_timer;
	/* The job whose lookup is being started: an answer from the cache
	 * comes back inside the call, and the caller's loop (the peer's
	 * pump) starts the peer's next check. */
	struct auth_job *starting;
	/* The aliases table being read from the database; it replaces
	 * aliases only once the whole read succeeded. */
	struct alias_table *aliases_loading;
	struct event *alias_retry;

	struct auth_worker *workers;
	size_t worker_count, workers_open;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t *threads;
	size_t thread_count;
	bool stopping;
	struct auth_job *queue_head, *queue_tail; /* to the pool */
	struct auth_job *done_head, *done_tail;	  /* back from the pool */
	int wake_fds[2];
	struct event *wake_ev;

	/* Every request alive, by (worker, id), for cancelling and for a
	 * clean exit. */
	struct auth_job *jobs[AUTH_JOB_BUCKETS];
	size_t job_count;
	/* AUTH_TARPIT_PEERS slots, then the overflow peer: the requests of
	 * a peer whose every candidate slot is busy share it, penalty and
	 * all, rather than being refused. */
	struct auth_peer *peers;
	/* Keys the slot a peer starts from; random per process so that
	 * nobody outside can choose addresses that crowd out another's. */
	unsigned char peer_key[crypto_shorthash_KEYBYTES];
	/* Picks an unknown name's decoy user; random per process so that
	 * nobody outside can tell which user a name maps to. */
	unsigned char decoy_key[crypto_shorthash_KEYBYTES];
	struct event *sighup_ev, *sigterm_ev, *sigint_ev;
};

static uint64_t auth_now_ms(void);
static void auth_server_load(struct auth_server *s, bool reload);
static void auth_server_sighup(evutil_socket_t sig, short what, void *arg);
static struct alias_table *auth_aliases_load(const struct config *cfg,
					     const char *path);
static bool auth_alias_is_user(const char *addr, void *ctx);
static void auth_server_lookup(struct auth_server *s, size_t worker,
			       const struct auth_request *req);
static void auth_server_expand(struct auth_server *s, size_t worker,
			       uint32_t id, const char *user,
			       bool (*is_user)(const char *addr, void *ctx),
			       void *is_user_ctx, const char *extra);
static bool auth_lookup_is_user(const char *addr, void *ctx);
static bool auth_lookup_has_subaddress(const struct auth_server *s,
				       const char *addr);
static bool auth_expand_is_local_domain(const char *domain, void *ctx);
static bool auth_expand_is_user(const char *addr, void *ctx);
static void auth_lookup_base(const struct auth_server *s, const char *user,
			     char *base, size_t size);
static void auth_alias_table_reset(void *ctx);
static void auth_alias_table_add(void *ctx, const char *key,
				 const char *targets);
static void auth_alias_table_done(void *ctx, bool ok);
static void auth_server_sigterm(evutil_socket_t sig, short what, void *arg);
static void auth_worker_read(evutil_socket_t fd, short what, void *arg);
static void auth_worker_request(struct auth_server *s, size_t index,
				struct auth_request *req, size_t len);
static void auth_worker_write(evutil_socket_t fd, short what, void *arg);
static void auth_worker_close(struct auth_worker *w);
static void auth_worker_send(struct auth_server *s, size_t worker,
			     const struct auth_reply *reply);
static void auth_server_request(struct auth_server *s, size_t worker,
				struct auth_request *req);
static bool auth_server_answer_at_once(struct auth_server *s, size_t worker,
				       const struct auth_request *req,
				       const struct passwd_entry **e_r);
static const struct passwd_entry *auth_server_decoy(struct auth_server *s,
						    const char *name);
static void auth_reply_init(struct auth_reply *reply, uint32_t id,
			    enum auth_result result, enum auth_cause cause);
static void auth_job_free(struct auth_job *job);
static void *auth_pool_thread(void *arg);
static bool auth_job_is_fast(const struct auth_job *job);
static void auth_job_run(struct auth_job *job);
static void auth_job_apop(struct auth_job *job, const char *plain);
static void auth_server_wake(evutil_socket_t fd, short what, void *arg);
static void auth_job_finish(struct auth_server *s, struct auth_job *job);
static void auth_job_held_timer(evutil_socket_t fd, short what, void *arg);
static void auth_job_release(struct auth_server *s, struct auth_job *job);
static void auth_job_start(struct auth_server *s, struct auth_job *job);
static void auth_job_verify(struct auth_server *s, struct auth_job *job);
static void auth_job_found(enum userdb_status status,
			   const struct userdb_user *user, void *arg);
static void auth_server_lookup_pgsql(struct auth_server *s, size_t worker,
				     const struct auth_request *req);
static void auth_lookup_found(enum userdb_status status,
			      const struct userdb_user *user, void *arg);
static void auth_server_load_aliases(struct auth_server *s);
static void auth_alias_timer(evutil_socket_t fd, short what, void *arg);
static size_t auth_job_bucket(size_t worker, uint32_t id);
static void auth_server_cancel(struct auth_server *s, size_t worker,
			       uint32_t id);
static void auth_server_refuse(struct auth_server *s, size_t worker,
			       uint32_t id, enum auth_cause cause);
static void auth_peer_key(const char *addr, char *key, size_t size);
static struct auth_peer *auth_peer_find(struct auth_server *s, const char *key,
					uint64_t now);
static struct auth_peer *auth_peer_seen(struct auth_peer *p, uint64_t now);
static uint64_t auth_peer_penalty(const struct auth_server *s,
				  const struct auth_peer *p);
static void auth_peer_failed(struct auth_server *s, struct auth_peer *p);
static void auth_peer_trim(struct auth_server *s, struct auth_peer *p);
static void auth_peer_pump(struct auth_server *s, struct auth_peer *p);
static void auth_peer_arm(struct auth_server *s, struct auth_peer *p,
			  uint64_t wait_ms);
static void auth_peer_timer(evutil_socket_t fd, short what, void *arg);
static void auth_peer_unwait(struct auth_peer *p, struct auth_job *job);
static void auth_server_start_pool(struct auth_server *s);
static void auth_server_stop_pool(struct auth_server *s);
static void auth_server_free(struct auth_server *s);
static void auth_server_start_pgsql(struct auth_server *s);

static uint64_t auth_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

_Static_assert(AUTH_PEER_SECRET_SIZE == crypto_shorthash_KEYBYTES,
	       "the tarpit's secret is a crypto_shorthash key");
const unsigned char *auth_server_peer_secret;

/* Users read by auth_server_preload() before privileges were dropped. */
static struct passwd_db *auth_server_preloaded;
/* Aliases read by auth_server_preload_aliases() before the chroot. */
static struct alias_table *auth_server_aliases_preloaded;
/* The users file as the admin configured it, for the log: inside the
 * chroot cfg->users_file is only its last component. */
static char auth_users_shown[4096];

void auth_server_set_users_path(const char *configured)
{
	snprintf(auth_users_shown, sizeof(auth_users_shown), "%s", configured);
}

static const char *auth_users_path(const struct config *cfg)
{
	return auth_users_shown[0] != '\0' ? auth_users_shown : cfg->users_file;
}

int auth_server_preload(const struct config *cfg)
{
	const char *error;

	if (cfg->userdb == USERDB_PGSQL)
		return 0; /* users come from the database */
	if (cfg->users_file == NULL)
		return -1;
	if (passwd_db_load(cfg->users_file, &auth_server_preloaded, &error) <
	    0) {
		log_error("cannot load users file %s: %s", auth_users_path(cfg),
			  error);
		return -1;
	}
	return 0;
}

/* Reads the aliases file; a bad line is logged and skipped, so one typo
 * does not take every alias away. NULL if the file cannot be read. */
static struct alias_table *auth_aliases_load(const struct config *cfg,
					     const char *path)
{
	struct alias_table *t = alias_table_new();
	char *error = NULL;

	(void)cfg;
	if (alias_table_load_file(t, path, &error) < 0) {
		bool unreadable = alias_table_count(t) == 0 &&
				  strncmp(error, "cannot open", 11) == 0;

		for (char *line = error; line != NULL;) {
			char *nl = strchr(line, '\n');

			if (nl != NULL)
				*nl = '\0';
			log_error("aliases file: %s", line);
			line = nl != NULL ? nl + 1 : NULL;
		}
		free(error);
		if (unreadable) {
			alias_table_free(&t);
			return NULL;
		}
	}
	log_info("aliases file %s loaded: %zu aliases", path,
		 alias_table_count(t));
	return t;
}

int auth_server_preload_aliases(const struct config *cfg)
{
	if (cfg->aliases_file == NULL)
		return 0;
	alias_table_free(&auth_server_aliases_preloaded);
	auth_server_aliases_preloaded =
	    auth_aliases_load(cfg, cfg->aliases_file);
	return auth_server_aliases_preloaded != NULL ? 0 : -1;
}

/* Loads the users file and the aliases file; on a reload failure the old
 * ones stay. */
static void auth_server_load(struct auth_server *s, bool reload)
{
	struct passwd_db *db;
	const char *error;

	if (s->cfg->aliases_file != NULL && (reload || s->aliases == NULL)) {
		struct alias_table *t =
		    auth_aliases_load(s->cfg, s->cfg->aliases_file);

		if (t != NULL) {
			alias_table_free(&s->aliases);
			s->aliases = t;
		} else if (s->aliases != NULL) {
			log_error("keeping the old aliases");
		}
	}

	if (s->cfg->users_file == NULL) {
		log_error("no users_file configured: every login fails "
			  "temporarily");
		return;
	}
	if (passwd_db_load(s->cfg->users_file, &db, &error) < 0) {
		if (reload && s->db != NULL)
			log_error("reloading users file %s failed, keeping "
				  "the old users: %s",
				  auth_users_path(s->cfg), error);
		else
			log_error("cannot load users file %s: %s; every login "
				  "fails temporarily until it is fixed and "
				  "SIGHUP is sent",
				  auth_users_path(s->cfg), error);
		return;
	}
	/* Jobs in flight hold their own copy of the hash, so the old
	 * database can go now. */
	passwd_db_free(&s->db);
	s->db = db;
	log_info("users file %s %s: %zu users", auth_users_path(s->cfg),
		 reload ? "reloaded" : "loaded", passwd_db_count(db));
}

static void auth_server_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct auth_server *s = arg;

	(void)sig;
	(void)what;
	if (s->pg == NULL) {
		auth_server_load(s, true);
		return;
	}
	/* A changed password or a new user is seen at once. */
	userdb_pgsql_flush(s->pg);
	log_info("userdb: cache emptied");
	auth_server_load_aliases(s);
}

const struct auth_alias_sink *auth_server_alias_sink;
/* The sink that fills the server's own alias table (the default). */
static struct auth_alias_sink auth_table_sink;

/* userdb = pgsql: the aliases table goes to the sink the daemon set. */
static void auth_server_load_aliases(struct auth_server *s)
{
	const struct auth_alias_sink *sink = auth_server_alias_sink;

	if (s->pg == NULL || sink == NULL)
		return;
	userdb_pgsql_load_aliases(s->pg, sink->reset, sink->add, sink->done,
				  sink->ctx);
}

static void auth_alias_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	auth_server_load_aliases(arg);
}

static void auth_server_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct auth_server *s = arg;

	(void)what;
	log_info("signal %d: auth process stopping", (int)sig);
	event_base_loopbreak(s->base);
}

static void auth_reply_init(struct auth_reply *reply, uint32_t id,
			    enum auth_result result, enum auth_cause cause)
{
	memset(reply, 0, sizeof(*reply));
	reply->version = AUTH_PROTO_VERSION;
	reply->id = id;
	reply->result = (uint8_t)result;
	reply->cause = (uint8_t)cause;
}

static void auth_worker_close(struct auth_worker *w)
{
	struct auth_out *o;

	if (!w->open)
		return;
	w->open = false;
	event_free(w->read_ev);
	event_free(w->write_ev);
	w->read_ev = w->write_ev = NULL;
	close(w->fd);
	while ((o = w->out_head) != NULL) {
		w->out_head = o->next;
		free(o);
	}
	w->out_tail = NULL;
	w->out_count = 0;
	/* Its sessions are gone: their requests free their peers' share
	 * now instead of waiting for a check nobody will read. */
	for (size_t b = 0; b < AUTH_JOB_BUCKETS; b++) {
		struct auth_job *job = w->server->jobs[b], *next;

		for (; job != NULL; job = next) {
			next = job->hash_next;
			if (&w->server->workers[job->worker] == w)
				auth_server_cancel(w->server, job->worker,
						   job->req.id);
		}
	}
	if (--w->server->workers_open == 0) {
		log_info("every worker has closed its socket: auth process "
			 "stopping");
		event_base_loopbreak(w->server->base);
	}
}

static void auth_worker_send(struct auth_server *s, size_t worker,
			     const struct auth_reply *reply)
{
	struct auth_worker *w = &s->workers[worker];
	struct auth_out *o;
	ssize_t n;

	if (!w->open)
		return; /* the worker went away while we verified */
	if (w->out_head == NULL) {
		n = send(w->fd, reply, sizeof(*reply),
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof(*reply))
			return;
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
			       errno != ENOBUFS && errno != EINTR)) {
			log_warn("send to worker %zu: %s", worker,
				 n < 0 ? strerror(errno) : "short send");
			return;
		}
	}
	if (w->out_count >= AUTH_MAX_PENDING) {
		log_error("worker %zu does not read its replies; reply %u "
			  "dropped",
			  worker, reply->id);
		return;
	}
	o = xcalloc(1, sizeof(*o));
	o->reply = *reply;
	if (w->out_tail != NULL)
		w->out_tail->next = o;
	else
		w->out_head = o;
	w->out_tail = o;
	w->out_count++;
	event_add(w->write_ev, NULL);
}

static void auth_worker_write(evutil_socket_t fd, short what, void *arg)
{
	struct auth_worker *w = arg;
	struct auth_out *o;

	(void)what;
	while ((o = w->out_head) != NULL) {
		ssize_t n = send(fd, &o->reply, sizeof(o->reply),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == ENOBUFS || errno == EINTR)) {
			event_add(w->write_ev, NULL);
			return;
		}
		if (n != (ssize_t)sizeof(o->reply))
			log_warn("send to worker: %s",
				 n < 0 ? strerror(errno) : "short send");
		w->out_head = o->next;
		if (w->out_head == NULL)
			w->out_tail = NULL;
		w->out_count--;
		free(o);
	}
}

static void auth_worker_read(evutil_socket_t fd, short what, void *arg)
{
	struct auth_worker *w = arg;
	struct auth_server *s = w->server;
	size_t index = (size_t)(w - s->workers);
	struct auth_request reqs[AUTH_RECV_BATCH];
	size_t lens[AUTH_RECV_BATCH];

	(void)what;
	for (int got = 0; got < AUTH_SERVER_MAX_READS && w->open;) {
		int n = auth_recv_batch(fd, reqs, sizeof(reqs[0]),
					AUTH_RECV_BATCH, lens);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (n < 0)
				log_warn("recv from worker %zu: %s", index,
					 strerror(errno));
			auth_worker_close(w);
			break;
		}
		for (int i = 0; i < n; i++) {
			auth_worker_request(s, index, &reqs[i], lens[i]);
			OPENSSL_cleanse(&reqs[i], sizeof(reqs[i]));
		}
		got += n;
		/* Fewer than asked: the socket is empty, and reading on
		 * would only return EAGAIN. */
		if (n < AUTH_RECV_BATCH)
			break;
	}
}

/* One datagram from a worker; len is its real size. */
static void auth_worker_request(struct auth_server *s, size_t index,
				struct auth_request *req, size_t len)
{
	struct auth_reply reply;

	if (!auth_request_valid(req, len)) {
		log_warn("worker %zu sent an invalid request (%zu bytes)",
			 index, len);
		if (len >= offsetof(struct auth_request, type)) {
			auth_reply_init(&reply, req->id, AUTH_RESULT_TEMPFAIL,
					AUTH_CAUSE_BAD_REQUEST);
			auth_worker_send(s, index, &reply);
		}
	} else if (req->type == AUTH_REQUEST_CANCEL) {
		auth_server_cancel(s, index, req->id);
	} else {
		auth_server_request(s, index, req);
	}
}

/*
 * What is answered without a check: RCPT lookups, a missing users file,
 * an APOP without a challenge. Otherwise *e_r is the user from the file
 * (NULL for an unknown user, and always with userdb = pgsql, where the
 * user is looked up when the request's turn comes).
 */
static bool auth_server_answer_at_once(struct auth_server *s, size_t worker,
				       const struct auth_request *req,
				       const struct passwd_entry **e_r)
{
	const struct passwd_entry *e = NULL;
	struct auth_reply reply;

	*e_r = NULL;
	if (s->pg != NULL && req->type == AUTH_REQUEST_LOOKUP) {
		auth_server_lookup_pgsql(s, worker, req);
		return true;
	}
	if (s->pg == NULL && s->db == NULL) {
		auth_reply_init(&reply, req->id, AUTH_RESULT_TEMPFAIL,
				AUTH_CAUSE_INTERNAL);
		auth_worker_send(s, worker, &reply);
		return true;
	}
	/* A name that is not canonical cannot be in the database; it is
	 * treated as unknown, with the same cost (INV-A1). */
	if (s->pg == NULL && username_is_canonical(req->user))
		e = passwd_db_lookup(s->db, req->user);
	if (req->type == AUTH_REQUEST_LOOKUP) {
		auth_server_lookup(s, worker, req);
		return true;
	}
	if (req->type == AUTH_REQUEST_APOP && req->challenge[0] == '\0') {
		auth_reply_init(&reply, req->id, AUTH_RESULT_TEMPFAIL,
				AUTH_CAUSE_BAD_REQUEST);
		auth_worker_send(s, worker, &reply);
		return true;
	}
	*e_r = e;
	return false;
}

static void auth_server_request(struct auth_server *s, size_t worker,
				struct auth_request *req)
{
	const struct passwd_entry *e;
	struct auth_job *job;
	struct auth_peer *p;
	char key[AUTH_PEER_KEY_SIZE];
	uint64_t now;
	size_t bucket;

	if (auth_server_answer_at_once(s, worker, req, &e))
		return;
	auth_peer_key(req->peer, key, sizeof(key));
	now = auth_now_ms();
	if (s->job_count >= AUTH_MAX_JOBS) {
		auth_server_refuse(s, worker, req->id, AUTH_CAUSE_BUSY);
		return;
	}
	p = auth_peer_find(s, key, now);
	/* The reserve is for peers that have not failed lately. */
	if (p->failures > 0 &&
	    s->job_count >= AUTH_MAX_JOBS - AUTH_RESERVED_JOBS) {
		auth_server_refuse(s, worker, req->id, AUTH_CAUSE_BUSY);
		return;
	}
	/* The overflow peer is many peers: only the caps above bound it. */
	if (p->jobs >= (p->failures > 0 ? AUTH_PEER_MAX_JOBS
					: AUTH_PEER_MAX_JOBS_CLEAN) &&
	    p != &s->peers[AUTH_TARPIT_PEERS]) {
		auth_server_refuse(s, worker, req->id, AUTH_CAUSE_PEER_BUSY);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->server = s;
	job->worker = worker;
	job->req = *req;
	job->peer = p;
	job->arrival_ms = now;
	job->state = AUTH_JOB_WAITING;
	if (e != NULL) {
		job->stored = xstrdup(e->password);
		snprintf(job->extra, sizeof(job->extra), "%s",
			 e->extra != NULL ? e->extra : "");
	} else if (s->pg == NULL &&
		   (e = auth_server_decoy(s, req->user)) != NULL) {
		job->stored = xstrdup(e->password);
		job->decoy = true;
	}
	bucket = auth_job_bucket(worker, req->id);
	job->hash_next = s->jobs[bucket];
	s->jobs[bucket] = job;
	s->job_count++;
	p->jobs++;
	/* Every request queues behind its peer; the queue decides when it
	 * is checked (auth_peer_pump()). */
	job->wait_prev = p->wait_tail;
	if (p->wait_tail != NULL)
		p->wait_tail->wait_next = job;
	else
		p->wait_head = job;
	p->wait_tail = job;
	auth_peer_pump(s, p);
}

static bool auth_alias_is_user(const char *addr, void *ctx)
{
	const struct auth_server *s = ctx;

	return username_is_canonical(addr) &&
	       passwd_db_lookup(s->db, addr) != NULL;
}

/*
 * RCPT: the address expanded through the aliases to its final targets.
 * postmaster@ of every local domain goes to postmaster_address, or
 * until that is set to the first user of the users file (postd -t
 * warns), so that it is never lost; abuse@ to abuse_address if set.
 */
static void auth_server_lookup(struct auth_server *s, size_t worker,
			       const struct auth_request *req)
{
	auth_server_expand(s, worker, req->id, req->user, auth_alias_is_user, s,
			   NULL);
}

/*
 * The one context alias_env gives both callbacks: the domains are the
 * server's, the users the backend's (whose is_user has a context of its
 * own, a struct auth_lookup with pgsql).
 */
struct auth_expand_ctx {
	const struct auth_server *server;
	bool (*is_user)(const char *addr, void *ctx);
	void *is_user_ctx;
};

static bool auth_expand_is_local_domain(const char *domain, void *ctx)
{
	const struct auth_expand_ctx *x = ctx;

	return config_is_local_domain(x->server->cfg, domain);
}

static bool auth_expand_is_user(const char *addr, void *ctx)
{
	const struct auth_expand_ctx *x = ctx;

	return x->is_user(addr, x->is_user_ctx);
}

/*
 * The expansion behind a LOOKUP, whichever backend knows the users:
 * is_user(addr, ctx) answers "is addr a user?" at once. extra: the
 * user's extra fields when the backend already has them (pgsql), NULL to
 * read them from the users file.
 */
static void auth_server_expand(struct auth_server *s, size_t worker,
			       uint32_t id, const char *user,
			       bool (*is_user)(const char *addr, void *ctx),
			       void *is_user_ctx, const char *extra)
{
	struct alias_result *r = &s->alias_result;
	struct auth_reply reply;
	struct auth_expand_ctx x = {
	    .server = s, .is_user = is_user, .is_user_ctx = is_user_ctx};
	struct alias_env env = {
	    .is_local_domain = auth_expand_is_local_domain,
	    .is_user = auth_expand_is_user,
	    .ctx = &x,
	    .delimiter = s->cfg->recipient_delimiter,
	    .max_expansions = s->cfg->alias_max_expansions,
	    .postmaster = s->cfg->postmaster_address,
	    .abuse = s->cfg->abuse_address,
	};
	enum alias_status st;
	const struct passwd_entry *e;

	if (env.postmaster == NULL && s->db != NULL &&
	    passwd_db_count(s->db) > 0)
		env.postmaster = passwd_db_entry(s->db, 0)->name;
	st = username_is_canonical(user)
		 ? alias_expand(s->aliases, &env, user, r)
		 : ALIAS_UNKNOWN;
	auth_reply_init(&reply, id, AUTH_RESULT_OK, AUTH_CAUSE_NONE);
	for (size_t i = 0; st == ALIAS_OK && i < r->count; i++) {
		if (auth_reply_add_target(&reply, r->targets[i].addr,
					  r->targets[i].remote) < 0)
			st = ALIAS_TOO_MANY;
	}
	if (st != ALIAS_OK) {
		auth_reply_init(&reply, id, AUTH_RESULT_FAIL,
				st == ALIAS_LOOP ? AUTH_CAUSE_ALIAS_LOOP
				: st == ALIAS_TOO_MANY
				    ? AUTH_CAUSE_ALIAS_TOO_MANY
				    : AUTH_CAUSE_UNKNOWN_USER);
		if (st == ALIAS_LOOP)
			log_warn("alias loop: <%s> reaches <%s> twice", user,
				 r->loop);
		auth_worker_send(s, worker, &reply);
		return;
	}
	if (r->unknown_count > 0)
		log_warn("alias <%s>: %zu target(s) are nobody, skipped "
			 "(first: <%s>)",
			 user, r->unknown_count, r->unknown);
	/* The first local target names the user, as a plain lookup did. */
	for (size_t i = 0; i < r->count; i++) {
		if (r->targets[i].remote)
			continue;
		e = s->db != NULL ? passwd_db_lookup(s->db, r->targets[i].addr)
				  : NULL;
		snprintf(reply.user, sizeof(reply.user), "%s",
			 r->targets[i].addr);
		snprintf(reply.extra, sizeof(reply.extra), "%s",
			 e != NULL && e->extra != NULL ? e->extra
			 : extra != NULL &&
				 strcmp(r->targets[i].addr, user) == 0
			     ? extra
			     : "");
		break;
	}
	auth_worker_send(s, worker, &reply);
}

/* Answers at once, before any check, the same for every password: the
 * auth process has no room for this request. */
static void auth_server_refuse(struct auth_server *s, size_t worker,
			       uint32_t id, enum auth_cause cause)
{
	struct auth_reply reply;

	auth_reply_init(&reply, id, AUTH_RESULT_TEMPFAIL, cause);
	auth_worker_send(s, worker, &reply);
}

/* The job's turn has come: with userdb = pgsql it is looked up first
 * (after its peer's penalty, so a penalised peer cannot make queries
 * faster than it may guess), then verified. */
static void auth_job_start(struct auth_server *s, struct auth_job *job)
{
	job->state = AUTH_JOB_CHECKING;
	job->peer->checking++;
	if (s->pg != NULL && !job->looked_up) {
		if (!username_is_canonical(job->req.user)) {
			/* Cannot be in the database: unknown, at the same
			 * cost (INV-A1). */
			job->looked_up = true;
			auth_job_verify(s, job);
			return;
		}
		s->starting = job;
		userdb_pgsql_lookup(s->pg, job->req.user, auth_job_found, job);
		s->starting = NULL;
		/* job may be gone (answered from the cache, finished and
		 * released): not touched again. */
		return;
	}
	auth_job_verify(s, job);
}

/*
 * The database answered for a job. Unknown: no stored hash, so the
 * check verifies the dummy hash (the scheme new passwords get) and fails
 * (INV-A1). Unavailable: a temporary failure, logged with its cause by
 * the worker; it does not count against the peer.
 */
static void auth_job_found(enum userdb_status status,
			   const struct userdb_user *user, void *arg)
{
	struct auth_job *job = arg;
	struct auth_server *s = job->server;
	struct auth_peer *p = job->peer;
	bool sync = s->starting == job;

	if (status == USERDB_ABORTED)
		return; /* the server is going away and frees the job */
	job->looked_up = true;
	if (status == USERDB_UNAVAILABLE || job->cancelled) {
		OPENSSL_cleanse(job->req.secret, sizeof(job->req.secret));
		job->result = AUTH_RESULT_TEMPFAIL;
		job->cause = AUTH_CAUSE_USERDB_UNAVAILABLE;
		auth_job_finish(s, job);
	} else {
		if (status == USERDB_FOUND) {
			job->stored = xstrdup(user->password);
			snprintf(job->extra, sizeof(job->extra), "%s",
				 user->extra);
		}
		auth_job_verify(s, job);
	}
	/* Answered later than auth_peer_pump() ran: resume its queue. */
	if (!sync)
		auth_peer_pump(s, p);
}

/* userdb = pgsql, SMTP RCPT: does the user exist? No tarpit, as with the
 * file; the directory bounds how many lookups wait. */
/*
 * userdb = pgsql: a LOOKUP asks the database whether the typed address
 * is a user and, for a subaddress, whether its base is; then it is
 * expanded like with the users file. Alias targets come from the
 * admin's aliases table and are trusted to be users (postd -t cannot
 * check them against a database; doc/internals/addressing.md).
 */
struct auth_lookup {
	struct auth_server *server;
	size_t worker;
	uint32_t id;
	bool asking_base; /* the second question is out */
	bool typed_found, base_found;
	char user[USERNAME_BUF_SIZE];
	char base[USERNAME_BUF_SIZE]; /* "" when there is no subaddress */
	char extra[sizeof(((struct auth_reply *)0)->extra)];
};

/* "alice+news@example.org" -> "alice@example.org"; "" when none. */
static void auth_lookup_base(const struct auth_server *s, const char *user,
			     char *base, size_t size)
{
	const char *at = strrchr(user, '@');
	const char *cut;

	base[0] = '\0';
	if (s->cfg->recipient_delimiter == '\0' || at == NULL)
		return;
	cut = memchr(user, s->cfg->recipient_delimiter, (size_t)(at - user));
	if (cut != NULL && cut > user)
		snprintf(base, size, "%.*s%s", (int)(cut - user), user, at);
}

static bool auth_lookup_is_user(const char *addr, void *ctx)
{
	const struct auth_lookup *l = ctx;

	if (strcmp(addr, l->user) == 0)
		return l->typed_found;
	if (l->base[0] != '\0' && strcmp(addr, l->base) == 0)
		return l->base_found;
	/* A target with a subaddress (one an alias passed on, info+x@ ->
	 * bob+x@, or the admin's own) is no user: the expansion goes on to
	 * its base, as it does with the users file, rather than making a
	 * Maildir for "bob+x". */
	if (auth_lookup_has_subaddress(l->server, addr))
		return false;
	return username_is_canonical(addr);
}

static bool auth_lookup_has_subaddress(const struct auth_server *s,
				       const char *addr)
{
	char base[USERNAME_BUF_SIZE];

	auth_lookup_base(s, addr, base, sizeof(base));
	return base[0] != '\0';
}

static void auth_server_lookup_pgsql(struct auth_server *s, size_t worker,
				     const struct auth_request *req)
{
	struct auth_lookup *l = xcalloc(1, sizeof(*l));

	l->server = s;
	l->worker = worker;
	l->id = req->id;
	snprintf(l->user, sizeof(l->user), "%s", req->user);
	/* A name that is not canonical cannot be in the database. */
	if (!username_is_canonical(req->user))
		auth_lookup_found(USERDB_UNKNOWN, NULL, l);
	else
		userdb_pgsql_lookup(s->pg, req->user, auth_lookup_found, l);
}

/* May run inside userdb_pgsql_lookup() (a cache hit): touches l only
 * before it asks again, and frees it only when it answers. */
static void auth_lookup_found(enum userdb_status status,
			      const struct userdb_user *user, void *arg)
{
	struct auth_lookup *l = arg;
	struct auth_reply reply;

	if (status == USERDB_ABORTED) {
		free(l);
		return;
	}
	if (status != USERDB_FOUND && status != USERDB_UNKNOWN) {
		auth_reply_init(&reply, l->id, AUTH_RESULT_TEMPFAIL,
				AUTH_CAUSE_USERDB_UNAVAILABLE);
		auth_worker_send(l->server, l->worker, &reply);
		free(l);
		return;
	}
	if (!l->asking_base) {
		l->typed_found = status == USERDB_FOUND;
		if (l->typed_found)
			snprintf(l->extra, sizeof(l->extra), "%s", user->extra);
		auth_lookup_base(l->server, l->user, l->base, sizeof(l->base));
		if (!l->typed_found && l->base[0] != '\0') {
			l->asking_base = true;
			userdb_pgsql_lookup(l->server->pg, l->base,
					    auth_lookup_found, l);
			return;
		}
	} else {
		l->base_found = status == USERDB_FOUND;
	}
	auth_server_expand(l->server, l->worker, l->id, l->user,
			   auth_lookup_is_user, l, l->extra);
	free(l);
}

/* Verifies the job: digests inline, slow schemes in the pool. */
static void auth_job_verify(struct auth_server *s, struct auth_job *job)
{
	/* A digest scheme ({PLAIN}, {SSHA512}, ...) costs microseconds:
	 * handing it to a thread would cost more than verifying it here. */
	if (auth_job_is_fast(job)) {
		auth_job_run(job);
		auth_job_finish(s, job);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (s->queue_tail != NULL)
		s->queue_tail->next = job;
	else
		s->queue_head = job;
	s->queue_tail = job;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/*
 * The worker no longer wants the answer (its session ended). A request
 * not yet checked, or whose failure is being held back, goes at once; one
 * being verified is marked and dropped when its result comes back. The
 * peer's failures stay (a closed connection does not end a penalty).
 */
static void auth_server_cancel(struct auth_server *s, size_t worker,
			       uint32_t id)
{
	struct auth_job *job = s->jobs[auth_job_bucket(worker, id)];

	while (job != NULL && (job->worker != worker || job->req.id != id))
		job = job->hash_next;
	if (job == NULL)
		return; /* answered already: the reply crossed the cancel */
	switch (job->state) {
	case AUTH_JOB_WAITING:
		auth_peer_unwait(job->peer, job);
		auth_job_release(s, job);
		break;
	case AUTH_JOB_HELD:
		auth_job_release(s, job);
		break;
	case AUTH_JOB_CHECKING:
		job->cancelled = true;
		break;
	}
}

/* True for schemes that are one digest, not a deliberately slow hash. */
static bool auth_job_is_fast(const struct auth_job *job)
{
	static const char *const slow[] = {
	    "CRYPT",	 "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT",
	    "BLF-CRYPT", "ARGON2I",   "ARGON2ID"};
	const char *scheme = NULL, *error;
	bool weak;

	if (job->stored == NULL ||
	    password_check_stored(job->stored, &weak, &scheme, &error) < 0 ||
	    scheme == NULL)
		return false;
	for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++) {
		if (strcmp(scheme, slow[i]) == 0)
			return false;
	}
	return true;
}

/*
 * The user whose hash an unknown name is verified against (INV-A1). A
 * fixed dummy hash would answer in the dummy scheme's time, so a known
 * user with a faster or slower scheme (SSHA, SHA512-CRYPT) would stand
 * out. A real user's hash costs what some known user costs, and the same
 * name always gets the same decoy, so repeating a probe shows no spread
 * either. The keyed hash keeps the mapping secret. NULL when the users
 * file is empty: then password_dummy_hash() is all there is.
 */
static const struct passwd_entry *auth_server_decoy(struct auth_server *s,
						    const char *name)
{
	unsigned char h[crypto_shorthash_BYTES];
	size_t count = passwd_db_count(s->db);
	uint64_t v;

	if (count == 0)
		return NULL;
	crypto_shorthash(h, (const unsigned char *)name, strlen(name),
			 s->decoy_key);
	memcpy(&v, h, sizeof(v));
	return passwd_db_entry(s->db, (size_t)(v % count));
}

static void auth_job_free(struct auth_job *job)
{
	if (job->stored != NULL) {
		OPENSSL_cleanse(job->stored, strlen(job->stored));
		free(job->stored);
	}
	if (job->timer != NULL)
		event_free(job->timer);
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
}

static void *auth_pool_thread(void *arg)
{
	struct auth_server *s = arg;
	struct auth_job *job;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (!s->stopping && s->queue_head == NULL)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->stopping) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		job = s->queue_head;
		s->queue_head = job->next;
		if (s->queue_head == NULL)
			s->queue_tail = NULL;
		job->next = NULL;
		pthread_mutex_unlock(&s->lock);

		auth_job_run(job);

		pthread_mutex_lock(&s->lock);
		if (s->done_tail != NULL)
			s->done_tail->next = job;
		else
			s->done_head = job;
		s->done_tail = job;
		pthread_mutex_unlock(&s->lock);
		/* One byte wakes the loop; if the pipe is full a wake-up is
		 * already pending and the byte is not needed. */
		if (write(s->wake_fds[1], "", 1) < 0 && errno != EAGAIN)
			log_error("auth pool wake-up: %s", strerror(errno));
	}
}

/* APOP: the digest is MD5(challenge || password) in lowercase hex
 * (RFC 1939 section 7), compared in constant time. */
static void auth_job_apop(struct auth_job *job, const char *plain)
{
	static const char hexdig[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	char expected[AUTH_APOP_HEX_LEN + 1], given[AUTH_APOP_HEX_LEN + 1];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, job->req.challenge,
			      strlen(job->req.challenge)) == 1 &&
	     EVP_DigestUpdate(ctx, plain, strlen(plain)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		job->result = AUTH_RESULT_TEMPFAIL;
		job->cause = AUTH_CAUSE_INTERNAL;
		job->error = "MD5 failed";
		return;
	}
	for (unsigned i = 0; i < 16; i++) {
		expected[2 * i] = hexdig[md[i] >> 4];
		expected[2 * i + 1] = hexdig[md[i] & 0xf];
	}
	expected[AUTH_APOP_HEX_LEN] = '\0';
	memset(given, 0, sizeof(given));
	for (size_t i = 0; i < AUTH_APOP_HEX_LEN && job->req.secret[i] != '\0';
	     i++) {
		char c = job->req.secret[i];

		given[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
	}
	ok = strlen(job->req.secret) == AUTH_APOP_HEX_LEN &&
	     CRYPTO_memcmp(expected, given, AUTH_APOP_HEX_LEN) == 0;
	job->result = ok ? AUTH_RESULT_OK : AUTH_RESULT_FAIL;
	job->cause = ok ? AUTH_CAUSE_NONE : AUTH_CAUSE_WRONG_PASSWORD;
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(expected, sizeof(expected));
	OPENSSL_cleanse(given, sizeof(given));
}

/* Runs in a pool thread: the slow part of a request. */
static void auth_job_run(struct auth_job *job)
{
	bool known = job->stored != NULL && !job->decoy;

	if (job->req.type == AUTH_REQUEST_PASSWORD) {
		/* An unknown user costs a verification too, against its
		 * decoy's hash (INV-A1); whatever that answers, the result
		 * below is a failure. */
		const char *stored =
		    job->stored != NULL ? job->stored : password_dummy_hash();
		int r = password_verify(stored, job->req.secret,
					strlen(job->req.secret), &job->error);

		if (!known) {
			job->result = AUTH_RESULT_FAIL;
			job->cause = AUTH_CAUSE_UNKNOWN_USER;
		} else if (r > 0) {
			job->result = AUTH_RESULT_OK;
			job->cause = AUTH_CAUSE_NONE;
		} else if (r == 0) {
			job->result = AUTH_RESULT_FAIL;
			job->cause = AUTH_CAUSE_WRONG_PASSWORD;
		} else {
			job->result = AUTH_RESULT_TEMPFAIL;
			job->cause = AUTH_CAUSE_BAD_HASH;
		}
	} else {
		const char *plain = job->stored != NULL
					? password_plaintext(job->stored)
					: NULL;

		auth_job_apop(job, plain != NULL ? plain : "");
		if (!known) {
			job->result = AUTH_RESULT_FAIL;
			job->cause = AUTH_CAUSE_UNKNOWN_USER;
		} else if (plain == NULL) {
			job->result = AUTH_RESULT_FAIL;
			job->cause = AUTH_CAUSE_APOP_UNAVAILABLE;
		}
	}
	OPENSSL_cleanse(job->req.secret, sizeof(job->req.secret));
	if (job->stored != NULL) {
		OPENSSL_cleanse(job->stored, strlen(job->stored));
		XFREE(job->stored);
	}
}

static size_t auth_job_bucket(size_t worker, uint32_t id)
{
	return (id ^ (uint32_t)worker * 2654435761u) % AUTH_JOB_BUCKETS;
}

/*
 * The name a peer's failures are counted under: an IPv4 address as it
 * is, an IPv6 address by its /64, the smallest block a site is given, so
 * that hopping through the addresses of one's own network does not
 * escape the penalty.
 */
static void auth_peer_key(const char *addr, char *key, size_t size)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, addr, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(&a6.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL) {
			snprintf(key, size, "%s/64", text);
			return;
		}
	}
	snprintf(key, size, "%s", addr[0] != '\0' ? addr : "unknown");
}

size_t auth_peer_slot(const unsigned char *secret, const char *key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, (const unsigned char *)key, strlen(key), secret);
	for (size_t i = 0; i < sizeof(h); i++)
		v = v << 8 | h[i];
	return (size_t)(v % AUTH_TARPIT_PEERS);
}

/* The peer is seen now; its failures are forgotten after a quiet while. */
static struct auth_peer *auth_peer_seen(struct auth_peer *p, uint64_t now)
{
	if (now - p->failed_ms > AUTH_TARPIT_FORGET_MS)
		p->failures = 0;
	p->seen_ms = now;
	return p;
}

/*
 * Finds a peer, or takes over the stalest idle slot near where it
 * belongs (by a keyed hash: nobody can aim at another's slots). A slot
 * with requests alive is never taken (their count would be lost); if
 * every candidate is busy the request goes to the shared overflow peer
 * rather than being refused. Failures older than AUTH_TARPIT_FORGET_MS
 * are forgotten.
 */
static struct auth_peer *auth_peer_find(struct auth_server *s, const char *key,
					uint64_t now)
{
	struct auth_peer *p, *victim = NULL;
	size_t start = auth_peer_slot(s->peer_key, key);

	for (size_t i = 0; i < AUTH_PEER_PROBES; i++) {
		p = &s->peers[(start + i) % AUTH_TARPIT_PEERS];
		if (p->key[0] != '\0' && strcmp(p->key, key) == 0)
			return auth_peer_seen(p, now);
		if (p->jobs == 0 &&
		    (victim == NULL || p->key[0] == '\0' ||
		     (victim->key[0] != '\0' && p->seen_ms < victim->seen_ms)))
			victim = p;
	}
	if (victim == NULL)
		return auth_peer_seen(&s->peers[AUTH_TARPIT_PEERS], now);
	p = victim;
	snprintf(p->key, sizeof(p->key), "%s", key);
	p->failures = 0;
	p->failed_ms = p->checked_ms = 0;
	p->seen_ms = now;
	return p;
}

/*
 * How long a peer's next request waits before it is checked: nothing
 * without recent failures, then the base delay doubled for every
 * failure after the first, capped (INV-A1). Waiting before the check,
 * for right and wrong passwords alike, is what slows guessing: a client
 * that gives up early learns nothing from when an answer would come.
 */
static uint64_t auth_peer_penalty(const struct auth_server *s,
				  const struct auth_peer *p)
{
	uint64_t delay = s->cfg->auth_failure_delay_ms;

	if (p->failures == 0 || delay == 0)
		return 0;
	for (uint32_t i = 1;
	     i < p->failures && delay < AUTH_TARPIT_MAX_DELAY_MS; i++)
		delay *= 2;
	return delay < AUTH_TARPIT_MAX_DELAY_MS ? delay
						: AUTH_TARPIT_MAX_DELAY_MS;
}

/* Counts a failed check; logged whenever it makes the peer wait. */
static void auth_peer_failed(struct auth_server *s, struct auth_peer *p)
{
	uint64_t penalty;

	if (p->failures < UINT32_MAX)
		p->failures++;
	p->failed_ms = auth_now_ms();
	auth_peer_trim(s, p);
	penalty = auth_peer_penalty(s, p);
	if (penalty > 0) {
		char esc[sizeof(p->key) * 4];

		log_info("tarpit peer=%s failures=%u delay=%ums",
			 log_escape(esc, sizeof(esc), p->key, strlen(p->key)),
			 p->failures, (unsigned)penalty);
	}
}

/*
 * A peer that has just failed keeps no more than AUTH_PEER_MAX_JOBS
 * requests: what it queued while it looked clean is refused unchecked,
 * newest first, so that it cannot sit on that larger share while its
 * penalty makes each request wait. The overflow entry is many peers and
 * is bounded by the global caps only.
 */
static void auth_peer_trim(struct auth_server *s, struct auth_peer *p)
{
	if (p == &s->peers[AUTH_TARPIT_PEERS])
		return;
	while (p->jobs > AUTH_PEER_MAX_JOBS && p->wait_tail != NULL) {
		struct auth_job *job = p->wait_tail;
		size_t worker = job->worker;
		uint32_t id = job->req.id;

		auth_peer_unwait(p, job);
		auth_job_release(s, job);
		auth_server_refuse(s, worker, id, AUTH_CAUSE_PEER_BUSY);
	}
}

/*
 * Starts the checks a peer's queue may have now. Without failures up to
 * AUTH_PEER_MAX_CHECKS run at once. With failures, one at a time, each
 * starting a penalty after both its own arrival and the previous check,
 * so that however many connections a peer opens it gets one guess per
 * penalty; the peer's timer resumes the queue.
 */
static void auth_peer_pump(struct auth_server *s, struct auth_peer *p)
{
	struct auth_job *job;

	while ((job = p->wait_head) != NULL) {
		uint64_t penalty = auth_peer_penalty(s, p), now = auth_now_ms();

		if (penalty == 0 && p->checking >= AUTH_PEER_MAX_CHECKS)
			return; /* resumed when a check finishes */
		if (penalty > 0) {
			uint64_t from = job->arrival_ms > p->checked_ms
					    ? job->arrival_ms
					    : p->checked_ms;

			if (p->checking > 0)
				return;
			if (from + penalty > now) {
				auth_peer_arm(s, p, from + penalty - now);
				return;
			}
		}
		auth_peer_unwait(p, job);
		job->reply.delay_ms = (uint32_t)(now - job->arrival_ms);
		p->checked_ms = now;
		auth_job_start(s, job);
	}
}

static void auth_peer_arm(struct auth_server *s, struct auth_peer *p,
			  uint64_t wait_ms)
{
	struct timeval tv;

	if (p->timer == NULL) {
		p->timer = evtimer_new(s->base, auth_peer_timer, p);
		if (p->timer == NULL)
			fatal("cannot create a timer");
	}
	tv.tv_sec = (time_t)(wait_ms / 1000);
	tv.tv_usec = (suseconds_t)(wait_ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

static void auth_peer_timer(evutil_socket_t fd, short what, void *arg)
{
	struct auth_peer *p = arg;

	(void)fd;
	(void)what;
	auth_peer_pump(p->server, p);
}

static void auth_peer_unwait(struct auth_peer *p, struct auth_job *job)
{
	if (job->wait_prev != NULL)
		job->wait_prev->wait_next = job->wait_next;
	else
		p->wait_head = job->wait_next;
	if (job->wait_next != NULL)
		job->wait_next->wait_prev = job->wait_prev;
	else
		p->wait_tail = job->wait_prev;
	job->wait_next = job->wait_prev = NULL;
}

/* Forgets a request that no pool thread holds. */
static void auth_job_release(struct auth_server *s, struct auth_job *job)
{
	struct auth_job **pp =
	    &s->jobs[auth_job_bucket(job->worker, job->req.id)];

	while (*pp != NULL && *pp != job)
		pp = &(*pp)->hash_next;
	if (*pp != NULL)
		*pp = job->hash_next;
	s->job_count--;
	job->peer->jobs--;
	auth_job_free(job);
}

/*
 * A check is over: count a failure for the peer, then answer. A failure
 * is held back by the base delay plus jitter up to half of it, which
 * hides how long the verification took; a success goes at once (a
 * penalised peer did its waiting before the check). A cancelled request
 * still counts, but nobody is answered.
 */
static void auth_job_finish(struct auth_server *s, struct auth_job *job)
{
	struct auth_reply *reply = &job->reply;
	struct auth_peer *p = job->peer;
	uint32_t waited = reply->delay_ms;
	uint64_t hold = 0;
	char user[USERNAME_BUF_SIZE * 4];
	struct timeval tv;

	p->checking--;
	auth_reply_init(reply, job->req.id, job->result, job->cause);
	if (job->cause == AUTH_CAUSE_BAD_HASH ||
	    job->cause == AUTH_CAUSE_INTERNAL)
		log_error("user %s: %s",
			  log_escape(user, sizeof(user), job->req.user,
				     strlen(job->req.user)),
			  job->error != NULL ? job->error : "internal error");
	if (job->result == AUTH_RESULT_OK) {
		/* A success does not forgive the peer: otherwise an attacker
		 * with an account of its own could log into it between
		 * guesses and never be slowed down. Failures are forgotten
		 * only after a quiet while. */
		snprintf(reply->user, sizeof(reply->user), "%s", job->req.user);
		snprintf(reply->extra, sizeof(reply->extra), "%s", job->extra);
	} else if (job->result == AUTH_RESULT_FAIL) {
		auth_peer_failed(s, p);
		hold = s->cfg->auth_failure_delay_ms;
		if (hold > AUTH_TARPIT_MAX_DELAY_MS)
			hold = AUTH_TARPIT_MAX_DELAY_MS;
		if (hold >= 2)
			hold += randombytes_uniform((uint32_t)hold / 2 + 1);
	}
	reply->peer_failures = p->failures;
	reply->delay_ms = waited + (uint32_t)hold;
	if (job->cancelled || hold == 0) {
		if (!job->cancelled)
			auth_worker_send(s, job->worker, reply);
		auth_job_release(s, job);
		return;
	}
	job->state = AUTH_JOB_HELD;
	job->timer = evtimer_new(s->base, auth_job_held_timer, job);
	if (job->timer == NULL)
		fatal("cannot create a timer");
	tv.tv_sec = (time_t)(hold / 1000);
	tv.tv_usec = (suseconds_t)(hold % 1000) * 1000;
	evtimer_add(job->timer, &tv);
}

static void auth_job_held_timer(evutil_socket_t fd, short what, void *arg)
{
	struct auth_job *job = arg;

	(void)fd;
	(void)what;
	auth_worker_send(job->server, job->worker, &job->reply);
	auth_job_release(job->server, job);
}

static void auth_server_wake(evutil_socket_t fd, short what, void *arg)
{
	struct auth_server *s = arg;
	struct auth_job *job, *next;
	char buf[256];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&s->lock);
	job = s->done_head;
	s->done_head = s->done_tail = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; job != NULL; job = next) {
		struct auth_peer *p = job->peer;

		next = job->next;
		job->next = NULL;
		auth_job_finish(s, job);
		/* The peer may start its next check now. */
		auth_peer_pump(s, p);
	}
}

static void auth_server_start_pool(struct auth_server *s)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	sigset_t all, old;

	s->thread_count = ncpu < 2 ? 2 : (size_t)ncpu;
	if (s->thread_count > AUTH_MAX_THREADS)
		s->thread_count = AUTH_MAX_THREADS;
	s->threads = xcalloc(s->thread_count, sizeof(*s->threads));
	/* Signals belong to the loop thread (libevent's evsignal). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < s->thread_count; i++) {
		int err =
		    pthread_create(&s->threads[i], NULL, auth_pool_thread, s);

		if (err != 0)
			fatal("pthread_create: %s", strerror(err));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void auth_server_stop_pool(struct auth_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < s->thread_count; i++)
		pthread_join(s->threads[i], NULL);
	/* The jobs themselves are in s->jobs, freed with the server. */
	s->queue_head = s->queue_tail = s->done_head = s->done_tail = NULL;
	XFREE(s->threads);
}

static void auth_server_free(struct auth_server *s)
{
	/* First: lookups in flight hold jobs that are freed below. */
	userdb_pgsql_free(&s->pg);
	if (s->alias_timer != NULL)
		event_free(s->alias_timer);
	if (s->alias_retry != NULL)
		event_free(s->alias_retry);
	alias_table_free(&s->aliases_loading);
	if (auth_server_alias_sink == &auth_table_sink)
		auth_server_alias_sink = NULL;
	for (size_t b = 0; b < AUTH_JOB_BUCKETS; b++) {
		while (s->jobs[b] != NULL)
			auth_job_release(s, s->jobs[b]);
	}
	for (size_t i = 0; i < s->worker_count; i++) {
		if (s->workers[i].open) {
			/* Do not count this as the last worker leaving. */
			s->workers_open++;
			auth_worker_close(&s->workers[i]);
		}
	}
	free(s->workers);
	if (s->wake_ev != NULL)
		event_free(s->wake_ev);
	if (s->sighup_ev != NULL)
		event_free(s->sighup_ev);
	if (s->sigterm_ev != NULL)
		event_free(s->sigterm_ev);
	if (s->sigint_ev != NULL)
		event_free(s->sigint_ev);
	close(s->wake_fds[0]);
	close(s->wake_fds[1]);
	passwd_db_free(&s->db);
	alias_table_free(&s->aliases);
	sodium_memzero(s->decoy_key, sizeof(s->decoy_key));
	sodium_memzero(s->peer_key, sizeof(s->peer_key));
	for (size_t i = 0; i <= AUTH_TARPIT_PEERS; i++) {
		if (s->peers[i].timer != NULL)
			event_free(s->peers[i].timer);
	}
	free(s->peers);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	event_base_free(s->base);
	free(s);
}

/* userdb = pgsql: connects (without waiting) and loads the aliases,
 * again every userdb_cache_ttl. */
/*
 * userdb = pgsql: the aliases table replaces aliases_file. It is read
 * whole into a new table, swapped in when the read succeeded; a failed
 * read keeps the old table and is tried again in a few seconds (at
 * start the pool may still be connecting).
 */
static void auth_alias_table_reset(void *ctx)
{
	struct auth_server *s = ctx;

	alias_table_free(&s->aliases_loading);
	s->aliases_loading = alias_table_new();
}

static void auth_alias_table_add(void *ctx, const char *key,
				 const char *targets)
{
	struct auth_server *s = ctx;
	char *error = NULL;

	if (s->aliases_loading == NULL)
		return;
	if (alias_table_add(s->aliases_loading, key, targets, &error) < 0) {
		log_warn("aliases table: row <%s> skipped: %s", key, error);
		free(error);
	}
}

static void auth_alias_table_done(void *ctx, bool ok)
{
	struct auth_server *s = ctx;
	struct timeval retry = {.tv_sec = AUTH_ALIAS_RETRY_SECONDS};

	if (ok && s->aliases_loading != NULL) {
		if (s->aliases == NULL ||
		    alias_table_count(s->aliases) !=
			alias_table_count(s->aliases_loading))
			log_info("aliases table: %zu aliases",
				 alias_table_count(s->aliases_loading));
		alias_table_free(&s->aliases);
		s->aliases = s->aliases_loading;
		s->aliases_loading = NULL;
		return;
	}
	alias_table_free(&s->aliases_loading);
	log_warn("aliases table: not read, the old aliases stay; trying again "
		 "in %d s",
		 AUTH_ALIAS_RETRY_SECONDS);
	if (s->alias_retry == NULL)
		s->alias_retry = evtimer_new(s->base, auth_alias_timer, s);
	if (s->alias_retry == NULL || evtimer_add(s->alias_retry, &retry) < 0)
		fatal("cannot create a timer");
}

static void auth_server_start_pgsql(struct auth_server *s)
{
	struct timeval tv = {.tv_sec = (time_t)s->cfg->userdb_cache_ttl};

	log_info("userdb: users in PostgreSQL (pool of %u connections)",
		 s->cfg->pgsql_pool_size);
	s->pg = userdb_pgsql_new(s->cfg, s->base);
	if (auth_server_alias_sink == NULL) {
		auth_table_sink = (struct auth_alias_sink){
		    auth_alias_table_reset, auth_alias_table_add,
		    auth_alias_table_done, s};
		auth_server_alias_sink = &auth_table_sink;
	}
	auth_server_load_aliases(s);
	if (s->cfg->userdb_cache_ttl == 0 || auth_server_alias_sink == NULL)
		return;
	s->alias_timer =
	    event_new(s->base, -1, EV_PERSIST, auth_alias_timer, s);
	if (s->alias_timer == NULL || event_add(s->alias_timer, &tv) < 0)
		fatal("cannot create a timer");
}

int auth_server_run(const struct config *cfg, const int *worker_fds,
		    size_t worker_count)
{
	struct auth_server *s;

	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Computed now so that the first unknown user is not slower than
	 * the users after it (INV-A1); still used when no user exists. */
	(void)password_dummy_hash();

	s = xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	s->peers = xcalloc(AUTH_TARPIT_PEERS + 1, sizeof(*s->peers));
	for (size_t i = 0; i <= AUTH_TARPIT_PEERS; i++)
		s->peers[i].server = s;
	snprintf(s->peers[AUTH_TARPIT_PEERS].key, AUTH_PEER_KEY_SIZE,
		 "overflow");
	if (auth_server_peer_secret != NULL)
		memcpy(s->peer_key, auth_server_peer_secret,
		       sizeof(s->peer_key));
	else
		crypto_shorthash_keygen(s->peer_key);
	crypto_shorthash_keygen(s->decoy_key);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->base = event_base_new();
	if (s->base == NULL)
		fatal("event_base_new failed");
	if (pipe2(s->wake_fds, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("pipe2: %s", strerror(errno));
	s->wake_ev = event_new(s->base, s->wake_fds[0], EV_READ | EV_PERSIST,
			       auth_server_wake, s);
	s->sighup_ev = evsignal_new(s->base, SIGHUP, auth_server_sighup, s);
	s->sigterm_ev = evsignal_new(s->base, SIGTERM, auth_server_sigterm, s);
	s->sigint_ev = evsignal_new(s->base, SIGINT, auth_server_sigterm, s);
	if (s->wake_ev == NULL || s->sighup_ev == NULL ||
	    s->sigterm_ev == NULL || s->sigint_ev == NULL ||
	    event_add(s->wake_ev, NULL) < 0 ||
	    event_add(s->sighup_ev, NULL) < 0 ||
	    event_add(s->sigterm_ev, NULL) < 0 ||
	    event_add(s->sigint_ev, NULL) < 0)
		fatal("cannot set up the auth process's events");

	s->workers =
	    xcalloc(worker_count == 0 ? 1 : worker_count, sizeof(*s->workers));
	s->worker_count = worker_count;
	for (size_t i = 0; i < worker_count; i++) {
		struct auth_worker *w = &s->workers[i];
		int flags = fcntl(worker_fds[i], F_GETFL);

		w->server = s;
		w->fd = worker_fds[i];
		if (flags < 0 || fcntl(w->fd, F_SETFL, flags | O_NONBLOCK) < 0)
			fatal("fcntl(worker socket): %s", strerror(errno));
		w->read_ev = event_new(s->base, w->fd, EV_READ | EV_PERSIST,
				       auth_worker_read, w);
		w->write_ev =
		    event_new(s->base, w->fd, EV_WRITE, auth_worker_write, w);
		if (w->read_ev == NULL || w->write_ev == NULL ||
		    event_add(w->read_ev, NULL) < 0)
			fatal("cannot watch worker socket %zu", i);
		w->open = true;
		s->workers_open++;
	}
	s->aliases = auth_server_aliases_preloaded;
	auth_server_aliases_preloaded = NULL;
	if (cfg->userdb == USERDB_PGSQL) {
		auth_server_start_pgsql(s);
	} else if (auth_server_preloaded != NULL) {
		s->db = auth_server_preloaded;
		auth_server_preloaded = NULL;
		log_info("users file %s loaded: %zu users",
			 auth_users_path(cfg), passwd_db_count(s->db));
	} else {
		auth_server_load(s, false);
	}
	auth_server_start_pool(s);
	if (s->workers_open > 0)
		event_base_dispatch(s->base);
	auth_server_stop_pool(s);
	auth_server_free(s);
	return 0;
}
