#include "daemon/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <sodium.h>

#include "auth/auth_server.h"
#include "delivery/delivery.h"
#include "daemon/expire_child.h"
#include "daemon/firststart.h"
#include "daemon/privdrop.h"
#include "daemon/worker.h"
#include "lib/log.h"
#include "lib/srs.h"
#include "lib/metrics.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "net/connlimit.h"
#include "net/listener.h"
#include "storage/queue.h"
#include "tls/tls.h"

enum master_role {
	ROLE_WORKER,
	ROLE_AUTH,
	ROLE_QUEUE,  /* the queue runner, one per generation */
	ROLE_EXPIRE, /* a retention pass; belongs to no generation */
};

struct master_child {
	pid_t pid;
	int generation;
	int slot; /* connlimit slot, -1 unless a worker */
	enum master_role role;
};

struct master {
	struct config *cfg;
	const struct master_options *opts;
	SSL_CTX *ssl_ctx;
	struct listener_socket listeners[MASTER_MAX_LISTENERS];
	char listener_keys[MASTER_MAX_LISTENERS][160];
	size_t listener_count;
	int mail_root_fd;
	int queue_fd; /* DATA_DIR/queue, opened before workers chroot */
	struct master_child children[MASTER_MAX_CHILDREN];
	int generation;
	time_t generation_started;
	bool respawn_pending;
	bool queue_respawn_pending; /* the runner died on its own */
	time_t queue_started;
	time_t next_expire;    /* when the next retention pass is due */
	int expire_generation; /* the generation next_expire was set in */
	bool stopping;	       /* SIGTERM: children leaving is expected */
};

static void master_listener_key(const struct listen_addr *a, char *out,
				size_t size);
static int master_bind(struct master *m, const struct config *cfg,
		       struct listener_socket *out, char (*keys)[160],
		       size_t *count_r);
static SSL_CTX *master_tls(const struct config *cfg, bool *needed_r);
static int master_spawn(struct master *m);
static void master_child_main_worker(struct master *m, int *pairs, int n,
				     int index, int slot);
static void master_child_main_auth(struct master *m, int *pairs, int n);
static void master_signal_generation(struct master *m, int generation, int sig);
static void master_reap(struct master *m);
static void master_exit_text(int status, char *out, size_t size);
static void master_child_exited(struct master *m, const struct master_child *c,
				int status);
static void master_reload(struct master *m);
static void master_log_config_warnings(char *text);
static int master_stop(struct master *m);
static unsigned master_worker_count(const struct config *cfg);
static void master_raise_nofile(const struct config *cfg);
static void master_child_setup(void);
static void master_auth_confine(struct config *cfg);
static void master_open_queue(struct master *m);
static void master_free(struct master *m);
static struct master_child *master_child_slot(struct master *m);
static void master_spawn_queue(struct master *m);
static void master_child_main_queue(struct master *m);
static void master_maybe_expire(struct master *m);
static void master_load_srs(const struct config *cfg, struct srs_secrets *srs);
static const char *master_role_name(enum master_role role);

static sigset_t master_signals;
/* This process's pid, for its children to know when it is gone. */
static pid_t master_pid;

/*
 * A selected IMAP session holds about eight descriptors (its socket, the
 * user's Maildir, the folder, new/, cur/, the index log and lock, the
 * cache), so the usual soft limit of 1024 would hold about a hundred per
 * worker. The soft limit goes up to the hard one (which the children
 * inherit), and a hard limit too low for max_connections is said at start.
 */
static void master_raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	unsigned workers = master_worker_count(cfg);
	rlim_t need = (rlim_t)cfg->max_connections / (workers ? workers : 1) *
			  POSTD_FDS_PER_SESSION +
		      256;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("open files limit %llu per process is below the %llu "
			 "that max_connections = %u over %u workers may need "
			 "(raise LimitNOFILE / ulimit -Hn, or add workers)",
			 (unsigned long long)rl.rlim_cur,
			 (unsigned long long)need, cfg->max_connections,
			 workers);
}

