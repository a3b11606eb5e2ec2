/*
 * postctl check URL: walk the path a mail client takes to a server (DNS,
 * TCP, TLS, greeting, capabilities, STARTTLS, login, a mailbox command)
 * and say in plain words where it breaks and what fixes it. See
 * doc/internals/check.md. (postd -t, which checks postd.conf, is
 * src/daemon/main.c and src/config/config_check.c.)
 *
 * Everything the server sends is untrusted: lines are read through the
 * bounded splitter in postctl_check_parse.c, multi-line replies are
 * capped, and server text reaches the terminal only escaped. The
 * password is read once, kept in one buffer, and wiped before returning.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/parse.h"
#include "lib/postd_limits.h"
#include "lib/xmalloc.h"
#include "cli/postctl_check_parse.h"
#include "cli/postctl.h"

/* Certificates that expire sooner than this get a warning. */
#define CHECK_EXPIRY_WARN_DAYS 14

enum check_verdict {
	CHECK_OK,
	CHECK_WARN,
	CHECK_FAIL,
};

struct check_ctx {
	struct check_url url;
	int timeout;
	bool insecure;
	const char *ca_file;
	struct addrinfo *addrs;
	int fd;
	SSL_CTX *ssl_ctx;
	SSL *ssl;
	char rbuf[CHECK_READ_CHUNK];
	size_t rpos, rlen;
	const char *io_error; /* why the last read failed */
	struct check_line lb;
	struct check_caps caps;
	struct postctl_password pw;
	char user_esc[4 * AUTH_MAX_USER + 1]; /* for the terminal */
	unsigned int tag;
	char tagbuf[16];
	unsigned int warnings;
	const char *failed_step;
};

struct check_mx {
	int status;
	size_t count;
	char hosts[CHECK_MAX_MX][CHECK_MAX_HOST + 1];
	unsigned short prio[CHECK_MAX_MX];
};

static const char *const check_proto_names[] = {"POP3", "IMAP", "SMTP"};
static const char *const check_proto_a[] = {"a POP3", "an IMAP", "an SMTP"};

