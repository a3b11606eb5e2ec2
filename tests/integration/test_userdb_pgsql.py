"""userdb = pgsql: users in PostgreSQL, looked up by the auth process over
libpq's asynchronous API (doc/internals/auth.md, postd.conf(5)).

Each test starts a private PostgreSQL (pgcluster.py) with the published
schema (doc/schema.sql) and a daemon whose users come from it. A database
that cannot answer is a temporary failure everywhere (-ERR [SYS/TEMP],
454 4.7.0, 451 4.3.0, logged as "user database unavailable"), never a
wrong password nor an unknown user.
"""

import ctypes
import os
import subprocess
import threading
import time

import pytest

from conftest import BUILD, POSTD, free_port
from pgcluster import PgCluster, require_postgres
from pop3util import Pop3Conn, plain_ir
from smtputil import SmtpConn

AUTH_FAILED = "-ERR [AUTH] Authentication failed."
TEMP_FAILED = "-ERR [SYS/TEMP] "
PROBE = os.path.join(BUILD, "tests/pgsql/pgsql_probe")

ALICE = "alice@example.org"  # SHA512-CRYPT
ALICE_PW = "alice-Secret-1"
BOB = "bob@example.org"  # ARGON2ID
BOB_PW = "bob-Secret-2"
SLOW = "slow@example.org"  # its lookup sleeps (custom query below)
SLOW_PW = "slow-Secret-3"


def sha512_crypt(pw):
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                         input=pw.encode(), stdout=subprocess.PIPE,
                         check=True).stdout.decode().strip()
    return "{SHA512-CRYPT}" + out


def argon2id(pw):
    """An Argon2id hash with libsodium's cheapest parameters (the cost is
    the stored hash's own, whatever it is)."""
    sodium = ctypes.CDLL("libsodium.so.23")
    assert sodium.sodium_init() >= 0
    out = ctypes.create_string_buffer(128)
    raw = pw.encode()
    rc = sodium.crypto_pwhash_str_alg(out, raw, ctypes.c_ulonglong(len(raw)),
                                      ctypes.c_ulonglong(1),
                                      ctypes.c_size_t(8192), ctypes.c_int(2))
    assert rc == 0
    return "{ARGON2ID}" + out.value.decode()


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def add_user(pg, name, hash_, retention=None, login_delay=None, extra=None):
    pg.psql("INSERT INTO users (username, password, retention, login_delay, "
            "extra) VALUES (%s, %s, %s, %s, %s)" % (
                sql_str(name), sql_str(hash_),
                sql_str(retention) if retention else "NULL",
                str(login_delay) if login_delay is not None else "NULL",
                sql_str(extra) if extra else "NULL"))


def make_cluster():
    pg = PgCluster(free_port()).start()
    pg.create_directory()
    pg.psql("INSERT INTO domains VALUES ('example.org')")
    add_user(pg, ALICE, sha512_crypt(ALICE_PW))
    add_user(pg, BOB, argon2id(BOB_PW))
    add_user(pg, SLOW, sha512_crypt(SLOW_PW))
    return pg


@pytest.fixture
def pg():
    require_postgres()
    c = make_cluster()
    try:
        yield c
    finally:
        c.destroy()


def pg_server(make_server, pg, **extra):
    overrides = {
        "userdb": "pgsql",
        "pgsql_conninfo": pg.conninfo(),
    }
    overrides.update(extra)
    return make_server(overrides=overrides, users={})


def pop3_login(srv, user, pw):
    """A whole USER/PASS login on a new connection: the PASS reply."""
    with Pop3Conn(srv.pop3_port, timeout=30) as c:
        assert c.cmd("USER " + user).startswith("+OK")
        r = c.cmd("PASS " + pw)
        c.cmd("QUIT")
    return r


def smtp_auth(srv, user, pw):
    with SmtpConn(srv.submission_port, timeout=30) as c:
        code, _exts, _texts = c.ehlo()
        assert code == 250
        r = c.cmd("AUTH PLAIN " + plain_ir(user, pw))
        c.cmd("QUIT")
    return r


def rcpt(srv, addr):
    with SmtpConn(srv.smtp_port, timeout=30) as c:
        assert c.ehlo()[0] == 250
        assert c.cmd("MAIL FROM:<someone@example.net>").startswith("250")
        r = c.cmd("RCPT TO:<%s>" % addr)
        c.cmd("QUIT")
    return r


def lookups(pg, name):
    return int(pg.psql("SELECT count(*) FROM lookups WHERE username = %s"
                       % sql_str(name))[0])


# -- logins ------------------------------------------------------------------

