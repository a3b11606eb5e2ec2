"""IMAP replies at their bounds: a reply longer than any fixed buffer is
sent whole with its CRLF, and what a client may make long (keywords, the
items of STATUS, a COPY of scattered messages, a long HEADER.FIELDS list)
never overruns a buffer or kills the worker. Each of these broke before:
the worker died (stack smashing, SIGSEGV) or a reply lost its CRLF."""

import os

from conftest import ALICE, ALICE_PW
from test_imap_basic import Raw, fresh


def put_messages(srv, count, user=ALICE):
    """count small messages: the first delivered (which makes the
    Maildir), the rest written straight into new/ as another delivery
    program would leave them, owned like the Maildir."""
    srv.deliver(user, b"Subject: m0\n\nbody 0\n")
    d = os.path.join(srv.maildir(user), "new")
    st = os.stat(d)
    for i in range(1, count):
        path = os.path.join(d, "%d.M%dP1.test" % (1700000000 + i, i))
        with open(path, "wb") as f:
            f.write(b"Subject: m%d\n\nbody %d\n" % (i, i))
        os.chown(path, st.st_uid, st.st_gid)


def session(srv):
    r = Raw(srv.imap_port)
    lines, tagged = r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))
    assert tagged.startswith("a1 OK"), tagged
    return r


def assert_alive(srv, r):
    """The session goes on, the worker takes new ones, none died."""
    lines, tagged = r.cmd("z9", "NOOP")
    assert tagged == "z9 OK NOOP completed.", tagged
    other = session(srv)  # and the worker still takes new sessions
    other.cmd("z1", "LOGOUT")
    other.close()
    log = srv.log()
    assert "died" not in log and "stack smashing" not in log, log[-2000:]


def test_sixty_four_long_keywords_fetch_and_select(shared_server):
    srv = shared_server
    fresh(srv)
    put_messages(srv, 1)
    r = session(srv)
    r.cmd("a2", "SELECT INBOX")
    kws = ["K%02d" % i + "y" * 125 for i in range(64)]
    lines, tagged = r.cmd("a3", "STORE 1 +FLAGS.SILENT (%s)" % " ".join(kws))
    assert tagged.startswith("a3 OK"), tagged
    lines, tagged = r.cmd("a4", "FETCH 1 (FLAGS)")
    assert tagged.startswith("a4 OK"), tagged
    fetch = [ln for ln in lines if ln.startswith("* 1 FETCH")]
    assert len(fetch) == 1 and all(k in fetch[0] for k in kws), lines
    assert fetch[0].endswith("))"), fetch[0][-40:]
    lines, tagged = r.cmd("a5", "SELECT INBOX")
    assert tagged.startswith("a5 OK"), tagged
    flags = [ln for ln in lines if ln.startswith("* FLAGS (")]
    assert len(flags) == 1 and flags[0].endswith(")"), lines
    assert all(k in flags[0] for k in kws)
    assert "* 1 EXISTS" in lines, lines
    assert_alive(srv, r)
    r.close()


def test_status_with_repeated_items_answers_each_once(shared_server):
    srv = shared_server
    fresh(srv)
    r = session(srv)
    lines, tagged = r.cmd("a2", "STATUS INBOX (%s MESSAGES)"
                          % " ".join(["UIDVALIDITY"] * 60))
    assert tagged.startswith("a2 OK"), tagged
    st = [ln for ln in lines if ln.startswith("* STATUS")]
    assert len(st) == 1 and st[0].count("UIDVALIDITY") == 1, lines
    assert "MESSAGES 0" in st[0], st
    assert_alive(srv, r)
    r.close()


def test_copy_of_scattered_messages_has_whole_copyuid(shared_server):
    """A COPYUID longer than 1 KiB (every other of 600 messages, as
    a Thunderbird selection makes it) ends in CRLF: the next reply is its
    own line."""
    srv = shared_server
    fresh(srv)
    put_messages(srv, 600)
    r = session(srv)
    lines, tagged = r.cmd("a2", "SELECT INBOX")
    assert "* 600 EXISTS" in lines, lines
    odd = ",".join(str(i) for i in range(1, 601, 2))
    lines, tagged = r.cmd("a3", "UID COPY %s Archive" % odd)
    assert tagged.startswith("a3 OK [COPYUID "), tagged
    assert len(tagged) > 1100, len(tagged)
    assert tagged.endswith("] COPY completed."), tagged[-60:]
    src = tagged.split()[4]
    assert src == odd, src[:80]
    lines, tagged = r.cmd("a4", "UID MOVE %s Trash" % odd)
    assert tagged.startswith("a4 OK"), tagged
    moved = [ln for ln in lines if ln.startswith("* OK [COPYUID ")]
    assert len(moved) == 1 and moved[0].split()[4] == odd, lines[:3]
    assert sum(1 for ln in lines if ln.endswith(" EXPUNGE")) == 300
    assert_alive(srv, r)
    r.close()


