"""Retention (RFC 2449 6.7 EXPIRE, INV-T1): postctl expire boundaries,
the daemon's timer, sessions in progress, CAPA values and EXPIRE 0."""
import re
import time

import pytest

from conftest import ALICE, DOMAIN
from pop3util import simple_msg
from retention_util import (backdate, capa_value, index_entries, msg_files,
                            set_extra, wait_pass_done, wait_summary)

BOB = "bob@example.org"
DAY = 86400


def deliver_n(srv, user, n, tag="m"):
    for i in range(n):
        srv.deliver(user, simple_msg("%s %d" % (tag, i)))


def uidl_list(c):
    status, lines = c.cmd_multi("UIDL")
    assert status.startswith("+OK"), status
    return [ln.split()[1] for ln in lines]


def expire(srv, *args, check=True):
    p = srv.postctl("expire", *args, check=check)
    return p.stdout.decode(), p.stderr.decode(), p.returncode


def test_inv_t1_retrieved_boundary_dry_run_and_real(make_server):
    srv = make_server(overrides={"retention": "1d",
                                 "expire_interval": "1h"})
    wait_pass_done(srv)  # a pass holding the lock makes postctl skip
    deliver_n(srv, ALICE, 2)
    c = srv.login()
    uidls = uidl_list(c)
    assert c.cmd("RETR 1").startswith("+OK")
    c.multi()
    assert c.cmd("TOP 2 0").startswith("+OK")  # TOP is not a retrieval
    c.multi()
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    idx = index_entries(srv, ALICE)
    t_r = idx[1][1]
    assert t_r > 0 and idx[2][1] == 0
    out, _, _ = expire(srv, "--dry-run", "--now", str(t_r + DAY - 1))
    assert "due" not in out.split("\n")[0] or out.startswith("0 ")
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out, _, _ = expire(srv, "--dry-run", "--now", str(t_r + DAY))
    assert re.search(r"^due alice@example.org uid=1 uidl=%s age=86400s "
                     r"rule=retention 1d after first retrieval$"
                     % re.escape(uidls[0]), out, re.M), out
    assert re.search(r"^1 messages would be removed", out, re.M), out
    assert len(msg_files(srv, ALICE)) == 2  # a dry run changes nothing
    out, _, _ = expire(srv, "--now", str(t_r + DAY), ALICE)
    assert re.search(r"^removed alice@example.org uid=1 ", out, re.M), out
    c = srv.login()
    assert uidl_list(c) == [uidls[1]]
    c.cmd("QUIT")
    c.close()


def test_inv_t1_unread_boundary_from_delivery_time(make_server):
    srv = make_server(overrides={"retention_unread": "7d",
                                 "expire_interval": "1h"})
    wait_pass_done(srv)  # a pass holding the lock makes postctl skip
    deliver_n(srv, ALICE, 1)
    d = int(time.time()) - 3 * DAY
    backdate(srv, ALICE, d)
    out, _, _ = expire(srv, "--dry-run", "--now", str(d + 7 * DAY - 1))
    assert re.search(r"^0 messages would be removed", out, re.M), out
    out, _, _ = expire(srv, "--dry-run", "--now", str(d + 7 * DAY))
    assert re.search(r"^due alice@example.org uid=1 .* age=604800s "
                     r"rule=retention_unread 7d after delivery$", out,
                     re.M), out
    # A clock that went back expires nothing.
    out, _, _ = expire(srv, "--now", str(d - 10 * DAY))
    assert re.search(r"^0 messages removed", out, re.M), out
    assert len(msg_files(srv, ALICE)) == 1


def enable_retention_by_reload(srv):
    """Switches on a one-day unread retention with a pass every second,
    by SIGHUP, while a session is already logged in; postd starts a pass
    right after a reload. The callers wait for the pass that starts with
    postd to end before they log in: run late, it would race the login,
    and only the reload can then start the pass awaited here."""
    srv.overrides.update({"retention_unread": "1d", "expire_interval": "1s"})
    srv.write_config()
    mark = srv.log_mark()
    srv.hup()
    srv.wait_log(r"user=bob@example.org skipped, mailbox in use",
                 timeout=10, since=mark)


