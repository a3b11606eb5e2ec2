#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <sodium.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/postd_assert.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "net/connlimit.h"

/*
 * How far a TLS handshake got, for saying in the log why one failed: a
 * client that does not trust the certificate often just closes after our
 * flight, without an alert, and only this tells that apart from a client
 * that gave up before we answered.
 */
enum conn_tls_step {
	TLS_STEP_NONE,	       /* no complete ClientHello yet */
	TLS_STEP_CLIENT_HELLO, /* ClientHello read, nothing sent */
	TLS_STEP_SERVER_HELLO, /* ServerHello sent (a resumption sends no
				* certificate) */
	TLS_STEP_CERTIFICATE,  /* our certificate sent */
};

struct conn {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *destroy_ev;
	struct event *eof_ev; /* finishes input after the peer's EOF */
	const struct conn_handler *handler;
	void *session;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	enum listen_proto proto;
	char id[13];
	char peer_str[INET6_ADDRSTRLEN];
	char via_str[INET6_ADDRSTRLEN]; /* the balancer, "" when direct */
	bool tls;
	bool closing;	 /* conn_close() called: flushing */
	bool destroying; /* destroy scheduled */
	bool discarding; /* inside an overlong line */
	bool paused;
	bool eof;
	bool handshaking; /* a TLS handshake is running */
	bool first_seen;  /* the first input byte was looked at */
	bool input_seen;  /* input arrived since the (last) handshake */
	bool output_dead; /* the peer is gone: output cannot leave */
	enum conn_tls_step tls_step;
	const char *close_reason; /* a static string, or close_text */
	char close_text[256];	  /* a reason composed at run time */
	unsigned timeout;
	size_t input_limit;
	void (*starttls_done)(void *session, bool ok);
	SSL_CTX *starttls_ctx;
	struct evbuffer_iovec reserved; /* between reserve and commit */
	struct conn *prev, *next; /* all live connections of the process */
};

static struct conn *conn_list;
static size_t conn_live;

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_destroy_cb(evutil_socket_t fd, short what, void *arg);
static void conn_eof_cb(evutil_socket_t fd, short what, void *arg);
static void conn_finish_input(struct conn *conn);
static void conn_schedule_destroy(struct conn *conn, const char *reason);
static void conn_apply_timeouts(struct conn *conn);
static void conn_apply_watermarks(struct conn *conn);
static void conn_setup_bev(struct conn *conn);
static void conn_starttls_begin(struct conn *conn);
static const char *conn_ssl_error(struct conn *conn);
static const char *conn_tls_hint(const char *reason);
static void conn_tls_failed(struct conn *conn, short what);
static void conn_tls_abort(struct conn *conn, const char *reason);
static bool conn_tls_on_plain_port(struct conn *conn);
static void conn_log_refusal(struct conn *conn, const char *cause);
static void conn_tls_watch(struct conn *conn, SSL *ssl);
static void conn_tls_watch_end(struct conn *conn);
static void conn_tls_watch_cb(int write_p, int version, int content_type,
			      const void *buf, size_t len, SSL *ssl, void *arg);
static void conn_tls_closed_words(struct conn *conn, short what, char *out,
				  size_t size, const char **hint_r);
static bool conn_tls_rejected_silently(struct conn *conn);

struct conn *conn_new(struct event_base *base, int fd,
		      const struct sockaddr *peer, socklen_t peer_len,
		      enum listen_proto proto, SSL_CTX *ssl_ctx)
{
	struct conn *conn = xcalloc(1, sizeof(*conn));
	unsigned char rnd[6];
	int opts = BEV_OPT_CLOSE_ON_FREE;

