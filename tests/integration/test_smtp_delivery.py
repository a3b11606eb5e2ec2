"""SMTP in (RFC 5321) on listen.smtp with Python's smtplib: delivery to
local users, then the message fetched over POP3 byte for byte after the
trace headers (Return-Path, Received: RFC 5321 section 4.4, RFC 3848
protocol names). Hard links for several recipients."""

import glob
import os
import ssl

import pytest

from conftest import ALICE, DOMAIN
from pop3util import simple_msg, wire
from smtputil import (SmtpConn, check_trace, pop3_fetch_all, queue_entries,
                      smtp_client)

BOB = "bob@" + DOMAIN
CAROL = "carol@" + DOMAIN
SENDER = "sender@remote.example"
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "messages")


def deliver_smtplib(srv, rcpts, msg, sender=SENDER, mail_options=(),
                    starttls=False):
    """Sends msg (CRLF form) with smtplib; returns the final reply."""
    with smtp_client(srv) as c:
        c.ehlo()
        if starttls:
            assert c.has_extn("starttls"), c.esmtp_features
            code, text = c.starttls(context=srv.ctx())
            assert code == 220, text
            c.ehlo()
        c.mail(sender, list(mail_options))
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, "RCPT %s: %d %s" % (r, code, text)
        code, text = c.data(msg)
        assert code == 250, "DATA: %d %r" % (code, text)
        assert text.startswith(b"2.0.0"), text
        return text


def only_message(srv, user=ALICE):
    msgs = pop3_fetch_all(srv, user)
    assert len(msgs) == 1, "want 1 message for %s, have %d" % (user,
                                                                 len(msgs))
    return msgs[0][1]


def test_ehlo_extensions(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        assert c.greeting[0] == 220, c.greeting
        assert "ESMTP" in c.greeting[1][0], c.greeting
        code, exts, texts = c.ehlo()
        assert code == 250, texts
        for e in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8",
                  "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"):
            assert e in exts, "EHLO lacks %s: %r" % (e, texts)
        assert exts["SIZE"] == "52428800", texts
        # no AUTH on the MTA listener unless smtp_port25_auth = yes
        assert "AUTH" not in exts, texts
        assert c.cmd("QUIT").startswith("221 2.0.0")


def test_smtplib_plain_roundtrip(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("smtp plain", "line one\nline two\n\nlast\n"))
    reply = deliver_smtplib(srv, [ALICE], msg)
    assert b"id=" in reply, reply
    got = only_message(srv)
    rest = check_trace(got, SENDER, "ESMTP", helo="client.example")
    assert rest == msg
    m = srv.wait_log(r"received session=\S+ id=\S+ peer=127\.0\.0\.1 "
                     r"proto=smtp user=- from=<sender@remote\.example> "
                     r"rcpts=1 local=1 queued=- size=\d+")
    assert m


def test_smtplib_dot_lines(shared_server):
    """Lines starting with '.' are dot-stuffed by the client and must be
    unstuffed exactly once by the server (RFC 5321 section 4.5.2)."""
    srv = shared_server
    srv.clear_mailbox()
    body = (".\n..\n...\n.leading dot\n..two dots\n. space\nmid . dot\n"
            ".\n.\r\nend.\n.")
    msg = wire(simple_msg("dots", body))
    deliver_smtplib(srv, [ALICE], msg)
    rest = check_trace(only_message(srv), SENDER, "ESMTP")
    assert rest == msg


def test_smtplib_8bitmime_utf8(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    body = ("Grüße aus Köln — ünïcödé ✓ 日本語\n"
            "bytes: \u00e9\u00e8\u00ea\n").encode("utf-8")
    msg = wire(b"From: sender@remote.example\nTo: alice@example.org\n"
               b"Subject: 8bit\nMIME-Version: 1.0\n"
               b"Content-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: 8bit\n\n" + body)
    deliver_smtplib(srv, [ALICE], msg, mail_options=["BODY=8BITMIME"])
    rest = check_trace(only_message(srv), SENDER, "ESMTP")
    assert rest == msg


def test_smtplib_5mib(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    lines = []
    size = 0
    i = 0
    while size < 5 * 1024 * 1024:
        ln = ("%08d " % i + "abcdefghijklmnopqrstuvwxyz0123456789" * 2 +
              ("." if i % 7 == 0 else "")).encode()
        if i % 13 == 0:
            ln = b"." + ln
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    msg = (b"From: sender@remote.example\r\nSubject: big\r\n\r\n" +
           b"\r\n".join(lines) + b"\r\n")
    assert len(msg) > 5 * 1024 * 1024
    deliver_smtplib(srv, [ALICE], msg)
    rest = check_trace(only_message(srv), SENDER, "ESMTP")
    assert len(rest) == len(msg)
    assert rest == msg


@pytest.mark.parametrize("name", sorted(
    os.path.basename(p) for p in glob.glob(os.path.join(DATA, "*.eml"))))
def test_smtplib_data_messages(shared_server, name):
    """tests/data/messages in their CRLF form (8-bit ones with 8BITMIME)."""
    srv = shared_server
    srv.clear_mailbox()
    with open(os.path.join(DATA, name), "rb") as f:
        msg = wire(f.read())
    opts = ["BODY=8BITMIME"] if any(b > 0x7f for b in msg) else []
    deliver_smtplib(srv, [ALICE], msg, mail_options=opts)
    rest = check_trace(only_message(srv), SENDER, "ESMTP")
    assert rest == msg


def test_smtplib_starttls_esmtps(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("over tls", "secret body\n"))
    deliver_smtplib(srv, [ALICE], msg, starttls=True)
    rest = check_trace(only_message(srv), SENDER, "ESMTPS", tls=True)
    assert rest == msg


def test_helo_gives_smtp_not_esmtp(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("helo", "old client\n"))
    with smtp_client(srv) as c:
        code, _ = c.helo("old.example")
        assert code == 250
        c.sendmail(SENDER, [ALICE], msg)
    rest = check_trace(only_message(srv), SENDER, "SMTP", helo="old.example")
    assert rest == msg


def test_null_sender(shared_server):
    """A bounce (MAIL FROM:<>) is accepted; Return-Path: <>."""
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("bounce", "delivery status\n"))
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>").startswith("250 2.1.0")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250 2.1.5")
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        assert c.cmd("QUIT").startswith("221")
    rest = check_trace(only_message(srv), "", "ESMTP")
    assert rest == msg


