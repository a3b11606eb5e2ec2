/*
 * The auth process end to end: a child runs auth_server_run() on one end
 * of SOCK_SEQPACKET socketpairs; the test drives it with auth_client on a
 * libevent loop (and with raw datagrams on a second socket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "auth/auth_client.h"
#include "auth/auth_proto.h"
#include "auth/auth_server.h"
#include "config/config.h"

#define SSHA256_SECRET                                                         \
	"{SSHA256}feV6jwbSJmV+7uchugWsSKnF2injr7MK6FSY3UciVSMBAgMEc2FsdFk="
/* "slowsecret" in a deliberately slow scheme: checked in the pool, so
 * that requests of one peer really are alive at the same time. */
#define SLOW_SHA512                                                            \
	"$6$postdunit$FBugLyZFDMMTXCo4cOuMMqXrPHmBhKEnLFugR6KNNN7KePMD/"       \
	"t7wcIPvBUt9Hvxow.q3Rqbx3MuNP.udbTdzm."

struct fixture {
	char dir[64];
	char users[128];
	struct config cfg;
	pid_t pid;
	int raw_fd; /* a second worker socket for hand-made datagrams */
	struct event_base *base;
	struct auth_client *client;
};

struct result {
	int calls;
	bool null;
	struct auth_reply reply;
	int *outstanding;
	struct event_base *base;
};

static void write_users(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	assert_int_equal(fclose(f), 0);
}

static void start_server(struct fixture *fx, unsigned delay_ms)
{
	int sv[2], raw[2];

	memset(&fx->cfg, 0, sizeof(fx->cfg));
	fx->cfg.users_file = fx->users;
	fx->cfg.auth_failure_delay_ms = delay_ms;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, raw), 0);
	fx->pid = fork();
	assert_true(fx->pid >= 0);
	if (fx->pid == 0) {
		int fds[2] = {sv[1], raw[1]};

		close(sv[0]);
		close(raw[0]);
		_exit(auth_server_run(&fx->cfg, fds, 2));
	}
	close(sv[1]);
	close(raw[1]);
	fx->raw_fd = raw[0];
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->client = auth_client_new(fx->base, sv[0]);
	assert_non_null(fx->client);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_auth_server.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->users, sizeof(fx->users), "%s/users", fx->dir);
	write_users(fx->users,
		    "alice@example.org:" SSHA256_SECRET "::::::quota=1G\n"
		    "bob@example.org:{PLAIN}tanstaaf\n");
	*state = fx;
	return 0;
}

static int wait_child(struct fixture *fx)
{
	int status = -1;

	if (fx->pid > 0) {
		if (waitpid(fx->pid, &status, 0) != fx->pid)
			status = -1;
		fx->pid = 0;
	}
	return status;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc = 0;

	if (fx->client != NULL)
		auth_client_free(&fx->client);
	if (fx->raw_fd > 0)
		close(fx->raw_fd);
	if (fx->base != NULL)
		event_base_free(fx->base);
	/* With every worker socket closed the auth process exits by
	 * itself, with status 0; kill it only if it does not. */
	for (int i = 0; i < 1000 && fx->pid > 0; i++) {
		int status;

		if (waitpid(fx->pid, &status, WNOHANG) == fx->pid) {
			fx->pid = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "auth process status %d\n",
					status);
				rc = -1;
			}
		} else {
			usleep(10000);
		}
	}
	if (fx->pid > 0) {
		fprintf(stderr, "auth process did not exit\n");
		kill(fx->pid, SIGKILL);
		wait_child(fx);
		rc = -1;
	}
	unlink(fx->users);
	rmdir(fx->dir);
	free(fx);
	return rc;
}

