"""doc/troubleshooting.md, row by row: each test provokes the cause a
client reports (Outlook's codes, Thunderbird's and Apple Mail's messages)
against the real daemon and checks both the reply postd sent and the log
line the table quotes. A test's name names its row.

Log lines checked here are in the one refusal format of postd:
  refused peer=P session=S proto=X user=U cause=...
plus "auth failed ..." (the only line that tells an unknown user from a
wrong password, INV-A1) and "logout ..." for sessions that ended."""

import contextlib
import errno
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import warnings

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN, IS_ROOT, free_port
from pop3util import Pop3Conn, plain_ir
from smtputil import SmtpConn

BOB = "bob@" + DOMAIN
REFUSED = (r"refused peer=127\.0\.0\.1 session=[0-9a-f]{12} "
           r"proto=%s user=%s cause=")


def refused(proto, user="-"):
    return REFUSED % (proto, user.replace(".", r"\."))


def insecure_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_attempt(port, ctx):
    """A TLS handshake that the test expects to fail; returns the
    client's error."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with pytest.raises((ssl.SSLError, OSError)) as e:
            ctx.wrap_socket(s, server_hostname="localhost")
        return e.value
    finally:
        s.close()


def smtp_ehlo(port, tls_ctx=None):
    c = SmtpConn(port, tls_ctx=tls_ctx)
    assert c.greeting[0] == 220, c.greeting
    code, _, texts = c.ehlo()
    assert code == 250, texts
    return c


def submission_tls(srv):
    c = smtp_ehlo(srv.submission_port)
    c.send(b"STARTTLS\r\n")
    assert c.read_reply_unbuffered().startswith(b"220")
    c.starttls(srv.ctx())
    code, _, texts = c.ehlo()
    assert code == 250, texts
    return c


# -- 0x800CCC0E: cannot connect ---------------------------------------------

def test_row_0x800ccc0e_server_down(make_server):
    """Server stopped (or wrong port, or a firewall): the connection is
    refused and postd logs nothing for it; its last words were
    "stopped"."""
    srv = make_server()
    assert srv.stop() == 0
    srv.wait_log(r"info: stopped$")
    mark = srv.log_mark()
    for port in (srv.pop3_port, srv.pop3s_port, srv.submission_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    assert srv.log_since(mark) == ""


def test_row_0x800ccc0e_tls_client_on_plain_port(shared_server):
    """"This server requires an encrypted connection (SSL/TLS)" ticked
    for port 110 or 587: the client opens with a TLS ClientHello where a
    command belongs."""
    srv = shared_server
    for port, proto in ((srv.pop3_port, "pop3"),
                        (srv.submission_port, "submission")):
        mark = srv.log_mark()
        err = tls_attempt(port, insecure_ctx())
        # the client reads the plaintext greeting as a TLS record
        assert isinstance(err, (ssl.SSLError, ConnectionResetError)), err
        srv.wait_log(refused(proto) + r"TLS handshake on a plaintext port: "
                     r"the client expects implicit TLS", since=mark)


def test_row_0x800ccc0e_plain_client_on_tls_port(shared_server):
    """SSL/TLS not ticked for port 995 or 465: plaintext reaches the
    TLS layer."""
    srv = shared_server
    for port, proto, line in ((srv.pop3s_port, "pop3s", b"USER alice\r\n"),
                              (srv.submissions_port, "submissions",
                               b"EHLO client.example\r\n")):
        mark = srv.log_mark()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(line)
        got = b""
        with contextlib.suppress(OSError):
            s.settimeout(5)
            got = s.recv(100)
        s.close()
        # no plaintext greeting ever comes: at most a TLS alert record
        assert not got.startswith((b"+OK", b"220")), got
        srv.wait_log(refused(proto) + r"TLS handshake failed: wrong version "
                     r"number - the client does not speak TLS here",
                     since=mark)


def test_row_0x800ccc0e_too_many_connections(make_server):
    """Also Thunderbird's "The mail server sent an incorrect greeting":
    over max_connections_per_peer the greeting is 421 (SMTP) or
    -ERR [SYS/TEMP] (POP3)."""
    srv = make_server(overrides={"max_connections_per_peer": "2"})
    time.sleep(0.5)  # the start-up probes' connections go away
    conns = [SmtpConn(srv.smtp_port) for _ in range(2)]
    try:
        for c in conns:
            assert c.greeting[0] == 220
        mark = srv.log_mark()
        extra = SmtpConn(srv.smtp_port, greeting=False)
        got = extra.wait_closed(timeout=10)
        extra.close()
        assert got.startswith(b"421 4.7.0 "), got
        srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=smtp "
                     r"user=- cause=too many connections from 127\.0\.0\.1 "
                     r"\(max_connections_per_peer 2\)", since=mark)
        mark = srv.log_mark()
        p = Pop3Conn(srv.pop3_port, greeting=False)
        got = p.wait_closed(timeout=10)
        p.close()
        assert got.startswith(b"-ERR [SYS/TEMP] "), got
        srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=pop3 "
                     r"user=- cause=too many connections from 127\.0\.0\.1",
                     since=mark)
    finally:
        for c in conns:
            c.close()


# -- 0x800CCC0F: connection interrupted ---------------------------------------

def test_row_0x800ccc0f_idle_timeout(make_server):
    srv = make_server(overrides={"timeout_preauth": "1s"})
    mark = srv.log_mark()
    c = srv.connect()
    assert c.greeting.startswith("+OK")
    got = c.wait_closed(timeout=10)
    assert got.startswith(b"-ERR Autologout; idle for too long."), got
    srv.wait_log(refused("pop3") + r"idle timeout \(timeout_preauth \d+ s\)$", since=mark)


def test_row_0x800ccc0f_tls_handshake_timeout(make_server):
    """A client that connects to 995 and never starts TLS."""
    srv = make_server(overrides={"timeout_preauth": "1s"})
    mark = srv.log_mark()
    s = socket.create_connection(("127.0.0.1", srv.pop3s_port), timeout=10)
    try:
        s.settimeout(10)
        assert s.recv(100) == b""  # closed without a word
    finally:
        s.close()
    srv.wait_log(refused("pop3s") + r"TLS handshake failed: timed out "
                 r"after 1 s", since=mark)


def test_row_0x800ccc0f_untrusted_certificate(shared_server):
    """Also Thunderbird's "The connection to ... was reset" and Apple
    Mail's certificate dialog: the client does not trust the
    certificate and aborts the handshake."""
    srv = shared_server
    for port, proto in ((srv.pop3s_port, "pop3s"),
                        (srv.submissions_port, "submissions")):
        mark = srv.log_mark()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded
        err = tls_attempt(port, ctx)
        assert "CERTIFICATE_VERIFY_FAILED" in str(err), err
        srv.wait_log(refused(proto) + r"TLS handshake failed: .*unknown ca "
                     r"- the client does not trust the certificate",
                     since=mark)


# Clients that reject the certificate and how they say it: an alert (the
# OpenSSL ones, gnutls-cli), or nothing at all (msmtp, mpop and neomutt
# on GnuTLS check the certificate after the handshake and just close).
NOT_TRUSTED = r"does not trust the certificate$"
CLOSED_NO_ALERT = (r"TLS handshake failed: connection (closed|reset) by the "
                   r"client (right after the handshake, before any command|"
                   r"after our certificate, without an alert) - it "
                   r"probably does not trust the certificate$")
MSMTP = shutil.which("msmtp")
GNUTLS_CLI = shutil.which("gnutls-cli")
CURL = shutil.which("curl")


def one_refusal(srv, mark, proto, cause_re):
    """Waits for the refusal and checks that the connection wrote it
    once and nothing else at info: returns the line."""
    m = srv.wait_log(refused(proto) + cause_re, since=mark)
    session = re.search(r"session=([0-9a-f]{12})", m.string).group(1)
    time.sleep(0.3)  # a second line would come now
    lines = [line for line in srv.log_since(mark).splitlines()
             if "session=" + session in line or "refused " in line]
    assert lines == [m.string], lines
    return m.string


def run_client(argv, stdin=b""):
    return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)


def msmtp_argv(srv, starttls):
    port = srv.submission_port if starttls else srv.submissions_port
    return [MSMTP, "--host=127.0.0.1", "--port=%d" % port, "--tls=on",
            "--tls-starttls=%s" % ("on" if starttls else "off"),
            "--auth=off", "--from=" + ALICE, "--", BOB]


def test_row_certificate_not_trusted_closed_without_alert(shared_server):
    """msmtp (GnuTLS; mpop and neomutt behave the same) does not trust the
    certificate: it says "TLS certificate verification failed" and closes
    without an alert. postd's log says why, once, at info."""
    if not MSMTP:
        pytest.skip("msmtp not installed (apt-get install msmtp)")
    srv = shared_server
    for starttls, proto in ((False, "submissions"), (True, "submission")):
        mark = srv.log_mark()
        p = run_client(msmtp_argv(srv, starttls), b"Subject: t\r\n\r\nt\r\n")
        assert p.returncode != 0, p.stdout
        assert b"certificate" in p.stdout, p.stdout
        one_refusal(srv, mark, proto, CLOSED_NO_ALERT)