def test_multiple_recipients_one_inode(shared_server):
    """One message to 3 users: each gets it, and the three new/ files are
    hard links of one inode (one copy on disk)."""
    srv = shared_server
    users = [ALICE, BOB, CAROL]
    for u in users:
        srv.clear_mailbox(u)
    msg = wire(simple_msg("three", "to three users\n"))
    deliver_smtplib(srv, users, msg)
    stats = []
    for u in users:
        files = os.listdir(os.path.join(srv.maildir(u), "new"))
        assert len(files) == 1, (u, files)
        stats.append(os.stat(os.path.join(srv.maildir(u), "new", files[0])))
    assert len({s.st_ino for s in stats}) == 1, \
        "not hard links: inodes %r" % [s.st_ino for s in stats]
    assert all(s.st_nlink == 3 for s in stats), \
        "st_nlink %r (a tmp/ link left behind?)" % [s.st_nlink for s in stats]
    for u in users:
        rest = check_trace(only_message(srv, u), SENDER, "ESMTP")
        assert rest == msg
    assert queue_entries(srv) == []


def test_duplicate_recipient_delivered_once(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("dup", "once\n"))
    deliver_smtplib(srv, [ALICE, ALICE, "Alice@Example.ORG"], msg)
    assert len(pop3_fetch_all(srv, ALICE)) == 1


def test_recipient_case_insensitive_domain(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = wire(simple_msg("case", "upper\n"))
    deliver_smtplib(srv, ["alice@EXAMPLE.ORG"], msg)
    rest = check_trace(only_message(srv), SENDER, "ESMTP")
    assert rest == msg


def test_pipelining_replies_in_order(shared_server):
    """RFC 2920: MAIL, RCPT, RCPT, DATA in one write; the replies come in
    the order of the commands."""
    srv = shared_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    with SmtpConn(srv.smtp_port) as c:
        code, exts, _ = c.ehlo()
        assert "PIPELINING" in exts
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<nobody@%s>\r\n"
               "RCPT TO:<%s>\r\nDATA\r\n" % (SENDER, ALICE, DOMAIN, BOB))
        replies = [c.reply_line() for _ in range(5)]
        assert replies[0].startswith("250 2.1.0"), replies
        assert replies[1].startswith("250 2.1.5"), replies
        assert replies[2].startswith("550 5.1.1"), replies
        assert replies[3].startswith("250 2.1.5"), replies
        assert replies[4].startswith("354"), replies
        msg = wire(simple_msg("pipelined", "body\n"))
        # the body, the dot and the next commands in one write too
        c.send(msg + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        rest = [c.reply_line() for _ in range(4)]
        assert rest[0].startswith("250 2.0.0"), rest
        assert rest[1].startswith("250"), rest
        assert rest[2].startswith("250"), rest
        assert rest[3].startswith("221"), rest
    for u in (ALICE, BOB):
        assert check_trace(only_message(srv, u), SENDER, "ESMTP") == msg


def test_two_messages_one_session(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    m1 = wire(simple_msg("first", "one\n"))
    m2 = wire(simple_msg("second", "two\n"))
    with smtp_client(srv) as c:
        c.sendmail(SENDER, [ALICE], m1)
        c.sendmail("other@remote.example", [ALICE], m2)
    # the order of delivery is not promised: compare as a set
    bodies = set()
    for _, m in pop3_fetch_all(srv, ALICE):
        rp = m.split(b"\r\n", 1)[0][len(b"Return-Path: <"):-1].decode()
        bodies.add(check_trace(m, rp, "ESMTP"))
    assert bodies == {m1, m2}


def test_rset_forgets_envelope(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("RSET").startswith("250")
        assert c.cmd("DATA").startswith("503"), "DATA after RSET"
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("503")
        assert c.cmd("QUIT").startswith("221")


def test_tls_version_in_received(shared_server):
    """STARTTLS on listen.smtp with a verifying client (test CA)."""
    srv = shared_server
    srv.clear_mailbox()
    ctx = ssl.create_default_context(cafile=srv.ca)
    msg = wire(simple_msg("verified tls", "x\n"))
    with smtp_client(srv) as c:
        c.starttls(context=ctx)
        c.sendmail(SENDER, [ALICE], msg)
    rest = check_trace(only_message(srv), SENDER, "ESMTPS", tls=True)
    assert rest == msg


def test_smtputf8_sender(shared_server):
    """RFC 6531: a UTF-8 reverse-path needs the SMTPUTF8 parameter."""
    srv = shared_server
    srv.clear_mailbox()
    sender = "jörg@bücher.example"
    msg = wire("From: Jörg <jörg@bücher.example>\nSubject: utf8 "
               "address\n\nGrüße\n".encode("utf-8"))
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r.startswith("553 5.6.7") or r.startswith("501"), r
        r = c.cmd("MAIL FROM:<%s> SMTPUTF8 BODY=8BITMIME" % sender)
        assert r.startswith("250"), r
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    rest = check_trace(only_message(srv), sender, "ESMTP")
    assert rest == msg
