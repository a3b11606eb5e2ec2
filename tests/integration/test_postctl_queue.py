"""postctl queue list|show|retry|hold|release|delete (issue 5) on entries
put into the outbound queue by real submissions. The domain is routed to
a port where nothing listens, so any delivery attempt fails and the
entries stay; the server is stopped before postctl changes the queue, so
the queue runner cannot race the checks. The envelope files are checked
directly (storage/queue.h format, version 2)."""

import os
import re
import smtplib
import time

from conftest import ALICE, DOMAIN
from pop3util import wire

REMOTE1 = "one@remote.test"
REMOTE2 = "two@remote.test"
OVERRIDES = {
    "transport.remote.test": "127.0.0.1:1",
    "queue_retry_min": "1h",
    "queue_retry_max": "2h",
}
EX_USAGE, EX_NOUSER = 64, 67


def submit(srv, rcpts, subject):
    """Sends one message over submission (STARTTLS, AUTH) and returns its
    queue id, from the log line of the transaction."""
    mark = srv.log_mark()
    msg = wire(("From: A User <%s>\nTo: %s\nSubject: %s\n"
                "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
                "Message-ID: <%s.%d@laptop.example>\n\nhello\n" % (
                    ALICE, ", ".join(rcpts), subject,
                    re.sub(r"\W", "", subject),
                    time.monotonic_ns())).encode())
    c = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="laptop.example", timeout=30)
    try:
        c.starttls(context=srv.ctx())
        c.ehlo()
        code, text = c.login(ALICE, srv.users[ALICE])
        assert code == 235, text
        assert c.sendmail(ALICE, rcpts, msg) == {}
        c.quit()
    finally:
        c.close()
    m = srv.wait_log(r"received .*proto=submission.* queued=([0-9A-Za-z]+) ",
                     since=mark)
    return m.group(1)


def qpath(srv, *parts):
    return os.path.join(srv.data_dir, "queue", *parts)


def read_env(srv, qid, sub="env"):
    with open(qpath(srv, sub, qid)) as f:
        return f.read()


def rcpt_lines(env_text):
    """{address: [state, attempts, next_try, last_error]}"""
    out = {}
    for ln in env_text.split("\n"):
        if ln.startswith("rcpt "):
            f = ln.split(" ")
            assert len(f) == 6, ln
            out[f[1][1:-1]] = f[2:]
    return out


def set_next_try(srv, qid, when):
    """Edits env/ID as the runner would after a failed attempt (the
    server is stopped): every pending recipient due at `when`."""
    text = read_env(srv, qid)
    lines = []
    for ln in text.split("\n"):
        f = ln.split(" ")
        if ln.startswith("rcpt ") and f[2] == "pending":
            f[4] = str(when)
            ln = " ".join(f)
        lines.append(ln)
    tmp = qpath(srv, "tmp", "edit")
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.rename(tmp, qpath(srv, "env", qid))


def listing(srv):
    """{id: line} of postctl queue list."""
    out = srv.postctl("queue", "list").stdout.decode()
    return {ln.split(" ")[0]: ln for ln in out.split("\n")
            if re.match(r"^[0-9A-Za-z]+ .* attempts=", ln)}, out


