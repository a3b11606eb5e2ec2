/*
 * Unit tests for src/delivery/dns.c against a real DNS server: dnsmasq,
 * started here on 127.0.0.1 and a free port, authoritative for .test
 * (--local=/test/ gives a real NXDOMAIN for unknown names there). Names
 * outside .test get REFUSED (no upstream), a temporary failure. Skips
 * (exit 77) with a message when dnsmasq cannot run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "delivery/dns.h"

#define DNSMASQ "/usr/sbin/dnsmasq"
#define MAX_HOSTS 16
#define MAX_ADDRS 20
#define MANY_MX 12

struct outcome {
	int calls;
	enum dns_status status;
	char error[256];
	bool implicit_mx;
	size_t host_count;
	struct {
		char name[256];
		unsigned preference;
		size_t addr_count;
		char addrs[MAX_ADDRS][INET6_ADDRSTRLEN + 8];
	} hosts[MAX_HOSTS];
};

static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static struct event_base *base;

/* ---- helpers ---- */

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char a[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, size, "%s/%u", a, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, size, "%s/%u", a, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, size, "family %d", ss->ss_family);
	}
}

static void record(void *ctx, const struct dns_result *res)
{
	struct outcome *o = ctx;

	o->calls++;
	o->status = res->status;
	snprintf(o->error, sizeof(o->error), "%s", res->error);
	o->implicit_mx = res->implicit_mx;
	o->host_count = res->host_count;
	for (size_t i = 0; i < res->host_count && i < MAX_HOSTS; i++) {
		snprintf(o->hosts[i].name, sizeof(o->hosts[i].name), "%s",
			 res->hosts[i].name);
		o->hosts[i].preference = res->hosts[i].preference;
		o->hosts[i].addr_count = res->hosts[i].addr_count;
		for (size_t j = 0;
		     j < res->hosts[i].addr_count && j < MAX_ADDRS; j++)
			addr_text(&res->hosts[i].addrs[j], o->hosts[i].addrs[j],
				  sizeof(o->hosts[i].addrs[j]));
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop until o has an answer or ms milliseconds have passed. */
static void run_until(struct outcome *o, int ms)
{
	bool expired = false;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *t = evtimer_new(base, timeout_cb, &expired);

	evtimer_add(t, &tv);
	while (!expired && (o == NULL || o->calls == 0))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static struct dns_resolver *resolver_at(const char *server)
{
	struct config cfg;
	char *servers[2] = {(char *)server, NULL};
	char error[256] = "";
	struct dns_resolver *r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.dns_servers = servers;
	cfg.dns_server_count = 1;
	r = dns_resolver_new(base, &cfg, error, sizeof(error));
	if (r == NULL)
		fail_msg("dns_resolver_new(%s): %s", server, error);
	return r;
}

static struct dns_resolver *resolver(void)
{
	char server[64];

	snprintf(server, sizeof(server), "127.0.0.1:%d", dnsmasq_port);
	return resolver_at(server);
}

static void resolve_mx(const char *domain, struct outcome *o)
{
	struct dns_resolver *r = resolver();
	struct dns_query *q;

	memset(o, 0, sizeof(*o));
	q = dns_resolve_mx(r, domain, record, o);
	assert_non_null(q);
	assert_int_equal(o->calls, 0); /* never called synchronously */
	run_until(o, 15000);
	assert_int_equal(o->calls, 1);
	dns_resolver_free(&r);
	assert_null(r);
}

static void resolve_host(const char *host, struct outcome *o)
{
	struct dns_resolver *r = resolver();
	struct dns_query *q;

	memset(o, 0, sizeof(*o));
	q = dns_resolve_host(r, host, record, o);
	assert_non_null(q);
	assert_int_equal(o->calls, 0);
	run_until(o, 15000);
	assert_int_equal(o->calls, 1);
	dns_resolver_free(&r);
}

/* A UDP socket on 127.0.0.1 that is bound and never read: a server
 * that does not answer. */
static int silent_server(int *port_r)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port_r = ntohs(sin.sin_port);
	return fd;
}

/* A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both). */
static int free_port(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int port, fd2;
		int fd = silent_server(&port);
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		fd2 = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(fd2, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd2);
			close(fd);
			return port;
		}
		close(fd2);
		close(fd);
	}
	return -1;
}

