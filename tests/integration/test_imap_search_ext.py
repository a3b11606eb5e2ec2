"""Search extensions of the IMAP server: CONTEXT=SEARCH (RFC 5267) live
searches (SEARCH RETURN (UPDATE): ADDTO/REMOVEFROM as messages arrive,
change or are expunged, CANCELUPDATE, the per-session limit with
NOUPDATE) and RETURN (PARTIAL) with positive and negative ranges
(RFC 5267 4.4, RFC 9394)."""

import re

from conftest import ALICE
from test_imap_basic import Raw


def session(srv, mailbox, fresh=False, count=0, flags=""):
    """A logged-in raw connection with mailbox selected; fresh: the
    mailbox is made anew with count messages."""
    r = Raw(srv.imap_port)
    _, tagged = r.cmd("l", "LOGIN %s %s" % (ALICE, srv.users[ALICE]))
    assert tagged.startswith("l OK"), tagged
    if fresh:
        r.cmd("d", "DELETE %s" % mailbox)
        _, tagged = r.cmd("c", "CREATE %s" % mailbox)
        assert tagged.startswith("c OK"), tagged
        for i in range(count):
            append(r, mailbox, "Subject: m%d\r\n\r\nbody %d\r\n" % (i, i),
                   flags)
    _, tagged = r.cmd("s", "SELECT %s" % mailbox)
    assert tagged.startswith("s OK"), tagged
    return r


def append(r, mailbox, text, flags=""):
    data = text.encode()
    r.send("ap APPEND %s (%s) {%d+}\r\n" % (mailbox, flags, len(data)))
    r.send(data + b"\r\n")
    lines, tagged = r.until("ap")
    assert tagged.startswith("ap OK"), tagged
    return lines


def esearch(lines, tag):
    return [ln for ln in lines
            if ln.upper().startswith('* ESEARCH (TAG "%s")' % tag.upper())]


def uids_of(r, n):
    lines, _ = r.cmd("f", "FETCH 1:%d UID" % n)
    return [int(re.search(r"UID (\d+)", ln).group(1)) for ln in lines]


def test_context_search_advertised(shared_server):
    r = session(shared_server, "INBOX")
    lines, _ = r.cmd("c1", "CAPABILITY")
    assert "CONTEXT=SEARCH" in lines[0].split(), lines
    r.cmd("z", "LOGOUT")
    r.close()


def test_search_update_follows_flags_arrivals_and_expunges(shared_server):
    srv = shared_server
    r = session(srv, "ctxupd", fresh=True, count=3)
    lines, tagged = r.cmd("t1", "SEARCH RETURN (UPDATE ALL) SEEN")
    assert tagged.startswith("t1 OK"), tagged
    assert esearch(lines, "t1") == ['* ESEARCH (TAG "t1")'], lines
    # our own STORE: one ADDTO for the whole command
    lines, _ = r.cmd("a", "STORE 1,3 +FLAGS (\\Seen)")
    assert esearch(lines, "t1") == ['* ESEARCH (TAG "t1") ADDTO (0 1,3)'], \
        lines
    lines, _ = r.cmd("b", "STORE 1:3 -FLAGS (\\Seen)")
    assert esearch(lines, "t1") == [
        '* ESEARCH (TAG "t1") REMOVEFROM (0 1,3)'], lines
    r.cmd("b2", "STORE 2,3 +FLAGS (\\Seen)")
    # another session delivers a seen message: EXISTS, then ADDTO
    other = session(srv, "ctxupd")
    append(other, "ctxupd", "Subject: new\r\n\r\nnew\r\n", "\\Seen")
    lines, _ = r.cmd("n", "NOOP")
    assert "* 4 EXISTS" in lines, lines
    assert esearch(lines, "t1") == ['* ESEARCH (TAG "t1") ADDTO (0 4)'], \
        lines
    assert lines.index("* 4 EXISTS") < lines.index(esearch(lines, "t1")[0])
    # another session expunges message 2: REMOVEFROM before its EXPUNGE,
    # by the sequence number the client still knows
    other.cmd("e1", "STORE 2 +FLAGS (\\Deleted)")
    other.cmd("e2", "EXPUNGE")
    lines, _ = r.cmd("n2", "NOOP")
    found = esearch(lines, "t1")
    assert found == ['* ESEARCH (TAG "t1") REMOVEFROM (0 2)'], lines
    assert lines.index(found[0]) < lines.index("* 2 EXPUNGE"), lines
    # message 3 is now 2: unflagging it reports the new number
    lines, _ = r.cmd("u", "STORE 2 -FLAGS (\\Seen)")
    assert esearch(lines, "t1") == [
        '* ESEARCH (TAG "t1") REMOVEFROM (0 2)'], lines
    # CANCELUPDATE ends the updates
    _, tagged = r.cmd("x", 'CANCELUPDATE "t1"')
    assert tagged.startswith("x OK"), tagged
    lines, _ = r.cmd("y", "STORE 1 +FLAGS (\\Seen)")
    assert esearch(lines, "t1") == [], lines
    _, tagged = r.cmd("x2", 'CANCELUPDATE "t1"')
    assert tagged.startswith("x2 BAD"), tagged
    for c in (r, other):
        c.cmd("z", "LOGOUT")
        c.close()


