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


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/1.9"])
def test_http_reply_status_line_is_http_1(make_server, version):
    """evhttp answered in the version the request named: "HTTP/0.9 200
    OK" (no Content-Length) or "HTTP/1.9 200 OK", which no HTTP/1.x client
    parses. Such a request now gets one 505 in HTTP/1.1, logged, and the
    connection closes; HTTP/1.0 is still served in HTTP/1.0."""
    from test_http import http_server, raw
    srv = http_server(make_server)
    mark = srv.log_mark()
    resp = raw(srv, b"GET /healthz " + version + b"\r\nHost: x\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 505 "), resp[:200]
    assert b"\r\nContent-Length: " in resp.split(b"\r\n\r\n")[0], resp[:300]
    srv.wait_log(r"refused peer=127\.0\.0\.1 .*proto=http .*status=505 "
                 r"cause=unsupported HTTP version", since=mark)
    resp = raw(srv, b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
    assert resp.startswith(b"HTTP/1.0 200 "), resp[:200]
