"""Fixtures that run the real postd daemon for integration tests.

Run: /usr/bin/python3 -m pytest -q tests/integration
Env: POSTD_BUILD (default: build/ at the top of the repository) holds src/daemon/postd and
     src/cli/postctl.
     POSTD_TEST_REFERENCE=dovecot runs the client side of the suite against
     a private Dovecot instead (only to check the tests' own logic; tests
     of postd-specific texts and logs then fail, as expected).

Each PostdServer gets its own directory (mkdtemp, mode 0755 so the
unprivileged `user` can reach data_dir), free ports (pop3, pop3s, smtp,
submission, submissions), a config file, users
added with `postctl user add` and mail delivered with `postctl deliver`.
The daemon runs with -f; its stderr is the log file. On teardown it gets
SIGTERM, and the test fails if it crashed, left children behind, or wrote
sanitizer reports to its log.
"""

import contextlib
import getpass
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import pop3util

BUILD = os.environ.get(
    "POSTD_BUILD",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build"))
POSTD = os.path.join(BUILD, "src/daemon/postd")
POSTCTL = os.path.join(BUILD, "src/cli/postctl")
REFERENCE = os.environ.get("POSTD_TEST_REFERENCE", "")
IS_ROOT = os.geteuid() == 0
RUN_USER = "nobody" if IS_ROOT else getpass.getuser()

DOMAIN = "example.org"
USERS = {
    "alice@example.org": "alice-Secret-1",
    "bob@example.org": "bob-Secret-2",
    "carol@example.org": "carol-Secret-3",
}
ALICE = "alice@example.org"
ALICE_PW = USERS[ALICE]

# Output that means the daemon misbehaved even if the test passed.
CRASH_RE = re.compile(
    r"AddressSanitizer|runtime error:|Segmentation fault|"
    r"\b(SIGSEGV|SIGBUS|SIGILL|SIGFPE)\b|stack smashing|"
    r"double free|free\(\): invalid|malloc\(\): |"
    # the master's report of a worker or auth process that died
    # unexpectedly (fatal(), abort, signal)
    r"of the running generation died")

TEST_TIMEOUT = int(os.environ.get("POSTD_TEST_TIMEOUT", "120"))

_RUNNING = []  # servers currently running, for per-test crash checks
_OPEN_CONNS = []  # client connections made by the current test


_PORTS_GIVEN = set()


def free_port():
    """A free loopback port not handed out before in this test run.

    The kernel may give the same ephemeral port to two binds in a row once
    the first socket is closed, so remember every port given: two
    listeners of one server must never be configured on the same port.
    """
    for _ in range(1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port
    raise RuntimeError("no free loopback port found")


# --------------------------------------------------------------------------
# TLS material: a CA and a server cert for localhost + 127.0.0.1, once.
# --------------------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


@pytest.fixture(scope="session")
def tls_files():
    d = tempfile.mkdtemp(prefix="postd-test-tls-")
    os.chmod(d, 0o755)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=postd test CA", "-keyout", "ca.key",
             "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             "/CN=localhost", "-keyout", "key.pem", "-out", "server.csr",
             cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "cert.pem", cwd=d)
    os.chmod(os.path.join(d, "key.pem"), 0o600)
    os.chmod(os.path.join(d, "ca.pem"), 0o644)
    os.chmod(os.path.join(d, "cert.pem"), 0o644)
    files = {"dir": d, "ca": os.path.join(d, "ca.pem"),
             "cert": os.path.join(d, "cert.pem"),
             "key": os.path.join(d, "key.pem")}
    yield files
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------

class PostdServer:
    def __init__(self, tls, overrides=None, users=None):
        self.tls = tls
        self.ca = tls["ca"]
        self.base = tempfile.mkdtemp(prefix="postd-test-")
        os.chmod(self.base, 0o755)
        self.conf = os.path.join(self.base, "postd.conf")
        self.data_dir = os.path.join(self.base, "data")
        self.users_file = os.path.join(self.base, "users")
        self.log_path = os.path.join(self.base, "postd.log")
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.submissions_port = free_port()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.overrides = dict(overrides or {})
        self.proc = None
        self.stopped_rc = None
        self.killed = set()  # children killed on purpose (kill_child)
        self.users = {}
        self.write_config()
        if REFERENCE == "dovecot":
            dovecot_prepare_data(self.data_dir)
        for name, pw in (USERS if users is None else users).items():
            self.add_user(name, pw)

    # -- config -------------------------------------------------------------
    def config_items(self):
        items = {
            "hostname": "localhost",
            "domains": DOMAIN,
            "data_dir": self.data_dir,
            "users_file": self.users_file,
            "tls_cert": self.tls["cert"],
            "tls_key": self.tls["key"],
            "user": RUN_USER,
            "listen.pop3": "127.0.0.1:%d" % self.pop3_port,
            "listen.pop3s": "127.0.0.1:%d" % self.pop3s_port,
            "listen.smtp": "127.0.0.1:%d" % self.smtp_port,
            "listen.submission": "127.0.0.1:%d" % self.submission_port,
            "listen.submissions": "127.0.0.1:%d" % self.submissions_port,
            "listen.imap": "127.0.0.1:%d" % self.imap_port,
            "listen.imaps": "127.0.0.1:%d" % self.imaps_port,
            "auth_default_domain": DOMAIN,
            "auth_failure_delay": "0",
            "workers": "2",
            # The queue runner never asks the machine's DNS: a test that
            # delivers sets dns_servers (tests/integration/remote.py) or a
            # transport; every other remote domain fails temporarily at
            # once (nothing answers on port 9) and its entry stays queued.
            "dns_servers": "127.0.0.1:9",
        }
        for k, v in self.overrides.items():
            if v is None:
                items.pop(k, None)
            else:
                items[k] = v
        return items

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/conftest.py\n")
            for k, v in self.config_items().items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf, 0o644)
        if REFERENCE == "dovecot":
            _write_dovecot_conf(self)

    # -- postctl --------------------------------------------------------------
    def postctl(self, *args, input=None, check=True, timeout=60):
        p = subprocess.run([POSTCTL, "-c", self.conf] + list(args),
                           input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           env=_child_env())
        if check and p.returncode != 0:
            pytest.fail("postctl %s failed (exit %d): %s %s" % (
                " ".join(args), p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace")))
        return p

    def add_user(self, name, pw):
        self.users[name] = pw
        if REFERENCE == "dovecot":
            with open(self.users_file, "a") as f:
                f.write(dovecot_user_line(name, pw))
            return
        self.postctl("user", "add", name, input=(pw + "\n").encode())

    def deliver(self, addr, data, check=True):
        if REFERENCE == "dovecot":
            return _dovecot_deliver(self, addr, data)
        return self.postctl("deliver", addr, input=data, check=check)

    def maildir(self, user=ALICE):
        local, domain = user.split("@")
        return os.path.join(self.data_dir, "mail", domain, local)

    def stored_messages(self, user=ALICE):
        """Names of the message files in new/ and cur/."""
        md = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            if os.path.isdir(p):
                out += [sub + "/" + n for n in os.listdir(p)]
        return sorted(out)

    def clear_mailbox(self, user=ALICE):
        """Removes every message (as another program would) and the index,
        so a test on a shared daemon starts from an empty mailbox."""
        md = self.maildir(user)
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            if os.path.isdir(p):
                for n in os.listdir(p):
                    os.unlink(os.path.join(p, n))
        idx = os.path.join(md, "postd-index")
        if os.path.exists(idx):
            os.unlink(idx)

    # -- process ---------------------------------------------------------------
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        self.stopped_rc = None
        log = open(self.log_path, "ab")
        # The daemon's open-files limit (soft, hard), set in the child
        # only: a test of what postd does when descriptors run out.
        nofile = getattr(self, "nofile", None)
        if REFERENCE == "dovecot":
            argv = ["/usr/sbin/dovecot", "-F", "-c",
                    os.path.join(self.base, "dovecot.conf")]
        else:
            argv = [POSTD, "-f", "-c", self.conf]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            cwd=self.base, start_new_session=True, env=_child_env(),
            preexec_fn=None if nofile is None else
            (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)))
        log.close()
        _RUNNING.append(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("postd exited with %s during start-up; log:\n%s"
                            % (self.proc.returncode, self.log()[-3000:]))
            try:
                with pop3util.Pop3Conn(self.pop3_port, timeout=3) as c:
                    if c.greeting.startswith("+OK"):
                        c.cmd("QUIT")
                        s = socket.create_connection(
                            ("127.0.0.1", self.pop3s_port), timeout=3)
                        s.close()
                        self._wait_smtp_listeners()
                        return
                    last = c.greeting
            except (OSError, pop3util.ServerClosed) as e:
                last = e
            time.sleep(0.05)
        pytest.fail("postd not ready after %.0fs (%r); log:\n%s" % (
            timeout, last, self.log()[-3000:]))

    def _wait_smtp_listeners(self):
        """The SMTP and IMAP listeners are bound by the same parent as
        POP3; a connect (no greeting read) proves they are up."""
        if REFERENCE == "dovecot":
            return
        items = self.config_items()
        for key, port in (("listen.smtp", self.smtp_port),
                          ("listen.submission", self.submission_port),
                          ("listen.submissions", self.submissions_port),
                          ("listen.imap", self.imap_port),
                          ("listen.imaps", self.imaps_port)):
            if items.get(key) != "127.0.0.1:%d" % port:
                continue
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            s.close()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def hup(self):
        self.signal(signal.SIGHUP)

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status (negative: signal)."""
        if self.proc is None or self.stopped_rc is not None:
            return self.stopped_rc
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.proc.wait(5)
            self.stopped_rc = "timeout"
            self._forget()
            pytest.fail("postd did not exit within %.0fs of SIGTERM" % timeout)
        self.stopped_rc = rc
        self._forget()
        # Workers and the auth process are in the daemon's process group
        # (start_new_session): they must go away with the parent.
        deadline = time.monotonic() + 5
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            self._kill_group()
            pytest.fail("postd children still running 5s after the parent "
                        "exited")
        return rc

    def restart(self):
        rc = self.stop()
        assert rc == 0, "postd exit status %r on SIGTERM" % rc
        self.start()

    def _forget(self):
        if self in _RUNNING:
            _RUNNING.remove(self)

    def _group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def _kill_group(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def descendants(self):
        """Pids of every process below the daemon's parent (workers, the
        auth process, their children), from /proc."""
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            # the comm field may hold spaces and parentheses
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        out = []
        todo = [self.proc.pid]
        while todo:
            p = todo.pop()
            for c in children.get(p, []):
                out.append(c)
                todo.append(c)
        return out

    def crash(self):
        """kill -9 of the whole daemon at once (parent, workers, auth
        process) as a power cut would stop it; waits until all are gone.
        Afterwards start() runs it again on the same data_dir."""
        pids = [self.proc.pid] + self.descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for p in pids:  # any that left the process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = [p for p in pids if os.path.exists("/proc/%d" % p) and
                    not _is_zombie(p)]
            if not left and not self._group_alive():
                break
            time.sleep(0.02)
        self._forget()
        return pids

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- log -------------------------------------------------------------------
    def log(self):
        return read_log(self.log_path)

    def log_mark(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, mark):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, regex, since=0, timeout=5.0):
        """Waits for a log line matching regex (after offset since);
        returns the match or fails the test."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(since)
            for line in text.splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() > deadline:
                pytest.fail("no log line matching %r within %.1fs; new log:"
                            "\n%s" % (regex, timeout, text[-3000:]))
            time.sleep(0.05)

    def kill_child(self, pid):
        """kill -9 of one child (a worker, the auth process, the queue
        runner); the parent's report of that death is then expected, not
        a crash."""
        self.killed.add(pid)
        os.kill(pid, signal.SIGKILL)

    def crash_report(self, since=0):
        text = self.log_since(since)
        for m in CRASH_RE.finditer(text):
            line_end = text.find("\n", m.end())
            line = text[text.rfind("\n", 0, m.start()) + 1:
                        len(text) if line_end < 0 else line_end]
            if any("(pid %d) " % p in line and "(signal 9)" in line
                   for p in self.killed):
                continue
            start = max(0, m.start() - 500)
            return text[start:m.start() + 2500]
        return None

    # -- clients ---------------------------------------------------------------
    def ctx(self):
        return pop3util.client_ctx(self.ca)

    def connect(self, tls=False, **kw):
        if tls:
            c = pop3util.Pop3Conn(self.pop3s_port, tls_ctx=self.ctx(), **kw)
        else:
            c = pop3util.Pop3Conn(self.pop3_port, **kw)
        # closed after the test even if it fails half-way, so that the
        # next test on a shared daemon does not find the mailbox locked
        _OPEN_CONNS.append(c)
        return c

    def login(self, user=ALICE, pw=None, tls=False, retry_in_use=3.0):
        """A session in TRANSACTION state (USER/PASS). Retries while the
        mailbox is still locked by a session the test just closed."""
        pw = self.users[user] if pw is None else pw
        deadline = time.monotonic() + retry_in_use
        while True:
            c = self.connect(tls=tls)
            assert c.greeting.startswith("+OK"), c.greeting
            r = c.login(user, pw)
            if r.startswith("+OK"):
                return c
            c.close()
            if "[IN-USE]" in r and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            pytest.fail("login as %s failed: %s" % (user, r))

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2:].split()[0] == "Z"