def test_uid_search_update_reports_uids_and_ends_with_the_folder(
        shared_server):
    srv = shared_server
    r = session(srv, "ctxuid", fresh=True, count=4)
    uids = uids_of(r, 4)
    r.cmd("a", "STORE 1 +FLAGS (\\Flagged)")
    lines, _ = r.cmd("u1", "UID SEARCH RETURN (UPDATE COUNT) FLAGGED")
    assert esearch(lines, "u1") == ['* ESEARCH (TAG "u1") UID COUNT 1'], lines
    lines, _ = r.cmd("b", "STORE 3:4 +FLAGS (\\Flagged)")
    assert esearch(lines, "u1") == [
        '* ESEARCH (TAG "u1") UID ADDTO (0 %d:%d)' % (uids[2], uids[3])], \
        lines
    lines, _ = r.cmd("c", "STORE 3 +FLAGS (\\Deleted)")
    assert esearch(lines, "u1") == [], lines
    lines, _ = r.cmd("d", "EXPUNGE")
    assert esearch(lines, "u1") == [
        '* ESEARCH (TAG "u1") UID REMOVEFROM (0 %d)' % uids[2]], lines
    # a new SELECT ends every live search of the old one
    r.cmd("s2", "SELECT ctxuid")
    lines, _ = r.cmd("e", "STORE 1:* -FLAGS (\\Flagged)")
    assert esearch(lines, "u1") == [], lines
    r.cmd("z", "LOGOUT")
    r.close()


def test_search_update_limit_answers_noupdate(shared_server):
    r = session(shared_server, "ctxlim", fresh=True, count=1)
    for i in range(16):
        _, tagged = r.cmd("k%d" % i, "SEARCH RETURN (UPDATE) SEEN")
        assert tagged.startswith("k%d OK SEARCH" % i), tagged
    lines, tagged = r.cmd("k16", "SEARCH RETURN (UPDATE COUNT) ALL")
    assert tagged.startswith('k16 OK [NOUPDATE "k16"]'), tagged
    assert esearch(lines, "k16") == ['* ESEARCH (TAG "k16") COUNT 1'], lines
    lines, _ = r.cmd("s", "STORE 1 +FLAGS (\\Seen)")
    assert len([ln for ln in lines if "ADDTO (0 1)" in ln]) == 16, lines
    r.cmd("z", "LOGOUT")
    r.close()


def test_search_partial_ranges(shared_server):
    r = session(shared_server, "ctxpart", fresh=True, count=6)
    uids = uids_of(r, 6)
    cases = [
        ("PARTIAL 1:2", "PARTIAL (1:2 1:2)"),
        ("PARTIAL 5:3", "PARTIAL (3:5 3:5)"),
        ("PARTIAL 5:100", "PARTIAL (5:100 5:6)"),
        ("PARTIAL 7:9", "PARTIAL (7:9 NIL)"),
        ("PARTIAL -1:-2", "PARTIAL (-1:-2 5:6)"),
        ("PARTIAL -3:-1", "PARTIAL (-1:-3 4:6)"),
        ("PARTIAL -5:-100", "PARTIAL (-5:-100 1:2)"),
        ("COUNT PARTIAL 2:3", "COUNT 6 PARTIAL (2:3 2:3)"),
    ]
    for i, (ret, want) in enumerate(cases):
        lines, tagged = r.cmd("p%d" % i, "SEARCH RETURN (%s) ALL" % ret)
        assert tagged.startswith("p%d OK" % i), tagged
        assert esearch(lines, "p%d" % i) == [
            '* ESEARCH (TAG "p%d") %s' % (i, want)], (ret, lines)
    lines, _ = r.cmd("q", "UID SEARCH RETURN (PARTIAL -1:-1) ALL")
    assert esearch(lines, "q") == [
        '* ESEARCH (TAG "q") UID PARTIAL (-1:-1 %d)' % uids[5]], lines
    for i, bad in enumerate(["1", "1:*", "*:1", "0:2", "-1:2", "1:-2",
                             "1:4294967296", ""]):
        _, tagged = r.cmd("b%d" % i, "SEARCH RETURN (PARTIAL %s) ALL" % bad)
        assert tagged.startswith("b%d BAD" % i), (bad, tagged)
    r.cmd("z", "LOGOUT")
    r.close()


# -- CONDSTORE (RFC 7162 section 3) -----------------------------------------

def modseq_of(line):
    return int(re.search(r"MODSEQ \((\d+)\)", line).group(1))


