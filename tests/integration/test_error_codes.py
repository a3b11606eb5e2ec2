"""Every SMTP refusal postd can be made to give, over a raw socket: the
reply carries an RFC 3463 enhanced status code whose class matches the
reply's (4xx -> 4.x.x, 5xx -> 5.x.x), the exact code the table names, and
the refusal writes ONE log line (refused ... cause=, or auth failed ...).

Not provoked here: 421 4.4.2 (idle timeout: test_smtp_limits.py sets
timeout_smtp), 421 4.3.2 (shutdown) and 452 4.3.1 (disk full): those are
in test_troubleshooting.py (server stop, a tmpfs under data_dir)."""

import re
import time

import pytest

from conftest import ALICE, ALICE_PW, DOMAIN, running_server
from pop3util import b64, plain_ir
from smtputil import SmtpConn

BOB = "bob@" + DOMAIN
ENHANCED_RE = re.compile(r"^([245])\d\d ([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")
REFUSAL_LINE_RE = re.compile(r"\binfo: (refused peer=|auth failed user=)")

MAIL = "MAIL FROM:<someone@remote.example>"
RCPT = "RCPT TO:<%s>" % ALICE


# (id, server, port, session setup, steps, wanted reply, log cause regex)
# setup: "ehlo" (EHLO), "none" (nothing), "auth" (EHLO, AUTH as alice),
#        "tls" (STARTTLS then EHLO), "tls-auth".
# steps: commands that must succeed (< 400), then the refused one last;
#        bytes are sent raw, their reply is read.
CASES = [
    ("unknown_verb", "default", "smtp", "ehlo", ["FOO bar"],
     "500 5.5.2", r"500 5\.5\.2 Syntax error"),
    ("nul_in_command", "default", "smtp", "ehlo", [b"NOOP a\x00b\r\n"],
     "501 5.5.2", r"NUL byte"),
    ("bare_cr_in_command", "default", "smtp", "ehlo", [b"NOOP a\rb\r\n"],
     "500 5.5.2", r"Bare CR or LF"),
    ("line_too_long", "default", "smtp", "ehlo", ["NOOP " + "a" * 600],
     "500 5.5.2", r"(?i)line too long"),
    ("line_over_auth_cap", "default", "smtp", "ehlo",
     ["NOOP " + "a" * 13000], "500 5.5.2",
     r"cause=line too long \(over 512 octets, AUTH 12288\)"),
    ("helo_without_domain", "default", "smtp", "none", ["HELO"],
     "501 5.5.4", r"501 5\.5\.4"),
    ("bad_sender_syntax", "default", "smtp", "ehlo", ["MAIL FROM:<a b>"],
     "501 5.1.7", r"Bad sender"),
    ("bad_recipient_syntax", "default", "smtp", "ehlo",
     [MAIL, "RCPT TO:<@>"], "501 5.1.3", r"Bad recipient"),
    ("non_ascii_without_smtputf8", "default", "smtp", "ehlo",
     ["MAIL FROM:<j\u00f6rg@remote.example>"], "553 5.6.7", r"SMTPUTF8"),
    ("unknown_parameter", "default", "smtp", "ehlo", [MAIL + " FOO=1"],
     "555 5.5.4", r"Unsupported parameter"),
    ("duplicate_parameter", "default", "smtp", "ehlo",
     [MAIL + " SIZE=1 SIZE=2"], "501 5.5.4", r"Duplicate"),
    ("size_over_64_bits", "default", "smtp", "ehlo",
     [MAIL + " SIZE=99999999999999999999"], "552 5.3.4", r"552 5\.3\.4"),
    ("size_over_max", "limits", "smtp", "ehlo", [MAIL + " SIZE=5000"],
     "552 5.3.4", r"message too big: SIZE=5000 over max_message_size "
     r"1024"),
    ("binarymime", "default", "smtp", "ehlo", [MAIL + " BODY=BINARYMIME"],
     "555 5.5.4", r"BINARYMIME"),
    ("mail_before_ehlo", "default", "smtp", "none", [MAIL],
     "503 5.5.1", r"send EHLO first"),
    ("rcpt_before_mail", "default", "smtp", "ehlo", [RCPT],
     "503 5.5.1", r"MAIL first"),
    ("data_before_mail", "default", "smtp", "ehlo", ["DATA"],
     "503 5.5.1", r"MAIL first"),
    ("bdat_before_mail", "default", "smtp", "ehlo", [b"BDAT 3 LAST\r\nabc"],
     "503 5.5.1", r"MAIL and RCPT first"),
    ("nested_mail", "default", "smtp", "ehlo", [MAIL, MAIL],
     "503 5.5.1", r"not inside a mail transaction"),
    ("data_without_recipients", "default", "smtp", "ehlo", [MAIL, "DATA"],
     "554 5.5.1", r"No valid recipients"),
    ("relay_denied", "default", "smtp", "ehlo",
     [MAIL, "RCPT TO:<x@remote.example>"], "554 5.7.1",
     r"relay to <x@remote\.example> denied"),
    ("unknown_recipient", "default", "smtp", "ehlo",
     [MAIL, "RCPT TO:<nosuch@%s>" % DOMAIN], "550 5.1.1",
     r"unknown recipient <nosuch@example\.org>"),
    ("unknown_recipient_percent_hack", "default", "smtp", "ehlo",
     [MAIL, "RCPT TO:<x%%y@%s>" % DOMAIN], "550 5.1.1",
     r"unknown recipient"),
    ("too_many_recipients", "limits", "smtp", "ehlo",
     [MAIL, RCPT, "RCPT TO:<%s>" % BOB], "452 4.5.3",
     r"too many recipients \(max_recipients 1\)"),
    ("message_too_big", "limits", "smtp", "ehlo",
     [MAIL, RCPT, "DATA",
      b"Subject: x\r\n\r\n" + (b"y" * 60 + b"\r\n") * 40 + b".\r\n"],
     "552 5.3.4", r"message refused: 552 5\.3\.4"),
    ("bare_lf_in_body", "default", "smtp", "ehlo",
     [MAIL, RCPT, "DATA", b"Subject: x\r\n\r\na\nb\r\n.\r\n"],
     "550 5.6.0", r"message refused: 550 5\.6\.0"),
    ("body_line_over_64k", "default", "smtp", "ehlo",
     [MAIL, RCPT, "DATA",
      b"Subject: x\r\n\r\n" + b"l" * 70000 + b"\r\n.\r\n"],
     "554 5.6.0", r"message refused: 554 5\.6\.0 .*smtp_max_line_length"),
    ("lone_dot_next_to_bare_cr", "default", "smtp", "ehlo",
     [MAIL, RCPT, "DATA", b"Subject: x\r\n\r\na\r.\rb\r\n.\r\n"],
     "550 5.6.0", r"message refused: 550 5\.6\.0"),
    ("mail_loop", "default", "smtp", "ehlo",
     [MAIL, RCPT, "DATA",
      b"Received: from a by b; x\r\n" * 51 + b"Subject: x\r\n\r\nb\r\n"
      b".\r\n"],
     "554 5.4.6", r"cause=mail loop: 51 Received headers "
     r"\(max_received_headers 50\)"),
    ("expn", "default", "smtp", "ehlo", ["EXPN staff"],
     "502 5.5.1", r"EXPN"),
    ("auth_on_port_25", "default", "smtp", "ehlo",
     ["AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)], "502 5.5.1",
     r"AUTH is not available"),
    ("auth_unknown_mechanism", "default", "submission", "ehlo",
     ["AUTH CRAM-MD5"], "504 5.5.4", r"unsupported SASL mechanism CRAM-MD5"),
    ("auth_wrong_password", "default", "submission", "ehlo",
     ["AUTH PLAIN " + plain_ir(ALICE, "wrong")], "535 5.7.8",
     r"auth failed user=alice@example\.org .*cause=wrong password"),
    ("auth_unknown_user", "default", "submission", "ehlo",
     ["AUTH PLAIN " + plain_ir("nosuch@example.org", "wrong")], "535 5.7.8",
     r"auth failed user=nosuch@example\.org .*cause=unknown user"),
    ("auth_other_authzid", "default", "submission", "ehlo",
     ["AUTH PLAIN " + plain_ir(ALICE, ALICE_PW, authzid=BOB)], "535 5.7.8",
     r"authzid differs from authcid"),
    ("auth_cancelled", "default", "submission", "ehlo",
     ["AUTH LOGIN", "*"], "501 5.0.0", r"Authentication cancelled"),
    ("auth_bad_base64", "default", "submission", "ehlo",
     ["AUTH LOGIN", "@@@@"], "501 5.5.2", r"501 5\.5\.2"),
    ("auth_twice", "default", "submission", "auth",
     ["AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)], "503 5.5.1",
     r"Already authenticated"),
    ("mail_without_auth", "default", "submission", "ehlo",
     ["MAIL FROM:<%s>" % ALICE], "530 5.7.0",
     r"MAIL without AUTH on submission"),
    ("sender_not_owned", "default", "submission", "auth",
     ["MAIL FROM:<%s>" % BOB], "553 5.7.1",
     r"sender <bob@example\.org> is not the user's own address"),
    ("from_header_not_owned", "default", "submission", "auth",
     ["MAIL FROM:<%s>" % ALICE, "RCPT TO:<%s>" % BOB, "DATA",
      b"From: <bob@example.org>\r\nSubject: x\r\n\r\nhi\r\n.\r\n"],
     "553 5.7.1", r"The From: header is not your own"),
    ("starttls_twice", "default", "submissions", "ehlo", ["STARTTLS"],
     "503 5.5.1", r"TLS is already active"),
    ("must_starttls_first", "tlsonly", "submission", "ehlo",
     ["MAIL FROM:<%s>" % ALICE], "530 5.7.0",
     r"TLS required: MAIL before STARTTLS"),
    ("encryption_required_for_auth", "tlsonly", "submission", "ehlo",
     ["AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)], "538 5.7.11",
     r"TLS required: plaintext AUTH before STARTTLS"),
]


@pytest.fixture(scope="module")
def servers(tls_files, shared_server):
    """The shared default server, one with small limits, one that takes
    no password before TLS."""
    with running_server(tls_files, {"max_recipients": "1",
                                    "max_message_size": "1024"}) as lim, \
            running_server(tls_files, {"plaintext_auth": "no"}) as tls:
        yield {"default": shared_server, "limits": lim, "tlsonly": tls}


def open_session(srv, port, setup):
    if port == "submissions":
        c = SmtpConn(srv.submissions_port, tls_ctx=srv.ctx())
    else:
        c = SmtpConn(getattr(srv, port + "_port"))
    assert c.greeting[0] == 220, c.greeting
    if setup == "none":
        return c
    code, _, texts = c.ehlo()
    assert code == 250, texts
    if setup == "auth":
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235 "), r
    return c


def send_step(c, step):
    if isinstance(step, bytes):
        c.send(step)
        return c.reply_line()
    return c.cmd(step)


def check_enhanced(reply):
    m = ENHANCED_RE.match(reply)
    assert m, "reply without an RFC 3463 enhanced code: %r" % reply
    assert m.group(1) == m.group(2), \
        "class of %r does not match its reply code" % reply
    return m


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refusal_has_matching_enhanced_code(servers, case):
    name, which, port, setup, steps, want, cause = case
    srv = servers[which]
    c = open_session(srv, port, setup)
    try:
        for step in steps[:-1]:
            r = send_step(c, step)
            assert int(r[:3]) < 400, "%s: setup step %r: %s" % (
                name, step, r)
        mark = srv.log_mark()
        r = send_step(c, steps[-1])
        check_enhanced(r)
        assert r.startswith(want + " "), "%s: want %s, got %r" % (
            name, want, r)
        # still in step: the next command gets its own answer
        assert c.cmd("RSET").startswith("250"), name
    finally:
        c.close()
    srv.wait_log(cause, since=mark)
    lines = [ln for ln in srv.log_since(mark).splitlines()
             if REFUSAL_LINE_RE.search(ln)]
    assert len(lines) == 1, "%s: want one refusal log line, got %r" % (
        name, lines)


def test_too_many_errors_421_470(servers):
    srv = servers["default"]
    c = open_session(srv, "smtp", "ehlo")
    mark = srv.log_mark()
    c.send("".join("FOO%d\r\n" % i for i in range(20)))
    replies = c.read_all_replies()
    c.close()
    assert len(replies) == 21, replies
    for r in replies:
        check_enhanced(r)
    assert replies[-1].startswith("421 4.7.0 "), replies[-1]
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*cause=too many errors$",
                 since=mark)


def test_too_many_commands_before_mail_421_470(servers):
    srv = servers["default"]
    c = open_session(srv, "smtp", "ehlo")
    mark = srv.log_mark()
    c.send("NOOP\r\n" * 101)
    replies = c.read_all_replies()
    c.close()
    assert replies[-1].startswith("421 4.7.0 "), replies[-1]
    check_enhanced(replies[-1])
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*cause=too many commands "
                 r"before MAIL", since=mark)


def test_too_many_auth_failures_421_470(servers):
    srv = servers["default"]
    c = open_session(srv, "submission", "ehlo")
    mark = srv.log_mark()
    for _ in range(2):
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, "wrong"))
        assert r.startswith("535 5.7.8 "), r
    c.send("AUTH LOGIN %s\r\n" % b64(ALICE))
    assert c.reply_line().startswith("334")
    c.send(b64("wrong") + "\r\n")
    replies = c.read_all_replies()
    c.close()
    assert replies[0].startswith("535 5.7.8 "), replies
    assert replies[-1].startswith("421 4.7.0 "), replies
    for r in replies:
        check_enhanced(r)
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=submission "
                 r"user=alice@example\.org cause=too many authentication "
                 r"failures", since=mark)


def test_connection_cap_421_470(make_server):
    srv = make_server(overrides={"max_connections": "2"})
    time.sleep(0.5)  # the start-up probes' connections go away
    conns = [SmtpConn(srv.smtp_port) for _ in range(2)]
    try:
        extra = SmtpConn(srv.smtp_port, greeting=False)
        got = extra.wait_closed(timeout=10).decode()
        extra.close()
        check_enhanced(got.rstrip("\r\n"))
        assert got.startswith("421 4.7.0 "), got
    finally:
        for c in conns:
            c.close()
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=- proto=smtp user=- "
                 r"cause=too many connections in total \(max_connections 2\)")
