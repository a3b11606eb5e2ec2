"""Forwarding with SRS (issue 9): bounces to SRS0/SRS1 addresses at
srs_domain are taken on listen.smtp without AUTH and queued to the address
they decode to; forged, expired and malformed ones get 550 5.1.1 and one
log line naming the cause; a forwarded copy leaves with an SRS sender, and
a DSN postd's own queue writes for it goes back to the original sender.

The SRS addresses are made here with Python's hmac module from the
secret postd generated (DATA_DIR/srs.secret), following libsrs2/postsrsd
(base64(HMAC-SHA1(secret, lower(stamp+host+local)))[:4]), so every test
also checks that postd's hashes are the ones postsrsd would make."""

import base64
import hashlib
import hmac
import os
import re
import subprocess
import time

import pytest

from conftest import ALICE, DOMAIN, POSTD
from smtputil import SmtpConn, pop3_fetch_all, queue_entries

try:
    from test_delivery import (FAST, Handler, Sink, dsn_parts,  # noqa: F401
                               sinks, wait_for, wait_queue_empty)
except ImportError:  # pragma: no cover
    Sink = None

pytestmark = pytest.mark.skipif(Sink is None, reason="python3-aiosmtpd missing")

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
DAY = 86400
ORIG = "orig@origin.example"
BODY = ("From: Mailer-Daemon <mailer-daemon@far.example>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; d=far.example; s=s; bh=x; b=y\r\n"
        "\r\n"
        "Your message could not be delivered.\r\n")


# -- SRS, as postsrsd computes it -----------------------------------------

def secret(srv):
    with open(os.path.join(srv.data_dir, "srs.secret"), "rb") as f:
        return f.read().split(b"\n")[0]


def srs_hash(key, *fields):
    data = "".join(fields).lower().encode()
    mac = hmac.new(key, data, hashlib.sha1).digest()
    return base64.b64encode(mac)[:4].decode()


def stamp(now):
    day = int(now) // DAY
    return B32[(day >> 5) & 31] + B32[day & 31]


def srs0(key, addr, domain=DOMAIN, now=None):
    local, host = addr.rsplit("@", 1)
    ts = stamp(time.time() if now is None else now)
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(key, ts, host, local), ts,
                                    host, local, domain)


def srs_reverse(key, addr, now=None):
    """The address an SRS0 of ours decodes to, after checking it."""
    local = addr.rsplit("@", 1)[0]
    m = re.match(r"(?i)SRS0=([^=]+)=([^=]+)=([^=]+)=(.+)$", local)
    assert m, addr
    h, ts, host, user = m.groups()
    assert h.lower() == srs_hash(key, ts, host, user).lower(), addr
    assert ts.upper() == stamp(time.time() if now is None else now), addr
    return "%s@%s" % (user, host)


# -- helpers ----------------------------------------------------------------

def logged(addr):
    """An address as a log line shows it: '=' escaped (log_escape_word),
    so that it cannot pose as another field."""
    return re.escape(addr.replace("=", "\\x3d"))


def transports(**sinks):
    return {"transport.%s" % d.replace("_", "."): "127.0.0.1:%d" % s.port
            for d, s in sinks.items()}


def send_port25(srv, sender, rcpts, body=BODY):
    """A client on listen.smtp without AUTH; returns the RCPT replies and
    the reply to the end of DATA (None if no RCPT was accepted)."""
    replies = []
    with SmtpConn(srv.smtp_port) as c:
        c.ehlo("far.example")
        assert c.cmd("MAIL FROM:<%s>" % sender).startswith("250")
        for r in rcpts:
            replies.append(c.cmd("RCPT TO:<%s>" % r))
        end = None
        if any(r.startswith("250") for r in replies):
            assert c.cmd("DATA").startswith("354")
            c.send(body.encode() + b".\r\n")
            end = c.reply_line()
        assert c.cmd("QUIT").startswith("221")
    return replies, end


# -- (a) a bounce to a valid SRS address goes back to the original sender --

def test_bounce_to_srs0_relayed_to_original_sender(make_server, sinks):
    origin = sinks()
    srv = make_server(overrides=dict(FAST, **transports(origin_example=origin)))
    addr = srs0(secret(srv), ORIG)
    mark = srv.log_mark()
    replies, end = send_port25(srv, "", [addr])
    assert replies[0].startswith("250 2.1.5"), replies
    assert end.startswith("250 2.0.0"), end
    wait_for(lambda: origin.messages, what="the bounce at the origin")
    m = origin.messages[0]
    assert m.mail_from in ("", "<>")  # the null sender stays null
    assert m.rcpts == [ORIG]
    # the body passes untouched (a DKIM signature on it stays valid)
    assert BODY.split("\r\n\r\n", 1)[1].encode() in m.data
    assert b"DKIM-Signature: v=1; a=rsa-sha256; d=far.example" in m.data
    srv.wait_log(r"srs session=\S+ id=\S+ to=<%s> decoded to <%s>"
                 % (logged(addr), logged(ORIG)), since=mark)
    wait_queue_empty(srv)