static void on_reply(const struct auth_reply *reply, void *ctx)
{
	struct result *r = ctx;

	r->calls++;
	r->null = reply == NULL;
	if (reply != NULL)
		r->reply = *reply;
	if (--*r->outstanding == 0)
		event_base_loopbreak(r->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Runs the loop until outstanding reaches 0 (or 20 s pass). */
static void run_until_done(struct fixture *fx, int *outstanding)
{
	struct timeval tv = {20, 0};
	struct event *t = evtimer_new(fx->base, on_timeout, fx->base);

	if (*outstanding > 0) {
		evtimer_add(t, &tv);
		event_base_dispatch(fx->base);
	}
	event_free(t);
	assert_int_equal(*outstanding, 0);
}

static struct auth_client_request *
send_req(struct fixture *fx, enum auth_request_type type, const char *user,
	 const char *secret, const char *challenge, const char *peer,
	 struct result *r, int *outstanding)
{
	struct auth_request req;
	struct auth_client_request *h;

	memset(&req, 0, sizeof(req));
	memset(r, 0, sizeof(*r));
	r->outstanding = outstanding;
	r->base = fx->base;
	req.type = (uint8_t)type;
	snprintf(req.user, sizeof(req.user), "%s", user);
	snprintf(req.secret, sizeof(req.secret), "%s", secret);
	snprintf(req.challenge, sizeof(req.challenge), "%s", challenge);
	snprintf(req.peer, sizeof(req.peer), "%s", peer);
	h = auth_client_send(fx->client, &req, on_reply, r);
	/* The secret is wiped by the send. */
	for (size_t i = 0; i < sizeof(req.secret); i++)
		assert_int_equal(req.secret[i], 0);
	if (h != NULL)
		(*outstanding)++;
	return h;
}

static void test_auth_server_password(void **state)
{
	struct fixture *fx = *state;
	struct result ok, wrong, unknown, noncanon, look, nolook;
	int outstanding = 0;

	start_server(fx, 0);
	assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org",
				 "secret", "", "192.0.2.1", &ok, &outstanding));
	assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org",
				 "Secret", "", "192.0.2.1", &wrong,
				 &outstanding));
	assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD, "carol@example.org",
				 "secret", "", "192.0.2.1", &unknown,
				 &outstanding));
	assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD, "Alice@example.org",
				 "secret", "", "192.0.2.1", &noncanon,
				 &outstanding));
	assert_non_null(send_req(fx, AUTH_REQUEST_LOOKUP, "alice@example.org",
				 "", "", "192.0.2.1", &look, &outstanding));
	assert_non_null(send_req(fx, AUTH_REQUEST_LOOKUP, "nobody@example.org",
				 "", "", "192.0.2.1", &nolook, &outstanding));
	run_until_done(fx, &outstanding);

	assert_int_equal(ok.calls, 1);
	assert_false(ok.null);
	assert_int_equal(ok.reply.result, AUTH_RESULT_OK);
	assert_string_equal(ok.reply.user, "alice@example.org");
	assert_string_equal(ok.reply.extra, "quota=1G");

	assert_int_equal(wrong.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(wrong.reply.cause, AUTH_CAUSE_WRONG_PASSWORD);
	assert_string_equal(wrong.reply.user, "");

	/* INV-A1: the same result code; only the log-only cause differs. */
	assert_int_equal(unknown.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(unknown.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
	assert_int_equal(noncanon.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(noncanon.reply.cause, AUTH_CAUSE_UNKNOWN_USER);

	assert_int_equal(look.reply.result, AUTH_RESULT_OK);
	assert_string_equal(look.reply.user, "alice@example.org");
	assert_int_equal(nolook.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(nolook.reply.cause, AUTH_CAUSE_UNKNOWN_USER);

	/* Closing the only client socket... the raw one too ... ends the
	 * auth process with status 0. */
	auth_client_free(&fx->client);
	close(fx->raw_fd);
	fx->raw_fd = -1;
	{
		int status = wait_child(fx);

		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

static void test_auth_server_apop(void **state)
{
	struct fixture *fx = *state;
	struct result ok, upper, wrong, nohash, unknown, nochallenge;
	int outstanding = 0;
	const char *ch = "<1896.697170952@dbc.mtview.ca.us>";

	start_server(fx, 0);
	/* RFC 1939 section 7's example digest. */
	send_req(fx, AUTH_REQUEST_APOP, "bob@example.org",
		 "c4c9334bac560ecc979e58001b3e22fb", ch, "p", &ok,
		 &outstanding);
	send_req(fx, AUTH_REQUEST_APOP, "bob@example.org",
		 "C4C9334BAC560ECC979E58001B3E22FB", ch, "p", &upper,
		 &outstanding);
	send_req(fx, AUTH_REQUEST_APOP, "bob@example.org",
		 "c4c9334bac560ecc979e58001b3e22fc", ch, "p", &wrong,
		 &outstanding);
	send_req(fx, AUTH_REQUEST_APOP, "alice@example.org",
		 "c4c9334bac560ecc979e58001b3e22fb", ch, "p", &nohash,
		 &outstanding);
	send_req(fx, AUTH_REQUEST_APOP, "zed@example.org",
		 "c4c9334bac560ecc979e58001b3e22fb", ch, "p", &unknown,
		 &outstanding);
	send_req(fx, AUTH_REQUEST_APOP, "bob@example.org",
		 "c4c9334bac560ecc979e58001b3e22fb", "", "p", &nochallenge,
		 &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(ok.reply.result, AUTH_RESULT_OK);
	assert_string_equal(ok.reply.user, "bob@example.org");
	assert_int_equal(upper.reply.result, AUTH_RESULT_OK);
	assert_int_equal(wrong.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(wrong.reply.cause, AUTH_CAUSE_WRONG_PASSWORD);
	assert_int_equal(nohash.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(nohash.reply.cause, AUTH_CAUSE_APOP_UNAVAILABLE);
	assert_int_equal(unknown.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(unknown.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
	assert_int_equal(nochallenge.reply.result, AUTH_RESULT_TEMPFAIL);
	assert_int_equal(nochallenge.reply.cause, AUTH_CAUSE_BAD_REQUEST);
}

/* INV-A1: after a failure, a peer's next request waits before it is
 * checked, twice as long for every further failure, whatever its
 * password: a right one waits as long as a wrong one, so the time of an
 * answer says nothing about the password. A success does not reset the
 * count (or an attacker would log into an account of its own between
 * guesses). An IPv6 peer is counted by its /64; another peer is not
 * affected. */
static void test_inv_a1_auth_server_tarpit(void **state)
{
	struct fixture *fx = *state;
	struct result r;
	int outstanding = 0;

	start_server(fx, 20);
	for (uint32_t i = 1; i <= 4; i++) {
		/* waited before the check (none for the first), then the
		 * failure held back 20 ms plus jitter up to 10 ms */
		uint32_t wait = i == 1 ? 0 : 20u << (i - 2);

		send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "bad",
			 "", "198.51.100.7", &r, &outstanding);
		run_until_done(fx, &outstanding);
		assert_int_equal(r.reply.result, AUTH_RESULT_FAIL);
		assert_int_equal(r.reply.peer_failures, i);
		assert_true(r.reply.delay_ms >= wait + 20);
	}
	/* An unknown user is tarpitted the same way. */
	send_req(fx, AUTH_REQUEST_PASSWORD, "nobody@example.org", "bad", "",
		 "198.51.100.7", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.peer_failures, 5);
	assert_true(r.reply.delay_ms >= (20u << 3) + 20);

	/* The right password waits before its check just the same, and
	 * the peer is not forgiven. */
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "secret", "",
		 "198.51.100.7", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.result, AUTH_RESULT_OK);
	assert_int_equal(r.reply.peer_failures, 5);
	assert_true(r.reply.delay_ms >= 20u << 4);

	/* Another peer starts from nothing; a second address of the same
	 * IPv6 /64 counts as the same peer, one of another /64 does not. */
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "bad", "",
		 "2001:db8::1", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.peer_failures, 1);
	assert_true(r.reply.delay_ms >= 20 && r.reply.delay_ms <= 30 + 100);
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "bad", "",
		 "2001:db8::ffff:2", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.peer_failures, 2);
	assert_true(r.reply.delay_ms >= 40);
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "bad", "",
		 "2001:db8:0:1::1", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.peer_failures, 1);
}

/* A flood from one peer has at most its share of the auth process: its
 * extra requests fail at once (before any check) while another peer is
 * answered without waiting; cancelled requests give their share back. */
static void test_auth_server_peer_share(void **state)
{
	struct fixture *fx = *state;
	struct result flood[12], other, again;
	struct auth_client_request *h[12];
	int outstanding = 0, busy = 0;

	start_server(fx, 2000);
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "bad", "",
		 "192.0.2.9", &flood[0], &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(flood[0].reply.peer_failures, 1);
	/* Now every request of 192.0.2.9 waits 2 s before its check. */
	for (int i = 0; i < 12; i++)
		h[i] =
		    send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org",
			     "bad", "", "192.0.2.9", &flood[i], &outstanding);
	/* Those refused come back at once; the others stay queued. */
	while (busy < 4) {
		struct timeval tv = {0, 50000};

		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
		busy = 0;
		for (int i = 0; i < 12; i++)
			busy += flood[i].calls;
	}
	assert_int_equal(busy, 4);
	for (int i = 0; i < 12; i++) {
		if (flood[i].calls == 0)
			continue;
		assert_int_equal(flood[i].reply.result, AUTH_RESULT_TEMPFAIL);
		assert_int_equal(flood[i].reply.cause, AUTH_CAUSE_PEER_BUSY);
		h[i] = NULL;
	}
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "192.0.2.10", &other, &outstanding);
	/* Only other's reply can come before 2 s: the 8 queued wait. */
	{
		struct timeval tv = {1, 0};

		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
	assert_int_equal(other.calls, 1);
	assert_int_equal(other.reply.result, AUTH_RESULT_OK);
	/* Cancelling the queued requests frees the peer's share. */
	for (int i = 0; i < 12; i++) {
		if (h[i] != NULL) {
			auth_client_cancel(&h[i]);
			outstanding--;
		}
	}
	assert_int_equal(outstanding, 0);
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "192.0.2.9", &again, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(again.reply.result, AUTH_RESULT_OK);
	for (int i = 0; i < 12; i++)
		assert_true(flood[i].calls <= 1);
}

/* Runs the loop until r has its reply (or 20 s pass). */
static void run_until_answered(struct fixture *fx, const struct result *r)
{
	for (int i = 0; i < 400 && r->calls == 0; i++) {
		struct timeval tv = {0, 50000};

		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
	assert_int_equal(r->calls, 1);
}

/* Penalised peers cannot take the whole auth process: 128 of them (the
 * /64s of one IPv6 /56), each with its share of 8 requests, would fill
 * all 1024 places; the last quarter is kept for peers without recent
 * failures, so a fresh peer still logs in and the penalised requests
 * beyond three quarters are refused as busy. */
static void test_auth_server_reserve_for_fresh_peers(void **state)
{
	struct fixture *fx = *state;
	static struct result fail[128], flood[128 * 8];
	struct result fresh;
	char peer[64];
	int outstanding = 0, busy = 0;

	start_server(fx, 1000);
	for (int i = 0; i < 128; i++) {
		snprintf(peer, sizeof(peer), "2001:db8:0:%x::1", i);
		send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "bad",
			 "", peer, &fail[i], &outstanding);
	}
	run_until_done(fx, &outstanding);
	for (int i = 0; i < 128; i++)
		assert_int_equal(fail[i].reply.peer_failures, 1);
	/* Every one of these waits 1 s before its check. */
	for (int i = 0; i < 128 * 8; i++) {
		snprintf(peer, sizeof(peer), "2001:db8:0:%x::1", i / 8);
		assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD,
					 "bob@example.org", "bad", "", peer,
					 &flood[i], &outstanding));
	}
	/* Sent after the flood on the same socket, so read after it. */
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "192.0.2.200", &fresh, &outstanding);
	run_until_answered(fx, &fresh);
	assert_int_equal(fresh.reply.result, AUTH_RESULT_OK);
	/* The refusals were answered before fresh's success. */
	for (int i = 0; i < 128 * 8; i++) {
		if (flood[i].calls == 0)
			continue;
		assert_int_equal(flood[i].reply.result, AUTH_RESULT_TEMPFAIL);
		assert_int_equal(flood[i].reply.cause, AUTH_CAUSE_BUSY);
		busy++;
	}
	assert_int_equal(busy, 1024 / 4);
	/* The rest get NULL now, while outstanding still exists. */
	auth_client_free(&fx->client);
}

/* A peer whose slots in the tarpit table are all taken by other peers'
 * live requests is still served (from the shared overflow entry), not
 * refused as busy. The table is keyed by a secret; the test sets it so
 * that it can pick 8 addresses that fill the victim's 8 slots. */
static void test_auth_server_peer_window_full(void **state)
{
	static const unsigned char secret[AUTH_PEER_SECRET_SIZE] =
	    "test secret 16b";
	struct fixture *fx = *state;
	struct result fill[8], victim;
	char fillers[8][32] = {{0}}, addr[32];
	size_t start = auth_peer_slot(secret, "192.0.2.77");
	int found = 0, outstanding = 0;

	/* 8 addresses whose window is the victim's: each takes one of its
	 * slots, whichever free one the table picks. */
	for (int i = 0; i < 1 << 24 && found < 8; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16 & 255,
			 i >> 8 & 255, i & 255);
		if (auth_peer_slot(secret, addr) == start)
			snprintf(fillers[found++], sizeof(fillers[0]), "%s",
				 addr);
	}
	assert_int_equal(found, 8);
	auth_server_peer_secret = secret;
	start_server(fx, 2000);
	auth_server_peer_secret = NULL;
	/* Each failure is held back 2 s: the 8 slots stay busy. */
	for (int k = 0; k < 8; k++)
		send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "bad",
			 "", fillers[k], &fill[k], &outstanding);
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "192.0.2.77", &victim, &outstanding);
	run_until_answered(fx, &victim);
	assert_int_equal(victim.reply.result, AUTH_RESULT_OK);
	for (int k = 0; k < 8; k++)
		assert_int_equal(fill[k].calls, 0);
	run_until_done(fx, &outstanding);
	for (int k = 0; k < 8; k++) {
		assert_int_equal(fill[k].reply.result, AUTH_RESULT_FAIL);
		assert_int_equal(fill[k].reply.peer_failures, 1);
	}
}

