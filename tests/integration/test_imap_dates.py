"""Internal dates a client or a file may carry that the index cannot
hold: an APPEND dated before 1970, or a message file whose mtime is
before 1970 or far in the future (a Maildir copied from elsewhere).
Each used to make the worker write an index record it then refused to
read, and the worker exited, dropping every session it served. Such a
date is now clamped into the index's range."""

import os

from conftest import ALICE
from test_imap_basic import fresh
from test_imap_bounds import assert_alive, put_messages, session

MSG = b"Subject: old\r\n\r\nbody\r\n"


def test_append_dated_before_1970(shared_server):
    srv = shared_server
    fresh(srv)
    put_messages(srv, 1)
    r = session(srv)
    r.send(b'a2 APPEND INBOX (\\Seen) "7-Feb-1949 21:52:25 -0800" {%d+}'
           b"\r\n%s\r\n" % (len(MSG), MSG))
    lines, tagged = r.cmd("a3", "NOOP")
    ok = [ln for ln in lines if ln.startswith("a2 OK [APPENDUID ")]
    assert ok, lines
    uid = ok[0].split()[4].rstrip("]")
    lines, tagged = r.cmd("a4", "SELECT INBOX")
    assert tagged.startswith("a4 OK"), tagged
    lines, tagged = r.cmd("a5", "UID FETCH %s (INTERNALDATE)" % uid)
    assert tagged.startswith("a5 OK"), tagged
    assert any('INTERNALDATE "01-Jan-1970' in ln for ln in lines), lines
    assert_alive(srv, r)
    assert "does not parse" not in srv.log()


def test_message_file_with_mtime_out_of_range(shared_server):
    srv = shared_server
    fresh(srv)
    put_messages(srv, 3)
    new = os.path.join(srv.maildir(ALICE), "new")
    names = sorted(os.listdir(new))
    os.utime(os.path.join(new, names[1]), (0, -400000000))  # 1957
    os.utime(os.path.join(new, names[2]), (0, 1 << 42))  # year 141338
    r = session(srv)
    lines, tagged = r.cmd("a2", "SELECT INBOX")
    assert tagged.startswith("a2 OK"), tagged
    assert "* 3 EXISTS" in lines, lines
    lines, tagged = r.cmd("a3", "FETCH 1:3 (INTERNALDATE)")
    assert tagged.startswith("a3 OK"), tagged
    assert len([ln for ln in lines if "INTERNALDATE" in ln]) == 3, lines
    assert_alive(srv, r)
    assert "does not parse" not in srv.log()