def _child_env():
    env = dict(os.environ)
    # A leak report at exit would change the exit status of every worker;
    # leaks are the unit tests' business. Set ASAN_OPTIONS to override.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env["LC_ALL"] = "C"
    return env


def finish_server(srv):
    """Teardown: stop and fail on crash, unclean exit or sanitizer output."""
    problems = []
    if srv.proc is not None:
        was_alive = srv.alive()
        if not was_alive and srv.stopped_rc is None:
            problems.append("postd died during the test (exit status %s)" %
                            srv.proc.returncode)
            srv._forget()
        rc = srv.stop()
        if isinstance(rc, int) and rc < 0:
            problems.append("postd exited by signal %d" % -rc)
    report = srv.crash_report()
    if report:
        problems.append("crash/sanitizer output in log:\n" + report)
    if problems:
        log = srv.log()
        keep = os.environ.get("POSTD_TEST_KEEP")
        if not keep:
            srv.cleanup()
        pytest.fail("; ".join(problems) + "\n--- log tail ---\n" + log[-4000:])
    if not os.environ.get("POSTD_TEST_KEEP"):
        srv.cleanup()


@contextlib.contextmanager
def running_server(tls, overrides=None, users=None, start=True):
    srv = PostdServer(tls, overrides=overrides, users=users)
    try:
        if start:
            srv.start()
        yield srv
    finally:
        finish_server(srv)


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------