static int check_parse_args(struct check_ctx *c, int argc, char **argv);
static void check_usage(void);
static void check_say(struct check_ctx *c, enum check_verdict v,
		      const char *step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_hint(const char *label, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int check_fail(struct check_ctx *c, int code, const char *step,
		      const char *why, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int check_dns(struct check_ctx *c);
static void check_mx(struct check_ctx *c);
static void check_mx_callback(void *arg, int status, int timeouts,
			      unsigned char *abuf, int alen);
static int check_connect(struct check_ctx *c);
static int check_connect_one(struct check_ctx *c, const struct addrinfo *ai,
			     int *errno_r);
static void check_addr_text(const struct sockaddr *sa, char *dst,
			    size_t dstsize);
static int check_tls(struct check_ctx *c);
static int check_tls_handshake_failed(struct check_ctx *c);
static int check_tls_cert(struct check_ctx *c);
static int check_tls_problem(struct check_ctx *c, const char *step,
			     const char *why, const char *fix,
			     const char *what);
static int check_read_line(struct check_ctx *c, const char **line_r);
static int check_fill(struct check_ctx *c);
static int check_write(struct check_ctx *c, const char *data, size_t len);
static int check_send(struct check_ctx *c, const char *step, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
static int check_send_sasl_plain(struct check_ctx *c, const char *prefix);
static int check_send_secret(struct check_ctx *c, const char *step,
			     const char *prefix, char *secret, size_t len);
static int check_read_fail(struct check_ctx *c, const char *step);
static const char *check_next_tag(struct check_ctx *c);
static int check_smtp_read(struct check_ctx *c, const char *step,
			   struct check_smtp_reply *r, bool ehlo);
static int check_imap_read(struct check_ctx *c, const char *step,
			   enum check_imap_status *st_r, char *text,
			   size_t textsize, uint32_t *exists_r);
static int check_greeting(struct check_ctx *c);
static int check_greeting_wrong(struct check_ctx *c, const char *line,
				enum check_greeting g);
static int check_capa(struct check_ctx *c, const char *step);
static int check_capa_pop3(struct check_ctx *c, const char *step);
static int check_starttls(struct check_ctx *c);
static int check_auth(struct check_ctx *c);
static int check_auth_pop3(struct check_ctx *c);
static int check_auth_imap(struct check_ctx *c);
static int check_auth_smtp(struct check_ctx *c);
static int check_auth_failed(struct check_ctx *c, const char *text,
			     const char *code_explain);
static int check_session(struct check_ctx *c);
static void check_quit(struct check_ctx *c);
static int check_run(struct check_ctx *c);
static void check_close(struct check_ctx *c);

static void check_usage(void)
{
	fprintf(stderr,
		"usage: postctl check [-t SECONDS] [--insecure] [--ca FILE] "
		"URL\n"
		"  URL: pop3|pop3s|imap|imaps|smtp|submission|submissions"
		"://[USER@]HOST[:PORT]\n"
		"  The password is read from the terminal or one line of "
		"stdin\n"
		"  (only when the URL names a user).\n");
}

static int check_parse_args(struct check_ctx *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"insecure", no_argument, NULL, 'k'},
	    {"ca", required_argument, NULL, 'C'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *error, *p;
	uint32_t t;
	int opt;

	c->timeout = CHECK_DEFAULT_TIMEOUT;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+t:", longopts, NULL)) != -1) {
		switch (opt) {
		case 't':
			p = optarg;
			if (parse_uint32(&p, CHECK_MAX_TIMEOUT, &t) < 0 ||
			    parse_end(&p) < 0 || t == 0) {
				fprintf(stderr, "postctl check: -t wants "
						"seconds, 1 to 600\n");
				return -1;
			}
			c->timeout = (int)t;
			break;
		case 'k':
			c->insecure = true;
			break;
		case 'C':
			c->ca_file = optarg;
			break;
		default:
			check_usage();
			return -1;
		}
	}
	if (optind != argc - 1) {
		check_usage();
		return -1;
	}
	if (check_url_parse(argv[optind], &c->url, &error) < 0) {
		fprintf(stderr, "postctl check: %s\n", error);
		check_usage();
		return -1;
	}
	return 0;
}

/* One line per step: verdict, step name, what was seen. */
static void check_say(struct check_ctx *c, enum check_verdict v,
		      const char *step, const char *fmt, ...)
{
	static const char *const words[] = {"ok", "warn", "FAIL"};
	va_list ap;

	if (v == CHECK_WARN)
		c->warnings++;
	printf("%-4s %-10s ", words[v], step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void check_hint(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("     %s: ", label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Prints a FAIL line with the likely cause and fix; returns code. */
static int check_fail(struct check_ctx *c, int code, const char *step,
		      const char *why, const char *fix, const char *fmt, ...)
{
	va_list ap;

	c->failed_step = step;
	printf("%-4s %-10s ", "FAIL", step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (why != NULL)
		check_hint("why", "%s", why);
	if (fix != NULL)
		check_hint("fix", "%s", fix);
	fflush(stdout);
	return code;
}

static void check_addr_text(const struct sockaddr *sa, char *dst,
			    size_t dstsize)
{
	const void *a =
	    sa->sa_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, dst, (socklen_t)dstsize) == NULL)
		snprintf(dst, dstsize, "?");
}

/* Step 1: the host's addresses, and the MX of the user's domain. */
static int check_dns(struct check_ctx *c)
{
	struct addrinfo hints, *ai;
	char port[8], addr[INET6_ADDRSTRLEN], list[512];
	size_t used = 0;
	int rc, n;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", c->url.port);
	rc = getaddrinfo(c->url.host, port, &hints, &c->addrs);
	if (rc != 0) {
		c->addrs = NULL;
		return check_fail(
		    c, EX_NOHOST, "dns",
		    rc == EAI_AGAIN
			? "the DNS server did not answer (a network or "
			  "resolver problem)"
			: "the host name does not exist in DNS (a typo in "
			  "the server name, or the domain's DNS records are "
			  "missing)",
		    "check the server name in the account settings; "
		    "'host NAME' shows what DNS says",
		    "%s: %s", c->url.host, gai_strerror(rc));
	}
	list[0] = '\0';
	for (ai = c->addrs; ai != NULL; ai = ai->ai_next) {
		check_addr_text(ai->ai_addr, addr, sizeof(addr));
		n = snprintf(list + used, sizeof(list) - used, "%s%s",
			     used > 0 ? " " : "", addr);
		if (n < 0 || (size_t)n >= sizeof(list) - used)
			break;
		used += (size_t)n;
	}
	check_say(c, CHECK_OK, "dns", "%s: %s", c->url.host, list);
	check_mx(c);
	return 0;
}

static void check_mx_callback(void *arg, int status, int timeouts,
			      unsigned char *abuf, int alen)
{
	struct check_mx *res = arg;
	struct ares_mx_reply *mx = NULL;

	(void)timeouts;
	res->status = status;
	if (status != ARES_SUCCESS)
		return;
	res->status = ares_parse_mx_reply(abuf, alen, &mx);
	if (res->status != ARES_SUCCESS)
		return;
	for (struct ares_mx_reply *m = mx; m != NULL; m = m->next) {
		if (res->count >= CHECK_MAX_MX)
			break;
		snprintf(res->hosts[res->count], sizeof(res->hosts[0]), "%s",
			 m->host);
		res->prio[res->count++] = m->priority;
	}
	ares_free_data(mx);
}

/* MX problems are warnings: a POP3/IMAP/submission server need not be
 * an MX, and a domain without MX receives mail at its A record. */
static void check_mx(struct check_ctx *c)
{
	const char *domain = check_url_user_domain(&c->url);
	struct check_mx res = {.status = -1};
	struct ares_options opts;
	char list[1024], esc[CHECK_MAX_HOST * 4 + 1];
	ares_channel ch;
	bool found = false;
	size_t used = 0;
	int n;

	if (domain == NULL)
		return;
	memset(&opts, 0, sizeof(opts));
	opts.timeout = c->timeout * 1000 / 2;
	opts.tries = 2;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
	    ares_init_options(&ch, &opts,
			      ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) !=
		ARES_SUCCESS) {
		check_say(c, CHECK_WARN, "mx", "cannot start the resolver");
		return;
	}
	ares_query(ch, domain, ns_c_in, ns_t_mx, check_mx_callback, &res);
	for (;;) {
		fd_set rfds, wfds;
		struct timeval tv, *tvp;
		int nfds;

		FD_ZERO(&rfds);
		FD_ZERO(&wfds);
		nfds = ares_fds(ch, &rfds, &wfds);
		if (nfds == 0)
			break;
		tvp = ares_timeout(ch, NULL, &tv);
		if (select(nfds, &rfds, &wfds, NULL, tvp) < 0 && errno != EINTR)
			break;
		ares_process(ch, &rfds, &wfds);
	}
	ares_destroy(ch);
	ares_library_cleanup();
	check_escape(esc, sizeof(esc), domain, strlen(domain));
	if (res.status != ARES_SUCCESS || res.count == 0) {
		check_say(c, CHECK_WARN, "mx",
			  "%s: no MX record (%s); mail for it goes to its A "
			  "record, if any",
			  esc,
			  res.status >= 0 ? ares_strerror(res.status)
					  : "no answer");
		return;
	}
	list[0] = '\0';
	for (size_t i = 0; i < res.count; i++) {
		size_t hl = strlen(res.hosts[i]);
		char hesc[CHECK_MAX_HOST * 4 + 1];

		if (hl > 0 && res.hosts[i][hl - 1] == '.')
			res.hosts[i][--hl] = '\0';
		found |= strcasecmp(res.hosts[i], c->url.host) == 0;
		check_escape(hesc, sizeof(hesc), res.hosts[i], hl);
		n = snprintf(list + used, sizeof(list) - used, "%s%s (%u)",
			     used > 0 ? ", " : "", hesc, res.prio[i]);
		if (n < 0 || (size_t)n >= sizeof(list) - used)
			break;
		used += (size_t)n;
	}
	if (!found && c->url.proto == CHECK_PROTO_SMTP && !c->url.submission)
		check_say(c, CHECK_WARN, "mx",
			  "%s: %s; %s is not among them, so other servers "
			  "do not send mail for %s here",
			  esc, list, c->url.host, esc);
	else
		check_say(c, CHECK_OK, "mx", "%s: %s", esc, list);
}

/* 1 connected, 0 failed (*errno_r; ETIMEDOUT for our own timeout). */
static int check_connect_one(struct check_ctx *c, const struct addrinfo *ai,
			     int *errno_r)
{
	struct pollfd pfd;
	struct timeval tv = {.tv_sec = c->timeout};
	socklen_t sl = sizeof(int);
	int fd, err = 0, r;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0) {
		*errno_r = errno;
		return 0;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		*errno_r = errno;
		close(fd);
		return 0;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		r = poll(&pfd, 1, c->timeout * 1000);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		err = ETIMEDOUT;
	else if (r < 0)
		err = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
		err = errno;
	if (err != 0) {
		*errno_r = err;
		close(fd);
		return 0;
	}
	/* From here on plain blocking I/O, each call bounded by -t. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		*errno_r = errno;
		close(fd);
		return 0;
	}
	c->fd = fd;
	return 1;
}

/* Step 2: every address in turn until one answers. */
static int check_connect(struct check_ctx *c)
{
	char addr[INET6_ADDRSTRLEN];
	int err = 0, last_err = 0;
	struct timespec t0, t1;
	long ms;

	for (struct addrinfo *ai = c->addrs; ai != NULL; ai = ai->ai_next) {
		check_addr_text(ai->ai_addr, addr, sizeof(addr));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (check_connect_one(c, ai, &err)) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			ms = (t1.tv_sec - t0.tv_sec) * 1000 +
			     (t1.tv_nsec - t0.tv_nsec) / 1000000;
			check_say(c, CHECK_OK, "connect",
				  "%s port %u answered in %ld ms", addr,
				  c->url.port, ms);
			return 0;
		}
		last_err = err;
		if (ai->ai_next != NULL)
			check_say(c, CHECK_WARN, "connect",
				  "%s port %u: %s; trying the next address",
				  addr, c->url.port, strerror(err));
	}
	if (last_err == ECONNREFUSED)
		return check_fail(
		    c, EX_UNAVAILABLE, "connect",
		    "nothing listens on that port: is the server running, "
		    "is it the right port?",
		    "start the server, or check the port in the account "
		    "settings (POP3 110/995, IMAP 143/993, SMTP 25/587/465)",
		    "%s port %u: connection refused", addr, c->url.port);
	if (last_err == ETIMEDOUT)
		return check_fail(
		    c, EX_UNAVAILABLE, "connect",
		    "timed out: a firewall drops packets, or the host is down",
		    "check that the port is open in the server's firewall "
		    "and any firewall on the way",
		    "%s port %u: no answer in %d s", addr, c->url.port,
		    c->timeout);
	return check_fail(c, EX_UNAVAILABLE, "connect",
			  "the network cannot reach the server (no route)",
			  "check the network connection and the address",
			  "%s port %u: %s", addr, c->url.port,
			  strerror(last_err));
}

/* A verification problem: FAIL, or only a warning with --insecure. */
static int check_tls_problem(struct check_ctx *c, const char *step,
			     const char *why, const char *fix, const char *what)
{
	if (!c->insecure)
		return check_fail(c, EX_UNAVAILABLE, step, why, fix, "%s",
				  what);
	check_say(c, CHECK_WARN, step, "%s (ignored: --insecure)", what);
	check_hint("why", "%s", why);
	return 0;
}

static int check_tls_handshake_failed(struct check_ctx *c)
{
	unsigned long e = ERR_peek_last_error();
	char err[256];
	int reason = ERR_GET_REASON(e);

	ERR_error_string_n(e, err, sizeof(err));
	ERR_clear_error();
	if (e == 0)
		snprintf(err, sizeof(err), "the connection was closed");
	if (reason == SSL_R_WRONG_VERSION_NUMBER ||
	    reason == SSL_R_PACKET_LENGTH_TOO_LONG || e == 0)
		return check_fail(
		    c, EX_UNAVAILABLE, "tls",
		    "the server did not answer with TLS: this port probably "
		    "expects plain text first (then STARTTLS), or another "
		    "service listens here",
		    "use the scheme without 's' (pop3://, imap://, "
		    "submission://) on this port, or the TLS port (995, 993, "
		    "465)",
		    "handshake failed: %s", err);
	return check_fail(c, EX_UNAVAILABLE, "tls",
			  "the server and this client share no TLS version "
			  "or cipher, or the server's TLS setup is broken",
			  "look at the server's TLS settings and its log",
			  "handshake failed: %s", err);
}

/* Step 3: the TLS handshake and the certificate. */
static int check_tls(struct check_ctx *c)
{
	unsigned char probe[sizeof(struct in6_addr)];

	c->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (c->ssl_ctx == NULL)
		return check_fail(c, EX_SOFTWARE, "tls", NULL, NULL,
				  "cannot create a TLS context");
	if (c->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(c->ssl_ctx, c->ca_file,
						  NULL) != 1)
			return check_fail(c, EX_NOINPUT, "tls", NULL,
					  "give a PEM file of CA certificates",
					  "cannot read CA file %s", c->ca_file);
	} else if (SSL_CTX_set_default_verify_paths(c->ssl_ctx) != 1) {
		check_say(c, CHECK_WARN, "tls", "cannot load the system CAs");
	}
	/* Verification runs, but its verdict is ours to explain. */
	SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
	c->ssl = SSL_new(c->ssl_ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return check_fail(c, EX_SOFTWARE, "tls", NULL, NULL,
				  "cannot set up TLS");
	if (c->url.host_is_ipv6 ||
	    inet_pton(AF_INET, c->url.host, probe) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl),
					      c->url.host);
	} else {
		SSL_set_tlsext_host_name(c->ssl, c->url.host);
		SSL_set1_host(c->ssl, c->url.host);
	}
	ERR_clear_error();
	if (SSL_connect(c->ssl) != 1)
		return check_tls_handshake_failed(c);
	check_say(c, CHECK_OK, "tls", "%s, %s", SSL_get_version(c->ssl),
		  SSL_get_cipher_name(c->ssl));
	return check_tls_cert(c);
}

static int check_tls_cert(struct check_ctx *c)
{
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	long vr = SSL_get_verify_result(c->ssl);
	char subj[256], issuer[256], what[768];
	int days = 0, secs = 0, rc = 0;
	bool self_signed;

	if (cert == NULL)
		return check_fail(c, EX_UNAVAILABLE, "cert",
				  "a TLS server must present a certificate",
				  "configure a certificate on the server",
				  "the server sent no certificate");
	X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
	X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	self_signed = X509_check_issued(cert, cert) == X509_V_OK;
	ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert));
	snprintf(what, sizeof(what), "%s, issued by %s", subj,
		 self_signed ? "itself (self-signed)" : issuer);
	if (vr == X509_V_OK) {
		check_say(c, CHECK_OK, "cert", "%s; verified against %s", what,
			  c->ca_file != NULL ? c->ca_file : "the system CAs");
	} else if (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
		   vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		check_say(c, CHECK_OK, "cert", "%s; chain verified", what);
	} else if (self_signed ||
		   vr == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		   vr == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
		rc = check_tls_problem(
		    c, "cert",
		    "the certificate is self-signed (or signed by a private "
		    "CA this system does not know): mail programs warn about "
		    "it or refuse it",
		    "use a certificate from a public CA (e.g. Let's Encrypt), "
		    "or give the private CA with --ca FILE and install it "
		    "on every client",
		    what);
	} else if (vr == X509_V_ERR_CERT_HAS_EXPIRED) {
		rc = check_tls_problem(c, "cert",
				       "the certificate has expired: mail "
				       "programs refuse the connection",
				       "renew the server's certificate", what);
	} else {
		snprintf(what + strlen(what), sizeof(what) - strlen(what),
			 ": %s", X509_verify_cert_error_string(vr));
		rc = check_tls_problem(
		    c, "cert",
		    "the certificate chain cannot be verified: it comes from "
		    "a CA this system does not trust, or the server does not "
		    "send its intermediate certificates",
		    "configure the full chain (certificate followed by the "
		    "intermediates) on the server, or pass --ca FILE",
		    what);
	}
	if (rc == 0 && (vr == X509_V_ERR_HOSTNAME_MISMATCH ||
			vr == X509_V_ERR_IP_ADDRESS_MISMATCH ||
			X509_check_host(cert, c->url.host, 0, 0, NULL) != 1)) {
		unsigned char ip[16];
		bool is_ip = inet_pton(AF_INET, c->url.host, ip) == 1 ||
			     inet_pton(AF_INET6, c->url.host, ip) == 1;

		if (!is_ip || X509_check_ip_asc(cert, c->url.host, 0) != 1) {
			snprintf(what, sizeof(what),
				 "the certificate (%s) is not valid for %s",
				 subj, c->url.host);
			rc = check_tls_problem(
			    c, "name",
			    "the name in the account settings is not a name "
			    "the certificate covers, so clients cannot be "
			    "sure they talk to the right server",
			    "use a server name the certificate lists, or get a "
			    "certificate that includes this name",
			    what);
		} else {
			check_say(c, CHECK_OK, "name",
				  "the certificate covers %s", c->url.host);
		}
	} else if (rc == 0) {
		check_say(c, CHECK_OK, "name", "the certificate covers %s",
			  c->url.host);
	}
	if (rc == 0 && (days < 0 || (days == 0 && secs < 0))) {
		if (vr != X509_V_ERR_CERT_HAS_EXPIRED)
			rc = check_tls_problem(c, "expiry",
					       "the certificate has expired",
					       "renew the server's certificate",
					       "the certificate expired");
	} else if (rc == 0 && days < CHECK_EXPIRY_WARN_DAYS) {
		check_say(c, CHECK_WARN, "expiry",
			  "the certificate expires in %d days: renew it soon",
			  days);
	} else if (rc == 0) {
		check_say(c, CHECK_OK, "expiry", "%d days left", days);
	}
	X509_free(cert);
	return rc;
}

/* Reads more bytes: 1, 0 at EOF, -1 on error (c->io_error). */
static int check_fill(struct check_ctx *c)
{
	ssize_t n;

	for (;;) {
		if (c->ssl != NULL) {
			int r = SSL_read(c->ssl, c->rbuf, sizeof(c->rbuf));

			if (r > 0) {
				n = r;
			} else if (SSL_get_error(c->ssl, r) ==
				   SSL_ERROR_ZERO_RETURN) {
				n = 0;
			} else {
				ERR_clear_error();
				c->io_error =
				    errno == EAGAIN || errno == EWOULDBLOCK
					? "timed out"
					: "the TLS connection broke";
				return -1;
			}
		} else {
			n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				c->io_error =
				    errno == EAGAIN || errno == EWOULDBLOCK
					? "timed out"
					: strerror(errno);
				return -1;
			}
		}
		break;
	}
	if (n == 0) {
		c->io_error = "the server closed the connection";
		return 0;
	}
	c->rpos = 0;
	c->rlen = (size_t)n;
	return 1;
}

