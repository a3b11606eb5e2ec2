"""POP3 and IMAP sharing one INBOX (doc/internals/storage.md, "POP3 and
IMAP on one INBOX"): a POP3 session keeps the snapshot it took at login
for its whole life (INV-P2) whatever IMAP does meanwhile; what IMAP
expunges (EXPUNGE, MOVE) is held for a running POP3 session and gone for
the next login; what POP3 deletes at QUIT reaches selected IMAP sessions as
EXPUNGE; the POP3 lock never blocks IMAP; a crash loses nothing that was
not expunged and brings nothing expunged back."""
import imaplib
import os
import time

from conftest import ALICE
from pop3util import simple_msg, wire

HOLD = "postd-pop3-hold"


def imap_login(srv):
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=10)
    c.login(ALICE, srv.users[ALICE])
    return c


def select_inbox(c):
    typ, data = c.select("INBOX")
    assert typ == "OK", data
    return int(data[0])


def three_messages(srv):
    msgs = [simple_msg("coexist %d" % i, body="Body %d.\nline two\n" % i)
            for i in range(1, 4)]
    for m in msgs:
        srv.deliver(ALICE, m)
    return msgs


def pop3_listing(c):
    st, lst = c.cmd_multi("LIST")
    assert st.startswith("+OK"), st
    st, uidl = c.cmd_multi("UIDL")
    assert st.startswith("+OK"), st
    return lst, uidl


def retr(c, n):
    st = c.cmd("RETR %d" % n)
    assert st.startswith("+OK"), "RETR %d: %s" % (n, st)
    return c.read_multi_raw()


def top(c, n, lines):
    st = c.cmd("TOP %d %d" % (n, lines))
    assert st.startswith("+OK"), "TOP %d: %s" % (n, st)
    return c.read_multi_raw()


def imap_subjects(c, mailbox="INBOX"):
    typ, data = c.select(mailbox)
    assert typ == "OK", data
    if int(data[0]) == 0:
        return []
    typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    return sorted(d[1].decode().strip() for d in data
                  if isinstance(d, tuple))


def uid_next(c):
    typ, data = c.status("INBOX", "(UIDNEXT)")
    assert typ == "OK", data
    return data[0].split(b"UIDNEXT ")[1].rstrip(b")")


def pop3_uidls(srv):
    c = srv.login()
    st, uidl = c.cmd_multi("UIDL")
    assert st.startswith("+OK"), st
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    return uidl


def hold_files(srv):
    p = os.path.join(srv.maildir(), HOLD)
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def expunges_within(c, seconds=1.0):
    """Sequence numbers reported as EXPUNGE by NOOPs within seconds."""
    deadline = time.monotonic() + seconds
    while True:
        typ, _ = c.noop()
        assert typ == "OK"
        typ, data = c.response("EXPUNGE")
        got = [int(x) for x in data if x is not None]
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_imap_flag_rename_does_not_break_pop3_retr(server):
    srv = server
    msgs = three_messages(srv)
    p = srv.login()
    lst, uidl = pop3_listing(p)
    i = imap_login(srv)
    assert select_inbox(i) == 3
    typ, data = i.store("1", "+FLAGS", "(\\Seen \\Flagged)")
    assert typ == "OK", data
    # the file was renamed: cur/NAME:2,FS
    assert any(n.endswith(":2,FS") for n in srv.stored_messages()), \
        srv.stored_messages()
    assert retr(p, 1) == wire(msgs[0])
    assert top(p, 1, 0).startswith(b"From: ")
    assert pop3_listing(p) == (lst, uidl)
    typ, data = i.store("1", "-FLAGS", "(\\Flagged)")
    assert typ == "OK", data
    assert retr(p, 1) == wire(msgs[0])
    assert p.cmd("QUIT").startswith("+OK")
    i.logout()
    assert pop3_uidls(srv) == uidl


def _expunge_during_pop3(srv, how):
    msgs = three_messages(srv)
    p = srv.login()
    lst, uidl = pop3_listing(p)
    i = imap_login(srv)
    assert select_inbox(i) == 3
    if how == "expunge":
        assert i.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        typ, data = i.expunge()
        assert (typ, data) == ("OK", [b"2"]), data
    else:
        typ, data = i._simple_command("MOVE", "2", "Archive")
        assert typ == "OK", data
        assert i.untagged_responses.get("EXPUNGE") == [b"2"], \
            i.untagged_responses
    # IMAP's view is atomic: gone at once for every IMAP session
    assert imap_subjects(i) == ["Subject: coexist 1", "Subject: coexist 3"]
    # POP3 keeps its snapshot for the whole session (INV-P2)
    assert retr(p, 2) == wire(msgs[1])
    assert top(p, 2, 1).startswith(b"From: ")
    assert pop3_listing(p) == (lst, uidl)
    assert retr(p, 3) == wire(msgs[2])
    assert p.cmd("QUIT").startswith("+OK")
    # gone for the next POP3 login, and nothing left behind
    after = pop3_uidls(srv)
    assert after == [uidl[0], "2 " + uidl[2].split()[1]], (uidl, after)
    assert hold_files(srv) == []
    assert imap_subjects(i) == ["Subject: coexist 1", "Subject: coexist 3"]
    if how == "move":
        assert imap_subjects(i, "Archive") == ["Subject: coexist 2"]
    i.logout()
    return msgs


def test_imap_expunge_during_pop3_session(server):
    _expunge_during_pop3(server, "expunge")