def test_pgsql_logins_with_crypt_and_argon2_hashes(make_server, pg):
    """POP3 USER/PASS, POP3 AUTH PLAIN and SMTP AUTH against the users
    table, SHA512-CRYPT and ARGON2ID alike; RCPT asks the same table."""
    srv = pg_server(make_server, pg)
    mark = srv.log_mark()
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
    with Pop3Conn(srv.pop3_port) as c:
        assert c.cmd("AUTH PLAIN " + plain_ir(BOB, BOB_PW)).startswith("+OK")
        assert c.cmd("STAT").startswith("+OK")
        c.cmd("QUIT")
    assert smtp_auth(srv, BOB, BOB_PW).startswith("235 2.7.0")
    assert smtp_auth(srv, ALICE, ALICE_PW).startswith("235 2.7.0")
    assert rcpt(srv, ALICE).startswith("250")
    assert rcpt(srv, "ghost@example.org").startswith("550 5.1.1")
    srv.wait_log(r"userdb: connection \d+ to the primary PostgreSQL server "
                 r"ready", since=0)
    srv.wait_log(r"login user=alice@example\.org ", since=mark)


def test_pgsql_unknown_user_gets_the_wrong_password_reply(make_server, pg):
    """INV-A1: an unknown user and a wrong password get one reply; only
    the log tells them apart (the unknown user is verified against the
    dummy hash: same path, same reply)."""
    srv = pg_server(make_server, pg)
    mark = srv.log_mark()
    assert pop3_login(srv, "ghost@example.org", "x") == AUTH_FAILED
    assert pop3_login(srv, ALICE, "wrong") == AUTH_FAILED
    assert smtp_auth(srv, "ghost@example.org", "x") == \
        "535 5.7.8 Authentication credentials invalid"
    srv.wait_log(r"user=ghost@example\.org .*cause=unknown user", since=mark)
    srv.wait_log(r"user=alice@example\.org .*cause=wrong password",
                 since=mark)


def test_pgsql_disabled_user_is_unknown(make_server, pg):
    srv = pg_server(make_server, pg)
    pg.psql("UPDATE users SET enabled = false WHERE username = %s"
            % sql_str(BOB))
    mark = srv.log_mark()
    assert pop3_login(srv, BOB, BOB_PW) == AUTH_FAILED
    srv.wait_log(r"user=bob@example\.org .*cause=unknown user", since=mark)


# -- the database is down ----------------------------------------------------

def test_pgsql_down_is_a_temporary_failure_not_a_wrong_password(make_server,
                                                                 pg):
    """With the database stopped: -ERR [SYS/TEMP] (POP3), 454 4.7.0 (SMTP
    AUTH), 451 4.3.0 (RCPT), each refusal logged with the cause "user
    database unavailable"; never the reply of a wrong password or of an
    unknown recipient."""
    srv = pg_server(make_server, pg, userdb_cache_ttl="0",
                    userdb_negative_cache_ttl="0")
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
    pg.stop()
    mark = srv.log_mark()
    r = pop3_login(srv, ALICE, ALICE_PW)
    assert r.startswith(TEMP_FAILED), r
    r = smtp_auth(srv, BOB, BOB_PW)
    assert r.startswith("454 4.7.0 "), r
    r = rcpt(srv, ALICE)
    assert r.startswith("451 4.3.0 "), r
    srv.wait_log(r"refused .*proto=pop3 user=alice@example\.org "
                 r"cause=user database unavailable", since=mark)
    srv.wait_log(r"refused .*proto=submission .*cause=user database "
                 r"unavailable", since=mark)
    srv.wait_log(r"refused .*proto=smtp .*cause=recipient lookup failed: "
                 r"user database unavailable", since=mark)
    log = srv.log_since(mark)
    assert "wrong password" not in log and "unknown user" not in log, log
    # It comes back without a restart of postd.
    pg.start()
    deadline = time.monotonic() + 30
    while pop3_login(srv, ALICE, ALICE_PW) != "+OK Logged in." and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")


def test_pgsql_restart_in_the_middle_of_a_login_loop(make_server, pg):
    """Logins go on while the database restarts: each answer is a success
    or a temporary failure (never "wrong password"), and logins succeed
    again afterwards from the same postd."""
    srv = pg_server(make_server, pg, userdb_cache_ttl="0",
                    userdb_negative_cache_ttl="0")
    pid = srv.proc.pid
    replies = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            replies.append(pop3_login(srv, ALICE, ALICE_PW))

    t = threading.Thread(target=loop)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while sum(r.startswith("+OK") for r in replies) < 5:
            assert time.monotonic() < deadline, replies
            time.sleep(0.05)
        mark = srv.log_mark()
        pg.restart()
        before = len(replies)
        deadline = time.monotonic() + 60
        while sum(r.startswith("+OK") for r in replies[before:]) < 5:
            assert time.monotonic() < deadline, replies[before:]
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(60)
    assert srv.proc.pid == pid and srv.alive()
    bad = [r for r in replies
           if not (r.startswith("+OK") or r.startswith(TEMP_FAILED))]
    assert bad == [], bad
    srv.wait_log(r"userdb: connection \d+ to the primary PostgreSQL server "
                 r"(lost|failed)", since=mark)
    log = srv.log_since(mark)
    assert "cause=wrong password" not in log
    assert "cause=unknown user" not in log


def test_pgsql_slow_query_does_not_stall_other_logins(make_server, pg):
    """One user's lookup sleeps in the database; another user's login,
    started while it sleeps, completes first: the auth process's loop
    never waits for a query."""
    pg.psql("CREATE FUNCTION slow_for(u text) RETURNS boolean LANGUAGE sql "
            "VOLATILE AS $$ SELECT CASE WHEN u = %s THEN "
            "(SELECT true FROM pg_sleep(4)) ELSE true END $$" % sql_str(SLOW))
    srv = pg_server(
        make_server, pg, pgsql_pool_size="2", pgsql_query_timeout="30s",
        pgsql_user_query="SELECT password, retention, login_delay, extra "
        "FROM users WHERE username = $1 AND enabled AND slow_for($1)")
    order = []

    def slow_login():
        r = pop3_login(srv, SLOW, SLOW_PW)
        order.append(("slow", r))

    t = threading.Thread(target=slow_login)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                          "wait_event = 'PgSleep'")[0]) == 0:
            assert time.monotonic() < deadline, "the slow query never ran"
            time.sleep(0.05)
        r = pop3_login(srv, ALICE, ALICE_PW)
        order.append(("fast", r))
        # The slow query was still sleeping when alice got in.
        assert int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                           "wait_event = 'PgSleep'")[0]) == 1
    finally:
        t.join(60)
    assert [o[0] for o in order] == ["fast", "slow"], order
    assert all(o[1].startswith("+OK") for o in order), order


def test_pgsql_query_timeout_is_a_temporary_failure(make_server, pg):
    """A query slower than pgsql_query_timeout is answered as a temporary
    failure, logged as a timeout, and the next login works."""
    pg.psql("CREATE FUNCTION slow_for(u text) RETURNS boolean LANGUAGE sql "
            "VOLATILE AS $$ SELECT CASE WHEN u = %s THEN "
            "(SELECT true FROM pg_sleep(5)) ELSE true END $$" % sql_str(SLOW))
    srv = pg_server(
        make_server, pg, pgsql_query_timeout="500ms",
        pgsql_user_query="SELECT password, retention, login_delay, extra "
        "FROM users WHERE username = $1 AND enabled AND slow_for($1)")
    mark = srv.log_mark()
    r = pop3_login(srv, SLOW, SLOW_PW)
    assert r.startswith(TEMP_FAILED), r
    srv.wait_log(r"userdb: user slow@example\.org: .*(timed out|statement "
                 r"timeout)", since=mark)
    srv.wait_log(r"refused .*user=slow@example\.org cause=user database "
                 r"unavailable", since=mark)
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")


# -- failover ----------------------------------------------------------------

def test_pgsql_failover_to_the_second_server(make_server, pg):
    """The primary is down: the auth process connects to
    pgsql_conninfo_failover and logins work."""
    second = make_cluster()
    try:
        pg.stop()
        srv = pg_server(make_server, pg,
                        pgsql_conninfo_failover=second.conninfo())
        mark = srv.log_mark()
        deadline = time.monotonic() + 30
        r = pop3_login(srv, ALICE, ALICE_PW)
        while not r.startswith("+OK") and time.monotonic() < deadline:
            time.sleep(0.2)
            r = pop3_login(srv, ALICE, ALICE_PW)
        assert r.startswith("+OK"), r
        srv.wait_log(r"userdb: connection \d+ to the failover PostgreSQL "
                     r"server ready", since=0)
        assert smtp_auth(srv, BOB, BOB_PW).startswith("235")
        assert "cause=wrong password" not in srv.log_since(mark)
    finally:
        second.destroy()


# -- cache -------------------------------------------------------------------

COUNTING_QUERY = (
    "WITH counted AS (INSERT INTO lookups VALUES ($1) RETURNING 1) "
    "SELECT password, retention, login_delay, extra FROM users "
    "WHERE username = $1 AND enabled")


