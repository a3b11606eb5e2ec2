"""The PROXY protocol (postd.conf(5) proxy_protocol.NAME, proxy_trusted):
behind a load balancer, the client address its header carries is the
peer everywhere (the log, the auth tarpit, the per-peer connection cap,
plaintext_auth = loopback, the Received field); a header from outside
proxy_trusted, a malformed one and a slow one are refused and logged."""

import socket
import subprocess
import time

import pytest

import pop3util
import proxyutil
from conftest import ALICE, ALICE_PW, POSTD, free_port, running_server
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


def test_v2_crc32c_checked(proxied):
    """A header with a PP2_TYPE_CRC32C TLV: taken when the checksum
    matches, refused like any malformed header when it does not."""
    assert proxyutil.crc32c(b"123456789") == 0xE3069283
    mark = proxied.log_mark()
    with proxyutil.pop3(proxied.pop3_port,
                        proxyutil.v2_crc32c("198.51.100.33")) as c:
        assert c.greeting.startswith("+OK"), c.greeting
        c.cmd("QUIT")
    proxied.wait_log(r"proxied peer=198\.51\.100\.33 session=\S+ proto=pop3 "
                     r"via=127\.0\.0\.1", since=mark)
    mark = proxied.log_mark()
    got = proxyutil.closed_without_greeting(
        proxied.pop3_port, proxyutil.v2_crc32c("198.51.100.34", corrupt=True))
    assert got == b"", got
    proxied.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=pop3 "
                     r"user=- cause=malformed PROXY header: PROXY v2 CRC32C "
                     r"checksum mismatch", since=mark)
    assert "198.51.100.34" not in proxied.log_since(mark)


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
    ({"proxy_protocol.imap": "yes", "proxy_trusted": "127.0.0.1"},
     "proxy_protocol.imap: not supported on imap"),
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


# --------------------------------------------------------------------------
# proxy_protocol.http: autoconfig and /healthz behind the balancer
# --------------------------------------------------------------------------

HEALTHZ = "/healthz"
AUTOCONFIG = "/mail/config-v1.1.xml?emailaddress=alice%40example.org"


def http_proxied_server(make_server, **extra):
    port = free_port()
    overrides = {
        "listen.http": "127.0.0.1:%d" % port,
        "proxy_protocol.http": "yes",
        "proxy_trusted": "127.0.0.1",
        "proxy_protocol_timeout": "1s",
        "max_connections_per_peer": "2",
        "log_level": "debug",
    }
    overrides.update(extra)
    srv = make_server(overrides=overrides, start=False)
    srv.http_port = port
    srv.start(wait=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            if http_get(srv, proxyutil.v2_local(), HEALTHZ, timeout=3)[0] \
                    == 200:
                return srv
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("listen.http not answering; log:\n" +
                        srv.log()[-3000:])
        time.sleep(0.05)


@pytest.fixture(scope="module")
def proxied_http(make_server_module):
    return http_proxied_server(make_server_module)


@pytest.fixture(scope="module")
def make_server_module(tls_files):
    import contextlib
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(running_server(tls_files,
                                                              **kw))


def http_get(srv, header, path, pieces=1, timeout=10.0):
    """header, then a GET of path, on one fresh connection (the header in
    `pieces` separate sends); returns (status or None, everything read)."""
    s = socket.create_connection(("127.0.0.1", srv.http_port),
                                 timeout=timeout)
    try:
        step = max(1, -(-len(header) // pieces))
        try:
            for i in range(0, len(header), step):
                s.sendall(header[i:i + step])
                if pieces > 1:
                    time.sleep(0.05)
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n"
                       "Connection: close\r\n\r\n" % path).encode())
        except (BrokenPipeError, ConnectionResetError):
            # A refusing server may close before the request is written;
            # what it sent (nothing, for a refusal) is still read below.
            pass
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    status = None
    if got.startswith(b"HTTP/1.1 "):
        status = int(got.split(b" ", 2)[1])
    return status, got


@pytest.mark.parametrize("make_header", [proxyutil.v1, proxyutil.v2],
                         ids=["v1", "v2"])
@pytest.mark.parametrize("path", [HEALTHZ, AUTOCONFIG],
                         ids=["healthz", "autoconfig"])
def test_http_carried_address_is_the_peer(proxied_http, make_header, path):
    mark = proxied_http.log_mark()
    status, got = http_get(proxied_http, make_header("203.0.113.9",
                                                     dport=80), path)
    assert status == 200, got
    if path == AUTOCONFIG:
        assert b"<clientConfig" in got, got
    logged = path.split("?")[0].replace(".", r"\.")
    proxied_http.wait_log(r"proxied peer=203\.0\.113\.9 session=- "
                          r"proto=http via=127\.0\.0\.1 ", since=mark)
    proxied_http.wait_log(r"http: peer=203\.0\.113\.9 method=GET "
                          r"path=%s status=200 " % logged, since=mark)
    assert "http: peer=127.0.0.1 " not in proxied_http.log_since(mark)


def test_http_header_in_pieces_then_request(proxied_http):
    """The header may trickle in; nothing of it reaches evhttp."""
    mark = proxied_http.log_mark()
    status, got = http_get(proxied_http, proxyutil.v2("2001:db8::9", dst="::1"),
                           HEALTHZ, pieces=4)
    assert status == 200, got
    proxied_http.wait_log(r"http: peer=2001:db8::9 method=GET "
                          r"path=/healthz status=200 ", since=mark)


def test_http_local_header_keeps_the_balancer(proxied_http):
    """HAProxy's own health check (send-proxy-v2 + check-send-proxy) sends
    a LOCAL header: served, as the balancer."""
    mark = proxied_http.log_mark()
    status, got = http_get(proxied_http, proxyutil.v2_local(), HEALTHZ)
    assert status == 200, got
    proxied_http.wait_log(r"http: peer=127\.0\.0\.1 method=GET "
                          r"path=/healthz status=200 ", since=mark)


def test_http_without_header_refused_and_logged(proxied_http):
    """A request with no header is not served as the balancer's."""
    mark = proxied_http.log_mark()
    status, got = http_get(proxied_http, b"", HEALTHZ)
    assert got == b"", got
    proxied_http.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=http "
                          r"user=- cause=malformed PROXY header: no PROXY "
                          r"protocol header", since=mark)
    assert "path=/healthz status=200" not in proxied_http.log_since(mark)


