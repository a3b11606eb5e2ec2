/*
 * A whole IMAP session: the real collector, command table, folder and
 * mailbox code, FETCH/SEARCH and the store, driven through a real
 * struct conn on one end of a socketpair, with a real Maildir behind it.
 *
 * Each input is a client's byte stream. The first byte picks the mode:
 * even: "a LOGIN demo pass" is sent first, so the fuzzer's bytes run in
 * the authenticated states; odd: the fuzzer's bytes come first (the
 * not-authenticated state), then a fixed login and SELECT. The stream is
 * written, the client side is half-closed, and the event loop runs
 * (bounded by iterations, never by time) until the session has ended:
 * after the client's EOF it must answer what it got and end by itself
 * (a session still waiting then is a hang, and crashes the target); one
 * that stopped reading first is told the server is stopping. Replies are
 * read and discarded. Whatever the bytes, the session must end, free
 * everything (ASan's leak check) and never trip an assertion.
 *
 * The mailbox (INBOX with three messages, one of them multipart, and a
 * folder "Work" with two) is rebuilt before every input, so that an
 * input reproduces alone. The tree lives under /dev/shm when it can: the
 * store fsyncs every message it writes.
 *
 * The auth process is faked here, in-process, on its SOCK_SEQPACKET
 * socketpair, speaking the real auth protocol (auth_proto.h) to the real
 * auth client: it is not the code under test. It accepts the password
 * "pass" for demo@postd.localhost and refuses everything else.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/auth_client.h"
#include "auth/auth_proto.h"
#include "config/config.h"
#include "fuzz_util.h"
#include "lib/log.h"
#include "net/conn.h"
#include "proto/common/proto_env.h"
#include "proto/imap/imap_session.h"
#include "storage/folder.h"
#include "storage/mail_index.h"
#include "storage/maildir.h"

#define FUZZ_USER "demo@" CONFIG_EMBEDDED_DOMAIN
#define FUZZ_PASSWORD "pass"
/* Event loop passes without any I/O before the session counts as stuck
 * (waiting for input that will never come, e.g. IDLE without DONE). */
#define FUZZ_IDLE_PASSES 16
/* Upper bound on passes per input; reaching it is a hang. */
#define FUZZ_MAX_PASSES 200000

static const char login_first[] = "a LOGIN demo " FUZZ_PASSWORD "\r\n";
static const char login_after[] =
    "\r\nz1 LOGIN demo " FUZZ_PASSWORD "\r\nz2 SELECT INBOX\r\nz3 FETCH 1:* "
    "(FLAGS BODYSTRUCTURE)\r\nz4 LOGOUT\r\n";

static const char msg_plain[] = "From: Alice <alice@example.org>\r\n"
				"To: demo@postd.localhost\r\n"
				"Subject: Hello\r\n"
				"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
				"Message-ID: <1@example.org>\r\n"
				"\r\n"
				"Hello there.\r\n";
static const char msg_multipart[] =
    "From: Bob <bob@example.org>\r\n"
    "To: demo@postd.localhost, carol@example.org\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
    "Date: Tue, 8 Feb 1994 10:00:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=C3=A9 search me\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.org\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--b1\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQFBgc=\r\n"
    "--b1--\r\n";
static const char msg_reply[] = "From: demo@postd.localhost\r\n"
				"To: alice@example.org\r\n"
				"Subject: Re: Hello\r\n"
				"In-Reply-To: <1@example.org>\r\n"
				"References: <1@example.org>\r\n"
				"\r\n"
				"Hi Alice.\r\n";

struct fuzz_state {
	struct config *cfg;
	struct event_base *base;
	struct proto_env env;
	char dir[64];  /* the temporary tree */
	int auth_peer; /* the fake auth process's end */
	struct event *auth_ev;
	bool auth_active; /* the fake answered something this pass */
	bool verbose;	  /* POSTD_FUZZ_VERBOSE: replies to stderr */
};

static struct fuzz_state st;

static int fuzz_remove_entry(const char *path, const struct stat *sb, int type,
			     struct FTW *ftw);
static void fuzz_mailbox_reset(void);
static void fuzz_remove_tree(void);
static void fuzz_deliver(int folder_fd, const char *msg);
static void fuzz_auth_cb(evutil_socket_t fd, short what, void *arg);
static void fuzz_session_run(const uint8_t *data, size_t size);