static bool udp_port_taken(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	bool taken;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	taken = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
		errno == EADDRINUSE;
	close(fd);
	return taken;
}

static void arg_add(char **argv, int *argc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void arg_add(char **argv, int *argc, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	argv[(*argc)++] = strdup(buf);
	argv[*argc] = NULL;
}

/* Returns 0 when dnsmasq answers on dnsmasq_port, else -1 with why. */
static int dnsmasq_start(char *why, size_t why_size)
{
	char *argv[128];
	int argc = 0, status;

	if (access(DNSMASQ, X_OK) != 0) {
		snprintf(why, why_size, "%s not installed", DNSMASQ);
		return -1;
	}
	dnsmasq_port = free_port();
	if (dnsmasq_port < 0) {
		snprintf(why, why_size, "no free port");
		return -1;
	}
	arg_add(argv, &argc, "%s", DNSMASQ);
	arg_add(argv, &argc, "--keep-in-foreground");
	arg_add(argv, &argc, "--conf-file=/dev/null");
	/* As root, stay root: a change of user would clear PDEATHSIG. */
	if (geteuid() == 0)
		arg_add(argv, &argc, "--user=root");
	arg_add(argv, &argc, "--pid-file=");
	arg_add(argv, &argc, "--no-resolv");
	arg_add(argv, &argc, "--no-hosts");
	arg_add(argv, &argc, "--port=%d", dnsmasq_port);
	arg_add(argv, &argc, "--listen-address=127.0.0.1");
	arg_add(argv, &argc, "--bind-interfaces");
	arg_add(argv, &argc, "--local=/test/");
	arg_add(argv, &argc, "--mx-host=example.test,mx1.example.test,10");
	arg_add(argv, &argc, "--mx-host=example.test,mx2.example.test,20");
	arg_add(argv, &argc, "--host-record=mx1.example.test,127.0.0.2");
	arg_add(argv, &argc, "--host-record=mx2.example.test,127.0.0.3,::1");
	/* RFC 7505 null MX: dnsmasq encodes "." as the root name. */
	arg_add(argv, &argc, "--mx-host=nullmx.test,.,0");
	arg_add(argv, &argc, "--host-record=aonly.test,127.0.0.4");
	arg_add(argv, &argc, "--mx-host=eq.test,a.eq.test,10");
	arg_add(argv, &argc, "--mx-host=eq.test,b.eq.test,10");
	arg_add(argv, &argc, "--host-record=a.eq.test,127.0.0.5");
	arg_add(argv, &argc, "--host-record=b.eq.test,127.0.0.6");
	arg_add(argv, &argc, "--mx-host=noaddr.test,ghost.noaddr.test,10");
	arg_add(argv, &argc, "--mx-host=part.test,ghost.part.test,5");
	arg_add(argv, &argc, "--mx-host=part.test,mx1.example.test,50");
	arg_add(argv, &argc, "--mx-host=bad.test,bad*host.test,10");
	arg_add(argv, &argc, "--mx-host=bad.test,mx1.example.test,20");
	arg_add(argv, &argc, "--mx-host=v6only.test,mx6.v6only.test,10");
	arg_add(argv, &argc, "--host-record=mx6.v6only.test,::1");
	for (int i = 1; i <= MANY_MX; i++) {
		/* Preferences in reverse so sorting has work to do. */
		arg_add(argv, &argc, "--mx-host=many.test,h%d.many.test,%d", i,
			100 - i);
		arg_add(argv, &argc, "--host-record=h%d.many.test,127.0.1.%d",
			i, i);
	}
	dnsmasq_pid = fork();
	if (dnsmasq_pid < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		return -1;
	}
	if (dnsmasq_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		/* No orphaned dnsmasq if this test crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(DNSMASQ, argv);
		_exit(127);
	}
	for (int i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	for (int i = 0; i < 100; i++) {
		if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
			dnsmasq_pid = -1;
			snprintf(why, why_size, "dnsmasq exited (status %d)",
				 status);
			return -1;
		}
		if (udp_port_taken(dnsmasq_port))
			return 0;
		usleep(50000);
	}
	snprintf(why, why_size, "dnsmasq did not bind port %d", dnsmasq_port);
	return -1;
}

static void dnsmasq_stop(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
}

static int setup(void **state)
{
	(void)state;
	base = event_base_new();
	return base == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	event_base_free(base);
	base = NULL;
	return 0;
}

/* ---- MX lookups ---- */

static void test_mx_preference_order(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("example.test", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_string_equal(o.error, "");
	assert_false(o.implicit_mx);
	assert_int_equal(o.host_count, 2);
	assert_string_equal(o.hosts[0].name, "mx1.example.test");
	assert_int_equal(o.hosts[0].preference, 10);
	assert_int_equal(o.hosts[0].addr_count, 1);
	assert_string_equal(o.hosts[0].addrs[0], "127.0.0.2/0");
	assert_string_equal(o.hosts[1].name, "mx2.example.test");
	assert_int_equal(o.hosts[1].preference, 20);
	/* IPv6 first, then IPv4; port 0 in both. */
	assert_int_equal(o.hosts[1].addr_count, 2);
	assert_string_equal(o.hosts[1].addrs[0], "::1/0");
	assert_string_equal(o.hosts[1].addrs[1], "127.0.0.3/0");
}

static void test_mx_trailing_dot_and_case(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("Example.TEST.", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 2);
	assert_string_equal(o.hosts[0].name, "mx1.example.test");
}

static void test_mx_equal_preferences_shuffled(void **state)
{
	int a_first = 0, b_first = 0;

	(void)state;
	for (int i = 0; i < 40; i++) {
		struct outcome o;

		resolve_mx("eq.test", &o);
		assert_int_equal(o.status, DNS_OK);
		assert_int_equal(o.host_count, 2);
		assert_int_equal(o.hosts[0].preference, 10);
		assert_int_equal(o.hosts[1].preference, 10);
		if (strcmp(o.hosts[0].name, "a.eq.test") == 0) {
			assert_string_equal(o.hosts[1].name, "b.eq.test");
			assert_string_equal(o.hosts[0].addrs[0], "127.0.0.5/0");
			a_first++;
		} else {
			assert_string_equal(o.hosts[0].name, "b.eq.test");
			assert_string_equal(o.hosts[1].name, "a.eq.test");
			b_first++;
		}
	}
	/* Each order has probability 1/2: both appear in 40 runs except
	 * with probability 2^-39. */
	assert_true(a_first > 0);
	assert_true(b_first > 0);
}

static void test_null_mx(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("nullmx.test", &o);
	assert_int_equal(o.status, DNS_NULL_MX);
	assert_int_equal(o.host_count, 0);
	assert_non_null(strstr(o.error, "nullmx.test"));
	assert_non_null(strstr(o.error, "null MX"));
}

static void test_implicit_mx(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("aonly.test", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_true(o.implicit_mx);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].name, "aonly.test");
	assert_int_equal(o.hosts[0].preference, 0);
	assert_int_equal(o.hosts[0].addr_count, 1);
	assert_string_equal(o.hosts[0].addrs[0], "127.0.0.4/0");
}

static void test_nxdomain(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("nosuch.test", &o);
	assert_int_equal(o.status, DNS_NXDOMAIN);
	assert_int_equal(o.host_count, 0);
	assert_string_equal(o.error,
			    "nosuch.test: domain does not exist (NXDOMAIN)");
}

static void test_mx_host_without_address_dropped(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("part.test", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].name, "mx1.example.test");
	assert_int_equal(o.hosts[0].preference, 50);
	assert_string_equal(o.hosts[0].addrs[0], "127.0.0.2/0");
}

static void test_no_address(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("noaddr.test", &o);
	assert_int_equal(o.status, DNS_NO_ADDRESS);
	assert_int_equal(o.host_count, 0);
	assert_non_null(strstr(o.error, "noaddr.test"));
	assert_non_null(strstr(o.error, "ghost.noaddr.test"));
}

static void test_hostile_mx_name_dropped(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("bad.test", &o); /* MX 10 bad*host.test, 20 mx1 */
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].name, "mx1.example.test");
	assert_int_equal(o.hosts[0].preference, 20);
}