static unsigned master_worker_count(const struct config *cfg)
{
	long n = cfg->workers != 0 ? (long)cfg->workers
				   : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > MASTER_MAX_WORKERS)
		n = MASTER_MAX_WORKERS;
	return (unsigned)n;
}

static void master_listener_key(const struct listen_addr *a, char *out,
				size_t size)
{
	snprintf(out, size, "%s %s %s", config_proto_name(a->proto), a->host,
		 a->port);
}

/* Binds what cfg lists, reusing sockets m already has for the same
 * address, so a reload keeps the queue of waiting connections. */
static int master_bind(struct master *m, const struct config *cfg,
		       struct listener_socket *out, char (*keys)[160],
		       size_t *count_r)
{
	char error[512], key[160];

	*count_r = 0;
	for (size_t i = 0; i < cfg->listen_count; i++) {
		const struct listen_addr *a = &cfg->listen[i];
		size_t before = *count_r;
		bool reused = false;

		if (!worker_proto_supported(a->proto)) {
			log_warn("listen.%s: %s is not served by this version "
				 "of postd yet; listener ignored",
				 config_proto_name(a->proto),
				 config_proto_name(a->proto));
			continue;
		}
		master_listener_key(a, key, sizeof(key));
		for (size_t j = 0; j < m->listener_count; j++) {
			if (strcmp(m->listener_keys[j], key) != 0 ||
			    *count_r >= MASTER_MAX_LISTENERS)
				continue;
			out[*count_r] = m->listeners[j];
			snprintf(keys[(*count_r)++], 160, "%s", key);
			reused = true;
		}
		if (reused)
			continue;
		if (listener_open(a, out, MASTER_MAX_LISTENERS, count_r, error,
				  sizeof(error)) < 0) {
			log_error("cannot listen on %s:%s for %s: %s", a->host,
				  a->port, config_proto_name(a->proto), error);
			return -1;
		}
		for (size_t j = before; j < *count_r; j++) {
			snprintf(keys[j], 160, "%s", key);
			log_info("listening: %s", out[j].label);
		}
	}
	return 0;
}

static SSL_CTX *master_tls(const struct config *cfg, bool *failed_r)
{
	char error[512];
	SSL_CTX *ctx;

	*failed_r = false;
	if (cfg->tls_cert == NULL || cfg->tls_key == NULL)
		return NULL;
	ctx = tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, error,
				 sizeof(error));
	if (ctx == NULL) {
		log_error("TLS: %s", error);
		*failed_r = true;
	}
	return ctx;
}

static struct master_child *master_child_slot(struct master *m)
{
	for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
		if (m->children[i].pid == 0)
			return &m->children[i];
	}
	return NULL;
}

/* In a new child: default signal handling, and die with the parent. */
static void master_child_setup(void)
{
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	sigprocmask(SIG_UNBLOCK, &master_signals, NULL);
	privdrop_follow_parent(master_pid);
}

/*
 * The auth process sees only the folder of the users file: it is chrooted
 * there and reads the file while still root (so it may be root's alone),
 * then drops privileges. A SIGHUP to the parent starts a new generation,
 * whose auth process reads the file afresh, as root, in the same way; the
 * old one answers its workers' last logins and exits when they have gone
 * (master_signal_generation()). The parent never passes SIGHUP on. The
 * auth process has a SIGHUP handler of its own (auth_server.c), reached
 * only by signalling that process directly: it re-reads the file in place
 * as the run user inside the chroot, so a root-only file fails to load
 * there and the old users stay (logged).
 */