def test_long_header_fields_label_is_whole(shared_server):
    srv = shared_server
    fresh(srv)
    put_messages(srv, 1)
    r = session(srv)
    r.cmd("a2", "SELECT INBOX")
    names = " ".join("X-Field-Number-%02d" % i for i in range(90))
    r.send("a3 FETCH 1 (BODY.PEEK[HEADER.FIELDS (%s SUBJECT)])\r\n" % names)
    head = r.line()
    assert head.startswith("* 1 FETCH (BODY[HEADER.FIELDS ("), head[:60]
    assert head.endswith(" SUBJECT)] {15}"), head[-60:]
    lines, tagged = r.until("a3")
    assert tagged.startswith("a3 OK"), tagged
    assert_alive(srv, r)
    r.close()


def listed(lines):
    return sorted(ln.rsplit(" ", 1)[1].strip('"') for ln in lines
                  if ln.startswith(("* LIST ", "* LSUB ")))


def test_list_patterns_of_many_wildcards(shared_server):
    """LIST patterns are matched in time linear in the pattern per name:
    200 '%' before a letter that never matches used to try every split
    (exponential: 60 '%' blocked the worker for 45 s); the 10 s socket
    timeout below is the bound. Many wildcards still match as they
    should."""
    srv = shared_server
    fresh(srv)
    r = session(srv)
    r.cmd("a2", 'CREATE "Archive/2026"')
    r.cmd("a3", 'CREATE "Archive/2026/Q1"')
    lines, tagged = r.cmd("a4", 'LIST "" "%s"' % ("%" * 200 + "Q"))
    assert tagged.startswith("a4 OK"), tagged
    assert listed(lines) == [], lines
    lines, tagged = r.cmd("a5", 'LIST "" "%s"' % ("*" * 200 + "Q"))
    assert tagged.startswith("a5 OK"), tagged
    assert listed(lines) == [], lines
    lines, tagged = r.cmd("a6", 'LIST "" "%%%%%%ive"')
    assert listed(lines) == ["Archive"], lines
    lines, tagged = r.cmd("a7", 'LIST "" "Archive/%%%%%%"')
    assert listed(lines) == ["Archive/2026"], lines
    lines, tagged = r.cmd("a8", 'LIST "" "A*%Q%"')
    assert listed(lines) == ["Archive/2026/Q1"], lines
    lines, tagged = r.cmd("a9", 'LIST "" "*%1"')
    assert listed(lines) == ["Archive/2026/Q1"], lines
    r.cmd("b1", 'DELETE "Archive/2026/Q1"')
    r.cmd("b2", 'DELETE "Archive/2026"')
    assert_alive(srv, r)
    r.close()


def test_inbox_children_in_any_case_are_one_folder(shared_server):
    """"inbox/x" is INBOX/x (INBOX is case-insensitive, RFC 9051 5.1):
    RENAME moves it, DELETE of the selected one in another spelling is
    refused as in use, SUBSCRIBE lists it under its one name."""
    srv = shared_server
    fresh(srv)
    r = session(srv)
    lines, tagged = r.cmd("a2", "CREATE INBOX/x")
    assert tagged.startswith("a2 OK"), tagged
    lines, tagged = r.cmd("a3", "RENAME inbox/x Moved")
    assert tagged.startswith("a3 OK"), tagged
    lines, tagged = r.cmd("a4", 'LIST "" "*"')
    names = listed(lines)
    assert "Moved" in names and "INBOX/x" not in names, names
    lines, tagged = r.cmd("a5", "CREATE Inbox/y")
    assert tagged.startswith("a5 OK"), tagged
    lines, tagged = r.cmd("a6", "SUBSCRIBE inBOX/y")
    assert tagged.startswith("a6 OK"), tagged
    lines, tagged = r.cmd("a7", 'LSUB "" "*"')
    assert "INBOX/y" in listed(lines) and "inBOX/y" not in listed(lines), \
        lines
    r.cmd("a8", "DELETE Moved")
    r.cmd("a9", "DELETE INBOX/y")
    r.close()


def test_uid_expunge_of_the_saved_result(shared_server):
    """UID EXPUNGE $ expunges the saved SEARCH result (RFC 5182, RFC
    4315): it answered OK and expunged nothing."""
    srv = shared_server
    fresh(srv)
    put_messages(srv, 4)
    r = session(srv)
    r.cmd("a2", "SELECT INBOX")
    lines, tagged = r.cmd("a3", "UID SEARCH RETURN (SAVE) 2:3")
    assert tagged.startswith("a3 OK"), tagged
    lines, tagged = r.cmd("a4", "STORE 1:* +FLAGS.SILENT (\\Deleted)")
    assert tagged.startswith("a4 OK"), tagged
    lines, tagged = r.cmd("a5", "UID EXPUNGE $")
    assert tagged.startswith("a5 OK"), tagged
    assert [ln for ln in lines if ln.endswith("EXPUNGE")] == \
        ["* 2 EXPUNGE", "* 2 EXPUNGE"], lines
    lines, tagged = r.cmd("a6", "UID SEARCH ALL")
    assert "* SEARCH 1 4" in lines, lines
    r.close()