	conn->base = base;
	conn->proto = proto;
	/* Replies are written whole: without this, a response that spans
	 * two segments waits for the peer's delayed ACK (40 ms). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	if (peer_len > sizeof(conn->peer))
		peer_len = sizeof(conn->peer);
	memcpy(&conn->peer, peer, peer_len);
	conn->peer_len = peer_len;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(conn->id, sizeof(conn->id), rnd, sizeof(rnd));
	conn_format_addr(peer, conn->peer_str, sizeof(conn->peer_str));
	if (ssl_ctx != NULL) {
		SSL *ssl = SSL_new(ssl_ctx);

		if (ssl == NULL)
			fatal("SSL_new failed");
		conn_tls_watch(conn, ssl);
		conn->bev = bufferevent_openssl_socket_new(
		    base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, opts);
		conn->tls = true;
		conn->handshaking = true;
	} else {
		conn->bev = bufferevent_socket_new(base, fd, opts);
	}
	if (conn->bev == NULL)
		fatal("bufferevent_socket_new failed");
	if (conn->tls)
		bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
	conn->input_limit = CONN_INPUT_MAX_PREAUTH;
	conn->timeout = TIMEOUT_PREAUTH_DEFAULT;
	conn->destroy_ev = event_new(base, -1, 0, conn_destroy_cb, conn);
	conn->eof_ev = event_new(base, -1, 0, conn_eof_cb, conn);
	conn->next = conn_list;
	if (conn_list != NULL)
		conn_list->prev = conn;
	conn_list = conn;
	conn_live++;
	metrics_session_open((unsigned)proto);
	return conn;
}

static void conn_setup_bev(struct conn *conn)
{
	bufferevent_setcb(conn->bev, conn_read_cb, conn_write_cb, conn_event_cb,
			  conn);
	conn_apply_watermarks(conn);
	conn_apply_timeouts(conn);
	if (!conn->paused)
		bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	else
		bufferevent_enable(conn->bev, EV_WRITE);
}

void conn_start(struct conn *conn, const struct conn_handler *handler,
		void *session)
{
	conn->handler = handler;
	conn->session = session;
	conn_setup_bev(conn);
}

void conn_format_addr(const struct sockaddr *sa, char *out, size_t size)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out,
				  (socklen_t)size);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out,
				  (socklen_t)size);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, out, (socklen_t)size);
	} else {
		snprintf(out, size, "local");
	}
}

void conn_set_via(struct conn *conn, const struct sockaddr *via)
{
	conn_format_addr(via, conn->via_str, sizeof(conn->via_str));
	log_info("proxied peer=%s session=%s proto=%s via=%s (peer %s via "
		 "proxy %s)",
		 conn->peer_str, conn->id, config_proto_name(conn->proto),
		 conn->via_str, conn->peer_str, conn->via_str);
}

const char *conn_via(const struct conn *conn)
{
	return conn->via_str[0] != '\0' ? conn->via_str : NULL;
}

const char *conn_id(const struct conn *conn)
{
	return conn->id;
}

const char *conn_peer(const struct conn *conn)
{
	return conn->peer_str;
}

const struct sockaddr *conn_peer_addr(const struct conn *conn)
{
	return (const struct sockaddr *)&conn->peer;
}

bool conn_peer_is_loopback(const struct conn *conn)
{
	const struct sockaddr *sa = conn_peer_addr(conn);

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		       s6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

enum listen_proto conn_proto(const struct conn *conn)
{
	return conn->proto;
}

bool conn_is_tls(const struct conn *conn)
{
	return conn->tls;
}

const char *conn_tls_version(const struct conn *conn)
{
	SSL *ssl;

	if (!conn->tls)
		return "no";
	ssl = bufferevent_openssl_get_ssl(conn->bev);
	return ssl != NULL ? SSL_get_version(ssl) : "no";
}

static void conn_apply_watermarks(struct conn *conn)
{
	/* Reading stops while this much input waits unread: a client that
	 * pipelines faster than we answer is slowed down, not buffered. */
	bufferevent_setwatermark(conn->bev, EV_READ, 0, conn->input_limit);
	bufferevent_setwatermark(conn->bev, EV_WRITE, CONN_OUTPUT_LOW_WATER, 0);
}

static void conn_apply_timeouts(struct conn *conn)
{
	struct timeval tv = {.tv_sec = conn->timeout, .tv_usec = 0};

	bufferevent_set_timeouts(conn->bev, &tv, &tv);
}

void conn_set_timeout(struct conn *conn, unsigned seconds)
{
	conn->timeout = seconds;
	if (!conn->destroying)
		conn_apply_timeouts(conn);
}

void conn_set_input_limit(struct conn *conn, size_t max)
{
	conn->input_limit = max;
	if (!conn->destroying)
		conn_apply_watermarks(conn);
}

