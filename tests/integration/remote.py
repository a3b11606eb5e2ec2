"""The "remote side" for delivery tests: a DNS server and SMTP sinks.

postd's queue runner looks up MX records and talks SMTP to other servers.
This module plays those other servers on loopback, so that delivery tests
need neither the Internet nor root.

API
---

free_port(host='127.0.0.1', *more_hosts, udp=False) -> int
    A TCP port free on host (and on every one of more_hosts; with udp=True
    free for UDP too), never handed out before by this module. Any
    127.0.0.0/8 address works on Linux loopback, so several sinks can
    listen on the same port at 127.0.0.2, 127.0.0.3, ... -- which is how
    MX fallback is tested, since postd's mx_port key sets one port for
    every MX host.

DnsServer(records=None, *, mx=None, a=None, aaaa=None, null_mx=None,
          zones=None)
    Starts dnsmasq (Debian's dnsmasq-base) on 127.0.0.1:<free port>,
    answering only from the given records (--no-resolv, --no-hosts, no
    upstream). records is a dict with optional keys:
        'mx':      {domain: [(preference, host), ...]}
                   (a host of "." with preference 0 is an RFC 7505 null MX)
        'a':       {host: "127.0.0.2"} or {host: ["127.0.0.2", ...]}
        'aaaa':    {host: "::1"} or {host: [...]}
        'null_mx': [domain, ...]
    The same keys may be given as keyword arguments instead (they are
    merged). The server is authoritative for the zones used: the top-level
    label of every name given (e.g. "test" for mx1.example.test), or the
    zones= list; an unknown name in those zones gets NXDOMAIN, a name
    elsewhere gets REFUSED (which resolvers treat as a temporary failure).
    A name with an A record but no MX gets NOERROR/no data for MX, so the
    implicit MX rule (RFC 5321 section 5.1) applies.
    Attributes: .port, .host ("127.0.0.1"), .address ("127.0.0.1:PORT", the
    value for postd's dns_servers key), .log_path (dnsmasq's output).
    Methods: .query(name, qtype) -> (rcode, [answer strings]) (see
    dns_query), .stop(). A context manager: `with DnsServer(...) as dns:`.

SmtpSink(host='127.0.0.1', port=0, tls=None, auth=None, rcpt_replies=None,
         data_reply=None, hang=False, ehlo_hostname='sink.test')
    An SMTP server (aiosmtpd's Controller, in a thread) on host:port; port
    0 picks a free one.
      tls:  a (certfile, keyfile) pair: STARTTLS is offered (not required).
      auth: {user: password}: AUTH PLAIN and LOGIN offered, and required
            before MAIL; when tls is given as well, AUTH is only accepted
            after STARTTLS.
      rcpt_replies: {address: [reply, ...]}: each RCPT TO for address
            (case-insensitive, without <>) uses the next reply, the last
            one repeats, e.g. ["450 4.2.0 try later", "250 OK"]. A 2xx
            reply accepts the recipient. Other addresses get 250.
      data_reply: the reply to the end of DATA, a string or a list used
            in turn like rcpt_replies (default "250 2.0.0 OK"). Only
            messages answered 2xx are recorded in .messages.
      hang: accept TCP connections and never send anything (no greeting);
            they stay open until stop().
    Attributes:
      .host, .port
      .messages: list of SinkMessage, one per accepted DATA, with
            mail_from (str), rcpt_tos (list of str; alias rcpts),
            mail_options (list), data (bytes as received, CRLF line ends),
            peer ((ip, port)), tls (bool: STARTTLS was used), ehlo_name
            (str or None), auth_user (str or None)
      .connections: number of TCP connections accepted
      .rcpt_attempts: list of (address, reply) for every RCPT TO
      .auth_commands: the mechanism of every AUTH command received, with
            or without TLS and whatever the outcome (the credentials are
            not kept): a test that no password went out asserts it empty
      .data_attempts: number of DATA transactions that reached the end
    Methods: .wait_messages(n, timeout=10) -> bool (True once at least n
    messages arrived), .stop(). A context manager too.

dns_query(server, port, name, qtype='A', timeout=2) -> (rcode, answers)
    A minimal UDP DNS client (no dnspython needed): rcode is 'NOERROR',
    'NXDOMAIN', 'REFUSED', ...; answers are strings: "10 mx1.example.test"
    for MX ("0 ." for a null MX), the address for A and AAAA.
"""

import contextlib
import ipaddress
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

DNSMASQ = "/usr/sbin/dnsmasq"

_GIVEN = set()

# -- ports ---------------------------------------------------------------------


def _conftest_ports():
    """conftest.py's record of ports it gave out, when it is loaded."""
    mod = sys.modules.get("conftest")
    return getattr(mod, "_PORTS_GIVEN", None)


