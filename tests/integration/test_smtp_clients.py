"""Real SMTP clients: curl (smtp, STARTTLS + AUTH on submission, smtps),
swaks (--tls --auth), msmtp (STARTTLS and implicit TLS, tls_trust_file,
auth). Each delivered message is fetched over POP3 and compared byte for
byte after the trace headers. Debian packages: curl, swaks, msmtp."""

import os
import shutil
import subprocess

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN
from pop3util import wire
from smtputil import check_trace, pop3_fetch_all

CURL = shutil.which("curl")
SWAKS = shutil.which("swaks")
MSMTP = shutil.which("msmtp")
BOB = "bob@" + DOMAIN
SENDER = "sender@remote.example"


def run(argv, **kw):
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def message(tag, frm=ALICE):
    """A message with Date and Message-ID (so submission adds nothing),
    lines starting with dots, an empty line and 8-bit-free text."""
    return wire(("From: Sender <%s>\nTo: <%s>\nSubject: client %s\n"
                 "Date: Tue, 2 Jan 2024 12:00:00 +0000\n"
                 "Message-ID: <%s@client.test>\n\n"
                 "body of %s\n.leading dot\n..two dots\n.\n\nend\n" % (
                     frm, BOB, tag, tag, tag)).encode())


def write_msg(srv, name, data):
    path = os.path.join(srv.base, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def only(srv, user):
    msgs = pop3_fetch_all(srv, user)
    assert len(msgs) == 1, "want 1 message for %s, have %d" % (user,
                                                                 len(msgs))
    return msgs[0][1]


# -- curl -------------------------------------------------------------------

@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_smtp_plain(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = message("curl-smtp", frm=SENDER)
    path = write_msg(srv, "curl1.eml", msg)
    p = run([CURL, "-sS", "--max-time", "30",
             "smtp://127.0.0.1:%d/client.example" % srv.smtp_port,
             "--mail-from", SENDER, "--mail-rcpt", ALICE, "-T", path])
    assert p.returncode == 0, p.stderr
    rest = check_trace(only(srv, ALICE), SENDER, "ESMTP",
                       helo="client.example")
    assert rest == msg


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_submission_starttls_auth(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = message("curl-submission")
    path = write_msg(srv, "curl2.eml", msg)
    p = run([CURL, "-sS", "--max-time", "30", "--ssl-reqd",
             "--cacert", srv.ca,
             "smtp://127.0.0.1:%d/laptop.example" % srv.submission_port,
             "-u", "%s:%s" % (ALICE, ALICE_PW),
             "--mail-from", ALICE, "--mail-rcpt", BOB, "-T", path])
    assert p.returncode == 0, p.stderr
    rest = check_trace(only(srv, BOB), ALICE, "ESMTPSA", tls=True)
    assert rest == msg


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_smtps(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = message("curl-smtps")
    path = write_msg(srv, "curl3.eml", msg)
    p = run([CURL, "-sS", "--max-time", "30", "--cacert", srv.ca,
             "smtps://127.0.0.1:%d/laptop.example" % srv.submissions_port,
             "-u", "alice:%s" % ALICE_PW,
             "--mail-from", ALICE, "--mail-rcpt", BOB, "-T", path])
    assert p.returncode == 0, p.stderr
    rest = check_trace(only(srv, BOB), ALICE, "ESMTPSA", tls=True)
    assert rest == msg


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_submission_wrong_password(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    path = write_msg(srv, "curl4.eml", message("curl-bad"))
    p = run([CURL, "-sS", "--max-time", "30", "--ssl-reqd",
             "--cacert", srv.ca,
             "smtp://127.0.0.1:%d/" % srv.submission_port,
             "-u", "%s:wrong" % ALICE,
             "--mail-from", ALICE, "--mail-rcpt", BOB, "-T", path])
    assert p.returncode == 67, (p.returncode, p.stderr)  # login denied
    assert pop3_fetch_all(srv, BOB) == []


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_relay_refused(shared_server):
    srv = shared_server
    path = write_msg(srv, "curl5.eml", message("curl-relay", frm=SENDER))
    p = run([CURL, "-sS", "--max-time", "30",
             "smtp://127.0.0.1:%d/" % srv.smtp_port,
             "--mail-from", SENDER, "--mail-rcpt", "x@other.example",
             "-T", path])
    assert p.returncode == 55, (p.returncode, p.stderr)
    assert b"554" in p.stderr, p.stderr


# -- swaks ------------------------------------------------------------------

def swaks_data(msg):
    """swaks always sends its data followed by CRLF . CRLF: give it the
    message without its last line end."""
    assert msg.endswith(b"\r\n")
    return msg[:-2]


@pytest.mark.skipif(not SWAKS, reason="swaks not installed (apt-get "
                    "install swaks)")
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_tls_auth(shared_server, mech):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = message("swaks-" + mech)
    path = write_msg(srv, "swaks.eml", swaks_data(msg))
    p = run([SWAKS, "--server", "127.0.0.1", "--port",
             str(srv.submission_port), "--ehlo", "laptop.example",
             "--from", ALICE, "--to", BOB,
             "--tls", "--tls-verify", "--tls-ca-path", srv.ca,
             "--auth", mech, "--auth-user", ALICE,
             "--auth-password", ALICE_PW, "--data", "@" + path,
             "--timeout", "30"])
    assert p.returncode == 0, p.stdout.decode()[-2000:]
    rest = check_trace(only(srv, BOB), ALICE, "ESMTPSA",
                       helo="laptop.example", tls=True)
    assert rest == msg


@pytest.mark.skipif(not SWAKS, reason="swaks not installed")
def test_swaks_smtp_pipelining(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    msg = message("swaks-pipe", frm=SENDER)
    path = write_msg(srv, "swaks2.eml", swaks_data(msg))
    p = run([SWAKS, "--server", "127.0.0.1", "--port", str(srv.smtp_port),
             "--from", SENDER, "--to", ALICE, "--pipeline",
             "--data", "@" + path, "--timeout", "30"])
    assert p.returncode == 0, p.stdout.decode()[-2000:]
    rest = check_trace(only(srv, ALICE), SENDER, "ESMTP")
    assert rest == msg


@pytest.mark.skipif(not SWAKS, reason="swaks not installed")
def test_swaks_tls_on_connect(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = message("swaks-tlsc")
    path = write_msg(srv, "swaks3.eml", swaks_data(msg))
    p = run([SWAKS, "--server", "127.0.0.1", "--port",
             str(srv.submissions_port), "--tls-on-connect",
             "--tls-verify", "--tls-ca-path", srv.ca,
             "--from", ALICE, "--to", BOB, "--auth", "PLAIN",
             "--auth-user", "alice", "--auth-password", ALICE_PW,
             "--data", "@" + path, "--timeout", "30"])
    assert p.returncode == 0, p.stdout.decode()[-2000:]
    rest = check_trace(only(srv, BOB), ALICE, "ESMTPSA", tls=True)
    assert rest == msg


# -- msmtp ------------------------------------------------------------------

def msmtprc(srv, port, starttls, auth="plain", user=ALICE, pw=ALICE_PW):
    path = os.path.join(srv.base, "msmtprc-%d-%s" % (port, auth))
    with open(path, "w") as f:
        f.write("defaults\n"
                "tls on\n"
                "tls_starttls %s\n"
                "tls_trust_file %s\n"
                "timeout 30\n"
                "account test\n"
                "host 127.0.0.1\n"
                "port %d\n"
                "domain laptop.example\n"
                "from %s\n"
                "auth %s\n"
                "user %s\n"
                "password %s\n"
                "account default : test\n" % (
                    "on" if starttls else "off", srv.ca, port, ALICE, auth,
                    user, pw))
    os.chmod(path, 0o600)
    return path


@pytest.mark.skipif(not MSMTP, reason="msmtp not installed (apt-get "
                    "install msmtp)")
@pytest.mark.parametrize("mode,auth", [("starttls", "plain"),
                                       ("starttls", "login"),
                                       ("implicit", "plain")])
def test_msmtp(shared_server, mode, auth):
    srv = shared_server
    srv.clear_mailbox(BOB)
    msg = message("msmtp-%s-%s" % (mode, auth))
    port = srv.submission_port if mode == "starttls" else \
        srv.submissions_port
    rc = msmtprc(srv, port, mode == "starttls", auth)
    # msmtp reads LF text and sends CRLF, dot-stuffed
    p = run([MSMTP, "-C", rc, "-a", "test", BOB],
            input=msg.replace(b"\r\n", b"\n"))
    assert p.returncode == 0, (p.stdout, p.stderr)
    rest = check_trace(only(srv, BOB), ALICE, "ESMTPSA",
                       helo="laptop.example", tls=True)
    assert rest == msg


@pytest.mark.skipif(not MSMTP, reason="msmtp not installed")
def test_msmtp_wrong_password(shared_server):
    srv = shared_server
    srv.clear_mailbox(BOB)
    rc = msmtprc(srv, srv.submission_port, True, pw="not-it")
    p = run([MSMTP, "-C", rc, "-a", "test", BOB],
            input=message("msmtp-bad").replace(b"\r\n", b"\n"))
    assert p.returncode != 0
    assert b"535" in p.stderr, p.stderr
    assert pop3_fetch_all(srv, BOB) == []


@pytest.mark.skipif(not MSMTP, reason="msmtp not installed")
def test_msmtp_spoofed_sender_refused(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    rc = msmtprc(srv, srv.submission_port, True)
    p = run([MSMTP, "-C", rc, "-a", "test", "-f", BOB, ALICE],
            input=message("msmtp-spoof", frm=BOB).replace(b"\r\n", b"\n"))
    assert p.returncode != 0
    assert b"553" in p.stderr, p.stderr
    assert pop3_fetch_all(srv, ALICE) == []
