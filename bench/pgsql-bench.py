#!/usr/bin/python3
"""bench/pgsql-bench.py: POP3 logins/s with the users in PostgreSQL against
the users file, for postd and for Dovecot, cold and warm, side by side.

    bench/pgsql-bench.py [--quick] [--rounds N] [--keep]
                         [--only postd-file,postd-pgsql,dovecot-file,...]

Needs root (a system user, servers that drop privileges, PostgreSQL run as
`postgres`). Every connection goes to 127.0.0.1 or a Unix socket in the
work folder; every server and the database are stopped when it exits.
See bench/README.md ("Users in PostgreSQL") for what is measured.
"""

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import pgsql_cluster  # noqa: E402

BUILD = os.environ.get("POSTD_BUILD", os.path.join(TOP, "build"))
POSTD = os.path.join(BUILD, "src/daemon/postd")
POSTCTL = os.path.join(BUILD, "src/cli/postctl")
BENCH_USER = "postdbench"
DOMAIN = "bench.test"
PASS = "benchpass"
CLIENTS = 10  # the same for every server
PORTS = {"postd-file": 21130, "postd-pgsql": 21131,
         "dovecot-file": 21132, "dovecot-pgsql": 21133}
SERVERS = list(PORTS)
SCHEMES = [("PLAIN", "lp"), ("SHA512-CRYPT", "ls")]
# Not in any pool: the readiness check logs in as this user, so that it
# warms no cache a measurement depends on.
READY_USER = "ready@" + DOMAIN
# In the database only: a postd that logs it in reads the database.
PROBE_USER = "dbonly@" + DOMAIN


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def run(argv, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", 600)
    return subprocess.run(argv, **kw)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.rounds = args.rounds or (2 if self.quick else 3)
        self.pool = 500 if self.quick else 2000
        self.warm_secs = 2 if self.quick else 5
        self.work = tempfile.mkdtemp(prefix="postd-pgbench-")
        os.chmod(self.work, 0o755)
        self.data = os.path.join(self.work, "data")
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs)
        self.load = os.path.join(self.work, "pop3load")
        self.pg = None
        self.proc = {}  # server -> Popen
        self.vals = {}  # (figure, server) -> [values]
        self.notes = []
        self.failed = False
        self.servers = [s for s in SERVERS
                        if not args.only or s in args.only.split(",")]

    # -- setup ----------------------------------------------------------------
    def setup(self):
        p = run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", self.load,
                 os.path.join(HERE, "pop3load.c"),
                 os.path.join(HERE, "loadgen.c")])
        if p.returncode != 0:
            sys.exit("cannot build pop3load: " + p.stderr.decode())
        try:
            pwd.getpwnam(BENCH_USER)
        except KeyError:
            run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s",
                 "/usr/sbin/nologin", BENCH_USER])
        self.uid = pwd.getpwnam(BENCH_USER).pw_uid
        self.gid = pwd.getpwnam(BENCH_USER).pw_gid
        self.make_users()
        self.make_maildirs()
        self.pg = pgsql_cluster.PgCluster(durable=True)
        self.pg.start()
        self.pg.create_db("postd", schema=os.path.join(TOP, "doc/schema.sql"))
        self.write_postd_confs()
        self.fill_database()
        self.write_dovecot_confs()

    def make_users(self):
        """One users file in passwd-file form for every server: {PLAIN}
        and {SHA512-CRYPT} pools (openssl passwd -6, a random salt each)."""
        p = run(["openssl", "passwd", "-6", "-stdin"],
                input=("%s\n" % PASS * self.pool).encode())
        hashes = p.stdout.decode().split()
        if p.returncode != 0 or len(hashes) != self.pool:
            sys.exit("openssl passwd failed")
        lines = ["%s:{PLAIN}%s" % (READY_USER, PASS)]
        lines += ["lp%d@%s:{PLAIN}%s" % (i, DOMAIN, PASS)
                  for i in range(1, self.pool + 1)]
        lines += ["ls%d@%s:{SHA512-CRYPT}%s" % (i + 1, DOMAIN, h)
                  for i, h in enumerate(hashes)]
        self.users_file = os.path.join(self.work, "users")
        with open(self.users_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        # Dovecot's auth process (user dovecot) reads it too; it holds
        # only bench passwords.
        os.chown(self.users_file, 0, self.gid)
        os.chmod(self.users_file, 0o644)
        # postd-pgsql gets an empty users file: a login it accepts came
        # from the database.
        self.empty_users = os.path.join(self.work, "users.empty")
        open(self.empty_users, "w").close()
        os.chmod(self.empty_users, 0o600)

    def make_maildirs(self):
        names = ["ready", "dbonly"]
        names += ["lp%d" % i for i in range(1, self.pool + 1)]
        names += ["ls%d" % i for i in range(1, self.pool + 1)]
        for n in names:
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(self.data, "mail", DOMAIN, n, sub))
        for root, dirs, _ in os.walk(os.path.join(self.data, "mail")):
            os.chown(root, self.uid, self.gid)
            for d in dirs:
                os.chown(os.path.join(root, d), self.uid, self.gid)
        os.chmod(self.data, 0o755)

    def fill_database(self):
        """The same users, imported with postctl migrate (so the hashes
        are the very strings of the file), plus the probe user."""
        conf = os.path.join(self.work, "postd-pgsql.conf")
        p = run([POSTCTL, "-c", conf, "migrate", "--users", self.users_file])
        if p.returncode != 0:
            sys.exit("postctl migrate failed: %s%s" % (
                p.stdout.decode(), p.stderr.decode()))
        log("database: " + p.stdout.decode().strip())
        self.pg.psql("INSERT INTO users (username, password) VALUES "
                     "('%s', '{PLAIN}%s')" % (PROBE_USER, PASS), db="postd")

    # -- configs --------------------------------------------------------------
    def write_postd_confs(self):
        for srv in ("postd-file", "postd-pgsql"):
            lines = [
                "# generated by bench/pgsql-bench.py",
                "hostname = bench.%s" % DOMAIN,
                "domains = %s" % DOMAIN,
                "data_dir = %s" % self.data,
                "user = %s" % BENCH_USER,
                "listen.pop3 = 127.0.0.1:%d" % PORTS[srv],
                "auth_default_domain = %s" % DOMAIN,
                "plaintext_auth = yes",
                "workers = 0",
                "max_connections = 20000",
                "max_connections_per_peer = 20000",
                "auth_failure_delay = 0",
                "log_level = info",
            ]
            if srv == "postd-file":
                lines.append("users_file = %s" % self.users_file)
            else:
                lines += ["users_file = %s" % self.empty_users,
                          "userdb = pgsql",
                          "pgsql_conninfo = %s" % self.pg.conninfo("postd")]
            with open(os.path.join(self.work, srv + ".conf"), "w") as f:
                f.write("\n".join(lines) + "\n")

    def write_dovecot_confs(self):
        """Dovecot tuned as bench/run.sh tunes it (the sources are cited
        there): high-performance login processes, an auth cache, reused
        mail processes."""
        nproc = os.cpu_count() or 1
        sql_conf = os.path.join(self.work, "dovecot-sql.conf.ext")
        with open(sql_conf, "w") as f:
            # Dovecot escapes %u for SQL itself; CRYPT reads a "$6$" value,
            # and a "{SCHEME}" prefix in the row wins over the default.
            f.write("driver = pgsql\n"
                    "connect = %s\n"
                    "default_pass_scheme = CRYPT\n"
                    "password_query = SELECT username AS user, password "
                    "FROM users WHERE username = '%%u' AND enabled\n"
                    % self.pg.conninfo("postd"))
        os.chmod(sql_conf, 0o644)
        for srv in ("dovecot-file", "dovecot-pgsql"):
            d = os.path.join(self.work, srv)
            os.makedirs(d)
            if srv == "dovecot-file":
                passdb = ("  driver = passwd-file\n  args = scheme=PLAIN "
                          "username_format=%%u %s\n" % self.users_file)
            else:
                passdb = "  driver = sql\n  args = %s\n" % sql_conf
            conf = """# generated by bench/pgsql-bench.py
base_dir = {d}/run
state_dir = {d}/state
instance_name = postd-pgbench-{srv}
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {logs}/{srv}.log
mail_location = maildir:{data}/mail/%d/%n
mail_uid = {user}
mail_gid = {user}
first_valid_uid = {uid}
passdb {{
{passdb}}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={data}/mail/%d/%n
}}
auth_cache_size = 64M
auth_cache_ttl = 1 hours
auth_cache_verify_password_with_worker = yes
pop3_uidl_format = %08Xu%08Xv
pop3_no_flag_updates = yes
protocol pop3 {{
  mail_max_userip_connections = 20000
}}
default_vsz_limit = 1G
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = {nproc}
  client_limit = 2000
}}
service pop3 {{
  service_count = 0
  process_min_avail = {nproc}
  process_limit = 1000
  client_limit = 1
}}
""".format(d=d, srv=srv, logs=self.logs, data=self.data, user=BENCH_USER,
           uid=self.uid, passdb=passdb, port=PORTS[srv], nproc=nproc)
            with open(os.path.join(d, "dovecot.conf"), "w") as f:
                f.write(conf)
            p = run(["doveconf", "-c", os.path.join(d, "dovecot.conf"), "-n"])
            if p.returncode != 0:
                sys.exit("dovecot config rejected: " + p.stderr.decode())

    # -- servers --------------------------------------------------------------
    def available(self, srv):
        """None if srv can be measured here, else why not."""
        if srv.startswith("postd"):
            if not os.access(POSTD, os.X_OK):
                return "no postd at %s (set POSTD_BUILD)" % POSTD
            if srv == "postd-pgsql":
                p = run([POSTD, "-t", "-c",
                         os.path.join(self.work, srv + ".conf")])
                if p.returncode != 0:
                    first = (p.stderr or p.stdout).decode().strip()
                    return "not in this build (postd -t: %s)" % (
                        first.splitlines()[0] if first else "refused")
            return None
        if shutil.which("dovecot") is None:
            return "dovecot is not installed (dovecot-pop3d)"
        if srv == "dovecot-pgsql" and not os.path.exists(
                "/usr/lib/dovecot/modules/auth/libdriver_pgsql.so") and \
                not os.path.exists("/usr/lib/dovecot/modules/"
                                   "libdriver_pgsql.so"):
            return "Dovecot's pgsql driver is not installed (dovecot-pgsql)"
        return None

    def login(self, srv, user, count=1):
        return run([self.load, "login", "-p", str(PORTS[srv]), "-u", user,
                    "-w", PASS, "-c", "1", "-n", str(count), "-t", "5",
                    "-T", "5"], timeout=30).returncode == 0

    def wait_port(self, srv):
        """True once the server answers with a POP3 greeting."""
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", PORTS[srv]),
                                              timeout=2) as c:
                    if c.recv(512).startswith(b"+OK"):
                        return True
            except OSError:
                pass
            if self.proc[srv].poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def start(self, srv, ready_login=True):
        logf = open(os.path.join(self.logs, srv + ".stderr"), "ab")
        if srv.startswith("postd"):
            argv = [POSTD, "-c", os.path.join(self.work, srv + ".conf"), "-f"]
        else:
            argv = ["dovecot", "-c",
                    os.path.join(self.work, srv, "dovecot.conf"), "-F"]
        self.proc[srv] = subprocess.Popen(argv, stdout=logf, stderr=logf)
        logf.close()
        if not ready_login:
            if self.wait_port(srv):
                return True
            self.stop(srv)
            return False
        for _ in range(100):
            if self.login(srv, READY_USER):
                time.sleep(1)  # let pre-forked processes settle
                return True
            if self.proc[srv].poll() is not None:
                break
            time.sleep(0.1)
        self.stop(srv)
        return False

    def stop(self, srv):
        p = self.proc.pop(srv, None)
        if p is None:
            return
        if srv.startswith("dovecot"):
            run(["doveadm", "-c", os.path.join(self.work, srv, "dovecot.conf"),
                 "stop"])
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def cleanup(self):
        for srv in list(self.proc):
            self.stop(srv)
        if self.pg is not None:
            self.pg.stop()
        if self.args.keep or self.failed:
            log("work dir kept: %s (logs in %s)" % (self.work, self.logs))
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- figures --------------------------------------------------------------
    def record(self, figure, srv, value):
        self.vals.setdefault((figure, srv), []).append(value)

    def measure(self, name, srv, args):
        p = run([self.load, "login", "-p", str(PORTS[srv]), "-c",
                 str(CLIENTS), "-w", PASS] + args, timeout=900)
        out = p.stdout.decode()
        with open(os.path.join(self.logs, name + ".out"), "w") as f:
            f.write(out + p.stderr.decode())
        kv = dict(re.findall(r"(\w+)=([0-9.]+)", out))
        if p.returncode != 0:
            self.failed = True
            self.notes.append("%s: %s errors, first: %s" % (
                name, kv.get("errors", "?"),
                (p.stderr.decode().splitlines() or ["?"])[0]))
        log("%s: %s" % (name, out.strip()))
        return kv

    def round(self, r, srv, scheme, pre):
        """Cold: the server and PostgreSQL freshly started, each user of
        the pool logs in once. Warm: the same pool again for a fixed time,
        every user now in whatever cache the server keeps."""
        tmpl = "%s%%u@%s" % (pre, DOMAIN)
        self.pg.restart()
        if not self.start(srv):
            self.failed = True
            self.notes.append("%s did not start (round %d); see %s" % (
                srv, r, self.logs))
            return
        try:
            kv = self.measure("cold-%s-%s-%d" % (scheme, srv, r), srv,
                              ["-u", tmpl, "-U", str(self.pool), "-R",
                               "-n", str(self.pool), "-t", "600"])
            self.record("logins/s cold, %s" % scheme, srv,
                        float(kv.get("rate", 0)))
            self.record("p99 ms cold, %s" % scheme, srv,
                        float(kv.get("p99_ms", 0)))
            kv = self.measure("warm-%s-%s-%d" % (scheme, srv, r), srv,
                              ["-u", tmpl, "-U", str(self.pool), "-R",
                               "-t", str(self.warm_secs)])
            self.record("logins/s warm, %s" % scheme, srv,
                        float(kv.get("rate", 0)))
            self.record("p99 ms warm, %s" % scheme, srv,
                        float(kv.get("p99_ms", 0)))
        finally:
            self.stop(srv)

    def first_logins(self, srv):
        """Every user logs in once, untimed, before the rounds: a
        server's first session on a Maildir builds its index, and the
        servers share the Maildirs, so without this the first server
        measured would pay for indexes the others then find. Cold is
        about the user lookup, not about mail never seen."""
        if not self.start(srv):
            return
        try:
            for _, pre in SCHEMES:
                run([self.load, "login", "-p", str(PORTS[srv]), "-c",
                     str(CLIENTS), "-w", PASS, "-u", "%s%%u@%s" % (pre, DOMAIN),
                     "-U", str(self.pool), "-R", "-n", str(self.pool),
                     "-t", "600"], timeout=900)
        finally:
            self.stop(srv)

    def check_postd_pgsql(self):
        """postd -t accepted the keys; does a login read the database?"""
        # Readiness by greeting: a failed login would make postd delay
        # the next ones from this address (INV-A1).
        if not self.start("postd-pgsql", ready_login=False):
            return "postd did not start with userdb = pgsql; see " + self.logs
        try:
            if not self.login("postd-pgsql", PROBE_USER):
                return ("not in this build (userdb = pgsql is accepted, "
                        "but a user that is only in the database cannot "
                        "log in)")
        finally:
            self.stop("postd-pgsql")
        return None

    def run(self):
        self.t0 = time.time()
        self.load_start = open("/proc/loadavg").read().split()[:3]
        self.setup()
        measured = []
        for srv in self.servers:
            why = self.available(srv)
            if why is None and srv == "postd-pgsql":
                why = self.check_postd_pgsql()
            if why is not None:
                print("%s: %s" % (srv.replace("-", " "), why))
                self.notes.append("%s: %s" % (srv, why))
            else:
                measured.append(srv)
        log("measuring %s; %d rounds, pool %d users per scheme, %d clients" %
            (", ".join(measured), self.rounds, self.pool, CLIENTS))
        for srv in measured:
            self.first_logins(srv)
        for r in range(1, self.rounds + 1):
            for scheme, pre in SCHEMES:
                for srv in measured:
                    self.round(r, srv, scheme, pre)
        self.report(measured)

    def report(self, measured):
        cpu = "?"
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        print()
        print("== machine")
        print("nproc: %d; cpu: %s; load average at start: %s, at end: %s" % (
            os.cpu_count(), cpu, " ".join(self.load_start),
            " ".join(open("/proc/loadavg").read().split()[:3])))
        print("postd: %s (%s); dovecot: %s; PostgreSQL: %s" % (
            POSTD, run(["git", "-C", TOP, "rev-parse", "--short",
                        "HEAD"]).stdout.decode().strip() or "?",
            run(["dovecot", "--version"]).stdout.decode().strip() or "none",
            run([os.path.join(pgsql_cluster.PG_BIN, "postgres"),
                 "--version"]).stdout.decode().strip()))
        print("%d rounds; %d clients; pool of %d users per scheme; cold = "
              "server and PostgreSQL restarted, each user once; warm = the "
              "pool again for %d s; each cell is the best round" % (
                  self.rounds, CLIENTS, self.pool, self.warm_secs))
        print()
        print("== results (higher is better for logins/s, lower for ms)")
        cols = self.servers
        print("%-28s" % "figure" + "".join(" | %13s" % c for c in cols))
        print("-" * (28 + 16 * len(cols)))
        for scheme, _ in SCHEMES:
            for kind in ("cold", "warm"):
                for what, best in (("logins/s", max), ("p99 ms", min)):
                    fig = "%s %s, %s" % (what, kind, scheme)
                    cells = []
                    for c in cols:
                        v = self.vals.get((fig, c))
                        cells.append(("%.1f" % best(v)) if v else
                                     ("n/a" if c in measured else "-"))
                    print("%-28s" % fig + "".join(" | %13s" % x
                                                  for x in cells))
        print()
        print("== every round")
        for (fig, srv), v in sorted(self.vals.items()):
            print("%-28s %-14s %s" % (fig, srv,
                                       " ".join("%.1f" % x for x in v)))
        if self.notes:
            print()
            print("== notes")
            for n in self.notes:
                print("- " + n)
        print()
        print("elapsed: %d s" % (time.time() - self.t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="",
                    help="comma separated: " + ",".join(SERVERS))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run me as root")
    if not pgsql_cluster.available():
        sys.exit("PostgreSQL 15 is not installed (postgresql-15)")
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.failed = True
    finally:
        bench.cleanup()
    sys.exit(1 if bench.failed else 0)


if __name__ == "__main__":
    main()