def _require_binaries():
    if REFERENCE == "dovecot":
        return
    for b in (POSTD, POSTCTL):
        if not os.access(b, os.X_OK):
            pytest.fail("%s not built (set POSTD_BUILD)" % b)


@pytest.fixture
def make_server(tls_files):
    """Factory: make_server(overrides={...}, users={...}, start=True)."""
    _require_binaries()
    stack = contextlib.ExitStack()

    def make(overrides=None, users=None, start=True):
        return stack.enter_context(
            running_server(tls_files, overrides, users, start))

    with stack:
        yield make


@pytest.fixture
def server(make_server):
    """A fresh daemon with the default config for one test."""
    return make_server()


@pytest.fixture(scope="module")
def shared_server(tls_files):
    """One daemon per test module, default config; tests using it must
    leave no session open and call clear_mailbox() before using mail."""
    _require_binaries()
    with running_server(tls_files) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _watch_servers(request):
    """Per test: a time limit, and a crash check of every running daemon
    so that a crash is blamed on the test that caused it."""
    marks = [(s, s.log_mark()) for s in _RUNNING]

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded %ds" % TEST_TIMEOUT)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        left_open = False
        while _OPEN_CONNS:
            c = _OPEN_CONNS.pop()
            if c.sock.fileno() != -1:
                left_open = True
                c.close()
        if left_open:
            time.sleep(0.2)  # let the daemon see EOF and drop its locks
    for srv, mark in marks:
        if srv in _RUNNING and not srv.alive():
            srv._forget()
            pytest.fail("postd died during this test (exit status %s); log:"
                        "\n%s" % (srv.proc.returncode, srv.log()[-3000:]))
        report = srv.crash_report(mark)
        if report:
            pytest.fail("crash/sanitizer output during this test:\n" + report)


