"""Names with invisible differences: a login name with white space or a
control byte anywhere (trailing tab or space included) is not that user.
It is refused, never trimmed, in POP3 USER, AUTH PLAIN and AUTH LOGIN and
in SMTP AUTH PLAIN and LOGIN. The refusal is the one an unknown user gets
(INV-A1: "authentication failed", nothing more), with one log line that
shows the name as typed, control bytes escaped (INV-S2)."""

import re

import pytest

from conftest import ALICE, ALICE_PW
from pop3util import b64, plain_ir
from smtputil import SmtpConn

AUTH_FAILED = "-ERR [AUTH] Authentication failed."
SMTP_AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"

INVISIBLE = [
    ALICE + "\t",
    ALICE + " ",
    ALICE + " \t ",
    "alice\t",  # auth_default_domain would be appended
    "alice ",
    ALICE + "\x01",
    ALICE + "\x0b",
    ALICE + "\x0c",
    ALICE + "\x1b",
    ALICE + "\x7f",
    ALICE + "\r",
    "ali\x01ce@example.org",
    "alice\t@example.org",
    "alice@example.org\t.",
    " " + ALICE,
    "\t" + ALICE,
]


def escaped(name):
    """The name as the log shows it: bytes outside 0x20..0x7e and the
    backslash as \\xHH (log_escape)."""
    out = []
    for ch in name:
        o = ord(ch)
        if 0x20 <= o < 0x7f and ch != "\\":
            out.append(ch)
        else:
            out.append("\\x%02x" % o)
    return "".join(out)


def log_failed(srv, name, proto, mech, mark):
    srv.wait_log(r"auth failed user=%s peer=127\.0\.0\.1 session=\S+ "
                 r"proto=%s cause=unknown user mech=%s" % (
                     re.escape(escaped(name)), proto, mech),
                 since=mark)


def assert_not_logged_in(c):
    r = c.cmd("STAT")
    assert r.startswith("-ERR"), r


@pytest.mark.parametrize("name", INVISIBLE, ids=repr)
def test_pop3_user_with_invisible_difference_refused(shared_server, name):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        c.send(b"USER " + name.encode("latin-1") + b"\r\n")
        # USER itself answers alike for every name (INV-A1)
        assert c.line().startswith("+OK")
        r = c.cmd("PASS " + ALICE_PW)
        assert r == AUTH_FAILED, (name, r)
        assert_not_logged_in(c)
        c.cmd("QUIT")
    log_failed(srv, name, "pop3", "USER", mark)
    assert "login user=alice" not in srv.log_since(mark)


def test_pop3_user_refusal_same_as_unknown_user(shared_server):
    """The reply and the log's cause are those of an unknown user."""
    srv = shared_server
    with srv.connect() as c:
        unknown = c.login("nosuchuser@example.org", ALICE_PW)
    with srv.connect() as c:
        tab = c.login(ALICE + "\t", ALICE_PW)
    assert tab == unknown == AUTH_FAILED


def test_pop3_plain_name_still_logs_in(shared_server):
    srv = shared_server
    for name in (ALICE, "alice", "ALICE@Example.Org"):
        c = srv.login(user=name, pw=ALICE_PW)
        assert c.cmd("STAT").startswith("+OK ")
        c.cmd("QUIT")
        c.close()


@pytest.mark.parametrize("name", [ALICE + "\t", ALICE + " ", "alice\t",
                                  ALICE + "\x01", " " + ALICE], ids=repr)
def test_pop3_auth_plain_with_invisible_difference_refused(shared_server,
                                                            name):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(name, ALICE_PW))
        assert r == AUTH_FAILED, (name, r)
        # the same with the authzid set to the clean name
        r = c.cmd("AUTH PLAIN " + plain_ir(name, ALICE_PW, authzid=ALICE))
        assert r.startswith("-ERR [AUTH] "), (name, r)
        assert_not_logged_in(c)
        c.cmd("QUIT")
    log_failed(srv, name, "pop3", "PLAIN", mark)


@pytest.mark.parametrize("name", [ALICE + "\t", ALICE + " ", "alice\x7f"],
                         ids=repr)
def test_pop3_auth_login_with_invisible_difference_refused(shared_server,
                                                            name):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        assert c.cmd("AUTH LOGIN").startswith("+ ")
        assert c.cmd(b64(name)).startswith("+ ")
        r = c.cmd(b64(ALICE_PW))
        assert r == AUTH_FAILED, (name, r)
        assert_not_logged_in(c)
        c.cmd("QUIT")
    log_failed(srv, name, "pop3", "LOGIN", mark)


@pytest.mark.parametrize("name", [ALICE + "\t", ALICE + " ", "alice\t",
                                  ALICE + "\x01", "\t" + ALICE], ids=repr)
def test_smtp_auth_with_invisible_difference_refused(shared_server, name):
    srv = shared_server
    mark = srv.log_mark()
    with SmtpConn(srv.submission_port) as c:
        c.ehlo()
        r = c.cmd("AUTH PLAIN " + plain_ir(name, ALICE_PW))
        assert r == SMTP_AUTH_FAILED, (name, r)
        assert c.cmd("AUTH LOGIN").startswith("334 ")
        assert c.cmd(b64(name)).startswith("334 ")
        r = c.cmd(b64(ALICE_PW))
        assert r == SMTP_AUTH_FAILED, (name, r)
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530 5.7.0"), r
        # and the clean name still works in the same session
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235 2.7.0"), r
        c.cmd("QUIT")
    log_failed(srv, name, "submission", "PLAIN", mark)
    log_failed(srv, name, "submission", "LOGIN", mark)
