"""Harder cases: From: checks a spoofer would try on submission, queue
envelope escaping (INV-S2), Message-ID detection, shutdown and reload
with open SMTP sessions, per-peer caps, command line limits, and a full
disk (INV-D1, INV-D5: 452 4.3.1, nothing half-written left)."""

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN, IS_ROOT, running_server
from pop3util import plain_ir, simple_msg, wire
from smtputil import (SmtpConn, all_maildir_files, check_trace,
                      pop3_fetch_all)

BOB = "bob@" + DOMAIN
SENDER = "sender@remote.example"


def authed(srv):
    c = SmtpConn(srv.submission_port)
    c.ehlo()
    c.send(b"STARTTLS\r\n")
    assert c.read_reply_unbuffered().startswith(b"220")
    c.starttls(srv.ctx())
    c.ehlo()
    r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
    assert r.startswith("235"), r
    return c


def submit_raw(c, header, body=b"body\r\n", rcpt=BOB):
    assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
    assert c.cmd("RCPT TO:<%s>" % rcpt).startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(header + b"\r\n" + body + b".\r\n")
    return c.reply_line()


# -- From: spoofing on submission ------------------------------------------------

FROM_SPOOFS = {
    "second-from": b"From: <alice@example.org>\r\nFrom: <bob@example.org>\r\n",
    "list-bob-first": b"From: Bob <bob@example.org>, <alice@example.org>\r\n",
    "list-folded": b"From: <alice@example.org>,\r\n <bob@example.org>\r\n",
    "folded-addr": b"From: Alice\r\n <bob@example.org>\r\n",
    "space-before-colon": b"From : bob@example.org\r\n",
    "upper-case": b"FROM: bob@example.org\r\n",
    "comment": b"From: bob@example.org (alice@example.org)\r\n",
}


@pytest.mark.parametrize("name", sorted(FROM_SPOOFS))
def test_from_spoof_variants_refused(shared_server, name):
    """The address a mail reader shows as From: is another user's: the
    message must not be accepted (553 5.7.1 or another 5xx)."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    header = FROM_SPOOFS[name] + b"To: bob@example.org\r\nSubject: s\r\n"
    with authed(srv) as c:
        r = submit_raw(c, header)
        c.cmd("QUIT")
    assert r[0] == "5", "%s accepted: %r" % (name, r)
    assert pop3_fetch_all(srv, BOB) == []


def test_from_after_64k_of_header_refused(shared_server):
    """A From: behind a header section too large to scan must not slip
    through unchecked."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    pad = b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"p" * 180)
                   for i in range(400))  # ~78 KB
    header = pad + b"From: Bob <bob@example.org>\r\nSubject: big header\r\n"
    with authed(srv) as c:
        r = submit_raw(c, header)
        c.cmd("QUIT")
    assert r[0] == "5", "From: after %d header bytes accepted: %r" % (
        len(pad), r)
    assert pop3_fetch_all(srv, BOB) == []


def test_own_from_with_display_name_accepted(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    with authed(srv) as c:
        for hdr in (b"From: \"Bob <bob@example.org>\" <alice@example.org>\r\n",
                    b"From: Alice Example <ALICE@Example.Org>\r\n",
                    b"From: alice@example.org\r\n"):
            r = submit_raw(c, hdr + b"Subject: own\r\n")
            assert r.startswith("250"), (hdr, r)
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, BOB)) == 3


def test_x_message_id_is_not_message_id(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    header = (b"From: alice@example.org\r\nX-Message-ID: <x@y>\r\n"
              b"X-Date: today\r\nSubject: x\r\n")
    with authed(srv) as c:
        assert submit_raw(c, header, b"Message-ID: <in@body>\r\n"
                          b"Date: body\r\n").startswith("250")
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, BOB)
    rest = check_trace(got, ALICE, "ESMTPSA", tls=True)
    head = rest.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert sum(1 for h in head if h.lower().startswith(b"message-id:")) == 1
    assert sum(1 for h in head if h.lower().startswith(b"date:")) == 1


def test_header_only_message_gets_id(shared_server):
    """A message that is all header (no blank line, no body)."""
    srv = shared_server
    srv.clear_mailbox(BOB)
    with authed(srv) as c:
        assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % BOB).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(b"From: alice@example.org\r\nSubject: only header\r\n.\r\n")
        assert c.reply_line().startswith("250")
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, BOB)
    rest = check_trace(got, ALICE, "ESMTPSA", tls=True)
    # The added fields follow the last header line.
    assert rest.startswith(b"From: alice@example.org\r\nSubject: only "
                           b"header\r\nMessage-ID: <"), rest
    assert b"\r\nDate: " in rest and rest.endswith(b"\r\n"), rest