static void master_auth_confine(struct config *cfg)
{
	char dir[4096], error[256];
	const char *slash = strrchr(cfg->users_file, '/');
	uid_t uid;
	gid_t gid;

	/* The aliases file may lie outside that folder. */
	(void)auth_server_preload_aliases(cfg);
	/* userdb = pgsql: the process talks to the database over the
	 * network or a socket in /run, and libpq may need /etc/hosts,
	 * resolv.conf and the CA bundle: no chroot, privileges dropped
	 * all the same. */
	if (!privdrop_is_root() || slash == NULL ||
	    cfg->userdb == USERDB_PGSQL) {
		privdrop_to(cfg->user, NULL);
		return;
	}
	/* The account is looked up before the chroot hides /etc/passwd. */
	if (privdrop_lookup(cfg->user, &uid, &gid, error, sizeof(error)) < 0)
		fatal("cannot drop privileges: %s", error);
	snprintf(dir, sizeof(dir), "%.*s",
		 slash == cfg->users_file ? 1 : (int)(slash - cfg->users_file),
		 cfg->users_file);
	tzset();
	if (chroot(dir) < 0 || chdir("/") < 0)
		fatal("chroot %s: %s", dir, strerror(errno));
	auth_server_set_users_path(cfg->users_file);
	memmove(cfg->users_file, slash, strlen(slash) + 1);
	/* Read as root: the file need not be readable by the run user. */
	(void)auth_server_preload(cfg);
	privdrop_ids(uid, gid);
}

static void master_child_main_auth(struct master *m, int *pairs, int n)
{
	int *fds = xcalloc((size_t)n, sizeof(int));

	master_child_setup();
	log_init("postd-auth", m->opts->foreground);
	for (int i = 0; i < n; i++) {
		close(pairs[2 * i]);
		fds[i] = pairs[2 * i + 1];
	}
	close(m->mail_root_fd);
	close(m->queue_fd);
	for (size_t i = 0; i < m->listener_count; i++)
		close(m->listeners[i].fd);
	master_auth_confine(m->cfg);
	_exit(auth_server_run(m->cfg, fds, (size_t)n));
}

static void master_child_main_worker(struct master *m, int *pairs, int n,
				     int index, int slot)
{
	struct worker_params params;
	char chroot_dir[4096];
	static struct srs_secrets srs;

	master_child_setup();
	log_init("postd-worker", m->opts->foreground);
	for (int i = 0; i < n; i++) {
		close(pairs[2 * i + 1]);
		if (i != index)
			close(pairs[2 * i]);
	}
	/* The worker sees the data folder and nothing else: the Maildirs
	 * and the queue it is handed as descriptors lie inside, so none of
	 * its descriptors leads out (INV-U1); the users file and the TLS
	 * key there are root's alone. */
	snprintf(chroot_dir, sizeof(chroot_dir), "%s", m->cfg->data_dir);
	master_load_srs(m->cfg, &srs);
	privdrop_to(m->cfg->user, chroot_dir);
	params.cfg = m->cfg;
	params.listeners = m->listeners;
	params.listener_count = m->listener_count;
	params.ssl_ctx = m->ssl_ctx;
	params.auth_fd = pairs[2 * index];
	params.mail_root_fd = m->mail_root_fd;
	params.queue_fd = m->queue_fd;
	params.slot = slot;
	params.srs = &srs;
	_exit(worker_run(&params));
}

static int master_spawn(struct master *m)
{
	int n = (int)master_worker_count(m->cfg);
	int pairs[2 * MASTER_MAX_WORKERS];
	struct master_child *c;
	int gen = m->generation + 1;
	pid_t pid;

	for (int i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
			       &pairs[2 * i]) < 0)
			fatal("socketpair: %s", strerror(errno));
	}
	c = master_child_slot(m);
	if (c == NULL)
		fatal("too many child processes");
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0)
		master_child_main_auth(m, pairs, n);
	*c = (struct master_child){pid, gen, -1, ROLE_AUTH};
	for (int i = 0; i < n; i++) {
		int slot = connlimit_slot_alloc();

		c = master_child_slot(m);
		if (c == NULL || slot < 0)
			fatal("too many worker processes");
		pid = fork();
		if (pid < 0)
			fatal("fork: %s", strerror(errno));
		if (pid == 0)
			master_child_main_worker(m, pairs, n, i, slot);
		*c = (struct master_child){pid, gen, slot, ROLE_WORKER};
	}
	for (int i = 0; i < 2 * n; i++)
		close(pairs[i]);
	m->generation = gen;
	m->generation_started = time(NULL);
	master_spawn_queue(m);
	log_info("started generation %d: 1 auth process, %d workers, "
		 "1 queue runner",
		 gen, n);
	return 0;
}

