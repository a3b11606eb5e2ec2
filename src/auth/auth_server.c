#include "auth/auth_server.h"

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

#include "auth/auth_proto.h"
#include "auth/passwd_file.h"
#include "auth/password.h"
#include "lib/log.h"
#include "lib/postd_limits.h"
#include "lib/username.h"
#include "lib/xmalloc.h"

/* Requests read per worker per event, so one busy worker cannot starve
 * the others. */
#define AUTH_SERVER_MAX_READS 64
/* How far a peer's slot is searched for in the tarpit table. */
#define AUTH_PEER_PROBES 8
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

struct auth_job {
	struct auth_job *next, *prev;
	struct auth_server *server;
	size_t worker;
	struct auth_request req; /* holds the secret until verified */
	/* A copy of the stored hash, so a reload cannot free it under the
	 * thread; for an unknown user the decoy's hash, or NULL when there
	 * are no users at all. */
	char *stored;
	/* stored belongs to another user (auth_server_decoy): verify it for
	 * the time it costs, then fail whatever the result (INV-A1). */
	bool decoy;
	char extra[sizeof(((struct auth_reply *)0)->extra)];
	/* Results, filled in by the pool thread. */
	enum auth_result result;
	enum auth_cause cause;
	const char *error;
	/* A failure reply held back by the tarpit. */
	struct auth_reply reply;
	struct event *timer;
};

struct auth_peer {
	char addr[sizeof(((struct auth_request *)0)->peer)];
	uint32_t failures;
	uint64_t last_ms;
};

struct auth_server {
	const struct config *cfg;
	struct event_base *base;
	struct passwd_db *db;

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

	struct auth_job *delayed; /* replies held back, for clean exit */
	struct auth_peer *peers;
	/* Picks an unknown name's decoy user; random per process so that
	 * nobody outside can tell which user a name maps to. */
	unsigned char decoy_key[crypto_shorthash_KEYBYTES];
	struct event *sighup_ev, *sigterm_ev, *sigint_ev;
};

static uint64_t auth_now_ms(void);
static void auth_server_load(struct auth_server *s, bool reload);
static void auth_server_sighup(evutil_socket_t sig, short what, void *arg);
static void auth_server_sigterm(evutil_socket_t sig, short what, void *arg);
static void auth_worker_read(evutil_socket_t fd, short what, void *arg);
static void auth_worker_write(evutil_socket_t fd, short what, void *arg);
static void auth_worker_close(struct auth_worker *w);
static void auth_worker_send(struct auth_server *s, size_t worker,
			     const struct auth_reply *reply);
static void auth_server_request(struct auth_server *s, size_t worker,
				struct auth_request *req);
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
static void auth_job_done(struct auth_server *s, struct auth_job *job);
static void auth_job_timer(evutil_socket_t fd, short what, void *arg);
static struct auth_peer *auth_peer_find(struct auth_server *s, const char *addr,
					uint64_t now, bool create);
static uint32_t auth_tarpit(struct auth_server *s, const char *addr,
			    uint32_t *failures_r);
static void auth_server_start_pool(struct auth_server *s);
static void auth_server_stop_pool(struct auth_server *s);
static void auth_server_free(struct auth_server *s);

static uint64_t auth_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Users read by auth_server_preload() before privileges were dropped. */
static struct passwd_db *auth_server_preloaded;

int auth_server_preload(const struct config *cfg)
{
	const char *error;

	if (cfg->users_file == NULL)
		return -1;
	if (passwd_db_load(cfg->users_file, &auth_server_preloaded, &error) <
	    0) {
		log_error("cannot load users file %s: %s", cfg->users_file,
			  error);
		return -1;
	}
	return 0;
}

/* Loads the users file; on a reload failure the old users stay. */
static void auth_server_load(struct auth_server *s, bool reload)
{
	struct passwd_db *db;
	const char *error;

	if (s->cfg->users_file == NULL) {
		log_error("no users_file configured: every login fails "
			  "temporarily");
		return;
	}
	if (passwd_db_load(s->cfg->users_file, &db, &error) < 0) {
		if (reload && s->db != NULL)
			log_error("reloading users file %s failed, keeping "
				  "the old users: %s",
				  s->cfg->users_file, error);
		else
			log_error("cannot load users file %s: %s; every login "
				  "fails temporarily until it is fixed and "
				  "SIGHUP is sent",
				  s->cfg->users_file, error);
		return;
	}
	/* Jobs in flight hold their own copy of the hash, so the old
	 * database can go now. */
	passwd_db_free(&s->db);
	s->db = db;
	log_info("users file %s %s: %zu users", s->cfg->users_file,
		 reload ? "reloaded" : "loaded", passwd_db_count(db));
}

