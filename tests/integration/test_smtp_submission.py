"""Submission (RFC 6409) with STARTTLS on listen.submission and implicit
TLS (RFC 8314) on listen.submissions: AUTH PLAIN/LOGIN (RFC 4954) with
smtplib, INV-A1 (same reply for unknown user and wrong password, no
plaintext before TLS when refused), sender checks (553 5.7.1), added
Message-ID/Date, and remote mail going to the queue (postctl queue)."""

import email.utils
import os
import re
import smtplib
import time

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN
from pop3util import plain_ir, wire
from smtputil import (SmtpConn, check_trace, pop3_fetch_all, queue_entries)

BOB = "bob@" + DOMAIN
REMOTE = "someone@remote.example"


def submit_client(srv, user=ALICE, pw=None, mech=None):
    """smtplib over STARTTLS on listen.submission, logged in."""
    c = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="laptop.example", timeout=30)
    c.starttls(context=srv.ctx())
    c.ehlo()
    pw = srv.users.get(user, "x") if pw is None else pw
    if mech == "LOGIN":
        c.user, c.password = user, pw
        code, text = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235, text
    else:
        code, text = c.login(user, pw)
        assert code == 235, text
    return c


def msg_from(user, subject, body="hello\n", to=BOB):
    return wire(("From: A User <%s>\nTo: %s\nSubject: %s\n"
                 "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
                 "Message-ID: <%s.%d@laptop.example>\n\n%s" % (
                     user, to, subject, re.sub(r"\W", "", subject),
                     time.monotonic_ns(), body)).encode())


def tls_session(srv, port=None):
    c = SmtpConn(port or srv.submission_port)
    c.ehlo()
    c.send(b"STARTTLS\r\n")
    assert c.read_reply_unbuffered().startswith(b"220")
    c.starttls(srv.ctx())
    return c


# -- EHLO and AUTH -------------------------------------------------------------

def test_submission_ehlo(shared_server):
    srv = shared_server
    with SmtpConn(srv.submission_port) as c:
        assert c.greeting[0] == 220
        code, exts, texts = c.ehlo()
        assert "STARTTLS" in exts, texts
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.starttls(srv.ctx())
        code, exts, texts = c.ehlo()
        assert "STARTTLS" not in exts, texts
        assert "AUTH" in exts, texts
        mechs = exts["AUTH"].upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs, texts
        c.cmd("QUIT")


def test_submission_mail_without_auth_530(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with tls_session(srv) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530 5.7.0"), r
        r = c.cmd("RCPT TO:<%s>" % BOB)
        assert r.startswith("503") or r.startswith("530"), r
        c.cmd("QUIT")
    with SmtpConn(srv.submission_port) as c:  # before TLS too
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530 5.7.0"), r
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=submission .*cause=",
                 since=mark)


def test_submission_auth_plain(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    mark = srv.log_mark()
    msg = msg_from(ALICE, "plain auth")
    with submit_client(srv) as c:
        assert c.sendmail(ALICE, [BOB], msg) == {}
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", helo="laptop.example",
                       tls=True) == msg
    srv.wait_log(r"login user=alice@example\.org peer=127\.0\.0\.1 .*"
                 r"proto=submission mech=PLAIN tls=TLSv1\.[23]", since=mark)
    srv.wait_log(r"received .*proto=submission user=alice@example\.org "
                 r"from=<alice@example\.org> rcpts=1 local=1 queued=-",
                 since=mark)


