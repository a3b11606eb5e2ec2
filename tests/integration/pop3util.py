"""Client-side helpers for the postd integration tests.

Pop3Conn is a deliberately small POP3 client on a raw socket: it reads
exactly what the server sends (no line-length limits, no dot-unstuffing
unless asked), so tests can check bytes on the wire, pipelining, STLS
buffering and hostile input that poplib would refuse to send.
"""

import base64
import re
import ssl

from lineconn import LineConn, ServerClosed  # noqa: F401 (re-exported)

DEFAULT_TIMEOUT = 10.0


class Pop3Conn(LineConn):
    def __init__(self, port, host="127.0.0.1", tls_ctx=None,
                 server_hostname="localhost", timeout=DEFAULT_TIMEOUT,
                 greeting=True):
        super().__init__(port, host, tls_ctx, server_hostname, timeout)
        self.greeting = self.line() if greeting else None

    # -- low level: see lineconn.LineConn --------------------------------
    def readline_exact_unbuffered(self):
        """Reads one line one byte at a time so that nothing after the
        line is consumed from the socket (used before a TLS handshake)."""
        assert not self.buf, "bytes buffered before STLS reply: %r" % self.buf
        out = bytearray()
        while not out.endswith(b"\n"):
            b = self.sock.recv(1)
            if not b:
                raise ServerClosed("closed after %r" % bytes(out))
            out += b
        return bytes(out)

    def line(self):
        """One reply line, decoded as latin-1, without CRLF. The raw line
        must end in CRLF (RFC 1939 section 3)."""
        raw = self.readline_raw()
        assert raw.endswith(b"\r\n"), "line not terminated by CRLF: %r" % raw
        return raw[:-2].decode("latin-1")

    def cmd(self, command):
        self.send(command + "\r\n" if isinstance(command, str)
                  else command + b"\r\n")
        return self.line()

    def read_multi_raw(self):
        """The body of a multi-line response in its stuffed wire form,
        up to (not including) the terminating ".CRLF"; the final CRLF of
        the last line is included."""
        search_from = 0
        while True:
            if len(self.buf) >= 3 and self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b""
            i = self.buf.find(b"\r\n.\r\n", search_from)
            if i >= 0:
                body = bytes(self.buf[:i + 2])
                del self.buf[:i + 5]
                return body
            search_from = max(0, len(self.buf) - 4)
            self._recv_more(1 << 20)

    def multi(self):
        """Lines of a multi-line response, unstuffed, as str (latin-1)."""
        body = unstuff(self.read_multi_raw())
        if not body:
            return []
        assert body.endswith(b"\r\n")
        return [ln.decode("latin-1") for ln in body[:-2].split(b"\r\n")]

    def cmd_multi(self, command):
        """Sends command; returns (status line, lines or None on -ERR)."""
        status = self.cmd(command)
        if status.startswith("+OK"):
            return status, self.multi()
        return status, None

    def capa(self):
        status, lines = self.cmd_multi("CAPA")
        assert status.startswith("+OK"), status
        return lines

    def login(self, user, password):
        r = self.cmd("USER " + user)
        if not r.startswith("+OK"):
            return r
        return self.cmd("PASS " + password)


# -- message forms ---------------------------------------------------------

def wire(msg):
    """The CRLF form a POP3 server must send for msg (before stuffing):
    every line end CRLF, and a CRLF added if the last line had none."""
    assert b"\r" not in msg.replace(b"\r\n", b""), "bare CR in test message"
    out = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def stuff(w):
    """Dot-stuffing of a CRLF-form body (RFC 1939 section 3)."""
    if not w:
        return w
    out = w.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out


def unstuff(body):
    """Inverse of stuff(); asserts the stuffing itself was valid."""
    if not body:
        return body
    for ln in body.split(b"\r\n"):
        assert not (ln.startswith(b".") and not ln.startswith(b"..")), \
            "line starting with a single '.' inside a multi-line " \
            "response: %r" % ln[:80]
    out = body.replace(b"\r\n..", b"\r\n.")
    if out.startswith(b".."):
        out = out[1:]
    return out


def top_wire(msg, n):
    """Expected TOP msg n in CRLF form: header, blank line, n body lines."""
    w = wire(msg)
    lines = w.split(b"\r\n")[:-1]
    try:
        blank = lines.index(b"")
    except ValueError:
        return w  # no body at all
    keep = lines[:blank + 1 + n]
    return b"".join(ln + b"\r\n" for ln in keep)


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode("ascii")


def plain_ir(authcid, password, authzid=""):
    return b64(authzid.encode() + b"\0" + authcid.encode() + b"\0" +
               password.encode())


def simple_msg(subject, body="Hello.\n", frm="sender@example.net",
               to="alice@example.org"):
    return ("From: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s@test>\n\n%s" % (
        frm, to, subject, re.sub(r"\W", "", subject) or "x", body)).encode()


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx
