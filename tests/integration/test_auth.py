"""Authentication: USER/PASS, AUTH PLAIN and LOGIN (RFC 5034), INV-A1,
[IN-USE] (RFC 2449 / RFC 3206 response codes), plaintext_auth."""

import os
import re
import time

import pytest

from conftest import ALICE, ALICE_PW
from pop3util import b64, plain_ir

AUTH_FAILED = "-ERR [AUTH] Authentication failed."


def assert_transaction(c):
    """The session is logged in: STAT works."""
    r = c.cmd("STAT")
    assert r.startswith("+OK "), r


def assert_not_logged_in(c):
    r = c.cmd("STAT")
    assert r.startswith("-ERR"), r


# -- USER/PASS ----------------------------------------------------------------

def test_user_pass_and_log_line(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        assert c.cmd("USER " + ALICE).startswith("+OK")
        assert c.cmd("PASS " + ALICE_PW).startswith("+OK")
        assert_transaction(c)
        assert c.cmd("QUIT").startswith("+OK")
    srv.wait_log(r"login user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 mech=USER tls=no", since=mark)
    srv.wait_log(r"logout user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 retrieved=0 deleted=0", since=mark)


def test_login_without_domain_uses_default_domain(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        assert c.login("alice", ALICE_PW).startswith("+OK")
        assert_transaction(c)
        c.cmd("QUIT")
    srv.wait_log(r"login user=alice@example\.org ", since=mark)


def test_login_name_is_case_insensitive(shared_server):
    with shared_server.connect() as c:
        assert c.login("Alice@Example.ORG", ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_inv_a1_same_reply_unknown_user_and_wrong_password(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        r1 = c.login(ALICE, "wrong-password")
    with srv.connect() as c:
        r2 = c.login("nosuchuser@example.org", "whatever")
    with srv.connect() as c:
        r3 = c.login("nosuchuser@other.invalid", "whatever")
    assert r1 == AUTH_FAILED
    assert r2 == AUTH_FAILED
    assert r3 == AUTH_FAILED
    # (extra key=value fields are tolerated here; test_log_formats checks
    # the exact contract order)
    srv.wait_log(r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
                 r"session=\S+ proto=pop3 (\S+=\S+ )*cause=wrong password",
                 since=mark)
    srv.wait_log(r"auth failed user=nosuchuser@example\.org "
                 r".*cause=unknown user", since=mark)
    # the password itself never reaches the log
    assert "wrong-password" not in srv.log()


def test_inv_a1_user_reply_does_not_reveal_existence(shared_server):
    """USER must answer the same for known and unknown names."""
    with shared_server.connect() as c:
        r1 = c.cmd("USER " + ALICE)
    with shared_server.connect() as c:
        r2 = c.cmd("USER nosuchuser@example.org")
    assert r1.startswith("+OK") and r1 == r2


def test_pass_without_user_refused(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("PASS " + ALICE_PW)
        assert r.startswith("-ERR"), r
        assert_not_logged_in(c)


def test_failed_login_then_success_in_same_connection(shared_server):
    with shared_server.connect() as c:
        assert c.login(ALICE, "nope") == AUTH_FAILED
        assert_not_logged_in(c)
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        assert_transaction(c)
        c.cmd("QUIT")


def test_repeated_auth_failures_close_connection(shared_server):
    """SESSION_MAX_AUTH_FAILURES = 3: the connection does not allow
    unlimited guessing."""
    with shared_server.connect() as c:
        closed = False
        for i in range(4):
            try:
                r = c.login(ALICE, "bad%d" % i)
            except (ConnectionError, Exception):
                closed = True
                break
            assert r.startswith("-ERR"), r
        if not closed:
            c.wait_closed(3)


def test_inv_a1_tarpit_delay(make_server):
    """With auth_failure_delay = 400ms both kinds of failure take at least
    that long, and the auth process logs the tarpit."""
    srv = make_server(overrides={"auth_failure_delay": "400ms"})
    mark = srv.log_mark()
    times = []
    for user, pw in ((ALICE, "wrong"), ("ghost@example.org", "wrong")):
        with srv.connect() as c:
            assert c.cmd("USER " + user).startswith("+OK")
            t0 = time.monotonic()
            r = c.cmd("PASS " + pw)
            times.append(time.monotonic() - t0)
            assert r == AUTH_FAILED
    assert min(times) >= 0.35, times
    srv.wait_log(r"tarpit peer=127\.0\.0\.1 failures=\d+ delay=\d+ms",
                 since=mark)


# -- AUTH (RFC 5034) -----------------------------------------------------------

def test_auth_plain_initial_response(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("+OK"), r
        assert_transaction(c)
        c.cmd("QUIT")
    srv.wait_log(r"login user=alice@example\.org .*mech=PLAIN", since=mark)


def test_auth_plain_continuation(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN")
        # RFC 5034 section 4: "+" SP base64 challenge (empty here)
        assert r.startswith("+"), r
        assert not r.startswith("+OK"), r
        r = c.cmd(plain_ir(ALICE, ALICE_PW))
        assert r.startswith("+OK"), r
        assert_transaction(c)
        c.cmd("QUIT")


def test_auth_plain_mechanism_name_case_insensitive(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("auth plain " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("+OK"), r
        c.cmd("QUIT")


def test_auth_plain_authzid_equal_to_authcid_accepted(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW, authzid=ALICE))
        assert r.startswith("+OK"), r
        c.cmd("QUIT")


def test_inv_a1_auth_plain_other_authzid_refused(shared_server):
    srv = shared_server
    with srv.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW,
                                           authzid="bob@example.org"))
        assert r.startswith("-ERR"), r
        assert_not_logged_in(c)
    # bob's mailbox was not opened: bob can log in (no IN-USE)
    with srv.connect() as c:
        assert c.login("bob@example.org",
                       srv.users["bob@example.org"]).startswith("+OK")
        c.cmd("QUIT")


def test_auth_plain_wrong_password(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, "wrong"))
        assert r == AUTH_FAILED
        r = c.cmd("AUTH PLAIN " + plain_ir("ghost@example.org", "wrong"))
        assert r == AUTH_FAILED


@pytest.mark.parametrize("bad", [
    "!!!notbase64!!!",
    b64("no-nul-bytes-at-all"),
    b64("\0only-authcid"),
    b64("\0\0"),
    b64("a\0b\0c\0d"),
])
def test_auth_plain_malformed_response(shared_server, bad):
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN " + bad)
        assert r.startswith("-ERR"), r
        assert_not_logged_in(c)
        # the session is still usable
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_auth_plain_empty_initial_response(shared_server):
    """RFC 5034: "=" is an empty initial response; PLAIN cannot succeed."""
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN =")
        assert r.startswith("-ERR"), r
        assert_not_logged_in(c)


def test_auth_cancel(shared_server):
    """RFC 5034 section 4: "*" cancels; the server MUST reply -ERR."""
    with shared_server.connect() as c:
        r = c.cmd("AUTH PLAIN")
        assert r.startswith("+") and not r.startswith("+OK"), r
        r = c.cmd("*")
        assert r.startswith("-ERR"), r
        assert_not_logged_in(c)
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("+ ") and not r.startswith("+OK"), r
        assert c.cmd(b64(ALICE)).startswith("+ ")
        r = c.cmd("*")
        assert r.startswith("-ERR"), r
        # still in AUTHORIZATION and usable
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_auth_login(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("+ "), r
        r = c.cmd(b64(ALICE))
        assert r.startswith("+ "), r
        r = c.cmd(b64(ALICE_PW))
        assert r.startswith("+OK"), r
        assert_transaction(c)
        c.cmd("QUIT")
    srv.wait_log(r"login user=alice@example\.org .*mech=LOGIN", since=mark)


def test_auth_login_initial_response(shared_server):
    """curl sends "AUTH LOGIN <base64 user>" (SASL-IR style)."""
    with shared_server.connect() as c:
        r = c.cmd("AUTH LOGIN " + b64(ALICE))
        assert r.startswith("+ "), r
        r = c.cmd(b64(ALICE_PW))
        assert r.startswith("+OK"), r
        c.cmd("QUIT")


def test_auth_login_wrong_password(shared_server):
    with shared_server.connect() as c:
        c.cmd("AUTH LOGIN")
        c.cmd(b64(ALICE))
        assert c.cmd(b64("wrong")) == AUTH_FAILED


def test_auth_unknown_mechanism(shared_server):
    with shared_server.connect() as c:
        r = c.cmd("AUTH CRAM-MD5")
        assert r.startswith("-ERR"), r
        r = c.cmd("AUTH X-NOSUCH " + b64("x"))
        assert r.startswith("-ERR"), r
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_auth_after_login_refused(shared_server):
    with shared_server.connect() as c:
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("-ERR"), r
        assert_transaction(c)
        c.cmd("QUIT")


# -- [IN-USE] ------------------------------------------------------------------

def test_in_use_second_session_refused_until_quit(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    first = srv.login()
    try:
        with srv.connect() as c:
            r = c.login(ALICE, ALICE_PW)
            assert r.startswith("-ERR [IN-USE]"), r
            assert_not_logged_in(c)
        with srv.connect() as c:
            r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
            assert r.startswith("-ERR [IN-USE]"), r
        srv.wait_log(r"refused (\S+=\S+ )*peer=127\.0\.0\.1 session=\S+ "
                     r"proto=pop3 (\S+=\S+ )*cause=.*in use", since=mark)
        # the first session is unaffected
        assert_transaction(first)
    finally:
        assert first.cmd("QUIT").startswith("+OK")
        first.close()
    c = srv.login(retry_in_use=2.0)
    assert_transaction(c)
    c.cmd("QUIT")
    c.close()


def test_in_use_released_when_session_drops(shared_server):
    srv = shared_server
    first = srv.login()
    first.abort()  # RST, no QUIT
    c = srv.login(retry_in_use=3.0)
    assert_transaction(c)
    c.cmd("QUIT")
    c.close()


# -- plaintext_auth ------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_only_server(tls_files):
    from conftest import running_server, _require_binaries
    _require_binaries()
    with running_server(tls_files, overrides={"plaintext_auth": "no"}) as s:
        yield s


def test_plaintext_no_capa_before_tls(tls_only_server):
    with tls_only_server.connect() as c:
        caps = c.capa()
        names = [ln.split()[0].upper() for ln in caps]
        assert "STLS" in names
        assert "USER" not in names, caps
        assert "SASL" not in names, caps


def test_plaintext_no_user_pass_refused(tls_only_server):
    srv = tls_only_server
    mark = srv.log_mark()
    with srv.connect() as c:
        r = c.cmd("USER " + ALICE)
        if r.startswith("+OK"):
            r = c.cmd("PASS " + ALICE_PW)
        assert r.startswith("-ERR [AUTH] "), r
        assert "TLS" in r, r
        assert_not_logged_in(c)
    srv.wait_log(r"refused (\S+=\S+ )*peer=127\.0\.0\.1 session=\S+ "
                 r"proto=pop3 (\S+=\S+ )*cause=", since=mark)


def test_plaintext_no_auth_plain_refused(tls_only_server):
    with tls_only_server.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("-ERR [AUTH] "), r
        assert "TLS" in r
        assert_not_logged_in(c)
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("-ERR [AUTH] "), r


def test_plaintext_no_works_after_stls(tls_only_server):
    srv = tls_only_server
    mark = srv.log_mark()
    with srv.connect() as c:
        assert c.cmd("STLS").startswith("+OK")
        c.starttls(srv.ctx())
        caps = [ln.split()[0].upper() for ln in c.capa()]
        assert "USER" in caps and "SASL" in caps and "STLS" not in caps
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        assert_transaction(c)
        c.cmd("QUIT")
    srv.wait_log(r"login user=alice@example\.org .*mech=USER tls=TLSv1\.[23]",
                 since=mark)
    with srv.connect() as c:
        c.cmd("STLS")
        c.starttls(srv.ctx())
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("+OK"), r
        c.cmd("QUIT")


def test_plaintext_no_works_on_pop3s(tls_only_server):
    with tls_only_server.connect(tls=True) as c:
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        assert_transaction(c)
        c.cmd("QUIT")


def test_log_formats(shared_server):
    """protocol.md "Log lines": the documented substrings, in order, so that
    log scanners (fail2ban and the like) can rely on them."""
    srv = shared_server
    mark = srv.log_mark()
    with srv.connect() as c:
        c.login(ALICE, "wrong")
    with srv.connect() as c:
        c.login("ghost@example.org", "wrong")
    first = srv.login()
    with srv.connect() as c:
        c.login(ALICE, ALICE_PW)  # IN-USE
    first.cmd("QUIT")
    first.close()
    srv.wait_log(r"logout ", since=mark)
    text = srv.log_since(mark)
    expect = [
        r"auth failed user=alice@example\.org peer=127\.0\.0\.1 "
        r"session=\S+ proto=pop3 cause=wrong password",
        r"auth failed user=ghost@example\.org peer=127\.0\.0\.1 "
        r"session=\S+ proto=pop3 cause=unknown user",
        r"login user=alice@example\.org peer=127\.0\.0\.1 session=\S+ "
        r"proto=pop3 mech=USER tls=no",
        r"refused peer=127\.0\.0\.1 session=\S+ proto=pop3 user=\S+ cause=\S",
        r"logout user=alice@example\.org peer=127\.0\.0\.1 session=\S+ "
        r"proto=pop3 retrieved=\d+ deleted=\d+",
    ]
    missing = [e for e in expect if not re.search(e, text)]
    assert not missing, "log lines not in the documented form:\n%s\n" \
        "log:\n%s" % ("\n".join(missing), text)


# -- hostile names (INV-S2, INV-U1, INV-A1) -------------------------------------

@pytest.mark.parametrize("name", [
    "../../etc/passwd", "alice/../bob@example.org", "alice@example.org/..",
    "alice@../example.org", "..@example.org",
    "%2e%2e@example.org", "alice@example.org@example.org", "@example.org",
    "alice@", "a" * 65 + "@example.org", "alice@" + "d" * 200 + ".org",
    "*@example.org", "alice%example.org", "Alice\u00e9@example.org",
])
def test_hostile_user_names(shared_server, name):
    srv = shared_server
    before = sorted(os.listdir(srv.base))
    with srv.connect() as c:
        c.send(("USER %s\r\n" % name).encode("utf-8"))
        r = c.line()
        if r.startswith("+OK"):
            r = c.cmd("PASS " + ALICE_PW)
        assert r.startswith("-ERR"), (name, r)
        r = c.cmd("AUTH PLAIN " + plain_ir(name, ALICE_PW))
        assert r.startswith("-ERR"), (name, r)
        assert_not_logged_in(c)
    assert sorted(os.listdir(srv.base)) == before
    assert set(os.listdir(os.path.join(srv.data_dir, "mail"))) <= \
        {"example.org"}


def test_inv_s2_no_log_injection_via_sasl_name(shared_server):
    srv = shared_server
    mark = srv.log_mark()
    evil = "x\nlogin user=admin@example.org peer=6.6.6.6 session=1 " \
           "proto=pop3 mech=USER tls=no\r"
    with srv.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(evil, "pw"))
        assert r.startswith("-ERR"), r
        c.cmd("QUIT")
    time.sleep(0.3)
    for line in srv.log_since(mark).splitlines():
        assert not re.search(r"(info|notice|warning|error): login "
                             r"user=admin@example\.org", line), line
        assert "\r" not in line, repr(line)


def test_apop_disabled_by_default(shared_server):
    with shared_server.connect() as c:
        assert "<" not in c.greeting  # no APOP timestamp (RFC 1939 sec. 7)
        r = c.cmd("APOP alice@example.org 0123456789abcdef0123456789abcdef")
        assert r.startswith("-ERR"), r
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        c.cmd("QUIT")


def test_inv_a1_same_timing_unknown_user_and_wrong_password(shared_server):
    """With auth_failure_delay = 0 the password hash dominates: an unknown
    user must cost the same (a dummy verification), or the time of the
    reply tells which names exist."""
    import statistics
    srv = shared_server

    def sample(user):
        ts = []
        for _ in range(7):
            with srv.connect() as c:
                assert c.cmd("USER " + user).startswith("+OK")
                t0 = time.monotonic()
                assert c.cmd("PASS wrong-pw") == AUTH_FAILED
                ts.append(time.monotonic() - t0)
        return statistics.median(ts)

    known = sample(ALICE)
    unknown = sample("ghost-%d@example.org" % os.getpid())
    slow = max(known, unknown)
    assert abs(known - unknown) <= 0.5 * slow + 0.010, (known, unknown)


def test_users_file_logged_by_its_configured_path(make_server):
    """The auth process reads the users file inside a chroot, where its
    name is only "/users"; the log names the path the admin configured,
    at start and on reload."""
    srv = make_server()
    srv.wait_log(r"users file %s loaded: \d+ users"
                 % re.escape(srv.users_file))
    mark = srv.log_mark()
    srv.hup()
    srv.wait_log(r"users file %s loaded: \d+ users"
                 % re.escape(srv.users_file), since=mark, timeout=10)

