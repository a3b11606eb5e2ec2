/*
 * imapload: the IMAP load generator behind bench/imap-bench.sh.
 *
 * Built like pop3load.c: one single-threaded epoll loop drives many client
 * connections, each a small state machine that sends one command and waits
 * for its tagged reply (no pipelining, as a mail client does). It only ever
 * connects to 127.0.0.1, and every loop is bounded by a count, a duration or
 * both. Writing Maildirs and measuring PSS are pop3load's job.
 *
 * Modes (see usage()):
 *   login   N clients loop: connect, LOGIN, SELECT INBOX, LOGOUT for T
 *           seconds or M logins; prints logins/s, p50/p99.
 *   fetch   log in, SELECT INBOX, FETCH 1:* (RFC822.SIZE BODY.PEEK[]),
 *           LOGOUT, R sessions in a row; every literal must be exactly
 *           RFC822.SIZE octets of CRLF lines; prints MB/s per session.
 *   select  R sessions in a row: LOGIN, SELECT INBOX, UID FETCH 1:*
 *           (FLAGS), LOGOUT, each step timed (session 1 on a fresh
 *           Maildir is the cold one).
 *   idle    open N authenticated connections (with -I: each also SELECTs
 *           INBOX and enters IDLE), print READY, hold them until a signal
 *           or T seconds, then DONE and LOGOUT.
 *
 * Strict: a NO, BAD, BYE before LOGOUT, malformed or unexpected response,
 * bare LF, wrong literal size, wrong message count, timeout or unexpected
 * close is an error; errors are counted, the first few are printed, and
 * the exit status is 1 if there was any.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

/* A response line (or a whole response with its literals taken out)
 * longer than this is an error: the check is about framing. */
#define IN_MAX 65536
#define RESP_MAX 65536
#define OUT_MAX 1024
#define MAX_CONNS 60000
#define MAX_MSGS 1000000
#define MAX_LITERAL (256ULL << 20)
#define MAX_SAMPLES 4000000
#define EPOLL_BATCH 256
#define TICK_MS 100
#define DRAIN_SECONDS 30.0

enum mode { M_LOGIN, M_FETCH, M_SELECT, M_IDLE };

enum step {
	ST_FREE,
	ST_CONNECTING,
	ST_GREETING,
	ST_LOGIN,
	ST_SELECT,
	ST_FETCH,
	ST_FLAGS,
	ST_IDLE_START,
	ST_HELD,
	ST_DONE,
	ST_LOGOUT,
};

static const char *const step_names[] = {
    "free",	 "connect", "greeting", "LOGIN", "SELECT", "FETCH",
    "UID FETCH", "IDLE",    "held",	"DONE",	 "LOGOUT",
};

struct conn {
	int fd;
	unsigned idx;
	unsigned sessions; /* sessions finished by this client */
	unsigned started;  /* sessions started by this client */
	unsigned gen;	   /* bumped by every close */
	unsigned tagno;
	enum step step;
	bool idling; /* held inside IDLE (DONE ends it) */
	bool bye;    /* * BYE seen (only legal during LOGOUT) */
	char tag[16];
	size_t inlen;
	size_t outlen, outoff;
	size_t resplen;	   /* response text gathered so far */
	uint64_t lit_left; /* literal octets still to read */
	bool lit_cr;	   /* the last literal octet was CR */
	double t_session;  /* connect() of this session */
	double t_cmd;	   /* last command sent or bytes received */
	double t_step;	   /* current command sent */
	double login_ms, select_ms, flags_ms;
	uint64_t exists; /* from SELECT */
	uint64_t nfetch; /* FETCH responses of the current command */
	uint64_t last_uid;
	uint64_t sess_octets;
	uint8_t *seen; /* fetch: sequence numbers answered */
	size_t seen_cap;
	char *in;
	char *resp;
	char out[OUT_MAX];
};

struct opts {
	enum mode mode;
	unsigned port;
	const char *user_tmpl;
	unsigned user_first;
	unsigned user_count;
	const char *pass;
	unsigned clients;
	double seconds;
	uint64_t max_logins;
	unsigned conns;
	unsigned sessions;
	unsigned expect_msgs;
	uint64_t expect_octets; /* fetch: sum of the RFC822.SIZEs */
	double timeout;
	bool rotate;
	bool idle_cmd; /* idle mode: SELECT INBOX and IDLE */
};

