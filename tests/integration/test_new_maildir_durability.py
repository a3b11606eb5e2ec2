"""INV-D1 for a user's first message: the folders made for the new
Maildir (mail/DOMAIN, LOCAL, new cur tmp) are entries of their parents,
and each parent must be fsynced before the message is acknowledged, or a
power loss can take the whole new Maildir, and the acknowledged message,
away. A power loss cannot be staged here, so the daemon's processes are
traced (strace -f -y, which prints the path of every descriptor) and the
order of fsync() calls against the acknowledgement is checked: the 250
after DATA, and for the queue runner's local delivery the removal of the
queue entry (after which nothing would deliver it again).
"""

import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import time

import pytest

from conftest import (DOMAIN, IS_ROOT, POSTCTL, POSTD, RUN_USER,
                      _child_env)

STRACE = shutil.which("strace")
pytestmark = [
    pytest.mark.skipif(STRACE is None, reason="strace not installed"),
    pytest.mark.skipif(not IS_ROOT, reason="attaching to the daemon's "
                       "processes needs root"),
]

NEWBIE = "carol@" + DOMAIN  # a user of the test config with no Maildir yet


class Tracer:
    """strace attached to every process below the daemon's parent."""

    def __init__(self, srv, out):
        self.out = out
        pids = srv.descendants()
        argv = [STRACE, "-f", "-y", "-s", "80", "-o", out, "-e",
                "trace=mkdir,mkdirat,fsync,fdatasync,write,writev,sendto,"
                "sendmsg,unlink,unlinkat"]
        for p in pids:
            argv += ["-p", str(p)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not all(self._traced(p) for p in pids):
            assert self.proc.poll() is None, "strace could not attach"
            assert time.monotonic() < deadline, "strace did not attach"
            time.sleep(0.05)

    @staticmethod
    def _traced(pid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("TracerPid:"):
                        return int(line.split()[1]) != 0
        except OSError:
            return True  # gone: nothing left to attach to
        return False

    def stop(self):
        """Detaches and returns the trace, one line per call."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(15)
        with open(self.out, errors="replace") as f:
            return join_resumed(f.read().splitlines())


def join_resumed(lines):
    """strace -f splits a call another process interrupted into
    "PID fsync(3</a> <unfinished ...>" and, later, "PID <... fsync
    resumed>) = 0". Each pair becomes one whole line at the place where
    the call returned, so that "fsync(3</a>) = 0" is seen, and seen no
    earlier than it really finished."""
    unfinished = {}
    out = []
    for line in lines:
        pid = line.split(" ", 1)[0]
        if line.endswith(" <unfinished ...>"):
            unfinished[pid] = line[:-len(" <unfinished ...>")]
            continue
        m = re.match(r"(\S+) <\.\.\. \w+ resumed>(.*)$", line)
        if m and m.group(1) in unfinished:
            # strace pads a resumed call's result: ")      = 0"
            line = unfinished.pop(m.group(1)) + re.sub(
                r"^\)\s+=", ") =", m.group(2).lstrip())
        out.append(line)
    return out


def traced_env():
    """LeakSanitizer cannot run under ptrace: off for a traced program."""
    env = _child_env()
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def first_index(lines, pred, what):
    for i, line in enumerate(lines):
        if pred(line):
            return i
    pytest.fail("no %s in the trace:\n%s" % (what, "\n".join(lines[-80:])))


def fsync_of(path):
    rx = re.compile(r"\bf(data)?sync\(\d+<%s>\) = 0" % re.escape(path))
    return lambda line: rx.search(line) is not None


def mkdir_in(parent, name):
    rx = re.compile(r"\bmkdirat\(\d+<%s>, \"%s\"" % (re.escape(parent),
                                                    re.escape(name)))
    return lambda line: rx.search(line) is not None


def assert_parents_synced_before(srv, lines, local, ack, what):
    """Each folder made (DOMAIN in mail/, LOCAL in DOMAIN, new cur tmp in
    LOCAL) is followed by an fsync of its parent before the ack."""
    mail = os.path.join(srv.data_dir, "mail")
    domain = os.path.join(mail, DOMAIN)
    maildir = os.path.join(domain, local)
    for parent, name in ((mail, DOMAIN), (domain, local), (maildir, "new"),
                         (maildir, "cur"), (maildir, "tmp")):
        made = first_index(lines, mkdir_in(parent, name),
                           "mkdir of %s in %s" % (name, parent))
        synced = [i for i, ln in enumerate(lines)
                  if i > made and fsync_of(parent)(ln)]
        assert synced and synced[0] < ack, (
            "%s made (line %d) but %s not fsynced before the %s (line %d):"
            "\n%s" % (name, made, parent, what, ack, "\n".join(lines)))


def test_inv_d1_first_smtp_message_syncs_new_folders(make_server, tmp_path):
    srv = make_server()
    assert not os.path.exists(srv.maildir(NEWBIE))
    tracer = Tracer(srv, str(tmp_path / "trace"))
    try:
        c = smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30)
        c.sendmail("someone@far.example", [NEWBIE],
                   b"Subject: first\r\n\r\nhello\r\n")
        c.quit()
    finally:
        lines = tracer.stop()
    assert len(srv.stored_messages(NEWBIE)) == 1
    ack = first_index(lines, lambda ln: "250 2.0.0 OK id=" in ln,
                      "250 after DATA")
    assert_parents_synced_before(srv, lines, "carol", ack, "250")


def test_inv_d1_queue_runner_local_delivery_syncs_new_folders(make_server,
                                                              tmp_path):
    """An entry for a local user in the outbound queue (as a bounce to a
    local sender is) is delivered by the runner into a Maildir it makes."""
    srv = make_server()
    assert not os.path.exists(srv.maildir(NEWBIE))
    queue = os.path.join(srv.data_dir, "queue")
    qid = "%x%016x" % (int(time.time()), int.from_bytes(os.urandom(8),
                                                        "big"))
    body = b"Subject: queued\n\nfor a local user\n"
    env = ("postd-queue 2\nid %s\ncreated %d\nsize %d\nskip 0\n"
           "sender <someone@far.example>\nnotified -\n"
           "rcpt <%s> pending 0 0 -\nend\n" % (
               qid, int(time.time()), len(body), NEWBIE)).encode()
    user = pwd.getpwnam(RUN_USER)
    tracer = Tracer(srv, str(tmp_path / "trace"))
    try:
        for path, data in ((os.path.join(queue, "msg", qid), body),
                           (os.path.join(queue, "tmp", qid + ".env"), env)):
            with open(path, "wb") as f:
                f.write(data)
            os.chown(path, user.pw_uid, user.pw_gid)
        os.rename(os.path.join(queue, "tmp", qid + ".env"),
                  os.path.join(queue, "env", qid))
        deadline = time.monotonic() + 20
        while os.path.exists(os.path.join(queue, "env", qid)):
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.05)
    finally:
        lines = tracer.stop()
    assert len(srv.stored_messages(NEWBIE)) == 1
    done = first_index(lines, lambda ln: "unlinkat(" in ln and
                       "/queue/env>" in ln and qid in ln,
                       "removal of env/" + qid)
    assert_parents_synced_before(srv, lines, "carol", done,
                                 "removal of the queue entry")


def test_inv_d1_first_start_syncs_the_folders_it_makes(make_server,
                                                       tmp_path):
    """The first start makes mail/, queue/ and the queue's folders: each
    is synced into its parent, or a power loss could take the queue (and
    every entry acknowledged in it) away."""
    srv = make_server(start=False)
    trace = str(tmp_path / "trace")
    log = open(srv.log_path, "ab")
    p = subprocess.Popen([STRACE, "-f", "-y", "-o", trace, "-e",
                          "trace=mkdir,mkdirat,fsync", POSTD, "-f", "-c",
                          srv.conf], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True,
                         env=traced_env())
    log.close()
    try:
        srv.wait_log(r"started generation 1", timeout=20)
    finally:
        with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
            for pid in f.read().split():
                os.kill(int(pid), signal.SIGTERM)
        p.wait(20)
    lines = open(trace, errors="replace").read().splitlines()
    assert_every_mkdir_synced(lines, ("queue", "env"))


MKDIR_RX = re.compile(r"\bmkdirat\(\d+<([^>]*)>, \"([^\"]+)\".*= 0$|"
                      r"\bmkdir\(\"(.*)/([^/\"]+)\".*= 0$")


def assert_every_mkdir_synced(lines, expected):
    """Every folder made is followed by an fsync of its parent."""
    made = [m for m in (MKDIR_RX.search(ln) for ln in lines) if m]
    names = [m.group(2) or m.group(4) for m in made]
    for name in expected:
        assert name in names, "\n".join(lines)
    for m in made:
        i = lines.index(m.string)
        parent, name = m.group(1) or m.group(3), m.group(2) or m.group(4)
        assert any(fsync_of(parent)(ln) for ln in lines[i + 1:]), (
            "%s made in %s, which was never fsynced after:\n%s" % (
                name, parent, "\n".join(lines)))


def test_inv_d1_postctl_deliver_syncs_the_folders_it_makes(make_server,
                                                           tmp_path):
    """postctl deliver before postd ever started: DATA_DIR/mail and the
    Maildir are made, and each parent synced, before it exits 0."""
    srv = make_server(start=False)
    trace = str(tmp_path / "trace")
    p = subprocess.run([STRACE, "-f", "-y", "-o", trace, "-e",
                        "trace=mkdir,mkdirat,fsync", POSTCTL, "-c", srv.conf,
                        "deliver", NEWBIE],
                       input=b"Subject: x\n\nhi\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60, env=traced_env())
    assert p.returncode == 0, p.stdout
    lines = open(trace, errors="replace").read().splitlines()
    assert_every_mkdir_synced(lines, ("mail", DOMAIN, "carol", "new"))