def test_inv_p2_timer_purges_but_never_a_held_mailbox(make_server):
    srv = make_server(start=False)
    deliver_n(srv, ALICE, 2, "a")
    deliver_n(srv, BOB, 2, "b")
    old = int(time.time()) - 2 * DAY
    backdate(srv, ALICE, old)
    backdate(srv, BOB, old)
    srv.start()
    wait_pass_done(srv)
    # bob's session holds the lock before retention is switched on
    c = srv.login(BOB)
    enable_retention_by_reload(srv)
    assert c.cmd("RETR 1").startswith("+OK")
    c.multi()
    srv.wait_log(r"expired user=alice@example.org uid=1 ", timeout=10)
    srv.wait_log(r"expired user=alice@example.org uid=2 ", timeout=10)
    srv.wait_log(r"user=bob@example.org skipped, mailbox in use", timeout=10)
    assert msg_files(srv, ALICE) == []
    # the session in progress is undisturbed: same snapshot, same bytes
    assert len(msg_files(srv, BOB)) == 2
    assert c.cmd("STAT").startswith("+OK 2 ")
    assert c.cmd("RETR 2").startswith("+OK")
    c.multi()
    c.cmd("RSET")
    assert c.cmd("DELE 1").startswith("+OK")
    c.cmd("RSET")
    mark = srv.log_mark()
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    # Both were retrieved now: retention is never, so they stay.
    time.sleep(2.5)
    assert "expired user=bob" not in srv.log_since(mark)
    assert len(msg_files(srv, BOB)) == 2


def test_timer_removes_unread_after_quit(make_server):
    srv = make_server(start=False)
    deliver_n(srv, BOB, 2, "b")
    backdate(srv, BOB, int(time.time()) - 2 * DAY)
    srv.start()
    wait_pass_done(srv)
    c = srv.login(BOB)
    uidls = uidl_list(c)
    enable_retention_by_reload(srv)
    assert c.cmd("RETR 1").startswith("+OK")
    c.multi()
    time.sleep(2.5)
    assert len(msg_files(srv, BOB)) == 2
    c.cmd("QUIT")
    c.close()
    srv.wait_log(r"expired user=bob@example.org uid=2 uidl=%s age=\d+s "
                 r"rule=retention_unread 1d after delivery"
                 % re.escape(uidls[1]), timeout=10)
    c = srv.login(BOB)
    assert uidl_list(c) == [uidls[0]]
    c.cmd("QUIT")
    c.close()


def test_capa_expire_global(make_server):
    srv = make_server(overrides={"retention": "30d",
                                 "retention_unread": "60d"})
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "30"
    c.close()
    c = srv.login()
    assert capa_value(c.capa(), "EXPIRE") == "30"
    c.cmd("QUIT")
    c.close()


def test_capa_expire_never_by_default(make_server):
    srv = make_server()
    wait_summary(srv)
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "NEVER"
    c.close()


def test_capa_expire_per_domain_only(make_server):
    users = {ALICE: "alice-Secret-1", "dave@example.net": "dave-Secret-4"}
    srv = make_server(overrides={"domains": "example.org example.net",
                                 "retention.example.net": "5d"},
                      users=users)
    wait_summary(srv)
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "5 USER"
    c.close()
    c = srv.login()
    assert capa_value(c.capa(), "EXPIRE") == "NEVER"
    c.cmd("QUIT")
    c.close()


def test_capa_expire_user_longer_than_global(make_server):
    srv = make_server(overrides={"retention": "30d"}, start=False)
    set_extra(srv, BOB, "retention=never")
    srv.start()
    wait_summary(srv)
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "30 USER"
    c.close()
    c = srv.login(BOB)
    assert capa_value(c.capa(), "EXPIRE") == "NEVER"
    c.cmd("QUIT")
    c.close()


def test_capa_expire_per_domain_and_user(make_server):
    users = {ALICE: "alice-Secret-1", "dave@example.net": "dave-Secret-4",
             BOB: "bob-Secret-2"}
    srv = make_server(overrides={"domains": "example.org example.net",
                                 "retention": "30d",
                                 "retention.example.net": "5d",
                                 "retention_unread": "never"},
                      users=users, start=False)
    set_extra(srv, BOB, "userdb_retention=2d")
    srv.start()
    wait_summary(srv)
    # RFC 2449 6.7: before login, the smallest value of any domain or
    # user (bob's 2d, known from the retention pass's summary), with USER
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "2 USER"
    c.close()
    c = srv.login()
    assert capa_value(c.capa(), "EXPIRE") == "30"
    c.cmd("QUIT")
    c.close()
    c = srv.login("dave@example.net")
    assert capa_value(c.capa(), "EXPIRE") == "5"
    c.cmd("QUIT")
    c.close()
    c = srv.login(BOB)
    assert capa_value(c.capa(), "EXPIRE") == "2"
    c.cmd("QUIT")
    c.close()