def test_srs_address_case_and_srs1(make_server, sinks):
    """A relay may fold case; SRS1 goes to the forwarder before us."""
    origin, first = sinks(), sinks()
    srv = make_server(overrides=dict(
        FAST, **transports(origin_example=origin, first_example=first)))
    key = secret(srv)
    folded = srs0(key, ORIG).lower()
    inner = "=abcd=XY=orig.net=bob"
    srs1 = "SRS1=%s=first.example=%s@%s" % (
        srs_hash(key, "first.example", inner), inner, DOMAIN.upper())
    replies, end = send_port25(srv, "", [folded, srs1])
    assert all(r.startswith("250 2.1.5") for r in replies), replies
    assert end.startswith("250"), end
    wait_for(lambda: origin.messages and first.messages)
    assert origin.messages[0].rcpts == [ORIG]
    assert first.messages[0].rcpts == ["SRS0%s@first.example" % inner]


def test_mail_to_srs_address_is_forwarded_with_srs_sender(make_server, sinks):
    """Not a bounce (an auto-reply): the copy to the origin is forwarded,
    so its sender is rewritten too; a local recipient of the same
    message keeps the real sender. One 250 for both entries."""
    origin, third = sinks(), sinks()
    srv = make_server(overrides=dict(
        FAST, **transports(origin_example=origin, third_example=third)))
    key = secret(srv)
    replies, end = send_port25(srv, "robot@third.example",
                               [srs0(key, ORIG), ALICE])
    assert all(r.startswith("250") for r in replies), replies
    assert end.startswith("250 2.0.0"), end
    wait_for(lambda: origin.messages, what="the forwarded copy")
    m = origin.messages[0]
    assert m.rcpts == [ORIG]
    assert m.mail_from.startswith("SRS0="), m.mail_from
    assert m.mail_from.endswith("@" + DOMAIN), m.mail_from
    # postd's hash is the one postsrsd makes with this secret
    assert srs_reverse(key, m.mail_from) == "robot@third.example"
    local = [raw for _, raw in pop3_fetch_all(srv, ALICE)]
    assert len(local) == 1
    assert local[0].startswith(b"Return-Path: <robot@third.example>")
    assert third.messages == []


# -- (b) forged, expired and malformed SRS addresses ------------------------

def forged_cases(key):
    good = srs0(key, ORIG)
    local, rest = good.split("@", 1)
    tag, h, tail = local.split("=", 2)
    other_hash = "AAAA" if h.lower() != "aaaa" else "BBBB"
    return [
        ("%s=%s=%s@%s" % (tag, other_hash, tail, rest), "bad hash"),
        (srs0(b"not-the-secret", ORIG), "bad hash"),
        (good.replace("=origin.example=", "=evil.example="), "bad hash"),
        (srs0(key, ORIG, now=time.time() - 30 * DAY), "expired"),
        ("SRS0=abcd=G3@" + DOMAIN, "malformed"),
        ("SRS0=%s=!!=origin.example=orig@%s" % (
            srs_hash(key, "!!", "origin.example", "orig"), DOMAIN),
         "malformed"),
        ("SRS1=abcd@" + DOMAIN, "malformed"),
    ]


def test_forged_expired_malformed_srs_refused(make_server, sinks):
    origin = sinks()
    srv = make_server(overrides=dict(FAST, **transports(origin_example=origin)))
    key = secret(srv)
    for addr, cause in forged_cases(key):
        mark = srv.log_mark()
        replies, end = send_port25(srv, "", [addr])
        assert replies[0].startswith("550 5.1.1"), (addr, replies)
        assert end is None
        line = srv.wait_log(
            r"refused peer=127\.0\.0\.1 .*proto=smtp .*cause=.*SRS address "
            r"<%s>: %s" % (logged(addr), cause), since=mark)
        assert line
        assert len(re.findall(r"refused peer=", srv.log_since(mark))) == 1
    assert queue_entries(srv) == []
    time.sleep(0.5)
    assert origin.messages == []


def test_srs_of_another_domain_is_no_relay(make_server):
    """INV-R1: an SRS address at a domain not ours is a relay attempt."""
    srv = make_server()
    addr = srs0(secret(srv), ORIG, domain="elsewhere.example")
    replies, _ = send_port25(srv, "", [addr])
    assert replies[0].startswith("554 5.7.1"), replies
    assert queue_entries(srv) == []


# -- (c) a forward whose destination bounces --------------------------------

