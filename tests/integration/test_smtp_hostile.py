"""Hostile and odd SMTP input, by category: cross-protocol bytes (HTTP,
a TLS ClientHello), pipelining discipline (RFC 2920: DATA, STARTTLS,
QUIT and AUTH prompts end a group), mail loops (Received: count), NUL in
a command, and long lines on submission. Each refusal that closes the
session gives one reply with a matching RFC 3463 class, closes at once,
and writes exactly one refusal log line."""

import re
import ssl

import pytest

from conftest import ALICE, DOMAIN
from pop3util import b64, plain_ir
from smtputil import SmtpConn, check_trace, pop3_fetch_all

SENDER = "sender@remote.example"
BOB = "bob@" + DOMAIN
REFUSAL_RE = re.compile(r"refused peer=\S+ session=\S+ proto=\S+ user=\S+ "
                        r"cause=")
ENHANCED_RE = re.compile(r"^([245])\d\d ([245])\.\d{1,3}\.\d{1,3} ")


def closed_with_one_reply(srv, c, want, cause, mark):
    """The next reply starts with want (class matching), nothing follows
    it, the connection is closed, and exactly one refusal line names
    cause."""
    r = c.reply_line()
    assert r.startswith(want + " "), r
    m = ENHANCED_RE.match(r)
    assert m and m.group(1) == m.group(2), r
    rest = c.wait_closed()
    assert rest == b"", "bytes after the closing reply: %r" % rest
    srv.wait_log(r"refused .*cause=" + cause, since=mark)
    lines = [ln for ln in srv.log_since(mark).splitlines()
             if REFUSAL_RE.search(ln)]
    assert len(lines) == 1, lines
    return r


