"""IMAP and kill -9 (INV-D1, INV-I1, INV-D4): client threads APPEND
(also MULTIAPPEND), STORE, COPY, MOVE and EXPUNGE against INBOX and other
folders while the whole daemon is killed with SIGKILL at random moments.
Every tagged OK is recorded with what it promised (APPENDUID / COPYUID
UIDs, the flags); after each restart a fresh session and the Maildir files
must show every promise kept, UIDVALIDITY unchanged, UIDNEXT never going
back, no UID given to two different messages, no message half written,
and POP3 the same INBOX as IMAP.

Then the index lost or damaged (doc/internals/imap-index.md, "Fsync
policy"): every message is still served, UIDVALIDITY changes exactly when
the document says the index is rebuilt, and the log says why.

The seeds are printed in every assertion message; POSTD_CRASH_SEED=N
reruns one."""

import os
import random
import re
import socket
import threading
import time

import pytest

from conftest import ALICE
from imapserver import parse_fetch
from smtputil import pop3_fetch_all

MARK_RE = re.compile(rb"X-Crash-Id: (c-[0-9a-z-]+)")
SHARED = ["INBOX", "Work", "Other"]
THREADS = 3
# COPY and MOVE go only into the thread's own folders: a COPY into a
# folder other sessions use hits the race test_copy_into_a_busy_folder_*
# documents, which would hide what a crash does.
PRIVATE = {t: ["T%da" % t, "T%db" % t] for t in range(THREADS)}
FOLDERS = SHARED + [f for t in range(THREADS) for f in PRIVATE[t]]
FLAG_CHOICES = ["\\Seen", "\\Flagged", "\\Answered", "$Crash1", "$Crash2"]
SYSTEM_LETTERS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R",
                  "\\Deleted": "T", "\\Draft": "D"}
ROUNDS = 6


