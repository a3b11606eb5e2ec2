"""listen.http: Thunderbird autoconfig, Outlook Autodiscover, /metrics and
/healthz against the real daemon, and hostile HTTP clients.

Some /metrics assertions rely on counters that the POP3 and SMTP code
maintain (logins, RETR, messages received, POP3 session gauges); they are
in separate tests (test_metrics_*) so that each failure names its counter.
"""

import http.client
import os
import re
import smtplib
import socket
import stat
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN, REFERENCE, free_port
from pop3util import simple_msg

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot",
                                reason="postd's own HTTP listener")

AD_REQ_NS = ("http://schemas.microsoft.com/exchange/autodiscover/outlook/"
             "requestschema/2006")
AD_SCHEMA = ("http://schemas.microsoft.com/exchange/autodiscover/outlook/"
             "responseschema/2006a")
AD_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"


def outlook_request(email, schema=AD_SCHEMA):
    return ('<?xml version="1.0" encoding="utf-8"?>\r\n'
            '<Autodiscover xmlns="%s">\r\n'
            '  <Request>\r\n'
            '    <EMailAddress>%s</EMailAddress>\r\n'
            '    <AcceptableResponseSchema>%s</AcceptableResponseSchema>\r\n'
            '  </Request>\r\n'
            '</Autodiscover>\r\n' % (AD_REQ_NS, email, schema)).encode()


def http_server(make_server, **extra):
    port = free_port()
    overrides = {"listen.http": "127.0.0.1:%d" % port}
    overrides.update(extra)
    srv = make_server(overrides=overrides)
    srv.http_port = port
    wait_http(srv)
    return srv


