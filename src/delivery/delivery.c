/* The queue runner's set-up (as root, before the chroot) and event loop. */
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
 * repeats at most that group's copy). delivery_internal.h lists which
 * file does what.
 */
#include "delivery/delivery.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "delivery/delivery_internal.h"
#include "lib/log.h"
#include "lib/srs.h"
#include "lib/xmalloc.h"

static int delivery_read_auth(struct delivery *d, char *error, size_t size);
static void delivery_load_srs(struct delivery *d);
static SSL_CTX *delivery_ctx_new(const struct config *cfg, bool verify,
				 char *error, size_t size);
static void delivery_signal_cb(evutil_socket_t fd, short what, void *arg);

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

void delivery_maybe_exit(struct delivery *d)
{
	if (d->draining && d->attempt_count == 0)
		event_base_loopbreak(d->base);
}