def seed_base():
    env = os.environ.get("POSTD_CRASH_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 30)


def folder_dir(srv, folder, user=ALICE):
    md = srv.maildir(user)
    return md if folder == "INBOX" else os.path.join(md, "." + folder)


def make_message(marker, rnd):
    size = rnd.choice([100, 800, 3000, 20000, 120000])
    line = marker.encode() + b" 0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * max(1, size // len(line))
    return (b"From: crash <crash@example.org>\r\nSubject: " +
            marker.encode() + b"\r\nX-Crash-Id: " + marker.encode() +
            b"\r\n\r\n" + body + b"end " + marker.encode() + b"\r\n")


def ok(tagged):
    parts = tagged.split()
    return len(parts) > 1 and parts[1] == "OK"


class Closed(Exception):
    pass


class Wire:
    """A raw IMAP client: what imaplib cannot send (MULTIAPPEND) and a
    tagged reply with its response code, never a guess."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise Closed("closed")
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        m = re.search(rb"\{(\d+)\}$", ln)
        if m:  # a literal in an untagged reply: skip it whole
            want = int(m.group(1))
            while len(self.buf) < want:
                d = self.sock.recv(65536)
                if not d:
                    raise Closed("closed in a literal")
                self.buf += d
            self.buf = self.buf[want:]
            return ln + b" " + self.line()
        return ln

    def tagged(self, tag):
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                return ln.decode("utf-8", "replace")
            self.untagged.append(ln.decode("utf-8", "replace"))

    def cmd(self, text, literals=()):
        """Sends text, then each literal after its "+" (synchronising);
        literals are joined by the pieces of text in `literals` tuples
        (bytes, following text). Returns the tagged line."""
        self.n += 1
        self.untagged = []
        tag = b"w%d" % self.n
        self.sock.sendall(tag + b" " + text)
        for data, after in literals:
            while True:
                ln = self.line()
                if ln.startswith(b"+"):
                    break
                if ln.startswith(tag + b" "):
                    return ln.decode("utf-8", "replace")
            self.sock.sendall(data + after)
        return self.tagged(tag)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Model:
    """What the server promised, shared by the client threads.

    present[(folder, uid)] = {"marker", "flags" (a set, or None when a
    command on it got no answer)}; maybe[folder] = markers that may or may
    not be there (a command without its tagged reply); gone = (folder,
    uid) an OK'd EXPUNGE or MOVE removed: never again."""

    def __init__(self):
        self.lock = threading.Lock()
        self.present = {}
        self.maybe = {f: set() for f in FOLDERS}
        self.gone = set()
        self.bytes = {}          # marker -> the exact bytes sent
        self.history = {f: {} for f in FOLDERS}  # uid -> marker, ever
        self.uidvalidity = {}
        self.uidnext = {}
        self.busy = set()        # (folder, uid) a thread is working on
        self.oks = 0
        self.problems = []
        self.journal = {}        # marker -> what was sent and answered

    def note(self, marker, what):
        with self.lock:
            self.journal.setdefault(marker, []).append(what)

    def saw_uid(self, folder, uid, marker, why):
        old = self.history[folder].setdefault(uid, marker)
        if old != marker:
            self.problems.append("%s UID %d was %s, now %s (%s): UID given "
                                 "to two messages (INV-I1)" %
                                 (folder, uid, old, marker, why))


def parse_uidset(text):
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


class Client(threading.Thread):
    def __init__(self, srv, model, tid, seed, stop):
        super().__init__(daemon=True)
        self.srv, self.model, self.tid, self.stop = srv, model, tid, stop
        self.seed = seed
        self.rnd = random.Random(seed)
        self.n = 0
        self.selected = None
        self.errors = []

    def run(self):
        try:
            w = Wire(self.srv.imap_port)
            r = w.cmd(b"LOGIN %s %s\r\n" % (
                ALICE.encode(), self.srv.users[ALICE].encode()))
            assert ok(r), r
            while not self.stop.is_set():
                self.step(w)
        except (Closed, OSError) as e:
            self.errors.append(repr(e))

    def new_marker(self):
        self.n += 1
        return "c-%d-%d-%d" % (self.seed, self.tid, self.n)

    def select(self, w, folder):
        if self.selected != folder:
            self.selected = None
            r = w.cmd(b'SELECT "%s"\r\n' % folder.encode())
            assert ok(r), r
            self.selected = folder

    def pick(self):
        """One present message this thread may work on (marks it busy)."""
        m = self.model
        with m.lock:
            mine = [k for k, v in m.present.items()
                    if k not in m.busy and v["flags"] is not None and
                    v["marker"].split("-")[2] == str(self.tid)]
            if not mine:
                return None
            k = self.rnd.choice(sorted(mine))
            m.busy.add(k)
            return k

    def step(self, w):
        op = self.rnd.choice(["append", "append", "multiappend", "store",
                              "store", "copy", "move", "expunge"])
        if op in ("append", "multiappend"):
            return self.append(w, op == "multiappend")
        key = self.pick()
        if key is None:
            return self.append(w, False)
        try:
            getattr(self, op)(w, key)
        finally:
            with self.model.lock:
                self.model.busy.discard(key)

    def append(self, w, multi):
        m = self.model
        folder = self.rnd.choice(SHARED + PRIVATE[self.tid])
        msgs = []
        for _ in range(self.rnd.randint(2, 4) if multi else 1):
            marker = self.new_marker()
            data = make_message(marker, self.rnd)
            flags = set(self.rnd.sample(FLAG_CHOICES,
                                        self.rnd.randint(0, 2)))
            msgs.append((marker, data, flags))
        with m.lock:
            for marker, data, _ in msgs:
                m.bytes[marker] = data
                m.maybe[folder].add(marker)
        pieces = []
        text = b'APPEND "%s"' % folder.encode()
        for i, (marker, data, flags) in enumerate(msgs):
            lead = b" (%s) {%d}\r\n" % (" ".join(sorted(flags)).encode(),
                                        len(data))
            if i == 0:
                text += lead
            else:
                pieces[-1] = (pieces[-1][0], lead)
            pieces.append((data, b"\r\n"))
        r = w.cmd(text, pieces)
        for marker, _, _ in msgs:
            m.note(marker, "APPEND %s -> %s" % (folder, r))
        if not ok(r):
            return
        mm = re.search(r"\[APPENDUID (\d+) ([0-9:,]+)\]", r)
        if not mm:
            m.problems.append("APPEND OK without APPENDUID: %s" % r)
            return
        uids = parse_uidset(mm.group(2))
        with m.lock:
            if len(uids) != len(msgs):
                m.problems.append("APPENDUID %s for %d messages" %
                                  (mm.group(2), len(msgs)))
                return
            m.oks += 1
            self.check_uidv(folder, int(mm.group(1)), r)
            for uid, (marker, _, flags) in zip(uids, msgs):
                m.saw_uid(folder, uid, marker, "APPENDUID")
                m.present[(folder, uid)] = {"marker": marker,
                                            "flags": set(flags)}

    def check_uidv(self, folder, uidv, why):
        m = self.model
        old = m.uidvalidity.setdefault(folder, uidv)
        if old != uidv:
            m.problems.append("%s UIDVALIDITY %d became %d (%s)" %
                              (folder, old, uidv, why))

    def store(self, w, key):
        m = self.model
        folder, uid = key
        self.select(w, folder)
        flags = set(self.rnd.sample(FLAG_CHOICES, self.rnd.randint(0, 3)))
        with m.lock:
            m.present[key]["flags"] = None  # unknown until the OK
        r = w.cmd(b"UID STORE %d FLAGS.SILENT (%s)\r\n" % (
            uid, " ".join(sorted(flags)).encode()))
        if ok(r):
            with m.lock:
                m.oks += 1
                m.present[key]["flags"] = flags

    def copy(self, w, key, move=False):
        m = self.model
        folder, uid = key
        with m.lock:
            marker = m.present[key]["marker"]
            targets = [f for f in PRIVATE[self.tid] if f != folder and
                       marker not in m.maybe[f] and
                       not any(v["marker"] == marker and k[0] == f
                               for k, v in m.present.items())]
            if not targets:
                return
            target = self.rnd.choice(targets)
            m.maybe[target].add(marker)
            flags = set(m.present[key]["flags"])
            if move:
                m.present[key]["flags"] = None
                m.present[key]["maybe_gone"] = True
        self.select(w, folder)
        r = w.cmd(b'UID %s %d "%s"\r\n' % (b"MOVE" if move else b"COPY",
                                           uid, target.encode()))
        m.note(marker, "%s %s %d %s -> %s %r" % ("MOVE" if move else "COPY",
                                              folder, uid, target, r,
                                              w.untagged))
        if not ok(r):
            return
        # MOVE sends COPYUID untagged, before its EXPUNGEs (RFC 6851)
        mm = re.search(r"\[COPYUID (\d+) (\d+) (\d+)\]",
                       " ".join(w.untagged + [r]))
        if not mm:
            m.problems.append("COPY/MOVE OK without COPYUID: %s" % r)
            return
        with m.lock:
            m.oks += 1
            self.check_uidv(target, int(mm.group(1)), r)
            dst = int(mm.group(3))
            m.saw_uid(target, dst, marker, "COPYUID")
            m.present[(target, dst)] = {"marker": marker, "flags": flags}
            if move:
                del m.present[key]
                m.gone.add(key)

    def move(self, w, key):
        self.copy(w, key, move=True)

    def expunge(self, w, key):
        m = self.model
        folder, uid = key
        self.select(w, folder)
        with m.lock:
            m.present[key]["flags"] = None
            m.present[key]["maybe_gone"] = True
        r = w.cmd(b"UID STORE %d +FLAGS.SILENT (\\Deleted)\r\n" % uid)
        if not ok(r):
            return
        r = w.cmd(b"UID EXPUNGE %d\r\n" % uid)
        m.note(m.present[key]["marker"],
               "EXPUNGE %s %d -> %s" % (folder, uid, r))
        if ok(r):
            with m.lock:
                m.oks += 1
                del m.present[key]
                m.gone.add(key)


def fresh_state(srv):
    """{folder: (uidvalidity, uidnext, {uid: (flags, bytes)})} from a new
    imaplib session, reading with BODY.PEEK."""
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30)
    c.login(ALICE, srv.users[ALICE])
    out = {}
    try:
        for f in FOLDERS:
            typ, data = c.status('"%s"' % f, "(UIDVALIDITY UIDNEXT)")
            assert typ == "OK", (f, data)
            st = data[0].decode()
            uidv = int(re.search(r"UIDVALIDITY (\d+)", st).group(1))
            uidnext = int(re.search(r"UIDNEXT (\d+)", st).group(1))
            typ, data = c.select('"%s"' % f, readonly=True)
            assert typ == "OK", (f, data)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            msgs = parse_fetch(data) if data and data[0] else {}
            out[f] = (uidv, uidnext, msgs)
    finally:
        c.logout()
    return out


