"""Hostile bytes on the IMAP and IMAPS ports (INV-S1, INV-S3): random
binary, a huge line without CRLF, absurd literal sizes, 10,000-deep
parentheses, 100,000 sequence ranges, NULs in quoted strings, TLS garbage,
and a client that stops reading during a 1 GiB FETCH. After each the
server answers BAD/NO/BYE or closes, logs the cause, no worker dies, and a
session opened before on the same worker (workers = 1) goes on.

What test_imap_basic.py already covers is not repeated here: a literal
over the command cap, a long line with CRLF, LITERAL- before login,
STARTTLS with pipelined plaintext in the same packet. Seeds are printed
in the assertion messages; POSTD_HOSTILE_SEED=N reruns one."""

import os
import random
import socket
import ssl
import time

import pytest

from conftest import ALICE


def seed_of():
    env = os.environ.get("POSTD_HOSTILE_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 30)


class Raw:
    def __init__(self, port, tls_ctx=None, greeting=True, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        self.sock = s
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(s, server_hostname="localhost")
        self.buf = b""
        self.greeting = self.line() if greeting else None

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed; buffered %r" % self.buf[:200])
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def until(self, tag):
        lines = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return lines, ln
            lines.append(ln)

    def cmd(self, tag, text):
        self.send(("%s %s\r\n" % (tag, text)).encode()
                  if isinstance(text, str) else tag.encode() + b" " + text +
                  b"\r\n")
        return self.until(tag)

    def drain(self, timeout=3.0):
        """Every line until the server closes or goes quiet."""
        out = []
        self.sock.settimeout(timeout)
        try:
            while True:
                out.append(self.line())
        except (EOFError, socket.timeout, ConnectionResetError, ssl.SSLError,
                OSError):
            pass
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def logged_in(srv, **kw):
    r = Raw(srv.imap_port, **kw)
    _, t = r.cmd("l1", "LOGIN %s %s" % (ALICE, srv.users[ALICE]))
    assert t.startswith("l1 OK"), t
    return r


@pytest.fixture
def one_worker(make_server):
    """One worker, so every session shares it; a bystander session is
    logged in and selected before the hostile bytes arrive."""
    srv = make_server(overrides={"workers": "1"})
    srv.deliver(ALICE, b"Subject: bystander\r\n\r\nhello\r\n")
    by = logged_in(srv)
    _, t = by.cmd("b1", "SELECT INBOX")
    assert t.startswith("b1 OK"), t
    srv.bystander = by
    yield srv
    by.close()


def still_fine(srv, mark, cause_re, where):
    """The bystander goes on, a new session works, no worker died, the log
    names the cause."""
    by = srv.bystander
    tag = "b%d" % int(time.monotonic() * 1000)
    _, t = by.cmd(tag, "UID FETCH 1:* (FLAGS)")
    assert t.startswith(tag + " OK"), (where, t)
    r = logged_in(srv)
    _, t = r.cmd("n1", "NOOP")
    assert t.startswith("n1 OK"), (where, t)
    r.cmd("n2", "LOGOUT")
    r.close()
    log = srv.log_since(mark)
    assert "died" not in log, "%s: %s" % (where, log[-2000:])
    if cause_re:
        srv.wait_log(cause_re, since=mark)


def refused(lines, where):
    """What came back: only BAD/NO/BYE (and continuation-free untagged
    noise), never an OK for hostile bytes."""
    for ln in lines:
        parts = ln.split(" ", 2)
        assert len(parts) < 2 or parts[1] not in ("OK",) or \
            parts[0] == "*", "%s: %r" % (where, lines)


def test_random_binary_blobs(one_worker):
    srv = one_worker
    seed = seed_of()
    rnd = random.Random(seed)
    mark = srv.log_mark()
    for i in range(12):
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 9000)))
        if i == 0 or rnd.random() < 0.5:
            blob += b"\r\n"
        r = logged_in(srv) if i % 2 else Raw(srv.imap_port)
        r.send(blob)
        if i % 3 == 0:
            try:
                r.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server closed first (BYE): fine
        lines = r.drain(1.0)
        r.close()
        refused(lines, "blob %d, seed %d" % (i, seed))
    still_fine(srv, mark, r"refused peer=127\.0\.0\.1 .*cause=",
               "seed %d" % seed)