/* A cancel sent while the socket to the auth process is full waits in
 * the client's queue instead of being dropped: the auth process drops
 * the cancelled requests, so their peer's share is free again. */
static void test_auth_client_cancel_when_socket_full(void **state)
{
	struct fixture *fx = *state;
	static struct result look[1000];
	struct result first, queued[8], again;
	struct auth_client_request *h[8];
	int outstanding = 0;

	start_server(fx, 2000);
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "bad", "",
		 "192.0.2.9", &first, &outstanding);
	run_until_done(fx, &outstanding);
	/* 192.0.2.9 now waits 2 s, then longer, before each check: these 8
	 * take its whole share for many seconds. */
	for (int i = 0; i < 8; i++)
		assert_non_null(h[i] = send_req(fx, AUTH_REQUEST_PASSWORD,
						"bob@example.org", "bad", "",
						"192.0.2.9", &queued[i],
						&outstanding));
	/* With the auth process stopped, the socket fills up. */
	assert_int_equal(kill(fx->pid, SIGSTOP), 0);
	for (int i = 0; i < 1000; i++)
		assert_non_null(send_req(fx, AUTH_REQUEST_LOOKUP,
					 "alice@example.org", "", "", "p",
					 &look[i], &outstanding));
	for (int i = 0; i < 8; i++) {
		auth_client_cancel(&h[i]);
		outstanding--;
	}
	assert_int_equal(kill(fx->pid, SIGCONT), 0);
	run_until_done(fx, &outstanding);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(look[i].reply.result, AUTH_RESULT_OK);
	/* Had the cancels been lost, this would be refused at once with
	 * AUTH_CAUSE_PEER_BUSY. */
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "192.0.2.9", &again, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(again.reply.result, AUTH_RESULT_OK);
	for (int i = 0; i < 8; i++)
		assert_int_equal(queued[i].calls, 0);
}