def close_after_server_flight(port, version):
    """A client that sends its ClientHello, reads our flight (ServerHello
    .. Certificate) and closes without an alert, as a client does that
    rejects the certificate in the middle of the handshake."""
    ctx = insecure_ctx()
    ctx.minimum_version = ctx.maximum_version = version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(outgoing.read())
        got = b""
        while len(got) < 600:  # the flight carries the certificate
            chunk = s.recv(65536)
            assert chunk, "server closed before its flight"
            got += chunk
        assert got[0] == 0x16, got[:10]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3,
                                     ssl.TLSVersion.TLSv1_2])
def test_closed_after_our_certificate_says_so(shared_server, version):
    srv = shared_server
    mark = srv.log_mark()
    close_after_server_flight(srv.pop3s_port, version)
    one_refusal(srv, mark, "pop3s",
                r"TLS handshake failed: connection (closed|reset) by the "
                r"client after our certificate, without an alert - it "
                r"probably does not trust the certificate$")


def test_closed_in_the_middle_of_client_hello(shared_server):
    srv = shared_server
    ctx = insecure_ctx()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    mark = srv.log_mark()
    with socket.create_connection(("127.0.0.1", srv.submissions_port),
                                  timeout=10) as s:
        s.sendall(outgoing.read()[:20])
        time.sleep(0.2)
    one_refusal(srv, mark, "submissions",
                r"TLS handshake failed: connection closed by the client in "
                r"the middle of its ClientHello - not a TLS client, or a "
                r"port scanner$")


