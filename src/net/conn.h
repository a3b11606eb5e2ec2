/*
 * A client connection: a libevent bufferevent (plain, or OpenSSL for TLS)
 * plus what every protocol needs from it: a bounded line reader, an output
 * queue with watermarks for resumable long responses, idle timeouts,
 * STARTTLS, and a close that never frees a session inside its own
 * callback chain (resumable long responses).
 *
 * The protocol session pulls input with conn_read_line() when told that
 * input is readable; it pauses input while a command is unfinished.
 */
#ifndef POSTD_CONN_H
#define POSTD_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config/config.h"

struct conn;

struct conn_handler {
	/* Input is readable (or input was resumed). */
	void (*on_readable)(void *session);
	/* Queued output fell below CONN_OUTPUT_LOW_WATER: continue a long
	 * response. */
	void (*on_drain)(void *session);
	/* The idle timer ran out: write a goodbye and call conn_close(). */
	void (*on_timeout)(void *session);
	/* The server is stopping: write a goodbye and call conn_close(). */
	void (*on_shutdown)(void *session);
	/* The connection is being destroyed (peer gone, error, or after
	 * conn_close() flushed). Called exactly once, never from inside
	 * another handler call; the session frees itself here and must not
	 * touch the conn afterwards. reason is for the log. */
	void (*on_close)(void *session, const char *reason);
};

/*
 * Wraps an accepted socket. With ssl_ctx set, TLS starts at once (implicit
 * TLS: pop3s, imaps, submissions). The connection is inactive until
 * conn_start().
 */
struct conn *conn_new(struct event_base *base, int fd,
		      const struct sockaddr *peer, socklen_t peer_len,
		      enum listen_proto proto, SSL_CTX *ssl_ctx);
void conn_start(struct conn *conn, const struct conn_handler *handler,
		void *session);

/*
 * The connection came through a load balancer at via, whose PROXY header
 * named the peer given to conn_new(): logs it, once, with both addresses.
 * Everything else (logs, caps, the tarpit, plaintext_auth = loopback,
 * Received) goes by the peer.
 */
void conn_set_via(struct conn *conn, const struct sockaddr *via);
/* The balancer's address, or NULL for a direct connection. */
const char *conn_via(const struct conn *conn);

/* Writes the numeric address of sa (IPv4-mapped IPv6 as IPv4). */
void conn_format_addr(const struct sockaddr *sa, char *out, size_t size);

/* "a1b2c3d4e5f6": a short unique session id for the log. */
const char *conn_id(const struct conn *conn);
/* The peer's numeric address ("192.0.2.1", "2001:db8::1"). */
const char *conn_peer(const struct conn *conn);
const struct sockaddr *conn_peer_addr(const struct conn *conn);
bool conn_peer_is_loopback(const struct conn *conn);
enum listen_proto conn_proto(const struct conn *conn);
bool conn_is_tls(const struct conn *conn);
/* "TLSv1.3", or "no". */
const char *conn_tls_version(const struct conn *conn);

/*
 * Reads one line into buf (size bufsize; the line ending is removed and a
 * NUL appended). max is the longest line allowed, without its ending.
 * Returns 1 with *len_r set, 0 if no complete line is buffered yet, or -1
 * once per overlong line: the line is discarded through its end, so its
 * tail is never read as another command (one error per line, INV-S1).
 * The line may contain NUL bytes: the caller checks with *len_r.
 */
int conn_read_line(struct conn *conn, char *buf, size_t bufsize, size_t max,
		   size_t *len_r);
/*
 * Raw input, for message bodies (SMTP DATA and BDAT): the first
 * contiguous run of buffered bytes (NULL and 0 when none), and how many of
 * them were used.
 */
const char *conn_input_peek(struct conn *conn, size_t *len_r);
void conn_input_consume(struct conn *conn, size_t len);
/* Bytes of input buffered and not yet read. */
size_t conn_input_pending(const struct conn *conn);
/* Drops every buffered input byte. */
void conn_discard_input(struct conn *conn);

void conn_write(struct conn *conn, const void *data, size_t len);
/* Formatted output, never cut short: the caller bounds what it formats
 * (a reply made of bounded parts), the output queue takes any length. */
void conn_printf(struct conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/*
 * Zero-copy output: reserves at least len bytes at the end of the output
 * queue and returns where to write them; conn_commit() then adds the
 * bytes actually written.
 */
char *conn_reserve(struct conn *conn, size_t len);
void conn_commit(struct conn *conn, size_t len);
/* True when a long response should stop and wait for on_drain. */
bool conn_output_full(const struct conn *conn);

/* A paused connection reads nothing from the socket (back-pressure). */
void conn_pause_input(struct conn *conn);
void conn_resume_input(struct conn *conn);
/* Idle timeout in seconds while waiting for input or for the peer to
 * read our output. */
void conn_set_timeout(struct conn *conn, unsigned seconds);
/* Input bytes allowed to wait unread (smaller before authentication). */
void conn_set_input_limit(struct conn *conn, size_t max);

/*
 * STARTTLS/STLS, the one routine (TLS is a layer, INV-S1): call it after
 * queueing the positive reply. It flushes that reply, drops every
 * buffered plaintext byte, and starts the handshake. done(session, ok) is
 * called when the handshake ends; on failure the connection is closing.
 */
void conn_starttls(struct conn *conn, SSL_CTX *ssl_ctx,
		   void (*done)(void *session, bool ok));

/* Flushes queued output, then destroys the connection (on_close runs). */
void conn_close(struct conn *conn, const char *reason);
bool conn_is_closing(const struct conn *conn);

/* Every live connection of this process gets on_shutdown. */
void conn_shutdown_all(void);
size_t conn_count(void);

#endif
