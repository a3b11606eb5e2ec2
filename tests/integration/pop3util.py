"""Client-side helpers for the postd integration tests.

Pop3Conn is a deliberately small POP3 client on a raw socket: it reads
exactly what the server sends (no line-length limits, no dot-unstuffing
unless asked), so tests can check bytes on the wire, pipelining, STLS
buffering and hostile input that poplib would refuse to send.
"""

import base64
import re
import socket
import ssl
import time

DEFAULT_TIMEOUT = 10.0


class ServerClosed(Exception):
    """The server closed the connection (EOF) while we expected data."""


class Pop3Conn:
    def __init__(self, port, host="127.0.0.1", tls_ctx=None,
                 server_hostname="localhost", timeout=DEFAULT_TIMEOUT,
                 greeting=True):
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.tls = False
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock,
                                            server_hostname=server_hostname)
            self.tls = True
        self.greeting = self.line() if greeting else None

    # -- low level -------------------------------------------------------
    def _recv_more(self, size=65536):
        data = self.sock.recv(size)
        if not data:
            raise ServerClosed("connection closed by server; buffered: %r"
                               % bytes(self.buf[:200]))
        self.buf += data

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def readline_raw(self):
        """One line including its CRLF (or LF), as bytes."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            self._recv_more()

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

    def starttls(self, ctx, server_hostname="localhost"):
        assert not self.buf, \
            "plaintext bytes buffered after STLS reply: %r" % bytes(self.buf)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.tls = True

    def wait_closed(self, timeout=5.0):
        """Reads until EOF. Returns the bytes received before EOF, or
        raises AssertionError if the connection stays open."""
        deadline = time.monotonic() + timeout
        got = bytes(self.buf)
        self.buf.clear()
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "connection still open after %.1fs; got %r" % (
                timeout, got[:300])
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                return got
            if not data:
                return got
            got += data

    def nothing_pending(self, wait=0.3):
        """True if no byte arrives within wait seconds (and none buffered)."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except ssl.SSLWantReadError:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
            return False
        return True  # EOF: nothing more will come either

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes with RST (SO_LINGER 0) instead of FIN."""
        try:
            raw = self.sock
            if isinstance(raw, ssl.SSLSocket):
                raw = socket.socket(fileno=raw.detach())
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
            raw.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