def real_rejecting_clients(srv):
    """Real clients without the test CA: each rejects the certificate."""
    ctx_port = srv.pop3s_port
    out = []
    if GNUTLS_CLI:
        out += [("gnutls-cli pop3s", "pop3s",
                 [GNUTLS_CLI, "-p", str(srv.pop3s_port), "localhost"]),
                ("gnutls-cli STLS", "pop3",
                 [GNUTLS_CLI, "--starttls-proto=pop3", "-p",
                  str(srv.pop3_port), "localhost"]),
                ("gnutls-cli STARTTLS", "submission",
                 [GNUTLS_CLI, "--starttls-proto=smtp", "-p",
                  str(srv.submission_port), "localhost"])]
    if CURL:
        out.append(("curl pop3s", "pop3s",
                    [CURL, "-sS", "--max-time", "10",
                     "pop3s://127.0.0.1:%d/" % ctx_port, "-u", "a:b"]))
    out.append(("openssl s_client", "submissions",
                ["openssl", "s_client", "-verify_return_error", "-connect",
                 "127.0.0.1:%d" % srv.submissions_port]))
    if MSMTP:
        out.append(("msmtp", "submissions", msmtp_argv(srv, False)))
    return out


def test_real_clients_that_reject_the_certificate_log_one_line(
        shared_server):
    """gnutls-cli (without --insecure), curl (without -k), openssl
    s_client -verify_return_error, msmtp, and Python with verification:
    one refusal line each, naming the certificate."""
    srv = shared_server
    for name, proto, argv in real_rejecting_clients(srv):
        mark = srv.log_mark()
        p = run_client(argv, b"QUIT\r\n")
        assert p.returncode != 0, (name, p.stdout[-500:])
        line = one_refusal(srv, mark, proto, r"TLS handshake failed: .*" +
                           NOT_TRUSTED)
        print(name, "->", line)
    mark = srv.log_mark()
    ctx = ssl.create_default_context()  # the system CAs, not the test CA
    err = tls_attempt(srv.pop3s_port, ctx)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err), err
    one_refusal(srv, mark, "pop3s", r"TLS handshake failed: .*" +
                NOT_TRUSTED)


