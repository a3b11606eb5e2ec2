"""postd behind a real HAProxy (Debian's haproxy package): two postd
instances with their own data directories on one machine, HAProxy in TCP
mode with send-proxy-v2 (and its CRC32C TLV, which postd checks) in
front of their POP3 and SMTP listeners, health checks with GET /healthz
on each postd's HTTP listener (doc/haproxy.md).

Clients connect from 127.0.0.2 and HAProxy from 127.0.0.1, so the address
postd logs tells which one it believed. A login through HAProxy shows the
client's own address in postd's log and tarpit; once one postd is stopped,
HAProxy's check marks it down and every new session goes to the other;
every message accepted is stored on one of the two."""

import os
import shutil
import socket
import subprocess
import time

import pytest

import proxyutil
from conftest import ALICE, ALICE_PW, free_port, running_server
from pop3util import wire

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENT_ADDR = "127.0.0.2"
MESSAGES_PER_ROUND = 6

pytestmark = pytest.mark.skipif(not os.access(HAPROXY, os.X_OK),
                                reason="haproxy not installed (apt-get "
                                "install haproxy)")


def node_overrides():
    return {
        "proxy_protocol.pop3": "yes",
        "proxy_protocol.smtp": "yes",
        "proxy_trusted": "127.0.0.1",
        "listen.http": "127.0.0.1:%d" % free_port(),
        "auth_failure_delay": "50ms",
    }


HAPROXY_CONF = """\
global
    maxconn 200
    stats socket {sock} mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1

frontend pop3_in
    bind 127.0.0.1:{pop3}
    default_backend pop3_nodes

frontend smtp_in
    bind 127.0.0.1:{smtp}
    default_backend smtp_nodes

backend pop3_nodes
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 200ms fall 1 rise 1 source 127.0.0.1
{pop3_servers}

backend smtp_nodes
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 200ms fall 1 rise 1 source 127.0.0.1
{smtp_servers}
"""


