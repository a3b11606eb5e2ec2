"""IMAP conformance details that Dovecot's imaptest scripted tests check
(tests/imaptest), pinned here so that the default suite catches them
without imaptest: the ENVELOPE list, STATUS and LSUB/LIST names and
attributes, RECENT at EXAMINE, SEARCH on addresses and NIL, the ID
line before login, BINARY.SIZE of quoted-printable parts, and IDLE
woken by the notification watch rather than by a timer."""

from conftest import ALICE, ALICE_PW
from test_imap_basic import Raw, fresh


def logged_in(srv):
    r = Raw(srv.imap_port)
    lines, tagged = r.cmd("l1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert tagged.startswith("l1 OK"), tagged
    return r


def ok(r, tag, text):
    lines, tagged = r.cmd(tag, text)
    assert tagged.startswith(tag + " OK"), (text, lines, tagged)
    return lines


# -- FETCH ENVELOPE ---------------------------------------------------------

ENVELOPE_MSG = (b"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n"
                b"Subject: subject header\r\n"
                b"From: From Real <fromuser@fromdomain.org>\r\n"
                b"To: To Real <touser@todomain.org>\r\n"
                b"Message-ID: <msg@id>\r\n\r\nbody\r\n")


def test_fetch_envelope_is_a_parenthesized_list(shared_server):
    """RFC 9051 7.5.2: ENVELOPE is a list; FETCH FULL/ALL carry it too."""
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, ENVELOPE_MSG)
    r = logged_in(srv)
    ok(r, "a1", "SELECT INBOX")
    env = ('("Thu, 15 Feb 2007 01:02:03 +0200" "subject header" '
           '(("From Real" NIL "fromuser" "fromdomain.org")) '
           '(("From Real" NIL "fromuser" "fromdomain.org")) '
           '(("From Real" NIL "fromuser" "fromdomain.org")) '
           '(("To Real" NIL "touser" "todomain.org")) NIL NIL NIL "<msg@id>")')
    lines = ok(r, "a2", "FETCH 1 ENVELOPE")
    assert lines == ["* 1 FETCH (ENVELOPE %s)" % env], lines
    for macro in ("ALL", "FULL"):
        lines = ok(r, "a3", "FETCH 1 " + macro)
        assert len(lines) == 1 and (" ENVELOPE %s" % env) in lines[0], lines
    r.cmd("a9", "LOGOUT")
    r.close()


# -- ID before login ----------------------------------------------------------

def test_inv_s3_long_id_before_login_but_other_commands_bounded(shared_server):
    """A 32 KiB ID line before login is answered (Dovecot takes it,
    imaptest "id" sends it); any other command stays within 8 KiB, and
    ID itself within 64 KiB, each refused without closing the session."""
    srv = shared_server
    r = Raw(srv.imap_port)
    value = "1234567890" * 3200
    lines, tagged = r.cmd("i1", 'ID ("name" "%s")' % value)
    assert tagged.startswith("i1 OK"), tagged
    assert any(ln.startswith("* ID ") for ln in lines), lines
    lines, tagged = r.cmd("i2", "LOGIN %s %s" % ("x" * 9000, "pw"))
    assert tagged.startswith("i2 BAD [LIMIT]"), tagged
    r.send('i3 ID ("name" "%s") i4 LOGOUT\r\n' % ("y" * 70000))
    ln = r.line()
    assert ln.startswith("* BAD [LIMIT]") or ln.startswith("i3 BAD [LIMIT]"), ln
    assert "i4" not in ln, ln
    lines, tagged = r.cmd("i5", "NOOP")
    assert tagged.startswith("i5 OK"), tagged
    r.cmd("i9", "LOGOUT")
    r.close()


# -- IDLE woken by the notification watch -------------------------------------