def test_forward_bounced_dsn_decoded_to_original_sender(make_server, sinks):
    """robot@third.example writes to an SRS address (so postd forwards,
    with an SRS sender); the destination refuses the recipient with 550.
    postd's queue writes a DSN to the SRS sender, decodes it, and the DSN
    reaches robot@third.example."""
    origin = sinks(Handler(rcpt_replies=["550 5.1.1 no such user here"]))
    third = sinks()
    srv = make_server(overrides=dict(
        FAST, **transports(origin_example=origin, third_example=third)))
    mark = srv.log_mark()
    replies, end = send_port25(srv, "robot@third.example",
                               [srs0(secret(srv), ORIG)])
    assert replies[0].startswith("250") and end.startswith("250"), replies
    wait_for(lambda: third.messages, what="the DSN at the original sender")
    dsn = third.messages[0]
    assert dsn.mail_from in ("", "<>")
    assert dsn.rcpts == ["robot@third.example"]
    _, text = dsn_parts(dsn.data)
    assert re.search(r"Final-Recipient: rfc822; ?%s" % re.escape(ORIG),
                     text, re.I), text
    assert re.search(r"Status: 5\.1\.1", text), text
    srv.wait_log(r"DSN to SRS <SRS0\\x3d[^>]+@%s> goes to "
                 r"<robot@third\.example>" % re.escape(DOMAIN), since=mark)
    wait_queue_empty(srv)
    assert origin.messages == []


def _postd_knows_key(key):
    """True if this build's postd -t accepts key (the alias branch)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "postd.conf")
        aliases = os.path.join(d, "aliases")
        with open(aliases, "w") as f:
            f.write("# empty\n")
        with open(conf, "w") as f:
            f.write("domains = %s\ndata_dir = %s/data\n"
                    "listen.smtp = 127.0.0.1:2525\n%s = %s\n"
                    % (DOMAIN, d, key, aliases))
        try:
            r = subprocess.run([POSTD, "-t", "-c", conf], capture_output=True,
                               timeout=30)
        except OSError:
            return False
        return r.returncode == 0


HAVE_ALIASES = _postd_knows_key("aliases_file")


@pytest.mark.skipif(not HAVE_ALIASES,
                    reason="needs aliases_file (the alias branch)")
def test_alias_forward_srs_sender_and_bounce(make_server, sinks):
    """An alias of a local address to another server: the copy leaves
    with an SRS sender whose hash postsrsd would accept; when the
    destination refuses it, postd's DSN goes to the SRS address and from
    there to the original sender."""
    accepting = sinks()
    refusing = sinks(Handler(rcpt_replies=["550 5.1.1 mailbox gone"]))
    third = sinks()
    srv = make_server(overrides=dict(FAST, **transports(
        dest_example=accepting, gone_example=refusing,
        third_example=third)), start=False)
    aliases = os.path.join(srv.base, "aliases")
    with open(aliases, "w") as f:
        f.write("fwd@%s  someone@dest.example\n" % DOMAIN)
        f.write("gone@%s  someone@gone.example\n" % DOMAIN)
    os.chmod(aliases, 0o644)
    srv.overrides["aliases_file"] = aliases
    srv.write_config()
    srv.start()
    key = secret(srv)
    replies, end = send_port25(srv, "robot@third.example",
                               ["fwd@" + DOMAIN, "gone@" + DOMAIN])
    assert all(r.startswith("250") for r in replies), replies
    assert end.startswith("250 2.0.0"), end
    wait_for(lambda: accepting.messages, what="the forwarded copy")
    m = accepting.messages[0]
    assert m.rcpts == ["someone@dest.example"]
    assert srs_reverse(key, m.mail_from) == "robot@third.example"
    assert b"DKIM-Signature: v=1; a=rsa-sha256; d=far.example" in m.data
    wait_for(lambda: third.messages, what="the DSN at the original sender")
    dsn = third.messages[0]
    assert dsn.mail_from in ("", "<>") and dsn.rcpts == ["robot@third.example"]
    _, text = dsn_parts(dsn.data)
    assert re.search(r"Final-Recipient: rfc822; ?someone@gone\.example",
                     text, re.I), text
    wait_queue_empty(srv)


# -- doc/troubleshooting.md rows -------------------------------------------

def test_row_srs_sender_kept_when_too_long(make_server, sinks):
    """SPF fails at the destination of a forwarded copy when postd could
    not rewrite its sender: the SRS form of a long local part would be
    over 64 octets. The copy still goes, with the original sender, and
    one line says so."""
    origin = sinks()
    srv = make_server(overrides=dict(FAST, **transports(origin_example=origin)))
    sender = "a-rather-long-local-part-of-fifty-octets-0123456789@third.example"
    mark = srv.log_mark()
    replies, end = send_port25(srv, sender, [srs0(secret(srv), ORIG)])
    assert replies[0].startswith("250") and end.startswith("250"), replies
    wait_for(lambda: origin.messages, what="the forwarded copy")
    assert origin.messages[0].mail_from == sender
    srv.wait_log(r"warning: srs session=\S+ id=\S+ from=<%s>: not rewritten "
                 r"\(too long\): forwarded copies keep the original sender"
                 % logged(sender), since=mark)
