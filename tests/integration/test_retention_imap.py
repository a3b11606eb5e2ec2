"""Retention with IMAP (doc/internals/retention.md, postd.conf(5)): INBOX
is the counter where mail waits to be collected, and a message read over
IMAP counts as retrieved; other folders are the user's, emptied only by
autoexpunge.FOLDER. Removals by the pass reach selected IMAP sessions as
EXPUNGE. Fake times go through postctl expire --now (INV-T1)."""
import imaplib
import os
import re
import time

from conftest import ALICE
from pop3util import simple_msg
from retention_util import index_entries, msg_files, wait_pass_done

DAY = 86400


def expire(srv, *args):
    p = srv.postctl("expire", *args)
    return p.stdout.decode()


def imap_login(srv, user=ALICE):
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=10)
    c.login(user, srv.users[user])
    return c


def expunged_after_noop(c):
    """The sequence numbers a NOOP reports as EXPUNGEd."""
    typ, _ = c.noop()
    assert typ == "OK"
    typ, data = c.response("EXPUNGE")
    return [int(x) for x in data if x is not None]


def folder_files(srv, disk, user=ALICE):
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(srv.maildir(user), disk, sub)
        out += sorted(os.listdir(p))
    return out


def imap_log_records(srv, kind, disk="", user=ALICE):
    path = os.path.join(srv.maildir(user), disk, "postd-imap.log")
    with open(path) as f:
        return [ln for ln in f.read().splitlines()
                if ln.startswith(kind + " ")]


def test_imap_read_is_retrieval_in_inbox_and_session_sees_expunge(
        make_server):
    srv = make_server(overrides={"retention": "1d",
                                 "expire_interval": "1h"})
    wait_pass_done(srv)  # a pass holding the POP3 lock makes postctl skip
    srv.deliver(ALICE, simple_msg("read over IMAP"))
    srv.deliver(ALICE, simple_msg("never read"))
    before = int(time.time())
    c = imap_login(srv)
    assert c.select("INBOX")[0] == "OK"
    typ, data = c.fetch("1", "(BODY[])")  # not PEEK: sets \Seen
    assert typ == "OK" and b"read over IMAP" in data[0][1]
    assert any(":2,S" in n for n in msg_files(srv, ALICE))
    # The first pass records the read as the first retrieval.
    out = expire(srv)
    assert re.search(r"^0 messages removed", out, re.M), out
    idx = index_entries(srv, ALICE)
    t_r = idx[1][1]
    assert before <= t_r <= int(time.time()), (before, idx)
    assert idx[2][1] == 0  # unread stays unread
    # Kept until retention has passed since the read, not a second less.
    out = expire(srv, "--dry-run", "--now", str(t_r + DAY - 1))
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out = expire(srv, "--dry-run", "--now", str(t_r + DAY))
    assert re.search(r"^due alice@example.org uid=1 uidl=\S+ age=86400s "
                     r"rule=retention 1d after first retrieval$", out,
                     re.M), out
    out = expire(srv, "--now", str(t_r + DAY))
    assert re.search(r"^removed alice@example.org uid=1 ", out, re.M), out
    assert len(msg_files(srv, ALICE)) == 1
    # The pass recorded the expunge in INBOX's IMAP index itself ...
    assert [r.split()[1] for r in imap_log_records(srv, "X")] == ["1"]
    # ... and the session that has INBOX selected is told.
    assert expunged_after_noop(c) == [1]
    typ, data = c.uid("FETCH", "1:*", "(UID)")
    assert typ == "OK" and len([d for d in data if d]) == 1, data
    c.logout()


def test_imap_seen_by_store_counts_and_peek_does_not(make_server):
    srv = make_server(overrides={"retention": "0",
                                 "expire_interval": "1h"})
    wait_pass_done(srv)
    srv.deliver(ALICE, simple_msg("peeked"))
    srv.deliver(ALICE, simple_msg("flagged seen"))
    c = imap_login(srv)
    assert c.select("INBOX")[0] == "OK"
    assert c.fetch("1", "(BODY.PEEK[])")[0] == "OK"
    assert c.store("2", "+FLAGS", "(\\Seen)")[0] == "OK"
    c.logout()
    out = expire(srv)
    assert re.search(r"^removed alice@example.org uid=2 ", out, re.M), out
    assert re.search(r"^1 messages removed", out, re.M), out
    c = imap_login(srv)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data[0] == b"1", data
    c.logout()


def append_at(c, folder, subject, when):
    msg = simple_msg(subject)
    if isinstance(msg, str):
        msg = msg.encode()
    typ, data = c.append(folder, None, when, msg)
    assert typ == "OK", data