def test_submission_auth_login(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    mark = srv.log_mark()
    msg = msg_from(ALICE, "login auth")
    with submit_client(srv, mech="LOGIN") as c:
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", tls=True) == msg
    srv.wait_log(r"login user=alice@example\.org .*proto=submission "
                 r"mech=LOGIN", since=mark)


def test_submission_short_login_name(shared_server):
    """"alice" gets auth_default_domain; alice@example.org is her own
    address then."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = msg_from(ALICE, "short name")
    with submit_client(srv, user="alice", pw=ALICE_PW) as c:
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", tls=True) == msg


def test_inv_a1_wrong_password_and_unknown_user_same_reply(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    replies = []
    for user, pw in ((ALICE, "wrong-password"),
                     ("nosuchuser@" + DOMAIN, "wrong-password")):
        with tls_session(srv) as c:
            c.ehlo()
            r = c.cmd("AUTH PLAIN " + plain_ir(user, pw))
            replies.append(r)
            # still usable, not authenticated
            assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("530")
            c.cmd("QUIT")
    assert replies[0].startswith("535 5.7.8"), replies
    assert replies[0] == replies[1], replies
    with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
        submit_client(srv, pw="wrong").close()
    assert ei.value.smtp_code == 535
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 .*"
                 r"cause=", since=mark)


def test_auth_failures_then_421(shared_server):
    """Three failed AUTHs: 421 and close (the tarpit is 0 in tests)."""
    srv = shared_server
    with tls_session(srv) as c:
        c.ehlo()
        for i in range(2):
            r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, "bad%d" % i))
            assert r.startswith("535 5.7.8"), r
        c.send("AUTH PLAIN %s\r\nNOOP\r\n" % plain_ir(ALICE, "bad2"))
        rest = c.read_all_replies()
    assert rest[-1].startswith("421"), rest
    assert not any(r.startswith("250") for r in rest), \
        "NOOP after the third failure was answered: %r" % rest


def test_auth_plain_with_other_authzid_refused(shared_server):
    srv = shared_server
    with tls_session(srv) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW, authzid=BOB))
        assert r.startswith("535") or r.startswith("501"), r
        c.cmd("QUIT")


def test_auth_plain_with_own_authzid_ok(shared_server):
    srv = shared_server
    with tls_session(srv) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW, authzid=ALICE))
        assert r.startswith("235 2.7.0"), r
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("503"), "second AUTH: %r" % r
        c.cmd("QUIT")


def test_auth_cancel(shared_server):
    srv = shared_server
    with tls_session(srv) as c:
        c.ehlo()
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("334"), r
        r = c.cmd("*")
        assert r.startswith("501"), r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")


def test_auth_on_port_25_not_available(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("502 5.5.1"), r
        c.cmd("QUIT")


def test_plaintext_auth_no(make_server):
    """plaintext_auth = no: AUTH neither offered nor accepted before TLS
    (538 5.7.11); after STARTTLS it is."""
    srv = make_server(overrides={"plaintext_auth": "no"})
    mark = srv.log_mark()
    with SmtpConn(srv.submission_port) as c:
        code, exts, texts = c.ehlo()
        assert "AUTH" not in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("538 5.7.11"), r
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("538 5.7.11"), r
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.starttls(srv.ctx())
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235 2.7.0"), r
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=submission .*cause=",
                 since=mark)


def test_plaintext_auth_loopback_allows_before_tls(shared_server):
    srv = shared_server
    with SmtpConn(srv.submission_port) as c:
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235"), r
        c.cmd("QUIT")


# -- sender checks --------------------------------------------------------------

def test_envelope_sender_of_other_user_553(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with tls_session(srv) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)).startswith(
            "235")
        for spoof in (BOB, "alice@other.example", "ceo@" + DOMAIN):
            r = c.cmd("MAIL FROM:<%s>" % spoof)
            assert r.startswith("553 5.7.1"), (spoof, r)
        # her own address, any case, is fine
        r = c.cmd("MAIL FROM:<Alice@Example.ORG>")
        assert r.startswith("250"), r
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=submission "
                 r"user=alice@example\.org cause=sender", since=mark)


def test_from_header_of_other_user_553(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    mark = srv.log_mark()
    with tls_session(srv) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)).startswith(
            "235")
        for from_hdr in ("Bob <%s>" % BOB, BOB, "\"alice@example.org\" <%s>"
                         % BOB):
            assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
            assert c.cmd("RCPT TO:<%s>" % BOB).startswith("250")
            assert c.cmd("DATA").startswith("354")
            c.send(("From: %s\r\nTo: %s\r\nSubject: spoof\r\n\r\nbody\r\n.\r\n"
                    % (from_hdr, BOB)).encode())
            r = c.reply_line()
            assert r.startswith("553 5.7.1"), (from_hdr, r)
        # the session goes on: her own From: is accepted
        assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % BOB).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(("From: Alice <%s>\r\nSubject: own\r\n\r\nbody\r\n.\r\n"
                % ALICE).encode())
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    msgs = pop3_fetch_all(srv, BOB)
    assert len(msgs) == 1, "a spoofed message was delivered"
    assert b"Subject: own" in msgs[0][1]
    srv.wait_log(r"refused .*proto=submission user=alice@example\.org "
                 r"cause=.*553", since=mark)


def test_sender_login_match_no_accepts_any_from(make_server):
    """sender_login_match = no: any envelope sender and From: (even two
    From: fields) are accepted from an authenticated user, and the worker
    survives it (it once crashed here); Message-ID and Date are still
    added."""
    srv = make_server(overrides={"sender_login_match": "no"})
    srv.clear_mailbox(BOB)
    msg = wire(("From: Bob <%s>\nFrom: carol@elsewhere.example\nTo: %s\n"
                "Subject: any from\n\nbody\n" % (BOB, BOB)).encode())
    with submit_client(srv) as c:
        c.sendmail("newsletter@elsewhere.example", [BOB], msg)
        c.sendmail(BOB, [BOB], msg_from(BOB, "second"))
    msgs = pop3_fetch_all(srv, BOB)
    assert len(msgs) == 2, msgs
    assert b"Subject: any from" in msgs[0][1]
    assert b"\r\nMessage-ID: <" in msgs[0][1]
    assert srv.crash_report() is None, srv.crash_report()


def test_missing_message_id_and_date_added(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = wire(("From: %s\nTo: %s\nSubject: bare\n\nno id, no date\n" % (
        ALICE, BOB)).encode())
    with submit_client(srv) as c:
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    rest = check_trace(got, ALICE, "ESMTPSA", tls=True)
    # The missing fields are added where the header section ends.
    head, body = rest.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    added = {}
    while lines and (lines[-1].startswith(b"Message-ID: ") or
                     lines[-1].startswith(b"Date: ")):
        k, v = lines.pop().split(b": ", 1)
        assert k not in added, "two %s headers" % k
        added[k] = v.decode()
    assert set(added) == {b"Message-ID", b"Date"}, rest[:300]
    assert b"\r\n".join(lines) + b"\r\n\r\n" + body == msg
    assert re.match(r"^<[^<>@\s]+@[^<>@\s]+>$", added[b"Message-ID"]), added
    d = email.utils.parsedate_to_datetime(added[b"Date"])
    assert abs(d.timestamp() - time.time()) < 300, added


def test_message_id_not_duplicated(shared_server):
    """Present Message-ID/Date (any case) are left alone."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = wire(("from: %s\nmessage-id: <x1@laptop>\nDATE: Mon, 1 Jan 2024 "
                "10:00:00 +0000\nSubject: lower\n\nbody\n" % ALICE).encode())
    with submit_client(srv) as c:
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", tls=True) == msg


