"""CAPA (RFC 2449), STLS (RFC 2595), POP3S, and the STLS plaintext
injection class of bugs (CVE-2011-0411; INV-S1)."""

import poplib
import ssl
import warnings

import pytest

from conftest import ALICE, ALICE_PW
from pop3util import Pop3Conn, ServerClosed, plain_ir

BASE_CAPS = {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
             "IMPLEMENTATION"}


def capnames(lines):
    return {ln.split()[0].upper(): ln for ln in lines}


def check_sasl(line):
    mechs = line.split()[1:]
    assert "PLAIN" in mechs and "LOGIN" in mechs, line


def test_capa_plain_port_before_login(shared_server):
    with shared_server.connect() as c:
        caps = capnames(c.capa())
    for name in BASE_CAPS | {"USER", "SASL", "STLS"}:
        assert name in caps, (name, caps)
    check_sasl(caps["SASL"])
    assert caps["IMPLEMENTATION"].split(None, 1)[1].startswith("postd")


def test_capa_lines_are_well_formed(shared_server):
    """RFC 2449: each capability line is a tag and optional arguments of
    printable ASCII; the list ends with "." and nothing follows."""
    with shared_server.connect() as c:
        lines = c.capa()
        assert lines, "empty CAPA"
        for ln in lines:
            assert ln and ln == ln.strip() and all(
                0x20 <= ord(ch) < 0x7f for ch in ln), repr(ln)
        assert c.nothing_pending()
        assert c.cmd("NOOP").startswith("-ERR")  # NOOP needs TRANSACTION


def test_capa_after_login(shared_server):
    with shared_server.connect() as c:
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        caps = capnames(c.capa())
        for name in BASE_CAPS:
            assert name in caps, (name, caps)
        c.cmd("QUIT")


def test_capa_after_login_has_no_stls(shared_server):
    """RFC 2595 section 4: STLS is only permitted in the AUTHORIZATION
    state, so it must not be advertised (or accepted) after login."""
    with shared_server.connect() as c:
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        caps = capnames(c.capa())
        assert "STLS" not in caps, caps
        assert c.cmd("STLS").startswith("-ERR")
        assert c.cmd("STAT").startswith("+OK")
        c.cmd("QUIT")


def test_capa_pop3s(shared_server):
    with shared_server.connect(tls=True) as c:
        assert c.greeting.startswith("+OK")
        caps = capnames(c.capa())
        for name in BASE_CAPS | {"USER", "SASL"}:
            assert name in caps, (name, caps)
        assert "STLS" not in caps
        assert c.cmd("STLS").startswith("-ERR")
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_stls_with_poplib(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=10)
    assert "STLS" in p.capa()
    assert p.stls(srv.ctx()).startswith(b"+OK")
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = p.capa()
    assert "STLS" not in caps, caps  # RFC 2595: not offered after TLS
    assert "USER" in caps and "SASL" in caps
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    assert p.stat()[0] >= 0
    p.quit()
    srv.wait_log(r"login user=alice@example\.org .*tls=TLSv1\.[23]",
                 since=mark)