def ctime_of(srv, disk, subject, user=ALICE):
    """The ctime of the file in folder disk whose text holds subject."""
    for sub in ("new", "cur"):
        d = os.path.join(srv.maildir(user), disk, sub)
        for n in os.listdir(d):
            with open(os.path.join(d, n), "rb") as f:
                if subject.encode() in f.read():
                    return int(os.stat(os.path.join(d, n)).st_ctime)
    raise AssertionError("no %r in %s" % (subject, disk))


def test_autoexpunge_trash_counts_from_the_save_others_untouched(
        make_server):
    """autoexpunge.Trash = 30d gives a message 30 days in Trash, however
    old its INTERNALDATE: an APPEND with an old date and a move of an old
    message both count from the moment they reached Trash."""
    srv = make_server(overrides={"autoexpunge.Trash": "30d",
                                 "autoexpunge.Junk": "30d",
                                 "expire_interval": "1h"})
    wait_pass_done(srv)
    now = int(time.time())
    srv.deliver(ALICE, simple_msg("moved inbox"))
    srv.deliver(ALICE, simple_msg("old inbox"))
    for path in msg_files(srv, ALICE):
        os.utime(path, (now - 400 * DAY, now - 400 * DAY))
    c = imap_login(srv)
    for name in ("Trash", "Archive"):
        typ, data = c.create(name)
        assert typ == "OK" or b"ALREADYEXISTS" in data[0], data
    append_at(c, "Trash", "old trash", now - 40 * DAY)
    append_at(c, "Archive", "old archive", now - 400 * DAY)
    time.sleep(2.1)  # the next save has a later ctime, to the second
    assert c.select("INBOX")[0] == "OK"
    typ, data = c.fetch("1", "(INTERNALDATE)")
    assert typ == "OK" and b"INTERNALDATE" in data[0], data
    typ, data = c.uid("MOVE", "1", "Trash")
    assert typ == "OK", data
    saved_first = ctime_of(srv, ".Trash", "old trash")
    saved_moved = ctime_of(srv, ".Trash", "moved inbox")
    assert saved_moved >= saved_first + 2, (saved_first, saved_moved)
    assert c.select("Trash")[0] == "OK"
    trash = folder_files(srv, ".Trash")
    assert len(trash) == 2
    # Both INTERNALDATEs are older than 30 days, but both just arrived.
    out = expire(srv, "--dry-run")
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out = expire(srv, "--dry-run", "--now", str(saved_first + 30 * DAY - 1))
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out = expire(srv, "--dry-run", "--now", str(saved_first + 30 * DAY))
    assert re.search(r"^due alice@example.org folder=Trash uid=1 "
                     r"age=2592000s rule=autoexpunge.Trash 30d in the "
                     r"folder$", out, re.M), out
    assert re.search(r"^1 messages would be removed", out, re.M), out
    assert folder_files(srv, ".Trash") == trash  # a dry run changes nothing
    out = expire(srv, "--now", str(saved_first + 30 * DAY))
    assert re.search(r"^removed alice@example.org folder=Trash uid=1 ", out,
                     re.M), out
    assert re.search(r"^1 messages removed, \d+ users checked, 0 mailboxes "
                     r"in use skipped, 0 errors$", out, re.M), out
    assert len(folder_files(srv, ".Trash")) == 1
    assert len(folder_files(srv, ".Archive")) == 1  # no key: the user's
    assert len(msg_files(srv, ALICE)) == 1  # INBOX: retention's, never set
    # Durable in the folder's IMAP index, and the selected session is told.
    assert [r.split()[1] for r in imap_log_records(srv, "X", ".Trash")] \
        == ["1"]
    assert expunged_after_noop(c) == [1]
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"moved inbox" in data[0][1], data
    c.logout()
    # The moved one goes 30 days after the move.
    out = expire(srv, "--dry-run", "--now", str(saved_moved + 30 * DAY - 1))
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out = expire(srv, "--dry-run", "--now", str(saved_moved + 30 * DAY))
    assert re.search(r"^due alice@example.org folder=Trash uid=2 "
                     r"age=2592000s ", out, re.M), out


def test_autoexpunge_by_the_daemons_timer(make_server):
    srv = make_server(overrides={"autoexpunge.Junk": "3s",
                                 "expire_interval": "1s"})
    wait_pass_done(srv)
    c = imap_login(srv)
    typ, data = c.create("Junk")
    assert typ == "OK" or b"ALREADYEXISTS" in data[0], data
    append_at(c, "Junk", "spam", int(time.time()) - 8 * DAY)
    c.logout()
    # Kept for its 3 s in Junk, though dated 8 days ago ...
    time.sleep(1.5)
    assert len(folder_files(srv, ".Junk")) == 1
    # ... then gone by the daemon's own pass.
    srv.wait_log(r"expired user=alice@example.org folder=Junk uid=1 "
                 r"age=\d+s rule=autoexpunge.Junk 3s in the folder",
                 timeout=10)
    assert folder_files(srv, ".Junk") == []