int conn_read_line(struct conn *conn, char *buf, size_t bufsize, size_t max,
		   size_t *len_r)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	struct evbuffer_ptr eol;
	size_t eol_len = 0;

	for (;;) {
		eol =
		    evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			size_t have = evbuffer_get_length(in);

			/* A full input buffer without a line end is an
			 * overlong line too: reading has stopped at the
			 * input limit, so waiting would wait for ever. */
			if ((have <= max && have < conn->input_limit) ||
			    conn->discarding) {
				if (conn->discarding)
					evbuffer_drain(in,
						       evbuffer_get_length(in));
				return 0;
			}
			/* Overlong and still going: one error now, and
			 * the rest of the line is dropped as it comes. */
			evbuffer_drain(in, evbuffer_get_length(in));
			conn->discarding = true;
			return -1;
		}
		if (conn->discarding) {
			evbuffer_drain(in, (size_t)eol.pos + eol_len);
			conn->discarding = false;
			continue;
		}
		if ((size_t)eol.pos > max || (size_t)eol.pos >= bufsize) {
			evbuffer_drain(in, (size_t)eol.pos + eol_len);
			return -1;
		}
		evbuffer_remove(in, buf, (size_t)eol.pos);
		evbuffer_drain(in, eol_len);
		buf[eol.pos] = '\0';
		*len_r = (size_t)eol.pos;
		return 1;
	}
}

const char *conn_input_peek(struct conn *conn, size_t *len_r)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);
	struct evbuffer_iovec vec;

	if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 || vec.iov_len == 0) {
		*len_r = 0;
		return NULL;
	}
	*len_r = vec.iov_len;
	return vec.iov_base;
}

void conn_input_consume(struct conn *conn, size_t len)
{
	evbuffer_drain(bufferevent_get_input(conn->bev), len);
}

size_t conn_input_pending(const struct conn *conn)
{
	return evbuffer_get_length(bufferevent_get_input(conn->bev));
}

void conn_discard_input(struct conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

void conn_write(struct conn *conn, const void *data, size_t len)
{
	if (conn->destroying)
		return;
	if (bufferevent_write(conn->bev, data, len) < 0)
		fatal("bufferevent_write of %zu bytes failed", len);
}

void conn_printf(struct conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(conn, fmt, ap);
	va_end(ap);
}

/* Never truncated: a reply cut at a fixed size loses its CRLF, and the
 * client then reads the next reply as part of this one. */
void conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
{
	if (conn->destroying)
		return;
	if (evbuffer_add_vprintf(bufferevent_get_output(conn->bev), fmt, ap) <
	    0)
		fatal("evbuffer_add_vprintf failed");
}

char *conn_reserve(struct conn *conn, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(conn->bev);

	if (evbuffer_reserve_space(out, (ev_ssize_t)len, &conn->reserved, 1) !=
	    1)
		fatal("evbuffer_reserve_space of %zu bytes failed", len);
	return conn->reserved.iov_base;
}

void conn_commit(struct conn *conn, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(conn->bev);

	if (len > conn->reserved.iov_len)
		fatal("conn_commit: %zu bytes exceed the reservation", len);
	conn->reserved.iov_len = len;
	if (evbuffer_commit_space(out, &conn->reserved, 1) < 0)
		fatal("evbuffer_commit_space failed");
}

bool conn_output_full(const struct conn *conn)
{
	return evbuffer_get_length(bufferevent_get_output(conn->bev)) >=
	       CONN_OUTPUT_HIGH_WATER;
}

/*
 * Pausing is a flag, not an epoll change: while paused, what arrives
 * waits in the input buffer, and the read watermark stops reading from
 * the socket once that is full (back-pressure). A pause around every
 * auth request cost two epoll_ctl calls per login.
 */
void conn_pause_input(struct conn *conn)
{
	conn->paused = true;
}

void conn_resume_input(struct conn *conn)
{
	conn->paused = false;
	/* The peer finished sending while a command was running: answer
	 * the rest of what it sent, from the loop, not from this call. */
	if (conn->eof && !conn->closing && !conn->destroying)
		event_active(conn->eof_ev, EV_TIMEOUT, 0);
}

/*
 * The peer closed its side. What it sent before is still answered (a
 * pipelined QUIT must be handled, a script that half-closes gets its
 * replies); then the connection goes. While a command runs (paused), this
 * waits for conn_resume_input().
 */
static void conn_finish_input(struct conn *conn)
{
	if (conn->closing || conn->destroying || conn->paused)
		return;
	if (conn_input_pending(conn) > 0)
		conn->handler->on_readable(conn->session);
	if (!conn->paused && !conn->closing)
		conn_close(conn, "connection closed by peer");
}

static void conn_eof_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_finish_input(arg);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;

	(void)bev;
	conn->input_seen = true;
	if (conn->closing || conn->destroying || conn->paused)
		return;
	if (!conn->first_seen && conn_tls_on_plain_port(conn))
		return;
	conn->handler->on_readable(conn->session);
}