static void auth_server_sighup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	auth_server_load(arg, true);
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
	struct auth_request req;

	(void)what;
	for (int i = 0; i < AUTH_SERVER_MAX_READS && w->open; i++) {
		/* MSG_TRUNC: an oversized datagram shows its real size and
		 * is rejected instead of being read as a short one. */
		ssize_t n =
		    recv(fd, &req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				log_warn("recv from worker %zu: %s", index,
					 strerror(errno));
			auth_worker_close(w);
			break;
		}
		if (!auth_request_valid(&req, (size_t)n)) {
			struct auth_reply reply;

			log_warn("worker %zu sent an invalid request (%zd "
				 "bytes)",
				 index, n);
			if ((size_t)n >= offsetof(struct auth_request, type)) {
				auth_reply_init(&reply, req.id,
						AUTH_RESULT_TEMPFAIL,
						AUTH_CAUSE_BAD_REQUEST);
				auth_worker_send(s, index, &reply);
			}
		} else {
			auth_server_request(s, index, &req);
		}
		OPENSSL_cleanse(&req, sizeof(req));
	}
}

static void auth_server_request(struct auth_server *s, size_t worker,
				struct auth_request *req)
{
	const struct passwd_entry *e = NULL;
	struct auth_reply reply;
	struct auth_job *job;

