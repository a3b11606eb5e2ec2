"""RFC 1939 command semantics with Python's poplib, and INV-P1 (deletion
only in the UPDATE state)."""

import poplib
import re
import socket
import time

import pytest

from conftest import ALICE, ALICE_PW
from pop3util import simple_msg, top_wire, wire

MSGS = [
    simple_msg("first", "one\nline two\n.dot line\nfour\n"),
    simple_msg("second", "Body of the second message.\n"),
    simple_msg("third", "a\nb\nc\nd\ne\n"),
]


def fill(srv, user=ALICE, msgs=MSGS):
    srv.clear_mailbox(user)
    for m in msgs:
        srv.deliver(user, m)


def pop(srv, user=ALICE, pw=ALICE_PW, retry=3.0):
    deadline = time.monotonic() + retry
    while True:
        p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=10)
        p.user(user)
        try:
            p.pass_(pw)
            return p
        except poplib.error_proto as e:
            p.close()
            if b"[IN-USE]" in e.args[0] and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise


def stat(srv, user=ALICE):
    p = pop(srv, user, srv.users[user])
    try:
        return p.stat()
    finally:
        p.quit()


def test_greeting_and_user_pass(shared_server):
    p = poplib.POP3("127.0.0.1", shared_server.pop3_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    assert p.user(ALICE).startswith(b"+OK")
    assert p.pass_(ALICE_PW).startswith(b"+OK")
    assert p.quit().startswith(b"+OK")


def test_stat_list_uidl_retr(shared_server):
    srv = shared_server
    fill(srv)
    p = pop(srv)
    try:
        count, size = p.stat()
        assert count == 3
        sizes = [len(wire(m)) for m in MSGS]
        assert size == sum(sizes)

        resp, lines, _ = p.list()
        assert resp.startswith(b"+OK")
        assert [tuple(map(int, ln.split())) for ln in lines] == \
            [(i + 1, s) for i, s in enumerate(sizes)]

        # single-argument forms answer on the status line (RFC 1939 sec. 5)
        for i, s in enumerate(sizes):
            r = p.list(i + 1)
            assert re.fullmatch(rb"\+OK %d %d( .*)?" % (i + 1, s), r), r

        resp, ulines, _ = p.uidl()
        uids = [ln.split()[1] for ln in ulines]
        assert [int(ln.split()[0]) for ln in ulines] == [1, 2, 3]
        assert len(set(uids)) == 3
        for u in uids:
            assert re.fullmatch(rb"[\x21-\x7e]{1,70}", u), u
        for i, u in enumerate(uids):
            r = p.uidl(i + 1)
            assert re.fullmatch(rb"\+OK %d %s" % (i + 1, re.escape(u)), r), r

        for i, m in enumerate(MSGS):
            resp, lines, octets = p.retr(i + 1)
            assert resp.startswith(b"+OK")
            assert b"".join(ln + b"\r\n" for ln in lines) == wire(m)
    finally:
        p.quit()


def test_top(shared_server):
    srv = shared_server
    fill(srv)
    p = pop(srv)
    try:
        for n in (0, 2, 100):
            resp, lines, _ = p.top(3, n)
            assert resp.startswith(b"+OK")
            assert b"".join(ln + b"\r\n" for ln in lines) == \
                top_wire(MSGS[2], n), n
        with pytest.raises(poplib.error_proto):
            p.top(4, 0)
        with pytest.raises(poplib.error_proto):
            p._shortcmd("TOP 1")  # missing line count
    finally:
        p.quit()


def test_dele_rset_noop_semantics(shared_server):
    srv = shared_server
    fill(srv)
    sizes = [len(wire(m)) for m in MSGS]
    p = pop(srv)
    try:
        assert p.noop().startswith(b"+OK")
        assert p.dele(2).startswith(b"+OK")
        # RFC 1939: a deleted message may not be referenced again
        for call in (lambda: p.retr(2), lambda: p.list(2), lambda: p.uidl(2),
                     lambda: p.top(2, 0), lambda: p.dele(2)):
            with pytest.raises(poplib.error_proto) as ei:
                call()
            assert ei.value.args[0].startswith(b"-ERR"), ei.value.args[0]
        # STAT and LIST leave out deleted messages (RFC 1939 section 5)
        assert p.stat() == (2, sizes[0] + sizes[2])
        _, lines, _ = p.list()
        assert [int(ln.split()[0]) for ln in lines] == [1, 3]
        _, ulines, _ = p.uidl()
        assert [int(ln.split()[0]) for ln in ulines] == [1, 3]
        # nothing deleted on disk before QUIT (INV-P1)
        assert len(srv.stored_messages()) == 3
        assert p.rset().startswith(b"+OK")
        assert p.stat() == (3, sum(sizes))
        assert p.retr(2)[0].startswith(b"+OK")
        assert p.dele(1).startswith(b"+OK")
        assert p.dele(3).startswith(b"+OK")
    finally:
        assert p.quit().startswith(b"+OK")
    # UPDATE state removed exactly messages 1 and 3
    assert len(srv.stored_messages()) == 1
    p = pop(srv)
    try:
        assert p.stat() == (1, sizes[1])
        assert b"".join(ln + b"\r\n" for ln in p.retr(1)[1]) == wire(MSGS[1])
    finally:
        p.quit()
    srv.wait_log(r"logout user=alice@example\.org .*deleted=2")


def test_bad_message_numbers_give_err(shared_server):
    srv = shared_server
    fill(srv)
    p = pop(srv)
    try:
        for cmd in ("RETR 4", "LIST 4", "UIDL 4", "DELE 4", "TOP 4 1",
                    "RETR 0", "LIST 0", "DELE 0"):
            with pytest.raises(poplib.error_proto) as ei:
                p._shortcmd(cmd)
            assert ei.value.args[0].startswith(b"-ERR"), (cmd, ei.value)
        assert p.stat()[0] == 3
    finally:
        p.quit()


def test_inv_p1_drop_after_dele_deletes_nothing(shared_server):
    srv = shared_server
    fill(srv)
    p = pop(srv)
    assert p.dele(1).startswith(b"+OK")
    assert p.dele(2).startswith(b"+OK")
    p.sock.close()  # FIN without QUIT
    p.file.close()
    assert stat(srv)[0] == 3
    assert len(srv.stored_messages()) == 3


def test_inv_p1_rst_after_dele_deletes_nothing(shared_server):
    srv = shared_server
    fill(srv)
    p = pop(srv)
    assert p.dele(1).startswith(b"+OK")
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    p.sock.close()  # RST
    p.file.close()
    assert stat(srv)[0] == 3


def test_inv_p1_drop_mid_retr_deletes_nothing(shared_server):
    srv = shared_server
    big = b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 60000  # ~4 MiB
    fill(srv, msgs=[MSGS[0], big])
    p = pop(srv)
    assert p.dele(1).startswith(b"+OK")
    p.sock.sendall(b"RETR 2\r\n")
    p.sock.recv(1000)  # the response has started
    p.sock.close()
    p.file.close()
    assert stat(srv)[0] == 2


def test_inv_p1_quit_in_authorization_deletes_nothing(shared_server):
    srv = shared_server
    fill(srv)
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=10)
    p.user(ALICE)
    assert p.quit().startswith(b"+OK")
    assert len(srv.stored_messages()) == 3
    # and a session with DELE then RSET then QUIT deletes nothing
    p = pop(srv)
    p.dele(1)
    p.rset()
    p.quit()
    assert stat(srv)[0] == 3


def test_retr_marks_nothing_deleted_and_quit_updates(shared_server):
    """RETR alone deletes nothing; a second session still sees the mail."""
    srv = shared_server
    fill(srv)
    p = pop(srv)
    for i in (1, 2, 3):
        p.retr(i)
    p.quit()
    assert stat(srv)[0] == 3


def test_empty_mailbox(shared_server):
    srv = shared_server
    srv.clear_mailbox("bob@example.org")
    p = pop(srv, "bob@example.org", srv.users["bob@example.org"])
    try:
        assert p.stat() == (0, 0)
        resp, lines, _ = p.list()
        assert resp.startswith(b"+OK") and lines == []
        resp, lines, _ = p.uidl()
        assert resp.startswith(b"+OK") and lines == []
        with pytest.raises(poplib.error_proto):
            p.retr(1)
    finally:
        p.quit()