def maildir_files(srv, folder):
    """{marker: [(file name, bytes)]} of new/ and cur/."""
    out = {}
    d = folder_dir(srv, folder)
    for sub in ("new", "cur"):
        p = os.path.join(d, sub)
        for name in os.listdir(p):
            with open(os.path.join(p, name), "rb") as f:
                data = f.read()
            mm = MARK_RE.search(data)
            key = mm.group(1).decode() if mm else None
            out.setdefault(key, []).append((sub + "/" + name, data))
    return out


def crlf(data):
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def verify(srv, model, seeds, round_no):
    """Checks the promises against a fresh session and the files; then
    the model adopts what the server shows (uncertainty resolved)."""
    where = "round %d, seeds %r (POSTD_CRASH_SEED=%d)" % (
        round_no, seeds, seeds[0])
    problems = list(model.problems)
    state = fresh_state(srv)
    seen_markers = {f: {} for f in FOLDERS}
    for f, (uidv, uidnext, msgs) in state.items():
        old = model.uidvalidity.setdefault(f, uidv)
        if old != uidv:
            problems.append("%s: UIDVALIDITY %d became %d" % (f, old, uidv))
        if uidnext < model.uidnext.get(f, 0):
            problems.append("%s: UIDNEXT went back from %d to %d" %
                            (f, model.uidnext[f], uidnext))
        model.uidnext[f] = uidnext
        for uid, (flags, body) in msgs.items():
            if uid >= uidnext:
                problems.append("%s: UID %d not below UIDNEXT %d" %
                                (f, uid, uidnext))
            mm = MARK_RE.search(body)
            if not mm:
                problems.append("%s UID %d: no marker (half written?) %r" %
                                (f, uid, body[:200]))
                continue
            marker = mm.group(1).decode()
            if body != model.bytes.get(marker):
                problems.append("%s UID %d (%s): %d bytes, sent %r "
                                "(half written?)" %
                                (f, uid, marker, len(body),
                                 len(model.bytes.get(marker, b""))))
            if (f, uid) in model.gone:
                problems.append("%s UID %d (%s): expunged/moved with OK, "
                                "back after the crash" % (f, uid, marker))
            model.saw_uid(f, uid, marker, "fresh session")
            if marker in seen_markers[f]:
                problems.append("%s: %s twice (UIDs %d, %d); %r" %
                                (f, marker, seen_markers[f][marker], uid,
                                 model.journal.get(marker)))
            seen_markers[f][marker] = uid
        for (pf, uid), v in model.present.items():
            if pf != f:
                continue
            if uid not in msgs:
                if v.get("maybe_gone"):
                    continue
                problems.append("%s UID %d (%s): OK'd, missing after the "
                                "crash; %r" % (f, uid, v["marker"],
                                               model.journal.get(
                                                   v["marker"])))
                continue
            got = msgs[uid][0] - {"\\Recent"}
            if v["flags"] is not None and got != v["flags"]:
                problems.append("%s UID %d (%s): flags %s, OK'd %s" %
                                (f, uid, v["marker"], sorted(got),
                                 sorted(v["flags"])))
        for marker, uid in seen_markers[f].items():
            if (f, uid) not in model.present and \
                    marker not in model.maybe[f]:
                problems.append("%s UID %d: %s was never sent there" %
                                (f, uid, marker))
        # the files: whole, one per message, system flags in the name
        files = maildir_files(srv, f)
        for marker, lst in files.items():
            if marker is None:
                problems.append("%s: file(s) without marker: %r" %
                                (f, [n for n, _ in lst]))
                continue
            if len(lst) != 1:
                problems.append("%s: %s in %d files" % (f, marker, len(lst)))
            for name, data in lst:
                if crlf(data) != model.bytes.get(marker):
                    problems.append("%s: %s half written (%d bytes)" %
                                    (f, name, len(data)))
            if marker not in seen_markers[f]:
                problems.append("%s: file of %s not served over IMAP" %
                                (f, marker))
        for marker, uid in seen_markers[f].items():
            flags = state[f][2][uid][0]
            want = "".join(sorted(SYSTEM_LETTERS[x] for x in flags
                                  if x in SYSTEM_LETTERS))
            for name, _ in files.get(marker, []):
                info = name.split(":2,")[1] if ":2," in name else ""
                have = "".join(sorted(c for c in info if c in "DFRST"))
                if have != want:
                    problems.append("%s: %s file %s, IMAP flags %s" %
                                    (f, marker, name, sorted(flags)))
    pop = pop3_fetch_all(srv, ALICE)
    pop_markers = sorted(MARK_RE.search(m).group(1).decode()
                         for _, m in pop if MARK_RE.search(m))
    if pop_markers != sorted(seen_markers["INBOX"]) or \
            len(pop) != len(pop_markers):
        problems.append("POP3 INBOX %d messages %r, IMAP %r" %
                        (len(pop), pop_markers[:10],
                         sorted(seen_markers["INBOX"])[:10]))
    assert not problems, "%s: %d problems:\n%s" % (
        where, len(problems), "\n".join(problems[:40]))
    # adopt: what the server holds now is the new truth
    model.present = {}
    for f, (_, _, msgs) in state.items():
        for uid, (flags, body) in msgs.items():
            marker = MARK_RE.search(body).group(1).decode()
            model.present[(f, uid)] = {"marker": marker,
                                       "flags": flags - {"\\Recent"}}
    model.maybe = {f: set() for f in FOLDERS}
    model.busy = set()