static void test_ipv6_only_mx(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("v6only.test", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_int_equal(o.hosts[0].addr_count, 1);
	assert_string_equal(o.hosts[0].addrs[0], "::1/0");
}

static void test_mx_host_limit(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("many.test", &o);
	assert_int_equal(o.status, DNS_OK);
	/* 12 published, the 10 most preferred kept, in order. */
	assert_int_equal(o.host_count, 10);
	for (int i = 0; i < 10; i++) {
		char name[64], addr[64];

		snprintf(name, sizeof(name), "h%d.many.test", MANY_MX - i);
		snprintf(addr, sizeof(addr), "127.0.1.%d/0", MANY_MX - i);
		assert_string_equal(o.hosts[i].name, name);
		assert_int_equal(o.hosts[i].preference, 100 - (MANY_MX - i));
		assert_string_equal(o.hosts[i].addrs[0], addr);
	}
}

static void test_refused_is_tempfail(void **state)
{
	struct outcome o;

	(void)state;
	/* Outside .test dnsmasq has no upstream and answers REFUSED, which
	 * c-ares 1.18 reports as ARES_ECONNREFUSED. */
	resolve_mx("example.org", &o);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.error,
			    "example.org: MX lookup: server failure (SERVFAIL, "
			    "REFUSED or unreachable) (temporary)");
}

