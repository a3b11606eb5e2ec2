"""Byte-exact delivery -> RETR round trips, LIST sizes as octets on the
wire (RFC 1939), and UIDL stability (INV-P2)."""

import glob
import os
import re

import pytest

from conftest import ALICE
from pop3util import stuff, top_wire, unstuff, wire

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "messages")
FIXTURES = sorted(glob.glob(os.path.join(DATA, "*.eml")))


def generated():
    hdr = b"From: gen@example.net\nSubject: generated\n\n"
    return {
        "long-lines": hdr + b"a" * 997 + b"\n" + b"b" * 998 + b"\n" +
        b"c" * 999 + b"\n" + b"." + b"d" * 997 + b"\n" + b"end\n",
        "dot-lines-many": hdr + b"".join(
            b"." * (i % 5) + b"line %d\n" % i for i in range(2000)),
        "binary-ish": hdr + bytes(b for b in range(1, 256)
                                  if b not in (10, 13)) + b"\n",
        "single-line": b"Subject: x",
    }


def retr_raw(c, n):
    r = c.cmd("RETR %d" % n)
    assert r.startswith("+OK"), r
    return c.read_multi_raw()


def list_sizes(c):
    status, lines = c.cmd_multi("LIST")
    assert status.startswith("+OK"), status
    return [int(ln.split()[1]) for ln in lines]


def uidls(c):
    status, lines = c.cmd_multi("UIDL")
    assert status.startswith("+OK"), status
    return [ln.split()[1] for ln in lines]


def check_message(c, n, msg):
    raw = retr_raw(c, n)
    expect = wire(msg)
    # on the wire: the stuffed CRLF form, byte for byte
    assert raw == stuff(expect), "RETR %d differs at byte %d" % (
        n, first_diff(raw, stuff(expect)))
    # and LIST gives the unstuffed octet count (RFC 1939 "exact size")
    r = c.cmd("LIST %d" % n)
    assert r.split()[:3] == ["+OK", str(n), str(len(unstuff(raw)))], r


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


@pytest.mark.parametrize("path", FIXTURES,
                         ids=[os.path.basename(p) for p in FIXTURES])
def test_roundtrip_fixture(shared_server, path):
    srv = shared_server
    with open(path, "rb") as f:
        msg = f.read()
    srv.clear_mailbox()
    srv.deliver(ALICE, msg)
    c = srv.login()
    try:
        check_message(c, 1, msg)
        st = c.cmd("STAT").split()
        assert st[:3] == ["+OK", "1", str(len(wire(msg)))], st
    finally:
        c.cmd("QUIT")
        c.close()


@pytest.mark.parametrize("name", sorted(generated()))
def test_roundtrip_generated(shared_server, name):
    srv = shared_server
    msg = generated()[name]
    srv.clear_mailbox()
    srv.deliver(ALICE, msg)
    c = srv.login()
    try:
        check_message(c, 1, msg)
    finally:
        c.cmd("QUIT")
        c.close()


def test_roundtrip_many_in_one_session_and_top(shared_server):
    srv = shared_server
    msgs = []
    for p in FIXTURES:
        with open(p, "rb") as f:
            msgs.append(f.read())
    msgs += list(generated().values())
    srv.clear_mailbox()
    for m in msgs:
        srv.deliver(ALICE, m)
    c = srv.login()
    try:
        assert list_sizes(c) == [len(wire(m)) for m in msgs]
        for i, m in enumerate(msgs):
            check_message(c, i + 1, m)
        for i, m in enumerate(msgs):
            for n in (0, 1, 3):
                r = c.cmd("TOP %d %d" % (i + 1, n))
                assert r.startswith("+OK"), r
                got = unstuff(c.read_multi_raw())
                assert got == top_wire(m, n), (i, n, got[:200])
    finally:
        c.cmd("QUIT")
        c.close()