/* 1 and *line_r (valid until the next read), or -1 (c->io_error). */
static int check_read_line(struct check_ctx *c, const char **line_r)
{
	size_t used;
	int r;

	check_line_reset(&c->lb);
	for (;;) {
		if (c->rpos == c->rlen && check_fill(c) <= 0)
			return -1;
		r = check_line_feed(&c->lb, c->rbuf + c->rpos,
				    c->rlen - c->rpos, &used);
		c->rpos += used;
		if (r == 1) {
			*line_r = c->lb.line;
			return 1;
		}
		if (r < 0) {
			c->io_error = "the server sent an overlong line or a "
				      "NUL byte";
			return -1;
		}
	}
}

static int check_read_fail(struct check_ctx *c, const char *step)
{
	return check_fail(c, EX_UNAVAILABLE, step,
			  "the server stopped answering or broke the protocol",
			  "look at the server's log for this connection", "%s",
			  c->io_error);
}

static int check_write(struct check_ctx *c, const char *data, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (c->ssl != NULL) {
			int r = SSL_write(c->ssl, data + off, (int)(len - off));

			n = r > 0 ? r : -1;
			if (r <= 0)
				ERR_clear_error();
		} else {
			n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
		}
		if (n <= 0) {
			c->io_error = "cannot send to the server";
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

static int check_send(struct check_ctx *c, const char *step, const char *fmt,
		      ...)
{
	char cmd[CHECK_MAX_COMMAND];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 2)
		return check_fail(c, EX_SOFTWARE, step, NULL, NULL,
				  "command too long");
	memcpy(cmd + n, "\r\n", 2);
	if (check_write(c, cmd, (size_t)n + 2) < 0)
		return check_read_fail(c, step);
	return 0;
}

/* prefix + secret + CRLF, built in one buffer that is wiped. */
static int check_send_secret(struct check_ctx *c, const char *step,
			     const char *prefix, char *secret, size_t len)
{
	char cmd[CHECK_MAX_COMMAND];
	size_t plen = strlen(prefix);
	int rc = 0;

	if (plen + len + 2 > sizeof(cmd))
		return check_fail(c, EX_SOFTWARE, step, NULL, NULL,
				  "command too long");
	memcpy(cmd, prefix, plen);
	memcpy(cmd + plen, secret, len);
	memcpy(cmd + plen + len, "\r\n", 2);
	if (check_write(c, cmd, plen + len + 2) < 0)
		rc = check_read_fail(c, step);
	OPENSSL_cleanse(cmd, sizeof(cmd));
	return rc;
}

static const char *check_next_tag(struct check_ctx *c)
{
	snprintf(c->tagbuf, sizeof(c->tagbuf), "c%u", ++c->tag);
	return c->tagbuf;
}

/* A whole SMTP reply; with ehlo, its lines go to c->caps. 0 or exit code */
static int check_smtp_read(struct check_ctx *c, const char *step,
			   struct check_smtp_reply *r, bool ehlo)
{
	const char *line;
	char esc[CHECK_MAX_ESCAPED];
	int st;

	check_smtp_reply_reset(r);
	do {
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, step);
		st = check_smtp_reply_line(r, line);
		if (st < 0)
			return check_fail(
			    c, EX_UNAVAILABLE, step,
			    "the answer is not an SMTP reply",
			    "check that an SMTP server listens on this port",
			    "unexpected reply: %s",
			    check_escape(esc, sizeof(esc), line, strlen(line)));
		if (ehlo && r->code == 250)
			check_caps_ehlo_line(&c->caps, r->text, r->lines == 1);
	} while (st == 0);
	return 0;
}