@pytest.mark.parametrize("auth", [False, True])
def test_huge_line_without_crlf(one_worker, auth):
    """16 MiB without a line end: one BAD [LIMIT], the rest dropped up to
    the CRLF, then commands work again; the worker's memory stays flat."""
    srv = one_worker
    mark = srv.log_mark()
    r = logged_in(srv) if auth else Raw(srv.imap_port)
    rss0 = worker_rss(srv)
    chunk = b"a1 NOOP " + b"x" * (1 << 20)
    for _ in range(16):
        r.send(chunk)
    grew = worker_rss(srv) - rss0
    r.send(b"\r\na2 NOOP\r\n")
    lines, t = r.until("a2")
    assert t.startswith("a2 OK"), (lines, t)
    assert any("BAD [LIMIT]" in ln for ln in lines), lines
    assert not any(ln.startswith("a1 OK") for ln in lines), lines
    # (under ASan freed buffers stay in its quarantine: RSS then counts
    # what went through, not what is held)
    assert grew < 16 << 20 or sanitized(srv), \
        "worker grew %d bytes for a 16 MiB line" % grew
    r.close()
    still_fine(srv, mark, r"cause=line too long", "huge line")


@pytest.mark.parametrize("size", ["4294967295", "4294967296",
                                  "99999999999999999999",
                                  "18446744073709551616"])
@pytest.mark.parametrize("where", ["preauth", "command", "append"])
def test_absurd_literal_sizes(one_worker, size, where):
    srv = one_worker
    mark = srv.log_mark()
    if where == "preauth":
        r = Raw(srv.imap_port)
        r.send("a1 LOGIN {%s}\r\n" % size)
    elif where == "command":
        r = logged_in(srv)
        r.send("a1 SELECT {%s}\r\n" % size)
    else:
        r = logged_in(srv)
        r.send("a1 APPEND INBOX {%s}\r\n" % size)
    ln = r.line()
    assert ln.startswith("a1 BAD") or ln.startswith("a1 NO"), ln
    assert not ln.startswith("+"), ln
    # the session goes on: nothing was waited for
    _, t = r.cmd("a2", "NOOP")
    assert t.startswith("a2 OK"), t
    r.close()
    still_fine(srv, mark, r"refused .*cause=.*(literal|message|size|too"
               r" large|octets)", "{%s} %s" % (size, where))


def test_nonsync_absurd_literal_closes(one_worker):
    srv = one_worker
    mark = srv.log_mark()
    r = logged_in(srv)
    r.send("a1 SELECT {99999999999999999999+}\r\n")
    lines = r.drain(3.0)
    assert any(ln.startswith("a1 BAD") for ln in lines), lines
    r.close()
    still_fine(srv, mark, r"refused .*cause=.*literal", "nonsync literal")


@pytest.mark.parametrize("cmd", ["FETCH 1 %s", "UID SEARCH %sALL%s",
                                 "STORE 1 FLAGS %s", "ID %s"])
def test_parentheses_10000_deep(one_worker, cmd):
    srv = one_worker
    mark = srv.log_mark()
    r = logged_in(srv)
    _, t = r.cmd("a0", "SELECT INBOX")
    assert t.startswith("a0 OK"), t
    deep = "(" * 10000 + ")" * 10000
    if cmd.count("%s") == 2:
        text = cmd % ("(" * 10000, ")" * 10000)
    else:
        text = cmd % deep
    lines, t = r.cmd("a1", text)
    assert t.startswith("a1 BAD") or t.startswith("a1 NO"), (t, lines[:3])
    _, t = r.cmd("a2", "NOOP")
    assert t.startswith("a2 OK"), t
    r.close()
    still_fine(srv, mark, r"refused .*cause=", cmd)


@pytest.mark.parametrize("ranges", [12000, 100000])
def test_many_sequence_ranges(one_worker, ranges):
    srv = one_worker
    mark = srv.log_mark()
    r = logged_in(srv)
    _, t = r.cmd("a0", "SELECT INBOX")
    assert t.startswith("a0 OK"), t
    seqset = ",".join("1" if ranges <= 20000 else "%d:%d" % (i, i + 1)
                      for i in range(1, ranges + 1))
    # over the line cap the tag is not known: "* BAD [LIMIT]"
    r.send("a1 UID FETCH %s (FLAGS)\r\na2 NOOP\r\n" % seqset)
    lines, t = r.until("a2")
    assert t.startswith("a2 OK"), t
    assert [ln for ln in lines if ln.startswith(("a1 BAD", "a1 NO",
                                                 "* BAD"))], lines[:5]
    assert not [ln for ln in lines if ln.startswith("a1 OK")], lines[:5]
    r.close()
    still_fine(srv, mark, r"refused .*cause=.*(range|too long|set)",
               "%d ranges" % ranges)