	if (s->db == NULL) {
		auth_reply_init(&reply, req->id, AUTH_RESULT_TEMPFAIL,
				AUTH_CAUSE_INTERNAL);
		auth_worker_send(s, worker, &reply);
		return;
	}
	/* A name that is not canonical cannot be in the database; it is
	 * treated as unknown, with the same cost (INV-A1). */
	if (username_is_canonical(req->user))
		e = passwd_db_lookup(s->db, req->user);
	if (req->type == AUTH_REQUEST_LOOKUP) {
		auth_reply_init(&reply, req->id,
				e != NULL ? AUTH_RESULT_OK : AUTH_RESULT_FAIL,
				e != NULL ? AUTH_CAUSE_NONE
					  : AUTH_CAUSE_UNKNOWN_USER);
		if (e != NULL) {
			snprintf(reply.user, sizeof(reply.user), "%s", e->name);
			snprintf(reply.extra, sizeof(reply.extra), "%s",
				 e->extra != NULL ? e->extra : "");
		}
		auth_worker_send(s, worker, &reply);
		return;
	}
	if (req->type == AUTH_REQUEST_APOP && req->challenge[0] == '\0') {
		auth_reply_init(&reply, req->id, AUTH_RESULT_TEMPFAIL,
				AUTH_CAUSE_BAD_REQUEST);
		auth_worker_send(s, worker, &reply);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->server = s;
	job->worker = worker;
	job->req = *req;
	if (e != NULL) {
		job->stored = xstrdup(e->password);
		snprintf(job->extra, sizeof(job->extra), "%s",
			 e->extra != NULL ? e->extra : "");
	} else if ((e = auth_server_decoy(s, req->user)) != NULL) {
		job->stored = xstrdup(e->password);
		job->decoy = true;
	}
	/* A digest scheme ({PLAIN}, {SSHA512}, ...) costs microseconds:
	 * handing it to a thread would cost more than verifying it here. */
	if (auth_job_is_fast(job)) {
		auth_job_run(job);
		auth_job_done(s, job);
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

/* Finds a peer, or with create takes over the stalest slot near where
 * it belongs. Failures older than AUTH_TARPIT_FORGET_MS are forgotten. */
static struct auth_peer *auth_peer_find(struct auth_server *s, const char *addr,
					uint64_t now, bool create)
{
	size_t start = 0, victim;
	struct auth_peer *p;

	for (const char *c = addr; *c != '\0'; c++)
		start = start * 31 + (unsigned char)*c;
	start %= AUTH_TARPIT_PEERS;
	victim = start;
	for (size_t i = 0; i < AUTH_PEER_PROBES; i++) {
		p = &s->peers[(start + i) % AUTH_TARPIT_PEERS];
		if (p->addr[0] != '\0' && strcmp(p->addr, addr) == 0) {
			if (now - p->last_ms > AUTH_TARPIT_FORGET_MS)
				p->failures = 0;
			return p;
		}
		if (p->last_ms < s->peers[victim].last_ms || p->addr[0] == '\0')
			victim = (start + i) % AUTH_TARPIT_PEERS;
	}
	if (!create)
		return NULL;
	p = &s->peers[victim];
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->failures = 0;
	p->last_ms = now;
	return p;
}

/*
 * The delay for a failure from addr: the base delay plus jitter up to
 * half of it, doubled for each recent failure from the same peer, capped
 * (INV-A1). The jitter hides how long the verification took.
 */
static uint32_t auth_tarpit(struct auth_server *s, const char *addr,
			    uint32_t *failures_r)
{
	uint64_t now = auth_now_ms();
	struct auth_peer *p =
	    auth_peer_find(s, addr[0] != '\0' ? addr : "unknown", now, true);
	uint64_t base = s->cfg->auth_failure_delay_ms, delay;

	if (base > AUTH_TARPIT_MAX_DELAY_MS)
		base = AUTH_TARPIT_MAX_DELAY_MS;
	if (p->failures < UINT32_MAX)
		p->failures++;
	p->last_ms = now;
	delay = base +
		(base >= 2 ? randombytes_uniform((uint32_t)base / 2 + 1) : 0);
	for (uint32_t i = 1;
	     i < p->failures && delay < AUTH_TARPIT_MAX_DELAY_MS; i++)
		delay *= 2;
	if (delay > AUTH_TARPIT_MAX_DELAY_MS)
		delay = AUTH_TARPIT_MAX_DELAY_MS;
	if (p->failures > 1 && delay > 0) {
		char esc[sizeof(p->addr) * 4];

		log_info("tarpit peer=%s failures=%u delay=%ums",
			 log_escape(esc, sizeof(esc), p->addr, strlen(p->addr)),
			 p->failures, (unsigned)delay);
	}
	*failures_r = p->failures;
	return (uint32_t)delay;
}

static void auth_job_done(struct auth_server *s, struct auth_job *job)
{
	struct auth_reply *reply = &job->reply;
	char user[USERNAME_BUF_SIZE * 4];
	struct timeval tv;

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
		reply->delay_ms =
		    auth_tarpit(s, job->req.peer, &reply->peer_failures);
	}
	if (reply->delay_ms == 0) {
		auth_worker_send(s, job->worker, reply);
		auth_job_free(job);
		return;
	}
	job->timer = evtimer_new(s->base, auth_job_timer, job);
	if (job->timer == NULL)
		fatal("cannot create a timer");
	tv.tv_sec = reply->delay_ms / 1000;
	tv.tv_usec = (suseconds_t)(reply->delay_ms % 1000) * 1000;
	evtimer_add(job->timer, &tv);
	job->prev = NULL;
	job->next = s->delayed;
	if (s->delayed != NULL)
		s->delayed->prev = job;
	s->delayed = job;
}

static void auth_job_timer(evutil_socket_t fd, short what, void *arg)
{
	struct auth_job *job = arg;
	struct auth_server *s = job->server;

	(void)fd;
	(void)what;
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		s->delayed = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	auth_worker_send(s, job->worker, &job->reply);
	auth_job_free(job);
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
		next = job->next;
		job->next = NULL;
		auth_job_done(s, job);
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
	struct auth_job *job, *next;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < s->thread_count; i++)
		pthread_join(s->threads[i], NULL);
	for (job = s->queue_head; job != NULL; job = next) {
		next = job->next;
		auth_job_free(job);
	}
	for (job = s->done_head; job != NULL; job = next) {
		next = job->next;
		auth_job_free(job);
	}
	s->queue_head = s->queue_tail = s->done_head = s->done_tail = NULL;
	XFREE(s->threads);
}

static void auth_server_free(struct auth_server *s)
{
	struct auth_job *job, *next;

	for (job = s->delayed; job != NULL; job = next) {
		next = job->next;
		auth_job_free(job);
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
	sodium_memzero(s->decoy_key, sizeof(s->decoy_key));
	free(s->peers);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	event_base_free(s->base);
	free(s);
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
	s->peers = xcalloc(AUTH_TARPIT_PEERS, sizeof(*s->peers));
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
	if (auth_server_preloaded != NULL) {
		s->db = auth_server_preloaded;
		auth_server_preloaded = NULL;
		log_info("users file %s loaded: %zu users", cfg->users_file,
			 passwd_db_count(s->db));
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