# -- remote mail: the queue -----------------------------------------------------

def queued_id(srv, mark):
    m = srv.wait_log(r"received .*proto=submission.* queued=([0-9A-Za-z]+) ",
                     since=mark)
    return m.group(1)


def test_remote_rcpt_queued_and_postctl_queue(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    msg = msg_from(ALICE, "to the world", to=REMOTE)
    with submit_client(srv) as c:
        assert c.sendmail(ALICE, [REMOTE], msg) == {}
    qid = queued_id(srv, mark)
    # The runner tries at once; without DNS (conftest) it defers.
    srv.wait_log(r"postd-queue.* id=%s rcpt=someone@remote\.example .*"
                 r"status=deferred until " % qid, since=mark)
    assert qid in queue_entries(srv)
    lst = srv.postctl("queue", "list")
    out = lst.stdout.decode()
    assert qid in out, out
    show = srv.postctl("queue", "show", qid)
    sout = show.stdout.decode()
    assert REMOTE in sout, sout
    assert ALICE in sout, sout
    # the stored message: without Return-Path (skip), with Received
    with open(os.path.join(srv.data_dir, "queue", "msg", qid), "rb") as f:
        stored = f.read()
    assert stored.endswith(msg.replace(b"\r\n", b"\n")), stored[-200:]
    srv.postctl("queue", "delete", qid)
    assert qid not in queue_entries(srv)
    assert not os.path.exists(os.path.join(srv.data_dir, "queue", "msg",
                                           qid))
    out = srv.postctl("queue", "list").stdout.decode()
    assert qid not in out, out
    bad = srv.postctl("queue", "delete", qid, check=False)
    assert bad.returncode != 0
    bad = srv.postctl("queue", "show", "../../users", check=False)
    assert bad.returncode != 0


def test_mixed_local_and_remote(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    mark = srv.log_mark()
    msg = msg_from(ALICE, "mixed", to="%s, %s" % (BOB, REMOTE))
    with submit_client(srv) as c:
        c.sendmail(ALICE, [BOB, REMOTE, "x2@remote2.example"], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", tls=True) == msg
    qid = queued_id(srv, mark)
    sout = srv.postctl("queue", "show", qid).stdout.decode()
    assert REMOTE in sout and "x2@remote2.example" in sout, sout
    # the envelope (queue.h format) holds only the remote recipients
    with open(os.path.join(srv.data_dir, "queue", "env", qid)) as f:
        env = f.read().split("\n")
    assert env[0] == "postd-queue 2", env
    rcpts = sorted(ln.split()[1] for ln in env if ln.startswith("rcpt "))
    assert rcpts == sorted(["<%s>" % REMOTE, "<x2@remote2.example>"]), env
    assert "sender <%s>" % ALICE in env, env
    assert env[-2:] == ["end", ""], env
    srv.postctl("queue", "delete", qid)


# -- submissions -----------------------------------------------------------------

def test_submissions_smtp_ssl(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    mark = srv.log_mark()
    msg = msg_from(ALICE, "implicit tls")
    with smtplib.SMTP_SSL("127.0.0.1", srv.submissions_port,
                          local_hostname="laptop.example",
                          context=srv.ctx(), timeout=30) as c:
        code, _ = c.ehlo()
        assert code == 250
        assert not c.has_extn("starttls")
        assert "plain" in c.esmtp_features.get("auth", "").lower()
        c.login(ALICE, ALICE_PW)
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPSA", tls=True) == msg
    srv.wait_log(r"login user=alice@example\.org .*proto=submissions "
                 r"mech=PLAIN tls=TLSv1\.[23]", since=mark)


def test_submissions_requires_auth(shared_server):
    srv = shared_server
    with SmtpConn(srv.submissions_port, tls_ctx=srv.ctx()) as c:
        assert c.greeting[0] == 220
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530"), r
        c.cmd("QUIT")


def test_auth_without_tls_esmtpa(shared_server):
    """plaintext_auth = loopback: AUTH before TLS from 127.0.0.1 works and
    the trace says ESMTPA (RFC 3848), with no TLS version."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = msg_from(ALICE, "esmtpa")
    with smtplib.SMTP("127.0.0.1", srv.submission_port,
                      local_hostname="laptop.example", timeout=30) as c:
        c.ehlo()
        c.login(ALICE, ALICE_PW)
        c.sendmail(ALICE, [BOB], msg)
    (_, got), = pop3_fetch_all(srv, BOB)
    assert check_trace(got, ALICE, "ESMTPA", helo="laptop.example") == msg


def test_smtp_auth_yes_on_port_25(make_server):
    """smtp_port25_auth = yes offers AUTH on listen.smtp (over TLS, or per
    plaintext_auth) and lets an authenticated session relay."""
    srv = make_server(overrides={"smtp_port25_auth": "yes"})
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.starttls(srv.ctx())
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235"), r
        assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        r = c.cmd("RCPT TO:<%s>" % REMOTE)
        assert r.startswith("250"), r
        assert c.cmd("DATA").startswith("354")
        c.send(msg_from(ALICE, "port 25 auth", to=REMOTE) + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    qid = srv.wait_log(r"received .*proto=smtp user=alice@example\.org .*"
                       r"queued=([0-9A-Za-z]+) ", since=mark).group(1)
    assert qid in queue_entries(srv)
    with open(os.path.join(srv.data_dir, "queue", "msg", qid), "rb") as f:
        stored = f.read()
    assert b" with ESMTPSA " in stored.replace(b"\n\t", b" "), stored[:300]
