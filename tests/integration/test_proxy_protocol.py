"""The PROXY protocol (postd.conf(5) proxy_protocol.NAME, proxy_trusted):
behind a load balancer, the client address its header carries is the
peer everywhere (the log, the auth tarpit, the per-peer connection cap,
plaintext_auth = loopback, the Received field); a header from outside
proxy_trusted, a malformed one and a slow one are refused and logged."""

import subprocess
import time

import pytest

import pop3util
import proxyutil
from conftest import ALICE, ALICE_PW, POSTD, running_server
from smtputil import data_wire

PROXIED = {
    "proxy_protocol.pop3": "yes",
    "proxy_protocol.pop3s": "yes",
    "proxy_protocol.smtp": "yes",
    "proxy_trusted": "192.0.2.1, 127.0.0.0/8",
    "proxy_protocol_timeout": "1s",
    "auth_failure_delay": "50ms",
    "max_connections_per_peer": "2",
}


@pytest.fixture(scope="module")
def proxied(tls_files):
    with running_server(tls_files, PROXIED, start=False) as srv:
        srv.start(wait=False)
        proxyutil.wait_proxied_pop3(srv)
        yield srv


def test_v1_client_address_in_log_and_tarpit(proxied):
    """The carried address is the session's peer: the log line names it
    with the balancer, the login refusal and the tarpit count it."""
    mark = proxied.log_mark()
    with proxyutil.pop3(proxied.pop3s_port, proxyutil.v1("203.0.113.5"),
                        tls_ctx=proxied.ctx()) as c:
        assert c.greeting.startswith("+OK"), c.greeting
        assert c.login(ALICE, "wrong-password").startswith("-ERR")
        c.cmd("QUIT")
    proxied.wait_log(r"proxied peer=203\.0\.113\.5 session=\S+ proto=pop3s "
                     r"via=127\.0\.0\.1 \(peer 203\.0\.113\.5 via proxy "
                     r"127\.0\.0\.1\)", since=mark)
    proxied.wait_log(r"auth failed user=alice@example\.org "
                     r"peer=203\.0\.113\.5 session=\S+ proto=pop3s", since=mark)
    proxied.wait_log(r"tarpit peer=203\.0\.113\.5 failures=1 ", since=mark)
    assert "tarpit peer=127.0.0.1" not in proxied.log_since(mark)


def test_per_peer_cap_counts_the_carried_client(proxied):
    """max_connections_per_peer = 2 applies to each client behind the
    balancer, not to the balancer: counted at the accept, every client
    would share 127.0.0.1's two connections."""
    mark = proxied.log_mark()
    port = proxied.pop3_port
    a1 = proxyutil.pop3(port, proxyutil.v1("198.51.100.7"))
    a2 = proxyutil.pop3(port, proxyutil.v2("198.51.100.7"))
    try:
        assert a1.greeting.startswith("+OK") and a2.greeting.startswith("+OK")
        with proxyutil.pop3(port, proxyutil.v1("198.51.100.7")) as a3:
            assert a3.greeting.startswith("-ERR [SYS/TEMP]"), a3.greeting
        with proxyutil.pop3(port, proxyutil.v1("198.51.100.8")) as b:
            assert b.greeting.startswith("+OK"), b.greeting
            b.cmd("QUIT")
    finally:
        a1.close()
        a2.close()
    proxied.wait_log(r"refused peer=198\.51\.100\.7 session=- proto=pop3 "
                     r"user=- cause=too many connections from "
                     r"198\.51\.100\.7", since=mark)


def test_v2_smtp_received_field_names_the_client(proxied):
    proxied.clear_mailbox()
    header = proxyutil.v2("192.0.2.77", sport=51515, dport=25)
    with proxyutil.smtp(proxied.smtp_port, header) as c:
        assert c.greeting[0] == 220, c.greeting
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<x@example.net>").startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(data_wire(b"Subject: proxied\r\n\r\nbody\r\n"))
        assert c.reply()[0] == 250
        c.cmd("QUIT")
    names = proxied.stored_messages()
    assert len(names) == 1, names
    with open("%s/%s" % (proxied.maildir(), names[0]), "rb") as f:
        text = f.read().decode("latin-1")
    assert "Received: from client.example ([192.0.2.77])" in text, text[:600]
    assert "127.0.0.1" not in text.split("\n\n")[0], text[:600]


def test_pop3s_header_comes_before_the_tls_handshake(proxied):
    mark = proxied.log_mark()
    header = proxyutil.v2("2001:db8::42", dst="::1", dport=995)
    with proxyutil.pop3(proxied.pop3s_port, header,
                        tls_ctx=proxied.ctx()) as c:
        assert c.greeting.startswith("+OK"), c.greeting
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")
    proxied.wait_log(r"proxied peer=2001:db8::42 session=\S+ proto=pop3s "
                     r"via=127\.0\.0\.1", since=mark)
    proxied.wait_log(r"login user=alice@example\.org peer=2001:db8::42 ",
                     since=mark)


def test_plaintext_auth_loopback_goes_by_the_carried_address(proxied):
    """plaintext_auth = loopback (the default): the balancer's socket is
    on loopback, but a remote client behind it must not send a password
    in clear; a client on the balancer's own machine may."""
    with proxyutil.pop3(proxied.pop3_port, proxyutil.v1("203.0.113.9")) as c:
        r = c.cmd("USER " + ALICE)
        assert r.startswith("-ERR [AUTH] Plaintext authentication requires "
                            "TLS"), r
        c.cmd("QUIT")
    with proxyutil.pop3(proxied.pop3_port, proxyutil.v1("127.0.0.9")) as c:
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_local_header_keeps_the_socket_peer(proxied):
    """v2 LOCAL is the balancer's own connection (a health check)."""
    mark = proxied.log_mark()
    with proxyutil.pop3(proxied.pop3_port, proxyutil.v2_local()) as c:
        assert c.greeting.startswith("+OK"), c.greeting
        assert c.login(ALICE, "wrong-password").startswith("-ERR")
        c.cmd("QUIT")
    proxied.wait_log(r"auth failed user=alice@example\.org "
                     r"peer=127\.0\.0\.1 session=\S+ proto=pop3 ", since=mark)
    assert "proxied peer=" not in proxied.log_since(mark)


