"""PROXY protocol headers (HAProxy's specification, v1 and v2) as a load
balancer sends them, and clients that send one before anything else."""

import ipaddress
import socket
import struct
import time

import pop3util
from smtputil import SmtpConn

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="127.0.0.1", sport=40000, dport=110):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                          dport)).encode()


def v2(src, dst="127.0.0.1", sport=40000, dport=110, tlvs=b""):
    s = ipaddress.ip_address(src)
    d = ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack(">HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: written apart from postd's
    table so that the two check each other."""
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def v2_crc32c(src, corrupt=False, **kw):
    """v2(src) ending with a PP2_TYPE_CRC32C TLV, its checksum computed
    as HAProxy's specification says (the whole header, the field zeroed);
    corrupt: the checksum is off by one bit."""
    header = v2(src, tlvs=b"\x03\x00\x04" + bytes(4), **kw)
    crc = crc32c(header) ^ (1 if corrupt else 0)
    return header[:-4] + struct.pack(">I", crc)


def v2_local():
    """What HAProxy sends on its own connections (health checks)."""
    return V2_SIG + b"\x20\x00\x00\x00"


def _proxied(cls, port, header, tls_ctx, timeout):
    c = cls(port, greeting=False, timeout=timeout)
    c.sock.sendall(header)
    if tls_ctx is not None:
        c.sock = tls_ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.tls = True
    return c


def pop3(port, header, tls_ctx=None, timeout=10.0):
    """A POP3 connection that opens with header; greeting read."""
    c = _proxied(pop3util.Pop3Conn, port, header, tls_ctx, timeout)
    c.greeting = c.line()
    return c


def smtp(port, header, tls_ctx=None, timeout=10.0):
    c = _proxied(SmtpConn, port, header, tls_ctx, timeout)
    c.greeting = c.reply()
    return c


def wait_proxied_pop3(srv, timeout=15.0):
    """postd is up: its POP3 listener answers a proxied connection (the
    fixture's own readiness check sends no header)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with pop3(srv.pop3_port, v1("192.0.2.200"), timeout=3) as c:
                if c.greeting.startswith("+OK"):
                    c.cmd("QUIT")
                    return
                last = c.greeting
        except (OSError, pop3util.ServerClosed) as e:
            last = e
        time.sleep(0.05)
    raise AssertionError("postd not ready: %r\n%s" % (last, srv.log()[-2000:]))


def closed_without_greeting(port, data, timeout=5.0):
    """Sends data and expects the server to close without a byte."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk
        raise AssertionError("still open after %.1fs; got %r" % (timeout,
                                                                 got))
    finally:
        s.close()