static void test_closed_port_is_tempfail(void **state)
{
	struct outcome o;
	struct dns_resolver *r;
	char server[64];
	int port, fd = silent_server(&port);

	(void)state;
	close(fd); /* nobody listens: ICMP port unreachable */
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	r = resolver_at(server);
	memset(&o, 0, sizeof(o));
	dns_resolve_mx(r, "example.test", record, &o);
	run_until(&o, 15000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_non_null(strstr(o.error, "example.test: MX lookup: "));
	assert_non_null(strstr(o.error, "(temporary)"));
	dns_resolver_free(&r);
}

static void test_silent_server_times_out(void **state)
{
	struct outcome o;
	struct dns_resolver *r;
	char server[64];
	int port, fd = silent_server(&port);
	time_t start = time(NULL);

	(void)state;
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	r = resolver_at(server);
	memset(&o, 0, sizeof(o));
	dns_resolve_mx(r, "example.test", record, &o);
	run_until(&o, 20000);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(o.error,
			    "example.test: MX lookup: timeout (temporary)");
	/* 2 s, then 4 s: the retry timer really drove c-ares. */
	assert_true(time(NULL) - start >= 5);
	assert_true(time(NULL) - start <= 10);
	dns_resolver_free(&r);
	close(fd);
}

/* ---- a scripted server, for answers dnsmasq will not give ---- */

enum fake_mode { FAKE_SERVFAIL, FAKE_HOSTILE_MX, FAKE_TRUNCATED_MX };

struct fake {
	int fd;
	enum fake_mode mode;
	int queries;
	struct event *ev;
};

/* Answers each query on its socket as f->mode says. */
static void fake_cb(evutil_socket_t fd, short what, void *arg)
{
	/* MX 10 "a\r\nb.test": bytes c-ares must not hand on as a name. */
	static const unsigned char hostile_rr[] = {
	    0xc0, 0x0c, 0,   15,   0,	 1,   0, 0,   0,   60,	0,   13, 0,
	    10,	  4,	'a', '\r', '\n', 'b', 4, 't', 'e', 's', 't', 0};
	struct fake *f = arg;
	unsigned char buf[512];
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	ssize_t n;

	(void)what;
	n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);
	if (n < 12)
		return;
	f->queries++;
	buf[2] = 0x84 | (buf[2] & 0x01); /* QR, AA, keep RD */
	buf[3] = 0x80;			 /* RA, rcode NOERROR */
	if (f->mode == FAKE_SERVFAIL) {
		buf[3] |= 2;
	} else if ((size_t)n + sizeof(hostile_rr) <= sizeof(buf)) {
		buf[7] = 1; /* ANCOUNT */
		memcpy(buf + n, hostile_rr, sizeof(hostile_rr));
		n += sizeof(hostile_rr);
		if (f->mode == FAKE_TRUNCATED_MX)
			n -= 5; /* the RR ends before its RDATA does */
	}
	sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
}