# -- queue envelope escaping (INV-S2) ------------------------------------------

def test_inv_s2_queue_envelope_escaping(shared_server):
    srv = shared_server
    odd = ['"john smith"@remote.example', "a+b=c@remote.example",
           '"x<y>z"@remote.example']
    mark = srv.log_mark()
    taken = []
    with authed(srv) as c:
        assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        for a in odd:
            r = c.cmd("RCPT TO:<%s>" % a)
            if a.startswith('"x<'):
                # a quoted '<' is valid RFC 5321, a refusal is tolerable
                assert r.startswith("250") or r.startswith("501"), (a, r)
            else:
                assert r.startswith("250"), (a, r)
            if r.startswith("250"):
                taken.append(a)
        assert c.cmd("DATA").startswith("354")
        c.send(b"From: alice@example.org\r\nSubject: odd\r\n\r\nx\r\n.\r\n")
        assert c.reply_line().startswith("250")
        c.cmd("QUIT")
    qid = srv.wait_log(r"received .* queued=([0-9A-Za-z]+) ",
                       since=mark).group(1)
    with open(os.path.join(srv.data_dir, "queue", "env", qid), "rb") as f:
        env = f.read()
    assert b"\r" not in env and b"\0" not in env
    rcpt_lines = [ln for ln in env.split(b"\n") if ln.startswith(b"rcpt ")]
    assert len(rcpt_lines) == len(taken), env
    for ln in rcpt_lines:
        f = ln.split(b" ")
        assert len(f) == 6, "rcpt line with %d fields: %r" % (len(f), ln)
        assert f[1].startswith(b"<") and f[1].endswith(b">"), ln
        inner = f[1][1:-1]
        assert b"<" not in inner and b">" not in inner, ln
        assert b"=" not in inner, ln
        assert all(0x21 <= b <= 0x7e for b in inner), ln
    joined = b" ".join(ln.split(b" ")[1] for ln in rcpt_lines).upper()
    assert b"+20" in joined, joined      # the space
    assert b"+2B" in joined and b"+3D" in joined, joined
    out = srv.postctl("queue", "show", qid).stdout.decode()
    assert "smith" in out, out
    srv.postctl("queue", "delete", qid)


# -- signals with open sessions ----------------------------------------------------

def test_sigterm_sends_421_to_open_session(make_server):
    srv = make_server()
    c = SmtpConn(srv.smtp_port)
    c.ehlo()
    assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
    srv.signal(signal.SIGTERM)
    got = c.wait_closed(timeout=10)
    c.close()
    assert got.startswith(b"421"), got
    assert srv.stop() == 0


def test_sighup_keeps_open_smtp_session(make_server):
    srv = make_server()
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        mark = srv.log_mark()
        srv.hup()
        time.sleep(0.5)
        assert c.cmd("DATA").startswith("354")
        msg = wire(simple_msg("across hup", "x\n"))
        c.send(msg + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    assert check_trace(got, SENDER, "ESMTP") == msg
    # new connections after the reload work too
    with SmtpConn(srv.smtp_port) as c:
        assert c.greeting[0] == 220
        c.cmd("QUIT")
    assert "AddressSanitizer" not in srv.log_since(mark)


# -- caps ----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["max_connections_per_peer",
                                 "max_connections"])
def test_connection_caps_smtp_reply(make_server, key):
    """Over a connection cap an SMTP client gets an SMTP reply (421),
    not another protocol's text."""
    srv = make_server(overrides={key: "3"})
    # The start-up probes' connections are released when the server has
    # read their EOF: give it a moment.
    time.sleep(0.5)
    conns = [SmtpConn(srv.smtp_port) for _ in range(3)]
    try:
        for c in conns:
            assert c.greeting[0] == 220
        extra = SmtpConn(srv.smtp_port, greeting=False)
        got = extra.wait_closed(timeout=10)
        extra.close()
        assert got.startswith(b"421 4."), got
    finally:
        for c in conns:
            c.close()


