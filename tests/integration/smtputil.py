"""Client-side SMTP helpers for the postd integration tests.

SmtpConn is a small SMTP client on a raw socket: it sends exactly the
bytes a test gives it (pipelining, bare LF/CR, smuggling payloads, BDAT)
and reads replies as they come, so tests see the server's real order.
The other helpers fetch mail over POP3 and take the trace headers
(Return-Path, Received) off a delivered message.
"""

import os
import re
import smtplib
import socket
import time

import pop3util
from lineconn import LineConn, ServerClosed  # noqa: F401 (re-exported)

DEFAULT_TIMEOUT = 15.0

# ENHANCEDSTATUSCODES (RFC 2034): "250 2.1.0 text"
REPLY_RE = re.compile(r"^([2-5][0-9][0-9])([ -])(.*)$")


class SmtpConn(LineConn):
    ENCODING = "utf-8"

    def __init__(self, port, host="127.0.0.1", tls_ctx=None,
                 server_hostname="localhost", timeout=DEFAULT_TIMEOUT,
                 greeting=True):
        super().__init__(port, host, tls_ctx, server_hostname, timeout)
        self.greeting = self.reply() if greeting else None

    # -- low level: see lineconn.LineConn --------------------------------
    def reply(self):
        """One (possibly multi-line) reply: (code, [texts]). Each line must
        end in CRLF and carry the same code (RFC 5321 section 4.2.1)."""
        code = None
        texts = []
        while True:
            raw = self.readline_raw()
            assert raw.endswith(b"\r\n"), "reply line without CRLF: %r" % raw
            line = raw[:-2].decode("utf-8", errors="replace")
            m = REPLY_RE.match(line)
            assert m, "malformed reply line: %r" % line
            if code is None:
                code = int(m.group(1))
            assert int(m.group(1)) == code, \
                "code changed inside a multi-line reply: %r" % line
            texts.append(m.group(3))
            if m.group(2) == " ":
                return code, texts

    def reply_line(self):
        """A reply as one string "CODE text" (last line's text)."""
        code, texts = self.reply()
        return "%d %s" % (code, texts[-1])

    def cmd(self, command):
        """Sends one command; returns "CODE text"."""
        self.send(command + "\r\n")
        return self.reply_line()

    def ehlo(self, name="client.example"):
        """Returns (code, extension keywords upper-cased, raw lines)."""
        self.send("EHLO %s\r\n" % name)
        code, texts = self.reply()
        exts = {}
        for t in texts[1:]:
            parts = t.split(None, 1)
            exts[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
        return code, exts, texts

    def read_reply_unbuffered(self):
        """Reads one single-line reply a byte at a time so that nothing
        after it is consumed (before a TLS handshake)."""
        assert not self.buf, "bytes buffered before STARTTLS reply: %r" % \
            bytes(self.buf)
        out = bytearray()
        while not out.endswith(b"\n"):
            b = self.sock.recv(1)
            if not b:
                raise ServerClosed("closed after %r" % bytes(out))
            out += b
        return bytes(out)

    def read_all_replies(self, timeout=10.0):
        """Reads replies until EOF; returns them as "CODE text" strings
        (for tests that send a whole session in one write)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "connection still open after %.1fs; got %r" % (
                timeout, out)
            self.sock.settimeout(left)
            try:
                out.append(self.reply_line())
            except (ServerClosed, ConnectionResetError):
                assert not self.buf, "partial reply before EOF: %r" % \
                    bytes(self.buf)
                return out
            except socket.timeout:
                continue


def data_wire(msg):
    """msg in the CRLF form with dot-stuffing and the terminator, as a
    DATA body is sent (RFC 5321 section 4.5.2)."""
    w = pop3util.wire(msg)
    return pop3util.stuff(w) + b".\r\n"


# -- fetching over POP3 --------------------------------------------------------

def pop3_fetch_all(srv, user, tls=False):
    """Every message of user's mailbox over POP3: a list of
    (uidl, CRLF bytes without stuffing). The session ends with QUIT
    (nothing is deleted)."""
    c = srv.login(user, tls=tls)
    try:
        st = c.cmd("STAT").split()
        assert st[0] == "+OK", st
        n = int(st[1])
        status, lines = c.cmd_multi("UIDL")
        assert status.startswith("+OK"), status
        uidls = {}
        for ln in lines:
            num, uid = ln.split()
            uidls[int(num)] = uid
        assert sorted(uidls) == list(range(1, n + 1)), lines
        out = []
        # pipelined (CAPA PIPELINING) in batches: one round trip per
        # message costs a delayed-ACK wait on some sizes
        for first in range(1, n + 1, 50):
            batch = range(first, min(n, first + 49) + 1)
            c.send("".join("RETR %d\r\n" % i for i in batch))
            for i in batch:
                r = c.line()
                assert r.startswith("+OK"), "RETR %d: %s" % (i, r)
                out.append((uidls[i], pop3util.unstuff(c.read_multi_raw())))
        assert c.cmd("QUIT").startswith("+OK")
        return out
    finally:
        c.close()


def pop3_stat(srv, user):
    c = srv.login(user)
    try:
        st = c.cmd("STAT").split()
        assert st[0] == "+OK", st
        assert c.cmd("QUIT").startswith("+OK")
        return int(st[1])
    finally:
        c.close()


def split_trace(msg):
    """Splits a retrieved message (CRLF) into (return_path, received, rest):
    the first header must be Return-Path, the second Received (unfolded,
    continuation whitespace kept as one space)."""
    lines = msg.split(b"\r\n")
    assert lines[0].startswith(b"Return-Path: "), \
        "first line is not Return-Path: %r" % lines[0][:200]
    rp = lines[0][len(b"Return-Path: "):].decode("utf-8", "replace")
    assert lines[1].startswith(b"Received: "), \
        "second line is not Received: %r" % lines[1][:200]
    rec = [lines[1].decode("utf-8", "replace")]
    i = 2
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        rec.append(lines[i].decode("utf-8", "replace").strip())
        i += 1
    return rp, " ".join(rec), b"\r\n".join(lines[i:])


RECEIVED_RE = re.compile(
    r"^Received: from (\S+) \(\[([0-9a-fA-F.:]+)\]\) by (\S+) \(postd\) "
    r"with (\S+) id (\S+)(?: \(([^)]*)\))?; (.+)$")


def check_trace(msg, sender, proto, helo=None, tls=False):
    """Checks the trace headers; returns the message without them.
    proto: ESMTP, ESMTPS, ESMTPA or ESMTPSA (RFC 3848)."""
    rp, rec, rest = split_trace(msg)
    assert rp == "<%s>" % sender, "Return-Path %r, want <%s>" % (rp, sender)
    m = RECEIVED_RE.match(rec)
    assert m, "Received header not in the documented form: %r" % rec
    if helo is not None:
        assert m.group(1) == helo, rec
    assert m.group(2) == "127.0.0.1", "peer not named: %r" % rec
    assert m.group(4) == proto, "want 'with %s': %r" % (proto, rec)
    if tls:
        assert m.group(6) and m.group(6).startswith("TLSv1."), rec
    else:
        assert m.group(6) is None, "TLS named without TLS: %r" % rec
    return rest


def smtp_client(srv, port=None, tls_ctx=None, helo="client.example",
                timeout=30):
    """smtplib.SMTP to the smtp listener (or port)."""
    c = smtplib.SMTP("127.0.0.1", port or srv.smtp_port,
                     local_hostname=helo, timeout=timeout)
    return c


def all_maildir_files(srv):
    """Every file under DATA_DIR/mail/*/*/{new,cur}: a list of paths."""
    out = []
    root = os.path.join(srv.data_dir, "mail")
    for dom in os.listdir(root) if os.path.isdir(root) else []:
        for local in os.listdir(os.path.join(root, dom)):
            for sub in ("new", "cur"):
                p = os.path.join(root, dom, local, sub)
                if os.path.isdir(p):
                    out += [os.path.join(p, n) for n in os.listdir(p)]
    return sorted(out)


def queue_entries(srv):
    p = os.path.join(srv.data_dir, "queue", "env")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def clear_all(srv):
    for u in list(srv.users):
        srv.clear_mailbox(u)
