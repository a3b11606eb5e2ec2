"""Limits with clear replies: SIZE (RFC 1870), line length (long lines
kept up to smtp_max_line_length), bare LF (550 5.6.0, or normalised when
configured), bare CR (stored as a space), recipients per
message, errors per session, commands before MAIL, idle timeout."""

import time

import pytest

from conftest import ALICE, DOMAIN, USERS
from pop3util import simple_msg, wire
from smtputil import (SmtpConn, check_trace, pop3_fetch_all, queue_entries)

SENDER = "sender@remote.example"
LIMIT = 200000


@pytest.fixture(scope="module")
def small_server(tls_files):
    """max_message_size = 200000, max_recipients = 3, four users."""
    from conftest import _require_binaries, running_server
    _require_binaries()
    users = dict(USERS)
    users["dave@" + DOMAIN] = "dave-Secret-4"
    with running_server(tls_files, overrides={
            "max_message_size": str(LIMIT), "max_recipients": "3"},
            users=users) as srv:
        yield srv


def start_txn(c, rcpts=(ALICE,), mail_params=""):
    code, exts, texts = c.ehlo()
    assert code == 250, texts
    r = c.cmd("MAIL FROM:<%s>%s" % (SENDER, mail_params))
    assert r.startswith("250"), r
    for rc in rcpts:
        r = c.cmd("RCPT TO:<%s>" % rc)
        assert r.startswith("250"), r
    r = c.cmd("DATA")
    assert r.startswith("354"), r


def send_ok(c, subject="after", rcpts=(ALICE,)):
    """A normal transaction on an open session; returns the message."""
    assert c.cmd("RSET").startswith("250")
    msg = wire(simple_msg(subject, "still works\n"))
    r = c.cmd("MAIL FROM:<%s>" % SENDER)
    assert r.startswith("250"), r
    for rc in rcpts:
        assert c.cmd("RCPT TO:<%s>" % rc).startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(msg + b".\r\n")
    r = c.reply_line()
    assert r.startswith("250 2.0.0"), r
    return msg


def body_of_size(n):
    line = b"x" * 76 + b"\r\n"
    out = b"Subject: big\r\n\r\n"
    while len(out) < n:
        out += line
    return out


# -- SIZE --------------------------------------------------------------------

def test_ehlo_size_is_limit(small_server):
    with SmtpConn(small_server.smtp_port) as c:
        code, exts, _ = c.ehlo()
        assert exts.get("SIZE") == str(LIMIT), exts
        c.cmd("QUIT")


def test_mail_size_param_over_limit_552(small_server):
    with SmtpConn(small_server.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, LIMIT + 1))
        assert r.startswith("552 5.3.4"), r
        r = c.cmd("MAIL FROM:<%s> SIZE=99999999999999999999" % SENDER)
        assert r.startswith("552 5.3.4") or r.startswith("501"), r
        # within the limit: fine
        r = c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, LIMIT - 1000))
        assert r.startswith("250 2.1.0"), r
        c.cmd("QUIT")


def test_message_over_limit_552_after_dot_then_usable(small_server):
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(body_of_size(LIMIT + 50000) + b".\r\n")
        r = c.reply_line()
        assert r.startswith("552 5.3.4"), r
        # the connection is still in step: a new transaction works
        msg = send_ok(c, "after too big")
        assert c.cmd("QUIT").startswith("221")
    msgs = pop3_fetch_all(srv, ALICE)
    assert len(msgs) == 1, "the too-big message was stored"
    assert check_trace(msgs[0][1], SENDER, "ESMTP") == msg


def test_message_far_over_limit_still_read(small_server):
    """10x the limit: still refused after the dot, not by dropping the
    connection mid-stream."""
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(body_of_size(LIMIT * 10) + b".\r\n")
        r = c.reply_line()
        assert r.startswith("552 5.3.4"), r
        send_ok(c)
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) == 1


