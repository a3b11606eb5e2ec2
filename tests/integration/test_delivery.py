"""The queue runner (issue 5): mail for a remote domain, submitted with
AUTH, goes from DATA_DIR/queue to a second SMTP server on loopback
(aiosmtpd), found through a transport map or through MX records served by
a local DNS server (tests/integration/remote.py). Retries, bounces as
RFC 3464 DSNs into the sender's POP3 mailbox, STARTTLS, a smarthost with
AUTH, crash safety (INV-D4)."""

import email
import os
import re
import smtplib
import socket
import ssl
import threading
import time

import pytest

from conftest import ALICE, ALICE_PW, free_port
from smtputil import pop3_fetch_all, queue_entries

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:  # pragma: no cover
    Controller = None

try:
    import remote  # DnsServer / SmtpSink, written alongside dns.c
except ImportError:
    remote = None

pytestmark = pytest.mark.skipif(Controller is None,
                                reason="python3-aiosmtpd missing")

REMOTE_DOMAIN = "remote.example"
FAST = {
    "queue_retry_min": "1s",
    "queue_retry_max": "2s",
}


# -- a tiny scripted SMTP sink -------------------------------------------------

class Msg:
    def __init__(self, env, session):
        self.mail_from = env.mail_from
        self.rcpts = list(env.rcpt_tos)
        self.data = env.original_content or env.content
        self.tls = session.ssl is not None
        self.mail_options = list(env.mail_options)
        self.auth = getattr(session, "auth_data", None)


class Handler:
    """rcpt_replies / data_replies: lists of replies used in turn (the
    last one repeats); None means 250."""

    def __init__(self, rcpt_replies=None, data_replies=None):
        self.rcpt_replies = list(rcpt_replies or [])
        self.data_replies = list(data_replies or [])
        self.messages = []
        self.lock = threading.Lock()

    def _next(self, lst):
        if not lst:
            return None
        return lst.pop(0) if len(lst) > 1 else lst[0]

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        r = self._next(self.rcpt_replies)
        if r is not None and not r.startswith("2"):
            return r
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        r = self._next(self.data_replies)
        if r is not None and not r.startswith("2"):
            return r
        with self.lock:
            self.messages.append(Msg(envelope, session))
        return "250 2.0.0 queued"


class Sink:
    def __init__(self, handler=None, tls_files=None, auth=None, **kw):
        self.handler = handler or Handler()
        self.port = free_port()
        opts = {}
        if tls_files is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
            opts["tls_context"] = ctx
        if auth is not None:
            def authenticator(server, session, envelope, mechanism,
                              auth_data):
                ok = (auth_data.login == auth[0].encode() and
                      auth_data.password == auth[1].encode())
                return AuthResult(success=ok,
                                  auth_data=auth_data.login.decode())
            opts["authenticator"] = authenticator
            opts["auth_require_tls"] = kw.pop("auth_require_tls", True)
            opts["auth_required"] = True
        # A name of its own: aiosmtpd would greet with this machine's
        # FQDN, which may be postd's "localhost" (a loop, to postd).
        kw.setdefault("server_hostname", "sink.test")
        self.controller = Controller(self.handler, hostname="127.0.0.1",
                                     port=self.port, **opts, **kw)
        self.controller.start()

    @property
    def messages(self):
        return self.handler.messages

    def stop(self):
        self.controller.stop()


