"""The IMAP server under test, for tests that must also hold against Dovecot.

The fixture `imap_server` yields an ImapTarget: postd by default, or a
private Dovecot (IMAP on 127.0.0.1, IMAPS with the tests' certificate, the
same users, the same Maildir layout data/mail/DOMAIN/LOCAL) when
POSTD_IMAP_REFERENCE=dovecot (or POSTD_TEST_REFERENCE=dovecot) is set.
Running a test against Dovecot proves that the test's own logic is right
before postd's answer is trusted; the test bodies use only what both
servers offer (imap_port, imaps_port, ca, users, deliver(), imap()).

Verification inside the tests goes through Python's imaplib (login with
the user's own password), never through the server's files, so that the
same assertion means the same thing for both servers.
"""

import contextlib
import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

import conftest
from conftest import ALICE, USERS, free_port

REFERENCE = (os.environ.get("POSTD_IMAP_REFERENCE") or
             os.environ.get("POSTD_TEST_REFERENCE") or "")
DOVECOT = "/usr/sbin/dovecot"


class ImapTarget:
    """What a test may rely on, whichever server runs behind it."""

    kind = "?"
    host = "127.0.0.1"
    tls_name = "localhost"  # the name in the test certificate

    def password(self, user=ALICE):
        return self.users[user]

    def imap(self, user=ALICE, tls=False, login=True):
        """An imaplib session (IMAPS when tls), logged in as user."""
        if tls:
            ctx = ssl.create_default_context(cafile=self.ca)
            c = imaplib.IMAP4_SSL(self.tls_name, self.imaps_port,
                                  ssl_context=ctx, timeout=20)
        else:
            c = imaplib.IMAP4(self.host, self.imap_port, timeout=20)
        if login:
            typ, data = c.login(user, self.password(user))
            assert typ == "OK", data
        return c

    # -- checks through IMAP ------------------------------------------------
    @contextlib.contextmanager
    def session(self, user=ALICE):
        c = self.imap(user)
        try:
            yield c
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    def messages(self, mailbox="INBOX", user=ALICE):
        """{uid: (flags set, full message bytes)} of a mailbox, read with
        BODY.PEEK so that reading sets no flag."""
        with self.session(user) as c:
            typ, data = c.select(imap_quote(mailbox), readonly=True)
            assert typ == "OK", (mailbox, data)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            return parse_fetch(data)

    def create(self, mailbox, user=ALICE):
        with self.session(user) as c:
            typ, data = c.create(imap_quote(mailbox))
            assert typ == "OK", (mailbox, data)

    def append(self, mailbox, data, flags="", user=ALICE):
        with self.session(user) as c:
            typ, resp = c.append(imap_quote(mailbox), flags or None, None,
                                 data)
            assert typ == "OK", (mailbox, resp)

    def store(self, mailbox, uid, op, flags, user=ALICE):
        """UID STORE uid op (flags), e.g. store("INBOX", 3, "+FLAGS",
        "\\Answered")."""
        with self.session(user) as c:
            typ, data = c.select(imap_quote(mailbox))
            assert typ == "OK", (mailbox, data)
            typ, data = c.uid("STORE", str(uid), op, "(%s)" % flags)
            assert typ == "OK", data

    def mailboxes(self, user=ALICE):
        with self.session(user) as c:
            typ, data = c.list()
            assert typ == "OK", data
            return sorted(list_name(x) for x in data if x)


def imap_quote(name):
    return '"%s"' % name.replace("\\", "\\\\").replace('"', '\\"')


def list_name(item):
    """The mailbox name of one untagged LIST reply as imaplib gives it."""
    s = item.decode() if isinstance(item, bytes) else item[0].decode()
    m = re.match(r'\((?P<attrs>[^)]*)\) (?P<sep>"[^"]*"|NIL) (?P<name>.*)$',
                 s)
    assert m, s
    name = m.group("name")
    if name.startswith('"'):
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return name


def parse_fetch(data):
    """imaplib's FETCH (UID FLAGS BODY[]) reply as {uid: (flags, body)}.
    UID and FLAGS may come before the literal or after it (in the bytes
    item that imaplib gives after the tuple)."""
    out = {}
    for i, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        tail = data[i + 1] if i + 1 < len(data) and \
            isinstance(data[i + 1], bytes) else b""
        meta = item[0] + b" " + tail
        uid = int(re.search(rb"UID (\d+)", meta).group(1))
        m = re.search(rb"FLAGS \(([^)]*)\)", meta)
        flags = set(m.group(1).decode().split()) if m else set()
        out[uid] = (flags, item[1])
    return out