static struct opts o = {
    .port = 143,
    .user_tmpl = "bench%u@bench.test",
    .user_first = 1,
    .pass = "benchpass",
    .clients = 1,
    .seconds = 5.0,
    .conns = 100,
    .sessions = 1,
    .timeout = 60.0,
};

static int ep = -1;
static struct conn *conns;
static unsigned nconns;

static bool running;
static double t_begin, t_stop, t_last_done;
static uint64_t logins, started;
static double *samples, *samples2;
static size_t nsamples;

static uint64_t fetch_octets, fetch_msgs;

static unsigned idle_open, idle_inflight, idle_started, idle_quit;
static bool idle_quitting;

static void conn_start(struct conn *c);
static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_cmd(struct conn *c, enum step step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int conn_flush(struct conn *c);
static void conn_event(struct conn *c, uint32_t ev);
static int conn_read(struct conn *c);
static int conn_literal(struct conn *c, const char *p, size_t n);
static int conn_line(struct conn *c, char *line, size_t len);
static int resp_untagged(struct conn *c, const char *r, size_t len);
static int resp_tagged(struct conn *c, const char *r, size_t len);
static int resp_fetch(struct conn *c, uint64_t seq, const char *p,
		      const char *end);
static void step_done(struct conn *c);
static void session_done(struct conn *c);
static void user_name(const struct conn *c, char *buf, size_t size);

/* As pop3load: "%u" is the user number; with -R each session takes the
 * next user of the pool, so a mailbox is not reopened the moment it was
 * left. */
static void user_name(const struct conn *c, char *buf, size_t size)
{
	const char *p = strstr(o.user_tmpl, "%u");
	unsigned k = c->idx, n;
	int len;

	if (o.rotate && c->started > 0)
		k += (c->started - 1) * o.clients;
	n = o.user_first + (o.user_count ? k % o.user_count : k);
	if (p == NULL)
		len = snprintf(buf, size, "%s", o.user_tmpl);
	else
		len = snprintf(buf, size, "%.*s%u%s", (int)(p - o.user_tmpl),
			       o.user_tmpl, n, p + 2);
	if (len < 0 || (size_t)len >= size)
		buf[0] = '\0';
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->gen++;
	c->step = ST_FREE;
	c->idling = false;
	c->bye = false;
	c->inlen = 0;
	c->resplen = 0;
	c->lit_left = 0;
	c->outlen = 0;
	c->outoff = 0;
}

static void conn_start(struct conn *c)
{
	const char *failed;

	c->step = ST_CONNECTING;
	c->started++;
	c->t_session = now();
	c->t_cmd = c->t_session;
	c->exists = 0;
	c->login_ms = c->select_ms = c->flags_ms = 0;
	failed = lg_connect(ep, o.port, c, &c->fd);
	if (failed != NULL) {
		conn_fail(c, "%s: %s", failed, strerror(errno));
		return;
	}
	if (o.mode == M_LOGIN)
		started++;
}

/* Records an error, closes the connection; login clients start over while
 * the run lasts, fetch/select clients go on with their next session. */
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char prefix[200];
	char user[128];
	va_list ap;

	user_name(c, user, sizeof(user));
	snprintf(prefix, sizeof(prefix), "client %u user %s at %s: ", c->idx,
		 user, step_names[c->step]);
	va_start(ap, fmt);
	verr(prefix, fmt, ap);
	va_end(ap);
	if (o.mode == M_IDLE && c->step != ST_HELD && c->step != ST_DONE &&
	    c->step != ST_LOGOUT)
		idle_inflight--;
	conn_close(c);
	if (errors >= ERR_ABORT)
		running = false;
	if (o.mode == M_LOGIN && running && now() < t_stop)
		conn_start(c);
	if ((o.mode == M_FETCH || o.mode == M_SELECT) && running &&
	    ++c->sessions < o.sessions)
		conn_start(c);
}

