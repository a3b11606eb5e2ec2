"""postctl against PostgreSQL (userdb = pgsql, doc/pgsql.md): user
add/passwd/del/list, alias add/del/list and migrate, each checked in the
database with psql. A private cluster (pgsql_cluster.PgCluster) per
module, a fresh database per test, loaded from doc/schema.sql."""

import os
import shutil
import subprocess
import uuid

import pytest

import pgsql_cluster
from conftest import DOMAIN

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "../../doc/schema.sql")
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_CONFIG = 64, 65, 67, 78

if not pgsql_cluster.available():
    pytest.skip("PostgreSQL 15 binaries not installed (postgresql-15)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def pg():
    with pgsql_cluster.PgCluster() as cluster:
        yield cluster


@pytest.fixture
def db(pg, make_server):
    """A fresh database with the schema, and a postd config (not started)
    pointing at it with userdb = pgsql. Returns (server, database name)."""
    name = "t" + uuid.uuid4().hex[:12]
    pg.create_db(name, schema=SCHEMA)
    srv = make_server(overrides={"userdb": "pgsql",
                                 "pgsql_conninfo": pg.conninfo(name)},
                      users={}, start=False)
    return srv, name


def q(pg, name, sql):
    return pg.psql(sql, db=name).splitlines()


def verify_hash(stored, password):
    """Dovecot's own check of a stored hash: postctl writes what Dovecot
    (and postd) can verify."""
    if shutil.which("doveadm") is None:
        return None
    p = subprocess.run(["doveadm", "pw", "-t", stored, "-p", password],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode == 0


def test_user_add_passwd_del_list(pg, db):
    srv, name = db
    user = "alice@" + DOMAIN
    srv.postctl("user", "add", "Alice", input=b"first-Secret-1\n")
    rows = q(pg, name, "SELECT username, enabled, retention, login_delay, "
             "extra FROM users")
    assert rows == [user + "|t|||"]
    assert q(pg, name, "SELECT domain FROM domains") == [DOMAIN]
    first = q(pg, name, "SELECT password FROM users")[0]
    assert first.startswith("{ARGON2ID}$argon2id$")
    assert verify_hash(first, "first-Secret-1") in (True, None)
    # The users file is not touched in this mode.
    assert not os.path.exists(srv.users_file)

    p = srv.postctl("user", "add", user, input=b"other-Secret\n",
                    check=False)
    assert p.returncode == 1 and b"already exists" in p.stderr
    assert q(pg, name, "SELECT password FROM users") == [first]

    srv.postctl("user", "passwd", user, input=b"second-Secret-2\n")
    second = q(pg, name, "SELECT password FROM users")[0]
    assert second != first
    assert verify_hash(second, "second-Secret-2") in (True, None)
    assert verify_hash(second, "first-Secret-1") in (False, None)

    srv.postctl("user", "add", "bob", input=b"bob-Secret-3\n")
    pg.psql("UPDATE users SET enabled = false WHERE username = 'bob@%s'"
            % DOMAIN, db=name)
    out = srv.postctl("user", "list").stdout.decode().splitlines()
    assert out == ["alice@%s ARGON2ID" % DOMAIN,
                   "bob@%s ARGON2ID disabled" % DOMAIN]

    srv.postctl("user", "del", user)
    assert q(pg, name, "SELECT username FROM users") == ["bob@" + DOMAIN]
    for args in (("user", "del", user), ("user", "passwd", user)):
        p = srv.postctl(*args, input=b"x-Secret\n", check=False)
        assert p.returncode == EX_NOUSER, p.stderr
        assert b"no user alice@example.org" in p.stderr


def test_user_add_refuses_domain_not_served(pg, db):
    srv, name = db
    p = srv.postctl("user", "add", "eve@elsewhere.test",
                    input=b"eve-Secret\n", check=False)
    assert p.returncode == EX_USAGE and b"not in domains" in p.stderr
    assert q(pg, name, "SELECT count(*) FROM users") == ["0"]


def test_config_needs_conninfo(make_server):
    srv = make_server(overrides={"userdb": "pgsql"}, users={}, start=False)
    p = srv.postctl("user", "list", check=False)
    assert p.returncode == EX_CONFIG
    assert b"userdb = pgsql needs pgsql_conninfo" in p.stderr
    srv.overrides["userdb"] = "ldap"
    srv.write_config()
    p = srv.postctl("user", "list", check=False)
    assert p.returncode == EX_CONFIG
    assert b"userdb: 'ldap' is not file or pgsql" in p.stderr


def test_unreachable_database_is_reported(pg, make_server, tmp_path):
    srv = make_server(overrides={
        "userdb": "pgsql",
        "pgsql_conninfo": "host=%s port=%d dbname=x password=hunter2" % (
            tmp_path, pg.port)}, users={}, start=False)
    p = srv.postctl("user", "list", check=False)
    assert p.returncode == 69  # EX_UNAVAILABLE
    assert b"cannot connect to PostgreSQL" in p.stderr
    assert b"hunter2" not in p.stderr


def test_alias_add_del_list(pg, db):
    srv, name = db
    srv.postctl("alias", "add", "Info@Example.org", "alice",
                "bob@example.org,carol@remote.test")
    srv.postctl("alias", "add", "@example.org", "postmaster@example.org")
    assert q(pg, name, "SELECT address, targets FROM aliases "
             "ORDER BY address") == [
        "@example.org|postmaster@example.org",
        "info@example.org|alice@example.org,bob@example.org,"
        "carol@remote.test"]
    out = srv.postctl("alias", "list").stdout.decode().splitlines()
    assert out == ["@example.org postmaster@example.org",
                   "info@example.org alice@example.org,bob@example.org,"
                   "carol@remote.test"]
    p = srv.postctl("alias", "add", "info@example.org", "x@example.org",
                    check=False)
    assert p.returncode == 1 and b"already exists" in p.stderr
    p = srv.postctl("alias", "add", "x@elsewhere.test", "x@example.org",
                    check=False)
    assert p.returncode == EX_USAGE and b"not in domains" in p.stderr
    srv.postctl("alias", "del", "info@example.org")
    p = srv.postctl("alias", "del", "info@example.org", check=False)
    assert p.returncode == EX_NOUSER
    assert q(pg, name, "SELECT address FROM aliases") == ["@example.org"]


USERS_FILE = """\
# users, as postctl and Dovecot's passwd-file write them
alice@example.org:{PLAIN}alice-pw
Bob@Example.org:{SHA512-CRYPT}$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/:::::
carol@example.org:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/:1000:1000::/home/c::retention=30d login_delay=10m quota=1G

dave@example.net:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$pWoGieXoXun6PL+ONzwx5w$9F9v2kiw4jxa55imKtH1PbeZLErJIlXq8f23AcieN24::::::userdb_retention=never retention_unread=7d
"""

ALIASES_FILE = """\
# Postfix virtual(5)
example.net          anything
info@example.org     alice@example.org, bob@example.org
sales@example.org    alice,
    carol@example.org
    other@remote.test
@example.net         dave@example.net
"""


def write(tmp_path, fname, text):
    p = tmp_path / fname
    p.write_text(text)
    return str(p)


def test_migrate_imports_and_is_idempotent(pg, db, tmp_path):
    srv, name = db
    users = write(tmp_path, "users", USERS_FILE)
    aliases = write(tmp_path, "virtual", ALIASES_FILE)
    p = srv.postctl("migrate", "--users", users, "--aliases", aliases)
    assert p.stdout.decode().splitlines() == [
        "users: 4 added, 0 changed, 0 unchanged; domains: 2 added",
        "aliases: 3 added, 0 changed, 0 unchanged; "
        "1 domain lines not imported"]
    rows = q(pg, name, "SELECT username, substr(password, 1, 16), enabled, "
             "retention, login_delay, extra FROM users ORDER BY username")
    assert rows == [
        "alice@example.org|{PLAIN}alice-pw|t|||",
        "bob@example.org|{SHA512-CRYPT}$6|t|||",
        "carol@example.org|$6$saltsalt$qFmF|t|30d|600|quota=1G",
        "dave@example.net|{ARGON2ID}$argon|t|never||retention_unread=7d",
    ]
    assert q(pg, name, "SELECT domain FROM domains ORDER BY 1") == [
        "example.net", "example.org"]
    assert q(pg, name, "SELECT address, targets FROM aliases "
             "ORDER BY address") == [
        "@example.net|dave@example.net",
        "info@example.org|alice@example.org,bob@example.org",
        "sales@example.org|alice@example.org,carol@example.org,"
        "other@remote.test"]
    # The user list reads the imported hashes as postd would.
    out = srv.postctl("user", "list").stdout.decode().splitlines()
    assert out == ["alice@example.org PLAIN", "bob@example.org SHA512-CRYPT",
                   "carol@example.org CRYPT",
                   "dave@example.net ARGON2ID"]
    before = pg.psql("SELECT * FROM users ORDER BY 1; "
                     "SELECT * FROM aliases ORDER BY 1", db=name)

    # Again: nothing changes.
    p = srv.postctl("migrate", "--users", users, "--aliases", aliases)
    assert p.stdout.decode().splitlines() == [
        "users: 0 added, 0 changed, 4 unchanged; domains: 0 added",
        "aliases: 0 added, 0 changed, 3 unchanged; "
        "1 domain lines not imported"]
    assert pg.psql("SELECT * FROM users ORDER BY 1; "
                   "SELECT * FROM aliases ORDER BY 1", db=name) == before

    # A changed password and a new user; a disabled user stays disabled.
    pg.psql("UPDATE users SET enabled = false "
            "WHERE username = 'bob@example.org'", db=name)
    write(tmp_path, "users", USERS_FILE.replace(
        "{PLAIN}alice-pw", "{PLAIN}alice-new") + "erin@example.org:{PLAIN}e\n")
    p = srv.postctl("migrate", "--users", users)
    assert p.stdout.decode().splitlines() == [
        "users: 1 added, 1 changed, 3 unchanged; domains: 0 added"]
    assert q(pg, name, "SELECT password FROM users "
             "WHERE username = 'alice@example.org'") == ["{PLAIN}alice-new"]
    assert q(pg, name, "SELECT enabled FROM users "
             "WHERE username = 'bob@example.org'") == ["f"]


@pytest.mark.parametrize("line, cause", [
    ("nopassword@example.org", "no password field"),
    ("bad name@example.org:{PLAIN}x", "invalid user name"),
    ("frank@example.org:{NOSUCH}x", "frank@example.org"),
    ("alice@example.org:{PLAIN}again", "duplicate user"),
    ("frank@example.org:{PLAIN}x::::::retention=soon", "frank@example.org"),
])
def test_migrate_refuses_malformed_users_line(pg, db, tmp_path, line, cause):
    srv, name = db
    text = USERS_FILE.splitlines()
    text.insert(3, line)  # becomes line 4
    users = write(tmp_path, "users", "\n".join(text) + "\n")
    p = srv.postctl("migrate", "--users", users, check=False)
    err = p.stderr.decode()
    assert p.returncode == EX_DATAERR, err
    assert "%s:4:" % users in err and cause in err, err
    assert "nothing imported" in err
    assert q(pg, name, "SELECT count(*) FROM users") == ["0"]


@pytest.mark.parametrize("line, cause", [
    ("lonely@example.org", "no target"),
    ("info@example.org  alice@example.org", "duplicate address"),
    ("x'or'1@example.org  alice@example.org", "is not local@domain"),
    ("ops@example.org  |/bin/sh", "a target that is not local@domain"),
    ("ops@example.org  /var/mail/ops", "a target that is not local@domain"),
    ("big@example.org  " + "a@example.org, " * 400, "longer than 4096"),
    ("big@example.org  " + "a@example.org, " * 2000, "longer than 16384"),
])
def test_migrate_refuses_malformed_alias_line(pg, db, tmp_path, line, cause):
    srv, name = db
    users = write(tmp_path, "users", USERS_FILE)
    text = ALIASES_FILE.splitlines()
    text.insert(6, line)  # becomes line 7, after the continued sales line
    aliases = write(tmp_path, "virtual", "\n".join(text) + "\n")
    p = srv.postctl("migrate", "--users", users, "--aliases", aliases,
                    check=False)
    err = p.stderr.decode()
    assert p.returncode == EX_DATAERR, err
    assert "%s:7: " % aliases in err and cause in err, err
    # One transaction: the users were not imported either.
    assert q(pg, name, "SELECT count(*) FROM users") == ["0"]
    assert q(pg, name, "SELECT count(*) FROM aliases") == ["0"]


INJECTIONS = [
    "x'; DROP TABLE users; --@example.org",
    "robert'); DELETE FROM users;--",
    "a@example.org' OR '1'='1",
    "$1@example.org",
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_sql_looking_names_are_refused(pg, db, evil):
    srv, name = db
    srv.postctl("user", "add", "alice", input=b"alice-Secret\n")
    for args in (("user", "add", evil), ("user", "passwd", evil),
                 ("user", "del", evil), ("alias", "del", evil),
                 ("alias", "add", evil, "alice@example.org"),
                 ("alias", "add", "info@example.org", evil)):
        p = srv.postctl(*args, input=b"evil-Secret\n", check=False)
        assert p.returncode == EX_USAGE, (args, p.stderr)
    assert q(pg, name, "SELECT username FROM users") == ["alice@example.org"]
    assert q(pg, name, "SELECT count(*) FROM aliases") == ["0"]


def test_sql_looking_values_are_stored_literally(pg, db, tmp_path):
    """Values the name rules allow (and extra fields, and hashes) reach
    the database as parameters: stored byte for byte, never run."""
    srv, name = db
    odd = "drop--table+users=1@example.org"
    srv.postctl("user", "add", odd, input=b"odd-Secret\n")
    extra = "note=it's';DROP_TABLE_users;-- x=\"$1\""
    users = write(tmp_path, "users",
                  "mallory@example.org:{PLAIN}p'w;--::::::%s\n" % extra)
    srv.postctl("migrate", "--users", users)
    assert q(pg, name, "SELECT username, password, extra FROM users "
             "ORDER BY 1") == [
        odd + "|" + q(pg, name, "SELECT password FROM users WHERE "
                      "username = '%s'" % odd)[0] + "|",
        "mallory@example.org|{PLAIN}p'w;--|" + extra]
    srv.postctl("user", "del", odd)
    assert q(pg, name, "SELECT username FROM users") == [
        "mallory@example.org"]
