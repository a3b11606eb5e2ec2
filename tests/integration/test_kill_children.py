"""kill -9 of ONE child while the rest of postd runs on (INV-D1, INV-D4,
INV-I1): a worker during SMTP deliveries and during IMAP writes, the auth
process during logins. The parent starts a new generation; every message
that got 250 or OK is there exactly once and whole, every client gets an
answer or a closed connection (never silence), and postd serves on.
Killing the whole daemon is test_smtp_crash.py and test_imap_crash.py;
the parent alone, test_attack_regress.py."""

import collections
import os
import random
import re
import smtplib
import socket
import threading
import time

import pytest

import test_imap_crash as imap_crash
import test_smtp_crash as smtp_crash
from conftest import ALICE, REFERENCE
from pop3util import wire
from smtputil import check_trace, pop3_fetch_all

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot", reason="postd only")


def listener_holders(srv, port):
    """Pids of the daemon's children that hold the listening socket on
    port: the workers of the running generation."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if fields[1].endswith(":%04X" % port) and fields[3] == "0A":
                inode = fields[9]
    assert inode is not None, "no listener on %d" % port
    want = "socket:[%s]" % inode
    out = []
    for pid in srv.descendants():
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
            if any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) == want
                   for fd in fds):
                out.append(pid)
        except OSError:
            continue
    return out


def wait_workers(srv, timeout=10.0):
    """The workers of a generation that holds the listeners (after a
    death the parent starts the next one within a few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws = listener_holders(srv, srv.smtp_port)
        if ws:
            return ws
        time.sleep(0.1)
    pytest.fail("no worker holds the SMTP listener")


def wait_logins(srv, timeout=15.0):
    """Until a POP3 login works again: after a kill the parent waits a
    moment before the next generation, and until then a login is told
    [SYS/TEMP] (the auth process of the killed generation has left)."""
    deadline = time.monotonic() + timeout
    while True:
        c = srv.connect()
        r = c.login(ALICE, srv.users[ALICE])
        if r.startswith("+OK"):
            c.cmd("QUIT")
            c.close()
            return
        c.close()
        assert "[SYS/TEMP]" in r or "[IN-USE]" in r, r
        assert time.monotonic() < deadline, "no login within %ds: %s" % (
            timeout, r)
        time.sleep(0.1)


def acked_problems(srv, clients):
    """Every 250'd message once and whole in each recipient's mailbox;
    nothing unknown, nothing twice."""
    acked, sent = {}, {}
    for cl in clients:
        acked.update(cl.acked)
        sent.update(cl.sent)
    problems = []
    for u in smtp_crash.USERS:
        seen = collections.Counter()
        for uid, m in pop3_fetch_all(srv, u):
            found = smtp_crash.MARKER_RE.search(m)
            if not found:
                problems.append("%s: %s without marker" % (u, uid))
                continue
            marker = found.group(1).decode()
            seen[marker] += 1
            rcpts, want = sent.get(marker, (None, None))
            if want is None:
                problems.append("%s: unknown %s" % (u, marker))
            elif check_trace(m, smtp_crash.SENDER, "ESMTP") != want:
                problems.append("%s: %s partial" % (u, marker))
        for marker, n in seen.items():
            if n > 1:
                problems.append("%s: %s %d times" % (u, marker, n))
        for marker, (rcpts, _) in acked.items():
            if u in rcpts and seen[marker] != 1:
                problems.append("%s: %s got 250, present %d times" %
                                (u, marker, seen[marker]))
    return problems, len(acked)


def test_kill9_of_a_worker_during_smtp_keeps_every_acked_message(
        make_server):
    srv = make_server(overrides={"workers": "2"})
    stop = threading.Event()
    clients = [smtp_crash.Client(srv, i, stop) for i in range(10)]
    for cl in clients:
        cl.start()
    rnd = random.Random()
    for _ in range(4):
        time.sleep(1.0)
        srv.kill_child(rnd.choice(wait_workers(srv)))
    time.sleep(1.0)
    stop.set()
    for cl in clients:
        cl.join(20)
        assert not cl.is_alive(), "client thread hung"
    wait_logins(srv)
    problems, acked = acked_problems(srv, clients)
    assert acked >= 20, "only %d messages accepted" % acked
    assert not problems, "%d problems of %d acked:\n%s" % (
        len(problems), acked, "\n".join(problems[:30]))
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        c.sendmail(smtp_crash.SENDER, [ALICE], wire(b"Subject: after\n\nok\n"))


def test_kill9_of_a_worker_during_imap_writes(make_server):
    """APPEND, COPY, MOVE, STORE and EXPUNGE from several clients while
    one worker is killed each round: what got OK is there once (INV-I1),
    and the sessions on the other worker never see a damaged folder."""
    def kill_a_worker(srv, rnd):
        srv.kill_child(rnd.choice(wait_workers(srv)))
        time.sleep(rnd.uniform(0.05, 0.3))

    # after: the next generation answers logins (verify logs in).
    imap_crash.run_rounds(make_server, interrupt=kill_a_worker,
                          after=wait_logins, rounds=4)


def auth_process(srv):
    """The running auth process, named by its newest log line."""
    live = set(srv.descendants())
    for pid in reversed(re.findall(r"postd-auth\[(\d+)\]", srv.log())):
        if int(pid) in live:
            return int(pid)
    pytest.fail("auth process not found in the log")


def reply_key(line):
    """+OK, or -ERR with its response code if it has one."""
    words = line.split(b" ")
    if len(words) > 1 and words[1].startswith(b"["):
        return words[0] + b" " + words[1].split(b"]")[0] + b"]"
    return words[0]


def test_kill9_of_the_auth_process_answers_every_login(make_server):
    """A login in flight when the auth process dies gets -ERR [SYS/TEMP]
    at once (not silence), and logins work again once the parent has
    started the next generation."""
    srv = make_server(overrides={"workers": "2"})
    answers = collections.Counter()
    silent = []
    stop = threading.Event()
    login = b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(),
                                         srv.users[ALICE].encode())

    def loop():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", srv.pop3_port),
                                             timeout=20)
            except OSError:
                continue
            f = s.makefile("rb")
            try:
                f.readline()
                s.sendall(login)
                f.readline()
                r = f.readline()
                answers[reply_key(r)] += 1
                s.sendall(b"QUIT\r\n")
                f.readline()
            except socket.timeout:
                silent.append(time.monotonic())
            except OSError:
                pass
            finally:
                s.close()

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):
        time.sleep(1.5)
        mark = srv.log_mark()
        srv.kill_child(auth_process(srv))
        # the next generation's auth process writes its load line
        srv.wait_log(r"postd-auth\[\d+\]: .*loaded", since=mark, timeout=10)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(30)
    assert not silent, "%d logins got no answer" % len(silent)
    # [IN-USE]: the four threads share one mailbox, and one may log in
    # while another still holds it (RFC 2449).
    assert set(answers) <= {b"+OK", b"-ERR [SYS/TEMP]", b"-ERR [IN-USE]"}, \
        answers
    assert answers[b"+OK"] > 0, answers
    c = srv.login(retry_in_use=5)
    assert c.cmd("STAT").startswith("+OK")
    c.cmd("QUIT")
    c.close()