/* Untagged lines until the tagged reply; 0 or an exit code. */
static int check_imap_read(struct check_ctx *c, const char *step,
			   enum check_imap_status *st_r, char *text,
			   size_t textsize, uint32_t *exists_r)
{
	char esc[CHECK_MAX_ESCAPED];
	const char *line, *rest;
	uint32_t n;

	for (unsigned int i = 0; i < CHECK_MAX_REPLY_LINES * 50; i++) {
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, step);
		check_caps_imap_line(&c->caps, line);
		if (exists_r != NULL && check_imap_exists(line, &n))
			*exists_r = n;
		switch (check_imap_tagged(line, c->tagbuf, st_r, &rest)) {
		case 1:
			snprintf(text, textsize, "%s", rest);
			return 0;
		case 0:
			if (line[0] == '+') {
				snprintf(text, textsize, "%s", line);
				*st_r = CHECK_IMAP_BAD;
				return 0;
			}
			continue;
		default:
			return check_fail(
			    c, EX_UNAVAILABLE, step,
			    "the answer is not an IMAP reply to our command",
			    "check that an IMAP server listens on this port",
			    "unexpected reply: %s",
			    check_escape(esc, sizeof(esc), line, strlen(line)));
		}
	}
	return check_fail(c, EX_UNAVAILABLE, step,
			  "the server never finished "
			  "its reply",
			  NULL, "too many lines");
}

