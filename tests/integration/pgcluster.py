"""A private PostgreSQL for the userdb = pgsql tests.

Debian's postgresql package: initdb makes a cluster in a temporary folder,
pg_ctl starts it on a private port with its Unix socket in that folder
(no TCP listener), and stops it at the end. PostgreSQL refuses to run as
root, so when the tests run as root the server runs as the `postgres`
account (runuser). Clients connect over the socket with trust
authentication as the `postgres` role.
"""

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "../../doc/schema.sql")


def _pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


PG_BIN = _pg_bindir()
AS_ROOT = os.geteuid() == 0


def require_postgres():
    if PG_BIN is None:
        pytest.skip("PostgreSQL server binaries not installed "
                    "(Debian package postgresql)")


class PgCluster:
    def __init__(self, port):
        require_postgres()
        self.port = port
        self.base = tempfile.mkdtemp(prefix="postd-pg-")
        # The auth process (the run user) reaches the socket in here.
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "postgres.log")
        if AS_ROOT:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.running = False

    def _run(self, tool, *args, check=True):
        argv = [os.path.join(PG_BIN, tool)] + list(args)
        if AS_ROOT:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd=self.base,
                           timeout=120)
        if check and p.returncode != 0:
            pytest.fail("%s failed: %s" % (tool, p.stdout.decode(
                errors="replace")[-2000:]))
        return p

    def conninfo(self, dbname="postd"):
        return "host=%s port=%d dbname=%s user=postgres connect_timeout=5" % (
            self.base, self.port, dbname)

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-o", "-k %s -p %d -c listen_addresses='' -c fsync=off"
                  % (self.base, self.port), "start")
        self.running = True
        return self

    def stop(self, mode="fast"):
        if self.running:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop",
                      check=False)
        self.running = False

    def restart(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-m", "fast", "-o",
                  "-k %s -p %d -c listen_addresses='' -c fsync=off"
                  % (self.base, self.port), "restart")
        self.running = True

    def psql(self, sql, dbname="postd"):
        """Runs SQL; returns the rows, fields separated by '|'."""
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1", "-h", self.base, "-p",
                str(self.port), "-U", "postgres", "-d", dbname, "-c", sql]
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            pytest.fail("psql %r failed: %s" % (sql, p.stderr.decode(
                errors="replace")))
        return [ln for ln in p.stdout.decode().splitlines() if ln != ""]

    def create_directory(self):
        """The postd database with the published schema (doc/schema.sql)."""
        self.psql("CREATE DATABASE postd", dbname="postgres")
        with open(SCHEMA) as f:
            self.psql(f.read())

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)