def client_hello():
    """The first flight of a real TLS client: a ClientHello record."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[:2] == b"\x16\x03", hello[:8]
    return hello


# -- cross-protocol bytes (ALPACA-style) ----------------------------------------

@pytest.mark.parametrize("request_line", [
    b"GET / HTTP/1.1",
    b"POST /cgi-bin/x HTTP/1.0",
    b"CONNECT mail.example.org:443 HTTP/1.1",
], ids=["get", "post", "connect"])
@pytest.mark.parametrize("after_ehlo", [False, True],
                         ids=["first-line", "after-ehlo"])
def test_http_request_closes(shared_server, request_line, after_ehlo):
    """A browser or proxy talking HTTP to the SMTP port gets one reply
    and the connection is closed at once; the request's header lines are
    never answered."""
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        if after_ehlo:
            assert c.ehlo()[0] == 250
        c.send(request_line + b"\r\nHost: localhost\r\nNOOP\r\n\r\n")
        closed_with_one_reply(srv, c, "554 5.7.0",
                              r"cross-protocol: HTTP request", mark)


@pytest.mark.parametrize("port", ["smtp", "submission"])
@pytest.mark.parametrize("after_ehlo", [False, True],
                         ids=["first-bytes", "after-ehlo"])
def test_tls_client_hello_on_plaintext_closes(shared_server, port,
                                              after_ehlo):
    """A TLS ClientHello where a command should start (implicit TLS
    spoken to a plaintext port, or TLS started without STARTTLS): closed
    at once with one log line. As the very first bytes the connection
    layer closes without a reply (the client waits for a ServerHello and
    could not read one); later the session replies once."""
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(getattr(srv, port + "_port")) as c:
        if after_ehlo:
            assert c.ehlo()[0] == 250
        c.send(client_hello())
        if after_ehlo:
            closed_with_one_reply(srv, c, "554 5.7.0",
                                  r"cross-protocol: TLS handshake on a "
                                  r"plaintext port", mark)
            return
        assert c.wait_closed() == b""
    srv.wait_log(r"refused .*cause=TLS handshake on a plaintext port",
                 since=mark)


def test_smtp_verbs_with_http_words_are_not_http(shared_server):
    """Only a request line is HTTP: an SMTP command that mentions it is
    not."""
    with SmtpConn(shared_server.smtp_port) as c:
        assert c.cmd("EHLO client.example")[:3] == "250"
        assert c.cmd("NOOP GET / HTTP/1.1").startswith("250")
        assert c.cmd("QUIT").startswith("221")


# -- pipelining discipline (RFC 2920 section 3.1) -----------------------------

def body_with_commands():
    return (b"Subject: x\r\n\r\nRSET\r\nMAIL FROM:<evil@x.example>\r\n"
            b"RCPT TO:<" + ALICE.encode() + b">\r\nNOOP\r\n.\r\n")


def test_refused_data_body_never_run_as_commands(shared_server):
    """No valid recipient, and the client sends DATA and its message in
    one write: the body's lines must not be executed (a RCPT TO: line in
    a body got 250 before). Sync error, closed."""
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<nobody@%s>" % DOMAIN).startswith("550")
        mark = srv.log_mark()
        c.send(b"DATA\r\n" + body_with_commands())
        closed_with_one_reply(srv, c, "554 5.5.0",
                              r"pipelining sync error: \d+ octets sent "
                              r"after DATA before its reply", mark)
    assert pop3_fetch_all(srv, ALICE) == []


def test_body_before_354_is_sync_error(shared_server):
    """DATA must end a pipelined group: a client that sends the body with
    DATA, before the 354, is out of step. Nothing is stored."""
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        mark = srv.log_mark()
        c.send(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" %
                (SENDER, ALICE)).encode() + body_with_commands())
        assert c.reply_line().startswith("250 2.1.0")
        assert c.reply_line().startswith("250 2.1.5")
        closed_with_one_reply(srv, c, "554 5.5.0",
                              r"pipelining sync error: .* after DATA", mark)
    assert pop3_fetch_all(srv, ALICE) == []


def test_pipelined_group_then_body_after_354(shared_server):
    """What msmtp, curl and swaks --pipe do: MAIL, RCPT, DATA in one
    write, the body only after the 354. Accepted."""
    srv = shared_server
    srv.clear_mailbox()
    msg = b"Subject: piped\r\n\r\nbody\r\n"
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" %
               (SENDER, ALICE))
        assert c.reply_line().startswith("250 2.1.0")
        assert c.reply_line().startswith("250 2.1.5")
        assert c.reply_line().startswith("354")
        c.send(msg + b".\r\nQUIT\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        assert c.reply_line().startswith("221")
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == msg


def test_bdat_still_pipelines(shared_server):
    """RFC 3030: BDAT and its chunk, then more BDAT, in one write."""
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send(("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER, ALICE))
               .encode() + b"BDAT 10\r\nSubject: xBDAT 10 LAST\r\n"
               b"\r\n\r\nbody\r\nQUIT\r\n")
        replies = c.read_all_replies()
    assert [r[:3] for r in replies] == ["250", "250", "250", "250", "221"], \
        replies
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == \
        b"Subject: x\r\n\r\nbody\r\n"


def test_bytes_after_quit_is_sync_error(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        mark = srv.log_mark()
        c.send(b"QUIT\r\nNOOP\r\n")
        closed_with_one_reply(srv, c, "554 5.5.0",
                              r"pipelining sync error: .* after QUIT", mark)


def test_auth_prompt_then_pipelined_response_is_sync_error(shared_server):
    """A 334 prompt ends the group: the user name sent with AUTH LOGIN,
    before the prompt, is out of step. The prompt is already queued, then
    the 554; the password is never asked for."""
    srv = shared_server
    with SmtpConn(srv.submission_port) as c:
        c.ehlo()
        mark = srv.log_mark()
        c.send(b"AUTH LOGIN\r\n" + b64(ALICE.encode()).encode() + b"\r\n")
        assert c.reply_line().startswith("334 ")
        closed_with_one_reply(srv, c, "554 5.5.0",
                              r"pipelining sync error: .* after an AUTH "
                              r"prompt", mark)


def test_auth_initial_response_still_works(shared_server):
    """AUTH PLAIN with an initial response sends no prompt: the next
    command may follow once 235 is back, as smtplib does."""
    srv = shared_server
    with SmtpConn(srv.submission_port) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, srv.users[ALICE]))
        assert r.startswith("235"), r
        assert c.cmd("QUIT").startswith("221")


# -- mail loops ------------------------------------------------------------------

@pytest.mark.parametrize("count,accepted", [(50, True), (51, False)])
def test_mail_loop_received_count(shared_server, count, accepted):
    """More than max_received_headers (50) Received: fields: the message
    has gone round; refused with 554 5.4.6 and logged as a loop."""
    srv = shared_server
    srv.clear_mailbox()
    mark = srv.log_mark()
    msg = (b"".join(b"Received: from h%d by h%d; x\r\n" % (i, i + 1)
                    for i in range(count)) +
           b"Subject: loop\r\n\r\nReceived: in the body, not counted\r\n")
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        r = c.reply_line()
        if accepted:
            assert r.startswith("250 2.0.0"), r
        else:
            assert r.startswith("554 5.4.6"), r
            srv.wait_log(r"refused .*cause=mail loop: 51 Received headers",
                         since=mark)
        # the session stays in step either way
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) == (1 if accepted else 0)


def test_mail_loop_limit_is_a_key(make_server):
    srv = make_server(overrides={"max_received_headers": "2"})
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        c.send(b"BDAT 60 LAST\r\n" + (b"Received: x\r\n" * 3).ljust(58) +
               b"\r\n")
        assert c.reply_line().startswith("554 5.4.6")
        c.cmd("QUIT")


# -- NUL in a command ------------------------------------------------------------

@pytest.mark.parametrize("line", [b"\x00EHLO x", b"EHLO a\x00b",
                                  b"MAIL FROM:<a\x00@b.example>"])
def test_nul_in_command_is_501(shared_server, line):
    with SmtpConn(shared_server.smtp_port) as c:
        if not line.startswith(b"\x00EHLO") and b"EHLO" not in line:
            c.ehlo()
        c.send(line + b"\r\n")
        r = c.reply_line()
        assert r.startswith("501 5.5.2"), r
        assert c.cmd("NOOP").startswith("250")


# -- long lines on submission ----------------------------------------------------

def test_submission_long_to_line_accepted(shared_server):
    """Users' clients send long lines too: a 6000-octet To: list is kept
    whole on submission, and the From: check still runs past it."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    to = b"To: " + b", ".join(b"user%d@example.net" % i for i in range(300))
    msg_ok = (b"Subject: many\r\n" + to + b"\r\nFrom: " + ALICE.encode() +
              b"\r\nDate: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n")
    msg_bad = msg_ok.replace(b"From: " + ALICE.encode(),
                             b"From: ceo@" + DOMAIN.encode())
    with SmtpConn(srv.submission_port) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain_ir(ALICE, srv.users[ALICE]))[:3] \
            == "235"
        for msg, want in ((msg_bad, "553 5.7.1"), (msg_ok, "250 2.0.0")):
            assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
            assert c.cmd("RCPT TO:<%s>" % BOB).startswith("250")
            assert c.cmd("DATA").startswith("354")
            c.send(msg + b".\r\n")
            r = c.reply_line()
            assert r.startswith(want), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPA") == msg_ok