def test_expire_0_removes_retrieved_at_quit_only(make_server):
    srv = make_server(overrides={"retention": "0"})
    # The pass that starts with postd removes a retrieved message at once
    # (age >= 0); if it ran late, after the dropped session below, it
    # would take message 1 before the QUIT this test is about. The next
    # pass is an expire_interval (1h) away.
    wait_pass_done(srv)
    deliver_n(srv, ALICE, 3)
    c = srv.connect()
    assert capa_value(c.capa(), "EXPIRE") == "0"
    c.close()
    c = srv.login()
    uidls = uidl_list(c)
    assert c.cmd("RETR 1").startswith("+OK")
    c.multi()
    assert c.cmd("TOP 3 0").startswith("+OK")
    c.multi()
    # INV-P1: a dropped connection removes nothing
    c.close()
    time.sleep(0.3)
    assert len(msg_files(srv, ALICE)) == 3
    c = srv.login()
    assert uidl_list(c) == uidls
    mark = srv.log_mark()
    r = c.cmd("QUIT")
    assert r.startswith("+OK"), r
    c.close()
    # message 1 was retrieved (in the earlier session): implicit DELE
    assert len(msg_files(srv, ALICE)) == 2
    assert re.search(r"expired user=alice@example.org uid=1 .*EXPIRE 0",
                     srv.log_since(mark))
    c = srv.login()
    assert uidl_list(c) == uidls[1:]
    c.cmd("QUIT")
    c.close()


def test_postctl_expire_usage(make_server):
    srv = make_server()
    _, err, rc = expire(srv, "--bogus", check=False)
    assert rc == 64 and "usage" in err
    _, err, rc = expire(srv, "nobody@example.org", check=False)
    assert rc == 67, err
    out, _, rc = expire(srv, "--dry-run")
    assert rc == 0 and re.search(r"^0 messages would be removed", out, re.M)


# -- a real leave-on-server client -------------------------------------------

from test_clients import (GETMAIL, GETMAIL_RETRIED, getmail,  # noqa: E402
                          gm_dir, maildir_markers, write_getmailrc)

assert gm_dir  # a fixture, used by name below


@pytest.mark.skipif(not GETMAIL, reason="getmail6 not installed")
def test_getmail_leave_on_server_sees_expired_vanish(make_server, gm_dir):
    srv = make_server(overrides={"retention": "1d",
                                 "expire_interval": "1h"})
    # The pass that starts with postd holds the mailbox lock while it
    # looks at it; getmail does not retry an [IN-USE] login.
    wait_pass_done(srv)
    for i in range(3):
        srv.deliver(ALICE, simple_msg("gm %d" % i, "marker-gm-%d\n" % i))
    GETMAIL_RETRIED.clear()
    rc, md = write_getmailrc(srv, gm_dir, tls=False)
    p = getmail(rc, gm_dir)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert maildir_markers(md) == [b"marker-gm-0", b"marker-gm-1",
                                   b"marker-gm-2"]
    srv.deliver(ALICE, simple_msg("gm new", "marker-gm-9\n"))
    c = srv.login()
    before = uidl_list(c)
    c.cmd("QUIT")
    c.close()
    t_r = max(r for _, r, _ in index_entries(srv, ALICE).values())
    out, _, _ = expire(srv, "--now", str(t_r + DAY))
    assert re.search(r"^3 messages removed", out, re.M), out
    c = srv.login()
    after = uidl_list(c)
    c.cmd("QUIT")
    c.close()
    # the retrieved ones vanished from UIDL; the unread one kept its UIDL
    assert after == before[3:]
    p = getmail(rc, gm_dir)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert maildir_markers(md) == [b"marker-gm-0", b"marker-gm-1",
                                   b"marker-gm-2", b"marker-gm-9"]