/* Many requests at once: the replies come back in batches (one system
 * call reads up to AUTH_RECV_BATCH datagrams) and every one reaches its
 * own request. */
static void test_auth_server_many_at_once(void **state)
{
	struct fixture *fx = *state;
	static struct result r[100];
	int outstanding = 0;

	start_server(fx, 0);
	for (int i = 0; i < 100; i++)
		assert_non_null(
		    send_req(fx, AUTH_REQUEST_LOOKUP,
			     i % 2 ? "alice@example.org" : "nobody@example.org",
			     "", "", "p", &r[i], &outstanding));
	run_until_done(fx, &outstanding);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].reply.result,
				 i % 2 ? AUTH_RESULT_OK : AUTH_RESULT_FAIL);
	}
}

/* One address that logs many users in at once (a webmail host, an office
 * behind NAT) is served, not refused, while it has no failures; its first
 * failure trims what it queued back to the penalised share. */
static void test_auth_server_busy_clean_peer(void **state)
{
	struct fixture *fx = *state;
	static struct result ok[20], bad[20];
	int outstanding = 0, refused = 0;

	write_users(fx->users,
		    "slow@example.org:{SHA512-CRYPT}" SLOW_SHA512 "\n");
	start_server(fx, 0);
	for (int i = 0; i < 20; i++)
		send_req(fx, AUTH_REQUEST_PASSWORD, "slow@example.org",
			 "slowsecret", "", "198.51.100.7", &ok[i],
			 &outstanding);
	run_until_done(fx, &outstanding);
	for (int i = 0; i < 20; i++)
		assert_int_equal(ok[i].reply.result, AUTH_RESULT_OK);
	for (int i = 0; i < 20; i++)
		send_req(fx, AUTH_REQUEST_PASSWORD, "slow@example.org", "bad",
			 "", "198.51.100.8", &bad[i], &outstanding);
	run_until_done(fx, &outstanding);
	for (int i = 0; i < 20; i++) {
		if (bad[i].reply.result == AUTH_RESULT_TEMPFAIL) {
			assert_int_equal(bad[i].reply.cause,
					 AUTH_CAUSE_PEER_BUSY);
			refused++;
		} else {
			assert_int_equal(bad[i].reply.result, AUTH_RESULT_FAIL);
		}
	}
	/* 4 were being checked when the first failed; of the 16 queued,
	 * those beyond the penalised share of 8 were refused unchecked. */
	assert_true(refused >= 8);
}

