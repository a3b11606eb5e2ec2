"""The embedded default (postd without -c), as a new user starts it from
the README: the demo user it creates must be an address that real clients
accept. git send-email (Debian package git-email) refuses an address whose
domain has no dot, such as demo@localhost.

The embedded default listens on fixed ports (2110, 2525, ...): the test
is skipped when one of them is taken."""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import POSTD, REFERENCE, _child_env
from pop3util import Pop3Conn

PORTS = (2110, 2995, 2525, 2587, 2465, 2080)
SEND_EMAIL = shutil.which("git") and os.path.exists(
    "/usr/lib/git-core/git-send-email")

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot", reason="postd only")


def port_taken(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.fixture
def embedded():
    """postd -f in a scratch folder; yields (folder, demo address,
    password, log path)."""
    if not os.access(POSTD, os.X_OK):
        pytest.fail("%s not built (set POSTD_BUILD)" % POSTD)
    if any(port_taken(p) for p in PORTS):
        pytest.skip("a port of the embedded default is in use")
    base = tempfile.mkdtemp(prefix="postd-embedded-")
    os.chmod(base, 0o755)  # the run user walks into postd-data
    log_path = os.path.join(base, "postd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([POSTD, "-f"], cwd=base, stdin=subprocess.
                                DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=_child_env())
    try:
        demo = wait_ready(proc, log_path)
        yield base, demo[0], demo[1], log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        shutil.rmtree(base, ignore_errors=True)


def wait_ready(proc, log_path):
    rx = re.compile(r"demo user: (\S+) password: (\S+)")
    deadline = time.monotonic() + 20
    demo = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("postd exited: " + open(log_path).read()[-2000:])
        text = open(log_path, errors="replace").read()
        demo = demo or rx.search(text)
        if demo and "started generation 1" in text:
            try:
                with Pop3Conn(2110, timeout=3) as c:
                    if c.greeting.startswith("+OK"):
                        c.cmd("QUIT")
                        return demo.group(1), demo.group(2)
            except OSError:
                pass
        time.sleep(0.1)
    pytest.fail("embedded default not ready: " + open(log_path).read())


def pop3_messages(password):
    """The demo user's messages, fetched over POP3 (login "demo", as the
    README does it)."""
    with Pop3Conn(2110, timeout=10) as c:
        assert c.login("demo", password).startswith("+OK")
        n = int(c.cmd("STAT").split()[1])
        out = []
        for i in range(1, n + 1):
            status, lines = c.cmd_multi("RETR %d" % i)
            assert status.startswith("+OK"), status
            out.append("\n".join(lines))
        c.cmd("QUIT")
    return out


def test_demo_address_has_a_dotted_domain(embedded):
    _, demo, password, _ = embedded
    local, _, domain = demo.partition("@")
    assert local == "demo", demo
    assert "." in domain, demo
    # the welcome message is addressed to it
    msgs = pop3_messages(password)
    assert len(msgs) == 1 and ("To: " + demo) in msgs[0], msgs


@pytest.mark.skipif(not SEND_EMAIL, reason="git send-email not installed "
                    "(apt-get install git-email)")
def test_git_send_email_to_the_demo_user(embedded):
    base, demo, password, _ = embedded
    patch = os.path.join(base, "0001-hello.patch")
    with open(patch, "w") as f:
        f.write("From 0000000000000000000000000000000000000000 Mon Sep 17 "
                "00:00:00 2001\n"
                "From: Tester <tester@example.net>\n"
                "Date: Sun, 6 Dec 2026 05:00:00 +0000\n"
                "Subject: [PATCH] hello from git send-email\n"
                "\n"
                "A patch for the demo user.\n"
                "---\n"
                " hello | 1 +\n"
                "\n")
    env = _child_env()
    env.update(HOME=base, GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="Tester", GIT_AUTHOR_EMAIL="tester@example.net",
               GIT_COMMITTER_NAME="Tester",
               GIT_COMMITTER_EMAIL="tester@example.net")
    p = subprocess.run(
        ["git", "send-email", "--smtp-server=127.0.0.1",
         "--smtp-server-port=2525", "--to=" + demo,
         "--from=Tester <tester@example.net>", "--confirm=never",
         "--suppress-cc=all", "--no-validate", patch],
        cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out
    deadline = time.monotonic() + 10
    while True:
        msgs = pop3_messages(password)
        if len(msgs) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(msgs) == 2, (msgs, out)
    assert "Subject: [PATCH] hello from git send-email" in msgs[1], msgs[1]
    assert "A patch for the demo user." in msgs[1]