/* Sends "TAG command" (or a bare line for DONE: step ST_DONE). */
static void conn_cmd(struct conn *c, enum step step, const char *fmt, ...)
{
	va_list ap;
	int len = 0, n;

	if (step != ST_DONE) {
		snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagno);
		len = snprintf(c->out, sizeof(c->out), "%s ", c->tag);
	}
	va_start(ap, fmt);
	n = vsnprintf(c->out + len, sizeof(c->out) - (size_t)len - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)(len + n) >= sizeof(c->out) - 2) {
		conn_fail(c, "command too long");
		return;
	}
	len += n;
	c->out[len++] = '\r';
	c->out[len++] = '\n';
	c->outlen = (size_t)len;
	c->outoff = 0;
	c->step = step;
	c->t_cmd = now();
	c->t_step = c->t_cmd;
	conn_flush(c);
}

static int conn_flush(struct conn *c)
{
	if (lg_flush(ep, c->fd, c, c->out, &c->outoff, c->outlen) < 0) {
		conn_fail(c, "write: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (c->step == ST_CONNECTING) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr != 0) {
			conn_fail(c, "connect: %s", strerror(soerr));
			return;
		}
		c->step = ST_GREETING;
		c->t_cmd = now();
		if (conn_flush(c) < 0)
			return;
	}
	if ((ev & EPOLLOUT) && c->outoff < c->outlen) {
		if (conn_flush(c) < 0)
			return;
	}
	if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
}

/* One read, then every complete line and literal in the buffer. Literal
 * octets are counted and checked, never copied. */
static int conn_read(struct conn *c)
{
	size_t start = 0;
	ssize_t n;

	n = read(c->fd, c->in + c->inlen, IN_MAX - c->inlen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		conn_fail(c, "read: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		conn_fail(c, "connection closed by the server");
		return -1;
	}
	c->inlen += (size_t)n;
	c->t_cmd = now();
	while (start < c->inlen) {
		char *line = c->in + start;
		size_t avail = c->inlen - start, len;
		unsigned gen = c->gen;
		char *lf;

		if (c->lit_left > 0) {
			size_t take =
			    avail < c->lit_left ? avail : (size_t)c->lit_left;

			if (conn_literal(c, line, take) < 0)
				return -1;
			start += take;
			continue;
		}
		lf = memchr(line, '\n', avail);
		if (lf == NULL)
			break;
		len = (size_t)(lf - line);
		if (len == 0 || line[len - 1] != '\r') {
			conn_fail(c, "line ends in a bare LF");
			return -1;
		}
		len--;
		line[len] = '\0';
		start += len + 2;
		if (conn_line(c, line, len) < 0 || c->gen != gen)
			return -1;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->inlen - start);
		c->inlen -= start;
	}
	if (c->inlen == IN_MAX) {
		conn_fail(c, "line longer than %d octets", IN_MAX);
		return -1;
	}
	return 0;
}

/* Literal octets: a message is CRLF lines (RFC 5322 section 2.3), so an
 * LF without its CR is an error here too. */