/*
 * A client set up for implicit TLS (Outlook's "This server requires an
 * encrypted connection (SSL/TLS)" on port 587 or 110) opens with a TLS
 * record (0x16, handshake) where a command belongs. No command starts
 * with that byte: say why in the log and close, instead of waiting for a
 * line end that never comes while the client waits for a ServerHello.
 */
static bool conn_tls_on_plain_port(struct conn *conn)
{
	size_t len;
	const char *in = conn_input_peek(conn, &len);

	if (in == NULL)
		return false;
	conn->first_seen = true;
	if (conn->tls || (unsigned char)in[0] != 0x16)
		return false;
	conn_log_refusal(conn, "TLS handshake on a plaintext port: the client "
			       "expects implicit TLS (use STARTTLS here, or "
			       "the SSL/TLS port)");
	conn_schedule_destroy(conn, "TLS handshake on a plaintext port");
	return true;
}

/* Refusals by the connection layer, in the sessions' format (the user is
 * not known down here). */
static void conn_log_refusal(struct conn *conn, const char *cause)
{
	log_info("refused peer=%s session=%s proto=%s user=- cause=%s",
		 conn->peer_str, conn->id, config_proto_name(conn->proto),
		 cause);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));

	if (conn->destroying)
		return;
	if (conn->starttls_done != NULL && left == 0) {
		conn_starttls_begin(conn);
		return;
	}
	if (conn->closing) {
		if (left == 0)
			conn_schedule_destroy(conn, conn->close_reason);
		return;
	}
	conn->handler->on_drain(conn->session);
}

static const char *conn_ssl_error(struct conn *conn)
{
	static char text[160];
	unsigned long err = bufferevent_get_openssl_error(conn->bev);

	if (err == 0)
		return NULL;
	ERR_error_string_n(err, text, sizeof(text));
	return text;
}

/* What an OpenSSL reason usually means, in words for the admin. */
static const char *conn_tls_hint(const char *reason)
{
	static const struct {
		const char *reason, *hint;
	} hints[] = {
	    {"unsupported protocol",
	     "the client offers only TLS versions below 1.2"},
	    {"no shared cipher", "no cipher suite in common with the client"},
	    {"no suitable signature algorithm",
	     "the client cannot verify the certificate's key type"},
	    {"wrong version number",
	     "the client does not speak TLS here: plaintext on an SSL/TLS "
	     "port?"},
	    {"http request", "a web browser on a mail port"},
	    {"packet length too long",
	     "the client does not speak TLS here: plaintext on an SSL/TLS "
	     "port?"},
	    {"unknown ca", "the client does not trust the certificate"},
	    {"certificate unknown",
	     "the client does not trust the certificate"},
	    {"bad certificate", "the client does not trust the certificate"},
	    {"certificate expired",
	     "the client finds the certificate expired (or its clock is "
	     "wrong)"},
	    {"unsupported certificate",
	     "the client cannot use this kind of certificate"},
	    {"alert handshake failure",
	     "the client accepts nothing we offered (TLS version, cipher or "
	     "certificate)"},
	};

	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		if (strstr(reason, hints[i].reason) != NULL)
			return hints[i].hint;
	}
	return NULL;
}

static void conn_tls_watch(struct conn *conn, SSL *ssl)
{
	conn->tls_step = TLS_STEP_NONE;
	SSL_set_msg_callback_arg(ssl, &conn->tls_step);
	SSL_set_msg_callback(ssl, conn_tls_watch_cb);
}