static void fake_mx(enum fake_mode mode, struct outcome *o, int *queries_r)
{
	struct fake f = {.mode = mode};
	struct dns_resolver *r;
	char server[64];
	int port;

	f.fd = silent_server(&port);
	f.ev = event_new(base, f.fd, EV_READ | EV_PERSIST, fake_cb, &f);
	event_add(f.ev, NULL);
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	r = resolver_at(server);
	memset(o, 0, sizeof(*o));
	dns_resolve_mx(r, "fake.test", record, o);
	run_until(o, 15000);
	assert_int_equal(o->calls, 1);
	dns_resolver_free(&r);
	event_free(f.ev);
	close(f.fd);
	*queries_r = f.queries;
}

static void test_servfail_is_tempfail(void **state)
{
	struct outcome o;
	int queries;

	(void)state;
	fake_mx(FAKE_SERVFAIL, &o, &queries);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	/* c-ares 1.18 retries a SERVFAIL (ARES_FLAG_NOCHECKRESP is off),
	 * then reports ARES_ECONNREFUSED. */
	assert_string_equal(o.error, "fake.test: MX lookup: server failure "
				     "(SERVFAIL, REFUSED or unreachable) "
				     "(temporary)");
	assert_int_equal(queries, 2); /* DNS_TRIES */
}

static void test_hostile_mx_bytes_refused(void **state)
{
	struct outcome o;
	int queries;

	(void)state;
	fake_mx(FAKE_HOSTILE_MX, &o, &queries);
	assert_int_equal(o.status, DNS_NO_ADDRESS);
	assert_int_equal(o.host_count, 0);
	assert_string_equal(o.error, "fake.test: no valid MX host name");
}

static void test_truncated_answer_is_tempfail(void **state)
{
	struct outcome o;
	int queries;

	(void)state;
	fake_mx(FAKE_TRUNCATED_MX, &o, &queries);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_non_null(strstr(o.error, "fake.test: MX lookup: "));
	assert_int_equal(o.host_count, 0);
}

static void test_invalid_domain(void **state)
{
	static const char *const bad[] = {
	    "exa mple.test",	"a..b.test", ".",	 "",
	    "x\r\nRCPT TO:<a>", "[bogus]",   "[1.2.3.4",
	};
	char longname[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct outcome o;

		resolve_mx(bad[i], &o);
		assert_int_equal(o.status, DNS_NXDOMAIN);
		assert_int_equal(o.host_count, 0);
		assert_null(strchr(o.error, '\r'));
		assert_null(strchr(o.error, '\n'));
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	{
		struct outcome o;

		resolve_mx(longname, &o);
		assert_int_equal(o.status, DNS_NXDOMAIN);
		/* A label over 63 octets. */
		resolve_mx(
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaa.test",
		    &o);
		assert_int_equal(o.status, DNS_NXDOMAIN);
	}
}

static void test_address_literal(void **state)
{
	struct outcome o;

	(void)state;
	resolve_mx("[127.0.0.9]", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].addrs[0], "127.0.0.9/0");
	resolve_mx("[IPv6:2001:db8::1]", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_string_equal(o.hosts[0].addrs[0], "2001:db8::1/0");
}

/* ---- host lookups ---- */

static void test_resolve_host_name(void **state)
{
	struct outcome o;

	(void)state;
	resolve_host("mx2.example.test", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].name, "mx2.example.test");
	assert_int_equal(o.hosts[0].preference, 0);
	assert_int_equal(o.hosts[0].addr_count, 2);
	assert_string_equal(o.hosts[0].addrs[0], "::1/0");
	assert_string_equal(o.hosts[0].addrs[1], "127.0.0.3/0");
}