static int conn_literal(struct conn *c, const char *p, size_t n)
{
	const char *end = p + n, *lf;
	const char *q = p;

	while ((lf = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		bool cr = lf > p ? lf[-1] == '\r' : c->lit_cr;

		if (!cr) {
			conn_fail(c, "bare LF in a literal");
			return -1;
		}
		q = lf + 1;
	}
	if (n > 0)
		c->lit_cr = end[-1] == '\r';
	c->lit_left -= n;
	c->sess_octets += n;
	return 0;
}

/* A line of a response: when it ends in a literal announcement the
 * response goes on after the literal, else it is complete. */
static int conn_line(struct conn *c, char *line, size_t len)
{
	const char *p;
	uint64_t lit;

	if (memchr(line, '\0', len) != NULL) {
		conn_fail(c, "NUL in a response");
		return -1;
	}
	if (c->resplen + len + 1 > RESP_MAX) {
		conn_fail(c, "response longer than %d octets", RESP_MAX);
		return -1;
	}
	memcpy(c->resp + c->resplen, line, len);
	c->resplen += len;
	c->resp[c->resplen] = '\0';
	if (len >= 3 && line[len - 1] == '}') {
		p = memrchr(line, '{', len);
		if (p != NULL) {
			const char *q = p + 1;

			if (parse_u64(&q, &lit) == 0 && *q == '}' &&
			    q == line + len - 1) {
				if (lit > MAX_LITERAL) {
					conn_fail(c, "literal of %" PRIu64,
						  lit);
					return -1;
				}
				c->lit_left = lit;
				c->lit_cr = false;
				/* A literal that ends the response would
				 * still be followed by a line. */
				return 0;
			}
		}
	}
	len = c->resplen;
	c->resplen = 0;
	if (c->step == ST_FREE || c->step == ST_CONNECTING) {
		conn_fail(c, "unsolicited: %.100s", c->resp);
		return -1;
	}
	if (len >= 2 && c->resp[0] == '*' && c->resp[1] == ' ')
		return resp_untagged(c, c->resp + 2, len - 2);
	if (len >= 1 && c->resp[0] == '+') {
		if (c->step != ST_IDLE_START ||
		    (len > 1 && c->resp[1] != ' ')) {
			conn_fail(c, "unexpected continuation: %.100s",
				  c->resp);
			return -1;
		}
		c->idling = true;
		c->step = ST_HELD;
		idle_inflight--;
		idle_open++;
		return 0;
	}
	return resp_tagged(c, c->resp, len);
}

static bool word_is(const char *r, const char *end, const char *w)
{
	size_t n = strlen(w);

	return (size_t)(end - r) >= n && strncasecmp(r, w, n) == 0 &&
	       (r + n == end || r[n] == ' ');
}

/* "* ..." responses. */
static int resp_untagged(struct conn *c, const char *r, size_t len)
{
	const char *end = r + len, *p = r;
	uint64_t num;

	if (c->step == ST_GREETING) {
		if (!word_is(r, end, "OK")) {
			conn_fail(c, "greeting: %.100s", r);
			return -1;
		}
		{
			char user[128];

			user_name(c, user, sizeof(user));
			conn_cmd(c, ST_LOGIN, "LOGIN \"%s\" \"%s\"", user,
				 o.pass);
		}
		return c->fd >= 0 ? 0 : -1;
	}
	if (word_is(r, end, "BYE")) {
		if (c->step != ST_LOGOUT) {
			conn_fail(c, "* %.100s", r);
			return -1;
		}
		c->bye = true;
		return 0;
	}
	if (word_is(r, end, "NO") || word_is(r, end, "BAD")) {
		conn_fail(c, "* %.100s", r);
		return -1;
	}
	if (parse_u64(&p, &num) == 0) {
		if (*p++ != ' ') {
			conn_fail(c, "malformed: * %.100s", r);
			return -1;
		}
		if (word_is(p, end, "EXISTS")) {
			if (c->step == ST_SELECT)
				c->exists = num;
			else if (num != c->exists) {
				conn_fail(c, "EXISTS changed to %" PRIu64, num);
				return -1;
			}
			return 0;
		}
		if (word_is(p, end, "RECENT"))
			return 0;
		if (strncasecmp(p, "FETCH (", 7) == 0 &&
		    (c->step == ST_FETCH || c->step == ST_FLAGS))
			return resp_fetch(c, num, p + 7, end);
		conn_fail(c, "unexpected: * %.100s", r);
		return -1;
	}
	/* OK [...], FLAGS, CAPABILITY, ENABLED, LIST ...: information. */
	if (!isalpha((unsigned char)*r)) {
		conn_fail(c, "malformed: * %.100s", r);
		return -1;
	}
	return 0;
}

/* Skips one value: a number, atom, quoted string, literal marker or
 * parenthesised list. Returns NULL when it is malformed. */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;

	do {
		if (p >= end)
			return NULL;
		if (*p == '(') {
			depth++;
			p++;
			continue;
		}
		if (*p == ')') {
			if (depth == 0)
				return NULL;
			depth--;
			p++;
		} else if (*p == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			if (p >= end)
				return NULL;
			p++;
		} else if (*p == '{') {
			uint64_t n;

			p++;
			if (parse_u64(&p, &n) < 0 || p >= end || *p != '}')
				return NULL;
			p++;
		} else {
			const char *s = p;

			while (p < end && *p != ' ' && *p != '(' && *p != ')' &&
			       *p != '"')
				p++;
			if (p == s)
				return NULL;
		}
		while (depth > 0 && p < end && *p == ' ')
			p++;
	} while (depth > 0);
	return p;
}

/* The attributes of "* SEQ FETCH (": fetch mode needs RFC822.SIZE and a
 * BODY[] literal of that size, select mode UID and FLAGS. */