static void test_auth_server_cancel(void **state)
{
	struct fixture *fx = *state;
	struct result cancelled, after;
	struct auth_client_request *h;
	int outstanding = 0;

	start_server(fx, 50);
	h = send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "bad", "",
		     "p", &cancelled, &outstanding);
	assert_non_null(h);
	auth_client_cancel(&h);
	assert_null(h);
	outstanding--;
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "secret", "",
		 "q", &after, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(after.reply.result, AUTH_RESULT_OK);
	/* Give the cancelled reply (held back 50+ ms) time to arrive. */
	{
		struct timeval tv = {0, 200000};

		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
	assert_int_equal(cancelled.calls, 0);
}

static void test_auth_server_bad_datagrams(void **state)
{
	struct fixture *fx = *state;
	struct auth_request req;
	struct auth_reply reply;
	char small[3] = "abc";
	ssize_t n;

	start_server(fx, 0);
	/* Wrong size: answered as a bad request when the id is readable. */
	memset(&req, 0, sizeof(req));
	req.version = AUTH_PROTO_VERSION;
	req.id = 77;
	req.type = AUTH_REQUEST_LOOKUP;
	snprintf(req.user, sizeof(req.user), "alice@example.org");
	assert_int_equal(send(fx->raw_fd, &req, sizeof(req) - 1, 0),
			 (ssize_t)sizeof(req) - 1);
	n = recv(fx->raw_fd, &reply, sizeof(reply), 0);
	assert_int_equal(n, sizeof(reply));
	assert_true(auth_reply_valid(&reply, (size_t)n));
	assert_int_equal(reply.id, 77);
	assert_int_equal(reply.result, AUTH_RESULT_TEMPFAIL);
	assert_int_equal(reply.cause, AUTH_CAUSE_BAD_REQUEST);

	/* An unterminated string. */
	memset(req.peer, 'x', sizeof(req.peer));
	req.id = 78;
	assert_int_equal(send(fx->raw_fd, &req, sizeof(req), 0),
			 (ssize_t)sizeof(req));
	n = recv(fx->raw_fd, &reply, sizeof(reply), 0);
	assert_int_equal(n, sizeof(reply));
	assert_int_equal(reply.id, 78);
	assert_int_equal(reply.cause, AUTH_CAUSE_BAD_REQUEST);

	/* Unknown type. */
	req.peer[0] = '\0';
	req.type = 9;
	req.id = 79;
	assert_int_equal(send(fx->raw_fd, &req, sizeof(req), 0),
			 (ssize_t)sizeof(req));
	n = recv(fx->raw_fd, &reply, sizeof(reply), 0);
	assert_int_equal(reply.id, 79);
	assert_int_equal(reply.cause, AUTH_CAUSE_BAD_REQUEST);

	/* Too short to carry an id: ignored; the next one is answered. */
	assert_int_equal(send(fx->raw_fd, small, sizeof(small), 0), 3);
	req.type = AUTH_REQUEST_LOOKUP;
	req.id = 80;
	assert_int_equal(send(fx->raw_fd, &req, sizeof(req), 0),
			 (ssize_t)sizeof(req));
	n = recv(fx->raw_fd, &reply, sizeof(reply), 0);
	assert_int_equal(n, sizeof(reply));
	assert_int_equal(reply.id, 80);
	assert_int_equal(reply.result, AUTH_RESULT_OK);
}