# --------------------------------------------------------------------------
# postd
# --------------------------------------------------------------------------

class PostdImap(ImapTarget):
    kind = "postd"

    def __init__(self, srv):
        self.srv = srv
        for attr in ("imap_port", "imaps_port"):
            if not hasattr(srv, attr):
                pytest.fail("PostdServer has no %s: this tree does not "
                            "serve IMAP yet (listen.imap/listen.imaps)" % attr)
        self.imap_port = srv.imap_port
        self.imaps_port = srv.imaps_port
        self.ca = srv.ca
        self.users = srv.users
        self.base = srv.base

    def deliver(self, user, data):
        self.srv.deliver(user, data)

    def log(self):
        return self.srv.log()


# --------------------------------------------------------------------------
# Dovecot, the reference
# --------------------------------------------------------------------------

DOVECOT_HEAD = """\
# private reference Dovecot for the postd IMAP tests (imapserver.py)
protocols = imap
listen = 127.0.0.1
"""
DOVECOT_TAIL = """\
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {p1}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {p2}
    ssl = yes
  }}
}}
{extra}
"""


class DovecotImap(ImapTarget):
    kind = "dovecot"

    def __init__(self, tls, users=None, extra_conf=""):
        self.tls = tls
        self.ca = tls["ca"]
        self.base = tempfile.mkdtemp(prefix="postd-imapref-")
        os.chmod(self.base, 0o755)
        self.data_dir = os.path.join(self.base, "data")
        self.users_file = os.path.join(self.base, "users")
        self.log_path = os.path.join(self.base, "dovecot.log")
        self.conf = os.path.join(self.base, "dovecot.conf")
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.users = dict(USERS if users is None else users)
        self.proc = None
        conftest.dovecot_prepare_data(self.data_dir)
        with open(self.users_file, "w") as f:
            for name, pw in self.users.items():
                f.write(conftest.dovecot_user_line(name, pw))
        run = os.path.join(self.base, "run")
        os.makedirs(run)
        tail = DOVECOT_TAIL.format(p1=self.imap_port, p2=self.imaps_port,
                                   extra=extra_conf)
        with open(self.conf, "w") as f:
            f.write(conftest.dovecot_conf(
                DOVECOT_HEAD, tail, run, "postd-imapref-%d" % self.imap_port,
                self.log_path, tls, self.data_dir, self.users_file))

    # conftest._dovecot_deliver writes into maildir(addr) under data_dir
    def maildir(self, user=ALICE):
        local, domain = user.split("@")
        return os.path.join(self.data_dir, "mail", domain, local)

    def deliver(self, user, data):
        conftest._dovecot_deliver(self, user, data)

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, cwd=self.base,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("dovecot exited with %s; log:\n%s" %
                            (self.proc.returncode, self.log()[-3000:]))
            try:
                for port in (self.imap_port, self.imaps_port):
                    socket.create_connection((self.host, port), 2).close()
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("dovecot not listening after 15s; log:\n" +
                    self.log()[-3000:])

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def log(self):
        return conftest.read_log(self.log_path)

    def cleanup(self):
        if not os.environ.get("POSTD_TEST_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)


def dovecot_available():
    return os.access(DOVECOT, os.X_OK)


@contextlib.contextmanager
def reference_dovecot(tls, users=None, extra_conf=""):
    if not dovecot_available():
        pytest.skip("reference mode asked for, but dovecot is not installed "
                    "(apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        pytest.skip("the reference Dovecot runs mail as nobody: needs root")
    d = DovecotImap(tls, users=users, extra_conf=extra_conf)
    try:
        yield d.start()
    finally:
        d.stop()
        d.cleanup()


@pytest.fixture
def imap_server(request, tls_files):
    """postd serving IMAP and IMAPS on private ports (or, with
    POSTD_IMAP_REFERENCE=dovecot, the reference Dovecot)."""
    if REFERENCE == "dovecot":
        with reference_dovecot(tls_files) as d:
            yield d
        return
    make_server = request.getfixturevalue("make_server")
    yield PostdImap(make_server())
