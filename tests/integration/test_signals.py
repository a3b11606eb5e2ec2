"""SIGHUP reload, SIGTERM shutdown, and `postd -t`."""

import os
import re
import subprocess
import time

import pytest

from conftest import ALICE, POSTD, REFERENCE, _child_env
from pop3util import simple_msg


def login_retry(srv, user, pw, timeout=5.0):
    """Logs in, retrying auth failures while a reload is in progress."""
    deadline = time.monotonic() + timeout
    while True:
        c = srv.connect()
        r = c.login(user, pw)
        if r.startswith("+OK"):
            return c
        c.close()
        if time.monotonic() > deadline:
            pytest.fail("login as %s failed after reload: %s" % (user, r))
        time.sleep(0.1)


def test_sighup_keeps_sessions_and_reloads_users(server):
    srv = server
    srv.deliver(ALICE, simple_msg("hup 1"))
    srv.deliver(ALICE, simple_msg("hup 2"))
    old = srv.login()
    pre = srv.connect()  # not logged in yet
    assert old.cmd("STAT").startswith("+OK 2 ")
    assert old.cmd("DELE 1").startswith("+OK")

    srv.add_user("dave@example.org", "dave-Secret-4")
    srv.hup()
    time.sleep(0.5)
    assert srv.alive()

    # the open session keeps its state and still works
    assert old.cmd("STAT").startswith("+OK 1 ")
    assert old.cmd("RETR 2").startswith("+OK")
    old.read_multi_raw()
    # new connections and the new user work
    c = login_retry(srv, "dave@example.org", "dave-Secret-4")
    assert c.cmd("STAT").startswith("+OK 0 ")
    c.cmd("QUIT")
    c.close()
    # the pre-auth session opened before the HUP can still log in
    r = pre.login("bob@example.org", srv.users["bob@example.org"])
    assert r.startswith("+OK"), r
    pre.cmd("QUIT")
    pre.close()

    assert old.cmd("QUIT").startswith("+OK")
    old.close()
    assert len(srv.stored_messages()) == 1
    assert srv.alive()


def test_sighup_with_broken_config_keeps_running(server):
    srv = server
    with open(srv.conf, "a") as f:
        f.write("this is not a valid line\n")
    srv.hup()
    time.sleep(0.5)
    assert srv.alive(), "postd exited on SIGHUP with a broken config"
    c = srv.login()
    assert c.cmd("STAT").startswith("+OK")
    c.cmd("QUIT")
    c.close()
    srv.write_config()  # repair for the teardown


def test_sighup_users_file_change_removes_user(server):
    srv = server
    srv.postctl("user", "del", "carol@example.org")
    srv.hup()
    deadline = time.monotonic() + 5
    while True:
        with srv.connect() as c:
            r = c.login("carol@example.org", srv.users["carol@example.org"])
        if r.startswith("-ERR"):
            break
        assert time.monotonic() < deadline, "deleted user can still log in"
        time.sleep(0.1)


def test_sigterm_exits_zero_with_sessions_open(server):
    srv = server
    srv.deliver(ALICE, simple_msg("term 1"))
    srv.deliver(ALICE, simple_msg("term 2"))
    s1 = srv.login()
    assert s1.cmd("DELE 1").startswith("+OK")
    assert s1.cmd("DELE 2").startswith("+OK")
    s2 = srv.connect()
    s3 = srv.connect(tls=True)
    s4 = srv.login("bob@example.org")
    s4.send(b"STAT\r\n")
    t0 = time.monotonic()
    rc = srv.stop(timeout=10)
    took = time.monotonic() - t0
    assert rc == 0, "exit status %r" % rc
    assert took < 5, took
    # INV-P1: the session had DELE but no QUIT: nothing deleted
    assert len(srv.stored_messages()) == 2
    for c in (s1, s2, s3, s4):
        c.close()
    # the ports are free again: a restart works at once
    srv.start()
    c = srv.login()
    assert c.cmd("STAT").startswith("+OK 2 ")
    c.cmd("QUIT")
    c.close()


# -- postd -t -------------------------------------------------------------------

def postd_t(conf):
    return subprocess.run([POSTD, "-t", "-c", conf], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30,
                          env=_child_env())


pytestmark_t = pytest.mark.skipif(REFERENCE == "dovecot",
                                  reason="postd only")


@pytestmark_t
def test_config_check_good(make_server):
    srv = make_server(start=False)
    p = postd_t(srv.conf)
    assert p.returncode == 0, (p.stdout, p.stderr)


