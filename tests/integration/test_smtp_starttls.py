"""STARTTLS (RFC 3207) on listen.smtp and listen.submission: plaintext
pipelined after STARTTLS is discarded, and the session starts over
(INV-S1): EHLO is needed again, the envelope is forgotten."""

import ssl

from conftest import ALICE
from smtputil import SmtpConn

SENDER = "sender@remote.example"


def tls_after(c, srv, injected):
    """EHLO, then "STARTTLS\\r\\n" + injected in one write; reads the 220
    without consuming anything after it, then the handshake."""
    code, exts, _ = c.ehlo()
    assert "STARTTLS" in exts
    c.send(b"STARTTLS\r\n" + injected)
    r = c.read_reply_unbuffered()
    assert r.startswith(b"220 2.0.0"), r
    c.starttls(srv.ctx())


def test_starttls_injection_rset_discarded(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        tls_after(c, srv, b"RSET\r\n")
        # the first reply after TLS must answer a command sent after TLS:
        # HELP gets 214, the injected RSET would have got 250
        c.send(b"HELP\r\n")
        r = c.reply_line()
        assert r.startswith("214") or r.startswith("503"), \
            "first reply after TLS is %r (answer to injected RSET?)" % r
        assert c.nothing_pending()


def test_starttls_injection_mail_discarded(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        tls_after(c, srv, b"MAIL FROM:<evil@x.example>\r\n"
                  b"RCPT TO:<%s>\r\n" % ALICE.encode())
        code, exts, texts = c.ehlo("after.example")
        assert code == 250, texts
        # the injected MAIL did not start a transaction
        r = c.cmd("RCPT TO:<%s>" % ALICE)
        assert r.startswith("503"), r
        r = c.cmd("DATA")
        assert r.startswith("503"), r
        c.cmd("QUIT")


def test_starttls_requires_ehlo_again(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        tls_after(c, srv, b"")
        r = c.cmd("MAIL FROM:<%s>" % SENDER)
        assert r.startswith("503"), "MAIL before EHLO after TLS: %r" % r
        code, exts, texts = c.ehlo()
        assert code == 250
        assert "STARTTLS" not in exts, texts
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        c.cmd("QUIT")


def test_starttls_forgets_envelope(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        c.send(b"STARTTLS\r\n")
        r = c.read_reply_unbuffered()
        if r.startswith(b"220"):
            c.starttls(srv.ctx())
            c.ehlo()
            r = c.cmd("DATA")
            assert r.startswith("503"), "envelope survived STARTTLS: %r" % r
        else:
            # refusing STARTTLS inside a transaction is allowed too
            assert r.startswith(b"503"), r
        c.cmd("QUIT")


def test_starttls_twice_refused(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        tls_after(c, srv, b"")
        c.ehlo()
        r = c.cmd("STARTTLS")
        assert r.startswith("503") or r.startswith("502") or \
            r.startswith("454"), r
        assert c.cmd("NOOP").startswith("250")
        c.cmd("QUIT")


def test_starttls_injection_submission(shared_server):
    """Same on submission: an injected AUTH must not be answered."""
    srv = shared_server
    from pop3util import plain_ir
    with SmtpConn(srv.submission_port) as c:
        tls_after(c, srv, ("AUTH PLAIN %s\r\n" % plain_ir(
            ALICE, srv.users[ALICE])).encode())
        c.send(b"HELP\r\n")
        r = c.reply_line()
        assert r.startswith("214") or r.startswith("503"), \
            "first reply after TLS is %r (answer to injected AUTH?)" % r
        assert c.nothing_pending()
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530"), "injected AUTH took effect: %r" % r
        c.cmd("QUIT")


def test_starttls_handshake_failure_then_new_connection(shared_server):
    """A broken handshake closes that session only."""
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.send(b"\x16\x03\x01\x00\x05garbage-not-tls\r\n")
        c.wait_closed()
    with SmtpConn(srv.smtp_port) as c:
        assert c.greeting[0] == 220
        c.cmd("QUIT")


def test_smtp_ssl_context_verifies(shared_server):
    """The certificate on STARTTLS verifies against the test CA."""
    srv = shared_server
    ctx = ssl.create_default_context(cafile=srv.ca)
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.starttls(ctx, server_hostname="localhost")
        assert c.sock.version().startswith("TLSv1.")
        c.ehlo()
        c.cmd("QUIT")