static int resp_fetch(struct conn *c, uint64_t seq, const char *p,
		      const char *end)
{
	uint64_t size = UINT64_MAX, body = UINT64_MAX, uid = 0;
	bool flags = false;

	if (seq == 0 || seq > c->exists) {
		conn_fail(c, "FETCH of message %" PRIu64 " of %" PRIu64, seq,
			  c->exists);
		return -1;
	}
	while (p < end && *p != ')') {
		const char *name = p, *v;
		size_t nlen;
		int br = 0;

		while (p < end && (br > 0 || *p != ' ')) {
			br += *p == '[';
			br -= *p == ']';
			p++;
		}
		nlen = (size_t)(p - name);
		if (p >= end || nlen == 0) {
			conn_fail(c, "malformed FETCH of %" PRIu64, seq);
			return -1;
		}
		p++;
		v = p;
		p = skip_value(p, end);
		if (p == NULL) {
			conn_fail(c, "malformed FETCH value of %" PRIu64, seq);
			return -1;
		}
		if (nlen == 11 && strncasecmp(name, "RFC822.SIZE", 11) == 0) {
			if (parse_u64(&v, &size) < 0 || v != p)
				size = UINT64_MAX - 1;
		} else if (nlen == 6 && strncasecmp(name, "BODY[]", 6) == 0) {
			if (*v++ != '{' || parse_u64(&v, &body) < 0)
				body = UINT64_MAX - 1;
		} else if (nlen == 3 && strncasecmp(name, "UID", 3) == 0) {
			if (parse_u64(&v, &uid) < 0 || v != p)
				uid = 0;
		} else if (nlen == 5 && strncasecmp(name, "FLAGS", 5) == 0) {
			flags = *v == '(' && p[-1] == ')';
		}
		if (p < end && *p == ' ')
			p++;
	}
	if (p >= end || *p != ')' || p + 1 != end) {
		conn_fail(c, "FETCH of %" PRIu64 " does not end in ')'", seq);
		return -1;
	}
	if (c->step == ST_FETCH) {
		if (size >= UINT64_MAX - 1 || body >= UINT64_MAX - 1 ||
		    size != body) {
			conn_fail(c,
				  "message %" PRIu64 ": BODY[] literal %" PRIu64
				  ", RFC822.SIZE %" PRIu64,
				  seq, body, size);
			return -1;
		}
		if (c->seen[seq - 1]) {
			conn_fail(c, "message %" PRIu64 " fetched twice", seq);
			return -1;
		}
		c->seen[seq - 1] = 1;
		fetch_msgs++;
		fetch_octets += body;
	} else {
		if (uid == 0 || !flags || uid <= c->last_uid) {
			conn_fail(c,
				  "message %" PRIu64 ": UID %" PRIu64
				  " (previous %" PRIu64 "), FLAGS %s",
				  seq, uid, c->last_uid,
				  flags ? "present" : "missing");
			return -1;
		}
		c->last_uid = uid;
	}
	c->nfetch++;
	return 0;
}

/* "TAG OK|NO|BAD text". */
static int resp_tagged(struct conn *c, const char *r, size_t len)
{
	size_t tl = strlen(c->tag);
	const char *end = r + len;

	if (c->step == ST_HELD || c->step == ST_GREETING ||
	    c->step == ST_IDLE_START) {
		conn_fail(c, "unexpected: %.100s", r);
		return -1;
	}
	if (len <= tl || memcmp(r, c->tag, tl) != 0 || r[tl] != ' ') {
		conn_fail(c, "wrong tag (sent %s): %.100s", c->tag, r);
		return -1;
	}
	if (!word_is(r + tl + 1, end, "OK")) {
		conn_fail(c, "%.200s", r);
		return -1;
	}
	step_done(c);
	return c->fd >= 0 ? 0 : -1;
}

static void fetch_session_end(struct conn *c)
{
	double el = now() - c->t_step;

	if (el <= 0)
		el = 1e-9;
	printf("fetch session=%u client=%u msgs=%" PRIu64 " octets=%" PRIu64
	       " seconds=%.4f mb_s=%.2f msg_s=%.1f\n",
	       c->sessions + 1, c->idx, c->nfetch, c->sess_octets, el,
	       c->sess_octets / el / 1e6, c->nfetch / el);
	if (nsamples < MAX_SAMPLES) {
		samples[nsamples] = c->sess_octets / el / 1e6;
		samples2[nsamples++] = c->nfetch / el;
	}
}