@pytestmark_t
def test_config_check_reports_every_error_with_line(make_server):
    srv = make_server(start=False)
    with open(srv.conf) as f:
        lines = f.read().splitlines()
    # insert two bad lines at known positions
    lines.insert(2, "no_such_key = 1")
    lines.insert(5, "max_connections = lots")
    with open(srv.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = postd_t(srv.conf)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "%s:3:" % srv.conf in out, out
    assert "%s:6:" % srv.conf in out, out


@pytestmark_t
@pytest.mark.parametrize("line", [
    "timeout_preauth = 5x",
    "plaintext_auth = maybe",
    "listen.pop3 = 127.0.0.1:notaport",
    "listen.pop3 = 127.0.0.1:99999",
    "workers = -1",
    "hostname",
])
def test_config_check_bad_values(make_server, line):
    srv = make_server(start=False)
    with open(srv.conf, "a") as f:
        f.write(line + "\n")
    n = sum(1 for _ in open(srv.conf))
    p = postd_t(srv.conf)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "%s:%d:" % (srv.conf, n) in out, out


# -- what a reload applies ----------------------------------------------------

def reload_config(srv, **changes):
    """Rewrites the config with changes, sends SIGHUP, and waits until
    the new generation runs (its workers take the new connections)."""
    mark = srv.log_mark()
    srv.overrides.update(changes)
    srv.write_config()
    srv.hup()
    srv.wait_log(r"started generation \d+", since=mark)
    srv.wait_log(r"users file \S+ loaded", since=mark)
    time.sleep(0.3)  # the old generation lets go of the listeners
    return mark


def session_debug_lines(srv):
    """Opens and QUITs one POP3 session; returns the debug lines of it."""
    mark = srv.log_mark()
    c = srv.connect()
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    time.sleep(0.3)
    return [line for line in srv.log_since(mark).splitlines()
            if ": debug: " in line]


@pytestmark_t
def test_sighup_applies_log_level_both_ways(make_server):
    srv = make_server(overrides={"log_level": "info"})
    assert session_debug_lines(srv) == []

    mark = reload_config(srv, log_level="debug")
    lines = session_debug_lines(srv)
    assert any("connect peer=127.0.0.1" in line for line in lines), lines
    # the parent follows too: it sees the old generation go
    srv.wait_log(r"postd\[\d+\]: debug: child \d+ of generation 1 exited",
                 since=mark)

    mark = reload_config(srv, log_level="info")
    assert session_debug_lines(srv) == []
    time.sleep(0.5)
    assert not re.search(r"postd\[\d+\]: debug: ", srv.log_since(mark)), \
        srv.log_since(mark)


@pytestmark_t
def test_sighup_names_keys_that_need_a_restart(make_server):
    srv = make_server()
    old_user = srv.config_items()["user"]
    old_data = srv.data_dir
    new_user = "daemon" if old_user != "daemon" else "nobody"
    new_data = os.path.join(srv.base, "elsewhere")
    srv.deliver(ALICE, simple_msg("before reload"))
    mark = reload_config(srv, user=new_user, data_dir=new_data,
                         login_delay="7")
    srv.wait_log(r"warning: reload: user changed \(from %s to %s\); needs a "
                 r"restart to take effect, %s stays in force until then"
                 % (old_user, new_user, old_user), since=mark)
    srv.wait_log(r"warning: reload: data_dir changed \(from %s to %s\); "
                 r"needs a restart" % (re.escape(old_data),
                                       re.escape(new_data)), since=mark)
    # mail is still where it was, and the other keys applied
    c = login_retry(srv, ALICE, srv.users[ALICE])
    assert c.cmd("STAT").startswith("+OK 1 ")
    c.cmd("QUIT")
    c.close()
    assert not os.path.exists(new_data)
    c = srv.connect()
    assert "LOGIN-DELAY 7" in c.capa(), "login_delay not applied"
    c.cmd("QUIT")
    c.close()
    srv.overrides.pop("user")
    srv.overrides.pop("data_dir")
    srv.write_config()


@pytestmark_t
def test_config_check_names_the_restart_keys(make_server):
    srv = make_server(start=False)
    p = postd_t(srv.conf)
    out = p.stdout.decode()
    assert p.returncode == 0, out
    assert re.search(r"a reload \(SIGHUP\) applies every key but data_dir, "
                     r"user, which need a restart", out), out