def test_pgsql_cache_and_negative_cache(make_server, pg):
    """Within the TTLs a user (found or unknown) is queried once; a
    changed password is seen after the TTL or a SIGHUP, not before. The
    queries are counted by the database itself."""
    pg.psql("CREATE TABLE lookups (username text)")
    srv = pg_server(make_server, pg, pgsql_user_query=COUNTING_QUERY,
                    userdb_cache_ttl="1h", userdb_negative_cache_ttl="1h")
    for _ in range(3):
        assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
        assert pop3_login(srv, "ghost@example.org", "x") == AUTH_FAILED
    assert rcpt(srv, ALICE).startswith("250")
    assert lookups(pg, ALICE) == 1
    assert lookups(pg, "ghost@example.org") == 1
    # A new password: the cached hash is used until the cache is emptied.
    pg.psql("UPDATE users SET password = %s WHERE username = %s"
            % (sql_str(sha512_crypt("new-Secret")), sql_str(ALICE)))
    assert pop3_login(srv, ALICE, "new-Secret") == AUTH_FAILED
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
    mark = srv.log_mark()
    srv.hup()
    srv.wait_log(r"users in PostgreSQL", since=mark)
    assert pop3_login(srv, ALICE, "new-Secret").startswith("+OK")
    assert lookups(pg, ALICE) == 2


def test_pgsql_cache_entries_expire(make_server, pg):
    pg.psql("CREATE TABLE lookups (username text)")
    srv = pg_server(make_server, pg, pgsql_user_query=COUNTING_QUERY,
                    userdb_cache_ttl="1s", userdb_negative_cache_ttl="1s")
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
    assert pop3_login(srv, "ghost@example.org", "x") == AUTH_FAILED
    assert lookups(pg, ALICE) == 1
    time.sleep(1.5)  # past both TTLs
    assert pop3_login(srv, ALICE, ALICE_PW).startswith("+OK")
    assert pop3_login(srv, "ghost@example.org", "x") == AUTH_FAILED
    assert lookups(pg, ALICE) == 2
    assert lookups(pg, "ghost@example.org") == 2


# -- aliases and the retention pass ------------------------------------------