static int check_greeting_wrong(struct check_ctx *c, const char *line,
				enum check_greeting g)
{
	char esc[CHECK_MAX_ESCAPED], why[256];
	int proto = check_greeting_proto(g);

	check_escape(esc, sizeof(esc), line, strlen(line));
	if (g == CHECK_GREET_TLS)
		return check_fail(
		    c, EX_UNAVAILABLE, "greeting",
		    "the server expects TLS right away on this port",
		    "use the TLS scheme (pop3s://, imaps://, submissions://) "
		    "or the port without TLS",
		    "binary TLS data instead of a greeting");
	if (g == CHECK_GREET_HTTP)
		return check_fail(c, EX_UNAVAILABLE, "greeting",
				  "a web server listens on this port",
				  "check the port in the account settings",
				  "%s", esc);
	if (proto < 0)
		return check_fail(c, EX_UNAVAILABLE, "greeting",
				  "this is not a mail server greeting",
				  "check the port in the account settings",
				  "%s", esc);
	snprintf(why, sizeof(why),
		 "the server answered with %s greeting on %s port",
		 check_proto_a[proto], check_proto_a[c->url.proto]);
	return check_fail(c, EX_UNAVAILABLE, "greeting", why,
			  "use the right port or scheme (POP3 110/995, IMAP "
			  "143/993, SMTP 25/587/465)",
			  "%s", esc);
}

/* Step 4: the first thing the server says. */
static int check_greeting(struct check_ctx *c)
{
	struct check_smtp_reply r;
	char esc[CHECK_MAX_ESCAPED];
	enum check_greeting g;
	const char *line;

	if (check_read_line(c, &line) < 0) {
		if (strcmp(c->io_error, "timed out") == 0 &&
		    !c->url.implicit_tls)
			return check_fail(
			    c, EX_UNAVAILABLE, "greeting",
			    "no greeting: the port may expect TLS first, or "
			    "the server is overloaded",
			    "try the TLS scheme (pop3s://, imaps://, "
			    "submissions://) or a longer -t",
			    "no greeting in %d s", c->timeout);
		return check_read_fail(c, "greeting");
	}
	g = check_greeting_classify(line, c->lb.len);
	check_escape(esc, sizeof(esc), line, strlen(line));
	if (check_greeting_proto(g) != (int)c->url.proto)
		return check_greeting_wrong(c, line, g);
	if (g == CHECK_GREET_POP3_ERR || g == CHECK_GREET_IMAP_BYE ||
	    g == CHECK_GREET_SMTP_REFUSED)
		return check_fail(c, EX_UNAVAILABLE, "greeting",
				  "the server refuses connections now (too "
				  "many, or from this address)",
				  "read the server's text; try again later",
				  "%s", esc);
	if (c->url.proto == CHECK_PROTO_IMAP)
		check_caps_imap_line(&c->caps, line);
	if (c->url.proto == CHECK_PROTO_SMTP) {
		int st;

		check_smtp_reply_reset(&r);
		st = check_smtp_reply_line(&r, line);
		while (st == 0) {
			if (check_read_line(c, &line) < 0)
				return check_read_fail(c, "greeting");
			st = check_smtp_reply_line(&r, line);
		}
		if (st < 0)
			return check_fail(c, EX_UNAVAILABLE, "greeting",
					  "a broken multi-line greeting", NULL,
					  "%s", esc);
	}
	if (g == CHECK_GREET_IMAP_PREAUTH)
		check_say(c, CHECK_WARN, "greeting",
			  "%s (logged in without a password)", esc);
	else
		check_say(c, CHECK_OK, "greeting", "%s", esc);
	return 0;
}

static int check_capa_pop3(struct check_ctx *c, const char *step)
{
	char esc[CHECK_MAX_ESCAPED];
	const char *line, *text;
	int rc;

	if ((rc = check_send(c, step, "CAPA")) != 0)
		return rc;
	if (check_read_line(c, &line) < 0)
		return check_read_fail(c, step);
	if (check_pop3_status(line, &text) != 1) {
		check_say(c, CHECK_WARN, step,
			  "no CAPA (RFC 2449): %s; assuming USER/PASS",
			  check_escape(esc, sizeof(esc), line, strlen(line)));
		c->caps.user = true;
		return -1;
	}
	for (unsigned int i = 0;; i++) {
		if (i >= CHECK_MAX_REPLY_LINES)
			return check_fail(c, EX_UNAVAILABLE, step,
					  "the capability list never ends",
					  NULL, "more than %d lines",
					  CHECK_MAX_REPLY_LINES);
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, step);
		if (strcmp(line, ".") == 0)
			break;
		check_caps_pop3_line(&c->caps,
				     line[0] == '.' ? line + 1 : line);
	}
	return 0;
}