def test_stls_twice_refused(shared_server):
    with shared_server.connect() as c:
        assert c.cmd("STLS").startswith("+OK")
        c.starttls(shared_server.ctx())
        assert c.cmd("STLS").startswith("-ERR")
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_stls_with_argument_refused(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("STLS now")
        assert r.startswith("-ERR"), r
        # still plaintext and usable
        assert "STLS" in capnames(c.capa())


def test_pop3s_with_poplib(shared_server):
    srv = shared_server
    p = poplib.POP3_SSL("127.0.0.1", srv.pop3s_port, context=srv.ctx(),
                        timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.user(ALICE)
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    p.stat()
    p.quit()


def test_pop3s_certificate_verifies_for_localhost(shared_server):
    ctx = shared_server.ctx()
    with Pop3Conn(shared_server.pop3s_port, tls_ctx=ctx,
                  server_hostname="localhost") as c:
        assert c.greeting.startswith("+OK")
        cert = c.sock.getpeercert()
        assert ("DNS", "localhost") in cert["subjectAltName"]


def test_pop3s_plaintext_client_gets_no_pop3(shared_server):
    """A plaintext client on the implicit-TLS port gets no POP3 greeting
    (and the server survives it)."""
    import socket
    s = socket.create_connection(("127.0.0.1", shared_server.pop3s_port),
                                 timeout=5)
    s.sendall(b"CAPA\r\n")
    s.settimeout(5)
    try:
        data = s.recv(100)
    except (socket.timeout, ConnectionResetError):
        data = b""
    s.close()
    assert not data.startswith(b"+OK"), data
    with shared_server.connect(tls=True) as c:
        assert c.greeting.startswith("+OK")


# -- STLS injection (CVE-2011-0411 class, INV-S1) --------------------------------

def after_tls(c, command):
    """Sends command over the new TLS layer and returns the reply, or None
    if the server closed the connection instead (a server may refuse
    pipelined plaintext after STLS by disconnecting, which is safe)."""
    try:
        return c.cmd(command)
    except (ServerClosed, ssl.SSLError, ConnectionError):
        return None


def test_inv_s1_stls_injection_capa(shared_server):
    srv = shared_server
    c = srv.connect()
    c.send(b"STLS\r\nCAPA\r\n")  # one write: CAPA is plaintext injected
    r = c.readline_exact_unbuffered()
    assert r.startswith(b"+OK"), r
    try:
        c.starttls(srv.ctx())
    except (ssl.SSLError, ConnectionError):
        c.close()
        return  # refused the pipelined bytes by closing: safe
    # The first bytes over TLS must answer what we send after the
    # handshake, so send a command with a distinct reply.
    r = after_tls(c, "XNOSUCHCMD")
    if r is not None:
        assert r.startswith("-ERR"), \
            "the injected CAPA was answered over TLS: %r" % r
        assert c.cmd("NOOP").startswith("-ERR")  # AUTHORIZATION: not valid
        assert c.nothing_pending()
    c.close()


def test_inv_s1_stls_injection_user_forgotten(shared_server):
    """USER sent in plaintext (injected with STLS, or before it) is
    forgotten after TLS: PASS must not complete a login for it."""
    srv = shared_server
    c = srv.connect()
    c.send(("STLS\r\nUSER %s\r\n" % ALICE).encode())
    r = c.readline_exact_unbuffered()
    assert r.startswith(b"+OK"), r
    c.starttls(srv.ctx())
    r = after_tls(c, "PASS " + ALICE_PW)
    if r is not None:
        assert r.startswith("-ERR"), r
        assert c.cmd("STAT").startswith("-ERR")
    c.close()

    # USER, then STLS: if the server accepts STLS here, it must forget USER
    c = srv.connect()
    assert c.cmd("USER " + ALICE).startswith("+OK")
    r = c.cmd("STLS")
    if r.startswith("+OK"):
        c.starttls(srv.ctx())
        r = c.cmd("PASS " + ALICE_PW)
        assert r.startswith("-ERR"), r
    else:
        assert r.startswith("-ERR"), r
    c.close()


def test_inv_s1_stls_injection_auth(shared_server):
    srv = shared_server
    c = srv.connect()
    c.send(("STLS\r\nAUTH PLAIN %s\r\n" % plain_ir(ALICE, ALICE_PW)).encode())
    r = c.readline_exact_unbuffered()
    assert r.startswith(b"+OK"), r
    c.starttls(srv.ctx())
    # Had the injected AUTH been run, STAT would now succeed.
    r = after_tls(c, "STAT")
    assert r is None or r.startswith("-ERR"), r
    c.close()


def test_stls_plaintext_after_reply_not_echoed(shared_server):
    """Nothing but the +OK line may come in plaintext after STLS."""
    srv = shared_server
    c = srv.connect()
    c.send(b"STLS\r\nCAPA\r\nCAPA\r\n")
    r = c.readline_exact_unbuffered()
    assert r.startswith(b"+OK")
    c.sock.settimeout(0.5)
    try:
        extra = c.sock.recv(100, 0x2)  # MSG_PEEK
    except (OSError, ssl.SSLError):
        extra = b""
    c.sock.settimeout(10)
    # The server may only send its TLS handshake after ClientHello, so
    # nothing at all may be waiting here.
    assert extra == b"", extra
    c.starttls(srv.ctx())
    r = after_tls(c, "XNOSUCHCMD")
    assert r is None or r.startswith("-ERR"), r
    c.close()


@pytest.mark.parametrize("proto", ["TLSv1", "TLSv1_1"])
def test_old_tls_versions_refused(shared_server, proto):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(shared_server.ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ver = getattr(ssl.TLSVersion, proto)
        try:
            ctx.minimum_version = ver
            ctx.maximum_version = ver
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pytest.skip("client cannot offer " + proto)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        Pop3Conn(shared_server.pop3s_port, tls_ctx=ctx)
    with shared_server.connect(tls=True) as c:
        assert c.greeting.startswith("+OK")
