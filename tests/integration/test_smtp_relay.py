"""Recipients on listen.smtp: unknown local users refused at RCPT
(550 5.1.1), and no open relay (INV-R1): '%', '!', quoted local parts,
source routes and address literals never cause relaying; nothing reaches
DATA_DIR/queue without AUTH."""

import pytest

from conftest import ALICE, DOMAIN
from pop3util import simple_msg, wire
from smtputil import SmtpConn, all_maildir_files, queue_entries

SENDER = "sender@remote.example"

RELAY_ATTEMPTS = [
    # (forward-path as sent, must it be the relay refusal itself?)
    ("<user@other.example>", True),
    ("<USER@Other.Example>", True),
    ("<user%%other.example@%s>" % DOMAIN, False),
    ("<alice%%other.example@%s>" % DOMAIN, False),
    ("<other.example!user@%s>" % DOMAIN, False),
    ("<other.example!alice@%s>" % DOMAIN, False),
    ("<\"user@other.example\"@%s>" % DOMAIN, False),
    ("<\"alice@other.example\"@%s>" % DOMAIN, False),
    ("<@other.example:user@other.example>", True),
    ("<@%s:user@other.example>" % DOMAIN, True),
    ("<@other.example:alice@%s>" % DOMAIN, None),
    ("<user@[192.0.2.1]>", True),
    ("<user@[IPv6:2001:db8::1]>", True),
    ("<user@other.example.>", False),
    ("<user@%s.other.example>" % DOMAIN, True),
    ("<user@other.example@%s>" % DOMAIN, False),
    ("<%s@other.example>" % ALICE.split("@")[0], True),
]


def rcpt_is_refused(reply, must_be_relay):
    """A refusal at RCPT: 554 5.7.1 (relay), or, where the parser turns
    the address into a local lookup, 550 5.1.1 (unknown user), or a
    syntax refusal 501/553."""
    if must_be_relay:
        return reply.startswith("554 5.7.1")
    return (reply.startswith("554 5.7.1") or reply.startswith("550 5.1.1")
            or reply.startswith("501 5.1.3") or reply.startswith("553 "))


def test_unknown_local_recipient_550(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 2.1.0")
        r = c.cmd("RCPT TO:<nosuchuser@%s>" % DOMAIN)
        assert r.startswith("550 5.1.1"), r
        # the case of a local domain does not matter
        r = c.cmd("RCPT TO:<nosuchuser@%s>" % DOMAIN.upper())
        assert r.startswith("550 5.1.1"), r
        # no valid recipient: DATA is refused, not accepted and bounced
        r = c.cmd("DATA")
        assert r[0] == "5", r
        assert not r.startswith("354"), r
        assert c.cmd("QUIT").startswith("221")
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=smtp .*cause=", since=mark)


@pytest.mark.parametrize("rcpt,must_be_relay", RELAY_ATTEMPTS,
                         ids=[a for a, _ in RELAY_ATTEMPTS])
def test_inv_r1_no_open_relay(shared_server, rcpt, must_be_relay):
    srv = shared_server
    for u in srv.users:
        srv.clear_mailbox(u)
    before = all_maildir_files(srv)
    assert before == []
    msg = wire(simple_msg("relay test", "relay %s\n" % rcpt))
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        r = c.cmd("RCPT TO:%s" % rcpt)
        if must_be_relay is None:
            # a source route to a local user: RFC 5321 says ignore the
            # route; delivering to alice is fine, relaying is not
            assert r.startswith("250") or rcpt_is_refused(r, False), r
        else:
            assert rcpt_is_refused(r, must_be_relay), \
                "RCPT TO:%s -> %r" % (rcpt, r)
        accepted_relay_rcpt = r.startswith("250")
        # a real local recipient too, so that DATA goes ahead and the
        # refused one has its chance to sneak into the queue
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(msg + b".\r\n")
        r = c.reply_line()
        assert r.startswith("250 2.0.0"), r
        assert c.cmd("QUIT").startswith("221")
    assert queue_entries(srv) == [], "relayed into the queue: %s" % rcpt
    files = all_maildir_files(srv)
    # only alice's Maildir got it (once, or as a hard link for the
    # source-routed alice: still one file per Maildir)
    assert files, "nothing delivered"
    assert all("/%s/alice/" % DOMAIN in f for f in files), files
    assert len(files) == 1, (accepted_relay_rcpt, files)


def test_inv_r1_relay_refused_without_local_rcpt(shared_server):
    """Only relay recipients: every RCPT refused, DATA refused, nothing
    queued."""
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        for rcpt, must in RELAY_ATTEMPTS:
            if must is None:
                continue
            r = c.cmd("RCPT TO:%s" % rcpt)
            assert rcpt_is_refused(r, must), (rcpt, r)
        r = c.cmd("DATA")
        assert r[0] == "5", r
        # still in command mode after the refused DATA (INV-S1)
        assert c.cmd("RSET").startswith("250"), "RSET after refused DATA"
        assert c.cmd("QUIT").startswith("221")
    assert queue_entries(srv) == []


def test_relay_log_line(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<%s>" % SENDER)
        r = c.cmd("RCPT TO:<victim@other.example>")
        assert r.startswith("554 5.7.1"), r
        assert "Relay access denied" in r, r
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=smtp "
                 r"user=- cause=.*other\.example", since=mark)


def test_relay_needs_auth_even_with_local_sender(shared_server):
    """A local sender address does not make an unauthenticated session a
    user's session."""
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % ALICE).startswith("250")
        r = c.cmd("RCPT TO:<someone@other.example>")
        assert r.startswith("554 5.7.1"), r
        c.cmd("QUIT")
    assert queue_entries(srv) == []


def test_rcpt_before_mail_503(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        r = c.cmd("RCPT TO:<%s>" % ALICE)
        assert r.startswith("503"), r
        r = c.cmd("DATA")
        assert r.startswith("503"), r
        c.cmd("QUIT")


def test_mail_before_helo_503(shared_server):
    srv = shared_server
    with SmtpConn(srv.smtp_port) as c:
        r = c.cmd("MAIL FROM:<%s>" % SENDER)
        assert r.startswith("503"), r
        c.cmd("QUIT")