@pytest.mark.parametrize("text,auth", [
    (b'LOGIN "ali\x00ce@example.org" "pw"', False),
    (b'SELECT "IN\x00BOX"', True),
    (b'UID SEARCH SUBJECT "by\x00stander"', True),
    (b'CREATE "a\x00b"', True),
])
def test_nul_in_quoted_strings(one_worker, text, auth):
    srv = one_worker
    mark = srv.log_mark()
    r = logged_in(srv) if auth else Raw(srv.imap_port)
    if auth:
        _, t = r.cmd("a0", "SELECT INBOX")
        assert t.startswith("a0 OK"), t
    lines, t = r.cmd("a1", text)
    assert t.startswith("a1 BAD") or t.startswith("a1 NO"), (text, t)
    _, t = r.cmd("a2", "NOOP")
    assert t.startswith("a2 OK"), t
    r.close()
    still_fine(srv, mark, r"refused .*cause=", repr(text))
    # nothing was created under a name cut at the NUL
    assert not os.path.exists(os.path.join(srv.maildir(ALICE), ".a"))


@pytest.mark.parametrize("garbage", ["random", "plaintext", "half_hello"])
def test_tls_garbage_on_imaps(one_worker, garbage):
    srv = one_worker
    seed = seed_of()
    rnd = random.Random(seed)
    mark = srv.log_mark()
    s = socket.create_connection(("127.0.0.1", srv.imaps_port), timeout=5)
    if garbage == "random":
        s.sendall(bytes(rnd.getrandbits(8) for _ in range(5000)))
    elif garbage == "plaintext":
        s.sendall(b"a1 CAPABILITY\r\na2 LOGIN alice x\r\n")
    else:  # a TLS record header announcing 16 KiB, then silence
        s.sendall(b"\x16\x03\x01\x40\x00\x01\x00\x3f\xfc\x03\x03")
        s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert b"OK" not in got, (seed, got[:200])
    still_fine(srv, mark, r"(TLS|tls).*(handshake|failed|closed|alert)",
               "%s, seed %d" % (garbage, seed))


# -- a client that stops reading during a large FETCH ----------------------

def worker_pids(srv):
    out = []
    for p in srv.descendants():
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                if b"worker" in f.read():
                    out.append(p)
        except OSError:
            pass
    if not out:  # the process title may not say it: every child counts
        out = srv.descendants()
    return out


def sanitized(srv):
    for p in worker_pids(srv):
        try:
            with open("/proc/%d/maps" % p) as f:
                if "libasan" in f.read():
                    return True
        except OSError:
            pass
    return False


def worker_rss(srv):
    total = 0
    for p in worker_pids(srv):
        try:
            with open("/proc/%d/status" % p) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        total += int(ln.split()[1]) * 1024
        except OSError:
            pass
    return total


def plant_messages(srv, n, size):
    """n messages of size bytes as hard links of one file in new/ (as a
    delivery would leave them, sizes in the name): 1 GiB of mail without
    writing 1 GiB."""
    md = srv.maildir(ALICE)
    line = b"y" * 1023 + b"\n"
    body = b"Subject: big\n\n" + line * (size // len(line))
    first = os.path.join(md, "tmp", "big")
    with open(first, "wb") as f:
        f.write(body)
    wire = len(body) + body.count(b"\n")
    st = os.stat(os.path.join(md, "new"))
    for i in range(n):
        name = "1700000000.M%dP1.hostile,S=%d,W=%d" % (i, len(body), wire)
        os.link(first, os.path.join(md, "new", name))
    os.unlink(first)
    os.chown(md, st.st_uid, st.st_gid)
    return wire


def test_fetch_to_a_client_that_stops_reading_is_bounded(one_worker):
    srv = one_worker
    mark = srv.log_mark()
    n = 1000
    plant_messages(srv, n, 1 << 20)
    rss0 = worker_rss(srv)
    r = logged_in(srv, rcvbuf=4096)
    r.sock.settimeout(60)
    lines, t = r.cmd("a0", "SELECT INBOX")
    assert t.startswith("a0 OK"), t
    assert "* %d EXISTS" % (n + 1) in lines, lines
    assert worker_pids(srv) and rss0 > 0
    r.send("a1 FETCH 1:* BODY.PEEK[]\r\n")
    first = r.line()  # the FETCH started: "* 1 FETCH (BODY[] {N}"
    assert first.startswith("* 1 FETCH"), first
    peak = 0
    for _ in range(20):
        time.sleep(0.15)
        peak = max(peak, worker_rss(srv) - rss0)
    # others on the same worker are served meanwhile
    by = srv.bystander
    _, t = by.cmd("b9", "NOOP")
    assert t.startswith("b9 OK"), t
    print("worker RSS growth, 1 GiB FETCH not read: %d KiB" % (peak >> 10))
    assert peak < 64 << 20, \
        "the worker grew %d MiB while a client did not read a 1 GiB " \
        "FETCH" % (peak >> 20)
    r.close()
    time.sleep(0.3)
    assert "died" not in srv.log_since(mark)
    assert srv.alive()
