"""CHUNKING / BDAT (RFC 3030) with a raw socket (smtplib has no BDAT):
chunks stored whole and unstuffed, BDAT out of sequence consumed then
refused, BDAT 0 LAST, size and line-end checks at LAST."""

import pytest

from conftest import ALICE, DOMAIN
from pop3util import wire
from smtputil import SmtpConn, check_trace, pop3_fetch_all

SENDER = "sender@remote.example"
BOB = "bob@" + DOMAIN


def envelope(c, rcpts=(ALICE,)):
    code, exts, _ = c.ehlo()
    assert "CHUNKING" in exts, exts
    assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
    for r in rcpts:
        assert c.cmd("RCPT TO:<%s>" % r).startswith("250")


def stored_only(srv, user=ALICE):
    msgs = pop3_fetch_all(srv, user)
    assert len(msgs) == 1, "want 1 message, have %d" % len(msgs)
    return check_trace(msgs[0][1], SENDER, "ESMTP")


def test_bdat_two_chunks_one_write(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT 10\r\nSubject: xBDAT 5 LAST\r\n\r\n\r\nz")
        r1 = c.reply_line()
        r2 = c.reply_line()
        assert r1.startswith("250") and "10 octets" in r1, r1
        assert r2.startswith("250 2.0.0"), r2
        assert c.cmd("QUIT").startswith("221")
    assert stored_only(srv) == wire(b"Subject: x\r\n\r\nz")


def test_bdat_crlf_split_across_chunks_and_dots(shared_server):
    """A CRLF split between chunks, and lines starting with '.': BDAT
    content is not dot-unstuffed and ends only by its count."""
    srv = shared_server
    srv.clear_mailbox()
    msg = (b"From: a@remote.example\r\nSubject: chunks\r\n\r\n.\r\n..two\r\n"
           b".\r\nafter a lone dot\r\n")
    cut1 = msg.index(b"\r\n\r\n") + 1       # between CR and LF
    cut2 = msg.index(b"..two") + 1
    chunks = [msg[:cut1], msg[cut1:cut2], msg[cut2:]]
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        total = 0
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"")
                   + ch)
            total += len(ch)
            r = c.reply_line()
            if last:
                assert r.startswith("250 2.0.0"), r
            else:
                # RFC 3030: the octets of this chunk (or, as in its
                # examples, all chunks so far) - as sent, not as stored
                assert r.startswith("250 2.0.0 %d octets" % len(ch)) or \
                    r.startswith("250 2.0.0 %d octets" % total), \
                    "chunk %d of %d octets (total %d): %r" % (
                        i, len(ch), total, r)
        c.cmd("QUIT")
    assert stored_only(srv) == msg


def test_bdat_zero_last_ends_message(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = b"Subject: zero last\r\n\r\nbody\r\n"
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT %d\r\n" % len(msg) + msg)
        assert c.reply_line().startswith("250")
        c.send(b"BDAT 0 LAST\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    assert stored_only(srv) == msg


def test_bdat_zero_last_alone(shared_server):
    """An empty message: accepted or refused, but the session goes on."""
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        r = c.cmd("BDAT 0 LAST")
        assert r[0] in "25", r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) <= 1


def test_bdat_without_mail_consumed_then_503(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        # the chunk holds command text: it must be swallowed, not run
        chunk = b"RSET\r\nMAIL FROM:<x@y>\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        r = c.reply_line()
        assert r.startswith("503"), r
        c.send(b"NOOP\r\n")
        r = c.reply_line()
        assert r.startswith("250"), \
            "chunk bytes were read as commands: %r" % r
        assert c.nothing_pending()
        # and a real transaction works
        envelope(c)
        c.send(b"BDAT 13 LAST\r\nSubject: ok\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    assert stored_only(srv) == b"Subject: ok\r\n"


def test_bdat_without_rcpt_503(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        c.send(b"BDAT 5 LAST\r\nhello")
        r = c.reply_line()
        assert r.startswith("503") or r.startswith("554"), r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")


def test_data_after_bdat_refused(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT 4\r\nabcd")
        assert c.reply_line().startswith("250")
        r = c.cmd("DATA")
        assert r.startswith("503"), r
        c.cmd("QUIT")
    assert pop3_fetch_all(srv, ALICE) == []


def test_bdat_bare_lf_refused(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    chunk = b"Subject: lf\r\n\r\nbare\nlf\r\n"
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply_line()
        assert r.startswith("550 5.6.0"), r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")
    assert pop3_fetch_all(srv, ALICE) == []


@pytest.mark.parametrize("bad", ["BDAT", "BDAT -1", "BDAT x LAST",
                                 "BDAT 5 FIRST",
                                 "BDAT 99999999999999999999999 LAST"])
def test_bdat_bad_size_argument_closes(shared_server, bad):
    """A BDAT whose size cannot be trusted: where its chunk ends is
    unknown, so the server replies once and closes; the chunk (which
    holds a command here) is never read as commands."""
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(bad.encode() + b"\r\nRSET\r\n")
        r = c.reply_line()
        assert r.startswith("501 5.5.4"), (bad, r)
        assert c.wait_closed() == b"", "a reply after the BDAT refusal"
    srv.wait_log(r"refused .*cause=BDAT with a malformed size", since=mark)


def test_bdat_over_size_552_then_usable(make_server):
    """Chunks that each fit but together exceed max_message_size are read
    to the end and refused at LAST; the session stays usable."""
    srv = make_server(overrides={"max_message_size": "100000"})
    body = b"Subject: big\r\n\r\n" + b"y" * 78 + b"\r\n"
    body = body * 800
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT %d\r\n" % len(body) + body)
        assert c.reply_line().startswith("250"), "first chunk"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        r = c.reply_line()
        assert r.startswith("552 5.3.4"), r
        c.send(b"RSET\r\n")
        assert c.reply_line().startswith("250")
        envelope(c)
        c.send(b"BDAT 13 LAST\r\nSubject: ok\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    assert stored_only(srv) == b"Subject: ok\r\n"


def test_bdat_chunk_over_max_size_closes(make_server):
    """One chunk bigger than any message we take: reading it only to drop
    it would let the client hold the connection as long as it likes, so
    552 and close at once; the chunk is never read as commands."""
    srv = make_server(overrides={"max_message_size": "100000"})
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        envelope(c)
        c.send(b"BDAT 100001 LAST\r\nRSET\r\nQUIT\r\n")
        r = c.reply_line()
        assert r.startswith("552 5.3.4"), r
        assert c.wait_closed() == b""
    srv.wait_log(r"refused .*cause=BDAT chunk of 100001 octets over "
                 r"max_message_size 100000", since=mark)


def test_bdat_multiple_recipients(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    msg = b"Subject: two\r\n\r\nboth\r\n"
    with SmtpConn(srv.smtp_port) as c:
        envelope(c, (ALICE, BOB))
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    assert stored_only(srv, ALICE) == msg
    assert stored_only(srv, BOB) == msg