def test_roundtrip_10mib(shared_server):
    srv = shared_server
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\n"  # 73 octets
    body = line * (10 * 1024 * 1024 // len(line) + 1)
    msg = b"From: big@example.net\nSubject: 10 MiB\n\n" + body
    msg += b".\n..\nend"  # dot lines and no final newline at the very end
    assert len(msg) > 10 * 1024 * 1024
    srv.clear_mailbox()
    srv.deliver(ALICE, msg)
    c = srv.login()
    try:
        r = c.cmd("LIST 1").split()
        assert r[2] == str(len(wire(msg))), r
        raw = retr_raw(c, 1)
        assert len(raw) == len(stuff(wire(msg)))
        assert raw == stuff(wire(msg))
        r = c.cmd("TOP 1 2")
        assert r.startswith("+OK")
        assert unstuff(c.read_multi_raw()) == top_wire(msg, 2)
        # the session still works after a long response
        assert c.cmd("NOOP").startswith("+OK")
    finally:
        c.cmd("QUIT")
        c.close()


def test_postctl_deliver_exit_codes(shared_server):
    srv = shared_server
    p = srv.deliver("nosuchuser@example.org", b"Subject: x\n\nbody\n",
                    check=False)
    assert p.returncode == 67, (p.returncode, p.stderr)
    p = srv.deliver(ALICE, b"", check=False)
    assert p.returncode == 65, (p.returncode, p.stderr)
    # without a domain, auth_default_domain is appended
    srv.clear_mailbox()
    p = srv.deliver("alice", b"Subject: nodomain\n\nbody\n", check=False)
    assert p.returncode == 0, p.stderr
    assert len(srv.stored_messages()) == 1


# -- UIDL (INV-P2) ----------------------------------------------------------------

def test_inv_p2_uidl_stable_across_sessions_restart_and_index_loss(server):
    srv = server
    for i in range(5):
        srv.deliver(ALICE, b"Subject: uidl %d\n\nbody %d\n" % (i, i))

    def get():
        c = srv.login()
        try:
            return uidls(c)
        finally:
            c.cmd("QUIT")
            c.close()

    first = get()
    assert len(first) == 5 and len(set(first)) == 5
    for u in first:
        assert re.fullmatch(r"[\x21-\x7e]{1,70}", u), u
    assert get() == first

    srv.restart()
    assert get() == first

    idx = os.path.join(srv.maildir(), "postd-index")
    assert os.path.exists(idx), "no index file at " + idx
    os.unlink(idx)
    assert get() == first

    # deleting one keeps the others' UIDLs; a new message gets a new one
    c = srv.login()
    assert c.cmd("DELE 2").startswith("+OK")
    c.cmd("QUIT")
    c.close()
    srv.deliver(ALICE, b"Subject: uidl new\n\nnew\n")
    after = get()
    assert after[:4] == [first[0]] + first[2:]
    assert after[4] not in first


def test_inv_p2_snapshot_ignores_new_delivery(shared_server):
    """A message delivered during a session does not appear in it."""
    srv = shared_server
    srv.clear_mailbox()
    srv.deliver(ALICE, b"Subject: one\n\n1\n")
    c = srv.login()
    try:
        st = c.cmd("STAT")
        srv.deliver(ALICE, b"Subject: two\n\n2\n")
        assert c.cmd("STAT") == st
        assert c.cmd("RETR 2").startswith("-ERR")
        assert len(uidls(c)) == 1
    finally:
        c.cmd("QUIT")
        c.close()
    c = srv.login()
    assert len(uidls(c)) == 2
    c.cmd("QUIT")
    c.close()


def test_inv_p2_message_removed_meanwhile(shared_server):
    """A message removed by another program during a session gives -ERR,
    never another message's bytes."""
    srv = shared_server
    srv.clear_mailbox()
    m1 = b"Subject: one\n\nfirst\n"
    m2 = b"Subject: two\n\nsecond message, longer\n"
    srv.deliver(ALICE, m1)
    srv.deliver(ALICE, m2)
    c = srv.login()
    try:
        sizes = list_sizes(c)
        assert sorted(sizes) == sorted([len(wire(m1)), len(wire(m2))])
        gone = sizes.index(len(wire(m1))) + 1
        kept = 3 - gone
        names = srv.stored_messages()
        assert len(names) == 2
        # remove the file holding m1 behind the session's back
        for n in names:
            p = os.path.join(srv.maildir(), n)
            with open(p, "rb") as f:
                if b"first" in f.read():
                    os.unlink(p)
        r = c.cmd("RETR %d" % gone)
        if r.startswith("+OK"):
            pytest.fail("RETR of a removed message answered +OK: %r"
                        % c.read_multi_raw()[:200])
        assert r.startswith("-ERR"), r
        r = c.cmd("RETR %d" % kept)
        assert r.startswith("+OK")
        assert unstuff(c.read_multi_raw()) == wire(m2)
    finally:
        c.cmd("QUIT")
        c.close()