static int fuzz_remove_entry(const char *path, const struct stat *sb, int type,
			     struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* At exit, so that runs leave no trees behind in /dev/shm. */
static void fuzz_remove_tree(void)
{
	(void)nftw(st.dir, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Through the store's own API, as the server would have written it. */
static void fuzz_deliver(int folder_fd, const char *msg)
{
	struct mail_append *a;
	char err[256];
	uint32_t uidvalidity, uid;

	if (mail_append_begin(folder_fd, &a, err, sizeof(err)) != MAIL_OK ||
	    mail_append_write(a, msg, strlen(msg), err, sizeof(err)) !=
		MAIL_OK ||
	    mail_append_commit(&a, 0, NULL, 0, 0, &uidvalidity, &uid, err,
			       sizeof(err)) != MAIL_OK) {
		fprintf(stderr, "fuzz_imap_session: append: %s\n", err);
		abort();
	}
}

/* A fresh DIR/mail with the user's Maildir, INBOX and "Work". */
static void fuzz_mailbox_reset(void)
{
	char path[128], err[256];
	struct maildir_delivery *d;
	const char *error;
	int user_fd, work_fd, errno_r;

	if (st.env.mail_root_fd >= 0)
		close(st.env.mail_root_fd);
	snprintf(path, sizeof(path), "%s/mail", st.dir);
	if (nftw(path, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 &&
	    errno != ENOENT)
		abort();
	if (mkdir(path, 0700) < 0)
		abort();
	st.env.mail_root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(st.env.mail_root_fd >= 0);
	user_fd = maildir_open(st.env.mail_root_fd, FUZZ_USER, true, &error);
	FUZZ_CHECK(user_fd >= 0);
	/* INBOX: a plain Maildir delivery, as SMTP makes it (the index is
	 * built on SELECT); the rest through the IMAP store. */
	d = maildir_delivery_begin(user_fd, &error);
	FUZZ_CHECK(d != NULL);
	FUZZ_CHECK(maildir_delivery_write(d, msg_plain, strlen(msg_plain),
					  &error) == 0);
	FUZZ_CHECK(maildir_delivery_commit(&d, path, sizeof(path), &errno_r,
					   &error) == 0);
	fuzz_deliver(user_fd, msg_multipart);
	fuzz_deliver(user_fd, msg_reply);
	FUZZ_CHECK(folder_create(user_fd, "Work", 0, err, sizeof(err)) ==
		   FOLDER_OK);
	FUZZ_CHECK(folder_open(user_fd, "Work", &work_fd, err, sizeof(err)) ==
		   FOLDER_OK);
	fuzz_deliver(work_fd, msg_plain);
	fuzz_deliver(work_fd, msg_multipart);
	close(work_fd);
	close(user_fd);
}

/* The fake auth process: one reply per PASSWORD request, none for a
 * CANCEL, as auth_server.c does. */
static void fuzz_auth_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_request req;
	struct auth_reply reply;
	ssize_t n;

	(void)what;
	(void)arg;
	while ((n = recv(fd, &req, sizeof(req), MSG_DONTWAIT)) > 0) {
		st.auth_active = true;
		if (!auth_request_valid(&req, (size_t)n) ||
		    req.type == AUTH_REQUEST_CANCEL)
			continue;
		memset(&reply, 0, sizeof(reply));
		reply.version = AUTH_PROTO_VERSION;
		reply.id = req.id;
		if (req.type == AUTH_REQUEST_PASSWORD &&
		    strcmp(req.user, FUZZ_USER) == 0 &&
		    strcmp(req.secret, FUZZ_PASSWORD) == 0) {
			reply.result = AUTH_RESULT_OK;
			snprintf(reply.user, sizeof(reply.user), "%s",
				 req.user);
		} else {
			reply.result = AUTH_RESULT_FAIL;
			reply.cause = AUTH_CAUSE_WRONG_PASSWORD;
		}
		FUZZ_CHECK(send(fd, &reply, sizeof(reply), MSG_DONTWAIT) ==
			   (ssize_t)sizeof(reply));
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *verbose = getenv("POSTD_FUZZ_VERBOSE");
	int sv[2];

	(void)argc;
	(void)argv;
	log_init("fuzz_imap_session", 1);
	st.verbose = verbose != NULL;
	log_set_level(st.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	snprintf(st.dir, sizeof(st.dir), "%s",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm/postd-fuzz.XXXXXX"
					       : "/tmp/postd-fuzz.XXXXXX");
	if (mkdtemp(st.dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(fuzz_remove_tree);
	st.cfg = config_default(st.dir);
	/* Passwords over the socketpair without TLS, as on loopback. */
	st.cfg->plaintext_auth = PLAINTEXT_AUTH_YES;
	st.base = event_base_new();
	FUZZ_CHECK(st.base != NULL);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) ==
		   0);
	st.auth_peer = sv[1];
	st.auth_ev =
	    event_new(st.base, sv[1], EV_READ | EV_PERSIST, fuzz_auth_cb, NULL);
	FUZZ_CHECK(st.auth_ev != NULL && event_add(st.auth_ev, NULL) == 0);
	st.env.cfg = st.cfg;
	st.env.base = st.base;
	st.env.auth = auth_client_new(st.base, sv[0]);
	st.env.mail_root_fd = -1;
	st.env.queue_fd = -1;
	return 0;
}

/* Writes as much of out[*off..len) as the socket takes. */
static bool fuzz_write_some(int fd, const uint8_t *out, size_t len, size_t *off)
{
	bool progress = false;

	while (*off < len) {
		ssize_t n = send(fd, out + *off, len - *off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		*off += (size_t)n;
		progress = true;
	}
	return progress;
}

/* Reads and drops the server's replies; true if there were any. */
static bool fuzz_drain(int fd, bool *eof)
{
	char sink[16384];
	bool progress = false;
	ssize_t n;

	while ((n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT)) > 0) {
		if (st.verbose)
			fwrite(sink, 1, (size_t)n, stderr);
		progress = true;
	}
	if (n == 0)
		*eof = true;
	return progress;
}

static void fuzz_session_run(const uint8_t *stream, size_t len)
{
	struct sockaddr_in peer = {.sin_family = AF_INET};
	struct conn *conn;
	size_t off = 0, passes = 0, quiet = 0;
	bool eof = false, half_closed = false, stopped = false;
	int sv[2];

	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	peer.sin_port = htons(40000);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	FUZZ_CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	conn = conn_new(st.base, sv[0], (struct sockaddr *)&peer, sizeof(peer),
			LISTEN_IMAP, NULL);
	imap_session_start(conn, &st.env);

	while (conn_count() > 0) {
		bool progress;

		FUZZ_CHECK(++passes < FUZZ_MAX_PASSES);
		st.auth_active = false;
		progress = fuzz_write_some(sv[1], stream, len, &off);
		if (off == len && !half_closed) {
			/* The client has said everything: what it sent is
			 * still answered, then the session ends. */
			shutdown(sv[1], SHUT_WR);
			half_closed = true;
		}
		event_base_loop(st.base, EVLOOP_NONBLOCK);
		progress |= fuzz_drain(sv[1], &eof) | st.auth_active;
		quiet = progress ? 0 : quiet + 1;
		if (quiet >= FUZZ_IDLE_PASSES && !stopped) {
			/* Once the client's input has ended, every command
			 * is answered and the session ends on its own
			 * (conn.h: the peer's EOF); one still waiting is
			 * stuck. Otherwise the session stopped reading
			 * (after LOGOUT, or paused): stop it, as at
			 * shutdown. */
			FUZZ_CHECK(!half_closed);
			conn_shutdown_all();
			stopped = true;
			quiet = 0;
		}
		/* The session must go within as many passes again. */
		FUZZ_CHECK(!stopped || quiet < FUZZ_IDLE_PASSES);
	}
	/* conn_count() == 0: the session and its conn are freed. */
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *stream;
	size_t len;

	if (size == 0)
		return 0;
	fuzz_mailbox_reset();
	stream = malloc(size + sizeof(login_after));
	FUZZ_CHECK(stream != NULL);
	if (data[0] % 2 == 0) {
		memcpy(stream, login_first, sizeof(login_first) - 1);
		memcpy(stream + sizeof(login_first) - 1, data + 1, size - 1);
		len = sizeof(login_first) - 1 + size - 1;
	} else {
		memcpy(stream, data + 1, size - 1);
		memcpy(stream + size - 1, login_after, sizeof(login_after) - 1);
		len = size - 1 + sizeof(login_after) - 1;
	}
	fuzz_session_run(stream, len);
	free(stream);
	return 0;
}