def test_tls_session_that_ends_normally_logs_no_refusal(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    c = srv.connect(tls=True)
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    c = smtp_ehlo(srv.submissions_port, tls_ctx=srv.ctx())
    assert c.cmd("QUIT").startswith("221"), "QUIT"
    c.close()
    c = submission_tls(srv)
    assert c.cmd("QUIT").startswith("221"), "QUIT"
    c.close()
    time.sleep(0.3)
    assert "refused " not in srv.log_since(mark), srv.log_since(mark)


def test_client_gone_after_handshake_frees_its_connection(make_server):
    """The connection of a client that closed right after the handshake
    goes at once; it stayed (and counted against the connection caps)
    until the idle timeout, with the greeting stuck in its buffer."""
    srv = make_server(overrides={"log_level": "debug"})
    mark = srv.log_mark()
    s = socket.create_connection(("127.0.0.1", srv.pop3s_port))
    insecure_ctx().wrap_socket(s, server_hostname="localhost").close()
    m = srv.wait_log(refused("pop3s") + CLOSED_NO_ALERT, since=mark)
    session = re.search(r"session=([0-9a-f]{12})", m.string).group(1)
    srv.wait_log(r"disconnect peer=127\.0\.0\.1 session=%s " % session,
                 since=mark, timeout=3)


def test_row_0x800ccc0f_old_tls_version(shared_server):
    srv = shared_server
    ctx = insecure_ctx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    mark = srv.log_mark()
    tls_attempt(srv.pop3s_port, ctx)
    srv.wait_log(refused("pop3s") + r"TLS handshake failed: unsupported "
                 r"protocol - the client offers only TLS versions below "
                 r"1\.2", since=mark)


def test_row_0x800ccc0f_no_shared_cipher(shared_server):
    srv = shared_server
    ctx = insecure_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA")  # RSA key exchange; the key is ECDSA
    mark = srv.log_mark()
    tls_attempt(srv.submissions_port, ctx)
    srv.wait_log(refused("submissions") + r"TLS handshake failed: no shared "
                 r"cipher", since=mark)


def test_row_0x800ccc0f_server_stopped(make_server):
    srv = make_server()
    p = srv.login()
    s = SmtpConn(srv.smtp_port)
    mark = srv.log_mark()
    assert srv.stop() == 0
    assert p.line().startswith("-ERR [SYS/TEMP] Server shutting down")
    assert s.reply_line().startswith("421 4.3.2 ")
    log = srv.log_since(mark)
    srv.wait_log(r"logout user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 .*reason=server shutting down",
                 since=mark)
    srv.wait_log(refused("smtp") + r"server shutting down", since=mark)
    assert "info: stopping" in log
    p.close()
    s.close()


# -- 0x800CCC90 / 0x800CCC92: the POP3 server said -ERR at login ----------------

def test_row_0x800ccc90_wrong_password(shared_server):
    """Also Thunderbird's "Login to server ... failed" and Apple Mail's
    "The user name or password ... is incorrect"."""
    srv = shared_server
    mark = srv.log_mark()
    c = srv.connect()
    r = c.login(ALICE, "not-the-password")
    assert r == "-ERR [AUTH] Authentication failed.", r
    c.close()
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 cause=wrong password mech=USER",
                 since=mark)


def test_row_0x800ccc90_unknown_user(shared_server):
    """The same reply as a wrong password (INV-A1); only the log says."""
    srv = shared_server
    mark = srv.log_mark()
    c = srv.connect()
    r = c.login("nobody-here@example.org", "whatever")
    assert r == "-ERR [AUTH] Authentication failed.", r
    c.close()
    srv.wait_log(r"auth failed user=nobody-here@example\.org "
                 r"peer=127\.0\.0\.1 session=\S+ proto=pop3 "
                 r"cause=unknown user mech=USER", since=mark)


def test_row_0x800ccc90_plaintext_before_tls(make_server):
    """plaintext_auth = no and a client without SSL/TLS: USER is refused
    before the password is sent."""
    srv = make_server(overrides={"plaintext_auth": "no"})
    mark = srv.log_mark()
    c = srv.connect()
    r = c.cmd("USER " + ALICE)
    assert r.startswith("-ERR [AUTH] Plaintext authentication requires "
                        "TLS"), r
    c.close()
    srv.wait_log(refused("pop3") + r"plaintext login without TLS",
                 since=mark)