@pytest.fixture
def sinks():
    made = []

    def make(*a, **kw):
        s = Sink(*a, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


class HangingServer:
    """Accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


# -- helpers -------------------------------------------------------------------

def transport(sink, domain=REMOTE_DOMAIN):
    return {"transport.%s" % domain: "127.0.0.1:%d" % sink.port}


def submit(srv, rcpts, subject="outbound", body="Hello remote.\n",
           sender=ALICE, extra_headers=""):
    """Submission with AUTH as alice (STARTTLS on listen.submission)."""
    c = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="laptop.example", timeout=30)
    try:
        c.starttls(context=srv.ctx())
        c.ehlo()
        c.login(ALICE, ALICE_PW)
        msg = ("From: Alice <%s>\r\nTo: %s\r\nSubject: %s\r\n"
               "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
               "Message-ID: <%d@laptop.example>\r\n%s\r\n%s" % (
                   sender, ", ".join(rcpts), subject, time.monotonic_ns(),
                   extra_headers, body.replace("\n", "\r\n")))
        refused = c.sendmail(sender, rcpts, msg.encode())
        assert refused == {}, refused
    finally:
        c.quit()


def wait_for(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what)


def wait_queue_empty(srv, timeout=20.0):
    wait_for(lambda: queue_entries(srv) == [], timeout, "an empty queue")


def dsn_parts(raw):
    """(human text, per-recipient status fields) of a DSN."""
    m = email.message_from_bytes(raw)
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "delivery-status"
    parts = list(m.walk())
    status = [p for p in parts
              if p.get_content_type() == "message/delivery-status"]
    assert status, [p.get_content_type() for p in parts]
    sp = status[0]
    payload = sp.get_payload()
    if isinstance(payload, list):
        text = "\n".join(str(x) for x in payload)
    else:
        text = payload
    return m, text


def alice_messages(srv):
    return [raw for _, raw in pop3_fetch_all(srv, ALICE)]


# -- delivery ------------------------------------------------------------------

def test_delivery_via_transport(make_server, sinks):
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    mark = srv.log_mark()
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="via transport")
    wait_for(lambda: sink.messages, what="the sink to get the message")
    wait_queue_empty(srv)
    m = sink.messages[0]
    assert m.mail_from == ALICE
    assert m.rcpts == ["far@" + REMOTE_DOMAIN]
    assert b"Subject: via transport" in m.data
    # no Return-Path (skip bytes) is relayed; CRLF on the wire
    assert not m.data.startswith(b"Return-Path:")
    assert b"Hello remote.\r\n" in m.data
    line = srv.wait_log(r"id=\S+ rcpt=far@remote\.example "
                        r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d "
                        r"tls=\"[^\"]+\" delay=\d+s "
                        r"reply=\"250 2\.0\.0 queued\" status=sent"
                        % sink.port, since=mark)
    assert line


def test_several_recipients_one_transaction(make_server, sinks):
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    rcpts = ["r%d@%s" % (i, REMOTE_DOMAIN) for i in range(5)]
    submit(srv, rcpts, subject="five")
    wait_for(lambda: sink.messages)
    wait_queue_empty(srv)
    assert len(sink.messages) == 1
    assert sorted(sink.messages[0].rcpts) == sorted(rcpts)


def test_dot_stuffing_and_8bit(make_server, sinks):
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    body = ".leading dot\n..two dots\nlast line \xe9t\xe9\n"
    c = smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30)
    c.starttls(context=srv.ctx())
    c.ehlo()
    c.login(ALICE, ALICE_PW)
    msg = ("From: <%s>\r\nTo: <far@%s>\r\nSubject: dots\r\n\r\n%s" % (
        ALICE, REMOTE_DOMAIN, body.replace("\n", "\r\n"))).encode("latin-1")
    c.sendmail(ALICE, ["far@" + REMOTE_DOMAIN], msg,
               mail_options=["BODY=8BITMIME"])
    c.quit()
    wait_for(lambda: sink.messages)
    data = sink.messages[0].data
    assert b"\r\n.leading dot\r\n..two dots\r\n" in data
    assert "last line \xe9t\xe9".encode("latin-1") in data
    assert "BODY=8BITMIME" in sink.messages[0].mail_options


def test_retry_after_450_exactly_one_copy(make_server, sinks):
    handler = Handler(data_replies=["451 4.3.0 try later", None])
    sink = sinks(handler)
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    mark = srv.log_mark()
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="retry")
    srv.wait_log(r"rcpt=far@remote\.example .*reply=\"451 4\.3\.0 try "
                 r"later\" status=deferred until ", since=mark, timeout=15)
    wait_queue_empty(srv, timeout=30)
    time.sleep(1.5)
    assert len(sink.messages) == 1


def test_rcpt_450_then_250(make_server, sinks):
    handler = Handler(rcpt_replies=["450 4.2.1 busy", None])
    sink = sinks(handler)
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="rcpt retry")
    wait_queue_empty(srv, timeout=30)
    assert len(sink.messages) == 1


def test_550_bounce_to_sender(make_server, sinks):
    handler = Handler(rcpt_replies=["550 5.1.1 no such user here"])
    sink = sinks(handler)
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    mark = srv.log_mark()
    submit(srv, ["nobody@" + REMOTE_DOMAIN], subject="to be bounced")
    srv.wait_log(r"rcpt=nobody@remote\.example .*reply=\"550 5\.1\.1 no "
                 r"such user here\" status=bounced", since=mark, timeout=15)
    wait_queue_empty(srv, timeout=20)
    msgs = wait_for(lambda: alice_messages(srv), what="the DSN")
    assert len(msgs) == 1
    m, text = dsn_parts(msgs[0])
    assert re.search(r"Final-Recipient: rfc822; ?nobody@remote\.example",
                     text, re.I), text
    assert re.search(r"Action: failed", text, re.I), text
    assert re.search(r"Status: 5\.1\.1", text), text
    assert re.search(r"Diagnostic-Code: smtp; ?550 5\.1\.1 no such user",
                     text), text
    assert sink.messages == []


def test_hanging_server_delayed_dsn_then_bounce(make_server):
    hang = HangingServer()
    try:
        srv = make_server(overrides=dict(
            FAST, **{"transport.%s" % REMOTE_DOMAIN:
                     "127.0.0.1:%d" % hang.port,
                     "delay_warning_time": "3s",
                     "queue_lifetime": "8s"}))
        mark = srv.log_mark()
        submit(srv, ["far@" + REMOTE_DOMAIN], subject="hangs")
        srv.wait_log(r"delayed DSN queued", since=mark, timeout=15)
        srv.wait_log(r"rcpt=far@remote\.example .*status=bounced",
                     since=mark, timeout=30)
        wait_queue_empty(srv, timeout=20)
        msgs = wait_for(lambda: len(alice_messages(srv)) >= 2 and
                        alice_messages(srv), what="two DSNs")
        actions = sorted(re.search(r"Action: (\w+)", dsn_parts(raw)[1],
                                   re.I).group(1).lower() for raw in msgs)
        assert actions == ["delayed", "failed"], actions
    finally:
        hang.stop()


def test_starttls_used_when_offered(make_server, sinks, tls_files):
    sink = sinks(tls_files=tls_files)
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    mark = srv.log_mark()
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="tls")
    wait_for(lambda: sink.messages)
    assert sink.messages[0].tls
    srv.wait_log(r"rcpt=far@remote\.example .*tls=\"TLSv1\.[23]\" .*"
                 r"status=sent", since=mark)


def test_tls_policy_verify_checks_the_certificate(make_server, sinks,
                                                  tls_files):
    """verify: the certificate is signed by tls_ca_file and carries the
    next hop (here the address 127.0.0.1 as an IP subjectAltName)."""
    sink = sinks(tls_files=tls_files)
    srv = make_server(overrides=dict(FAST, **{
        "transport.%s" % REMOTE_DOMAIN: "127.0.0.1:%d" % sink.port,
        "tls_policy": "verify", "tls_ca_file": tls_files["ca"]}))
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="verified")
    wait_for(lambda: sink.messages, timeout=20)
    assert sink.messages[0].tls


def test_smarthost_with_auth(make_server, sinks, tls_files):
    sink = sinks(tls_files=tls_files, auth=("relayuser", "relay-pass"))
    authfile = os.path.join(tls_files["dir"], "relay_auth")
    with open(authfile, "w") as f:
        f.write("relayuser relay-pass\n")
    os.chmod(authfile, 0o600)
    # relay_auth checks the smarthost's certificate (here for the IP
    # address 127.0.0.1, signed by the test CA) before AUTH.
    srv = make_server(overrides=dict(FAST, **{
        "relay_host": "127.0.0.1:%d" % sink.port, "relay_auth": authfile,
        "tls_ca_file": tls_files["ca"]}))
    submit(srv, ["far@elsewhere.example"], subject="smarthost")
    wait_for(lambda: sink.messages)
    m = sink.messages[0]
    assert m.tls
    assert m.auth == "relayuser"
    assert m.rcpts == ["far@elsewhere.example"]


def test_transport_map_per_domain(make_server, sinks):
    a, b = sinks(), sinks()
    srv = make_server(overrides=dict(FAST, **{
        "transport.a.example": "127.0.0.1:%d" % a.port,
        "transport.b.example": "127.0.0.1:%d" % b.port}))
    submit(srv, ["x@a.example", "y@b.example"], subject="two domains")
    wait_for(lambda: a.messages and b.messages)
    wait_queue_empty(srv)
    assert a.messages[0].rcpts == ["x@a.example"]
    assert b.messages[0].rcpts == ["y@b.example"]


def test_connection_refused_is_deferred(make_server):
    port = free_port()  # nobody listens
    srv = make_server(overrides=dict(FAST, **{
        "transport.%s" % REMOTE_DOMAIN: "127.0.0.1:%d" % port}))
    mark = srv.log_mark()
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="refused")
    srv.wait_log(r"rcpt=far@remote\.example .*status=deferred until",
                 since=mark, timeout=15)
    assert len(queue_entries(srv)) == 1


def test_inv_d4_kill9_while_delivering(make_server, sinks):
    """kill -9 of the whole daemon while the queue is delivered: after a
    restart every recipient has the message at least once, at most
    twice."""
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    rcpts = ["k%d@%s" % (i, REMOTE_DOMAIN) for i in range(3)]
    for i in range(15):
        submit(srv, rcpts, subject="crash %d" % i)
    time.sleep(0.1)
    srv.crash()
    srv.start()
    wait_queue_empty(srv, timeout=40)
    count = {}
    for m in sink.messages:
        subj = re.search(rb"Subject: (crash \d+)", m.data).group(1)
        for r in m.rcpts:
            count[(subj, r)] = count.get((subj, r), 0) + 1
    for i in range(15):
        for r in rcpts:
            n = count.get((b"crash %d" % i, r), 0)
            assert 1 <= n <= 2, (i, r, n)


class SlowHandler(Handler):
    """Takes its time over each message, so that a queue of 200 is still
    being delivered when postd is killed."""

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        await asyncio.sleep(0.1)
        return await super().handle_DATA(server, session, envelope)


def test_inv_d4_kill9_repeatedly_200_messages(make_server, sinks):
    """kill -9 of the whole daemon five times while 200 queued messages
    are delivered (removals are unlinked at once, their folder fsyncs
    batched): afterwards every recipient has each message once or twice,
    and the queue is empty."""
    sink = sinks(SlowHandler())
    srv = make_server(overrides=dict(
        FAST, max_connections_per_destination="2", **transport(sink)))
    rcpts = ["r%d@%s" % (i, REMOTE_DOMAIN) for i in range(2)]
    c = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="laptop.example", timeout=30)
    c.starttls(context=srv.ctx())
    c.ehlo()
    c.login(ALICE, ALICE_PW)
    for i in range(200):
        msg = ("From: <%s>\r\nTo: r@%s\r\nSubject: burst %d\r\n\r\n"
               "body %d\r\n" % (ALICE, REMOTE_DOMAIN, i, i))
        assert c.sendmail(ALICE, rcpts, msg.encode()) == {}
    c.quit()
    kills = 0
    for _ in range(5):
        time.sleep(0.8)
        if not queue_entries(srv):
            break
        srv.crash()
        kills += 1
        srv.start()
    assert kills >= 2, "the queue drained before the kills"
    wait_queue_empty(srv, timeout=90)
    count = {}
    for m in sink.messages:
        subj = re.search(rb"Subject: (burst \d+)", m.data).group(1)
        for r in m.rcpts:
            count[(subj, r)] = count.get((subj, r), 0) + 1
    for i in range(200):
        for r in rcpts:
            n = count.get((b"burst %d" % i, r), 0)
            assert 1 <= n <= 2, (i, r, n)
    assert os.listdir(os.path.join(srv.data_dir, "queue", "quarantine")) \
        == []


def test_never_bounce_a_bounce(make_server, sinks):
    """A remote sender whose mail is refused gets a DSN from <>; when that
    DSN is refused too, nothing more is sent (RFC 5321 section 4.5.5)."""
    handler = Handler(rcpt_replies=["550 5.1.1 gone"])
    sink = sinks(handler)
    srv = make_server(overrides=dict(FAST, sender_login_match="no",
                                     **transport(sink)))
    mark = srv.log_mark()
    c = smtplib.SMTP("127.0.0.1", srv.submission_port, timeout=30)
    c.starttls(context=srv.ctx())
    c.ehlo()
    c.login(ALICE, ALICE_PW)
    c.sendmail("back@" + REMOTE_DOMAIN, ["far@" + REMOTE_DOMAIN],
               b"From: <back@remote.example>\r\nSubject: x\r\n\r\nx\r\n")
    c.quit()
    srv.wait_log(r"id=\S+ DSN for 1 recipients queued", since=mark,
                 timeout=15)
    srv.wait_log(r"rcpt=back@remote\.example .*status=bounced", since=mark,
                 timeout=15)
    srv.wait_log(r"null sender: no DSN for 1 recipients", since=mark,
                 timeout=15)
    wait_queue_empty(srv)
    assert sink.messages == []


# -- DNS: MX records from a local DNS server (remote.py) ---------------------

needs_dns = pytest.mark.skipif(remote is None or not hasattr(
    remote, "DnsServer"), reason="tests/integration/remote.py not there yet")


@needs_dns
def test_mx_delivery_and_fallback(make_server, sinks):
    """The first MX (lowest preference) refuses the connection: the second
    gets the message. mx_port is the port for every MX host, so the first
    MX host resolves to an address where nothing listens."""
    sink = sinks()
    with remote.DnsServer(mx={REMOTE_DOMAIN: [(10, "mx1." + REMOTE_DOMAIN),
                                             (20, "mx2." + REMOTE_DOMAIN)]},
                          a={"mx1." + REMOTE_DOMAIN: "127.0.0.2",
                             "mx2." + REMOTE_DOMAIN: "127.0.0.1"}) as dns:
        srv = make_server(overrides=dict(FAST, **{
            "dns_servers": dns.address, "mx_port": str(sink.port)}))
        mark = srv.log_mark()
        submit(srv, ["far@" + REMOTE_DOMAIN], subject="mx")
        wait_for(lambda: sink.messages)
        srv.wait_log(r"relay=mx2\.remote\.example\[127\.0\.0\.1\]:%d .*"
                     r"status=sent" % sink.port, since=mark)


@needs_dns
def test_null_mx_bounces(make_server):
    with remote.DnsServer(mx={REMOTE_DOMAIN: [(0, ".")]}) as dns:
        srv = make_server(overrides=dict(FAST, **{
            "dns_servers": dns.address, "mx_port": str(free_port())}))
        submit(srv, ["far@" + REMOTE_DOMAIN], subject="null mx")
        msgs = wait_for(lambda: alice_messages(srv), what="the DSN")
        _, text = dsn_parts(msgs[0])
        assert re.search(r"Status: 5\.1\.10", text), text


@needs_dns
def test_mx_that_is_myself_bounces_as_a_loop(make_server):
    """An MX host that greets with postd's own host name is this server
    (a DNS mistake, or a hostile MX pointing back at us): the mail bounces
    with 5.4.6 instead of going round; nothing is sent to it."""
    loop = remote.SmtpSink(ehlo_hostname="localhost")  # conftest's hostname
    try:
        with remote.DnsServer(mx={REMOTE_DOMAIN: [(10, "mx." + REMOTE_DOMAIN)]},
                              a={"mx." + REMOTE_DOMAIN: "127.0.0.1"}) as dns:
            srv = make_server(overrides=dict(FAST, **{
                "dns_servers": dns.address, "mx_port": str(loop.port)}))
            mark = srv.log_mark()
            submit(srv, ["far@" + REMOTE_DOMAIN], subject="loop")
            msgs = wait_for(lambda: alice_messages(srv), what="the DSN")
            _, text = dsn_parts(msgs[0])
            assert re.search(r"Status: 5\.4\.6", text), text
            srv.wait_log(r"loops back to myself.*status=bounced", since=mark)
            assert loop.messages == []
    finally:
        loop.stop()


# -- DKIM ----------------------------------------------------------------------

def _dkim_key(d, kind):
    import base64
    import subprocess
    key = os.path.join(d, "dkim-%s.pem" % kind)
    if kind == "rsa":
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        p = base64.b64encode(der).decode()
    else:
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519",
                        "-out", key], check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        p = base64.b64encode(der[-32:]).decode()  # the raw public key
    os.chmod(key, 0o600)
    return key, "v=DKIM1; k=%s; p=%s" % ("rsa" if kind == "rsa"
                                         else "ed25519", p)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_dkim_signature_verifies(make_server, sinks, tls_files, kind):
    import dkim
    sink = sinks()
    keydir = tls_files["dir"]
    key, txt = _dkim_key(keydir, kind)
    srv = make_server(overrides=dict(FAST, dkim_selector="sel",
                                     dkim_key=key, **transport(sink)))
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="signed",
           body="Signed body.\n.dot line\n")
    wait_for(lambda: sink.messages)
    data = sink.messages[0].data
    assert data.startswith(b"DKIM-Signature:"), data[:200]

    def dnsfunc(name, timeout=5):
        assert name in (b"sel._domainkey.example.org.",
                        b"sel._domainkey.example.org"), name
        return txt.encode()
    assert dkim.verify(data, dnsfunc=dnsfunc), data[:600]


def test_big_message_streamed(make_server, sinks):
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    line = "0123456789" * 7 + "\n"
    body = line * 40000 + ".\n"  # about 3 MB, ends with a lone dot line
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="big", body=body)
    wait_for(lambda: sink.messages, timeout=30)
    data = sink.messages[0].data
    assert data.count(line.replace("\n", "\r\n").encode()) == 40000
    assert data.endswith(b"\r\n.\r\n") or data.endswith(b"\r\n..\r\n") or \
        data.endswith(b".\r\n"), data[-20:]


def test_tls_policy_verify_untrusted_is_deferred(make_server, sinks,
                                                 tls_files):
    """verify with a CA that did not sign the server's certificate: the
    mail is not sent, and stays queued."""
    sink = sinks(tls_files=tls_files)
    srv_dir = tls_files["dir"]
    other_ca = os.path.join(srv_dir, "other-ca.pem")
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=other CA", "-keyout",
                    os.path.join(srv_dir, "other-ca.key"), "-out", other_ca],
                   check=True, capture_output=True)
    srv = make_server(overrides=dict(FAST, **{
        "transport.%s" % REMOTE_DOMAIN: "127.0.0.1:%d" % sink.port,
        "tls_policy": "verify", "tls_ca_file": other_ca}))
    mark = srv.log_mark()
    submit(srv, ["far@" + REMOTE_DOMAIN], subject="unverified")
    srv.wait_log(r"rcpt=far@remote\.example .*TLS handshake failed.*"
                 r"status=deferred until", since=mark, timeout=15)
    assert sink.messages == []
    assert len(queue_entries(srv)) == 1


def test_connection_cap_per_destination(make_server, sinks):
    sink = sinks()
    srv = make_server(overrides=dict(FAST, max_connections_per_destination="1",
                                     **transport(sink)))
    for i in range(6):
        submit(srv, ["c%d@%s" % (i, REMOTE_DOMAIN)], subject="cap %d" % i)
    wait_queue_empty(srv, timeout=30)
    assert len(sink.messages) == 6


@needs_dns
def test_mx_preference_order(make_server):
    """Both MX hosts answer: the lower preference value gets the mail,
    whatever the order of the records."""
    port = remote.free_port("127.0.0.1", "127.0.0.2")
    with remote.SmtpSink(host="127.0.0.1", port=port) as high, \
            remote.SmtpSink(host="127.0.0.2", port=port) as low, \
            remote.DnsServer(mx={REMOTE_DOMAIN: [
                (20, "mxa." + REMOTE_DOMAIN), (10, "mxb." + REMOTE_DOMAIN)]},
                a={"mxa." + REMOTE_DOMAIN: "127.0.0.1",
                   "mxb." + REMOTE_DOMAIN: "127.0.0.2"}) as dns:
        srv = make_server(overrides=dict(FAST, **{
            "dns_servers": dns.address, "mx_port": str(port)}))
        for i in range(3):
            submit(srv, ["far@" + REMOTE_DOMAIN], subject="pref %d" % i)
        assert low.wait_messages(3, timeout=20)
        wait_queue_empty(srv)
        assert high.messages == []


@needs_dns
def test_nxdomain_bounces(make_server):
    with remote.DnsServer(a={"other." + REMOTE_DOMAIN: "127.0.0.1"}) as dns:
        srv = make_server(overrides=dict(FAST, **{
            "dns_servers": dns.address, "mx_port": str(free_port())}))
        submit(srv, ["far@nosuch." + REMOTE_DOMAIN], subject="nxdomain")
        msgs = wait_for(lambda: alice_messages(srv), what="the DSN")
        _, text = dsn_parts(msgs[0])
        assert re.search(r"Status: 5\.1\.2", text), text
        assert re.search(r"Action: failed", text, re.I), text


@needs_dns
def test_connection_reused_for_next_message(make_server):
    """Messages queued one after the other to one destination share a
    connection while it is idle (a few seconds)."""
    port = remote.free_port("127.0.0.1")
    with remote.SmtpSink(port=port) as sink, \
            remote.DnsServer(mx={REMOTE_DOMAIN: [
                (10, "mx." + REMOTE_DOMAIN)]},
                a={"mx." + REMOTE_DOMAIN: "127.0.0.1"}) as dns:
        srv = make_server(overrides=dict(FAST, **{
            "dns_servers": dns.address, "mx_port": str(port)}))
        for i in range(4):
            submit(srv, ["far@" + REMOTE_DOMAIN], subject="reuse %d" % i)
            assert sink.wait_messages(i + 1, timeout=20)
        assert sink.connections == 1, sink.connections


def test_reload_replaces_the_runner(make_server, sinks):
    """SIGHUP starts a new generation: the old runner gets SIGQUIT, ends
    its attempts and exits; the new one delivers what comes next."""
    sink = sinks()
    srv = make_server(overrides=dict(FAST, **transport(sink)))
    submit(srv, ["a@" + REMOTE_DOMAIN], subject="before reload")
    wait_for(lambda: len(sink.messages) == 1)
    mark = srv.log_mark()
    srv.hup()
    srv.wait_log(r"postd-queue\[\d+\]: info: queue runner stopped",
                 since=mark, timeout=15)
    submit(srv, ["b@" + REMOTE_DOMAIN], subject="after reload")
    wait_for(lambda: len(sink.messages) == 2)
    wait_queue_empty(srv)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smarthost_auth_never_without_tls(make_server, sinks, tls_files):
    """The smarthost offers no STARTTLS: the password is not sent, the
    mail waits."""
    sink = sinks(auth=("relayuser", "relay-pass"), auth_require_tls=False)
    authfile = os.path.join(tls_files["dir"], "relay_auth2")
    with open(authfile, "w") as f:
        f.write("relayuser relay-pass\n")
    os.chmod(authfile, 0o600)
    srv = make_server(overrides=dict(FAST, **{
        "relay_host": "127.0.0.1:%d" % sink.port, "relay_auth": authfile}))
    mark = srv.log_mark()
    submit(srv, ["far@elsewhere.example"], subject="no tls")
    srv.wait_log(r"rcpt=far@elsewhere\.example .*refusing AUTH without TLS"
                 r".*status=deferred until", since=mark, timeout=15)
    srv.wait_log(r"warning: id=\S+ relay_host 127\.0\.0\.1\[127\.0\.0\.1\]:"
                 r"%d: no TLS; relay_auth credentials not sent, mail "
                 r"deferred; fix: enable STARTTLS" % sink.port, since=mark)
    assert sink.messages == []
