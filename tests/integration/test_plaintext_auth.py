"""plaintext_auth per listener (postd.conf(5)): plaintext_auth.NAME wins
over the global plaintext_auth for that listener only. CAPA, EHLO and the
refusals of USER/PASS/AUTH (RFC 2595 section 4 with RFC 3206 [AUTH];
RFC 4954 538 5.7.11; RFC 3207 530 5.7.0) all follow the listener's value;
postd -t shows which value wins where."""

import subprocess

import pytest

from conftest import ALICE, ALICE_PW, POSTD
from pop3util import plain_ir
from smtputil import SmtpConn

PLAINTEXT_REFUSED = "-ERR [AUTH] Plaintext authentication requires TLS"


def capa_names(c):
    return [ln.split()[0].upper() for ln in c.capa()]


def pop3_user_pass_ok(srv):
    """USER/PASS without TLS logs in, and CAPA offers it."""
    with srv.connect() as c:
        names = capa_names(c)
        assert "USER" in names and "SASL" in names, names
        assert c.login(ALICE, ALICE_PW).startswith("+OK")
        assert c.cmd("STAT").startswith("+OK ")
        c.cmd("QUIT")


def pop3_plaintext_refused(srv):
    """USER/PASS and AUTH PLAIN without TLS are refused, CAPA hides them,
    and the refusal is logged once per command."""
    mark = srv.log_mark()
    with srv.connect() as c:
        names = capa_names(c)
        assert "STLS" in names, names
        assert "USER" not in names and "SASL" not in names, names
        r = c.cmd("USER " + ALICE)
        assert r.startswith(PLAINTEXT_REFUSED), r
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith(PLAINTEXT_REFUSED), r
        assert c.cmd("STAT").startswith("-ERR")
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=pop3 user=- "
                 r"cause=plaintext login without TLS", since=mark)


def smtp_auth_before_tls_ok(srv, port):
    with SmtpConn(port) as c:
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235 2.7.0"), r
        c.cmd("QUIT")


def submission_tls_required(srv):
    """No AUTH offered or taken before STARTTLS (538 5.7.11), MAIL wants
    STARTTLS first (530 5.7.0), each refusal logged; after STARTTLS
    AUTH works."""
    mark = srv.log_mark()
    with SmtpConn(srv.submission_port) as c:
        code, exts, texts = c.ehlo()
        assert code == 250 and "STARTTLS" in exts, texts
        assert "AUTH" not in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("538 5.7.11 "), r
        r = c.cmd("AUTH LOGIN")
        assert r.startswith("538 5.7.11 "), r
        r = c.cmd("MAIL FROM:<%s>" % ALICE)
        assert r.startswith("530 5.7.0 "), r
        c.send(b"STARTTLS\r\n")
        assert c.read_reply_unbuffered().startswith(b"220")
        c.starttls(srv.ctx())
        code, exts, texts = c.ehlo()
        assert "AUTH" in exts, texts
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("235 2.7.0"), r
        c.cmd("QUIT")
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=submission "
                 r"user=- cause=TLS required: plaintext AUTH before STARTTLS "
                 r"\(plaintext_auth\)", since=mark)
    srv.wait_log(r"refused peer=127\.0\.0\.1 session=\S+ proto=submission "
                 r"user=- cause=TLS required: MAIL before STARTTLS",
                 since=mark)


# -- global loopback, submission no ---------------------------------------------

@pytest.fixture(scope="module")
def submission_no_server(tls_files):
    from conftest import running_server, _require_binaries
    _require_binaries()
    with running_server(tls_files, overrides={
            "plaintext_auth": "loopback",
            "plaintext_auth.submission": "no",
            "smtp_port25_auth": "yes"}) as s:
        yield s


def test_submission_no_pop3_keeps_global_loopback(submission_no_server):
    pop3_user_pass_ok(submission_no_server)


def test_submission_no_refuses_auth_before_starttls(submission_no_server):
    submission_tls_required(submission_no_server)


def test_submission_no_smtp_keeps_global_loopback(submission_no_server):
    """listen.smtp (smtp_port25_auth = yes) has no key of its own: the global
    loopback still lets a local client authenticate in clear."""
    srv = submission_no_server
    smtp_auth_before_tls_ok(srv, srv.smtp_port)


def test_submission_no_submissions_unaffected(submission_no_server):
    """Implicit TLS: the policy is moot there, AUTH simply works."""
    import smtplib
    srv = submission_no_server
    c = smtplib.SMTP_SSL("127.0.0.1", srv.submissions_port,
                         local_hostname="laptop.example",
                         context=srv.ctx(), timeout=30)
    try:
        code, text = c.login(ALICE, ALICE_PW)
        assert code == 235, text
    finally:
        c.quit()


# -- global no, pop3 loopback ---------------------------------------------------

@pytest.fixture(scope="module")
def pop3_loopback_server(tls_files):
    from conftest import running_server, _require_binaries
    _require_binaries()
    with running_server(tls_files, overrides={
            "plaintext_auth": "no",
            "plaintext_auth.pop3": "loopback"}) as s:
        yield s


def test_pop3_loopback_allows_user_pass(pop3_loopback_server):
    pop3_user_pass_ok(pop3_loopback_server)


def test_pop3_loopback_allows_auth_plain(pop3_loopback_server):
    with pop3_loopback_server.connect() as c:
        r = c.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW))
        assert r.startswith("+OK"), r
        c.cmd("QUIT")


def test_pop3_loopback_submission_keeps_global_no(pop3_loopback_server):
    submission_tls_required(pop3_loopback_server)


# -- the per-listener value wins in both directions -------------------------------

def test_pop3_no_overrides_global_yes(make_server):
    srv = make_server(overrides={"plaintext_auth": "yes",
                                 "plaintext_auth.pop3": "no"})
    pop3_plaintext_refused(srv)
    smtp_auth_before_tls_ok(srv, srv.submission_port)


# -- postd -t --------------------------------------------------------------------

def run_check(srv):
    return subprocess.run([POSTD, "-t", "-c", srv.conf], capture_output=True,
                          text=True, timeout=30)


def test_postd_t_shows_the_winning_value(make_server):
    srv = make_server(overrides={"plaintext_auth": "loopback",
                                 "plaintext_auth.submission": "no"},
                      start=False)
    p = run_check(srv)
    assert p.returncode == 0, p.stderr
    assert "postd: plaintext_auth: pop3=loopback smtp=loopback " \
        "submission=no imap=loopback\n" in p.stdout, p.stdout


@pytest.mark.parametrize("key,needle", [
    ("plaintext_auth.submissions",
     "plaintext_auth.submissions: submissions is TLS from the first byte, "
     "so plaintext_auth does not apply"),
    ("plaintext_auth.pop3s", "pop3s is TLS from the first byte"),
    ("plaintext_auth.http", "http takes no logins"),
    ("plaintext_auth.submision", "'submision' is not a listener"),
])
def test_postd_t_refuses_key_that_cannot_apply(make_server, key, needle):
    # no users: postctl would refuse the file too
    srv = make_server(overrides={key: "no"}, users={}, start=False)
    p = run_check(srv)
    assert p.returncode == 1, p.stdout
    assert needle in p.stderr, p.stderr
