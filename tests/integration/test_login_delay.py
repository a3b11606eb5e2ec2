"""LOGIN-DELAY (RFC 2449 6.5 and 8.1.1): advertised in CAPA, enforced
after the password was verified, logged, and per user."""
import re
import time

from conftest import ALICE, ALICE_PW
from retention_util import capa_value, set_extra, wait_summary

BOB = "bob@example.org"


def test_login_delay_capa_and_enforced(make_server):
    srv = make_server(overrides={"login_delay": "3s"})
    c = srv.connect()
    assert capa_value(c.capa(), "LOGIN-DELAY") == "3"
    c.close()
    c = srv.login()
    assert capa_value(c.capa(), "LOGIN-DELAY") == "3"
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    t_ok = time.time()
    mark = srv.log_mark()
    c = srv.connect()
    r = c.login(ALICE, ALICE_PW)
    assert r.startswith("-ERR [LOGIN-DELAY]"), r
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=pop3 "
                 r"user=alice@example.org cause=login delay: last login "
                 r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ s ago\), "
                 r"delay 3 s", since=mark)
    # a wrong password within the delay is an ordinary failure: the
    # delay is never revealed before the password was verified
    r = c.login(ALICE, "wrong-password")
    assert r.startswith("-ERR [AUTH]"), r
    c.close()
    # the refused attempt did not restart the delay
    time.sleep(max(0.0, t_ok + 3.2 - time.time()))
    c = srv.login(retry_in_use=0)
    assert c.cmd("QUIT").startswith("+OK")
    c.close()


def test_login_delay_unknown_user_is_auth(make_server):
    srv = make_server(overrides={"login_delay": "1h"})
    c = srv.login()
    c.cmd("QUIT")
    c.close()
    c = srv.connect()
    r = c.login("nosuch@example.org", "whatever")
    assert r.startswith("-ERR [AUTH]"), r
    c.close()


def test_login_delay_per_user(make_server):
    srv = make_server(start=False)
    set_extra(srv, BOB, "userdb_login_delay=10m")
    srv.start()
    wait_summary(srv)
    # RFC 2449 6.5: before login the largest value any user has, + USER
    c = srv.connect()
    assert capa_value(c.capa(), "LOGIN-DELAY") == "600 USER"
    c.close()
    c = srv.login(BOB)
    assert capa_value(c.capa(), "LOGIN-DELAY") == "600"
    c.cmd("QUIT")
    c.close()
    c = srv.connect()
    r = c.login(BOB, srv.users[BOB])
    assert r.startswith("-ERR [LOGIN-DELAY]"), r
    c.close()
    # alice has no delay
    for _ in range(2):
        c = srv.login()
        c.cmd("QUIT")
        c.close()


def test_inv_t1_login_delay_clock_back_does_not_lock_out(make_server):
    srv = make_server(overrides={"login_delay": "1h"})
    c = srv.login()
    c.cmd("QUIT")
    c.close()
    import os
    future = time.time() + 30 * 86400
    os.utime(os.path.join(srv.maildir(ALICE), "postd-lastlogin"),
             (future, future))
    c = srv.login(retry_in_use=0)
    c.cmd("QUIT")
    c.close()


def test_login_delay_none_by_default(make_server):
    srv = make_server()
    wait_summary(srv)
    c = srv.connect()
    assert capa_value(c.capa(), "LOGIN-DELAY") is None
    c.close()
    for _ in range(2):
        c = srv.login(retry_in_use=3.0)
        c.cmd("QUIT")
        c.close()