/* The tagged OK of the current command: check it, send the next one. */
static void step_done(struct conn *c)
{
	double ms = (now() - c->t_step) * 1e3;

	switch (c->step) {
	case ST_LOGIN:
		c->login_ms = ms;
		if (o.mode == M_IDLE && !o.idle_cmd) {
			c->step = ST_HELD;
			idle_inflight--;
			idle_open++;
			return;
		}
		conn_cmd(c, ST_SELECT, "SELECT INBOX");
		return;
	case ST_SELECT:
		c->select_ms = ms;
		if (o.expect_msgs && c->exists != o.expect_msgs) {
			conn_fail(c,
				  "SELECT: %" PRIu64 " messages, expected %u",
				  c->exists, o.expect_msgs);
			return;
		}
		c->nfetch = 0;
		c->last_uid = 0;
		c->sess_octets = 0;
		if (o.mode == M_IDLE) {
			conn_cmd(c, ST_IDLE_START, "IDLE");
		} else if (o.mode == M_FETCH && c->exists > 0) {
			if (c->seen_cap < c->exists) {
				free(c->seen);
				c->seen = malloc(c->exists);
				c->seen_cap = c->exists;
				if (c->seen == NULL) {
					fprintf(stderr, "out of memory\n");
					exit(2);
				}
			}
			memset(c->seen, 0, c->exists);
			conn_cmd(c, ST_FETCH,
				 "FETCH 1:* (RFC822.SIZE BODY.PEEK[])");
		} else if (o.mode == M_SELECT && c->exists > 0) {
			conn_cmd(c, ST_FLAGS, "UID FETCH 1:* (FLAGS)");
		} else {
			conn_cmd(c, ST_LOGOUT, "LOGOUT");
		}
		return;
	case ST_FETCH:
	case ST_FLAGS:
		if (c->nfetch != c->exists) {
			conn_fail(c,
				  "%" PRIu64 " FETCH responses for %" PRIu64
				  " messages",
				  c->nfetch, c->exists);
			return;
		}
		if (c->step == ST_FETCH && o.expect_octets &&
		    c->sess_octets != o.expect_octets) {
			conn_fail(
			    c, "%" PRIu64 " octets fetched, expected %" PRIu64,
			    c->sess_octets, o.expect_octets);
			return;
		}
		if (c->step == ST_FETCH)
			fetch_session_end(c);
		else
			c->flags_ms = ms;
		conn_cmd(c, ST_LOGOUT, "LOGOUT");
		return;
	case ST_DONE:
		c->idling = false;
		conn_cmd(c, ST_LOGOUT, "LOGOUT");
		return;
	case ST_LOGOUT:
		if (!c->bye) {
			conn_fail(c, "LOGOUT answered without * BYE");
			return;
		}
		session_done(c);
		return;
	default:
		conn_fail(c, "tagged reply in an unexpected state");
		return;
	}
}

static void session_done(struct conn *c)
{
	double t = now();

	c->sessions++;
	conn_close(c);
	if (o.mode == M_IDLE) {
		idle_quit++;
		return;
	}
	if (o.mode == M_LOGIN) {
		logins++;
		t_last_done = t;
		if (nsamples < MAX_SAMPLES)
			samples[nsamples++] = (t - c->t_session) * 1e3;
		if (o.max_logins && started >= o.max_logins)
			running = false;
		if (running && t < t_stop)
			conn_start(c);
		return;
	}
	if (o.mode == M_SELECT) {
		printf("select session=%u msgs=%" PRIu64
		       " login_ms=%.2f select_ms=%.2f flags_ms=%.2f"
		       " total_ms=%.2f\n",
		       c->sessions, c->exists, c->login_ms, c->select_ms,
		       c->flags_ms, (t - c->t_session) * 1e3);
		fflush(stdout);
	}
	if (c->sessions < o.sessions && running)
		conn_start(c);
}

static void check_timeouts(void)
{
	double t = now();

	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (c->step == ST_FREE || c->step == ST_HELD)
			continue;
		if (t - c->t_cmd > o.timeout)
			conn_fail(c, "no reply for %.0f s", o.timeout);
	}
}

static bool loop_done(void)
{
	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].step != ST_FREE)
			return false;
	return true;
}

/* Idle mode: at most o.clients logins in flight until o.conns sessions
 * are open; then READY, and on a signal or after the hold time each one
 * leaves IDLE and logs out. */