def test_postctl_queue_list_show_hold_release_retry_delete(make_server):
    srv = make_server(overrides=OVERRIDES)
    q1 = submit(srv, [REMOTE1, REMOTE2], "first")
    q2 = submit(srv, [REMOTE1], "second")
    srv.stop()
    for q in (q1, q2):
        env = read_env(srv, q)
        assert env.startswith("postd-queue 2\nid %s\n" % q), env
        assert "\nnotified -\n" in env, env
        assert "\nsender <%s>\n" % ALICE in env, env

    # list: both, with size, sender, recipient count, attempts, next try
    entries, out = listing(srv)
    assert set(entries) >= {q1, q2}, out
    size1 = os.path.getsize(qpath(srv, "msg", q1))
    assert re.match(r"^%s \d+[smhd] %d <%s> 2 attempts=\d+ next=(now|in \d+"
                    r"[smhd])$" % (q1, size1, re.escape(ALICE)),
                    entries[q1]), entries[q1]
    assert " <%s> 1 " % ALICE in entries[q2], entries[q2]
    assert "HELD" not in out
    assert re.search(r"^\d+ entries, \d+ bytes$", out, re.M), out

    # show: per recipient state, attempts, next try with a date and a
    # relative time, last error
    set_next_try(srv, q1, int(time.time()) + 600)
    show = srv.postctl("queue", "show", q1).stdout.decode()
    assert "state: queued" in show, show
    for r in (REMOTE1, REMOTE2):
        m = re.search(r"^rcpt: <%s> pending attempts=(\d+) next-try="
                      r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(in (9|10)m\) "
                      r"last-error=(.*)$" % re.escape(r), show, re.M)
        assert m, show
    assert "Subject: first" in show, show

    # hold: env/ID moves to hold/ID; list marks it, show still works
    p = srv.postctl("queue", "hold", q1)
    assert p.stdout.decode().strip() == "%s: held" % q1
    assert not os.path.exists(qpath(srv, "env", q1))
    assert os.path.exists(qpath(srv, "hold", q1))
    assert os.path.exists(qpath(srv, "msg", q1))
    entries, out = listing(srv)
    assert entries[q1].endswith(" HELD"), out
    assert "HELD" not in entries[q2], out
    show = srv.postctl("queue", "show", q1).stdout.decode()
    assert "state: held" in show, show
    # held twice, retry of a held entry, release of one not held
    assert srv.postctl("queue", "hold", q1,
                       check=False).returncode == EX_NOUSER
    assert srv.postctl("queue", "retry", q1,
                       check=False).returncode == EX_NOUSER
    assert srv.postctl("queue", "release", q2,
                       check=False).returncode == EX_NOUSER
    # retry of everything leaves the held entry alone
    before = read_env(srv, q1, "hold")
    srv.postctl("queue", "retry")
    assert read_env(srv, q1, "hold") == before

    # release: back in env/, unchanged
    p = srv.postctl("queue", "release", q1)
    assert p.stdout.decode().strip() == "%s: released" % q1
    assert read_env(srv, q1) == before
    assert not os.path.exists(qpath(srv, "hold", q1))
    assert srv.postctl("queue", "release", q1,
                       check=False).returncode == EX_NOUSER

    # retry ID: pending recipients due now (next_try 0), the rest kept
    set_next_try(srv, q1, 4000000000)
    p = srv.postctl("queue", "retry", q1)
    assert p.stdout.decode().strip() == "%s: due now" % q1
    for addr, (state, attempts, nxt, err) in rcpt_lines(
            read_env(srv, q1)).items():
        assert state == "pending" and nxt == "0", (addr, state, nxt)
    # retry without ID: every queued entry
    set_next_try(srv, q1, 4000000000)
    set_next_try(srv, q2, 4000000000)
    out = srv.postctl("queue", "retry").stdout.decode()
    assert "%s: due now" % q1 in out and "%s: due now" % q2 in out, out
    for q in (q1, q2):
        assert all(v[2] == "0" for v in rcpt_lines(read_env(srv, q)).values())
    assert os.listdir(qpath(srv, "tmp")) == []

    # delete, also of a held entry
    srv.postctl("queue", "delete", q2)
    assert not os.path.exists(qpath(srv, "env", q2))
    assert not os.path.exists(qpath(srv, "msg", q2))
    assert srv.postctl("queue", "delete", q2,
                       check=False).returncode == EX_NOUSER
    assert srv.postctl("queue", "show", q2,
                       check=False).returncode == EX_NOUSER
    srv.postctl("queue", "hold", q1)
    srv.postctl("queue", "delete", q1)
    assert not os.path.exists(qpath(srv, "hold", q1))
    assert not os.path.exists(qpath(srv, "msg", q1))
    entries, out = listing(srv)
    assert q1 not in entries and q2 not in entries, out
    assert os.listdir(qpath(srv, "quarantine")) == []


def test_postctl_queue_usage(make_server):
    srv = make_server(overrides=OVERRIDES, start=False)
    for args in (("queue",), ("queue", "hold"), ("queue", "release"),
                 ("queue", "retry", "a", "b"), ("queue", "list", "x"),
                 ("queue", "frobnicate", "x"), ("queue", "hold", "../env"),
                 ("queue", "retry", "a.b"), ("queue", "release", "")):
        p = srv.postctl(*args, check=False)
        assert p.returncode == EX_USAGE, (args, p.returncode)
    # nothing queued yet: unknown ids
    for cmd in ("hold", "release", "retry", "show", "delete"):
        p = srv.postctl("queue", cmd, "abc123", check=False)
        assert p.returncode == EX_NOUSER, (cmd, p.returncode)
    assert srv.postctl("queue", "retry").returncode == 0


def test_inv_d4_held_entry_survives_restart(make_server):
    """A held entry is neither delivered nor quarantined as an orphan by
    the recovery at start-up, and comes back on release."""
    srv = make_server(overrides=OVERRIDES)
    qid = submit(srv, [REMOTE1], "held over a restart")
    srv.stop()
    srv.postctl("queue", "hold", qid)
    held = read_env(srv, qid, "hold")
    old = time.time() - 3600
    os.utime(qpath(srv, "msg", qid), (old, old))
    srv.start()
    # the runner and recovery have had their chance
    time.sleep(1.0)
    srv.stop()
    assert os.path.exists(qpath(srv, "hold", qid))
    assert os.path.exists(qpath(srv, "msg", qid))
    assert os.listdir(qpath(srv, "quarantine")) == []
    # no attempt was made meanwhile: the envelope is as it was
    assert read_env(srv, qid, "hold") == held
    srv.postctl("queue", "release", qid)
    assert qid in listing(srv)[0]
    srv.postctl("queue", "delete", qid)