def test_inv_i1_concurrent_imap_writes_without_crash(make_server):
    """The same clients, stopped instead of killed: what the crash test
    finds that this one finds too is a concurrency bug, not a crash one."""
    run_rounds(make_server)


def test_inv_d1_i1_kill9_during_imap_writes(make_server):
    run_rounds(make_server, interrupt=lambda srv, rnd: srv.crash(),
               after=lambda srv: srv.start())


def run_rounds(make_server, interrupt=None, after=None, rounds=ROUNDS):
    """rounds of THREADS clients writing; in each, interrupt(srv, rnd)
    strikes (a kill -9 of the daemon or of one child) once the clients
    have some OKs, and after(srv) brings postd back before every promise
    is checked."""
    srv = make_server(overrides={"workers": "2"})
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=10)
    c.login(ALICE, srv.users[ALICE])
    for f in FOLDERS[1:]:
        assert c.create(f)[0] == "OK"
    c.logout()
    base = seed_base()
    model = Model()
    verify(srv, model, [base], 0)
    rnd = random.Random(base)
    total_oks = 0
    for rno in range(1, rounds + 1):
        seeds = [base + rno * 100 + t for t in range(THREADS)]
        stop = threading.Event()
        clients = [Client(srv, model, t, s, stop)
                   for t, s in enumerate(seeds)]
        for cl in clients:
            cl.start()
        deadline = time.monotonic() + 5
        while model.oks < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rnd.uniform(0.05, 0.5))
        if interrupt is not None:
            interrupt(srv, rnd)
        stop.set()
        for cl in clients:
            cl.join(30)
            assert not cl.is_alive(), "client hung (seed %d)" % base
        total_oks += model.oks
        model.oks = 0
        if after is not None:
            after(srv)
        verify(srv, model, [base] + seeds, rno)
    assert total_oks >= rounds * 3, \
        "only %d OKs in %d rounds (seed %d)" % (total_oks, rounds, base)