static void test_resolve_host_numeric(void **state)
{
	static const struct {
		const char *in, *addr;
	} cases[] = {
	    {"192.0.2.1", "192.0.2.1/0"},
	    {"[192.0.2.7]", "192.0.2.7/0"},
	    {"2001:db8::2", "2001:db8::2/0"},
	    {"[::1]", "::1/0"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct outcome o;

		/* resolve_host() checks the callback is deferred. */
		resolve_host(cases[i].in, &o);
		assert_int_equal(o.status, DNS_OK);
		assert_int_equal(o.host_count, 1);
		assert_int_equal(o.hosts[0].addr_count, 1);
		assert_string_equal(o.hosts[0].addrs[0], cases[i].addr);
	}
}

static void test_resolve_host_localhost(void **state)
{
	struct outcome o;

	(void)state;
	/* dnsmasq has no such record: the answer comes without a query. */
	resolve_host("LocalHost.", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.host_count, 1);
	assert_string_equal(o.hosts[0].name, "localhost");
	assert_int_equal(o.hosts[0].addr_count, 2);
	assert_string_equal(o.hosts[0].addrs[0], "::1/0");
	assert_string_equal(o.hosts[0].addrs[1], "127.0.0.1/0");
	resolve_host("mx.localhost", &o);
	assert_int_equal(o.status, DNS_OK);
	assert_int_equal(o.hosts[0].addr_count, 2);
	resolve_host("notlocalhost", &o);
	assert_int_equal(o.status, DNS_TEMPFAIL); /* REFUSED: asked */
}

static void test_resolve_host_nxdomain(void **state)
{
	struct outcome o;

	(void)state;
	resolve_host("nosuch.test", &o);
	assert_int_equal(o.status, DNS_NXDOMAIN);
	assert_non_null(strstr(o.error, "nosuch.test"));
	/* The name exists (it has MX records) but has no address. */
	resolve_host("example.test", &o);
	assert_int_equal(o.status, DNS_NO_ADDRESS);
	resolve_host("example.org", &o);
	assert_int_equal(o.status, DNS_TEMPFAIL);
	assert_string_equal(
	    o.error, "example.org: AAAA lookup: server failure (SERVFAIL, "
		     "REFUSED or unreachable) (temporary)");
}

/* ---- cancellation and lifetime ---- */

static void test_cancel_before_answer(void **state)
{
	struct dns_resolver *r = resolver();
	struct outcome o1, o2;
	struct dns_query *q;

	(void)state;
	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	q = dns_resolve_mx(r, "example.test", record, &o1);
	dns_query_cancel(&q);
	assert_null(q);
	dns_query_cancel(&q); /* NULL is fine */
	/* A numeric host: answer ready, finish event pending. */
	q = dns_resolve_host(r, "192.0.2.1", record, &o1);
	dns_query_cancel(&q);
	run_until(NULL, 500);
	assert_int_equal(o1.calls, 0);
	/* The resolver still works. */
	dns_resolve_mx(r, "aonly.test", record, &o2);
	run_until(&o2, 15000);
	assert_int_equal(o2.calls, 1);
	assert_int_equal(o2.status, DNS_OK);
	assert_int_equal(o1.calls, 0);
	dns_resolver_free(&r);
}

static void test_cancel_in_flight(void **state)
{
	struct outcome o;
	struct dns_resolver *r;
	struct dns_query *q;
	char server[64];
	int port, fd = silent_server(&port);

	(void)state;
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	r = resolver_at(server);
	memset(&o, 0, sizeof(o));
	q = dns_resolve_mx(r, "example.test", record, &o);
	run_until(NULL, 200); /* the query is out, c-ares holds it */
	dns_query_cancel(&q);
	run_until(NULL, 200);
	assert_int_equal(o.calls, 0);
	/* Pending c-ares queries are cancelled by the free; no callback. */
	dns_resolver_free(&r);
	run_until(NULL, 100);
	assert_int_equal(o.calls, 0);
	close(fd);
}

static void test_free_with_pending_query(void **state)
{
	struct outcome o1, o2;
	struct dns_resolver *r;
	char server[64];
	int port, fd = silent_server(&port);

	(void)state;
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	r = resolver_at(server);
	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	dns_resolve_mx(r, "example.test", record, &o1);
	dns_resolve_host(r, "192.0.2.1", record, &o2);
	run_until(NULL, 100);
	/* The numeric answer was delivered; the other never will be. */
	assert_int_equal(o2.calls, 1);
	dns_resolver_free(&r);
	run_until(NULL, 100);
	assert_int_equal(o1.calls, 0);
	close(fd);
}

struct cancel_other {
	struct outcome o;
	struct dns_query *other;
};

static void cancel_other_cb(void *ctx, const struct dns_result *res)
{
	struct cancel_other *c = ctx;

	record(&c->o, res);
	dns_query_cancel(&c->other);
}

static void test_cancel_from_callback(void **state)
{
	struct dns_resolver *r = resolver();
	struct cancel_other c;
	struct outcome o2;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&o2, 0, sizeof(o2));
	/* The numeric answer comes first, cancels the MX lookup. */
	dns_resolve_host(r, "192.0.2.1", cancel_other_cb, &c);
	c.other = dns_resolve_mx(r, "example.test", record, &o2);
	run_until(&c.o, 5000);
	assert_int_equal(c.o.calls, 1);
	assert_null(c.other);
	run_until(NULL, 500);
	assert_int_equal(o2.calls, 0);
	dns_resolver_free(&r);
}