/* After the handshake the callback would only cost a call per record. */
static void conn_tls_watch_end(struct conn *conn)
{
	SSL *ssl = conn->tls ? bufferevent_openssl_get_ssl(conn->bev) : NULL;

	if (ssl != NULL) {
		SSL_set_msg_callback(ssl, NULL);
		SSL_set_msg_callback_arg(ssl, NULL);
	}
}

/* OpenSSL shows every handshake message here, also those TLS 1.3
 * encrypts (the certificate), with the message type in the first byte. */
static void conn_tls_watch_cb(int write_p, int version, int content_type,
			      const void *buf, size_t len, SSL *ssl, void *arg)
{
	enum conn_tls_step *step = arg;
	enum conn_tls_step now;
	int type;

	(void)version;
	(void)ssl;
	if (content_type != SSL3_RT_HANDSHAKE || len == 0 || step == NULL)
		return;
	now = *step;
	type = ((const unsigned char *)buf)[0];
	if (!write_p && type == SSL3_MT_CLIENT_HELLO)
		now = TLS_STEP_CLIENT_HELLO;
	else if (write_p && type == SSL3_MT_SERVER_HELLO)
		now = TLS_STEP_SERVER_HELLO;
	else if (write_p && type == SSL3_MT_CERTIFICATE)
		now = TLS_STEP_CERTIFICATE;
	if (now > *step)
		*step = now;
}

/*
 * The client went away during the handshake without an alert: how far
 * the handshake got is the best clue. GnuTLS clients and others that
 * reject the certificate close right after our flight.
 */
static void conn_tls_closed_words(struct conn *conn, short what, char *out,
				  size_t size, const char **hint_r)
{
	int err = EVUTIL_SOCKET_ERROR();
	const char *how = "closed";

	if ((what & BEV_EVENT_ERROR) && err == ECONNRESET)
		how = "reset";
	else if ((what & BEV_EVENT_ERROR) && err != 0)
		how = evutil_socket_error_to_string(err);
	switch (conn->tls_step) {
	case TLS_STEP_NONE:
		snprintf(out, size,
			 "connection %s by the client in the middle of its "
			 "ClientHello",
			 how);
		*hint_r = "not a TLS client, or a port scanner";
		break;
	case TLS_STEP_CLIENT_HELLO:
		snprintf(out, size,
			 "connection %s by the client after its ClientHello, "
			 "before our certificate",
			 how);
		*hint_r = "the client gave up (a scanner, or the network)";
		break;
	case TLS_STEP_SERVER_HELLO:
		snprintf(out, size,
			 "connection %s by the client after our ServerHello, "
			 "without an alert",
			 how);
		*hint_r = NULL;
		break;
	case TLS_STEP_CERTIFICATE:
		snprintf(out, size,
			 "connection %s by the client after our certificate, "
			 "without an alert",
			 how);
		*hint_r = "it probably does not trust the certificate";
		break;
	}
}

/*
 * A TLS handshake ended in an error, EOF or timeout: one log line with
 * OpenSSL's reason ("no shared cipher", "unsupported protocol", "wrong
 * version number", an alert from the client), or how far the handshake
 * got when the client just left; then the connection goes. A client that
 * closes before sending a byte of TLS is a port probe, not a refusal:
 * debug.
 */
static void conn_tls_failed(struct conn *conn, short what)
{
	unsigned long err = bufferevent_get_openssl_error(conn->bev);
	SSL *ssl = bufferevent_openssl_get_ssl(conn->bev);
	bool eof = err == 0 ||
		   ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
	char cause[400], reason[200];
	const char *hint = NULL;

	conn->handshaking = false;
	conn_tls_watch_end(conn);
	/* Not one byte from the client: a port probe, not a failure. */
	if (ssl != NULL && SSL_get_rbio(ssl) != NULL &&
	    BIO_number_read(SSL_get_rbio(ssl)) == 0 &&
	    !(what & BEV_EVENT_TIMEOUT) && eof) {
		log_debug("peer=%s session=%s proto=%s: closed before the TLS "
			  "handshake",
			  conn->peer_str, conn->id,
			  config_proto_name(conn->proto));
		conn_tls_abort(conn, "closed before the TLS handshake");
		return;
	}
	if (!eof) {
		const char *r = ERR_reason_error_string(err);

		if (r != NULL)
			snprintf(reason, sizeof(reason), "%s", r);
		else
			ERR_error_string_n(err, reason, sizeof(reason));
		hint = conn_tls_hint(reason);
	} else if (what & BEV_EVENT_TIMEOUT) {
		snprintf(reason, sizeof(reason), "timed out after %u s",
			 conn->timeout);
	} else {
		conn_tls_closed_words(conn, what, reason, sizeof(reason),
				      &hint);
	}
	snprintf(cause, sizeof(cause), "TLS handshake failed: %s%s%s", reason,
		 hint != NULL ? " - " : "", hint != NULL ? hint : "");
	conn_log_refusal(conn, cause);
	conn_tls_abort(conn, cause);
}