def test_row_0x800ccc92_in_use(shared_server):
    """A second client (phone and PC) while the first holds the
    mailbox."""
    srv = shared_server
    first = srv.login()
    try:
        mark = srv.log_mark()
        c = srv.connect()
        r = c.login(ALICE, ALICE_PW)
        assert r.startswith("-ERR [IN-USE] "), r
        c.close()
        srv.wait_log(refused("pop3", ALICE) + r"mailbox in use: locked by "
                     r"session [0-9a-f]{12} user alice@example\.org peer "
                     r"127\.0\.0\.1 since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                     since=mark)
    finally:
        first.cmd("QUIT")
        first.close()


def test_row_0x800ccc92_login_delay(make_server):
    """Depends on LOGIN-DELAY (login_delay, RFC 2449 6.5)."""
    srv = make_server(overrides={"login_delay": "1h"})
    c = srv.login()
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    mark = srv.log_mark()
    c = srv.connect()
    r = c.login(ALICE, ALICE_PW)
    assert r.startswith("-ERR [LOGIN-DELAY] "), r
    c.close()
    srv.wait_log(refused("pop3", ALICE) + r"login delay: last login "
                 r"\S+ \(\d+ s ago\), delay 3600 s", since=mark)


def test_row_0x800ccc92_sys_temp_mailbox_unavailable(make_server):
    """The Maildir cannot be opened (here: a file where its folder
    belongs): [SYS/TEMP], the cause only in the log."""
    srv = make_server(start=False)
    md = srv.maildir(BOB)
    if os.path.isdir(md):
        shutil.rmtree(md)
    os.makedirs(os.path.dirname(md), exist_ok=True)
    with open(md, "w") as f:
        f.write("not a Maildir\n")
    srv.start()
    mark = srv.log_mark()
    c = srv.connect()
    r = c.login(BOB, srv.users[BOB])
    assert r.startswith("-ERR [SYS/TEMP] "), r
    c.close()
    srv.wait_log(refused("pop3", BOB) + r"cannot open Maildir: ", since=mark)


# -- 0x800CCC18: Secure Password Authentication ---------------------------------

def test_row_0x800ccc18_spa_ntlm(shared_server):
    """SPA asks for NTLM; postd offers PLAIN and LOGIN only."""
    srv = shared_server
    mark = srv.log_mark()
    c = srv.connect()
    c.send("AUTH\r\n")
    assert c.line().startswith("+OK")
    mechs = c.multi()
    assert "NTLM" not in mechs and "PLAIN" in mechs, mechs
    r = c.cmd("AUTH NTLM")
    assert r.startswith("-ERR"), r
    c.close()
    srv.wait_log(refused("pop3") + r"unsupported SASL mechanism NTLM "
                 r"\(only PLAIN and LOGIN are offered\)", since=mark)
    mark = srv.log_mark()
    s = smtp_ehlo(srv.submission_port)
    r = s.cmd("AUTH NTLM")
    assert r.startswith("504 5.5.4 "), r
    s.close()
    srv.wait_log(refused("submission") + r"unsupported SASL mechanism NTLM "
                 r"\(only PLAIN and LOGIN are offered\)", since=mark)


# -- 0x8004210A: timed out waiting for the server ---------------------------------

def test_row_0x8004210a_download_interrupted(make_server):
    """The client gave up during a long RETR (its server timeout is
    shorter than the download): postd logs the session's end with the
    bytes sent so far, and deletes nothing (INV-P1)."""
    srv = make_server()
    srv.deliver(ALICE, b"Subject: big\n\n" + (b"y" * 76 + b"\n") * 60000)
    before = srv.stored_messages()
    c = srv.login()
    mark = srv.log_mark()
    c.send("RETR 1\r\n")
    assert c.line().startswith("+OK")
    c._recv_more(4096)
    c.abort()
    srv.wait_log(r"logout user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 retrieved=0 deleted=0 bytes=\d+ "
                 r"reason=", since=mark)
    assert srv.stored_messages() == before


# -- 0x80042109: cannot connect to the outgoing server -----------------------------

def test_row_0x80042109_port_blocked_use_submission(shared_server):
    """Port 25 blocked on the way (an ISP's filter; here a port nothing
    listens on): nothing reaches postd. The fix, submission on 587 with
    STARTTLS and AUTH, works."""
    srv = shared_server
    blocked = free_port()
    mark = srv.log_mark()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", blocked), timeout=5)
    c = submission_tls(srv)
    r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
    assert r.startswith("235 2.7.0"), r
    c.cmd("QUIT")
    c.close()
    srv.wait_log(r"login user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=submission mech=PLAIN tls=TLSv1\.[23]",
                 since=mark)


# -- SMTP rows -----------------------------------------------------------------------

def test_row_smtp_auth_failed_535_578(shared_server):
    """Thunderbird "Unable to authenticate to SMTP server", Outlook
    0x800CCC92 on sending."""
    srv = shared_server
    mark = srv.log_mark()
    c = submission_tls(srv)
    r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, "wrong-password"))
    assert r.startswith("535 5.7.8 "), r
    c.close()
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=submission cause=wrong password "
                 r"mech=PLAIN", since=mark)


