"""Renamed config keys: the old name still works with one warning that
names the new key (postd -t, start-up, reload), the new name works
silently, both together are a duplicate; and workers = auto."""
import os
import re
import subprocess

import pytest

from conftest import POSTD, REFERENCE
from smtputil import SmtpConn

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot",
                                reason="postd's own configuration")

OLD_NEW = [("timeout_idle", "pop3_idle_timeout", "30m"),
           ("smtp_auth", "smtp_port25_auth", "yes")]


def run_check(srv):
    return subprocess.run([POSTD, "-t", "-c", srv.conf], capture_output=True,
                          text=True, timeout=30)


def warning(old, new):
    return "warning: '%s' is deprecated; it is now called '%s'" % (old, new)


@pytest.mark.parametrize("old,new,value", OLD_NEW)
def test_postd_t_warns_about_an_old_name(make_server, old, new, value):
    srv = make_server(overrides={old: value}, start=False)
    p = run_check(srv)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout, p.stdout
    lines = [line for line in p.stderr.splitlines() if "deprecated" in line]
    assert len(lines) == 1, p.stderr
    assert re.match(r"%s:\d+: %s$" % (re.escape(srv.conf),
                                      re.escape(warning(old, new))),
                    lines[0]), lines


@pytest.mark.parametrize("old,new,value", OLD_NEW)
def test_postd_t_new_name_is_silent(make_server, old, new, value):
    srv = make_server(overrides={new: value}, start=False)
    p = run_check(srv)
    assert p.returncode == 0, p.stderr
    assert "deprecated" not in p.stderr, p.stderr


@pytest.mark.parametrize("old,new,value", OLD_NEW)
def test_old_and_new_name_together_is_an_error(make_server, old, new, value):
    # No users: postctl user add would refuse the file too.
    srv = make_server(overrides={new: value, old: value}, users={},
                      start=False)
    p = run_check(srv)
    assert p.returncode == 1, p.stdout
    assert "duplicate key '%s' (first set on line" % new in p.stderr, p.stderr


def ehlo_offers_auth(srv):
    with SmtpConn(srv.smtp_port) as c:
        code, exts, texts = c.ehlo()
        assert code == 250, texts
        return "AUTH" in exts


def test_old_smtp_auth_name_still_turns_auth_on(make_server):
    """The warning is at start-up, and the key keeps its meaning: AUTH on
    listen.smtp (the test listener is on loopback: plaintext allowed)."""
    srv = make_server(overrides={"smtp_auth": "yes"})
    assert warning("smtp_auth", "smtp_port25_auth") in srv.log()
    assert ehlo_offers_auth(srv)


def test_new_smtp_port25_auth_name(make_server):
    srv = make_server(overrides={"smtp_port25_auth": "yes"})
    assert "deprecated" not in srv.log()
    assert ehlo_offers_auth(srv)
    srv2 = make_server()
    assert not ehlo_offers_auth(srv2)


def test_reload_logs_the_old_name_warning(make_server):
    srv = make_server()
    mark = srv.log_mark()
    srv.overrides["timeout_idle"] = "20m"
    srv.write_config()
    srv.hup()
    srv.wait_log(r"started generation \d+", since=mark)
    srv.wait_log(r"reload: .*" + re.escape(
        warning("timeout_idle", "pop3_idle_timeout")), since=mark)


def expected_workers():
    return min(max(os.cpu_count() or 1, 1), 64)


@pytest.mark.parametrize("value", ["auto", "0"])
def test_workers_auto_is_one_per_core(make_server, value):
    srv = make_server(overrides={"workers": value})
    srv.wait_log(r"started generation \d+: 1 auth process, %d workers" %
                 expected_workers())
    assert "deprecated" not in srv.log()