def test_http_slow_header_refused_and_logged(proxied_http):
    mark = proxied_http.log_mark()
    start = time.monotonic()
    got = proxyutil.closed_without_greeting(proxied_http.http_port,
                                            b"PROXY TCP4 ", timeout=6)
    assert got == b"", got
    assert time.monotonic() - start >= 0.9
    proxied_http.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=http "
                          r"user=- cause=no complete PROXY header within 1s "
                          r"\(11 bytes received\)", since=mark)


def test_http_per_peer_cap_counts_the_carried_client(proxied_http):
    """max_connections_per_peer = 2 applies to each client behind the
    balancer, not to the balancer."""
    mark = proxied_http.log_mark()
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1",
                                          proxied_http.http_port), timeout=10)
            s.sendall(proxyutil.v1("198.51.100.7"))
            held.append(s)
        deadline = time.monotonic() + 5
        while proxied_http.log_since(mark).count(
                "proxied peer=198.51.100.7 ") < 2:
            assert time.monotonic() < deadline, proxied_http.log_since(mark)
            time.sleep(0.05)
        status, got = http_get(proxied_http, proxyutil.v1("198.51.100.7"),
                               HEALTHZ)
        assert status == 503, got
        status, got = http_get(proxied_http, proxyutil.v1("198.51.100.8"),
                               HEALTHZ)
        assert status == 200, got
    finally:
        for s in held:
            s.close()
    proxied_http.wait_log(r"refused peer=198\.51\.100\.7 session=- "
                          r"proto=http user=- cause=too many connections "
                          r"from 198\.51\.100\.7", since=mark)


def test_http_untrusted_sender_refused_and_logged(make_server):
    """A header is believed only from proxy_trusted: any other peer is
    refused before a byte is read, header or not."""
    port = free_port()
    srv = make_server(overrides={"proxy_protocol.http": "yes",
                                 "proxy_trusted": "192.0.2.1",
                                 "listen.http": "127.0.0.1:%d" % port},
                      start=False)
    srv.http_port = port
    srv.start(wait=False)
    deadline = time.monotonic() + 15
    while "refused peer=127.0.0.1 session=- proto=http" not in srv.log():
        assert time.monotonic() < deadline, srv.log()[-3000:]
        try:
            http_get(srv, proxyutil.v1("203.0.113.9"), HEALTHZ, timeout=3)
        except OSError:
            time.sleep(0.1)
    status, got = http_get(srv, proxyutil.v1("203.0.113.9"), HEALTHZ)
    assert got == b"", got
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=http user=- "
                 r"cause=connection from outside proxy_trusted to a PROXY "
                 r"protocol listener")
    assert "203.0.113.9" not in srv.log()