def test_row_smtp_relay_denied_554_571(shared_server):
    """Thunderbird "Relaying denied": the client sends to port 25 without
    AUTH."""
    srv = shared_server
    mark = srv.log_mark()
    c = smtp_ehlo(srv.smtp_port)
    assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
    r = c.cmd("RCPT TO:<friend@remote.example>")
    assert r.startswith("554 5.7.1 "), r
    c.close()
    srv.wait_log(refused("smtp") + r"relay to <friend@remote\.example> "
                 r"denied: not a local domain and no AUTH", since=mark)


def test_row_smtp_sender_not_owned_553_571(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    c = submission_tls(srv)
    assert c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)).startswith("235")
    r = c.cmd("MAIL FROM:<%s>" % BOB)
    assert r.startswith("553 5.7.1 "), r
    c.close()
    srv.wait_log(refused("submission", ALICE) + r"sender "
                 r"<bob@example\.org> is not the user's own address",
                 since=mark)


def test_row_smtp_message_too_big_552_534(make_server):
    srv = make_server(overrides={"max_message_size": "2048"})
    mark = srv.log_mark()
    c = smtp_ehlo(srv.smtp_port)
    r = c.cmd("MAIL FROM:<a@remote.example> SIZE=999999")
    assert r.startswith("552 5.3.4 "), r
    srv.wait_log(refused("smtp") + r"message too big: SIZE=999999 over "
                 r"max_message_size 2048", since=mark)
    # without SIZE=: read to the end, then refused
    mark = srv.log_mark()
    assert c.cmd("MAIL FROM:<a@remote.example>").startswith("250")
    assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: big\r\n\r\n" + b"z" * 70 + b"\r\n")
    c.send((b"z" * 70 + b"\r\n") * 60 + b".\r\n")
    r = c.reply_line()
    assert r.startswith("552 5.3.4 "), r
    c.close()
    srv.wait_log(refused("smtp") + r"message refused: 552 5\.3\.4",
                 since=mark)


def test_row_smtp_must_starttls_530_570(make_server):
    srv = make_server(overrides={"plaintext_auth": "no"})
    mark = srv.log_mark()
    c = smtp_ehlo(srv.submission_port)
    r = c.cmd("MAIL FROM:<%s>" % ALICE)
    assert r == "530 5.7.0 Must issue a STARTTLS command first", r
    r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
    assert r.startswith("538 5.7.11 "), r
    c.close()
    srv.wait_log(refused("submission") + r"TLS required: MAIL before "
                 r"STARTTLS", since=mark)
    srv.wait_log(refused("submission") + r"TLS required: plaintext AUTH "
                 r"before STARTTLS", since=mark)


# -- disk full: a small tmpfs under data_dir ----------------------------------------