def test_long_command_line_one_error(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send(b"NOOP " + b"a" * 5000 + b"\r\nNOOP\r\n")
        r1 = c.reply_line()
        assert r1.startswith("500"), r1
        r2 = c.reply_line()
        assert r2.startswith("250"), "one reply per long line: %r" % r2
        assert c.nothing_pending()
        c.cmd("QUIT")


def test_long_mail_path_refused(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s@remote.example>" % ("l" * 65))
        assert r.startswith("501") or r.startswith("553"), r
        r = c.cmd("MAIL FROM:<a@%s.example>" % ".".join(["d" * 63] * 5))
        assert r.startswith("501") or r.startswith("553"), r
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        c.cmd("QUIT")


def test_unknown_mail_and_rcpt_parameters(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s> FOO=bar" % SENDER)
        assert r.startswith("555") or r.startswith("501"), r
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        r = c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % ALICE)
        assert r.startswith("555") or r.startswith("501"), r
        c.cmd("QUIT")


def test_empty_message(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        r = c.cmd(".")
        assert r[0] in "25", r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")
    msgs = pop3_fetch_all(srv, ALICE)
    assert len(msgs) <= 1
    if msgs:
        assert check_trace(msgs[0][1], SENDER, "ESMTP") == b""


# -- full disk --------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs_server(tls_files, size_mb):
    """A daemon whose data_dir is a tmpfs of size_mb."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mounted = None
    try:
        with running_server(tls_files, start=False) as srv:
            keep = srv.data_dir + ".orig"
            if os.path.isdir(srv.data_dir):
                os.rename(srv.data_dir, keep)
            else:
                os.mkdir(keep)
            os.mkdir(srv.data_dir)
            p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                                "size=%dm,mode=0755" % size_mb, "tmpfs",
                                srv.data_dir], stderr=subprocess.PIPE)
            if p.returncode != 0:
                pytest.skip("cannot mount a tmpfs: %s" % p.stderr)
            mounted = srv.data_dir
            subprocess.run(["cp", "-a", keep + "/.", srv.data_dir],
                           check=True)
            srv.start()
            yield srv
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mounted])
            if not os.environ.get("POSTD_TEST_KEEP"):
                shutil.rmtree(os.path.dirname(mounted), ignore_errors=True)


def test_inv_d5_low_space_452_at_mail(tls_files):
    with tmpfs_server(tls_files, 32) as srv:
        with SmtpConn(srv.smtp_port) as c:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.startswith("452 4.3.1"), r
            c.cmd("QUIT")


def test_inv_d1_disk_full_during_data(tls_files):
    """The disk fills while the body is read: 452 4.3.1 (not 250), no
    file left in tmp/ or new/, and the session still works once there is
    space again."""
    with tmpfs_server(tls_files, 80) as srv:
        md = srv.maildir(ALICE)
        filler = os.path.join(srv.data_dir, "filler")
        with SmtpConn(srv.smtp_port) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
            assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
            assert c.cmd("DATA").startswith("354")
            st = os.statvfs(srv.data_dir)
            free = st.f_bavail * st.f_frsize
            fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
            os.posix_fallocate(fd, 0, free - 64 * 1024)
            os.close(fd)
            body = b"Subject: full\r\n\r\n" + (b"f" * 78 + b"\r\n") * 20000
            c.send(body + b".\r\n")
            r = c.reply_line()
            assert r.startswith("452 4.3.1"), r
            os.unlink(filler)
            assert os.listdir(os.path.join(md, "tmp")) == [], \
                "partial file left in tmp/"
            assert srv.stored_messages(ALICE) == []
            r = c.cmd("RSET")
            assert r.startswith("250"), r
            msg = wire(simple_msg("after full", "ok\n"))
            assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
            assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
            assert c.cmd("DATA").startswith("354")
            c.send(msg + b".\r\n")
            assert c.reply_line().startswith("250 2.0.0")
            c.cmd("QUIT")
        (_, got), = pop3_fetch_all(srv, ALICE)
        assert check_trace(got, SENDER, "ESMTP") == msg
        assert all_maildir_files(srv) == srv_paths(srv)


def srv_paths(srv):
    return sorted(os.path.join(srv.maildir(ALICE), n)
                  for n in srv.stored_messages(ALICE))


@pytest.mark.parametrize("helo", [b"two words", b"semi;colon)(", b"a\x00b",
                                  b"\xc3\xa9vil.example", b"[1.2.3.4",
                                  b"x" * 300])
def test_helo_junk_keeps_received_well_formed(shared_server, helo):
    """An EHLO argument that is no domain or address literal is refused,
    or it must not break the Received: header (INV-S2)."""
    srv = shared_server
    srv.clear_mailbox()
    with SmtpConn(srv.smtp_port) as c:
        c.send(b"EHLO " + helo + b"\r\n")
        code, texts = c.reply()
        if code != 250:
            assert code in (500, 501), (code, texts)
            assert c.cmd("EHLO ok.example").startswith("250")
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(b"Subject: helo\r\n\r\nx\r\n.\r\n")
        assert c.reply_line().startswith("250")
        c.cmd("QUIT")
    (_, got), = pop3_fetch_all(srv, ALICE)
    rest = check_trace(got, SENDER, "ESMTP")
    assert rest == b"Subject: helo\r\n\r\nx\r\n"