static void test_auth_server_reload_and_term(void **state)
{
	struct fixture *fx = *state;
	struct result r;
	int outstanding = 0, status;

	start_server(fx, 0);
	send_req(fx, AUTH_REQUEST_PASSWORD, "carol@example.org", "tanstaaf", "",
		 "p", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.cause, AUTH_CAUSE_UNKNOWN_USER);

	write_users(fx->users, "carol@example.org:{PLAIN}tanstaaf\n");
	assert_int_equal(kill(fx->pid, SIGHUP), 0);
	for (int tries = 0; tries < 50; tries++) {
		usleep(20000);
		send_req(fx, AUTH_REQUEST_LOOKUP, "carol@example.org", "", "",
			 "p", &r, &outstanding);
		run_until_done(fx, &outstanding);
		if (r.reply.result == AUTH_RESULT_OK)
			break;
	}
	assert_int_equal(r.reply.result, AUTH_RESULT_OK);
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "secret", "",
		 "p", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.cause, AUTH_CAUSE_UNKNOWN_USER);

	/* A broken file on reload keeps the old users. */
	unlink(fx->users);
	assert_int_equal(kill(fx->pid, SIGHUP), 0);
	usleep(100000);
	send_req(fx, AUTH_REQUEST_PASSWORD, "carol@example.org", "tanstaaf", "",
		 "p", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.result, AUTH_RESULT_OK);

	assert_int_equal(kill(fx->pid, SIGTERM), 0);
	status = wait_child(fx);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * INV-A1: an unknown user is verified against an existing user's hash (its
 * decoy) so that it costs what a known user costs, but it fails even when
 * the password is the decoy's. With one user the decoy is that user.
 */