/* Step 5: what the server offers. */
static int check_capa(struct check_ctx *c, const char *step)
{
	enum check_imap_status st;
	struct check_smtp_reply r;
	char text[CHECK_MAX_LINE + 1], esc[CHECK_MAX_ESCAPED];
	int rc;

	check_caps_reset(&c->caps);
	switch (c->url.proto) {
	case CHECK_PROTO_POP3:
		rc = check_capa_pop3(c, step);
		if (rc < 0)
			return 0;
		if (rc > 0)
			return rc;
		break;
	case CHECK_PROTO_IMAP:
		if ((rc = check_send(c, step, "%s CAPABILITY",
				     check_next_tag(c))) != 0 ||
		    (rc = check_imap_read(c, step, &st, text, sizeof(text),
					  NULL)) != 0)
			return rc;
		if (st != CHECK_IMAP_OK || !c->caps.seen)
			return check_fail(
			    c, EX_UNAVAILABLE, step,
			    "an IMAP server must answer CAPABILITY", NULL, "%s",
			    check_escape(esc, sizeof(esc), text, strlen(text)));
		break;
	case CHECK_PROTO_SMTP:
		if ((rc = check_send(c, step, "EHLO localhost")) != 0 ||
		    (rc = check_smtp_read(c, step, &r, true)) != 0)
			return rc;
		if (r.code != 250) {
			check_say(c, CHECK_WARN, step,
				  "EHLO refused (%d %s): an old server "
				  "without STARTTLS or AUTH",
				  r.code,
				  check_escape(esc, sizeof(esc), r.text,
					       strlen(r.text)));
			return 0;
		}
		break;
	}
	check_say(c, CHECK_OK, step, "%s",
		  c->caps.text[0] != '\0' ? c->caps.text : "(none)");
	return 0;
}

/* Step 6: upgrade a plain connection, or refuse to send a password in
 * clear. */
static int check_starttls(struct check_ctx *c)
{
	static const char *const cmds[] = {"STLS", "STARTTLS", "STARTTLS"};
	enum check_imap_status st;
	struct check_smtp_reply r;
	char text[CHECK_MAX_LINE + 1], esc[CHECK_MAX_ESCAPED];
	const char *line, *rest;
	bool ok = false;
	int rc;

	if (!c->caps.starttls) {
		const char *why = "the server does not offer encryption on "
				  "this port; your password would be sent in "
				  "clear";

		if (c->url.has_user && !c->insecure)
			return check_fail(
			    c, EX_UNAVAILABLE, "starttls", why,
			    "enable TLS on the server, or use the TLS port "
			    "(pop3s://, imaps://, submissions://)",
			    "no %s in the capabilities", cmds[c->url.proto]);
		check_say(c, CHECK_WARN, "starttls", "%s", why);
		return 0;
	}
	if (c->url.proto == CHECK_PROTO_IMAP) {
		if ((rc = check_send(c, "starttls", "%s STARTTLS",
				     check_next_tag(c))) != 0 ||
		    (rc = check_imap_read(c, "starttls", &st, text,
					  sizeof(text), NULL)) != 0)
			return rc;
		ok = st == CHECK_IMAP_OK;
	} else if (c->url.proto == CHECK_PROTO_SMTP) {
		if ((rc = check_send(c, "starttls", "STARTTLS")) != 0 ||
		    (rc = check_smtp_read(c, "starttls", &r, false)) != 0)
			return rc;
		ok = r.code == 220;
		snprintf(text, sizeof(text), "%d %s", r.code, r.text);
	} else {
		if ((rc = check_send(c, "starttls", "STLS")) != 0)
			return rc;
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, "starttls");
		ok = check_pop3_status(line, &rest) == 1;
		snprintf(text, sizeof(text), "%s", line);
	}
	if (!ok)
		return check_fail(
		    c, EX_UNAVAILABLE, "starttls",
		    "the server offers STARTTLS but refused it",
		    "look at the server's TLS settings and log", "%s",
		    check_escape(esc, sizeof(esc), text, strlen(text)));
	/* Bytes after the reply were sent in clear and would be taken as
	 * if protected (CVE-2011-0411). */
	if (c->rpos != c->rlen)
		return check_fail(c, EX_UNAVAILABLE, "starttls",
				  "the server (or something in between) sent "
				  "data after its STARTTLS reply: a known "
				  "injection attack",
				  "update the server software",
				  "%zu stray "
				  "bytes",
				  c->rlen - c->rpos);
	check_say(c, CHECK_OK, "starttls", "%s accepted", cmds[c->url.proto]);
	if ((rc = check_tls(c)) != 0)
		return rc;
	/* What the server said before TLS no longer counts. */
	return check_capa(c, "capa(tls)");
}

static int check_auth_failed(struct check_ctx *c, const char *text,
			     const char *code_explain)
{
	char esc[CHECK_MAX_ESCAPED];

	check_escape(esc, sizeof(esc), text, strlen(text));
	check_fail(c, EX_NOPERM, "auth",
		   code_explain != NULL
		       ? code_explain
		       : "the server refused the login without saying why",
		   "check the user name and password; the server's log "
		   "says more",
		   "login as %s refused: %s", c->user_esc, esc);
	return EX_NOPERM;
}

/* SASL PLAIN (RFC 4616) of the checked account, sent after prefix
 * ("" for a continuation line) and wiped from memory at once. */