@contextlib.contextmanager
def tmpfs_data_dir(srv, options):
    """Runs srv with data_dir on a fresh tmpfs (root only); copies what
    postctl already put there and keeps the owner."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    d = srv.data_dir
    os.makedirs(d, exist_ok=True)
    keep = d + ".orig"
    shutil.copytree(d, keep, symlinks=True)
    st = os.stat(d)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", d],
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        shutil.rmtree(keep, ignore_errors=True)
        pytest.skip("mount -t tmpfs not permitted here: %s" %
                    p.stderr.decode(errors="replace").strip())
    try:
        os.chown(d, st.st_uid, st.st_gid)
        os.chmod(d, st.st_mode & 0o7777)
        subprocess.run(["cp", "-a", keep + "/.", d], check=True)
        srv.start()
        yield d
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", d])
        shutil.rmtree(keep, ignore_errors=True)


def test_row_smtp_disk_nearly_full_at_mail_452_431(make_server):
    """INV-D5: less than 64 MiB (or 1000 inodes) left: refused at MAIL,
    before any byte is sent."""
    srv = make_server(start=False)
    with tmpfs_data_dir(srv, "size=16m,mode=0755"):
        mark = srv.log_mark()
        c = smtp_ehlo(srv.smtp_port)
        r = c.cmd("MAIL FROM:<a@remote.example>")
        assert r == "452 4.3.1 Insufficient system storage", r
        c.close()
        srv.wait_log(refused("smtp") + r"disk nearly full \(ENOSPC soon\): "
                     r"\d+ bytes free under data_dir, 67108864 needed",
                     since=mark)


def test_row_smtp_disk_full_during_data_452_431(make_server):
    """The disk fills between MAIL and the end of DATA: ENOSPC while
    writing, 452 4.3.1, nothing stored (INV-D1)."""
    srv = make_server(start=False)
    with tmpfs_data_dir(srv, "size=66m,mode=0755") as d:
        c = smtp_ehlo(srv.smtp_port)
        assert c.cmd("MAIL FROM:<a@remote.example>").startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        # another program fills the disk now. Unbuffered: a buffered
        # file keeps what a short write left over and raises ENOSPC again
        # when the with block closes it, outside this try.
        with open(os.path.join(d, "filler"), "wb", buffering=0) as f:
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        try:
            mark = srv.log_mark()
            r = c.cmd("DATA")
            if r.startswith("354"):
                c.send(b"Subject: x\r\n\r\n" +
                       (b"w" * 70 + b"\r\n") * 2000 + b".\r\n")
                r = c.reply_line()
            assert r == "452 4.3.1 Insufficient system storage", r
            srv.wait_log(refused("smtp") + r"disk full \(ENOSPC\): ",
                         since=mark)
            assert srv.stored_messages() == []
        finally:
            c.close()
            os.unlink(os.path.join(d, "filler"))


# -- IMAP rows -----------------------------------------------------------------------

def imap_raw(srv, tls=False):
    """A raw IMAP connection (greeting read): (socket file, greeting)."""
    s = socket.create_connection(("127.0.0.1", srv.imaps_port if tls
                                  else srv.imap_port), timeout=10)
    if tls:
        s = srv.ctx().wrap_socket(s, server_hostname="localhost")
    f = s.makefile("rwb", buffering=0)
    return s, f, f.readline().decode()


def imap_cmd(f, tag, text):
    """Sends one command; returns (untagged lines, tagged line)."""
    f.write(("%s %s\r\n" % (tag, text)).encode())
    lines = []
    while True:
        ln = f.readline().decode()
        assert ln, "connection closed after %r" % lines
        ln = ln.rstrip("\r\n")
        if ln.startswith(tag + " "):
            return lines, ln
        lines.append(ln)


def imap_login(srv, user=ALICE, pw=ALICE_PW, tls=False):
    s, f, greeting = imap_raw(srv, tls)
    assert greeting.startswith("* OK"), greeting
    _, r = imap_cmd(f, "a1", 'LOGIN "%s" "%s"' % (user, pw))
    assert r.startswith("a1 OK"), r
    return s, f


def test_row_imap_wrong_password_authenticationfailed(shared_server):
    """Thunderbird "Login to server ... failed"; Outlook "Your IMAP server
    wants to alert you to the following: Authentication failed"; Apple
    Mail asks for the password again."""
    srv = shared_server
    mark = srv.log_mark()
    s, f, _ = imap_raw(srv)
    _, r = imap_cmd(f, "a1", 'LOGIN "%s" "not-the-password"' % ALICE)
    assert r == "a1 NO [AUTHENTICATIONFAILED] Authentication failed.", r
    s.close()
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=imap cause=wrong password mech=LOGIN",
                 since=mark)


def test_row_imap_logindisabled_plaintext_before_tls(make_server):
    """plaintext_auth = no and a client set to "Connection security: None":
    CAPABILITY says LOGINDISABLED (Thunderbird then reports that the
    server does not support the selected authentication method) and a
    LOGIN sent anyway is refused; after STARTTLS the same LOGIN works."""
    srv = make_server(overrides={"plaintext_auth": "no"})
    mark = srv.log_mark()
    s, f, greeting = imap_raw(srv)
    caps, r = imap_cmd(f, "a1", "CAPABILITY")
    assert r.startswith("a1 OK"), r
    assert "LOGINDISABLED" in caps[0].split(), caps
    assert "STARTTLS" in caps[0].split(), caps
    _, r = imap_cmd(f, "a2", 'LOGIN "%s" "%s"' % (ALICE, ALICE_PW))
    assert r.startswith("a2 NO [PRIVACYREQUIRED] Plaintext authentication "
                        "requires TLS"), r
    s.close()
    srv.wait_log(refused("imap") + r"plaintext login without TLS",
                 since=mark)
    # the fix: STARTTLS (or port 993), then the same login
    s, f, _ = imap_raw(srv)
    _, r = imap_cmd(f, "b1", "STARTTLS")
    assert r.startswith("b1 OK"), r
    s = srv.ctx().wrap_socket(s, server_hostname="localhost")
    f = s.makefile("rwb", buffering=0)
    _, r = imap_cmd(f, "b2", 'LOGIN "%s" "%s"' % (ALICE, ALICE_PW))
    assert r.startswith("b2 OK"), r
    s.close()


def test_row_imap_untrusted_certificate_imaps(shared_server):
    """Thunderbird "Add Security Exception", Apple Mail "Mail can't verify
    the identity of the server", Outlook "The server you are connected to
    is using a security certificate that could not be verified"."""
    srv = shared_server
    mark = srv.log_mark()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded
    err = tls_attempt(srv.imaps_port, ctx)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err), err
    srv.wait_log(refused("imaps") + r"TLS handshake failed: .*unknown ca "
                 r"- the client does not trust the certificate", since=mark)


