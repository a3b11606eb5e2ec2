"""Crash test (INV-D1, INV-D3, INV-D4): kill -9 the whole daemon while
20 clients deliver; after a restart on the same data_dir every message
that got 250 is in each recipient's Maildir exactly once and whole, no
partial (tmp/) file is visible over POP3, and UIDL/RETR work for all."""

import os
import random
import re
import smtplib
import threading
import time

from conftest import DOMAIN
from pop3util import wire
from smtputil import check_trace, pop3_fetch_all

CLIENTS = 20
RUN_SECONDS = 3.0
USERS = ["alice@" + DOMAIN, "bob@" + DOMAIN, "carol@" + DOMAIN]
SENDER = "load@remote.example"
MARKER_RE = re.compile(rb"X-Crash-Marker: (crash-\d+-\d+-[0-9a-f]+)")


def make_message(tid, n, rnd):
    marker = "crash-%d-%d-%s" % (tid, n, "%08x" % rnd.getrandbits(32))
    size = rnd.choice([200, 1000, 2000, 5000, 20000, 100000])
    line = ("%s " % marker + "0123456789abcdef" * 4 + "\n")
    body = line * max(1, size // len(line))
    msg = ("From: load <%s>\nTo: users\nSubject: %s\n"
           "Message-ID: <%s@load.test>\nX-Crash-Marker: %s\n\n%s"
           ".dot line %d\nend %s\n" % (SENDER, marker, marker, marker, body,
                                        n, marker)).encode()
    return marker, wire(msg)


class Client(threading.Thread):
    def __init__(self, srv, tid, stop):
        super().__init__(daemon=True)
        self.srv = srv
        self.tid = tid
        self.stop = stop
        self.rnd = random.Random(tid * 7919)
        self.acked = {}  # marker -> (rcpts, msg)
        self.sent = {}   # every attempted marker -> (rcpts, msg)
        self.errors = []

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                c = smtplib.SMTP("127.0.0.1", self.srv.smtp_port,
                                 local_hostname="load%d.example" % self.tid,
                                 timeout=10)
            except OSError as e:
                self.errors.append(repr(e))
                time.sleep(0.05)
                continue
            try:
                for _ in range(self.rnd.randint(1, 8)):
                    if self.stop.is_set():
                        break
                    n += 1
                    marker, msg = make_message(self.tid, n, self.rnd)
                    rcpts = self.rnd.sample(USERS, self.rnd.randint(1, 3))
                    self.sent[marker] = (rcpts, msg)
                    refused = c.sendmail(SENDER, rcpts, msg)
                    # sendmail returned: the final reply was 250
                    assert refused == {}, refused
                    self.acked[marker] = (rcpts, msg)
                c.quit()
            except (smtplib.SMTPException, OSError) as e:
                self.errors.append(repr(e))
            finally:
                c.close()


def test_inv_d1_d4_kill9_during_delivery(make_server):
    srv = make_server(overrides={"workers": "2"})
    stop = threading.Event()
    clients = [Client(srv, i, stop) for i in range(CLIENTS)]
    for cl in clients:
        cl.start()
    time.sleep(RUN_SECONDS)
    acked_before_kill = sum(len(cl.acked) for cl in clients)
    pids = srv.crash()
    stop.set()
    for cl in clients:
        cl.join(15)
        assert not cl.is_alive(), "client thread hung"
    acked = {}
    sent = {}
    for cl in clients:
        acked.update(cl.acked)
        sent.update(cl.sent)
    assert len(pids) >= 3, "parent, auth and workers expected: %r" % pids
    assert acked_before_kill >= 20, \
        "only %d messages accepted in %.0fs before the kill (errors: %r)" % (
            acked_before_kill, RUN_SECONDS,
            [e for cl in clients for e in cl.errors][:5])
    assert len(acked) >= acked_before_kill

    srv.start()

    # Count the files as the filesystem has them, before POP3 looks.
    files = {}
    for u in USERS:
        names = srv.stored_messages(u)
        files[u] = len(names)
        tmp = os.path.join(srv.maildir(u), "tmp")
        # anything left in tmp/ must stay invisible (checked below)
        files[u + ":tmp"] = len(os.listdir(tmp)) if os.path.isdir(tmp) \
            else 0

    problems = []
    for u in USERS:
        msgs = pop3_fetch_all(srv, u)
        if len(msgs) != files[u]:
            problems.append("%s: POP3 STAT %d, new/+cur/ hold %d (tmp/ %d)" %
                            (u, len(msgs), files[u], files[u + ":tmp"]))
        uidls = [uid for uid, _ in msgs]
        if len(set(uidls)) != len(uidls):
            problems.append("%s: duplicate UIDLs" % u)
        seen = {}
        for uid, m in msgs:
            found = MARKER_RE.search(m)
            if not found:
                problems.append("%s: message %s without marker (partial?):"
                                " %r" % (u, uid, m[:300]))
                continue
            marker = found.group(1).decode()
            seen[marker] = seen.get(marker, 0) + 1
            rcpts, want = sent.get(marker, (None, None))
            if want is None:
                problems.append("%s: unknown marker %s" % (u, marker))
                continue
            if u not in rcpts:
                problems.append("%s: got %s meant for %r" % (u, marker,
                                                              rcpts))
            try:
                rest = check_trace(m, SENDER, "ESMTP")
            except AssertionError as e:
                problems.append("%s: %s: bad trace: %s" % (u, marker, e))
                continue
            if rest != want:
                problems.append("%s: %s stored %d bytes, sent %d (partial "
                                "or damaged)" % (u, marker, len(rest),
                                                 len(want)))
        for marker, count in seen.items():
            if count > 1:
                problems.append("%s: %s present %d times" % (u, marker,
                                                             count))
        for marker, (rcpts, _) in acked.items():
            if u in rcpts and seen.get(marker, 0) != 1:
                problems.append("%s: %s got 250 but is present %d times "
                                "(INV-D1)" % (u, marker,
                                              seen.get(marker, 0)))
    assert not problems, "%d problems (of %d acked, %d sent):\n%s" % (
        len(problems), len(acked), len(sent), "\n".join(problems[:40]))

    # The daemon still works after the restart.
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        c.sendmail(SENDER, [USERS[0]], wire(b"Subject: after\n\nok\n"))