static void idle_progress(double *t_ready, double hold)
{
	while (!idle_quitting && idle_started < o.conns &&
	       idle_inflight < o.clients && errors < ERR_ABORT) {
		struct conn *c = &conns[idle_started++];

		idle_inflight++;
		conn_start(c);
	}
	if (*t_ready < 0 && idle_started == o.conns && idle_inflight == 0) {
		*t_ready = now();
		printf("idle opened=%u failed=%u seconds=%.3f rate=%.1f\n",
		       idle_open, o.conns - idle_open, *t_ready - t_begin,
		       idle_open / (*t_ready - t_begin));
		printf("READY\n");
		fflush(stdout);
	}
	if (!idle_quitting && (got_signal || errors >= ERR_ABORT ||
			       (*t_ready >= 0 && now() - *t_ready > hold))) {
		idle_quitting = true;
		/* Given up before READY: say how far it got. */
		if (*t_ready < 0)
			printf("idle gave_up opened=%u started=%u errors=%lu\n",
			       idle_open, idle_started, errors);
		for (unsigned i = 0; i < nconns; i++) {
			struct conn *c = &conns[i];

			if (c->step == ST_HELD && c->idling) {
				conn_cmd(c, ST_DONE, "DONE");
			} else if (c->step == ST_HELD) {
				conn_cmd(c, ST_LOGOUT, "LOGOUT");
			} else if (c->step != ST_FREE) {
				idle_inflight--;
				conn_close(c);
			}
		}
	}
}

static int run_loop(void)
{
	struct epoll_event evs[EPOLL_BATCH];
	double t_ready = -1, last_tick = now();

	t_begin = now();
	t_stop = o.mode == M_LOGIN ? t_begin + o.seconds : 1e18;
	running = true;
	if (o.mode != M_IDLE) {
		for (unsigned i = 0; i < nconns; i++)
			conn_start(&conns[i]);
	}
	for (;;) {
		int n;
		double t;

		if (o.mode == M_IDLE) {
			idle_progress(&t_ready, o.seconds);
			if (idle_quitting && loop_done())
				break;
		} else if (loop_done()) {
			break;
		}
		n = epoll_wait(ep, evs, EPOLL_BATCH, TICK_MS);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		t = now();
		if (o.mode == M_LOGIN && (t >= t_stop || got_signal))
			running = false;
		if (o.mode != M_IDLE && got_signal)
			running = false;
		if (o.mode == M_LOGIN && t > t_stop + DRAIN_SECONDS) {
			for (unsigned i = 0; i < nconns; i++)
				if (conns[i].step != ST_FREE)
					conn_fail(&conns[i],
						  "unfinished after the run");
		}
		if (t - last_tick >= TICK_MS / 1e3) {
			last_tick = t;
			check_timeouts();
		}
	}
	return 0;
}

static void report(void)
{
	double el;

	switch (o.mode) {
	case M_LOGIN:
		el = (t_last_done > t_begin ? t_last_done : now()) - t_begin;
		qsort(samples, nsamples, sizeof(*samples), cmp_double);
		printf("login clients=%u logins=%" PRIu64
		       " seconds=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f"
		       " client_cpu=%.2f errors=%lu\n",
		       o.clients, logins, el, el > 0 ? logins / el : 0.0,
		       percentile(samples, nsamples, 0.50),
		       percentile(samples, nsamples, 0.99), cpu_seconds(),
		       errors);
		break;
	case M_FETCH:
		qsort(samples, nsamples, sizeof(*samples), cmp_double);
		qsort(samples2, nsamples, sizeof(*samples2), cmp_double);
		printf("fetch sessions=%zu msgs=%" PRIu64 " octets=%" PRIu64
		       " mb_s_med=%.2f msg_s_med=%.1f client_cpu=%.2f"
		       " errors=%lu\n",
		       nsamples, fetch_msgs, fetch_octets,
		       percentile(samples, nsamples, 0.5),
		       percentile(samples2, nsamples, 0.5), cpu_seconds(),
		       errors);
		break;
	case M_SELECT:
		printf("select done errors=%lu\n", errors);
		break;
	case M_IDLE:
		printf("idle closed=%u errors=%lu\n", idle_quit, errors);
		break;
	}
}