def _server_pid_of(client_sock, server_port):
    """The daemon process serving this client connection (by the socket
    inode in /proc/net/tcp), or None."""
    import os
    lport = client_sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for ln in f.readlines()[1:]:
            fields = ln.split()
            loc, rem = fields[1], fields[2]
            if (int(loc.split(":")[1], 16) == server_port and
                    int(rem.split(":")[1], 16) == lport):
                inode = fields[9]
    if inode is None:
        return None
    want = "socket:[%s]" % inode
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == want:
                    return int(pid)
        except OSError:
            continue
    return None


def _syscalls_while_idle(pid, seconds):
    """The system calls the process (all its threads) makes in `seconds`,
    by name (strace -c), and strace's report."""
    import subprocess
    p = subprocess.run(["timeout", "-s", "INT", str(seconds), "strace",
                        "-c", "-f", "-p", str(pid)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=seconds + 10)
    out = p.stdout.decode("utf-8", "replace")
    names = set()
    for ln in out.splitlines():
        f = ln.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            names.add(f[-1])
    return names, out


def test_idle_is_woken_by_inotify_not_a_timer(make_server):
    """IDLE reports a delivery within a second through the folder's
    inotify watch, which works in the chrooted worker (no /proc there):
    the log has no inotify_add_watch error, and for three seconds the
    idle session makes its worker do nothing but wait (no poll timer)."""
    import os
    import shutil
    import time
    import pytest
    srv = make_server()
    mark = srv.log_mark()
    srv.deliver(ALICE, ENVELOPE_MSG)
    r = logged_in(srv)
    ok(r, "a1", "SELECT INBOX")
    r.send("a2 IDLE\r\n")
    assert r.line().startswith("+ "), "no IDLE continuation"
    time.sleep(0.3)  # the initial sync is done
    if os.geteuid() == 0 and shutil.which("strace"):
        pid = _server_pid_of(r.sock, srv.imap_port)
        assert pid is not None
        # the worker's own 200 ms housekeeping tick is an epoll_wait
        # timeout; a session that looked at its folder would add reads
        names, out = _syscalls_while_idle(pid, 3)
        assert names <= {"epoll_wait"}, out
    else:
        pytest.skip("strace as root is needed to count wakeups")
    srv.deliver(ALICE, ENVELOPE_MSG)
    t0 = time.monotonic()
    r.sock.settimeout(5)
    ln = r.line()
    while not ln.endswith("EXISTS"):
        ln = r.line()
    assert ln == "* 2 EXISTS", ln
    assert time.monotonic() - t0 < 1.0
    r.send("DONE\r\n")
    lines, tagged = r.until("a2")
    assert tagged.startswith("a2 OK"), tagged
    r.cmd("a9", "LOGOUT")
    r.close()
    log = srv.log_since(mark)
    assert "inotify" not in log and "no change notification" not in log, log


# -- LSUB and LIST (SUBSCRIBED) -------------------------------------------------

def test_subscriptions_outlive_folders_and_show_their_parents(shared_server):
    """RFC 3501 6.3.6/6.3.9 and RFC 5258 3.5 (imaptest subscribe, listext):
    a subscription survives DELETE and LSUB / LIST (SUBSCRIBED) still
    show it (\\NonExistent), plain LIST does not; LSUB "%" shows an
    unsubscribed parent of a subscribed folder as \\Noselect; RECURSIVEMATCH
    gives such a parent CHILDINFO, unless the child is listed itself."""
    srv = shared_server
    r = logged_in(srv)
    for n in ("cf/a", "cf/b/c", "cf/gone"):
        ok(r, "c1", "CREATE %s" % n)
    for n in ("cf/a", "cf/b/c", "cf/gone"):
        ok(r, "c2", "SUBSCRIBE %s" % n)
    ok(r, "c3", "DELETE cf/gone")
    lines = ok(r, "c4", 'LSUB "" cf/%')
    assert any(l.endswith('"cf/a"') and "\\Noselect" not in l
               for l in lines), lines
    assert '* LSUB (\\Noselect) "/" "cf/b"' in lines, lines
    assert any(l.endswith('"cf/gone"') for l in lines), lines
    assert not any(l.endswith('"cf/b/c"') for l in lines), lines
    lines = ok(r, "c5", 'LIST "" cf/*')
    assert not any("gone" in l for l in lines), lines
    lines = ok(r, "c6", 'LIST (SUBSCRIBED) "" cf/*')
    gone = [l for l in lines if l.endswith('"cf/gone"')]
    assert len(gone) == 1 and "\\NonExistent" in gone[0] and \
        "\\Subscribed" in gone[0], lines
    assert not any(l.endswith('"cf/b"') for l in lines), lines
    lines = ok(r, "c7", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" cf/% '
                        'RETURN (CHILDREN)')
    assert any(l.startswith("* LIST (\\HasChildren") and
               l.endswith('"cf/b" ("CHILDINFO" ("SUBSCRIBED"))')
               for l in lines), lines
    lines = ok(r, "c8", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (cf/b cf/b/c)')
    assert not any("CHILDINFO" in l for l in lines), lines
    assert any(l.endswith('"cf/b/c"') for l in lines), lines
    for n in ("cf/a", "cf/b/c", "cf/gone"):
        ok(r, "c9", "UNSUBSCRIBE %s" % n)
    for n in ("cf/a", "cf/b/c", "cf/b", "cf"):
        r.cmd("c10", "DELETE %s" % n)
    r.cmd("c99", "LOGOUT")
    r.close()


# -- keywords another session defines ------------------------------------------

def test_keyword_defined_elsewhere_is_in_flags_before_any_fetch(shared_server):
    """RFC 9051 7.3.5: a session is told of a keyword with FLAGS (and
    PERMANENTFLAGS) before a FETCH shows it. Another session's STORE may
    define the keyword (imaptest's stress run saw "Keyword used without
    being in FLAGS")."""
    srv = shared_server
    fresh(srv)
    srv.deliver(ALICE, ENVELOPE_MSG)
    a = logged_in(srv)
    b = logged_in(srv)
    ok(a, "a1", "SELECT INBOX")
    ok(b, "b1", "SELECT INBOX")
    ok(b, "b2", "STORE 1 +FLAGS ($NewElsewhere)")
    lines = ok(a, "a2", "NOOP")
    flags_at = [i for i, x in enumerate(lines)
                if x.startswith("* FLAGS (") and "$NewElsewhere" in x]
    fetch_at = [i for i, x in enumerate(lines)
                if " FETCH " in x and "$NewElsewhere" in x]
    assert flags_at and fetch_at and flags_at[0] < fetch_at[0], lines
    assert any(x.startswith("* OK [PERMANENTFLAGS (") and
               "$NewElsewhere" in x for x in lines), lines
    for r in (a, b):
        r.cmd("z", "LOGOUT")
        r.close()


# -- "*" in a UID set -------------------------------------------------------


def test_uid_star_is_the_last_message_after_the_highest_expunged(
        shared_server):
    """RFC 9051 6.4.9: "*" in a UID set is the UID of the last message,
    so 'UID FETCH 4:*' names it even when 4 is above every UID left (the
    highest ones were expunged). It used to resolve to UIDNEXT - 1 and
    the FETCH answered nothing."""
    srv = shared_server
    fresh(srv)
    for i in range(5):
        srv.deliver(ALICE, b"Subject: m%d\r\n\r\nbody\r\n" % i)
    r = logged_in(srv)
    ok(r, "a1", "SELECT INBOX")
    ok(r, "a2", "UID STORE 4:5 +FLAGS.SILENT (\\Deleted)")
    ok(r, "a3", "EXPUNGE")
    lines = ok(r, "a4", "UID FETCH 4:* (UID)")
    assert [ln for ln in lines if "FETCH" in ln] == \
        ["* 3 FETCH (UID 3)"], lines
    lines = ok(r, "a5", "UID SEARCH UID 7:*")
    assert "* SEARCH 3" in lines, lines
    lines = ok(r, "a6", "UID FETCH * (UID)")
    assert [ln for ln in lines if "FETCH" in ln] == \
        ["* 3 FETCH (UID 3)"], lines