static const char *master_role_name(enum master_role role)
{
	switch (role) {
	case ROLE_WORKER:
		return "worker";
	case ROLE_AUTH:
		return "auth process";
	case ROLE_QUEUE:
		return "queue runner";
	case ROLE_EXPIRE:
		return "retention pass";
	}
	return "child";
}

/*
 * The queue runner reads what only root may (relay credentials, DKIM
 * keys) and what a chroot hides (resolv.conf, the CA bundle) first,
 * then lives like a worker: as the run user, inside the data folder.
 */
static void master_child_main_queue(struct master *m)
{
	struct delivery *d;
	char error[512];

	master_child_setup();
	log_init("postd-queue", m->opts->foreground);
	for (size_t i = 0; i < m->listener_count; i++)
		close(m->listeners[i].fd);
	d = delivery_prepare(m->cfg, m->queue_fd, m->mail_root_fd, error,
			     sizeof(error));
	if (d == NULL) {
		log_error("queue runner: %s", error);
		_exit(1);
	}
	privdrop_to(m->cfg->user, m->cfg->data_dir);
	_exit(delivery_run(d));
}

/*
 * The SRS keys, read as root (the file is root's alone, 0600) by every
 * new worker and queue runner, so that a reload picks up a new secret.
 * A file that cannot be read leaves SRS off: forwarded mail keeps its
 * sender and bounces to SRS addresses are deferred (451), never lost.
 */
static void master_load_srs(const struct config *cfg, struct srs_secrets *srs)
{
	char error[512];

	if (srs_secrets_load(srs, cfg->srs_secret_file, error, sizeof(error)) <
	    0)
		log_error("srs_secret_file %s; SRS is off", error);
	else if (error[0] != '\0')
		log_warn("srs_secret_file %s", error);
}

static void master_spawn_queue(struct master *m)
{
	struct master_child *c = master_child_slot(m);
	pid_t pid;

	if (c == NULL)
		fatal("too many child processes");
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0)
		master_child_main_queue(m);
	*c = (struct master_child){pid, m->generation, -1, ROLE_QUEUE};
	m->queue_started = time(NULL);
}

/* A retention pass every expire_interval and after every new generation;
 * never two at once. */
static void master_maybe_expire(struct master *m)
{
	time_t now = time(NULL);
	struct master_child *c;
	pid_t pid;

	/* A new generation (a reload) may bring other retention rules, a
	 * shorter expire_interval or another users file: a pass at once
	 * applies them and rewrites the CAPA summary, rather than after
	 * the old interval. */
	if (m->expire_generation != m->generation) {
		m->expire_generation = m->generation;
		m->next_expire = 0;
	}
	if (now < m->next_expire)
		return;
	for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
		if (m->children[i].pid != 0 &&
		    m->children[i].role == ROLE_EXPIRE)
			return;
	}
	m->next_expire = now + (time_t)m->cfg->expire_interval;
	c = master_child_slot(m);
	if (c == NULL)
		return;
	pid = fork();
	if (pid < 0) {
		log_error("cannot start the retention pass: fork: %s",
			  strerror(errno));
		return;
	}
	if (pid == 0) {
		master_child_setup();
		log_init("postd-expire", m->opts->foreground);
		for (size_t i = 0; i < m->listener_count; i++)
			close(m->listeners[i].fd);
		close(m->queue_fd);
		expire_child_main(m->cfg, m->mail_root_fd, m->opts->foreground);
	}
	*c = (struct master_child){pid, 0, -1, ROLE_EXPIRE};
}