static int check_send_sasl_plain(struct check_ctx *c, const char *prefix)
{
	char b64[2 * (AUTH_MAX_USER + AUTH_MAX_PASSWORD) + 16];
	int n, rc;

	n = check_sasl_plain(b64, sizeof(b64), c->url.user, c->pw.text,
			     c->pw.len);
	if (n < 0)
		return check_fail(c, EX_SOFTWARE, "auth", NULL, NULL,
				  "credentials too long");
	rc = check_send_secret(c, "auth", prefix, b64, (size_t)n);
	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

static int check_auth_pop3(struct check_ctx *c)
{
	char code[CHECK_MAX_CODE];
	const char *line, *text;
	int rc;

	if (c->caps.seen && !c->caps.user && c->caps.auth_plain) {
		if ((rc = check_send(c, "auth", "AUTH PLAIN")) != 0)
			return rc;
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, "auth");
		if (line[0] != '+' || (line[1] != ' ' && line[1] != '\0'))
			return check_auth_failed(c, line, NULL);
		rc = check_send_sasl_plain(c, "");
		if (rc != 0)
			return rc;
	} else {
		if ((rc = check_send(c, "auth", "USER %s", c->url.user)) != 0)
			return rc;
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, "auth");
		if (check_pop3_status(line, &text) != 1) {
			check_resp_code(text, code, sizeof(code));
			return check_auth_failed(c, line,
						 check_resp_code_explain(code));
		}
		if ((rc = check_send_secret(c, "auth", "PASS ", c->pw.text,
					    c->pw.len)) != 0)
			return rc;
	}
	if (check_read_line(c, &line) < 0)
		return check_read_fail(c, "auth");
	if (check_pop3_status(line, &text) != 1) {
		check_resp_code(text, code, sizeof(code));
		return check_auth_failed(c, line,
					 check_resp_code_explain(code));
	}
	return 0;
}

static int check_auth_imap(struct check_ctx *c)
{
	char qu[2 * AUTH_MAX_USER + 3], qp[2 * AUTH_MAX_PASSWORD + 3];
	char b64[2 * (AUTH_MAX_USER + AUTH_MAX_PASSWORD) + 16];
	char text[CHECK_MAX_LINE + 1], code[CHECK_MAX_CODE], prefix[64];
	enum check_imap_status st;
	bool quotable;
	int rc, n;

	quotable = check_imap_quote(qu, sizeof(qu), c->url.user) == 0 &&
		   strlen(c->pw.text) == c->pw.len &&
		   check_imap_quote(qp, sizeof(qp), c->pw.text) == 0;
	if (c->caps.logindisabled && !c->caps.auth_plain) {
		OPENSSL_cleanse(qp, sizeof(qp));
		return check_fail(c, EX_NOPERM, "auth",
				  "the server disabled LOGIN "
				  "(LOGINDISABLED) and offers no PLAIN "
				  "login: it probably wants TLS first",
				  "use imaps:// or enable STARTTLS",
				  "no usable login method");
	}
	if (!c->caps.logindisabled && quotable) {
		snprintf(prefix, sizeof(prefix), "%s LOGIN ",
			 check_next_tag(c));
		/* user and password in one wiped buffer */
		n = snprintf(b64, sizeof(b64), "%s %s", qu, qp);
		OPENSSL_cleanse(qp, sizeof(qp));
		if (n < 0 || (size_t)n >= sizeof(b64))
			return check_fail(c, EX_SOFTWARE, "auth", NULL, NULL,
					  "credentials too long");
		rc = check_send_secret(c, "auth", prefix, b64, (size_t)n);
		OPENSSL_cleanse(b64, sizeof(b64));
	} else {
		OPENSSL_cleanse(qp, sizeof(qp));
		if ((rc = check_send(c, "auth", "%s AUTHENTICATE PLAIN",
				     check_next_tag(c))) != 0)
			return rc;
		if ((rc = check_imap_read(c, "auth", &st, text, sizeof(text),
					  NULL)) != 0)
			return rc;
		if (text[0] != '+')
			return check_auth_failed(c, text, NULL);
		rc = check_send_sasl_plain(c, "");
	}
	if (rc != 0)
		return rc;
	if ((rc = check_imap_read(c, "auth", &st, text, sizeof(text), NULL)) !=
	    0)
		return rc;
	if (st != CHECK_IMAP_OK) {
		check_resp_code(text, code, sizeof(code));
		return check_auth_failed(c, text,
					 check_resp_code_explain(code));
	}
	return 0;
}

static int check_auth_smtp(struct check_ctx *c)
{
	char b64[2 * (AUTH_MAX_USER + AUTH_MAX_PASSWORD) + 16];
	char text[CHECK_MAX_LINE + 16], enh[CHECK_MAX_CODE];
	struct check_smtp_reply r;
	int rc, n;

	if (!c->caps.auth_plain && !c->caps.auth_login) {
		if (!c->url.submission) {
			check_say(c, CHECK_WARN, "auth",
				  "no AUTH on this port (normal for a server "
				  "that only receives mail); login skipped");
			return -1;
		}
		return check_fail(c, EX_UNAVAILABLE, "auth",
				  "the server offers no PLAIN or LOGIN "
				  "authentication on this port",
				  "enable AUTH on the submission port (after "
				  "TLS)",
				  "no usable AUTH mechanism");
	}
	if (c->caps.auth_plain) {
		rc = check_send_sasl_plain(c, "AUTH PLAIN ");
		if (rc != 0 || (rc = check_smtp_read(c, "auth", &r, false)))
			return rc;
	} else {
		n = check_base64(b64, sizeof(b64), c->url.user,
				 strlen(c->url.user));
		if ((rc = check_send(c, "auth", "AUTH LOGIN")) != 0 ||
		    (rc = check_smtp_read(c, "auth", &r, false)) != 0)
			return rc;
		if (r.code == 334 &&
		    ((rc = check_send(c, "auth", "%s", b64)) != 0 ||
		     (rc = check_smtp_read(c, "auth", &r, false)) != 0))
			return rc;
		if (r.code == 334) {
			n = check_base64(b64, sizeof(b64), c->pw.text,
					 c->pw.len);
			rc = check_send_secret(c, "auth", "", b64,
					       n < 0 ? 0 : (size_t)n);
			OPENSSL_cleanse(b64, sizeof(b64));
			if (rc != 0 ||
			    (rc = check_smtp_read(c, "auth", &r, false)) != 0)
				return rc;
		}
	}
	if (r.code != 235) {
		check_smtp_enhanced(r.text, enh, sizeof(enh));
		snprintf(text, sizeof(text), "%d %s", r.code, r.text);
		return check_auth_failed(c, text,
					 check_smtp_auth_explain(r.code, enh));
	}
	return 0;
}

/* Step 7: log in. 0, or an exit code; -1 when skipped. */
static int check_auth(struct check_ctx *c)
{
	int rc;

	switch (c->url.proto) {
	case CHECK_PROTO_POP3:
		rc = check_auth_pop3(c);
		break;
	case CHECK_PROTO_IMAP:
		rc = check_auth_imap(c);
		break;
	default:
		rc = check_auth_smtp(c);
		break;
	}
	if (rc == 0)
		check_say(c, CHECK_OK, "auth", "logged in as %s", c->user_esc);
	return rc;
}

