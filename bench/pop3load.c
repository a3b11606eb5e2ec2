/*
 * pop3load: the POP3 load generator behind bench/run.sh.
 *
 * One single-threaded epoll loop drives many client connections, each a
 * small state machine that sends one command and waits for its reply, as a
 * real mail client does (no pipelining). It only ever connects to
 * 127.0.0.1, and every loop is bounded by a count, a duration or both.
 *
 * Modes (see usage()):
 *   login   N clients log in and out in a loop (connect, USER, PASS, STAT,
 *           QUIT) for T seconds or M logins; prints logins/s, p50/p99.
 *   retr    each client logs in, LISTs, RETRs every message and checks that
 *           the un-dot-stuffed octet count equals the LIST size.
 *   cmds    log in and time STAT, UIDL and LIST one by one, R sessions in a
 *           row (session 1 is the "first session", session 2 "warm").
 *   idle    open N authenticated connections, print how long that took,
 *           print READY, and hold them until a signal or T seconds.
 *   maildir write a Maildir the way another delivery program would.
 *   pss     sum the PSS of processes and all their descendants.
 *
 * Strict: every -ERR, malformed reply, bare LF, wrong size, timeout or
 * unexpected close is an error; errors are counted, the first few are
 * printed, and the exit status is 1 if there was any.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

/* A reply line longer than this is a protocol error (RFC 2449 allows 512
 * for responses; message lines are at most 998 + CRLF by RFC 5322, we are
 * generous because the check is about framing, not policy). */
#define IN_MAX 65536
#define OUT_MAX 1024
#define MAX_CONNS 60000
#define MAX_MSGS 1000000
#define MAX_SAMPLES 4000000
#define MAX_PROCS 200000
#define EPOLL_BATCH 256
#define TICK_MS 100
/* After the last login is started, in-flight sessions get this long. */
#define DRAIN_SECONDS 30.0

enum mode { M_LOGIN, M_RETR, M_CMDS, M_IDLE };

enum step {
	ST_FREE,
	ST_CONNECTING,
	ST_GREETING,
	ST_USER,
	ST_PASS,
	ST_STAT,
	ST_UIDL,
	ST_LIST,
	ST_RETR,
	ST_QUIT,
	ST_IDLE,
};

static const char *const step_names[] = {
    "free", "connect", "greeting", "USER", "PASS", "STAT",
    "UIDL", "LIST",    "RETR",	   "QUIT", "idle",
};

struct conn {
	int fd;
	unsigned idx;	   /* client number: picks the user */
	unsigned sessions; /* sessions finished by this client */
	unsigned gen;	   /* bumped by every close: stale-callback check */
	unsigned started;  /* sessions started by this client */
	enum step step;
	bool multiline; /* inside the body of a multi-line reply */
	size_t inlen;
	size_t outlen, outoff;
	double t_session; /* connect() of this session */
	double t_cmd;	  /* last command sent or bytes received */
	double t_step;	  /* current command sent (for cmds timings) */
	double t_login_ms, t_stat_ms, t_uidl_ms, t_list_ms;
	uint64_t ml_octets; /* un-stuffed octets of the current reply */
	unsigned ml_lines;
	unsigned nmsg;	 /* from LIST */
	unsigned next;	 /* next message to RETR (1-based) */
	uint64_t *sizes; /* LIST sizes, [0] is message 1 */
	unsigned sizes_cap;
	uint64_t stat_count, stat_octets, list_sum;
	unsigned uidl_count;
	double t_retr0; /* first RETR of this session sent */
	uint64_t sess_octets;
	char *in;
	char out[OUT_MAX];
};

struct opts {
	enum mode mode;
	unsigned port;
	const char *user_tmpl; /* "%u" is replaced by the user number */
	unsigned user_first;
	unsigned user_count;
	const char *pass;
	unsigned clients;
	double seconds;
	uint64_t max_logins;
	unsigned conns;
	unsigned sessions;
	unsigned expect_msgs;
	double timeout;
	bool rotate; /* each session takes the next user of the pool */
};

static struct opts o = {
    .port = 110,
    .user_tmpl = "bench%u@bench.test",
    .user_first = 1,
    .user_count = 0,
    .pass = "benchpass",
    .clients = 1,
    .seconds = 5.0,
    .max_logins = 0,
    .conns = 100,
    .sessions = 1,
    .expect_msgs = 0,
    .timeout = 60.0,
};