def assert_stored_unchanged(srv, msg, stuffed=False):
    """Sends msg (dot-stuffed first when stuffed) to alice, expects 250,
    and checks that POP3 hands back exactly msg under our trace header."""
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        wire = msg.replace(b"\r\n.", b"\r\n..") if stuffed else msg
        c.send(wire + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == msg

def test_message_under_limit_accepted(small_server):
    srv = small_server
    srv.clear_mailbox()
    msg = body_of_size(LIMIT - 10000)
    assert_stored_unchanged(srv, msg)


# -- line length and line ends -------------------------------------------------

def test_line_998_accepted(small_server):
    srv = small_server
    srv.clear_mailbox()
    msg = (b"Subject: long\r\n\r\n" + b"a" * 998 + b"\r\n" +
           b"." + b"b" * 997 + b"\r\n")
    assert_stored_unchanged(srv, msg, stuffed=True)


@pytest.mark.parametrize("length", [999, 1001, 1500, 65534])
def test_long_line_accepted_unchanged(small_server, length):
    """RFC 5322 forbids lines over 998 octets, but newsletters and
    machine-made HTML carry them every day: up to smtp_max_line_length
    (64 KiB with CRLF by default) they are stored unchanged."""
    srv = small_server
    srv.clear_mailbox()
    msg = b"Subject: long\r\n\r\nshort\r\n" + b"z" * length + b"\r\nend\r\n"
    assert_stored_unchanged(srv, msg)


@pytest.mark.parametrize("length", [65535, 70000])
def test_line_over_bound_refused(small_server, length):
    """Beyond the bound: 554 5.6.0 after the final dot (the client stays
    in step), one log line naming the key."""
    srv = small_server
    srv.clear_mailbox()
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: long\r\n\r\nshort\r\n" + b"z" * length +
               b"\r\nend\r\n.\r\n")
        r = c.reply_line()
        assert r.startswith("554 5.6.0"), r
        send_ok(c)
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) == 1
    srv.wait_log(r"refused .*cause=message refused: 554 5\.6\.0 .*a line "
                 r"over 65536 octets, smtp_max_line_length", since=mark)


def test_too_big_with_long_line_logs_size_not_line(small_server):
    """A message refused for its size that also has a line over the bound
    is logged for its size: the log names the cause that was answered."""
    srv = small_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: big\r\n\r\n" + b"y" * 70000 + b"\r\n" +
               body_of_size(LIMIT + 1000) + b".\r\n")
        r = c.reply_line()
        assert r.startswith("552 5.3.4"), r
        c.cmd("QUIT")
    m = srv.wait_log(r"refused .*cause=message refused: 552 5\.3\.4.*",
                     since=mark)
    assert "smtp_max_line_length" not in m.group(0), m.group(0)


def test_line_bound_is_a_key(make_server):
    """smtp_max_line_length sets the bound (octets with CRLF)."""
    srv = make_server(overrides={"smtp_max_line_length": "2000"})
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        for length, want in ((1998, "250 2.0.0"), (1999, "554 5.6.0")):
            start_txn(c)
            c.send(b"Subject: k\r\n\r\n" + b"k" * length + b"\r\n.\r\n")
            r = c.reply_line()
            assert r.startswith(want), (length, r)
            assert c.cmd("RSET").startswith("250")
        c.cmd("QUIT")
    srv.wait_log(r"cause=message refused: 554 5\.6\.0 .*a line over 2000 "
                 r"octets", since=mark)


def test_long_header_line_kept_whole(small_server):
    """A long To: list stays one field: never split into a new one."""
    srv = small_server
    srv.clear_mailbox()
    to = b"To: " + b", ".join(b"user%d@example.net" % i for i in range(300))
    assert len(to) > 5000
    msg = b"Subject: many\r\n" + to + b"\r\n\r\nbody\r\n"
    assert_stored_unchanged(srv, msg)


@pytest.mark.parametrize("body", [
    b"line one\nline two\r\n",
    b"trailing bare lf\n",
    b"lf at the very end\r\nx\n",
    b"\n",
], ids=["lf", "lf-end", "lf-last", "lf-only"])
def test_bare_lf_refused_550(small_server, body):
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: bare\r\n\r\n" + body + b"\r\n.\r\n")
        r = c.reply_line()
        assert r.startswith("550 5.6.0"), r
        send_ok(c)
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) == 1


@pytest.mark.parametrize("body,stored", [
    (b"line one\rline two\r\n", b"line one line two\r\n"),
    (b"cr before crlf\r\r\n", b"cr before crlf \r\n"),
    (b"a\r.b\r\n", b"a .b\r\n"),
], ids=["cr", "cr-crlf", "cr-dot-text"])
def test_bare_cr_inside_line_stored_as_space(small_server, body, stored):
    """A bare CR inside a line (not a line end) is real mail, not an
    attack: stored as a space, every time, so nothing that reads or
    relays the message can take it for a line end."""
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: bare\r\n\r\n" + body + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == \
        b"Subject: bare\r\n\r\n" + stored