def read_log(path):
    """A server's whole log file as text ("" before it exists)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------
# Reference mode: a private Dovecot, to check the tests' client logic.
# --------------------------------------------------------------------------

# What every private reference Dovecot shares (POP3 here, IMAP in
# imapserver.py): its own run directory, the tests' certificate and users
# file (dovecot_user_line()), no failure delay, and Maildirs at
# DATA/mail/DOMAIN/LOCAL owned by nobody (dovecot_prepare_data()).
DOVECOT_CONF_COMMON = """\
base_dir = {run}
state_dir = {run}/state
instance_name = {instance}
log_path = {log}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = {dpa}
auth_mechanisms = plain login
auth_default_realm = example.org
auth_failure_delay = 0
auth_verbose = yes
login_trusted_networks =
mail_location = maildir:{data}/mail/%d/%n
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={data}/mail/%d/%n
}}
service anvil {{
  chroot =
}}
"""


def dovecot_conf(head, tail, run, instance, log, tls, data, users,
                 plaintext=True):
    """A reference Dovecot's configuration: head (protocols, listen), the
    settings every reference run shares, then tail (the protocol's own
    settings and listeners)."""
    return head + DOVECOT_CONF_COMMON.format(
        run=run, instance=instance, log=log, cert=tls["cert"],
        key=tls["key"], dpa="no" if plaintext else "yes", data=data,
        users=users) + tail


def dovecot_prepare_data(data_dir):
    """DATA and DATA/mail, owned by the user Dovecot's mail processes run
    as."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    for d in (data_dir, os.path.join(data_dir, "mail")):
        os.makedirs(d, exist_ok=True)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)