def test_condstore_enable_select_and_status(shared_server):
    srv = shared_server
    r = session(srv, "csel", fresh=True, count=2)
    lines, _ = r.cmd("c1", "CAPABILITY")
    assert "CONDSTORE" in lines[0].split(), lines
    lines, _ = r.cmd("st", "STATUS csel (HIGHESTMODSEQ MESSAGES)")
    m = re.search(r"HIGHESTMODSEQ (\d+)", lines[0])
    assert m and "MESSAGES 2" in lines[0], lines
    highest = int(m.group(1))
    lines, tagged = r.cmd("s2", "SELECT csel (CONDSTORE)")
    assert tagged.startswith("s2 OK"), tagged
    assert "* OK [HIGHESTMODSEQ %d] Highest" % highest in lines, lines
    # from now on a flag change is told with its new modseq
    lines, _ = r.cmd("a", "STORE 1 +FLAGS (\\Seen)")
    assert modseq_of(lines[0]) > highest, lines
    _, tagged = r.cmd("s3", "SELECT csel (NOSUCHPARAM)")
    assert tagged.startswith("s3 BAD"), tagged
    r.cmd("z", "LOGOUT")
    r.close()
    # ENABLE CONDSTORE before SELECT
    r = Raw(srv.imap_port)
    r.cmd("l", "LOGIN %s %s" % (ALICE, srv.users[ALICE]))
    lines, _ = r.cmd("e", "ENABLE CONDSTORE")
    assert "* ENABLED CONDSTORE" in lines, lines
    lines, _ = r.cmd("s", "EXAMINE csel")
    assert any(ln.startswith("* OK [HIGHESTMODSEQ ") for ln in lines), lines
    r.cmd("z", "LOGOUT")
    r.close()


def test_condstore_fetch_changedsince_and_conditional_store(shared_server):
    srv = shared_server
    r = session(srv, "cfetch", fresh=True, count=4)
    # the first MODSEQ enables CONDSTORE and tells HIGHESTMODSEQ
    lines, _ = r.cmd("f", "FETCH 1:4 (MODSEQ)")
    assert lines[0].startswith("* OK [HIGHESTMODSEQ "), lines
    mods = [modseq_of(ln) for ln in lines[1:]]
    assert len(mods) == 4, lines
    lines, _ = r.cmd("a", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert len(lines) == 1 and "FLAGS" not in lines[0], lines
    new2 = modseq_of(lines[0])
    assert new2 > max(mods), lines
    lines, _ = r.cmd("b", "FETCH 1:4 (FLAGS) (CHANGEDSINCE %d)" % max(mods))
    assert len(lines) == 1 and lines[0].startswith("* 2 FETCH"), lines
    assert "MODSEQ (%d)" % new2 in lines[0], lines
    # UNCHANGEDSINCE: message 2 changed after the client looked
    lines, tagged = r.cmd(
        "c", "STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % max(mods))
    assert tagged.startswith("c OK [MODIFIED 2]"), tagged
    told = sorted(int(ln.split()[1]) for ln in lines if "FETCH" in ln)
    assert told == [1, 3], lines
    lines, _ = r.cmd("d", "FETCH 2 (FLAGS)")
    assert "\\Answered" not in lines[0], lines
    lines, tagged = r.cmd(
        "u", "UID STORE 1:* (UNCHANGEDSINCE 0) -FLAGS (\\Seen)")
    assert re.match(r"u OK \[MODIFIED \d+:\d+\]", tagged), tagged
    r.cmd("z", "LOGOUT")
    r.close()


def test_condstore_search_modseq(shared_server):
    r = session(shared_server, "csearch", fresh=True, count=4)
    r.cmd("cs", "SELECT csearch (CONDSTORE)")
    mods = {}
    for i in [1, 3, 2, 4]:
        lines, _ = r.cmd("s%d" % i, "STORE %d +FLAGS (\\Seen)" % i)
        mods[i] = modseq_of(lines[-1])
    assert mods[1] < mods[3] < mods[2] < mods[4]
    lines, _ = r.cmd("a", "SEARCH 1:3 MODSEQ 1")
    assert lines == ["* SEARCH 1 2 3 (MODSEQ %d)" % mods[2]], lines
    lines, _ = r.cmd("b", 'SEARCH RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" '
                     'all 1')
    assert esearch(lines, "b") == [
        '* ESEARCH (TAG "b") MIN 1 MODSEQ %d' % mods[1]], lines
    lines, _ = r.cmd("c", "SEARCH RETURN (ALL) 2:3 MODSEQ %d" % mods[2])
    assert esearch(lines, "c") == [
        '* ESEARCH (TAG "c") ALL 2 MODSEQ %d' % mods[2]], lines
    lines, _ = r.cmd("d", "SEARCH RETURN (ALL) 1:3 MODSEQ %d" % mods[4])
    assert esearch(lines, "d") == ['* ESEARCH (TAG "d")'], lines
    # without a MODSEQ key nothing changes
    lines, _ = r.cmd("e", "SEARCH 1")
    assert lines == ["* SEARCH 1"], lines
    r.cmd("z", "LOGOUT")
    r.close()