def test_pgsql_aliases_reach_the_callback(pg):
    """pgsql_alias_query's rows reach the loader's callback, after a
    reset; a failed load calls neither (the old table stays)."""
    pg.psql("INSERT INTO aliases VALUES ('info@example.org', "
            "'alice@example.org,bob@example.org'), "
            "('@example.net', 'alice@example.org')")
    p = subprocess.run([PROBE, pg.conninfo(), "aliases"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    lines = p.stdout.decode().splitlines()
    assert p.returncode == 0, lines
    got = [ln for ln in lines if ln.split(" ")[0] in
           ("reset", "alias", "done")]
    assert got[0] == "reset" and got[-1] == "done ok", got
    assert sorted(got[1:-1]) == [
        "alias @example.net alice@example.org",
        "alias info@example.org alice@example.org,bob@example.org"], got
    pg.stop()
    p = subprocess.run([PROBE, pg.conninfo(), "aliases"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    lines = p.stdout.decode().splitlines()
    assert p.returncode == 1, lines
    assert "done failed" in lines and "reset" not in lines, lines


def test_pgsql_alias_and_subaddress_expand(make_server, pg):
    """With userdb = pgsql an alias and a subaddress are expanded like
    with the users file; the expansion once asked the server's domain
    list with the lookup's context and took the auth process down."""
    pg.psql("INSERT INTO aliases VALUES ('info@example.org', "
            "'bob@example.org')")
    srv = pg_server(make_server, pg)
    srv.wait_log(r"userdb: 1 aliases loaded from the database")
    mark = srv.log_mark()
    assert rcpt(srv, "info@example.org").startswith("250")
    assert rcpt(srv, "alice+x@example.org").startswith("250")
    srv.wait_log(r"rcpt <info@example\.org> expanded to "
                 r"<bob@example\.org> ", since=mark)
    srv.wait_log(r"rcpt <alice\+x@example\.org> expanded to "
                 r"<alice@example\.org> ", since=mark)
    assert "died" not in srv.log_since(mark)


def test_pgsql_subaddress_passed_on_reaches_the_base_user(make_server, pg):
    """info+x@ -> bob+x@ (the extension an alias passes on, as Postfix).
    The database is asked only about the typed address and its base, and
    other targets are trusted to be users; bob+x@ is bob's subaddress and
    must reach bob's Maildir, not get one of its own."""
    pg.psql("INSERT INTO aliases VALUES ('info@example.org', "
            "'bob@example.org')")
    srv = pg_server(make_server, pg)
    srv.wait_log(r"userdb: 1 aliases loaded from the database")
    mark = srv.log_mark()
    assert rcpt(srv, "info+x@example.org").startswith("250")
    srv.wait_log(r"rcpt <info\+x@example\.org> expanded to "
                 r"<bob@example\.org> ", since=mark)
    assert not os.path.exists(srv.maildir("bob+x@example.org"))


def test_pgsql_retention_fields_come_from_the_database(make_server, pg):
    """The retention pass (postctl expire) reads the per-user fields from
    the users table: alice's retention of 1s removes her retrieved
    message, bob (no field: the default, never) keeps his."""
    pg.psql("UPDATE users SET retention = '1s', login_delay = 0 "
            "WHERE username = %s" % sql_str(ALICE))
    p = subprocess.run([PROBE, pg.conninfo(), "users"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    assert "user alice@example.org retention=1s login_delay=0" in \
        p.stdout.decode().splitlines(), p.stdout
    srv = pg_server(make_server, pg)
    # The pass a new generation starts runs once at start-up; it must be
    # over before the mail it would judge arrives.
    srv.wait_log(r"retention pass: \d+ messages removed", timeout=30)
    for user in (ALICE, BOB):
        with SmtpConn(srv.smtp_port) as c:
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@example.net>").startswith("250")
            assert c.cmd("RCPT TO:<%s>" % user).startswith("250")
            assert c.cmd("DATA").startswith("354")
            assert c.cmd("Subject: x\r\n\r\nbody\r\n.").startswith("250")
            c.cmd("QUIT")
        pw = ALICE_PW if user == ALICE else BOB_PW
        with Pop3Conn(srv.pop3_port) as c:
            assert c.login(user, pw).startswith("+OK")
            assert c.cmd("RETR 1").startswith("+OK")
            c.read_multi_raw()
            c.cmd("QUIT")
    time.sleep(2.2)  # past alice's retention of 1s
    # The daemon's pass (a reload starts one): alice, bob and slow are
    # the users table's, not a users file's.
    mark = srv.log_mark()
    srv.hup()
    srv.wait_log(r"retention pass: 1 messages removed, 3 users checked, "
                 r"0 errors", since=mark, timeout=30)
    assert srv.stored_messages(ALICE) == []
    assert len(srv.stored_messages(BOB)) == 1
    # postctl expire reads the same table.
    pg.psql("UPDATE users SET retention = '1s' WHERE username = %s"
            % sql_str(BOB))
    out = srv.postctl("expire").stdout.decode()
    assert "1 messages removed, 3 users checked" in out, out
    assert srv.stored_messages(BOB) == []


# -- postd -t ------------------------------------------------------------------

@pytest.mark.parametrize("lines, message", [
    (["userdb = pgsql"], "userdb = pgsql needs pgsql_conninfo"),
    (["userdb = pgsql", "pgsql_conninfo = host='unterminated"],
     "pgsql_conninfo: "),
    (["userdb = pgsql", "pgsql_conninfo = dbname=postd",
      "pgsql_user_query = SELECT password FROM users"],
     "pgsql_user_query must take the user name as $1"),
    (["userdb = ldap"], "userdb: 'ldap' is not file or pgsql"),
])
def test_pgsql_config_check(tmp_path, lines, message):
    conf = tmp_path / "postd.conf"
    conf.write_text("domains = example.org\nlisten.pop3 = 127.0.0.1:1\n"
                    "data_dir = %s\n" % tmp_path + "\n".join(lines) + "\n")
    p = subprocess.run([POSTD, "-t", "-c", str(conf)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    out = p.stdout.decode()
    assert p.returncode != 0 and message in out, out


def test_pgsql_lookup_answers_found_unknown_unavailable(pg):
    """The directory alone (the probe runs it on a loop of its own): a
    row is found with its fields made into extra fields, no row is
    unknown, a stopped server is unavailable -- never unknown."""
    pg.psql("UPDATE users SET retention = '30d', extra = 'quota=1G' "
            "WHERE username = %s" % sql_str(ALICE))

    def lookup(name):
        p = subprocess.run([PROBE, pg.conninfo(), "lookup", name],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        return p.returncode, p.stdout.decode().splitlines()[-1]

    rc, last = lookup(ALICE)
    assert rc == 0 and last.startswith("found {SHA512-CRYPT}$6$"), last
    assert last.endswith(" retention=30d quota=1G"), last
    assert lookup("ghost@example.org") == (0, "unknown")
    pg.stop()
    assert lookup(ALICE) == (1, "unavailable")
