"""Regressions found by driving every listener with hostile bytes and by
killing postd's processes one at a time with kill -9 (the whole-daemon
kill -9 is test_smtp_crash.py and test_imap_crash.py)."""

import os
import signal
import time

import pytest

from conftest import ALICE, REFERENCE
from pop3util import simple_msg

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot", reason="postd only")


def _alive(pid):
    """True while pid runs (a zombie waiting for its reaper counts as
    gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2:].split()[0] != "Z"


def test_kill9_of_the_parent_takes_every_child_down(server):
    """The children drop privileges after they set their parent-death
    signal, and a change of uid clears it: a kill -9 of the parent then
    left the workers, the auth process and the queue runner serving on
    its ports, and a new postd could not bind them."""
    srv = server
    srv.deliver(ALICE, simple_msg("before the kill"))
    children = srv.descendants()
    assert len(children) >= 3, children
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.05)
    left = [p for p in children if _alive(p)]
    if left:
        srv._kill_group()
    assert not left, "children still running after kill -9 of the parent"
    srv._forget()
    # the ports are free: the admin's restart works, and the mail is there
    srv.start()
    c = srv.login()
    assert c.cmd("STAT").startswith("+OK 1 ")
    c.cmd("QUIT")
    c.close()
