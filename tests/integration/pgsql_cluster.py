"""A private PostgreSQL cluster for tests and the bench: initdb in a
temporary folder, the server on a Unix socket in that folder (and, if
asked, on 127.0.0.1) with a private port, stopped and removed at the end.

    with PgCluster() as pg:            # or pg = PgCluster(); pg.start()
        pg.create_db("postd", schema="doc/schema.sql")
        pg.psql("SELECT ...", db="postd")    # stdout, rows as a|b lines
        pg.conninfo("postd")                 # for pgsql_conninfo

The binaries come from Debian's postgresql-15 (/usr/lib/postgresql/15/bin,
or PG_BIN). PostgreSQL refuses to run as root, so as root initdb and
pg_ctl run as the system user `postgres` (runuser); the folder is given
to that user. Local connections are trusted: the cluster lives only as
long as the test, in a folder only root and postgres can write.
Self-contained on purpose (no import of conftest): bench scripts use it.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"


def available():
    """True when the server binaries are installed."""
    return all(os.access(os.path.join(PG_BIN, b), os.X_OK)
               for b in ("initdb", "pg_ctl", "postgres", "psql"))


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class PgCluster:
    def __init__(self, port=None, tcp=False, durable=False):
        """tcp: also listen on 127.0.0.1. durable: keep fsync on (the
        bench); tests turn it off, they never survive a crash anyway."""
        self.port = port or _free_port()
        self.tcp = tcp
        self.durable = durable
        self.base = None
        self.running = False
        self._as_root = os.geteuid() == 0

    # -- process ------------------------------------------------------------
    def _run(self, argv, **kw):
        if self._as_root:
            argv = ["runuser", "-u", SUPERUSER, "--"] + argv
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("timeout", 120)
        env = dict(os.environ, LC_ALL="C")
        return subprocess.run(argv, env=env, **kw)

    def _check(self, argv, what):
        p = self._run(argv)
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s%s" % (
                what, p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace")))
        return p

    def start(self):
        self.base = tempfile.mkdtemp(prefix="postd-pg-")
        # Others (postd's unprivileged user, Dovecot's auth user) reach the
        # socket in this folder; only postgres writes it.
        os.chmod(self.base, 0o755)
        if self._as_root:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._check([os.path.join(PG_BIN, "initdb"), "-D", self.datadir,
                     "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                     "--locale=C", "--no-sync"], "initdb")
        opts = ["-k", self.base, "-p", str(self.port),
                "-c", "listen_addresses=%s" % (
                    "127.0.0.1" if self.tcp else "''")]
        if not self.durable:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"]
        self._check([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                     "-l", os.path.join(self.base, "server.log"), "-w",
                     "-t", "60", "-o", " ".join(opts), "start"], "pg_ctl start")
        self.running = True
        return self

    def restart(self):
        """Stops and starts the server on the same data: its shared
        buffers and connections start empty (the bench's cold cache)."""
        # -l again: without it the new server would hold our output
        # pipes open, and this call would never return.
        self._check([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                     "-l", os.path.join(self.base, "server.log"),
                     "-m", "fast", "-w", "-t", "60", "restart"],
                    "pg_ctl restart")

    def stop(self):
        """Stops the server (fast shutdown) and removes the folder."""
        if self.running:
            self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir,
                       "-m", "fast", "-w", "-t", "60", "stop"])
            self.running = False
        if self.base is not None and not os.environ.get("POSTD_TEST_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def datadir(self):
        return os.path.join(self.base, "data")

    def log(self):
        try:
            with open(os.path.join(self.base, "server.log")) as f:
                return f.read()
        except OSError:
            return ""

    # -- clients --------------------------------------------------------------
    def conninfo(self, db="postgres", user=SUPERUSER):
        """A libpq connection string for pgsql_conninfo (Unix socket)."""
        return "host=%s port=%d dbname=%s user=%s" % (
            self.base, self.port, db, user)

    def psql(self, sql, db="postgres", check=True):
        """Runs sql (stops at the first error); returns stdout, one row a
        line, columns separated by '|', no header."""
        p = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(db)],
            input=sql.encode(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=120,
            env=dict(os.environ, LC_ALL="C"))
        if check and p.returncode != 0:
            raise RuntimeError("psql failed: %s" %
                               p.stderr.decode(errors="replace"))
        return p.stdout.decode()

    def create_db(self, name, schema=None):
        """CREATE DATABASE name, then runs the schema file in it."""
        self.psql('CREATE DATABASE "%s";' % name)
        if schema is not None:
            with open(schema) as f:
                self.psql(f.read(), db=name)
