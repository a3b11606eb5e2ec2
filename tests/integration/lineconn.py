"""A line-oriented client on a raw socket, the base of Pop3Conn and
SmtpConn: it sends exactly the bytes a test gives it and reads what the
server sends, so tests can check bytes on the wire, pipelining, buffering
around STLS/STARTTLS and hostile input that library clients refuse."""

import socket
import ssl
import time


class ServerClosed(Exception):
    """The server closed the connection (EOF) while we expected data."""


class LineConn:
    ENCODING = "latin-1"  # how a str given to send() becomes bytes

    def __init__(self, port, host="127.0.0.1", tls_ctx=None,
                 server_hostname="localhost", timeout=10.0):
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

    def _recv_more(self, size=1 << 20):
        data = self.sock.recv(size)
        if not data:
            raise ServerClosed("connection closed by server; buffered: %r"
                               % bytes(self.buf[:200]))
        self.buf += data

    def send(self, data):
        if isinstance(data, str):
            data = data.encode(self.ENCODING)
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

    def starttls(self, ctx, server_hostname="localhost"):
        """After the server's positive STLS/STARTTLS reply: nothing may be
        buffered (it would be plaintext read past the reply)."""
        assert not self.buf, \
            "plaintext bytes buffered after the TLS reply: %r" % \
            bytes(self.buf)
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
        except (socket.timeout, ssl.SSLWantReadError):
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