# -- a COPY into a folder another session is syncing ---------------------

# mail_index.c idx_copy_into() used to link the copies into the target's
# new/ or cur/ before it took the target's lock. A session syncing the
# target in that window scanned the Maildir, found the new file and logged
# an A record for it; the COPY then logged its own A for the same file:
# one file, two UIDs, in one folder (seen: all 4,000 of a 4,000-message
# COPY). It now takes the target's lock before the first linkat().
def test_copy_into_a_busy_folder_gives_each_copy_one_uid(make_server):
    """INV-I1: a message COPYed into a folder exists there once, under the
    UID COPYUID named, even while another session syncs that folder. One
    COPY of 4,000 messages keeps its links unlocked longer than the 50 ms
    a notified session waits before it syncs. Several syncing sessions:
    one on the copier's own worker waits for the COPY to end."""
    import imaplib
    srv = make_server(overrides={"workers": "3"})
    n = 4000
    md = srv.maildir(ALICE)
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=60)
    c.login(ALICE, srv.users[ALICE])
    assert c.create("Busy")[0] == "OK"
    first = os.path.join(md, "tmp", "one")
    with open(first, "wb") as f:
        f.write(b"Subject: copy me\n\nbody\n")
    for i in range(n):
        os.link(first, os.path.join(md, "new", "1700000000.M%dP1.busy,S=24"
                                    ",W=27" % i))
    os.unlink(first)
    stop = threading.Event()

    def syncer():
        s = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=60)
        s.login(ALICE, srv.users[ALICE])
        s.select("Busy")
        while not stop.is_set():
            s.noop()
        s.logout()

    syncers = [threading.Thread(target=syncer, daemon=True)
               for _ in range(6)]
    for t in syncers:
        t.start()
    typ, data = c.select("INBOX")
    assert typ == "OK" and int(data[0]) == n, data
    try:
        typ, data = c.uid("COPY", "1:*", "Busy")
        assert typ == "OK", data
    finally:
        stop.set()
        for t in syncers:
            t.join(30)
    files = len(os.listdir(os.path.join(md, ".Busy", "new"))) + \
        len(os.listdir(os.path.join(md, ".Busy", "cur")))
    typ, data = c.select("Busy", readonly=True)
    exists = int(data[0])
    typ, data = c.uid("SEARCH", "ALL")
    c.logout()
    uids = [int(x) for x in data[0].split()]
    assert files == n and exists == n and len(uids) == n, \
        "COPY of %d messages: %d files in Busy, EXISTS %d, %d UIDs " \
        "(a file indexed twice)" % (n, files, exists, len(uids))