/*
 * The handshake completed, then the client went away without sending a
 * byte: clients on GnuTLS (msmtp, mpop, neomutt) check the certificate
 * only after the handshake and, when they do not trust it, just close.
 * One refusal line, as for a handshake that failed; the connection goes
 * at once (what we queued, the greeting, can no longer be delivered).
 */
static bool conn_tls_rejected_silently(struct conn *conn)
{
	static const char cause[] =
	    "TLS handshake failed: connection closed by the client right "
	    "after the handshake, before any command - it probably does not "
	    "trust the certificate";

	if (!conn->tls || conn->handshaking || conn->input_seen ||
	    conn->closing || conn_input_pending(conn) > 0)
		return false;
	conn->eof = true;
	conn_log_refusal(conn, cause);
	conn_schedule_destroy(conn, cause);
	return true;
}

/* The session of a failed STARTTLS hears of it; the connection goes. */
static void conn_tls_abort(struct conn *conn, const char *reason)
{
	if (conn->starttls_done != NULL) {
		void (*done)(void *, bool) = conn->starttls_done;

		conn->starttls_done = NULL;
		done(conn->session, false);
	}
	conn_schedule_destroy(conn, reason);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *conn = arg;
	char reason[256];

	(void)bev;
	if (conn->destroying)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		/* A TLS handshake finished. */
		conn->handshaking = false;
		conn_tls_watch_end(conn);
		if (conn->starttls_done != NULL) {
			void (*done)(void *, bool) = conn->starttls_done;

			conn->starttls_done = NULL;
			done(conn->session, true);
		}
		return;
	}
	if (conn->handshaking &&
	    (what & (BEV_EVENT_TIMEOUT | BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		conn_tls_failed(conn, what);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (conn->closing) {
			conn_schedule_destroy(conn, "timeout while closing");
			return;
		}
		/* A long response (RETR of a big message on a slow link) is
		 * being written and the client is quietly reading it: that is
		 * not idleness. The write timeout guards its progress. */
		if ((what & BEV_EVENT_READING) && conn->paused &&
		    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
			bufferevent_enable(bev, EV_READ);
			return;
		}
		conn->handler->on_timeout(conn->session);
		if (!conn->closing)
			conn_close(conn, "idle timeout");
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
	    conn_tls_rejected_silently(conn))
		return;
	if (what & BEV_EVENT_EOF) {
		conn->eof = true;
		/* Writing hit the end: the peer is gone, and what is queued
		 * will never leave. Waiting for it to drain would keep the
		 * connection until a timeout. */
		if (what & BEV_EVENT_WRITING)
			conn->output_dead = true;
		if (conn->closing && conn->output_dead) {
			conn_schedule_destroy(conn, conn->close_reason);
			return;
		}
		conn_finish_input(conn);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		const char *ssl_err = conn->tls ? conn_ssl_error(conn) : NULL;

		if (ssl_err != NULL)
			snprintf(reason, sizeof(reason), "TLS error: %s",
				 ssl_err);
		else if (EVUTIL_SOCKET_ERROR() != 0)
			snprintf(reason, sizeof(reason), "connection error: %s",
				 evutil_socket_error_to_string(
				     EVUTIL_SOCKET_ERROR()));
		else
			snprintf(reason, sizeof(reason), "connection error");
		if (conn->starttls_done != NULL) {
			void (*done)(void *, bool) = conn->starttls_done;

			conn->starttls_done = NULL;
			conn->close_reason = "TLS handshake failed";
			done(conn->session, false);
		}
		conn_schedule_destroy(conn, reason);
	}
}

void conn_starttls(struct conn *conn, SSL_CTX *ssl_ctx,
		   void (*done)(void *session, bool ok))
{
	/* TLS is started once: STLS and STARTTLS are refused on a TLS
	 * connection before they get here. */
	POSTD_ASSERT(!conn->tls);
	conn->starttls_ctx = ssl_ctx;
	conn->starttls_done = done;
	/* Nothing more is read until the handshake: whatever plaintext the
	 * client sent after the command is dropped below. */
	bufferevent_disable(conn->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
		conn_starttls_begin(conn);
	else
		bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
}

static void conn_starttls_begin(struct conn *conn)
{
	SSL *ssl = SSL_new(conn->starttls_ctx);
	evutil_socket_t fd = bufferevent_getfd(conn->bev);
	struct bufferevent *tls_bev;

	if (ssl == NULL)
		fatal("SSL_new failed");
	conn_tls_watch(conn, ssl);
	/* INV-S1: plaintext pipelined behind STARTTLS is never read. What
	 * was buffered is dropped here; what the kernel still holds will
	 * reach the TLS layer and fail the handshake. */
	conn_discard_input(conn);
	conn->discarding = false;
	/* The same socket continues as a TLS one, just as on an implicit-TLS
	 * listener: the plaintext bufferevent lets go of it first. */
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(conn->bev, -1);
	bufferevent_free(conn->bev);
	tls_bev = bufferevent_openssl_socket_new(conn->base, fd, ssl,
						 BUFFEREVENT_SSL_ACCEPTING,
						 BEV_OPT_CLOSE_ON_FREE);
	if (tls_bev == NULL)
		fatal("bufferevent_openssl_socket_new failed");
	bufferevent_openssl_set_allow_dirty_shutdown(tls_bev, 1);
	conn->bev = tls_bev;
	conn->tls = true;
	conn->handshaking = true;
	conn->input_seen = false;
	conn_setup_bev(conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
}

void conn_close(struct conn *conn, const char *reason)
{
	if (conn->closing || conn->destroying)
		return;
	conn->closing = true;
	snprintf(conn->close_text, sizeof(conn->close_text), "%s",
		 reason != NULL ? reason : "closed");
	conn->close_reason = conn->close_text;
	bufferevent_disable(conn->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0 ||
	    conn->output_dead) {
		conn_schedule_destroy(conn, reason);
		return;
	}
	/* Wake up when everything is written. */
	bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
	bufferevent_enable(conn->bev, EV_WRITE);
}

bool conn_is_closing(const struct conn *conn)
{
	return conn->closing || conn->destroying;
}

static void conn_schedule_destroy(struct conn *conn, const char *reason)
{
	if (conn->destroying)
		return;
	conn->destroying = true;
	/* The reason may live on the caller's stack: keep a copy. */
	if (reason != conn->close_text)
		snprintf(conn->close_text, sizeof(conn->close_text), "%s",
			 reason != NULL ? reason : "closed");
	conn->close_reason = conn->close_text;
	bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	event_active(conn->destroy_ev, EV_TIMEOUT, 0);
}

static void conn_destroy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;
	char reason[256];

	(void)fd;
	(void)what;
	/* The reason may live in a buffer the session frees. */
	snprintf(reason, sizeof(reason), "%s",
		 conn->close_reason != NULL ? conn->close_reason : "closed");
	if (conn->handler != NULL)
		conn->handler->on_close(conn->session, reason);
	connlimit_release(conn_peer_addr(conn));
	metrics_session_close((unsigned)conn->proto);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		conn_list = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn_live--;
	conn_tls_watch_end(conn);
	bufferevent_free(conn->bev);
	event_free(conn->destroy_ev);
	event_free(conn->eof_ev);
	free(conn);
}

void conn_shutdown_all(void)
{
	struct conn *next;

	for (struct conn *c = conn_list; c != NULL; c = next) {
		next = c->next;
		if (!c->closing && !c->destroying && c->handler != NULL)
			c->handler->on_shutdown(c->session);
		if (!c->closing && !c->destroying)
			conn_close(c, "server shutting down");
	}
}

size_t conn_count(void)
{
	return conn_live;
}