static void test_inv_a1_auth_server_unknown_user_decoy(void **state)
{
	struct fixture *fx = *state;
	struct result unknown, noncanon, apop, known;
	int outstanding = 0;

	write_users(fx->users, "bob@example.org:{PLAIN}tanstaaf\n");
	start_server(fx, 0);
	send_req(fx, AUTH_REQUEST_PASSWORD, "carol@example.org", "tanstaaf", "",
		 "p", &unknown, &outstanding);
	send_req(fx, AUTH_REQUEST_PASSWORD, "Bob@example.org", "tanstaaf", "",
		 "p", &noncanon, &outstanding);
	/* RFC 1939 section 7's digest of "tanstaaf", bob's password. */
	send_req(fx, AUTH_REQUEST_APOP, "zed@example.org",
		 "c4c9334bac560ecc979e58001b3e22fb",
		 "<1896.697170952@dbc.mtview.ca.us>", "p", &apop, &outstanding);
	send_req(fx, AUTH_REQUEST_PASSWORD, "bob@example.org", "tanstaaf", "",
		 "p", &known, &outstanding);
	run_until_done(fx, &outstanding);

	assert_int_equal(unknown.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(unknown.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
	assert_string_equal(unknown.reply.user, "");
	assert_string_equal(unknown.reply.extra, "");
	assert_int_equal(noncanon.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(noncanon.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
	assert_string_equal(noncanon.reply.user, "");
	assert_int_equal(apop.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(apop.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
	assert_string_equal(apop.reply.user, "");
	/* The decoy itself still logs in. */
	assert_int_equal(known.reply.result, AUTH_RESULT_OK);
	assert_string_equal(known.reply.user, "bob@example.org");
}

/* INV-A1: with several users, whichever one an unknown name maps to, its
 * password does not let the unknown name in. */
static void test_inv_a1_auth_server_unknown_user_any_decoy(void **state)
{
	struct fixture *fx = *state;
	static const char *const names[] = {
	    "carol@example.org",
	    "dave@example.org",
	    "erin@example.org",
	    "frank@example.org",
	    "x@y",
	    "nobody",
	};
	static const char *const passwords[] = {"secret", "tanstaaf"};
	struct result r[6][2];
	int outstanding = 0;

	start_server(fx, 0);
	for (size_t i = 0; i < 6; i++)
		for (size_t j = 0; j < 2; j++)
			send_req(fx, AUTH_REQUEST_PASSWORD, names[i],
				 passwords[j], "", "p", &r[i][j], &outstanding);
	run_until_done(fx, &outstanding);
	for (size_t i = 0; i < 6; i++) {
		for (size_t j = 0; j < 2; j++) {
			assert_int_equal(r[i][j].calls, 1);
			assert_int_equal(r[i][j].reply.result,
					 AUTH_RESULT_FAIL);
			assert_int_equal(r[i][j].reply.cause,
					 AUTH_CAUSE_UNKNOWN_USER);
			assert_string_equal(r[i][j].reply.user, "");
		}
	}
}

/* An empty users file leaves no decoy: the dummy hash stands in, and an
 * unknown user is still a plain failure, not a temporary one. */
static void test_inv_a1_auth_server_unknown_user_no_users(void **state)
{
	struct fixture *fx = *state;
	struct result r;
	int outstanding = 0;

	write_users(fx->users, "# nobody yet\n");
	start_server(fx, 0);
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "secret", "",
		 "p", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.result, AUTH_RESULT_FAIL);
	assert_int_equal(r.reply.cause, AUTH_CAUSE_UNKNOWN_USER);
}

/* Without a users file every request fails temporarily. */
static void test_auth_server_no_users_file(void **state)
{
	struct fixture *fx = *state;
	struct result r;
	int outstanding = 0;

	unlink(fx->users);
	start_server(fx, 0);
	send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org", "secret", "",
		 "p", &r, &outstanding);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.reply.result, AUTH_RESULT_TEMPFAIL);
	assert_int_equal(r.reply.cause, AUTH_CAUSE_INTERNAL);
}

/* When the auth process dies, waiting requests get NULL and later sends
 * fail. */
static void test_auth_server_dies(void **state)
{
	struct fixture *fx = *state;
	struct result r, r2;
	int outstanding = 0;

	start_server(fx, 5000);
	assert_non_null(send_req(fx, AUTH_REQUEST_PASSWORD, "alice@example.org",
				 "bad", "", "p", &r, &outstanding));
	usleep(100000);
	kill(fx->pid, SIGKILL);
	wait_child(fx);
	run_until_done(fx, &outstanding);
	assert_int_equal(r.calls, 1);
	assert_true(r.null);
	assert_null(send_req(fx, AUTH_REQUEST_LOOKUP, "alice@example.org", "",
			     "", "p", &r2, &outstanding));
	assert_int_equal(r2.calls, 0);
}

struct free_ctx {
	struct fixture *fx;
	struct result *r;
};

static void on_reply_free_client(const struct auth_reply *reply, void *ctx)
{
	struct free_ctx *fc = ctx;

	on_reply(reply, fc->r);
	auth_client_free(&fc->fx->client);
}

/* A callback may free the client; the requests still waiting then get
 * their callback with NULL, once. */
static void test_auth_client_free_in_callback(void **state)
{
	struct fixture *fx = *state;
	struct result first, second;
	struct free_ctx fc = {fx, &first};
	struct auth_request req;
	int outstanding = 0;

	start_server(fx, 0);
	memset(&req, 0, sizeof(req));
	memset(&first, 0, sizeof(first));
	first.outstanding = &outstanding;
	first.base = fx->base;
	req.type = AUTH_REQUEST_LOOKUP;
	snprintf(req.user, sizeof(req.user), "alice@example.org");
	assert_non_null(
	    auth_client_send(fx->client, &req, on_reply_free_client, &fc));
	outstanding++;
	assert_non_null(send_req(fx, AUTH_REQUEST_LOOKUP, "bob@example.org", "",
				 "", "p", &second, &outstanding));
	run_until_done(fx, &outstanding);
	assert_null(fx->client);
	assert_int_equal(first.calls, 1);
	assert_false(first.null);
	assert_int_equal(first.reply.result, AUTH_RESULT_OK);
	assert_int_equal(second.calls, 1);
	assert_true(second.null);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_auth_server_password, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_apop, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_inv_a1_auth_server_tarpit,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_peer_share, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_auth_server_reserve_for_fresh_peers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_peer_window_full,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_auth_client_cancel_when_socket_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_many_at_once,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_busy_clean_peer,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_cancel, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_bad_datagrams,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_reload_and_term,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_a1_auth_server_unknown_user_decoy, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_a1_auth_server_unknown_user_any_decoy, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_inv_a1_auth_server_unknown_user_no_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_no_users_file,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_server_dies, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_auth_client_free_in_callback,
					    setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