static int ep = -1;
static struct conn *conns;
static unsigned nconns;

/* login mode */
static bool running;
static double t_begin, t_stop, t_last_done;
static uint64_t logins, started;
static double *samples, *samples2;
static size_t nsamples;

/* retr mode */
static uint64_t retr_octets, retr_msgs, wire_octets;
static double retr_first = -1, retr_last;

/* idle mode */
static unsigned idle_open, idle_inflight, idle_started, idle_quit;
static bool idle_quitting;

static void conn_start(struct conn *c);
static void conn_close(struct conn *c);
static void conn_fail(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_send(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int conn_flush(struct conn *c);
static void conn_event(struct conn *c, uint32_t ev);
static int conn_read(struct conn *c);
static int conn_line(struct conn *c, char *line, size_t len);
static int conn_reply(struct conn *c, const char *line, size_t len);
static int conn_ml_line(struct conn *c, const char *line, size_t len);
static void conn_ml_end(struct conn *c);
static void session_done(struct conn *c);
static void retr_session_end(struct conn *c);
static void user_name(const struct conn *c, char *buf, size_t size);
static void check_timeouts(void);
static int run_loop(void);
static void report(void);
static int cmd_maildir(int argc, char **argv);
static int cmd_pss(int argc, char **argv);

/* Replaces the first "%u" of the template by the user number; a template
 * without "%u" names one user for every client. Client i uses user
 * FIRST + i, or with -R the pool in turn: i, i + clients, i + 2 * clients,
 * ... so one mailbox is not logged into again the moment it is left. */
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
	c->multiline = false;
	c->inlen = 0;
	c->outlen = 0;
	c->outoff = 0;
}

/* Starts a new session: a non-blocking connect to 127.0.0.1. */
static void conn_start(struct conn *c)
{
	const char *failed;

	c->step = ST_CONNECTING;
	c->started++;
	c->t_session = now();
	c->t_cmd = c->t_session;
	c->nmsg = 0;
	c->next = 0;
	c->uidl_count = 0;
	failed = lg_connect(ep, o.port, c, &c->fd);
	if (failed != NULL) {
		conn_fail(c, "%s: %s", failed, strerror(errno));
		return;
	}
	if (o.mode == M_LOGIN)
		started++;
}

/* Records an error, closes the connection and lets the mode decide what
 * comes next (login clients start over while the run lasts). */
static void conn_fail(struct conn *c, const char *fmt, ...)
{
	char prefix[160];
	char user[128];
	va_list ap;

	user_name(c, user, sizeof(user));
	snprintf(prefix, sizeof(prefix), "client %u user %s at %s: ", c->idx,
		 user, step_names[c->step]);
	va_start(ap, fmt);
	verr(prefix, fmt, ap);
	va_end(ap);
	if (o.mode == M_IDLE && c->step != ST_IDLE && c->step != ST_QUIT)
		idle_inflight--;
	conn_close(c);
	if (errors >= ERR_ABORT)
		running = false;
	if (o.mode == M_LOGIN && running && now() < t_stop)
		conn_start(c);
	/* A failed session still counts as one: the next one runs, so one
	 * -ERR does not hide the rest of the figure. */
	if ((o.mode == M_RETR || o.mode == M_CMDS) && running &&
	    ++c->sessions < o.sessions)
		conn_start(c);
}

static void conn_send(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(c->out, sizeof(c->out) - 2, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(c->out) - 2) {
		conn_fail(c, "command too long");
		return;
	}
	c->out[len++] = '\r';
	c->out[len++] = '\n';
	c->outlen = (size_t)len;
	c->outoff = 0;
	c->t_cmd = now();
	c->t_step = c->t_cmd;
	conn_flush(c);
}

/* Writes what is pending; asks for EPOLLOUT only while something is. */
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

/* One read, then every complete line in the buffer. */
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
	wire_octets += (uint64_t)n;
	c->inlen += (size_t)n;
	c->t_cmd = now();
	while (start < c->inlen) {
		char *line = c->in + start;
		char *lf = memchr(line, '\n', c->inlen - start);
		size_t len;
		unsigned gen = c->gen;

		if (lf == NULL)
			break;
		len = (size_t)(lf - line);
		if (len == 0 || line[len - 1] != '\r') {
			conn_fail(c, "line ends in a bare LF");
			return -1;
		}
		len--;
		line[len] = '\0'; /* the CR: handlers get a C string */
		start += len + 2;
		/* A handler may have ended (and restarted) the session:
		 * then this buffer is gone. */
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

static int conn_line(struct conn *c, char *line, size_t len)
{
	if (memchr(line, '\0', len) != NULL && !c->multiline) {
		conn_fail(c, "NUL in a reply");
		return -1;
	}
	if (c->multiline)
		return conn_ml_line(c, line, len);
	return conn_reply(c, line, len);
}

/* The first line of a reply: +OK moves the session on, anything else
 * is an error that ends it. */
static int conn_reply(struct conn *c, const char *line, size_t len)
{
	char user[128];
	const char *p;
	uint64_t a, b;
	double t = now();

	if (c->step == ST_IDLE || c->step == ST_FREE ||
	    c->step == ST_CONNECTING) {
		conn_fail(c, "unsolicited line: %.*s", (int)len, line);
		return -1;
	}
	if (len < 3 || memcmp(line, "+OK", 3) != 0 ||
	    (len > 3 && line[3] != ' ')) {
		conn_fail(c, "reply: %.*s", (int)(len > 200 ? 200 : len), line);
		return -1;
	}
	switch (c->step) {
	case ST_GREETING:
		user_name(c, user, sizeof(user));
		c->step = ST_USER;
		conn_send(c, "USER %s", user);
		break;
	case ST_USER:
		c->step = ST_PASS;
		conn_send(c, "PASS %s", o.pass);
		break;
	case ST_PASS:
		c->t_login_ms = (t - c->t_step) * 1e3;
		if (o.mode == M_IDLE) {
			c->step = ST_IDLE;
			idle_inflight--;
			idle_open++;
		} else if (o.mode == M_RETR) {
			c->step = ST_LIST;
			conn_send(c, "LIST");
		} else {
			c->step = ST_STAT;
			conn_send(c, "STAT");
		}
		break;
	case ST_STAT:
		c->t_stat_ms = (t - c->t_step) * 1e3;
		p = line + 3;
		if (*p++ != ' ' || parse_u64(&p, &a) < 0 || *p++ != ' ' ||
		    parse_u64(&p, &b) < 0 || (*p != '\0' && *p != ' ')) {
			conn_fail(c, "bad STAT reply: %.*s", (int)len, line);
			return -1;
		}
		c->stat_count = a;
		c->stat_octets = b;
		if (o.mode == M_CMDS) {
			c->step = ST_UIDL;
			conn_send(c, "UIDL");
		} else {
			c->step = ST_QUIT;
			conn_send(c, "QUIT");
		}
		break;
	case ST_UIDL:
	case ST_LIST:
	case ST_RETR:
		c->multiline = true;
		c->ml_octets = 0;
		c->ml_lines = 0;
		c->list_sum = 0;
		break;
	case ST_QUIT:
		session_done(c);
		return -1;
	default:
		conn_fail(c, "reply in an unexpected state");
		return -1;
	}
	return c->fd >= 0 ? 0 : -1;
}

/* A line inside a multi-line reply; "." alone ends it, a leading dot
 * of any other line is stuffing (RFC 1939 section 3). */
static int conn_ml_line(struct conn *c, const char *line, size_t len)
{
	const char *p;
	uint64_t n, v;

	if (len == 1 && line[0] == '.') {
		c->multiline = false;
		conn_ml_end(c);
		return c->fd >= 0 ? 0 : -1;
	}
	if (len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	c->ml_lines++;
	if (c->step == ST_RETR) {
		c->ml_octets += len + 2;
		return 0;
	}
	/* "N SIZE" for LIST, "N UID" for UIDL: N counts up from 1. */
	p = line;
	if (parse_u64(&p, &n) < 0 || *p++ != ' ' || n != c->ml_lines) {
		conn_fail(c, "bad line %u: %.*s", c->ml_lines,
			  (int)(len > 100 ? 100 : len), line);
		return -1;
	}
	if (c->step == ST_UIDL) {
		size_t ulen = len - (size_t)(p - line);

		/* RFC 1939: 1 to 70 characters in 0x21..0x7E. */
		if (ulen < 1 || ulen > 70) {
			conn_fail(c, "UIDL %" PRIu64 ": bad length %zu", n,
				  ulen);
			return -1;
		}
		for (size_t i = 0; i < ulen; i++) {
			if (p[i] < 0x21 || p[i] > 0x7e) {
				conn_fail(c, "UIDL %" PRIu64 ": bad char", n);
				return -1;
			}
		}
		return 0;
	}
	if (parse_u64(&p, &v) < 0 || *p != '\0') {
		conn_fail(c, "bad LIST line: %.*s", (int)len, line);
		return -1;
	}
	if (c->ml_lines > MAX_MSGS) {
		conn_fail(c, "more than %d messages", MAX_MSGS);
		return -1;
	}
	if (c->ml_lines > c->sizes_cap) {
		unsigned cap = c->sizes_cap ? c->sizes_cap * 2 : 1024;
		uint64_t *s = realloc(c->sizes, cap * sizeof(*s));

		if (s == NULL) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		c->sizes = s;
		c->sizes_cap = cap;
	}
	c->sizes[c->ml_lines - 1] = v;
	c->list_sum += v;
	return 0;
}

/* The end of a multi-line reply: check it and send the next command. */
static void conn_ml_end(struct conn *c)
{
	double ms = (now() - c->t_step) * 1e3;

	switch (c->step) {
	case ST_UIDL:
		c->t_uidl_ms = ms;
		c->uidl_count = c->ml_lines;
		if (c->uidl_count != c->stat_count) {
			conn_fail(c, "UIDL has %u lines, STAT said %" PRIu64,
				  c->uidl_count, c->stat_count);
			return;
		}
		c->step = ST_LIST;
		conn_send(c, "LIST");
		return;
	case ST_LIST:
		c->t_list_ms = ms;
		c->nmsg = c->ml_lines;
		if (o.mode == M_CMDS && (c->nmsg != c->stat_count ||
					 c->list_sum != c->stat_octets)) {
			conn_fail(c,
				  "LIST has %u messages of %" PRIu64
				  " octets, STAT said %" PRIu64 " of %" PRIu64,
				  c->nmsg, c->list_sum, c->stat_count,
				  c->stat_octets);
			return;
		}
		if (o.expect_msgs && c->nmsg != o.expect_msgs) {
			conn_fail(c, "LIST has %u messages, expected %u",
				  c->nmsg, o.expect_msgs);
			return;
		}
		if (o.mode == M_RETR && c->nmsg > 0) {
			c->next = 1;
			c->step = ST_RETR;
			if (retr_first < 0)
				retr_first = now();
			c->sess_octets = 0;
			conn_send(c, "RETR 1");
			c->t_retr0 = c->t_step;
			return;
		}
		c->step = ST_QUIT;
		conn_send(c, "QUIT");
		return;
	case ST_RETR:
		if (c->ml_octets != c->sizes[c->next - 1]) {
			conn_fail(
			    c,
			    "RETR %u: %" PRIu64
			    " octets after un-stuffing, LIST said %" PRIu64,
			    c->next, c->ml_octets, c->sizes[c->next - 1]);
			return;
		}
		retr_octets += c->ml_octets;
		c->sess_octets += c->ml_octets;
		retr_msgs++;
		retr_last = now();
		if (c->next < c->nmsg) {
			c->next++;
			conn_send(c, "RETR %u", c->next);
			return;
		}
		retr_session_end(c);
		c->step = ST_QUIT;
		conn_send(c, "QUIT");
		return;
	default:
		conn_fail(c, "multi-line reply in an unexpected state");
		return;
	}
}

/* The last RETR of a session: one throughput sample per session, so a
 * single stall (a 40 ms delayed ACK on loopback) can be told apart from
 * a server that is slow every time. */
static void retr_session_end(struct conn *c)
{
	double el = retr_last - c->t_retr0;

	if (el <= 0)
		el = 1e-9;
	printf("retr session=%u client=%u msgs=%u octets=%" PRIu64
	       " seconds=%.4f mb_s=%.2f msg_s=%.1f\n",
	       c->sessions + 1, c->idx, c->nmsg, c->sess_octets, el,
	       c->sess_octets / el / 1e6, c->nmsg / el);
	if (nsamples < MAX_SAMPLES) {
		samples[nsamples] = c->sess_octets / el / 1e6;
		samples2[nsamples++] = c->nmsg / el;
	}
}

/* QUIT answered: the session is complete. */
static void session_done(struct conn *c)
{
	double t = now();

	c->sessions++;
	if (o.mode == M_IDLE) {
		idle_quit++;
		conn_close(c);
		return;
	}
	conn_close(c);
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
	if (o.mode == M_CMDS) {
		printf("cmds session=%u msgs=%" PRIu64 " octets=%" PRIu64
		       " login_ms=%.2f stat_ms=%.2f uidl_ms=%.2f"
		       " list_ms=%.2f total_ms=%.2f\n",
		       c->sessions, c->stat_count, c->stat_octets,
		       c->t_login_ms, c->t_stat_ms, c->t_uidl_ms, c->t_list_ms,
		       (t - c->t_session) * 1e3);
		fflush(stdout);
	}
	if (c->sessions < o.sessions)
		conn_start(c);
}

static void check_timeouts(void)
{
	double t = now();

	for (unsigned i = 0; i < nconns; i++) {
		struct conn *c = &conns[i];

		if (c->step == ST_FREE || c->step == ST_IDLE)
			continue;
		if (t - c->t_cmd > o.timeout)
			conn_fail(c, "no reply for %.0f s", o.timeout);
	}
}

static bool loop_done(void)
{
	unsigned busy = 0;

	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].step != ST_FREE)
			busy++;
	if (o.mode == M_IDLE) {
		if (!idle_quitting)
			return false;
		return busy == 0;
	}
	return busy == 0;
}

/* Idle mode: keeps at most o.clients logins in flight until o.conns
 * connections are open; once every one is, prints READY and waits. */
static void idle_progress(double *t_ready, double t_end_wait)
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
	if (!idle_quitting &&
	    (got_signal || errors >= ERR_ABORT ||
	     (*t_ready >= 0 && now() - *t_ready > t_end_wait))) {
		idle_quitting = true;
		for (unsigned i = 0; i < nconns; i++) {
			struct conn *c = &conns[i];

			if (c->step == ST_IDLE) {
				c->step = ST_QUIT;
				conn_send(c, "QUIT");
			} else if (c->step != ST_FREE) {
				/* still logging in: nothing to measure */
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

		if (o.mode == M_IDLE)
			idle_progress(&t_ready, o.seconds);
		else if (loop_done())
			break;
		if (o.mode == M_IDLE && idle_quitting && loop_done())
			break;
		n = epoll_wait(ep, evs, EPOLL_BATCH, TICK_MS);
		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return -1;
		}
		for (int i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		t = now();
		if (o.mode == M_LOGIN && t >= t_stop)
			running = false;
		if (o.mode == M_LOGIN && got_signal)
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
	case M_RETR:
		el = retr_last - retr_first;
		if (retr_first < 0 || el <= 0)
			el = 1e-9;
		qsort(samples, nsamples, sizeof(*samples), cmp_double);
		qsort(samples2, nsamples, sizeof(*samples2), cmp_double);
		printf("retr clients=%u sessions=%zu msgs=%" PRIu64
		       " octets=%" PRIu64 " wire_octets=%" PRIu64
		       " seconds=%.4f mb_s=%.2f msg_s=%.1f mb_s_med=%.2f"
		       " msg_s_med=%.1f errors=%lu\n",
		       o.clients, nsamples, retr_msgs, retr_octets, wire_octets,
		       el, retr_octets / el / 1e6, retr_msgs / el,
		       percentile(samples, nsamples, 0.5),
		       percentile(samples2, nsamples, 0.5), errors);
		break;
	case M_CMDS:
		printf("cmds done errors=%lu\n", errors);
		break;
	case M_IDLE:
		printf("idle closed=%u errors=%lu\n", idle_quit, errors);
		break;
	}
}

/* ---- maildir: write messages as an outside delivery program would ---- */

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Fills buf with a message of exactly size octets (LF line ends, as
 * Maildir stores them). The body is full of lines that need
 * dot-stuffing: ".x", "..x" and "." alone. */
static size_t message_make(char *buf, size_t size, unsigned n, const char *rcpt)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;";
	size_t len;
	int h;

	h = snprintf(buf, size,
		     "Return-Path: <sender@bench.test>\n"
		     "From: Bench Sender <sender@bench.test>\n"
		     "To: <%s>\n"
		     "Subject: bench message %u\n"
		     "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
		     "Message-ID: <%u.%" PRIu64 "@bench.test>\n"
		     "\n",
		     rcpt, n, n, rng());
	if (h < 0 || (size_t)h >= size)
		return 0;
	len = (size_t)h;
	while (len < size) {
		size_t room = size - len, ll;
		unsigned kind = (unsigned)(rng() % 10);

		ll = 1 + (size_t)(rng() % 76);
		if (ll + 1 > room)
			ll = room - 1;
		for (size_t i = 0; i < ll; i++)
			buf[len + i] = chars[rng() % (sizeof(chars) - 1)];
		if (kind == 0 && ll >= 1)
			buf[len] = '.';
		if (kind == 1 && ll >= 2) {
			buf[len] = '.';
			buf[len + 1] = '.';
		}
		if (kind == 2 && ll >= 1) {
			ll = room > 2 ? 1 : ll;
			buf[len] = '.';
		}
		len += ll;
		buf[len++] = '\n';
	}
	return len;
}

static int mkdir_owned(const char *path, uid_t uid, gid_t gid, bool own)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (own && chown(path, uid, gid) < 0) {
		fprintf(stderr, "chown %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* pop3load maildir -d DIR -n COUNT -s SIZE [-o UID:GID] [-r RCPT] */
static int cmd_maildir(int argc, char **argv)
{
	const char *dir = NULL, *rcpt = "user@bench.test";
	unsigned long count = 0, size = 0, uid = 0, gid = 0;
	bool own = false;
	char path[4096], path2[4096], *buf;
	struct timeval tv;
	uint64_t total = 0, crlf_total = 0;
	int opt;

	while ((opt = getopt(argc, argv, "d:n:s:o:r:")) != -1) {
		char *end;

		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			count = strtoul(optarg, &end, 10);
			if (*end != '\0' || count > MAX_MSGS)
				usage();
			break;
		case 's':
			size = strtoul(optarg, &end, 10);
			if (*end != '\0' || size < 512 || size > (64UL << 20))
				usage();
			break;
		case 'o':
			uid = strtoul(optarg, &end, 10);
			if (*end != ':')
				usage();
			gid = strtoul(end + 1, &end, 10);
			if (*end != '\0')
				usage();
			own = true;
			break;
		case 'r':
			rcpt = optarg;
			break;
		default:
			usage();
		}
	}
	if (dir == NULL || count == 0 || size == 0)
		usage();
	if (mkdir_owned(dir, (uid_t)uid, (gid_t)gid, own) < 0)
		return 1;
	for (int i = 0; i < 3; i++) {
		static const char *const sub[] = {"tmp", "new", "cur"};

		snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
		if (mkdir_owned(path, (uid_t)uid, (gid_t)gid, own) < 0)
			return 1;
	}
	buf = malloc(size + 1);
	if (buf == NULL)
		return 1;
	rng_state ^= (uint64_t)getpid() << 20;
	gettimeofday(&tv, NULL);
	for (unsigned long i = 0; i < count; i++) {
		size_t len = message_make(buf, size, (unsigned)i + 1, rcpt);
		int fd, w1, w2;

		if (len == 0)
			return 1;
		/* A unique name as qmail's delivery convention builds it:
		 * time, microseconds, pid and a counter. */
		w1 = snprintf(path, sizeof(path),
			      "%s/tmp/%lld.M%ldP%dQ%lu.pop3load", dir,
			      (long long)tv.tv_sec, (long)tv.tv_usec,
			      (int)getpid(), i + 1);
		w2 = snprintf(path2, sizeof(path2),
			      "%s/new/%lld.M%ldP%dQ%lu.pop3load", dir,
			      (long long)tv.tv_sec, (long)tv.tv_usec,
			      (int)getpid(), i + 1);
		if (w1 < 0 || (size_t)w1 >= sizeof(path) || w2 < 0 ||
		    (size_t)w2 >= sizeof(path2))
			return 1;
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write_all(fd, buf, len) < 0 ||
		    (own && fchown(fd, (uid_t)uid, (gid_t)gid) < 0) ||
		    close(fd) < 0 || rename(path, path2) < 0) {
			fprintf(stderr, "writing %s: %s\n", path,
				strerror(errno));
			return 1;
		}
		total += len;
		crlf_total += len;
		for (size_t k = 0; k < len; k++)
			crlf_total += buf[k] == '\n';
	}
	free(buf);
	printf("maildir dir=%s msgs=%lu octets=%" PRIu64 " pop3_octets=%" PRIu64
	       "\n",
	       dir, count, total, crlf_total);
	return 0;
}

/* ---- pss: memory of a process tree ---- */

struct proc {
	pid_t pid, ppid;
};

static int proc_ppid(pid_t pid, pid_t *ppid_r)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything, so look for
	 * the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return -1;
	*ppid_r = (pid_t)strtol(p + 4, NULL, 10);
	return 0;
}