static void free_resolver_cb(void *ctx, const struct dns_result *res)
{
	struct dns_resolver **r = ctx;

	assert_int_equal(res->status, DNS_OK);
	dns_resolver_free(r);
}

static void test_free_resolver_from_callback(void **state)
{
	struct dns_resolver *r = resolver();
	struct outcome o;

	(void)state;
	memset(&o, 0, sizeof(o));
	dns_resolve_mx(r, "example.test", record, &o);
	dns_resolve_host(r, "192.0.2.1", free_resolver_cb, &r);
	run_until(NULL, 500);
	assert_null(r);
	assert_int_equal(o.calls, 0);
}

/* ---- configuration ---- */

static void test_resolver_config(void **state)
{
	struct dns_resolver *r;
	struct config cfg;
	char *servers[] = {"[::1]:5353", "127.0.0.1:53", NULL};
	char *bad[] = {"not an address", NULL};
	char error[256] = "";

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	/* No dns_servers: /etc/resolv.conf (or c-ares' default). */
	r = dns_resolver_new(base, &cfg, error, sizeof(error));
	assert_non_null(r);
	dns_resolver_free(&r);
	cfg.dns_servers = servers;
	cfg.dns_server_count = 2;
	r = dns_resolver_new(base, &cfg, error, sizeof(error));
	assert_non_null(r);
	dns_resolver_free(&r);
	cfg.dns_servers = bad;
	cfg.dns_server_count = 1;
	r = dns_resolver_new(base, &cfg, error, sizeof(error));
	assert_null(r);
	assert_non_null(strstr(error, "dns_servers"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_preference_order),
	    cmocka_unit_test(test_mx_trailing_dot_and_case),
	    cmocka_unit_test(test_mx_equal_preferences_shuffled),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_implicit_mx),
	    cmocka_unit_test(test_nxdomain),
	    cmocka_unit_test(test_mx_host_without_address_dropped),
	    cmocka_unit_test(test_no_address),
	    cmocka_unit_test(test_hostile_mx_name_dropped),
	    cmocka_unit_test(test_ipv6_only_mx),
	    cmocka_unit_test(test_mx_host_limit),
	    cmocka_unit_test(test_refused_is_tempfail),
	    cmocka_unit_test(test_closed_port_is_tempfail),
	    cmocka_unit_test(test_silent_server_times_out),
	    cmocka_unit_test(test_servfail_is_tempfail),
	    cmocka_unit_test(test_hostile_mx_bytes_refused),
	    cmocka_unit_test(test_truncated_answer_is_tempfail),
	    cmocka_unit_test(test_invalid_domain),
	    cmocka_unit_test(test_address_literal),
	    cmocka_unit_test(test_resolve_host_name),
	    cmocka_unit_test(test_resolve_host_numeric),
	    cmocka_unit_test(test_resolve_host_localhost),
	    cmocka_unit_test(test_resolve_host_nxdomain),
	    cmocka_unit_test(test_cancel_before_answer),
	    cmocka_unit_test(test_cancel_in_flight),
	    cmocka_unit_test(test_free_with_pending_query),
	    cmocka_unit_test(test_cancel_from_callback),
	    cmocka_unit_test(test_free_resolver_from_callback),
	    cmocka_unit_test(test_resolver_config),
	};
	char why[256];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (dnsmasq_start(why, sizeof(why)) < 0) {
		fprintf(stderr, "test_dns: SKIP: %s\n", why);
		dnsmasq_stop();
		return 77;
	}
	rc = cmocka_run_group_tests(tests, setup, teardown);
	dnsmasq_stop();
	return rc;
}
