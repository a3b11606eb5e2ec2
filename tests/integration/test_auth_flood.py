"""Password guessing against the auth process's tarpit (INV-A1).

A guessing client connects from 127.0.0.1, sends USER/PASS, waits about
10 ms for an answer and then resets the connection (SO_LINGER 0), over and
over: with a tarpit that only holds back *failure* replies, "no answer
within 10 ms" already means "wrong" and a right password is answered at
once, so such a client guesses hundreds of passwords a second. Meanwhile
an honest user on 127.0.0.2 logs in every half second and must get in
within a second every time, and the auth process must not grow.

What is counted as a guess is a password the auth process actually
checked: it logs `tarpit peer=... failures=N ...` for every failure it
counts, so the last N is the number of wrong passwords it verified for
the peer.
"""

import base64
import hashlib
import os
import re
import socket
import struct
import threading
import time

from conftest import ALICE, ALICE_PW

FLOOD_SECONDS = 12.0
FLOOD_REPLY_WAIT = 0.020
# The right password is tried once, this many guesses into the flood.
RIGHT_GUESS_AT = 100
# Guessing threads, each one connection at a time.
FLOOD_THREADS = 2

VICTIM = "victim@example.org"
VICTIM_PW = "victim-Right-9"
HONEST = "honest@example.org"
HONEST_PW = "honest-Secret-8"


def ssha256(password):
    """A {SSHA256} hash: a fast scheme, so that the check itself never
    slows the guessing down and only the tarpit can."""
    salt = os.urandom(8)
    digest = hashlib.sha256(password.encode() + salt).digest()
    return "{SSHA256}" + base64.b64encode(digest + salt).decode()


def auth_process_pid(srv):
    """The auth process is the daemon's child chrooted into the folder of
    the users file."""
    want = os.path.realpath(os.path.dirname(srv.users_file))
    for pid in srv.descendants():
        try:
            if os.path.realpath(os.readlink("/proc/%d/root" % pid)) == want:
                return pid
        except OSError:
            continue
    raise AssertionError("no auth process found among %r"
                         % srv.descendants())


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def checked_failures(srv, mark, peer="127.0.0.1"):
    """The highest failure count the auth process logged for peer."""
    rx = re.compile(r"tarpit peer=%s failures=(\d+) " % re.escape(peer))
    counts = [int(m.group(1)) for m in rx.finditer(srv.log_since(mark))]
    return max(counts) if counts else 0