static long proc_pss_kb(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "Pss:", 4) == 0) {
			kb = strtol(line + 4, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/* pop3load pss PID...: PSS in kB of each PID and every descendant. */
static int cmd_pss(int argc, char **argv)
{
	struct proc *procs = calloc(MAX_PROCS, sizeof(*procs));
	bool *in = calloc(MAX_PROCS, sizeof(*in));
	size_t np = 0, count = 0;
	long total = 0;
	struct dirent *de;
	DIR *d;
	bool grew;

	if (procs == NULL || in == NULL || argc < 2)
		usage();
	d = opendir("/proc");
	if (d == NULL)
		return 1;
	while ((de = readdir(d)) != NULL && np < MAX_PROCS) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		pid_t ppid;

		if (*end != '\0' || pid <= 0)
			continue;
		if (proc_ppid((pid_t)pid, &ppid) == 0) {
			procs[np].pid = (pid_t)pid;
			procs[np].ppid = ppid;
			np++;
		}
	}
	closedir(d);
	for (int a = 1; a < argc; a++) {
		long root = strtol(argv[a], NULL, 10);

		for (size_t i = 0; i < np; i++)
			if (procs[i].pid == root)
				in[i] = true;
	}
	/* Descendants: repeat until no process joins (depth is small). */
	do {
		grew = false;
		for (size_t i = 0; i < np; i++) {
			if (in[i])
				continue;
			for (size_t j = 0; j < np; j++) {
				if (in[j] && procs[j].pid == procs[i].ppid) {
					in[i] = true;
					grew = true;
					break;
				}
			}
		}
	} while (grew);
	for (size_t i = 0; i < np; i++) {
		long kb;

		if (!in[i])
			continue;
		kb = proc_pss_kb(procs[i].pid);
		if (kb >= 0) {
			total += kb;
			count++;
		}
	}
	printf("pss_kb=%ld procs=%zu\n", total, count);
	free(procs);
	free(in);
	return 0;
}

void usage(void)
{
	fprintf(stderr,
		"usage: pop3load MODE [options]\n"
		"  login   -p PORT -c CLIENTS [-t SECONDS] [-n MAXLOGINS]\n"
		"  retr    -p PORT [-c CLIENTS] [-r SESSIONS] [-m EXPECTED]\n"
		"  cmds    -p PORT [-r SESSIONS] [-m EXPECTED_MSGS]\n"
		"  idle    -p PORT -N CONNS [-c IN_FLIGHT] [-t HOLD_SECONDS]\n"
		"  common: -u USER_TEMPLATE (\"%%u\" = number, default "
		"bench%%u@bench.test)\n"
		"          -f FIRST_NUMBER -U USER_COUNT -w PASSWORD "
		"-T REPLY_TIMEOUT\n"
		"          -R  each session takes the next user of the pool\n"
		"  maildir -d DIR -n COUNT -s SIZE [-o UID:GID] [-r RCPT]\n"
		"  pss     PID...   (PSS of each PID and its descendants)\n"
		"It connects only to " BENCH_HOST
		"; exit 1 if any error was seen.\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int opt;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "maildir") == 0)
		return cmd_maildir(argc - 1, argv + 1);
	if (strcmp(argv[1], "pss") == 0)
		return cmd_pss(argc - 1, argv + 1);
	if (strcmp(argv[1], "login") == 0)
		o.mode = M_LOGIN;
	else if (strcmp(argv[1], "retr") == 0)
		o.mode = M_RETR;
	else if (strcmp(argv[1], "cmds") == 0)
		o.mode = M_CMDS;
	else if (strcmp(argv[1], "idle") == 0)
		o.mode = M_IDLE;
	else
		usage();
	if (o.mode == M_IDLE)
		o.seconds = 3600;
	argc--;
	argv++;
	while ((opt = getopt(argc, argv, "p:u:f:U:w:c:t:n:N:r:m:T:R")) != -1) {
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
		case 'T':
			o.timeout = secs_arg(optarg);
			break;
		case 'R':
			o.rotate = true;
			break;
		default:
			usage();
		}
	}
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
		if (conns[i].in == NULL) {
			fprintf(stderr, "out of memory\n");
			return 2;
		}
	}
	if (run_loop() < 0)
		return 2;
	report();
	return lg_exit_status();
}
