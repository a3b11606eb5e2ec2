"""postctl check URL: the client-side diagnosis (issue 4), against postd,
a private Dovecot (IMAP, POP3) and a private Postfix smtpd (SMTP, no AUTH).

Each test runs the real postctl binary and checks its exit status
(sysexits) and the plain-words lines it prints.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import ALICE, ALICE_PW, POSTCTL, free_port, _child_env

EX_OK = 0
EX_USAGE = 64
EX_NOHOST = 68
EX_UNAVAILABLE = 69
EX_NOPERM = 77


def run_check(url, *opts, password=None, timeout=60):
    p = subprocess.run([POSTCTL, "check"] + list(opts) + [url],
                       input=(password + "\n").encode() if password
                       is not None else b"",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=_child_env())
    out = p.stdout.decode(errors="replace")
    return p.returncode, out + p.stderr.decode(errors="replace")


def verdicts(out):
    """{step: verdict} of the step lines (the last line per step wins)."""
    v = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("ok", "warn", "FAIL"):
            v[parts[1]] = parts[0]
    return v


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


@pytest.fixture(scope="module")
def odd_certs(tls_files):
    """Certificates that a client must refuse: signed by the test CA but
    for another name, already expired, and self-signed."""
    d = tempfile.mkdtemp(prefix="postd-check-certs-")
    os.chmod(d, 0o755)
    ca, cakey = tls_files["ca"], os.path.join(tls_files["dir"], "ca.key")
    out = {"dir": d}
    for name, cn, days in (("wrongname", "mail.example.net", "2"),
                           ("expired", "localhost", "-1")):
        _openssl("req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                 "/CN=" + cn, "-keyout", name + ".key", "-out",
                 name + ".csr", cwd=d)
        with open(os.path.join(d, name + ".cnf"), "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % cn)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca, "-CAkey",
                 cakey, "-CAcreateserial", "-days", days, "-extfile",
                 name + ".cnf", "-out", name + ".pem", cwd=d)
        out[name] = (os.path.join(d, name + ".pem"),
                     os.path.join(d, name + ".key"))
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", "self.key", "-out", "self.pem", cwd=d)
    out["self"] = (os.path.join(d, "self.pem"), os.path.join(d, "self.key"))
    for n in os.listdir(d):
        os.chmod(os.path.join(d, n), 0o644)
    yield out
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# postd: success paths
# ---------------------------------------------------------------------------

def test_check_pop3_starttls_success(shared_server):
    srv = shared_server
    srv.clear_mailbox()
    srv.deliver(ALICE, b"Subject: one\r\n\r\nbody\r\n")
    rc, out = run_check("pop3://%s@localhost:%d" % (ALICE, srv.pop3_port),
                        "--ca", srv.ca, password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    for step in ("dns", "connect", "greeting", "capa", "starttls", "tls",
                 "cert", "name", "capa(tls)", "auth", "stat", "quit"):
        assert v.get(step) == "ok", (step, out)
    assert "STLS" in out and "1 messages" in out
    assert "result: ok" in out


def test_check_pop3s_success(shared_server):
    srv = shared_server
    rc, out = run_check("pop3s://%s@127.0.0.1:%d" % (ALICE, srv.pop3s_port),
                        "--ca", srv.ca, password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert v["tls"] == "ok" and v["cert"] == "ok" and v["auth"] == "ok"
    assert "TLSv1." in out
    assert "the certificate covers 127.0.0.1" in out
    assert "starttls" not in v


@pytest.mark.parametrize("scheme", ["imap", "imaps"])
def test_check_imap_against_postd(shared_server, scheme):
    """The IMAP side of postctl check against postd itself: STARTTLS on
    the imap port, implicit TLS on imaps, LOGIN and SELECT INBOX."""
    srv = shared_server
    srv.clear_mailbox()
    srv.deliver(ALICE, b"Subject: one\r\n\r\nbody\r\n")
    port = srv.imap_port if scheme == "imap" else srv.imaps_port
    rc, out = run_check("%s://%s@localhost:%d" % (scheme, ALICE, port),
                        "--ca", srv.ca, password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert v["auth"] == "ok" and v["select"] == "ok", out
    if scheme == "imap":
        assert v["starttls"] == "ok", out
    assert "IMAP4rev1" in out and "INBOX: 1 messages" in out, out


def test_check_imaps_wrong_password_against_postd(shared_server):
    srv = shared_server
    rc, out = run_check("imaps://%s@localhost:%d" % (ALICE, srv.imaps_port),
                        "--ca", srv.ca, password="wrong-password")
    assert rc == EX_NOPERM, out
    assert "[AUTHENTICATIONFAILED]" in out, out
    assert "rejected the user name or password" in out, out


def test_check_user_with_percent_escape(shared_server):
    srv = shared_server
    rc, out = run_check("pop3s://alice%%40example.org@localhost:%d"
                        % srv.pop3s_port, "--ca", srv.ca, password=ALICE_PW)
    assert rc == EX_OK, out
    assert "logged in as alice@example.org" in out


@pytest.mark.parametrize("scheme", ["submission", "submissions"])
def test_check_submission_success(shared_server, scheme):
    srv = shared_server
    port = srv.submission_port if scheme == "submission" \
        else srv.submissions_port
    rc, out = run_check("%s://%s@localhost:%d" % (scheme, ALICE, port),
                        "--ca", srv.ca, password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert v["auth"] == "ok" and v["noop"] == "ok" and v["quit"] == "ok"
    assert "AUTH" in out


def test_check_smtp_mx_port_success(shared_server):
    """Port 25 style: STARTTLS, no AUTH expected; MX of example.org is a
    warning at most (the test machine has no DNS for it)."""
    srv = shared_server
    rc, out = run_check("smtp://%s@localhost:%d" % (ALICE, srv.smtp_port),
                        "--ca", srv.ca, "-t", "3", password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert v["starttls"] == "ok" and v["noop"] == "ok"
    assert v["mx"] in ("ok", "warn")
    assert v["auth"] in ("ok", "warn")


def test_check_without_user_stops_after_capabilities(shared_server):
    srv = shared_server
    rc, out = run_check("pop3://localhost:%d" % srv.pop3_port,
                        "--ca", srv.ca)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert "auth" not in v and "stat" not in v
    assert v["capa(tls)"] == "ok"


# ---------------------------------------------------------------------------
# postd: failures explained
# ---------------------------------------------------------------------------

def test_check_wrong_password_is_noperm_with_auth_code(shared_server):
    srv = shared_server
    rc, out = run_check("pop3s://%s@localhost:%d" % (ALICE, srv.pop3s_port),
                        "--ca", srv.ca, password="wrong-password")
    assert rc == EX_NOPERM, out
    assert verdicts(out)["auth"] == "FAIL"
    assert "[AUTH]" in out
    assert "rejected the user name or password" in out
    assert "result: FAIL at auth" in out


def test_check_wrong_password_smtp_535(shared_server):
    srv = shared_server
    rc, out = run_check("submissions://%s@localhost:%d"
                        % (ALICE, srv.submissions_port),
                        "--ca", srv.ca, password="wrong-password")
    assert rc == EX_NOPERM, out
    assert "535" in out and "5.7.8" in out


def test_check_connection_refused():
    port = free_port()  # nothing listens there
    rc, out = run_check("pop3://127.0.0.1:%d" % port)
    assert rc == EX_UNAVAILABLE, out
    assert "connection refused" in out
    assert "nothing listens on that port" in out


def test_check_unknown_host_is_nohost():
    rc, out = run_check("pop3://no-such-host.invalid", "-t", "2")
    assert rc == EX_NOHOST, out
    assert verdicts(out)["dns"] == "FAIL"


def test_check_usage_errors():
    assert run_check("http://localhost")[0] == EX_USAGE
    assert run_check("pop3://localhost:0")[0] == EX_USAGE
    assert run_check("pop3://[::1")[0] == EX_USAGE
    assert run_check("pop3://localhost", "-t", "x")[0] == EX_USAGE


def test_check_self_signed_without_ca(shared_server):
    """The test CA is not in the system store: without --ca the chain
    cannot be verified, and the message says why and what to do."""
    srv = shared_server
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3s_port)
    assert rc == EX_UNAVAILABLE, out
    assert verdicts(out)["cert"] == "FAIL"
    assert "--ca FILE" in out
    # --insecure turns it into a warning and goes on
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3s_port,
                        "--insecure")
    assert rc == EX_OK, out
    assert verdicts(out)["cert"] == "warn"


def test_check_wrong_name(make_server, odd_certs):
    cert, key = odd_certs["wrongname"]
    srv = make_server(overrides={"tls_cert": cert, "tls_key": key})
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3s_port,
                        "--ca", srv.ca)
    assert rc == EX_UNAVAILABLE, out
    v = verdicts(out)
    assert v["cert"] == "ok" and v["name"] == "FAIL"
    assert "not valid for localhost" in out
    assert "mail.example.net" in out


def test_check_expired_certificate(make_server, odd_certs):
    cert, key = odd_certs["expired"]
    srv = make_server(overrides={"tls_cert": cert, "tls_key": key})
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3s_port,
                        "--ca", srv.ca)
    assert rc == EX_UNAVAILABLE, out
    assert "has expired" in out
    assert "renew" in out


def test_check_really_self_signed(make_server, odd_certs):
    cert, key = odd_certs["self"]
    srv = make_server(overrides={"tls_cert": cert, "tls_key": key})
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3s_port,
                        "--ca", srv.ca)
    assert rc == EX_UNAVAILABLE, out
    assert "self-signed" in out


def test_check_pop3_on_smtp_port(shared_server):
    srv = shared_server
    rc, out = run_check("pop3://%s@localhost:%d" % (ALICE, srv.smtp_port),
                        password=ALICE_PW)
    assert rc == EX_UNAVAILABLE, out
    assert "the server answered with an SMTP greeting on a POP3 port" \
        in out


def test_check_plain_scheme_on_tls_port(shared_server):
    srv = shared_server
    rc, out = run_check("pop3://localhost:%d" % srv.pop3s_port, "-t", "2")
    assert rc == EX_UNAVAILABLE, out
    assert "may expect TLS first" in out


def test_check_tls_scheme_on_plain_port(shared_server):
    srv = shared_server
    rc, out = run_check("pop3s://localhost:%d" % srv.pop3_port, "-t", "3")
    assert rc == EX_UNAVAILABLE, out
    assert "did not answer with TLS" in out


# ---------------------------------------------------------------------------
# A fake server: hostile bytes never reach the terminal unescaped
# ---------------------------------------------------------------------------

def _one_shot_server(script, received=None):
    """Accepts one connection, sends script[0], then answers each line
    read with the next item (lines read go to received). Returns the
    port."""
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]

    def serve():
        conn, _ = ls.accept()
        conn.settimeout(5)
        try:
            conn.sendall(script[0])
            f = conn.makefile("rb")
            for reply in script[1:]:
                line = f.readline()
                if not line:
                    break
                if received is not None:
                    received.append(line)
                conn.sendall(reply)
            time.sleep(0.2)
        except OSError:
            pass
        conn.close()
        ls.close()

    threading.Thread(target=serve, daemon=True).start()
    return port


def test_check_escapes_server_text():
    port = _one_shot_server([b"+OK hi \x1b[31mred\x07\r\n",
                             b"-ERR no \x1b]0;title\x07\r\n"])
    rc, out = run_check("pop3://127.0.0.1:%d" % port, "-t", "3")
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31mred" in out


def test_check_overlong_line_is_refused():
    port = _one_shot_server([b"+OK " + b"A" * 20000 + b"\r\n"])
    rc, out = run_check("pop3://127.0.0.1:%d" % port, "-t", "3")
    assert rc == EX_UNAVAILABLE, out
    assert "overlong line" in out


def test_check_stray_bytes_after_starttls():
    port = _one_shot_server([b"+OK hi\r\n",
                             b"+OK\r\nSTLS\r\nUSER\r\n.\r\n",
                             b"+OK go ahead\r\n+OK injected\r\n"])
    rc, out = run_check("pop3://bob@127.0.0.1:%d" % port, "-t", "3",
                        password="x")
    assert rc == EX_UNAVAILABLE, out
    assert "injection" in out


def test_check_no_stls_refuses_cleartext_password():
    port = _one_shot_server([b"+OK hi\r\n", b"+OK\r\nUSER\r\n.\r\n"])
    rc, out = run_check("pop3://bob@127.0.0.1:%d" % port, "-t", "3",
                        password="x")
    assert rc == EX_UNAVAILABLE, out
    assert "your password would be sent in clear" in out


def test_check_imap_logindisabled_uses_authenticate():
    """LOGINDISABLED (RFC 3501 §6.2.3): never LOGIN, use AUTHENTICATE
    PLAIN. (Dovecot treats loopback as secure and never says it, so a
    scripted server stands in.)"""
    got = []
    port = _one_shot_server([
        b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] hi\r\n",
        b"* CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN\r\nc1 OK\r\n",
        b"+ \r\n",
        b"c2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"],
        received=got)
    rc, out = run_check("imap://bob@127.0.0.1:%d" % port, "-t", "3",
                        "--insecure", password="pw")
    assert rc == EX_NOPERM, out
    assert got[1] == b"c2 AUTHENTICATE PLAIN\r\n", got
    assert not any(b"LOGIN " in g for g in got), got
    assert "[AUTHENTICATIONFAILED]" in out and "RFC 5530" in out


def test_check_imap_login_quotes_strings():
    got = []
    port = _one_shot_server([
        b"* OK hi\r\n",
        b"* CAPABILITY IMAP4rev1\r\nc1 OK\r\n",
        b"c2 OK logged in\r\n",
        b"* 3 EXISTS\r\nc3 OK [READ-WRITE] done\r\n",
        b"* BYE\r\nc4 OK\r\n"], received=got)
    rc, out = run_check("imap://bob@127.0.0.1:%d" % port, "-t", "3",
                        "--insecure", password='p"w\\x')
    assert rc == EX_OK, out
    assert got[1] == b'c2 LOGIN "bob" "p\\"w\\\\x"\r\n', got
    assert "INBOX: 3 messages" in out


# ---------------------------------------------------------------------------
# Dovecot: IMAP and POP3 (a private instance, passwd-file users)
# ---------------------------------------------------------------------------

DOVECOT = "/usr/sbin/dovecot"


@pytest.fixture(scope="module")
def dovecot(tls_files):
    if os.geteuid() != 0:
        pytest.skip("a private Dovecot needs root")
    if not os.access(DOVECOT, os.X_OK):
        pytest.skip("dovecot is not installed")
    import pwd
    base = tempfile.mkdtemp(prefix="postd-check-dovecot-")
    os.chmod(base, 0o755)
    run = os.path.join(base, "run")
    mail = os.path.join(base, "mail")
    os.makedirs(run)
    os.makedirs(mail)
    nobody = pwd.getpwnam("nobody")
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    users = os.path.join(base, "users")
    with open(users, "w") as f:
        f.write("%s:{PLAIN}%s\n" % (ALICE, ALICE_PW))
    ports = {k: free_port() for k in ("imap", "imaps", "pop3", "pop3s")}
    conf = os.path.join(base, "dovecot.conf")
    log = os.path.join(base, "dovecot.log")
    with open(conf, "w") as f:
        f.write("""