def test_bare_cr_never_starts_a_header_field(small_server):
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: hi\rBcc: victim@example.net\r\n\r\nb\r\n.\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == \
        b"Subject: hi Bcc: victim@example.net\r\n\r\nb\r\n"


def test_bare_lf_in_header_refused(small_server):
    srv = small_server
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(b"Subject: x\nX-Other: y\r\n\r\nbody\r\n.\r\n")
        r = c.reply_line()
        assert r.startswith("550 5.6.0"), r
        c.cmd("QUIT")


def test_bare_lf_normalized_when_configured(make_server):
    srv = make_server(overrides={"smtp_normalize_bare_lf": "yes"})
    sent = (b"Subject: normalise\r\n\r\nline one\nline two\r\n"
            b"cr alone\rafter cr\r\nlf at end\n\r\nlast\r\n")
    with SmtpConn(srv.smtp_port) as c:
        start_txn(c)
        c.send(sent + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    rest = check_trace(got, SENDER, "ESMTP")
    # bare LF becomes CRLF; a bare CR is a space, as without the key
    assert rest == (b"Subject: normalise\r\n\r\nline one\r\nline two\r\n"
                    b"cr alone after cr\r\nlf at end\r\n\r\n"
                    b"last\r\n")


# -- recipients -----------------------------------------------------------------

def test_max_recipients_452(small_server):
    srv = small_server
    users = [ALICE, "bob@" + DOMAIN, "carol@" + DOMAIN, "dave@" + DOMAIN]
    for u in users:
        srv.clear_mailbox(u)
    msg = wire(simple_msg("four rcpts", "only three\n"))
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        for u in users[:3]:
            r = c.cmd("RCPT TO:<%s>" % u)
            assert r.startswith("250 2.1.5"), r
        r = c.cmd("RCPT TO:<%s>" % users[3])
        assert r.startswith("452 4.5.3"), r
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    for u in users[:3]:
        (_, got), = pop3_fetch_all(srv, u)
        assert check_trace(got, SENDER, "ESMTP") == msg
    assert pop3_fetch_all(srv, users[3]) == []
    assert queue_entries(srv) == []


# -- errors and idle -------------------------------------------------------------

def test_too_many_errors_421_close(small_server):
    srv = small_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        got = []
        for i in range(25):
            try:
                c.send("XYZZY %d\r\n" % i)
                got.append(c.reply_line())
            except Exception:
                break
            if got[-1].startswith("421"):
                break
        assert got[-1].startswith("421 4.7.0"), got
        assert len(got) in (20, 21), \
            "421 after %d bad commands, want 20: %r" % (len(got), got)
        assert all(g.startswith("500") for g in got[:-1]), got
        c.wait_closed()
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=smtp .*cause=too many",
                 since=mark)


def test_errors_in_one_write_one_reply_each(small_server):
    """25 bad commands in one write: the replies stop at the 421, then
    the connection closes (no command after it is executed)."""
    srv = small_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        payload = "BOGUS\r\n" * 22 + ("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
                                       "DATA\r\n" % (SENDER, ALICE))
        c.send(payload + "Subject: x\r\n\r\nsneaked\r\n.\r\n")
        replies = c.read_all_replies()
    assert replies, "no reply"
    assert replies[-1].startswith("421"), replies[-3:]
    assert sum(1 for r in replies if r.startswith("421")) == 1, replies
    assert not any(r.startswith("354") for r in replies), replies
    assert pop3_fetch_all(srv, ALICE) == []


def test_commands_before_mail_limited(small_server):
    """A client that never starts a transaction is eventually closed."""
    srv = small_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send("NOOP\r\n" * 300)
        replies = c.read_all_replies(timeout=15)
    assert replies[-1].startswith("421"), replies[-3:]
    assert 20 <= len(replies) <= 201, len(replies)


def test_idle_timeout(make_server):
    """timeout_smtp: a silent client gets 421 4.4.2 and one log line."""
    srv = make_server(overrides={"timeout_smtp": "2s"})
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        t0 = time.monotonic()
        r = c.read_reply_unbuffered()
        waited = time.monotonic() - t0
    assert r.startswith(b"421 4.4.2 "), r
    assert 1.5 <= waited <= 10, waited
    srv.wait_log(r"refused .*proto=smtp .*cause=idle timeout \(2 s without "
                 r"input\)", since=mark)