def _bindable(host, port, kind):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                      kind)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host="127.0.0.1", *more_hosts, udp=False):
    hosts = (host,) + more_hosts
    shared = _conftest_ports()
    for _ in range(1000):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        if port in _GIVEN or (shared is not None and port in shared):
            continue
        if not all(_bindable(h, port, socket.SOCK_STREAM) for h in hosts):
            continue
        if udp and not all(_bindable(h, port, socket.SOCK_DGRAM)
                           for h in hosts):
            continue
        _GIVEN.add(port)
        if shared is not None:
            shared.add(port)
        return port
    raise RuntimeError("no free port on %s" % ", ".join(hosts))


# -- a minimal DNS client --------------------------------------------------------

_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
           "AAAA": 28}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
           4: "NOTIMP", 5: "REFUSED"}


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_name(msg, off):
    """Returns (name, offset after the name), following compression."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("compression loop")
            continue
        if n == 0:
            return (".".join(labels) or "."), (end if end else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def dns_query(server, port, name, qtype="A", timeout=2.0):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += _encode_name(name) + struct.pack(">HH", _QTYPES[qtype], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (server, port))
        while True:
            msg, _ = s.recvfrom(65535)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    rcode = _RCODES.get(flags & 0xF, str(flags & 0xF))
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        _, off = _read_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 1:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype == 15:
            pref = struct.unpack(">H", rdata[:2])[0]
            host, _ = _read_name(msg, off + 2)
            answers.append("%d %s" % (pref, host))
        elif rtype == _QTYPES.get(qtype):
            answers.append(rdata.hex())
        off += rdlen
    return rcode, answers


# -- DnsServer -------------------------------------------------------------------

def _as_list(v):
    return [v] if isinstance(v, str) else list(v)


class DnsServer:
    def __init__(self, records=None, *, mx=None, a=None, aaaa=None,
                 null_mx=None, zones=None):
        records = dict(records or {})
        mx = dict(records.get("mx") or {}, **(mx or {}))
        a = dict(records.get("a") or {}, **(a or {}))
        aaaa = dict(records.get("aaaa") or {}, **(aaaa or {}))
        null_mx = list(records.get("null_mx") or []) + list(null_mx or [])
        self.host = "127.0.0.1"
        self.port = free_port(self.host, udp=True)
        self.address = "%s:%d" % (self.host, self.port)
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="postd-test-dns-")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")

        names = set(mx) | set(a) | set(aaaa) | set(null_mx)
        for hosts in mx.values():
            names |= {h for _, h in hosts if h.strip(".")}
        if zones is None:
            zones = {n.rstrip(".").rsplit(".", 1)[-1].lower()
                     for n in names if n.strip(".")}
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
                "--pid-file=", "--no-resolv", "--no-hosts", "--no-poll",
                "--log-facility=-", "--log-queries",
                "--port=%d" % self.port, "--listen-address=" + self.host,
                "--bind-interfaces", "--cache-size=0"]
        # Authoritative for the zones in use: NXDOMAIN for unknown names.
        args += ["--local=/%s/" % z for z in sorted(zones)]
        for domain, hosts in mx.items():
            for pref, host in hosts:
                args.append("--mx-host=%s,%s,%d" % (domain, host or ".",
                                                    int(pref)))
        for domain in null_mx:
            # dnsmasq writes "." as the root name: RFC 7505's null MX.
            args.append("--mx-host=%s,.,0" % domain)
        for host in sorted(set(a) | set(aaaa)):
            addrs = _as_list(a.get(host, [])) + _as_list(aaaa.get(host, []))
            # One address per line: a record keeps one IPv4 and one IPv6.
            for addr in addrs:
                ipaddress.ip_address(addr)  # refuse typos early
                args.append("--host-record=%s,%s" % (host, addr))
        if not os.access(DNSMASQ, os.X_OK):
            raise RuntimeError("%s is not installed (dnsmasq-base)" % DNSMASQ)
        self.args = args
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited (%s): %s" % (
                    self.proc.returncode, self.log()))
            try:
                self.query("ready.invalid", "A", timeout=0.2)
                return
            except OSError:  # timeout, or the port not open yet
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer: " + self.log())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def query(self, name, qtype="A", timeout=2.0):
        return dns_query(self.host, self.port, name, qtype, timeout)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not os.environ.get("POSTD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.stop()


# -- SmtpSink --------------------------------------------------------------------

class SinkMessage:
    def __init__(self, envelope, session, tls):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.rcpts = self.rcpt_tos
        self.mail_options = list(envelope.mail_options or [])
        self.data = envelope.original_content or envelope.content or b""
        if isinstance(self.data, str):
            self.data = self.data.encode("utf-8", "surrogateescape")
        self.peer = session.peer
        self.tls = tls
        self.ehlo_name = session.host_name
        self.auth_user = session.auth_data if session.authenticated \
            else None

    def __repr__(self):
        return "<SinkMessage from=%r to=%r %d bytes tls=%s>" % (
            self.mail_from, self.rcpt_tos, len(self.data), self.tls)


def _next_reply(replies):
    """The next reply of a list (popped; the last one stays)."""
    if not replies:
        return None
    return replies.pop(0) if len(replies) > 1 else replies[0]


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        if self.sink._auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        sink = self.sink
        with sink._cond:
            reply = _next_reply(sink._rcpt_replies.get(address.lower()))
            if reply is None:
                reply = "250 2.1.5 OK"
            sink.rcpt_attempts.append((address, reply))
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        with sink._cond:
            sink.data_attempts += 1
            reply = _next_reply(sink._data_replies) or "250 2.0.0 OK"
            if reply.startswith("2"):
                sink.messages.append(SinkMessage(
                    envelope, session, session.ssl is not None))
                sink._cond.notify_all()
        return reply


class _CountingSMTP(SMTP):
    def __init__(self, *a, sink, **kw):
        super().__init__(*a, **kw)
        self._sink = sink

    def connection_made(self, transport):
        # Called again for the TLS layer after STARTTLS: count TCP only.
        if self._original_transport is None:
            with self._sink._cond:
                self._sink.connections += 1
        super().connection_made(transport)

    async def smtp_AUTH(self, arg):
        # Counted before aiosmtpd looks at it: a refused AUTH still
        # carried the password.
        with self._sink._cond:
            self._sink.auth_commands.append(
                arg.split()[0].upper() if arg and arg.split() else "")
        await super().smtp_AUTH(arg)


class _Controller(Controller):
    def __init__(self, *a, sink, **kw):
        super().__init__(*a, **kw)
        self._sink = sink

    def factory(self):
        return _CountingSMTP(self.handler, sink=self._sink,
                             **self.SMTP_kwargs)


class SmtpSink:
    def __init__(self, host="127.0.0.1", port=0, tls=None, auth=None,
                 rcpt_replies=None, data_reply=None, hang=False,
                 ehlo_hostname="sink.test"):
        self.host = host
        self.port = port or free_port(host)
        self.messages = []
        self.connections = 0
        self.rcpt_attempts = []
        self.auth_commands = []
        self.data_attempts = 0
        self._cond = threading.Condition()
        self._rcpt_replies = {k.strip("<>").lower(): _as_list(v)
                              for k, v in (rcpt_replies or {}).items()}
        self._data_replies = [] if data_reply is None \
            else _as_list(data_reply)
        self._auth_required = False
        self._controller = None
        self._hang_sock = None
        self._hang_conns = []
        if hang:
            self._start_hang()
        else:
            self._start_smtp(tls, auth, ehlo_hostname)

    def _start_smtp(self, tls, auth, ehlo_hostname):
        kw = {"server_hostname": ehlo_hostname, "ready_timeout": 10.0,
              "decode_data": False}
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            kw["tls_context"] = ctx
        if auth is not None:
            users = dict(auth)

            def authenticator(server, session, envelope, mechanism, data):
                login = data.login.decode("utf-8", "replace")
                password = data.password.decode("utf-8", "replace")
                ok = login in users and users[login] == password
                return AuthResult(success=ok, handled=False,
                                  auth_data=login if ok else None)
            kw["authenticator"] = authenticator
            # AUTH is required by _Handler.handle_MAIL: aiosmtpd's own
            # auth_required warns when it comes without TLS.
            kw["auth_require_tls"] = tls is not None
            self._auth_required = True
        self._controller = _Controller(_Handler(self), hostname=self.host,
                                       port=self.port, sink=self, **kw)
        self._controller.start()
        # The controller connected once itself to check the server runs.
        with self._cond:
            self.connections = 0

    def _start_hang(self):
        s = socket.socket(socket.AF_INET6 if ":" in self.host
                          else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        self._hang_sock = s
        self._hang_thread = threading.Thread(target=self._hang_run,
                                             daemon=True)
        self._hang_thread.start()

    def _hang_run(self):
        while True:
            try:
                c, _ = self._hang_sock.accept()
            except OSError:
                return
            with self._cond:
                self._hang_conns.append(c)
                self.connections += 1

    def wait_messages(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._hang_sock is not None:
            # shutdown() wakes the thread blocked in accept().
            with contextlib.suppress(OSError):
                self._hang_sock.shutdown(socket.SHUT_RDWR)
            self._hang_sock.close()
            self._hang_sock = None
            self._hang_thread.join(5)
            with self._cond:
                for c in self._hang_conns:
                    c.close()
                self._hang_conns = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
