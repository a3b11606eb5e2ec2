"""SMTP smuggling (CVE-2023-51764/51765/51766 class, INV-S1): a DATA body
ends only at <CRLF>.<CRLF>. A body holding "<LF>.<LF>MAIL FROM..." and the
like must give exactly one message (or none, refused), never a second,
smuggled one - with bare LF refused (default) and with normalisation."""

import pytest

from conftest import ALICE, DOMAIN
from smtputil import (SmtpConn, all_maildir_files, check_trace,
                      pop3_fetch_all, queue_entries)

SENDER = "sender@remote.example"
BOB = "bob@" + DOMAIN

ENDINGS = {
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
    "crlf-dot-space-crlf": b"\r\n. \r\n",
    "crlf-dot-nul-crlf": b"\r\n.\0\r\n",
}


@pytest.fixture(scope="module")
def norm_server(tls_files):
    from conftest import _require_binaries, running_server
    _require_binaries()
    with running_server(tls_files,
                        overrides={"smtp_normalize_bare_lf": "yes"}) as srv:
        yield srv


def payload(ending, rcpt=BOB):
    """The body the attacker sends after 354: a fake end, then a whole
    second transaction, then the real end."""
    p = (b"From: a@remote.example\r\nSubject: outer\r\n\r\nouter body" +
         ending)
    p += (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<" + rcpt.encode() +
          b">\r\nDATA\r\nFrom: ceo@example.org\r\nSubject: smuggled\r\n\r\n"
          b"smuggled\r\n.\r\n")
    return p


def run_attack(srv, body, port=None):
    """Sends the envelope, waits for 354, then the body and QUIT in one
    write; returns every reply after the 354."""
    with SmtpConn(port or srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(body + b"QUIT\r\n")
        return c.read_all_replies()


def check_one_or_none(srv, replies):
    files = all_maildir_files(srv)
    accepted = [r for r in replies if r.startswith("250 2.0.0")]
    assert len(accepted) <= 1, "more than one message accepted: %r" % replies
    assert not any(r.startswith("354") for r in replies), \
        "a smuggled DATA was accepted: %r" % replies
    # the smuggled recipient (bob) must have nothing
    assert pop3_fetch_all(srv, BOB) == [], "bob got a smuggled message"
    assert len(files) == len(accepted), (files, replies)
    assert queue_entries(srv) == []
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        if b"smuggled" in data:
            # only as part of the one outer message
            assert b"outer body" in data and b"MAIL FROM:<evil" in data, data
    return files


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_smuggling_refused_by_default(shared_server, name):
    srv = shared_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    ending = ENDINGS[name]
    replies = run_attack(srv, payload(ending))
    files = check_one_or_none(srv, replies)
    assert replies[-1].startswith("221"), replies
    bare = ending.replace(b"\r\n", b"")
    if b"\r" in bare or b"\n" in bare:
        # bare CR or LF in the body: refused with 550 5.6.0 by default
        assert replies[0].startswith("550 5.6.0"), replies
        assert files == []


@pytest.mark.parametrize("name", sorted(ENDINGS))
def test_smuggling_with_normalize_one_message(norm_server, name):
    """With smtp_normalize_bare_lf = yes the body is kept (bare line ends
    become CRLF in the stored message) but still ends only at the real
    <CRLF>.<CRLF>: one message for alice, holding the fake second
    transaction as text."""
    srv = norm_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    ending = ENDINGS[name]
    replies = run_attack(srv, payload(ending))
    check_one_or_none(srv, replies)
    assert replies[0].startswith("250 2.0.0") or \
        replies[0].startswith("550 5.6.0"), replies
    if replies[0].startswith("250"):
        (_, got), = pop3_fetch_all(srv, ALICE)
        rest = check_trace(got, SENDER, "ESMTP")
        assert b"outer body" in rest and b"smuggled" in rest
        assert b"MAIL FROM:<evil@x.example>" in rest


def test_smuggling_bdat_then_data_text(shared_server):
    """A BDAT chunk holding a DATA-style end and commands is just content."""
    srv = shared_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    chunk = (b"Subject: chunk\r\n\r\nbody\r\n.\r\nMAIL FROM:<evil@x>\r\n"
             b"RCPT TO:<" + BOB.encode() + b">\r\nDATA\r\nsmuggled\r\n")
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"QUIT\r\n")
        replies = c.read_all_replies()
    assert replies[0].startswith("250"), replies
    assert replies[1].startswith("221"), replies
    assert pop3_fetch_all(srv, BOB) == []
    (_, got), = pop3_fetch_all(srv, ALICE)
    # BDAT content is not dot-unstuffed or cut: stored whole
    assert check_trace(got, SENDER, "ESMTP") == chunk


def test_pipelined_data_end_and_commands(shared_server):
    """A legitimate <CRLF>.<CRLF> followed by pipelined commands in the
    same write: one message, then the commands are executed normally."""
    srv = shared_server
    srv.clear_mailbox()
    srv.clear_mailbox(BOB)
    body = (b"Subject: legit\r\n\r\nfirst\r\n.\r\n"
            b"MAIL FROM:<" + SENDER.encode() + b">\r\nRCPT TO:<" +
            BOB.encode() + b">\r\nDATA\r\n")
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert c.cmd("RCPT TO:<%s>" % ALICE).startswith("250")
        assert c.cmd("DATA").startswith("354")
        c.send(body)
        replies = [c.reply_line() for _ in range(4)]
        assert replies[0].startswith("250 2.0.0"), replies
        assert replies[1].startswith("250 2.1.0"), replies
        assert replies[2].startswith("250 2.1.5"), replies
        assert replies[3].startswith("354"), replies
        c.send(b"Subject: second\r\n\r\nsecond\r\n.\r\n")
        assert c.reply_line().startswith("250 2.0.0")
        c.cmd("QUIT")
    assert len(pop3_fetch_all(srv, ALICE)) == 1
    assert len(pop3_fetch_all(srv, BOB)) == 1