def test_row_imap_nonexistent_mailbox(shared_server):
    """Thunderbird "The current command did not succeed. The mail server
    for account ... responded: No such mailbox"; Apple Mail "The IMAP
    command SELECT ... failed ... No such mailbox": a folder the client
    remembers was deleted or renamed by another device."""
    srv = shared_server
    s, f = imap_login(srv)
    mark = srv.log_mark()
    _, r = imap_cmd(f, "a2", 'SELECT "Old Projects"')
    assert r == "a2 NO [NONEXISTENT] No such mailbox.", r
    srv.wait_log(refused("imap", ALICE) + r"SELECT: no such folder",
                 since=mark)
    # saving into it (Sent, Drafts, a filter): TRYCREATE tells the client
    # it may create the folder
    mark = srv.log_mark()
    f.write(b'a3 APPEND "Old Projects" {8}\r\n')
    ln = f.readline().decode().rstrip("\r\n")
    if ln.startswith("+"):
        f.write(b"x: y\r\n\r\n\r\n")
        ln = f.readline().decode().rstrip("\r\n")
    assert ln.startswith("a3 NO [TRYCREATE] "), ln
    srv.wait_log(refused("imap", ALICE) + r"APPEND to a missing mailbox",
                 since=mark)
    s.close()



@pytest.mark.parametrize("lines", [3000, 3])
def test_row_imap_overquota_append(make_server, lines):
    """The disk of data_dir is full: APPEND (saving to Sent or Drafts, a
    copy, a move from another account) is refused with [OVERQUOTA]:
    Thunderbird "...but a copy was not placed in your sent folder",
    Outlook "Your IMAP server wants to alert you to the following: Out of
    space", Apple Mail "The IMAP command APPEND failed"."""
    srv = make_server(start=False)
    with tmpfs_data_dir(srv, "size=66m,mode=0755") as d:
        s, f = imap_login(srv)
        with open(os.path.join(d, "filler"), "wb", buffering=0) as fill:
            chunk = b"\0" * (1 << 20)
            try:
                while True:
                    fill.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        try:
            mark = srv.log_mark()
            body = b"Subject: big\r\n\r\n" + (b"w" * 70 + b"\r\n") * lines
            f.write(b"a2 APPEND INBOX {%d}\r\n" % len(body))
            ln = f.readline().decode().rstrip("\r\n")
            if ln.startswith("+"):
                f.write(body + b"\r\n")
                ln = f.readline().decode().rstrip("\r\n")
            assert ln == "a2 NO [OVERQUOTA] Out of space.", ln
            srv.wait_log(refused("imap", ALICE) +
                         r"APPEND: write: No space left on device", since=mark)
            assert srv.stored_messages() == []
        finally:
            s.close()
            os.unlink(os.path.join(d, "filler"))