static void master_signal_generation(struct master *m, int generation, int sig)
{
	for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
		struct master_child *c = &m->children[i];

		if (c->pid == 0 || c->generation != generation)
			continue;
		/* The auth process leaves by itself when its workers have
		 * gone; it still answers their last logins meanwhile. */
		if (sig == SIGQUIT && c->role == ROLE_AUTH)
			continue;
		kill(c->pid, sig);
	}
}

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
			struct master_child *c = &m->children[i];

			if (c->pid != pid)
				continue;
			if (c->slot >= 0)
				connlimit_slot_free(c->slot);
			master_child_exited(m, c, status);
			c->pid = 0;
			break;
		}
	}
}

/* "signal N" or "exit N", for the log. */
static void master_exit_text(int status, char *out, size_t size)
{
	if (WIFSIGNALED(status))
		snprintf(out, size, "signal %d", WTERMSIG(status));
	else
		snprintf(out, size, "exit %d", WEXITSTATUS(status));
}

/* What a child's exit means: a failed retention pass is logged, a dead
 * queue runner restarted alone, the first death in the running generation
 * replaces the generation, and the rest is expected. */
static void master_child_exited(struct master *m, const struct master_child *c,
				int status)
{
	bool current = c->generation == m->generation && !m->stopping;
	bool failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	const char *role = master_role_name(c->role);
	char how[32];

	master_exit_text(status, how, sizeof(how));
	if (c->role == ROLE_EXPIRE) {
		if (failed)
			log_error("retention pass (pid %d) failed (%s)",
				  (int)c->pid, how);
	} else if (current && c->role == ROLE_QUEUE) {
		/* Only the runner restarts: sessions in the workers are not
		 * its business. */
		log_error("queue runner (pid %d) died (%s); restarting it",
			  (int)c->pid, how);
		m->queue_respawn_pending = true;
	} else if (current && m->respawn_pending) {
		/* Its generation is already being replaced (the auth process
		 * leaves when its workers have gone): expected, not a second
		 * death. */
		log_info("%s (pid %d) of the replaced generation exited (%s)",
			 role, (int)c->pid, how);
	} else if (current && (failed || c->role == ROLE_AUTH)) {
		log_error("%s (pid %d) of the running generation died (%s); "
			  "starting a new generation",
			  role, (int)c->pid, how);
		m->respawn_pending = true;
	} else {
		log_debug("child %d of generation %d exited", (int)c->pid,
			  c->generation);
	}
}

void master_apply_log_level(const struct config *cfg,
			    const struct master_options *opts)
{
	log_set_level(opts->debug || cfg->log_debug ? LOG_LEVEL_DEBUG
						    : LOG_LEVEL_INFO);
}

void master_print_restart_keys(FILE *out)
{
	fprintf(out, "postd: a reload (SIGHUP) applies every key but");
	for (size_t i = 0; config_restart_keys[i] != NULL; i++)
		fprintf(out, "%s %s", i > 0 ? "," : "", config_restart_keys[i]);
	fprintf(out, ", which need a restart\n");
}

static void master_restart_key_changed(const char *key,
				       const char *running_value,
				       const char *fresh_value, void *arg)
{
	(void)arg;
	log_warn("reload: %s changed (from %s to %s); needs a restart to take "
		 "effect, %s stays in force until then",
		 key, running_value, fresh_value, running_value);
}

/* What a configuration that loads still printed: warnings (an old key
 * name, with the new one). At start they go to stderr; on reload, to the
 * log. */
static void master_log_config_warnings(char *text)
{
	char *save = NULL;

	if (text == NULL)
		return;
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		log_warn("reload: %s", line);
}

