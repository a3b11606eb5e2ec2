"""STARTTLS (RFC 3207) on listen.smtp and listen.submission: plaintext
pipelined after STARTTLS is a sync error that closes the connection, and
the session starts over after TLS (INV-S1): EHLO is needed again, the
envelope is forgotten."""

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


def injection_refused(srv, port, injected):
    """EHLO, then "STARTTLS\\r\\n" + injected in one write: plaintext sent
    before the 220 is a sync error (RFC 3207 section 4.2, CVE-2011-0411
    class): one 554 5.5.0, the connection closed, one refusal log line.
    Nothing injected is answered, before or after."""
    mark = srv.log_mark()
    with SmtpConn(port) as c:
        code, exts, _ = c.ehlo()
        assert "STARTTLS" in exts
        c.send(b"STARTTLS\r\n" + injected)
        assert c.reply_line().startswith("554 5.5.0"), "no sync error"
        rest = c.wait_closed()
        assert rest == b"", "replies after the sync error: %r" % rest
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*cause=pipelining sync "
                 r"error: \d+ octets sent after STARTTLS", since=mark)


def test_starttls_injection_rset_refused(shared_server):
    injection_refused(shared_server, shared_server.smtp_port, b"RSET\r\n")


def test_starttls_injection_mail_refused(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    injection_refused(srv, srv.smtp_port,
                      b"MAIL FROM:<evil@x.example>\r\n"
                      b"RCPT TO:<%s>\r\n" % ALICE.encode())


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
    """Same on submission: an injected AUTH is never answered."""
    srv = shared_server
    from pop3util import plain_ir
    injection_refused(srv, srv.submission_port, (
        "AUTH PLAIN %s\r\n" % plain_ir(ALICE, srv.users[ALICE])).encode())


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