def guess_once(port, password):
    """One guess as a fast guesser makes it: True if the password was
    accepted within FLOOD_REPLY_WAIT, then the connection is reset."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while b"\r\n" not in buf:
            data = s.recv(4096)
            if not data:
                return False
            buf += data
        s.sendall(("USER %s\r\nPASS %s\r\n" % (VICTIM, password)).encode())
        buf = b""
        deadline = time.monotonic() + FLOOD_REPLY_WAIT
        while buf.count(b"\r\n") < 2:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(4096)
            except socket.timeout:
                break
            if not data:
                break
            buf += data
        lines = buf.split(b"\r\n")
        return len(lines) > 1 and lines[1].startswith(b"+OK")
    finally:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()


def honest_login(port):
    """Seconds from connect to the PASS reply, from 127.0.0.2."""
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(10)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    f = s.makefile("rb")
    try:
        assert f.readline().startswith(b"+OK")
        s.sendall(("USER %s\r\n" % HONEST).encode())
        assert f.readline().startswith(b"+OK")
        s.sendall(("PASS %s\r\n" % HONEST_PW).encode())
        reply = f.readline()
        took = time.monotonic() - t0
        assert reply.startswith(b"+OK"), reply
        s.sendall(b"QUIT\r\n")
        f.readline()
        return took
    finally:
        f.close()
        s.close()


def test_inv_a1_guessing_flood_is_slowed_and_honest_login_unharmed(
        make_server):
    srv = make_server(overrides={"auth_failure_delay": "1s",
                                 "workers": "1"},
                      start=False)
    with open(srv.users_file, "a") as f:
        f.write("%s:%s\n" % (VICTIM, ssha256(VICTIM_PW)))
        f.write("%s:%s\n" % (HONEST, ssha256(HONEST_PW)))
    srv.start()
    # The first login creates the honest user's Maildir (fsyncs): done
    # before the flood, which is not to be blamed for it.
    honest_login(srv.pop3_port)
    mark = srv.log_mark()
    auth_pid = auth_process_pid(srv)
    rss_start = vm_rss_kib(auth_pid)

    stop = threading.Event()
    honest = {"times": [], "errors": []}

    def honest_loop():
        while not stop.is_set():
            try:
                honest["times"].append(honest_login(srv.pop3_port))
            except Exception as e:  # noqa: BLE001 -- reported below
                honest["errors"].append(repr(e))
            stop.wait(0.5)

    t = threading.Thread(target=honest_loop)
    t.start()
    flood = {"guesses": 0, "found_at": None, "rss_max": rss_start,
             "checked_at_2s": None, "errors": []}
    lock = threading.Lock()
    start = time.monotonic()

    def flood_loop():
        while time.monotonic() - start < FLOOD_SECONDS:
            with lock:
                n = flood["guesses"]
                flood["guesses"] += 1
            pw = VICTIM_PW if n == RIGHT_GUESS_AT else "guess%d" % n
            try:
                if guess_once(srv.pop3_port, pw):
                    with lock:
                        if flood["found_at"] is None:
                            flood["found_at"] = n
            except OSError as e:
                flood["errors"].append(repr(e))
            if n % 50 == 0:
                with lock:
                    flood["rss_max"] = max(flood["rss_max"],
                                           vm_rss_kib(auth_pid))
            if flood["checked_at_2s"] is None and \
                    time.monotonic() - start >= 2:
                flood["checked_at_2s"] = checked_failures(srv, mark)

    flooders = [threading.Thread(target=flood_loop)
                for _ in range(FLOOD_THREADS)]
    try:
        for f in flooders:
            f.start()
        for f in flooders:
            f.join(FLOOD_SECONDS + 30)
    finally:
        stop.set()
        t.join(15)
    guesses, found_at = flood["guesses"], flood["found_at"]
    rss_max, checked_at_2s = flood["rss_max"], flood["checked_at_2s"]
    elapsed = time.monotonic() - start
    checked = checked_failures(srv, mark)
    late_rate = (checked - (checked_at_2s or 0)) / max(elapsed - 2, 1)
    print("flood: %d guesses sent in %.1f s (%.0f/s); %d checked (%.1f/s), "
          "%.2f/s after the first 2 s; right password found at %r; "
          "honest logins %d, max %.3f s, errors %r; auth RSS %d -> max %d "
          "KiB" % (guesses, elapsed, guesses / elapsed, checked,
                   checked / elapsed, late_rate, found_at,
                   len(honest["times"]), max(honest["times"] or [0]),
                   honest["errors"], rss_start, rss_max))
    print("honest login times: %s" % " ".join(
        "%.3f" % x for x in sorted(honest["times"])))

    # The guesser really flooded (else the test proves nothing).
    assert guesses > RIGHT_GUESS_AT, guesses
    assert not flood["errors"], flood["errors"][:5]
    # Only a handful of its passwords were ever checked, and after the
    # first failures no more than a few per second...
    assert checked <= 40, checked
    assert late_rate <= 3.0, late_rate
    # ...so the right one, sent long after the first failure, was not
    # among them.
    assert found_at is None, found_at
    # The honest user on another address got in every time, quickly.
    assert not honest["errors"], honest["errors"]
    assert len(honest["times"]) >= FLOOD_SECONDS / 1.5, honest["times"]
    assert max(honest["times"]) < 1.0, honest["times"]
    # The auth process does not keep what the flood left behind.
    assert rss_max - rss_start < 16 * 1024, (rss_start, rss_max)
    # The guesser's next login still waits for its penalty: closing the
    # connections did not end it.
    with srv.connect(timeout=30) as c:
        assert c.cmd("USER " + ALICE).startswith("+OK")
        t0 = time.monotonic()
        assert c.cmd("PASS " + ALICE_PW).startswith("+OK")
        assert time.monotonic() - t0 >= 1.0
        c.cmd("QUIT")