/* Step 8: one command that needs the mailbox (or, for SMTP, NOOP). */
static int check_session(struct check_ctx *c)
{
	char text[CHECK_MAX_LINE + 1], esc[CHECK_MAX_ESCAPED];
	enum check_imap_status st;
	struct check_smtp_reply r;
	const char *line, *rest, *p;
	uint64_t count, size;
	uint32_t exists = 0;
	bool st_ok;
	int rc;

	switch (c->url.proto) {
	case CHECK_PROTO_POP3:
		if ((rc = check_send(c, "stat", "STAT")) != 0)
			return rc;
		if (check_read_line(c, &line) < 0)
			return check_read_fail(c, "stat");
		/* Parsed from after the status word: a bare "+OK" ends the
		 * string there, and the buffer beyond holds an older line. */
		st_ok = check_pop3_status(line, &rest) == 1;
		p = rest;
		if (!st_ok || parse_uint64(&p, UINT64_MAX, &count) < 0 ||
		    parse_space(&p) < 0 ||
		    parse_uint64(&p, UINT64_MAX, &size) < 0)
			return check_fail(
			    c, EX_UNAVAILABLE, "stat",
			    "the login worked but the mailbox cannot be read",
			    "look at the server's log (permissions, disk)",
			    "%s",
			    check_escape(esc, sizeof(esc), line, strlen(line)));
		check_say(c, CHECK_OK, "stat",
			  "%" PRIu64 " messages, %" PRIu64 " bytes", count,
			  size);
		return 0;
	case CHECK_PROTO_IMAP:
		if ((rc = check_send(c, "select", "%s SELECT INBOX",
				     check_next_tag(c))) != 0 ||
		    (rc = check_imap_read(c, "select", &st, text, sizeof(text),
					  &exists)) != 0)
			return rc;
		if (st != CHECK_IMAP_OK)
			return check_fail(
			    c, EX_UNAVAILABLE, "select",
			    "the login worked but the INBOX cannot be opened",
			    "look at the server's log (permissions, disk)",
			    "%s",
			    check_escape(esc, sizeof(esc), text, strlen(text)));
		check_say(c, CHECK_OK, "select", "INBOX: %u messages", exists);
		return 0;
	default:
		if ((rc = check_send(c, "noop", "NOOP")) != 0 ||
		    (rc = check_smtp_read(c, "noop", &r, false)) != 0)
			return rc;
		if (r.code != 250)
			return check_fail(c, EX_UNAVAILABLE, "noop",
					  "the server refused a harmless "
					  "command",
					  NULL, "%d %s", r.code,
					  check_escape(esc, sizeof(esc), r.text,
						       strlen(r.text)));
		check_say(
		    c, CHECK_OK, "noop", "%d %s", r.code,
		    check_escape(esc, sizeof(esc), r.text, strlen(r.text)));
		return 0;
	}
}

/* Goodbye; problems here are only warnings. */
static void check_quit(struct check_ctx *c)
{
	enum check_imap_status st;
	struct check_smtp_reply r;
	char text[CHECK_MAX_LINE + 1];
	const char *line, *rest;
	bool ok = false;

	switch (c->url.proto) {
	case CHECK_PROTO_POP3:
		ok = check_send(c, "quit", "QUIT") == 0 &&
		     check_read_line(c, &line) == 1 &&
		     check_pop3_status(line, &rest) == 1;
		break;
	case CHECK_PROTO_IMAP:
		ok = check_send(c, "quit", "%s LOGOUT", check_next_tag(c)) ==
			 0 &&
		     check_imap_read(c, "quit", &st, text, sizeof(text),
				     NULL) == 0 &&
		     st == CHECK_IMAP_OK;
		break;
	default:
		ok = check_send(c, "quit", "QUIT") == 0 &&
		     check_smtp_read(c, "quit", &r, false) == 0 &&
		     r.code == 221;
		break;
	}
	check_say(c, ok ? CHECK_OK : CHECK_WARN, "quit",
		  ok ? "said goodbye" : "no clean goodbye from the server");
}

static int check_run(struct check_ctx *c)
{
	int rc;

	if ((rc = check_dns(c)) != 0 || (rc = check_connect(c)) != 0)
		return rc;
	if (c->url.implicit_tls && (rc = check_tls(c)) != 0)
		return rc;
	if ((rc = check_greeting(c)) != 0 || (rc = check_capa(c, "capa")) != 0)
		return rc;
	if (!c->url.implicit_tls && (rc = check_starttls(c)) != 0)
		return rc;
	if (c->url.has_user) {
		rc = check_auth(c);
		if (rc > 0)
			return rc;
		/* A skipped SMTP login (port 25) still gets its NOOP. */
		if ((rc == 0 || c->url.proto == CHECK_PROTO_SMTP) &&
		    (rc = check_session(c)) != 0)
			return rc;
	} else if (c->url.proto == CHECK_PROTO_SMTP &&
		   (rc = check_session(c)) != 0) {
		return rc;
	}
	check_quit(c);
	return EX_OK;
}

static void check_close(struct check_ctx *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	SSL_CTX_free(c->ssl_ctx);
	c->ssl_ctx = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->addrs != NULL)
		freeaddrinfo(c->addrs);
	c->addrs = NULL;
}

int postctl_check_main(int argc, char **argv)
{
	struct check_ctx *c = xcalloc(1, sizeof(*c));
	int rc;

	c->fd = -1;
	if (check_parse_args(c, argc, argv) < 0) {
		free(c);
		return EX_USAGE;
	}
	check_escape(c->user_esc, sizeof(c->user_esc), c->url.user,
		     strlen(c->url.user));
	if (c->url.has_user && postctl_read_password(&c->pw) < 0) {
		free(c);
		return EX_NOINPUT;
	}
	printf("checking %s://%s%s%s:%u (%s%s)\n", c->url.scheme, c->user_esc,
	       c->url.has_user ? "@" : "", c->url.host, c->url.port,
	       check_proto_names[c->url.proto],
	       c->url.implicit_tls ? " over TLS" : "");
	rc = check_run(c);
	check_close(c);
	if (rc == EX_OK)
		printf("result: ok, %u warning%s\n", c->warnings,
		       c->warnings == 1 ? "" : "s");
	else
		printf("result: FAIL at %s (exit %d)\n",
		       c->failed_step != NULL ? c->failed_step : "?", rc);
	OPENSSL_cleanse(&c->pw, sizeof(c->pw));
	free(c);
	if (fflush(stdout) != 0 && rc == EX_OK)
		return EX_IOERR;
	return rc;
}