def test_imap_move_to_archive_during_pop3_session(server):
    _expunge_during_pop3(server, "move")


def test_imap_expunge_while_pop3_deletes_it_too(server):
    """Both remove message 2: POP3's QUIT finds it already gone and says
    +OK (the client asked for it to go, and it went)."""
    srv = server
    three_messages(srv)
    p = srv.login()
    _, uidl = pop3_listing(p)
    i = imap_login(srv)
    select_inbox(i)
    assert i.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert i.expunge()[0] == "OK"
    assert p.cmd("DELE 2").startswith("+OK")
    st = p.cmd("QUIT")
    assert st.startswith("+OK") and "[SYS/TEMP]" not in st, st
    assert [u.split()[1] for u in pop3_uidls(srv)] == \
        [uidl[0].split()[1], uidl[2].split()[1]]
    assert hold_files(srv) == []
    i.logout()


def test_pop3_delete_reaches_selected_imap_session(server):
    srv = server
    three_messages(srv)
    i = imap_login(srv)
    assert select_inbox(i) == 3
    p = srv.login()
    assert p.cmd("DELE 2").startswith("+OK")
    # nothing changes before QUIT (INV-P1)
    assert expunges_within(i, 0.2) == []
    assert p.cmd("QUIT").startswith("+OK")
    assert expunges_within(i, 1.0) == [2]
    assert imap_subjects(i) == ["Subject: coexist 1", "Subject: coexist 3"]
    i.logout()


def test_pop3_lock_never_blocks_imap(server):
    srv = server
    three_messages(srv)
    p = srv.login()
    pop3_listing(p)
    i = imap_login(srv)
    t0 = time.monotonic()
    assert select_inbox(i) == 3
    assert i.store("1:3", "+FLAGS", "(\\Deleted)")[0] == "OK"
    typ, data = i.expunge()
    assert (typ, data) == ("OK", [b"1", b"1", b"1"]), data
    # not waiting for the POP3 session: well below any lock timeout
    assert time.monotonic() - t0 < 5
    assert srv.stored_messages() == []
    # while POP3 still runs, its messages wait in the hold folder
    assert len(hold_files(srv)) == 3
    assert p.cmd("QUIT").startswith("+OK")
    assert hold_files(srv) == []
    i.logout()


def test_hold_is_emptied_at_once_without_pop3_session(server):
    srv = server
    three_messages(srv)
    i = imap_login(srv)
    select_inbox(i)
    assert i.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert i.expunge()[0] == "OK"
    assert hold_files(srv) == []
    assert len(srv.stored_messages()) == 2
    i.logout()


def test_hold_is_not_an_imap_mailbox(server):
    srv = server
    three_messages(srv)
    p = srv.login()
    i = imap_login(srv)
    select_inbox(i)
    assert i.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert i.expunge()[0] == "OK"
    assert len(hold_files(srv)) == 1
    typ, data = i.list()
    assert typ == "OK"
    assert not any(HOLD.encode() in d for d in data), data
    typ, data = i.select(HOLD)
    assert typ == "NO", data
    typ, data = i.status(HOLD, "(MESSAGES)")
    assert typ == "NO", data
    assert p.cmd("QUIT").startswith("+OK")
    i.logout()


def test_crash_while_message_held(server):
    srv = server
    msgs = three_messages(srv)
    p = srv.login()
    _, uidl = pop3_listing(p)
    i = imap_login(srv)
    select_inbox(i)
    assert i.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert i.expunge()[0] == "OK"
    assert p.cmd("DELE 3").startswith("+OK")  # never committed: no QUIT
    uidnext = uid_next(i)
    srv.crash()
    srv.start()
    # IMAP: message 2 stays expunged, 1 and 3 are there, nothing new
    i = imap_login(srv)
    typ, data = i.select("INBOX")
    assert typ == "OK" and int(data[0]) == 2, data
    assert uid_next(i) == uidnext  # nothing came back as new mail
    assert imap_subjects(i) == ["Subject: coexist 1", "Subject: coexist 3"]
    i.logout()
    # POP3: the held message does not come back, the others are intact
    p = srv.login()
    st, uidl_after = p.cmd_multi("UIDL")
    assert [u.split()[1] for u in uidl_after] == \
        [uidl[0].split()[1], uidl[2].split()[1]]
    assert retr(p, 1) == wire(msgs[0])
    assert retr(p, 2) == wire(msgs[2])
    # the leftover was removed by this login, under its lock
    assert hold_files(srv) == []
    assert p.cmd("QUIT").startswith("+OK")


def test_imap_rename_inbox_during_pop3_session(server):
    """RENAME INBOX moves every INBOX message into a new folder (RFC 9051
    6.3.6): for a running POP3 session that is an expunge of them all."""
    srv = server
    msgs = three_messages(srv)
    p = srv.login()
    lst, uidl = pop3_listing(p)
    i = imap_login(srv)
    typ, data = i.rename("INBOX", "Old")
    assert typ == "OK", data
    assert imap_subjects(i) == []
    assert retr(p, 1) == wire(msgs[0])
    assert retr(p, 3) == wire(msgs[2])
    assert pop3_listing(p) == (lst, uidl)
    assert p.cmd("QUIT").startswith("+OK")
    assert pop3_uidls(srv) == []
    assert hold_files(srv) == []
    assert imap_subjects(i, "Old") == ["Subject: coexist %d" % k
                                       for k in (1, 2, 3)]
    i.logout()
