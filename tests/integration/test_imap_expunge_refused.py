"""An EXPUNGE the file system refuses (here an immutable file, the
nearest a root test gets to EPERM or EIO on one message): the message
stays, the client sees it stay (no untagged EXPUNGE for it, still there
after a new SELECT), the other messages go, and the log names the file
and the cause. The cause used to go unlogged."""

import os
import shutil
import subprocess

import pytest

from conftest import ALICE
from test_imap_basic import fresh
from test_imap_bounds import put_messages, session


def chattr(flag, path):
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, path], capture_output=True,
                          check=False).returncode == 0


def test_expunge_of_an_immovable_file_keeps_it_and_logs_why(shared_server):
    srv = shared_server
    fresh(srv)
    put_messages(srv, 3)
    r = session(srv)
    lines, tagged = r.cmd("a1", "SELECT INBOX")
    assert "* 3 EXISTS" in lines, lines
    lines, tagged = r.cmd("a2", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert tagged.startswith("a2 OK"), tagged
    cur = os.path.join(srv.maildir(ALICE), "cur")
    stuck = os.path.join(cur, sorted(os.listdir(cur))[1])
    if not chattr("+i", stuck):
        pytest.skip("this file system has no immutable files")
    try:
        lines, tagged = r.cmd("a3", "EXPUNGE")
        assert tagged.startswith("a3 OK"), tagged
        assert len([ln for ln in lines if ln.endswith(" EXPUNGE")]) == 2, \
            lines
        lines, tagged = r.cmd("a4", "SELECT INBOX")
        assert "* 1 EXISTS" in lines, lines
        log = srv.log()
        assert ("cannot expunge %s: Operation not permitted"
                % os.path.basename(stuck)) in log, log[-2000:]
    finally:
        chattr("-i", stuck)
