"""postd and the open-files limit. A selected IMAP session holds several
descriptors (doc/internals/imap.md), so postd raises its soft limit to
the hard one at start and says when the hard one is too low for
max_connections; a session that finds none left is told to try again
later ([UNAVAILABLE]), never that its mailbox does not exist, and other
sessions go on."""

import os
import socket
import time

from conftest import ALICE, ALICE_PW
from test_imap_basic import Raw


def limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open files line for %d" % pid)


def test_soft_limit_raised_and_a_low_hard_limit_said(make_server):
    srv = make_server(overrides={"workers": "1"}, start=False)
    srv.nofile = (60, 200)
    srv.start()
    for pid in srv.descendants():
        assert limits(pid) == (200, 200), pid
    assert "warning: open files limit 200 per process is below the " \
        "80256 that max_connections = 10000 over 1 workers may need" \
        in srv.log(), srv.log()[-2000:]


def test_out_of_descriptors_is_unavailable_not_nonexistent(make_server):
    srv = make_server(overrides={"workers": "1"}, start=False)
    srv.nofile = (90, 90)
    srv.start()
    sessions, refused = [], None
    try:
        for i in range(60):
            r = Raw(srv.imap_port)
            sessions.append(r)
            lines, tagged = r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
            if not tagged.startswith("a1 OK"):
                refused = tagged
                break
            lines, tagged = r.cmd("a2", "SELECT INBOX")
            if not tagged.startswith("a2 OK"):
                refused = tagged
                break
        assert refused is not None, "90 descriptors held 60 sessions?"
        assert refused.startswith(("a1 NO [UNAVAILABLE] ",
                                   "a2 NO [UNAVAILABLE] ")), refused
        assert "Too many open files" in srv.log(), srv.log()[-2000:]
        # the sessions that got in go on
        lines, tagged = sessions[0].cmd("z1", "NOOP")
        assert tagged == "z1 OK NOOP completed.", tagged
    finally:
        for r in sessions:
            r.close()
    assert "died" not in srv.log()


def fill_descriptors(srv):
    """Opens connections until the worker cannot accept one more: then it
    has no descriptor left. Returns the sockets, to be closed."""
    mark = srv.log_mark()
    socks = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=10)
        socks.append(s)
        s.settimeout(1.5)
        try:
            if s.recv(4096).startswith(b"* OK"):
                continue
        except socket.timeout:
            pass
        srv.wait_log(r"accept: Too many open files", since=mark)
        return socks
    raise AssertionError("200 connections and descriptors left?")


def test_out_of_descriptors_in_copy_status_append_is_unavailable(make_server):
    """A target folder that cannot be opened for want of a descriptor is
    not a missing one: COPY, MOVE and APPEND must not say TRYCREATE (the
    client would create it), STATUS not NONEXISTENT; the log says why."""
    srv = make_server(overrides={"workers": "1"}, start=False)
    srv.nofile = (80, 80)
    srv.start()
    srv.deliver(ALICE, b"Subject: fd\r\n\r\nbody\r\n")
    r = Raw(srv.imap_port)
    socks = []
    try:
        lines, tagged = r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
        assert tagged.startswith("a1 OK"), tagged
        lines, tagged = r.cmd("a2", "SELECT INBOX")
        assert tagged.startswith("a2 OK"), tagged
        mark = srv.log_mark()
        socks = fill_descriptors(srv)
        answers = {}
        for tag, cmd in (("c1", "COPY 1 Archive"), ("c2", "MOVE 1 Archive"),
                         ("c3", "STATUS Archive (MESSAGES)")):
            answers[tag] = r.cmd(tag, cmd)[1]
        r.send("c4 APPEND Archive {3+}\r\nx\r\n\r\n")
        answers["c4"] = r.until("c4")[1]
        for tag, tagged in answers.items():
            assert tagged.startswith(tag + " NO [UNAVAILABLE] "), tagged
        log = srv.log_since(mark)
        assert log.count("Too many open files") >= 4, log[-3000:]
        assert "no such folder" not in log, log[-3000:]
        assert "missing mailbox" not in log, log[-3000:]
    finally:
        for s in socks:
            s.close()
    # the descriptors back (once the worker has seen the closes), the
    # same session copies
    deadline = time.monotonic() + 5
    while True:
        lines, tagged = r.cmd("d1", "COPY 1 Archive")
        if tagged.startswith("d1 OK") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert tagged.startswith("d1 OK"), tagged
    r.close()
    assert "died" not in srv.log()