class HAProxy:
    def __init__(self, base, nodes):
        self.base = base
        self.sock = os.path.join(base, "haproxy.sock")
        self.pop3_port = free_port()
        self.smtp_port = free_port()
        self.conf = os.path.join(base, "haproxy.cfg")
        servers = {}
        for kind in ("pop3", "smtp"):
            servers[kind] = "\n".join(
                "    server n%d 127.0.0.1:%d send-proxy-v2 "
                "proxy-v2-options crc32c check port %s"
                % (i + 1, getattr(n, kind + "_port"),
                   n.overrides["listen.http"].rsplit(":", 1)[1])
                for i, n in enumerate(nodes))
        with open(self.conf, "w") as f:
            f.write(HAPROXY_CONF.format(
                sock=self.sock, pop3=self.pop3_port, smtp=self.smtp_port,
                pop3_servers=servers["pop3"], smtp_servers=servers["smtp"]))
        self.log_path = os.path.join(base, "haproxy.log")
        check = subprocess.run([HAPROXY, "-c", "-f", self.conf],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def status(self):
        """{(backend, server): "UP"/"DOWN"/...} from the stats socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        col = {name: i for i, name in enumerate(head)}
        out = {}
        for ln in lines[1:]:
            f = ln.split(",")
            if len(f) > col["status"] and f[1] not in ("FRONTEND",
                                                       "BACKEND"):
                out[(f[0], f[1])] = f[col["status"]].split()[0]
        return out

    def wait_status(self, want, timeout=15.0):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("haproxy exited: %s" % open(self.log_path).read())
            try:
                st = self.status()
                if all(st.get(k) == v for k, v in want.items()):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail("haproxy servers not %r: %r\n%s" % (
            want, st, open(self.log_path).read()[-2000:]))


class Client:
    """A line client from CLIENT_ADDR (LineConn cannot choose its
    source address)."""

    def __init__(self, port):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10,
            source_address=(CLIENT_ADDR, 0))
        self.f = self.sock.makefile("rb")

    def line(self):
        ln = self.f.readline()
        assert ln.endswith(b"\r\n"), ln
        return ln[:-2].decode("latin-1")

    def reply(self):
        """An SMTP reply, multi-line or not: its last line."""
        while True:
            ln = self.line()
            if ln[3:4] != "-":
                return ln

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def cmd(self, command, smtp=False):
        self.send(command + "\r\n")
        return self.reply() if smtp else self.line()

    def close(self):
        self.f.close()
        self.sock.close()


def pop3_login(port, pw):
    c = Client(port)
    try:
        assert c.line().startswith("+OK")
        assert c.cmd("USER " + ALICE).startswith("+OK")
        r = c.cmd("PASS " + pw)
        c.cmd("QUIT")
        return r
    finally:
        c.close()


def smtp_send(port, subject):
    c = Client(port)
    try:
        assert c.reply().startswith("220")
        assert c.cmd("EHLO client.example", smtp=True).startswith("250")
        assert c.cmd("MAIL FROM:<sender@example.net>",
                     smtp=True).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE, smtp=True).startswith("250")
        assert c.cmd("DATA", smtp=True).startswith("354")
        c.send(wire(("Subject: %s\r\n\r\nbody of %s\r\n" %
                     (subject, subject)).encode()) + b".\r\n")
        r = c.reply()
        c.cmd("QUIT", smtp=True)
        return r
    finally:
        c.close()


def subjects_stored(srv):
    out = set()
    for name in srv.stored_messages():
        with open(os.path.join(srv.maildir(), name), "rb") as f:
            for ln in f.read().splitlines():
                if ln.startswith(b"Subject: "):
                    out.add(ln[9:].decode())
    return out


def wait_stored(nodes, want, timeout=30.0):
    """SMTP's 250 means the message is safe in the node's queue (INV-D1);
    the queue runner then puts it in the Maildir: wait for that."""
    deadline = time.monotonic() + timeout
    while True:
        got = [subjects_stored(n) for n in nodes]
        if set().union(*got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.fixture
def cluster(tls_files):
    with running_server(tls_files, node_overrides(), start=False) as n1, \
            running_server(tls_files, node_overrides(), start=False) as n2:
        for n in (n1, n2):
            n.start(wait=False)
        for n in (n1, n2):
            proxyutil.wait_proxied_pop3(n)
        hap = HAProxy(n1.base, [n1, n2])
        try:
            hap.wait_status({("pop3_nodes", "n1"): "UP",
                             ("pop3_nodes", "n2"): "UP",
                             ("smtp_nodes", "n1"): "UP",
                             ("smtp_nodes", "n2"): "UP"})
            yield hap, n1, n2
        finally:
            hap.stop()


def test_login_through_haproxy_shows_the_client(cluster):
    hap, n1, n2 = cluster
    marks = [n.log_mark() for n in (n1, n2)]
    # Round robin: two wrong logins reach both nodes, one each.
    for _ in range(2):
        assert pop3_login(hap.pop3_port, "wrong").startswith("-ERR")
    assert pop3_login(hap.pop3_port, ALICE_PW).startswith("+OK")
    for n, mark in zip((n1, n2), marks):
        n.wait_log(r"proxied peer=127\.0\.0\.2 session=\S+ proto=pop3 "
                   r"via=127\.0\.0\.1", since=mark)
        n.wait_log(r"tarpit peer=127\.0\.0\.2 failures=1 ", since=mark)
        assert "tarpit peer=127.0.0.1 " not in n.log_since(mark)
    logs = n1.log_since(marks[0]) + n2.log_since(marks[1])
    assert "login user=alice@example.org peer=127.0.0.2 " in logs, logs


def test_stopping_one_node_moves_sessions_and_loses_nothing(cluster):
    hap, n1, n2 = cluster
    sent = []
    for i in range(MESSAGES_PER_ROUND):
        sent.append("before-%d" % i)
        assert smtp_send(hap.smtp_port, sent[-1]).startswith("250")
    # Round robin spread the first round over both nodes.
    on_n1, on_n2 = wait_stored((n1, n2), set(sent))
    assert on_n1 and on_n2 and on_n1 | on_n2 == set(sent), (on_n1, on_n2)

    n1.stop()
    hap.wait_status({("smtp_nodes", "n1"): "DOWN",
                     ("pop3_nodes", "n1"): "DOWN",
                     ("smtp_nodes", "n2"): "UP"})
    mark2 = n2.log_mark()
    for i in range(MESSAGES_PER_ROUND):
        sent.append("after-%d" % i)
        assert smtp_send(hap.smtp_port, sent[-1]).startswith("250")
    assert pop3_login(hap.pop3_port, ALICE_PW).startswith("+OK")
    n2.wait_log(r"login user=alice@example\.org peer=127\.0\.0\.2 ",
                since=mark2)

    # Nothing new reached the stopped node, and every message accepted is
    # stored exactly once on one node or the other.
    stored1, stored2 = wait_stored((n1, n2), set(sent))
    assert stored1 == on_n1
    assert not (stored1 & stored2)
    assert stored1 | stored2 == set(sent), (sorted(stored1), sorted(stored2))
    assert len(n1.stored_messages()) + len(n2.stored_messages()) == len(sent)
    assert all(s in stored2 for s in sent if s.startswith("after-"))