def wait_http(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _, _ = request(srv, "GET", "/healthz")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("listen.http not answering; log:\n" +
                        srv.log()[-3000:])
        time.sleep(0.05)


def request(srv, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def raw(srv, data, timeout=10.0, read=True):
    """Sends bytes on a fresh connection; returns everything the server
    sent until it closed."""
    s = socket.create_connection(("127.0.0.1", srv.http_port),
                                 timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while read:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                # a refusal may close before the request was read
                break
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


def metrics(srv):
    """GET /metrics parsed line by line: {name{labels}: value}, checking the
    text format (0.0.4) as a scraper would."""
    status, headers, body = request(srv, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out, typed = {}, {}
    for line in body.decode().splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            typed[name] = kind
            continue
        m = re.fullmatch(r'([a-z_]+)(\{[a-z]+="[a-z0-9]+"\})? (\d+)', line)
        assert m, "bad metrics line %r" % line
        assert m.group(1) in typed, "no TYPE line for %s" % m.group(1)
        out[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return out


def wait_metric(srv, name, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = metrics(srv).get(name)
        if v == want:
            return
        if time.monotonic() > deadline:
            pytest.fail("%s is %r, want %r" % (name, v, want))
        time.sleep(0.05)


def children(elem):
    return [c.tag for c in elem]


# --------------------------------------------------------------------------
# Thunderbird autoconfig
# --------------------------------------------------------------------------

def imap_ports(srv):
    """(port, socketType) of the IMAP listeners the test config has, best
    first: IMAPS, then IMAP with STARTTLS."""
    items = srv.config_items()
    out = []
    for key, attr, sock in (("listen.imaps", "imaps_port", "SSL"),
                            ("listen.imap", "imap_port", "STARTTLS")):
        port = getattr(srv, attr, None)
        if port is not None and items.get(key) == "127.0.0.1:%d" % port:
            out.append((port, sock))
    return out


def check_thunderbird(srv, doc):
    root = ET.fromstring(doc)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    providers = root.findall("emailProvider")
    assert len(providers) == 1
    p = providers[0]
    assert p.get("id") == DOMAIN
    assert [d.text for d in p.findall("domain")] == [DOMAIN]
    assert p.find("displayName").text
    # Thunderbird's schema order: domains, names, incoming, outgoing.
    tags = children(p)
    assert tags.index("displayName") < tags.index("incomingServer")
    assert max(i for i, t in enumerate(tags) if t == "incomingServer") < \
        tags.index("outgoingServer")
    incoming = p.findall("incomingServer")
    # IMAP first when it is configured (test_imap_autoconfig.py), then POP3
    want_in = [("imap", str(port), sock) for port, sock in imap_ports(srv)]
    want_in += [("pop3", str(srv.pop3s_port), "SSL"),
                ("pop3", str(srv.pop3_port), "STARTTLS")]
    assert [(s.get("type"), s.find("port").text, s.find("socketType").text)
            for s in incoming] == want_in
    for s in incoming:
        assert children(s)[:5] == ["hostname", "port", "socketType",
                                   "username", "authentication"]
        assert s.find("hostname").text == "localhost"
        assert s.find("username").text == "%EMAILADDRESS%"
        assert s.find("authentication").text == "password-cleartext"
        if s.get("type") != "pop3":
            assert s.find("pop3") is None
            continue
        assert s.find("pop3/leaveMessagesOnServer").text in ("true", "false")
        assert s.find("pop3/downloadOnBiff").text == "true"
    outgoing = p.findall("outgoingServer")
    assert [s.get("type") for s in outgoing] == ["smtp", "smtp"]
    want_out = [(str(srv.submissions_port), "SSL"),
                (str(srv.submission_port), "STARTTLS")]
    for s, (port, sock) in zip(outgoing, want_out):
        assert s.find("hostname").text == "localhost"
        assert s.find("port").text == port
        assert s.find("socketType").text == sock
        assert s.find("username").text == "%EMAILADDRESS%"
        assert s.find("authentication").text == "password-cleartext"
    # listen.smtp (port 25 style relay) is not a submission server.
    assert str(srv.smtp_port) not in doc.decode()
    return p


def test_autoconfig_thunderbird(make_server):
    srv = http_server(make_server)
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml",
                 "/mail/config-v1.1.xml",
                 "/mail/config-v1.1.xml?emailaddress=alice%40example.org"):
        status, headers, body = request(srv, "GET", path)
        assert status == 200, path
        assert "xml" in headers["Content-Type"]
        p = check_thunderbird(srv, body)
        # retention is "never" by default: the client downloads the mail
        assert p.find("incomingServer/pop3/leaveMessagesOnServer").text == \
            "false"
        assert p.find("incomingServer/pop3/daysToLeaveMessagesOnServer") \
            is None
    mark = srv.log_mark()
    status, _, _ = request(srv, "GET", "/mail/config-v1.1.xml"
                           "?emailaddress=someone%40elsewhere.example")
    assert status == 404
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*"
                 r"path=/mail/config-v1\.1\.xml status=404 "
                 r"cause=emailaddress not in a local domain", since=mark)


def test_autoconfig_follows_retention(make_server):
    srv = http_server(make_server, retention="10d")
    status, _, body = request(srv, "GET", "/mail/config-v1.1.xml")
    assert status == 200
    p = check_thunderbird(srv, body)
    for s in p.findall("incomingServer[@type='pop3']"):
        assert s.find("pop3/leaveMessagesOnServer").text == "true"
        assert s.find("pop3/daysToLeaveMessagesOnServer").text == "10"


# --------------------------------------------------------------------------
# Outlook Autodiscover
# --------------------------------------------------------------------------

def ad_protocols(body):
    root = ET.fromstring(body)
    assert root.tag == "{%s}Autodiscover" % AD_NS
    resp = root.find("{%s}Response" % AD_SCHEMA)
    assert resp is not None, body
    acct = resp.find("{%s}Account" % AD_SCHEMA)
    assert acct.find("{%s}AccountType" % AD_SCHEMA).text == "email"
    assert acct.find("{%s}Action" % AD_SCHEMA).text == "settings"
    out = []
    for p in acct.findall("{%s}Protocol" % AD_SCHEMA):
        out.append({c.tag.split("}")[1]: c.text for c in p})
    return out


def ad_error(body):
    root = ET.fromstring(body)
    err = root.find("{%s}Response/{%s}Error" % (AD_NS, AD_NS))
    assert err is not None, body
    return int(err.find("{%s}ErrorCode" % AD_NS).text)


def test_autodiscover_round_trip(make_server):
    srv = http_server(make_server)
    for path in ("/autodiscover/autodiscover.xml",
                 "/Autodiscover/Autodiscover.xml"):
        status, headers, body = request(
            srv, "POST", path, body=outlook_request("Alice@Example.org"),
            headers={"Content-Type": "text/xml"})
        assert status == 200
        assert "xml" in headers["Content-Type"]
        protos = ad_protocols(body)
        imap = [p for p in protos if p["Type"] == "IMAP"]
        pop3 = [p for p in protos if p["Type"] == "POP3"]
        smtp = [p for p in protos if p["Type"] == "SMTP"]
        assert protos == imap + pop3 + smtp
        assert [p["Port"] for p in imap] == [str(port) for port, _ in
                                             imap_ports(srv)]
        assert [p["Port"] for p in pop3] == [str(srv.pop3s_port),
                                             str(srv.pop3_port)]
        assert [p["Port"] for p in smtp] == [str(srv.submissions_port),
                                             str(srv.submission_port)]
        encs = [{"SSL": "SSL", "STARTTLS": "TLS"}[sock]
                for _, sock in imap_ports(srv)] + ["SSL", "TLS"] * 2
        for p, enc in zip(imap + pop3 + smtp, encs):
            assert p["Server"] == "localhost"
            assert p["LoginName"] == ALICE
            assert p["SSL"] == "on"
            assert p["Encryption"] == enc
            assert p["SPA"] == "off"
            assert p["AuthRequired"] == "on"


def test_autodiscover_errors(make_server):
    srv = http_server(make_server)
    cases = [
        (b"<Autodiscover><Request>", 600, "unterminated element"),
        (outlook_request("a&amp;b@example.org"), 600, "entity reference"),
        (b'<!DOCTYPE x [<!ENTITY e "a">]>' + outlook_request("&e;"), 600,
         "DOCTYPE"),
        (outlook_request("alice@example.org", "urn:other"), 601,
         "unsupported AcceptableResponseSchema"),
        (outlook_request("not an address"), 600, "invalid EMailAddress"),
        (outlook_request("alice@elsewhere.example"), 500,
         "not in a local domain"),
        (outlook_request("x" * 300 + "@example.org"), 600,
         "EMailAddress too long"),
    ]
    for body, code, cause in cases:
        mark = srv.log_mark()
        status, _, resp = request(srv, "POST",
                                  "/autodiscover/autodiscover.xml", body=body)
        # Exchange's way: HTTP 200, the error inside the document.
        assert status == 200
        assert ad_error(resp) == code, (body, resp)
        srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*"
                     r"path=/autodiscover/autodiscover\.xml status=200 "
                     r"cause=.*" + re.escape(cause), since=mark)
    # GET is not how Autodiscover works
    status, headers, _ = request(srv, "GET", "/autodiscover/autodiscover.xml")
    assert status == 405 and headers["Allow"] == "POST"


# --------------------------------------------------------------------------
# /metrics and /healthz
# --------------------------------------------------------------------------

COUNTERS = ["logins_ok", "logins_failed", "messages_received",
            "messages_delivered", "messages_relayed", "messages_bounced",
            "messages_retrieved", "messages_expired", "bytes_received",
            "bytes_retrieved"]


def test_metrics_format(make_server):
    srv = http_server(make_server)
    m = metrics(srv)
    for c in COUNTERS:
        assert "postd_%s_total" % c in m
    for proto in ("pop3", "pop3s", "smtp", "submission", "submissions",
                  "http", "imap", "imaps"):
        assert 'postd_sessions{protocol="%s"}' % proto in m
    assert m["postd_up"] == 1
    assert m["postd_queue_messages"] == 0
    # the scrape's own connection is an open HTTP session (the previous
    # request's connection may still be closing in another worker)
    assert m['postd_sessions{protocol="http"}'] >= 1
    wait_metric(srv, 'postd_sessions{protocol="http"}', 1)
    status, headers, body = request(srv, "GET", "/healthz")
    assert (status, body) == (200, b"ok\n")


def test_metrics_http_sessions_close(make_server):
    srv = http_server(make_server)
    idle = [socket.create_connection(("127.0.0.1", srv.http_port))
            for _ in range(3)]
    try:
        wait_metric(srv, 'postd_sessions{protocol="http"}', 4)
    finally:
        for s in idle:
            s.close()
    wait_metric(srv, 'postd_sessions{protocol="http"}', 1)


def test_metrics_queue_length(make_server):
    srv = http_server(make_server)
    # Held entries are in the queue too, and the queue runner leaves
    # hold/ alone, so names there stand in for real entries.
    hold = os.path.join(srv.data_dir, "queue", "hold")
    os.makedirs(hold, exist_ok=True)
    assert metrics(srv)["postd_queue_messages"] == 0
    for i in range(2):
        open(os.path.join(hold, "TESTENTRY%d" % i), "w").close()
    try:
        # counted by name; the count is cached for about two seconds
        deadline = time.monotonic() + 6
        while metrics(srv)["postd_queue_messages"] != 2:
            assert time.monotonic() < deadline, "queue length not updated"
            time.sleep(0.2)
    finally:
        for i in range(2):
            os.unlink(os.path.join(hold, "TESTENTRY%d" % i))


def test_metrics_logins_failed_moves(make_server):
    """Depends on the POP3 code counting METRIC_LOGINS_FAILED."""
    srv = http_server(make_server)
    before = metrics(srv)["postd_logins_failed_total"]
    c = srv.connect()
    assert c.login(ALICE, "wrong password").startswith("-ERR")
    c.close()
    wait_metric(srv, "postd_logins_failed_total", before + 1)


def test_metrics_smtp_received_moves(make_server):
    """Depends on the SMTP code counting METRIC_MESSAGES_RECEIVED and
    METRIC_BYTES_RECEIVED."""
    srv = http_server(make_server)
    before = metrics(srv)
    msg = simple_msg("metrics smtp")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as s:
        s.sendmail("sender@example.net", [ALICE],
                   msg.replace(b"\n", b"\r\n"))
    wait_metric(srv, "postd_messages_received_total",
                before["postd_messages_received_total"] + 1)
    after = metrics(srv)
    assert after["postd_bytes_received_total"] >= \
        before["postd_bytes_received_total"] + len(msg)


def test_metrics_pop3_retr_and_sessions_move(make_server):
    """Depends on the POP3 code counting METRIC_LOGINS_OK,
    METRIC_MESSAGES_RETRIEVED, METRIC_BYTES_RETRIEVED and on src/net/conn.c
    counting POP3 sessions."""
    srv = http_server(make_server)
    srv.deliver(ALICE, simple_msg("metrics retr"))
    before = metrics(srv)
    assert before['postd_sessions{protocol="pop3"}'] == 0
    c = srv.login(ALICE, ALICE_PW)
    wait_metric(srv, 'postd_sessions{protocol="pop3"}', 1)
    assert c.cmd("STAT").startswith("+OK 1 ")
    status, lines = c.cmd_multi("RETR 1")
    assert status.startswith("+OK")
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    wait_metric(srv, 'postd_sessions{protocol="pop3"}', 0)
    after = metrics(srv)
    assert after["postd_logins_ok_total"] == before["postd_logins_ok_total"] + 1
    assert after["postd_messages_retrieved_total"] == \
        before["postd_messages_retrieved_total"] + 1
    assert after["postd_bytes_retrieved_total"] > \
        before["postd_bytes_retrieved_total"]


def test_healthz_reports_an_unusable_queue(make_server):
    srv = http_server(make_server)
    queue = os.path.join(srv.data_dir, "queue")
    mode = stat.S_IMODE(os.stat(queue).st_mode)
    os.chmod(queue, 0)
    try:
        if os.geteuid() == 0 and srv.config_items()["user"] == "root":
            pytest.skip("root ignores directory modes")
        mark = srv.log_mark()
        status, _, body = request(srv, "GET", "/healthz")
        assert status == 503
        assert body == b"queue directory not accessible\n"
        srv.wait_log(r"refused .*proto=http .*path=/healthz status=503 "
                     r"cause=queue directory not accessible", since=mark)
    finally:
        os.chmod(queue, mode)
    status, _, body = request(srv, "GET", "/healthz")
    assert (status, body) == (200, b"ok\n")


# --------------------------------------------------------------------------
# Hostile HTTP
# --------------------------------------------------------------------------

def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", resp)
    assert m, "no HTTP status line in %r" % resp[:200]
    return int(m.group(1))


def test_hostile_methods_and_paths(make_server):
    srv = http_server(make_server)
    for method in ("PUT", "DELETE", "OPTIONS", "HEAD", "TRACE"):
        mark = srv.log_mark()
        status, headers, _ = request(srv, method, "/metrics")
        assert status == 405, method
        assert headers.get("Allow") == "GET, POST"
        srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*method=%s "
                     r"path=/metrics status=405 cause=method not allowed"
                     % method, since=mark)
    resp = raw(srv, b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) in (400, 405, 501)
    status, _, _ = request(srv, "POST", "/metrics", body=b"x")
    assert status == 405
    mark = srv.log_mark()
    resp = raw(srv, b"GET /../../etc/passwd\x7f\x1b[2J HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\n\r\n")
    assert status_of(resp) in (400, 404)
    # the log line escapes what the peer sent
    assert "\x1b" not in srv.log_since(mark)
    status, _, _ = request(srv, "GET", "/nothing-here")
    assert status == 404
    srv.wait_log(r"refused .*proto=http .*path=/nothing-here status=404 "
                 r"cause=no such path", since=mark)
    wait_http(srv)


def test_hostile_sizes(make_server):
    srv = http_server(make_server)
    mark = srv.log_mark()
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + \
        b"\r\n\r\n"
    resp = raw(srv, huge)
    assert resp == b"" or status_of(resp) in (400, 413)
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*no complete "
                 r"request", since=mark)
    many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + \
        b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    resp = raw(srv, many)
    assert resp == b"" or status_of(resp) in (400, 413)
    big_body = (b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 1000000\r\n\r\n" + b"<" * 70000)
    try:
        resp = raw(srv, big_body)
    except ConnectionResetError:
        resp = b""
    assert resp == b"" or status_of(resp) == 413
    wait_http(srv)
    wait_metric(srv, 'postd_sessions{protocol="http"}', 1)


def test_hostile_slowloris(make_server):
    srv = http_server(make_server, timeout_preauth="2s")
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    mark = srv.log_mark()
    start = time.monotonic()
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    got = b""
    s.settimeout(0.3)
    try:
        while time.monotonic() - start < 8:
            try:
                s.sendall(b"X-Drip: 1\r\n")
            except OSError:
                break
            try:
                b = s.recv(4096)
                if not b:
                    break
                got += b
            except socket.timeout:
                pass
    finally:
        s.close()
    elapsed = time.monotonic() - start
    assert elapsed < 5, "slowloris connection kept for %.1fs" % elapsed
    assert status_of(got) == 408
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*cause=no "
                 r"complete request within 2s", since=mark)
    # an idle connection that never sends anything goes the same way
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    s.settimeout(6)
    assert status_of(s.recv(4096)) == 408
    s.close()
    wait_http(srv)


def test_http_counts_in_connection_caps(make_server):
    srv = http_server(make_server, max_connections_per_peer="3")
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    idle = []
    try:
        # Connections of the start-up checks may still be counted for a
        # moment: open idle ones until a request is refused, at most 3.
        mark = srv.log_mark()
        for _ in range(4):
            resp = raw(srv, req)
            if resp == b"" or status_of(resp) == 503:
                break
            assert len(idle) < 3, "a 4th HTTP connection was served"
            idle.append(socket.create_connection(
                ("127.0.0.1", srv.http_port)))
            time.sleep(0.2)
        assert resp == b"" or b"Too many connections" in resp
        srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=http "
                     r"user=- cause=too many connections", since=mark)
        # the caps are shared with POP3
        c = srv.connect()
        assert c.greeting.startswith("-ERR")
        c.close()
    finally:
        for s in idle:
            s.close()
    wait_http(srv)


def test_reload_serves_the_new_config(make_server):
    """SIGHUP starts workers with the new config; the HTTP socket is kept,
    and the documents follow at once."""
    srv = http_server(make_server)
    status, _, body = request(srv, "GET", "/mail/config-v1.1.xml")
    assert b"daysToLeaveMessagesOnServer" not in body
    srv.overrides["retention"] = "5d"
    srv.write_config()
    srv.hup()
    deadline = time.monotonic() + 10
    while True:
        status, _, body = request(srv, "GET", "/mail/config-v1.1.xml")
        assert status == 200
        if b"<daysToLeaveMessagesOnServer>5<" in body:
            break
        assert time.monotonic() < deadline, "reload not reflected"
        time.sleep(0.1)
    wait_metric(srv, 'postd_sessions{protocol="http"}', 1)