static void master_reload(struct master *m)
{
	struct config *cfg = NULL;
	struct listener_socket fresh[MASTER_MAX_LISTENERS];
	char keys[MASTER_MAX_LISTENERS][160];
	size_t fresh_count = 0;
	char *errors = NULL;
	size_t errors_len = 0;
	FILE *errf = open_memstream(&errors, &errors_len);
	SSL_CTX *ssl_ctx;
	bool tls_failed;
	int rc;

	log_info("SIGHUP: reloading %s", m->opts->config_path
					     ? m->opts->config_path
					     : "the embedded default");
	if (m->opts->config_path != NULL) {
		rc = config_load(m->opts->config_path, errf, &cfg);
	} else {
		cfg = config_default(m->opts->base_dir);
		rc = 0;
	}
	if (rc == 0 && config_validate(cfg, errf) > 0)
		rc = -1;
	fclose(errf);
	if (rc < 0) {
		char *save = NULL;

		for (char *line = strtok_r(errors, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			log_error("reload: %s", line);
		log_error("reload: configuration has errors; keeping the "
			  "running one");
		free(errors);
		config_free(&cfg);
		return;
	}
	master_log_config_warnings(errors);
	free(errors);
	/* The rest of the reload applies; these keep the running value. */
	(void)config_keep_restart_keys(cfg, m->cfg, master_restart_key_changed,
				       NULL);
	ssl_ctx = master_tls(cfg, &tls_failed);
	if (tls_failed || master_bind(m, cfg, fresh, keys, &fresh_count) < 0) {
		log_error("reload: keeping the running configuration");
		SSL_CTX_free(ssl_ctx);
		config_free(&cfg);
		return;
	}
	/* Close sockets that the new configuration no longer lists. */
	for (size_t i = 0; i < m->listener_count; i++) {
		bool kept = false;

		for (size_t j = 0; j < fresh_count; j++)
			kept = kept || fresh[j].fd == m->listeners[i].fd;
		if (!kept)
			close(m->listeners[i].fd);
	}
	memcpy(m->listeners, fresh, sizeof(fresh[0]) * fresh_count);
	memcpy(m->listener_keys, keys, sizeof(keys[0]) * fresh_count);
	m->listener_count = fresh_count;
	SSL_CTX_free(m->ssl_ctx);
	m->ssl_ctx = ssl_ctx;
	config_free(&m->cfg);
	m->cfg = cfg;
	connlimit_set_caps(cfg->max_connections, cfg->max_connections_per_peer);
	/* Before the new generation forks: its processes inherit it. */
	master_apply_log_level(cfg, m->opts);
	master_signal_generation(m, m->generation, SIGQUIT);
	master_spawn(m);
}

/* Everything the parent holds, so that a leak checker sees only real
 * leaks at exit. */
static void master_free(struct master *m)
{
	for (size_t i = 0; i < m->listener_count; i++)
		close(m->listeners[i].fd);
	if (m->mail_root_fd >= 0)
		close(m->mail_root_fd);
	if (m->queue_fd >= 0)
		close(m->queue_fd);
	SSL_CTX_free(m->ssl_ctx);
	config_free(&m->cfg);
	free(m);
}

static int master_stop(struct master *m)
{
	time_t deadline = time(NULL) + MASTER_STOP_GRACE_SECS;
	struct timespec tick = {0, 100 * 1000 * 1000};
	bool left = true;

	log_info("stopping");
	m->stopping = true;
	/* Workers first: an auth process leaves by itself once its workers'
	 * sockets have closed, so no worker sees it go away mid-session. */
	for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
		if (m->children[i].pid != 0 && m->children[i].role != ROLE_AUTH)
			kill(m->children[i].pid, SIGTERM);
	}
	while (left && time(NULL) < deadline) {
		sigtimedwait(&master_signals, NULL, &tick);
		master_reap(m);
		left = false;
		for (int i = 0; i < MASTER_MAX_CHILDREN; i++)
			left = left || m->children[i].pid != 0;
	}
	for (int i = 0; i < MASTER_MAX_CHILDREN; i++) {
		if (m->children[i].pid != 0) {
			log_warn("child %d did not stop; killing it",
				 (int)m->children[i].pid);
			kill(m->children[i].pid, SIGKILL);
		}
	}
	log_info("stopped");
	return 0;
}

/* The outbound queue: opened here, before the workers chroot into the
 * Maildirs, and recovered (INV-D4) before anyone writes to it. */
static void master_open_queue(struct master *m)
{
	struct queue_recover_stats st = {0, 0};
	const char *error;
	int data_fd =
	    open(m->cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (data_fd < 0)
		fatal("cannot open %s: %s", m->cfg->data_dir, strerror(errno));
	m->queue_fd = queue_open(data_fd, false, &error);
	close(data_fd);
	if (m->queue_fd < 0)
		fatal("cannot open %s/queue: %s", m->cfg->data_dir, error);
	if (queue_recover(m->queue_fd, time(NULL), &st, &error) < 0)
		fatal("queue recovery: %s", error);
	if (st.tmp_removed > 0 || st.quarantined > 0)
		log_warn("queue recovery: removed %u unfinished files, "
			 "quarantined %u entries",
			 st.tmp_removed, st.quarantined);
}

int master_run(struct config *cfg, const struct master_options *opts)
{
	struct master *m = xcalloc(1, sizeof(*m));
	char path[4096];
	bool tls_failed;

	m->cfg = cfg;
	m->opts = opts;
	m->mail_root_fd = -1;
	m->queue_fd = -1;
	master_pid = getpid();
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (privdrop_is_root()) {
		uid_t uid;
		gid_t gid;

		if (privdrop_lookup(cfg->user, &uid, &gid, path, sizeof(path)) <
		    0)
			fatal("%s", path);
	} else {
		log_warn("not started as root: running as the current user, "
			 "without privilege separation by user id");
	}
	firststart_data_dirs(cfg);
	firststart_srs_secret(cfg);
	if (opts->config_path == NULL)
		firststart_prepare(cfg);
	m->ssl_ctx = master_tls(cfg, &tls_failed);
	if (tls_failed || master_bind(m, cfg, m->listeners, m->listener_keys,
				      &m->listener_count) < 0) {
		master_free(m);
		return 1;
	}
	if (m->listener_count == 0)
		fatal("no listener that this version serves is configured");
	snprintf(path, sizeof(path), "%s/mail", cfg->data_dir);
	/* firststart_data_dirs() made it a folder, not a link. */
	m->mail_root_fd =
	    open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m->mail_root_fd < 0)
		fatal("cannot open %s: %s", path, strerror(errno));
	master_open_queue(m);
	connlimit_create(cfg->max_connections, cfg->max_connections_per_peer);
	master_raise_nofile(cfg);
	metrics_init();
	if (!opts->foreground) {
		if (daemon(1, 0) < 0)
			fatal("daemon: %s", strerror(errno));
		log_init("postd", 0);
	}
	sigemptyset(&master_signals);
	sigaddset(&master_signals, SIGCHLD);
	sigaddset(&master_signals, SIGHUP);
	sigaddset(&master_signals, SIGTERM);
	sigaddset(&master_signals, SIGINT);
	sigaddset(&master_signals, SIGQUIT);
	sigprocmask(SIG_BLOCK, &master_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	master_spawn(m);
	for (;;) {
		struct timespec tick = {1, 0};
		int sig = sigtimedwait(&master_signals, NULL, &tick);

		if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
			int rc = master_stop(m);

			master_free(m);
			return rc;
		}
		if (sig == SIGHUP)
			master_reload(m);
		master_reap(m);
		if (m->respawn_pending && time(NULL) - m->generation_started >=
					      MASTER_RESPAWN_PAUSE_SECS) {
			m->respawn_pending = false;
			m->queue_respawn_pending = false;
			master_signal_generation(m, m->generation, SIGQUIT);
			master_spawn(m);
		}
		if (m->queue_respawn_pending && time(NULL) - m->queue_started >=
						    MASTER_RESPAWN_PAUSE_SECS) {
			m->queue_respawn_pending = false;
			master_spawn_queue(m);
		}
		master_maybe_expire(m);
	}
}