void usage(void)
{
	fprintf(
	    stderr,
	    "usage: imapload MODE [options]\n"
	    "  login   -p PORT -c CLIENTS [-t SECONDS] [-n MAXLOGINS]\n"
	    "  fetch   -p PORT [-r SESSIONS] [-m EXPECTED_MSGS]"
	    " [-O EXPECTED_OCTETS]\n"
	    "  select  -p PORT [-r SESSIONS] [-m EXPECTED_MSGS]\n"
	    "  idle    -p PORT -N CONNS [-c IN_FLIGHT] [-t HOLD_SECONDS]"
	    " [-I]\n"
	    "  common: -u USER_TEMPLATE (\"%%u\" = number) -f FIRST_NUMBER\n"
	    "          -U USER_COUNT -w PASSWORD -T REPLY_TIMEOUT\n"
	    "          -R  each session takes the next user of the pool\n"
	    "          -I  idle: SELECT INBOX and IDLE after LOGIN\n"
	    "It connects only to " BENCH_HOST
	    "; exit 1 if any error was seen.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "login") == 0)
		o.mode = M_LOGIN;
	else if (strcmp(argv[1], "fetch") == 0)
		o.mode = M_FETCH;
	else if (strcmp(argv[1], "select") == 0)
		o.mode = M_SELECT;
	else if (strcmp(argv[1], "idle") == 0)
		o.mode = M_IDLE;
	else
		usage();
	if (o.mode == M_IDLE)
		o.seconds = 3600;
	argc--;
	argv++;
	while ((opt = getopt(argc, argv, "p:u:f:U:w:c:t:n:N:r:m:O:T:RI")) !=
	       -1) {
		switch (opt) {
		case 'p':
			o.port = (unsigned)num_arg(optarg, 65535);
			break;
		case 'u':
			o.user_tmpl = optarg;
			break;
		case 'f':
			o.user_first = (unsigned)num_arg(optarg, 100000000);
			break;
		case 'U':
			o.user_count = (unsigned)num_arg(optarg, 100000000);
			break;
		case 'w':
			o.pass = optarg;
			break;
		case 'c':
			o.clients = (unsigned)num_arg(optarg, MAX_CONNS);
			break;
		case 't':
			o.seconds = secs_arg(optarg);
			break;
		case 'n':
			o.max_logins = num_arg(optarg, 1000000000);
			break;
		case 'N':
			o.conns = (unsigned)num_arg(optarg, MAX_CONNS);
			break;
		case 'r':
			o.sessions = (unsigned)num_arg(optarg, 1000);
			break;
		case 'm':
			o.expect_msgs = (unsigned)num_arg(optarg, MAX_MSGS);
			break;
		case 'O':
			o.expect_octets = num_arg(optarg, ULONG_MAX - 1);
			break;
		case 'T':
			o.timeout = secs_arg(optarg);
			break;
		case 'R':
			o.rotate = true;
			break;
		case 'I':
			o.idle_cmd = true;
			break;
		default:
			usage();
		}
	}
	/* Quoted strings carry the user and password: keep them plain. */
	if (strpbrk(o.user_tmpl, "\"\\\r\n") || strpbrk(o.pass, "\"\\\r\n"))
		usage();
	if (o.clients == 0 || o.port == 0 || o.sessions == 0)
		usage();
	if (o.mode == M_LOGIN && o.seconds <= 0 && o.max_logins == 0)
		usage();
	if (o.mode == M_LOGIN && o.seconds <= 0)
		o.seconds = 3600;

	lg_process_setup();

	nconns = o.mode == M_IDLE ? o.conns : o.clients;
	if (nconns == 0)
		usage();
	conns = calloc(nconns, sizeof(*conns));
	samples = calloc(MAX_SAMPLES, sizeof(*samples));
	samples2 = calloc(MAX_SAMPLES, sizeof(*samples2));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (conns == NULL || ep < 0 || !samples || !samples2) {
		fprintf(stderr, "setup failed\n");
		return 2;
	}
	for (unsigned i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].idx = i;
		conns[i].in = malloc(IN_MAX);
		conns[i].resp = malloc(RESP_MAX);
		if (conns[i].in == NULL || conns[i].resp == NULL) {
			fprintf(stderr, "out of memory\n");
			return 2;
		}
	}
	if (run_loop() < 0)
		return 2;
	report();
	return lg_exit_status();
}
