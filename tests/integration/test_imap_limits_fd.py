"""postd and the open-files limit. A selected IMAP session holds several
descriptors (doc/internals/imap.md), so postd raises its soft limit to
the hard one at start and says when the hard one is too low for
max_connections; a session that finds none left is told to try again
later ([UNAVAILABLE]), never that its mailbox does not exist, and other
sessions go on."""

import os

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