# -- the index lost or damaged ---------------------------------------------

def folder_state(srv, folder):
    """(UIDVALIDITY, {uid: marker}, keywords by marker) from a new
    session."""
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=20)
    c.login(ALICE, srv.users[ALICE])
    try:
        typ, data = c.select('"%s"' % folder, readonly=True)
        assert typ == "OK", data
        uidv = int(c.response("UIDVALIDITY")[1][0])
        typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        assert typ == "OK", data
        out = {}
        for uid, (flags, body) in parse_fetch(data).items():
            out[uid] = MARK_RE.search(body).group(1).decode()
        return uidv, out
    finally:
        c.logout()


def fill_folder(srv, folder, seed):
    """Ten messages, the fourth expunged, keywords on two; returns the
    UIDs it saw (uid -> marker, expunged ones included)."""
    import imaplib
    rnd = random.Random(seed)
    c = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=20)
    c.login(ALICE, srv.users[ALICE])
    if folder != "INBOX":
        assert c.create(folder)[0] == "OK"
    seen = {}
    for i in range(10):
        marker = "c-%d-7-%d" % (seed, i)
        typ, data = c.append(folder, None, None, make_message(marker, rnd))
        assert typ == "OK", data
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        seen[uid] = marker
    c.select(folder)
    uids = sorted(seen)
    assert c.uid("STORE", str(uids[1]), "+FLAGS", "($Done \\Seen)")[0] == "OK"
    assert c.uid("STORE", str(uids[2]), "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert c.uid("EXPUNGE", str(uids[2]))[0] == "OK"
    # one more after the expunge: its UID is above the expunged one
    marker = "c-%d-7-late" % seed
    typ, data = c.append(folder, None, None, make_message(marker, rnd))
    assert typ == "OK", data
    seen[int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))] = marker
    c.logout()
    return seen, uids[2]