@pytest.mark.parametrize("data,cause", [
    (b"USER alice\r\n", r"malformed PROXY header: no PROXY protocol header"),
    (b"PROXY TCP4 203.0.113.5 127.0.0.1 99999 110\r\n",
     r"malformed PROXY header: PROXY v1 address or port malformed"),
    (b"PROXY TCP4 " + b"1" * 120, r"malformed PROXY header: PROXY v1 line "
     r"longer than 107 bytes"),
    (proxyutil.V2_SIG + b"\x21\x11\xff\xff",
     r"malformed PROXY header: PROXY v2 header longer than 1024 bytes"),
])
def test_malformed_header_refused_and_logged(proxied, data, cause):
    mark = proxied.log_mark()
    got = proxyutil.closed_without_greeting(proxied.pop3_port, data)
    assert got == b"", got
    proxied.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=pop3 "
                     r"user=- cause=" + cause, since=mark)


@pytest.mark.parametrize("data", [
    b"", b"PROXY TCP4 203.0.113.5 ", proxyutil.v2("203.0.113.5")[:20]])
def test_slow_header_refused_and_logged(proxied, data):
    """A header not complete within proxy_protocol_timeout (1s here) is
    refused, even though bytes keep trickling in."""
    mark = proxied.log_mark()
    start = time.monotonic()
    got = proxyutil.closed_without_greeting(proxied.pop3_port, data,
                                            timeout=6)
    assert got == b"", got
    assert time.monotonic() - start >= 0.9
    proxied.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=pop3 "
                     r"user=- cause=no complete PROXY header within 1s "
                     r"\(%d bytes received\)" % len(data), since=mark)


def test_a_listener_without_proxy_protocol_is_unchanged(proxied):
    """submission has no proxy_protocol.submission: a header there is not
    taken as one (it is a command, refused by SMTP)."""
    from smtputil import SmtpConn
    with SmtpConn(proxied.submission_port) as c:
        assert c.greeting[0] == 220
        r = c.cmd("PROXY TCP4 203.0.113.5 127.0.0.1 1 2")
        assert r.startswith("5"), r


def test_untrusted_sender_refused_and_logged(make_server):
    """A header is believed only from proxy_trusted: any other peer is
    refused before a byte is read, header or not."""
    srv = make_server(overrides=dict(PROXIED, proxy_trusted="192.0.2.1"),
                      start=False)
    srv.start(wait=False)
    mark = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if "refused peer=127.0.0.1 session=- proto=pop3" in srv.log():
            break
        try:
            proxyutil.closed_without_greeting(srv.pop3_port,
                                              proxyutil.v1("203.0.113.5"))
        except OSError:
            time.sleep(0.1)
    got = proxyutil.closed_without_greeting(srv.pop3_port,
                                            proxyutil.v1("203.0.113.5"))
    assert got == b"", got
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=pop3 user=- "
                 r"cause=connection from outside proxy_trusted to a PROXY "
                 r"protocol listener", since=mark)
    assert "203.0.113.5" not in srv.log()


@pytest.mark.parametrize("overrides,message", [
    ({"proxy_protocol.pop3": "yes"},
     "proxy_protocol.pop3 = yes needs proxy_trusted"),
    ({"proxy_protocol.http": "yes", "proxy_trusted": "127.0.0.1"},
     "proxy_protocol.http: not supported on http"),
    ({"proxy_protocol.pop3": "yes", "proxy_trusted": "127.0.0.1/33"},
     "proxy_trusted: '127.0.0.1/33' is not a network"),
    ({"proxy_protocol.pop3": "maybe", "proxy_trusted": "127.0.0.1"},
     "proxy_protocol.pop3: 'maybe' is not yes or no"),
])
def test_config_check_refuses(make_server, overrides, message):
    srv = make_server(overrides=overrides, users={}, start=False)
    p = subprocess.run([POSTD, "-t", "-c", srv.conf], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0, p.stdout
    assert message in p.stderr, p.stderr


def test_reload_finishes_a_header_being_read(make_server):
    """A SIGHUP retires the workers; a connection whose PROXY header had
    begun to arrive is still served by its old worker, not dropped."""
    srv = make_server(overrides=dict(PROXIED, proxy_protocol_timeout="10s"),
                      start=False)
    srv.start(wait=False)
    proxyutil.wait_proxied_pop3(srv)
    header = proxyutil.v1("203.0.113.77")
    c = pop3util.Pop3Conn(srv.pop3_port, greeting=False)
    try:
        c.sock.sendall(header[:10])
        time.sleep(0.3)  # the worker has taken it and is reading
        mark = srv.log_mark()
        srv.hup()
        srv.wait_log(r"started generation 2", since=mark)
        time.sleep(0.5)  # the old generation has stopped accepting
        c.sock.sendall(header[10:])
        greeting = c.line()
        assert greeting.startswith("+OK"), greeting
        c.cmd("QUIT")
    finally:
        c.close()
    srv.wait_log(r"proxied peer=203\.0\.113\.77 ", since=mark)