protocols = imap pop3
listen = 127.0.0.1
base_dir = {run}
state_dir = {run}/state
instance_name = postd-check-{imap}
log_path = {log}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{mail}/%d/%n
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
""".format(run=run, log=log, cert=tls_files["cert"], key=tls_files["key"],
           mail=mail, users=users, **ports))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", ports["imap"]), 1).close()
            socket.create_connection(("127.0.0.1", ports["pop3s"]),
                                     1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = open(log).read() if os.path.exists(log) else ""
                proc.kill()
                pytest.skip("dovecot did not start: %s" % text[-1000:])
            time.sleep(0.1)
    ports["ca"] = tls_files["ca"]
    yield ports
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("scheme", ["imap", "imaps", "pop3", "pop3s"])
def test_check_dovecot_success(dovecot, scheme):
    rc, out = run_check("%s://%s@localhost:%d" % (scheme, ALICE,
                                                  dovecot[scheme]),
                        "--ca", dovecot["ca"], password=ALICE_PW)
    assert rc == EX_OK, out
    v = verdicts(out)
    assert v["auth"] == "ok"
    assert v["select" if scheme.startswith("imap") else "stat"] == "ok"
    if not scheme.endswith("s"):
        assert v["starttls"] == "ok"
    if scheme.startswith("imap"):
        assert "IMAP4rev1" in out and "INBOX: 0 messages" in out


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_check_dovecot_wrong_password(dovecot, scheme):
    rc, out = run_check("%s://%s@localhost:%d" % (scheme, ALICE,
                                                  dovecot[scheme]),
                        "--ca", dovecot["ca"], password="wrong")
    assert rc == EX_NOPERM, out
    code = "[AUTHENTICATIONFAILED]" if scheme == "imaps" else "[AUTH]"
    assert code in out
    assert "rejected the user name or password" in out


def test_check_imap_on_pop3_port(dovecot):
    rc, out = run_check("imap://localhost:%d" % dovecot["pop3"])
    assert rc == EX_UNAVAILABLE, out
    assert "answered with a POP3 greeting on an IMAP port" in out


# ---------------------------------------------------------------------------
# Postfix: smtpd greeting, EHLO, STARTTLS, NOOP (a private instance)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def postfix(tls_files):
    if os.geteuid() != 0:
        pytest.skip("a private Postfix needs root")
    if not os.access("/usr/sbin/postfix", os.X_OK):
        pytest.skip("postfix is not installed")
    base = tempfile.mkdtemp(prefix="postd-check-postfix-")
    os.chmod(base, 0o755)
    etc, queue, data = (os.path.join(base, n)
                        for n in ("etc", "queue", "data"))
    for d in (etc, queue, data):
        os.makedirs(d)
    shutil.chown(data, "postfix")
    port = free_port()
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write("""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
myhostname = mx.example.org
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
""".format(queue=queue, data=data, base=base, cert=tls_files["cert"],
           key=tls_files["key"]))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write("""127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""".format(port=port))
    env = dict(os.environ, LC_ALL="C")
    r = subprocess.run(["postfix", "-c", etc, "start"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("private postfix did not start: %s"
                    % r.stdout.decode(errors="replace")[-1000:])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                subprocess.run(["postfix", "-c", etc, "abort"], env=env)
                pytest.skip("private postfix does not listen")
            time.sleep(0.2)
    yield {"port": port, "ca": tls_files["ca"]}
    subprocess.run(["postfix", "-c", etc, "stop"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def test_check_postfix_smtp(postfix):
    rc, out = run_check("smtp://localhost:%d" % postfix["port"],
                        "--ca", postfix["ca"])
    assert rc == EX_OK, out
    v = verdicts(out)
    for step in ("greeting", "capa", "starttls", "tls", "cert",
                 "capa(tls)", "noop", "quit"):
        assert v.get(step) == "ok", (step, out)
    assert "mx.example.org ESMTP" in out
    assert "PIPELINING" in out


def test_check_postfix_no_auth_on_port_25(postfix):
    """Postfix offers no AUTH here: a warning on an MX port, not a
    failure, and the session goes on to NOOP."""
    rc, out = run_check("smtp://%s@localhost:%d" % (ALICE, postfix["port"]),
                        "--ca", postfix["ca"], "-t", "3",
                        password=ALICE_PW)
    assert rc == EX_OK, out
    assert verdicts(out)["auth"] == "warn"
    assert verdicts(out)["noop"] == "ok"


def test_check_submission_against_postfix_without_auth_fails(postfix):
    rc, out = run_check("submission://%s@localhost:%d"
                        % (ALICE, postfix["port"]), "--ca", postfix["ca"],
                        "-t", "3", password=ALICE_PW)
    assert rc == EX_UNAVAILABLE, out
    assert "no PLAIN or LOGIN" in out


def test_check_pop3_bare_ok_to_stat_is_not_read_past_its_end():
    """A STAT answer of a bare "+OK" is malformed: the numbers must not
    come from the bytes of an older, longer line in the read buffer."""
    port = _one_shot_server([b"+OK hi\r\n", b"+OK\r\nUSER\r\n.\r\n",
                             b"+OK 7 99 send the password\r\n",
                             b"+OK 7 99 logged in\r\n",
                             b"+OK\r\n", b"+OK bye\r\n"])
    rc, out = run_check("pop3://bob@127.0.0.1:%d" % port, "-t", "3",
                        "--insecure", password="x")
    assert "7 messages" not in out, out
    assert rc == EX_UNAVAILABLE, out
    assert verdicts(out).get("stat") == "FAIL", out