def damage(path, how):
    log = os.path.join(path, "postd-imap.log")
    if how == "log_deleted":
        os.unlink(log)
    elif how == "all_index_files_deleted":
        # the folder's own files; the user's postd-imap.uidvalidity-root
        # (in INBOX's directory) stays
        for n in os.listdir(path):
            if n.startswith("postd-imap.") and not n.endswith("-root"):
                os.unlink(os.path.join(path, n))
    elif how == "last_record_cut":
        data = open(log, "rb").read()
        start = data.rstrip(b"\n").rfind(b"\n") + 1
        os.truncate(log, start + (len(data) - start) // 2)
    elif how == "early_record_cut":
        # in the middle of the second message's A record: what followed
        # (the other messages, the expunge) is lost with it
        data = open(log, "rb").read()
        starts = [m.start() for m in re.finditer(rb"^A ", data, re.M)]
        assert len(starts) > 3, data[:500]
        end = data.index(b"\n", starts[1])
        os.truncate(log, (starts[1] + end) // 2)
    elif how == "garbage_line":
        with open(log, "ab") as f:
            f.write(b"\x7fELF garbage that is no record 1 2 3\n")
    elif how == "garbage_nul":
        with open(log, "ab") as f:
            f.write(b"A 99 \x00\x00\x00\n")
    elif how == "unreadable":
        os.chmod(log, 0)
    elif how == "a_directory":
        os.unlink(log)
        os.mkdir(log)
    else:
        raise AssertionError(how)


# what imap-index.md promises: a lost log, a complete line that does not
# parse, and a log whose NEXTUID is below the one handed out
# (postd-imap.uidnext) are rebuilt under a larger UIDVALIDITY; a crash's
# torn last record (no final LF) is ignored and the UIDVALIDITY stays.
REBUILDS = {"log_deleted": True, "all_index_files_deleted": True,
            "last_record_cut": False, "early_record_cut": True,
            "garbage_line": True, "garbage_nul": True, "unreadable": True,
            "a_directory": True}


# A log cut inside an early record reads like a crash's torn tail (no final
# LF), but the records after the cut are gone too: without a NEXTUID kept
# outside the log (postd-imap.uidnext), the rescan would hand UIDs that
# clients saw to other messages under the same UIDVALIDITY (INV-I1). The
# mark tells, and the folder is rebuilt under a new UIDVALIDITY.


def damage_params():
    return sorted(REBUILDS)


@pytest.mark.parametrize("folder", ["INBOX", "Work"])
@pytest.mark.parametrize("how", damage_params())
def test_damaged_index_still_serves_every_message(make_server, how, folder):
    srv = make_server()
    seed = seed_base()
    seen, expunged = fill_folder(srv, folder, seed)
    uidv, before = folder_state(srv, folder)
    path = folder_dir(srv, folder)
    mark = srv.log_mark()
    damage(path, how)
    try:
        uidv2, after = folder_state(srv, folder)
        # a second session: the repaired index serves the same
        uidv3, again = folder_state(srv, folder)
    finally:
        if how == "unreadable" and os.path.exists(
                os.path.join(path, "postd-imap.log")):
            os.chmod(os.path.join(path, "postd-imap.log"), 0o600)
    where = "%s on %s, seed %d" % (how, folder, seed)
    assert sorted(after.values()) == sorted(before.values()), \
        "%s: served %r, before %r" % (where, after, before)
    assert (uidv3, again) == (uidv2, after), where
    if REBUILDS[how]:
        assert uidv2 > uidv, "%s: UIDVALIDITY %d -> %d after a rebuild" % (
            where, uidv, uidv2)
    else:
        assert uidv2 == uidv, "%s: UIDVALIDITY %d -> %d, the doc says a " \
            "record cut short is ignored" % (where, uidv, uidv2)
        for uid, marker in after.items():
            assert seen.get(uid, marker) == marker, \
                "%s: UID %d was %s, now %s (INV-I1)" % (
                    where, uid, seen[uid], marker)
            assert uid != expunged, "%s: expunged UID %d reused" % (
                where, uid)
    assert "died" not in srv.log_since(mark), where


CAUSES = {
    "log_deleted": r"index.*(missing|lost|No such file|deleted)",
    "all_index_files_deleted": r"index.*(missing|lost|No such file|deleted)",
    "garbage_line": r"index.*(corrupt|not parse|invalid|bad record)",
    "garbage_nul": r"index.*(corrupt|not parse|invalid|NUL|bad record)",
    "unreadable": r"index.*Permission denied",
    "a_directory": r"index.*(Is a directory|not a regular file)",
}


@pytest.mark.parametrize("how", sorted(CAUSES))
def test_damaged_index_logs_its_cause(make_server, how):
    srv = make_server()
    fill_folder(srv, "Work", 1)
    mark = srv.log_mark()
    damage(folder_dir(srv, "Work"), how)
    try:
        folder_state(srv, "Work")
    except AssertionError:
        pass  # serving is the other test's business
    lines = [ln for ln in srv.log_since(mark).splitlines()
             if re.search(CAUSES[how], ln)]
    assert lines, "%s: no log line naming the cause; log:\n%s" % (
        how, srv.log_since(mark)[-2000:])



def _noop_until_closed(r, tries=3):
    """NOOPs until the server closes; returns every line it sent."""
    seen = []
    for i in range(tries):
        try:
            r.send("n%d NOOP\r\n" % i)
            while True:
                ln = r.line()
                seen.append(ln)
                if ln.startswith("n%d " % i):
                    break
        except (EOFError, OSError):
            return seen, True
    return seen, False


@pytest.mark.parametrize("rebuilt_by", ["this_session", "another_session"])
def test_selected_session_ends_when_its_uidvalidity_changes(make_server,
                                                           rebuilt_by):
    """RFC 9051 2.3.1.1: UIDVALIDITY never changes within a session. When
    the index of the selected folder is lost and rebuilt under a new one,
    the UIDs this session told are void: it is closed with BYE, never
    told the rebuilt folder's messages as if they were its own (a client
    would then STORE or EXPUNGE by UIDs that name other messages)."""
    from test_imap_basic import Raw
    from conftest import ALICE_PW
    srv = make_server()
    for i in range(3):
        srv.deliver(ALICE, b"Subject: v%d\r\n\r\nbody %d\r\n" % (i, i))
    r = Raw(srv.imap_port)
    assert r.cmd("a1", "LOGIN %s %s" % (ALICE, ALICE_PW))[1].startswith(
        "a1 OK")
    lines, tagged = r.cmd("a2", "SELECT INBOX")
    assert tagged.startswith("a2 OK"), tagged
    uidv = [ln for ln in lines if "[UIDVALIDITY " in ln]
    assert uidv, lines
    os.unlink(os.path.join(srv.maildir(), "postd-imap.log"))
    if rebuilt_by == "another_session":
        o = Raw(srv.imap_port)
        o.cmd("b1", "LOGIN %s %s" % (ALICE, ALICE_PW))
        lines, tagged = o.cmd("b2", "SELECT INBOX")
        assert tagged.startswith("b2 OK"), tagged
        assert uidv[0] not in lines, lines  # a new UIDVALIDITY
        o.cmd("b3", "LOGOUT")
        o.close()
    mark = srv.log_mark()
    seen, closed = _noop_until_closed(r)
    r.close()
    assert closed, "session goes on after its UIDVALIDITY changed: %r" % seen
    assert any(ln.startswith("* BYE ") for ln in seen), seen
    assert not any(ln.endswith(" EXISTS") for ln in seen), seen
    srv.wait_log(r"refused .*UIDVALIDITY", since=mark)
    assert "died" not in srv.log_since(mark)