def dovecot_user_line(name, pw):
    """A line of the reference Dovecot's passwd-file."""
    return "%s:{PLAIN}%s\n" % (name, pw)


def _write_dovecot_conf(srv):
    run = os.path.join(srv.base, "dovecot-run")
    os.makedirs(run, exist_ok=True)
    items = srv.config_items()
    pt = items.get("plaintext_auth", "loopback")
    head = "\nprotocols = pop3\nlisten = 127.0.0.1\n"
    tail = """pop3_uidl_format = %f
service pop3-login {{
  inet_listener pop3 {{
    port = {p1}
  }}
  inet_listener pop3s {{
    port = {p2}
    ssl = yes
  }}
}}
""".format(p1=srv.pop3_port, p2=srv.pop3s_port)
    conf = dovecot_conf(head, tail, run, "postd-ref-%d" % srv.pop3_port,
                        srv.log_path, srv.tls, srv.data_dir, srv.users_file,
                        plaintext=pt != "no")
    with open(os.path.join(srv.base, "dovecot.conf"), "w") as f:
        f.write(conf)


_dv_counter = [0]


def _dovecot_deliver(srv, addr, data):
    import pwd
    if "@" not in addr:
        addr += "@" + DOMAIN
    md = srv.maildir(addr)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    _dv_counter[0] += 1
    stored = data.replace(b"\r\n", b"\n")
    name = "%d.M%dP%d.test,S=%d" % (time.time(), _dv_counter[0], os.getpid(),
                                     len(stored))
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(stored)
    nobody = pwd.getpwnam("nobody")
    for root, dirs, files in os.walk(os.path.join(srv.data_dir, "mail")):
        for n in dirs + files:
            os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
    return subprocess.CompletedProcess([], 0, b"", b"")
