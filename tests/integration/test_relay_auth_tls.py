"""The smarthost password goes only over verified TLS (issue 8, item 5).

With relay_auth set, the queue runner checks the smarthost's certificate
(chain against tls_ca_file or the system store, the relay_host name with
SSL_set1_host) before AUTH, whatever tls_policy says: under the default
"may" an unverified STARTTLS would hand the password to anyone on the
path or anyone answering DNS for relay_host. A failure defers the mail
and logs one warning naming the relay host, the cause and the fix. The
opt-out, relay_auth_insecure, is accepted only for a smarthost on this
machine and logged.

Also: tls_policy dane is refused when the config is read (it used to be
accepted and run as "may").

The smarthost is remote.SmtpSink (aiosmtpd, STARTTLS, AUTH required, every
AUTH command recorded); its name comes from remote.DnsServer (dnsmasq).
"""

import os
import re
import smtplib
import subprocess

import pytest

from conftest import ALICE, ALICE_PW, POSTD, REFERENCE, _child_env
from smtputil import queue_entries

remote = pytest.importorskip("remote")

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot", reason="postd only")

SMARTHOST = "smarthost.test"
FAST = {"queue_retry_min": "1s", "queue_retry_max": "2s"}
RCPT = "far@elsewhere.example"


# -- certificates ----------------------------------------------------------------

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def _ext(cwd, name, sans):
    path = os.path.join(cwd, name + ".cnf")
    with open(path, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n" % sans)
    return path


def self_signed(tls_files, name):
    """A self-signed leaf that carries the right names: only the chain is
    wrong."""
    d = tls_files["dir"]
    sans = "DNS:%s,IP:127.0.0.1" % name
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
             "-subj", "/CN=" + name, "-addext", "subjectAltName=" + sans,
             "-keyout", "self-key.pem", "-out", "self-cert.pem", cwd=d)
    return (os.path.join(d, "self-cert.pem"), os.path.join(d, "self-key.pem"))


def ca_signed(tls_files, name):
    """A leaf for name (DNS only) signed by the test CA (tls_files["ca"])."""
    d = tls_files["dir"]
    tag = name.replace(".", "-")
    key, csr, cert = (tag + "-key.pem", tag + ".csr", tag + "-cert.pem")
    _openssl("req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + name,
             "-keyout", key, "-out", csr, cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1",
             "-extfile", _ext(d, tag, "DNS:" + name), "-out", cert, cwd=d)
    return (os.path.join(d, cert), os.path.join(d, key))


# -- helpers ---------------------------------------------------------------------

def auth_file(tls_files):
    path = os.path.join(tls_files["dir"], "relay_auth")
    with open(path, "w") as f:
        f.write("relayuser relay-pass\n")
    os.chmod(path, 0o600)
    return path


def submit(srv, subject, rcpt=RCPT):
    c = smtplib.SMTP("127.0.0.1", srv.submission_port,
                     local_hostname="laptop.example", timeout=30)
    try:
        c.starttls(context=srv.ctx())
        c.ehlo()
        c.login(ALICE, ALICE_PW)
        msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello.\r\n"
               % (ALICE, rcpt, subject))
        assert c.sendmail(ALICE, [rcpt], msg.encode()) == {}
    finally:
        c.quit()


def submit_to(srv, rcpt):
    submit(srv, "to " + rcpt, rcpt)


@pytest.fixture
def rig():
    """(dns, sink factory): the sinks and the DNS server stop at the end."""
    made = []

    def sink(cert, auth=True):
        s = remote.SmtpSink(tls=cert, auth={"relayuser": "relay-pass"}
                            if auth else None)
        made.append(s)
        return s
    dns = remote.DnsServer(a={SMARTHOST: "127.0.0.1",
                              "wrong.test": "127.0.0.1"})
    yield dns, sink
    for s in made:
        s.stop()
    dns.stop()


def relay_server(make_server, dns, sink, tls_files, host=SMARTHOST,
                 **extra):
    overrides = dict(FAST, **{
        "relay_host": "%s:%d" % (host, sink.port),
        "relay_auth": auth_file(tls_files),
        "dns_servers": dns.address})
    overrides.update(extra)
    return make_server(overrides=overrides)


def assert_deferred_without_auth(srv, sink, mark, host, cause, fix):
    """The smarthost saw STARTTLS but never AUTH; the recipient is
    deferred, the mail still queued; one warning names relay host, cause
    and fix."""
    srv.wait_log(r"rcpt=%s .*status=(deferred|sent)" % re.escape(RCPT),
                 since=mark, timeout=15)
    assert sink.auth_commands == []
    assert sink.messages == []
    assert sink.connections >= 1
    srv.wait_log(r"rcpt=%s .*status=deferred until" % re.escape(RCPT),
                 since=mark)
    srv.wait_log(r"warning: id=\S+ relay_host %s\[127\.0\.0\.1\]:%d: TLS "
                 r"handshake failed: %s; relay_auth credentials not sent, "
                 r"mail deferred; fix: %s" % (re.escape(host), sink.port,
                                              cause, fix),
                 since=mark)
    assert len(queue_entries(srv)) == 1


# -- relay_auth needs verified TLS ---------------------------------------------

def test_self_signed_smarthost_never_gets_the_password(make_server, rig,
                                                       tls_files):
    """Default tls_policy (may), relay_auth set, a smarthost whose
    certificate nobody signed: no AUTH is ever sent, the mail waits."""
    dns, make_sink = rig
    sink = make_sink(self_signed(tls_files, SMARTHOST))
    srv = relay_server(make_server, dns, sink, tls_files)
    mark = srv.log_mark()
    submit(srv, "self-signed smarthost")
    assert_deferred_without_auth(
        srv, sink, mark, SMARTHOST,
        r"certificate not trusted: self-signed certificate",
        r"put the CA that signed the certificate in tls_ca_file")


def test_smarthost_signed_by_tls_ca_file_gets_auth(make_server, rig,
                                                   tls_files):
    dns, make_sink = rig
    sink = make_sink(ca_signed(tls_files, SMARTHOST))
    srv = relay_server(make_server, dns, sink, tls_files,
                       tls_ca_file=tls_files["ca"])
    submit(srv, "verified smarthost")
    assert sink.wait_messages(1, timeout=20)
    m = sink.messages[0]
    assert m.tls
    assert m.auth_user == "relayuser"
    assert m.rcpt_tos == [RCPT]
    assert sink.auth_commands == ["PLAIN"]


def test_smarthost_certificate_for_another_name_is_deferred(make_server, rig,
                                                            tls_files):
    """The chain is trusted, but the certificate is for smarthost.test and
    relay_host says wrong.test (which DNS points at the same server)."""
    dns, make_sink = rig
    sink = make_sink(ca_signed(tls_files, SMARTHOST))
    srv = relay_server(make_server, dns, sink, tls_files, host="wrong.test",
                       tls_ca_file=tls_files["ca"])
    mark = srv.log_mark()
    submit(srv, "wrong name")
    assert_deferred_without_auth(
        srv, sink, mark, "wrong.test", r"name mismatch: hostname mismatch",
        r"set relay_host to a name the certificate carries")


def test_insecure_opt_out_on_localhost_is_logged(make_server, rig,
                                                 tls_files):
    """relay_auth_insecure = yes for a smarthost on 127.0.0.1: AUTH over
    the unverified TLS, logged at start and per attempt."""
    dns, make_sink = rig
    sink = make_sink(self_signed(tls_files, SMARTHOST))
    srv = relay_server(make_server, dns, sink, tls_files, host="127.0.0.1",
                       relay_auth_insecure="yes")
    srv.wait_log(r"relay_auth_insecure: the relay_auth password goes to "
                 r"127\.0\.0\.1 over TLS whose certificate is not verified",
                 timeout=15)
    mark = srv.log_mark()
    submit(srv, "insecure localhost")
    assert sink.wait_messages(1, timeout=20)
    assert sink.messages[0].tls
    assert sink.messages[0].auth_user == "relayuser"
    srv.wait_log(r"relay_auth_insecure: AUTH over TLS that is not verified",
                 since=mark, timeout=15)


# -- config: refused values -------------------------------------------------------

def postd_t(srv):
    return subprocess.run([POSTD, "-t", "-c", srv.conf],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30, env=_child_env())


@pytest.mark.parametrize("key", ["tls_policy", "tls_policy.remote.example"])
def test_tls_policy_dane_is_refused(make_server, key):
    """dane used to be accepted and run as may: now postd -t and the start
    fail, saying it is not implemented and what is accepted."""
    srv = make_server(overrides={key: "dane"}, users={}, start=False)
    p = postd_t(srv)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "%s: 'dane' (RFC 7672) is not implemented; use may or verify" \
        % key in out, out
    start = subprocess.run([POSTD, "-f", "-c", srv.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, env=_child_env())
    assert start.returncode != 0
    assert b"'dane' (RFC 7672) is not implemented" in start.stderr


@pytest.mark.parametrize("host", ["smarthost.example", "192.0.2.1"])
def test_relay_auth_insecure_refused_for_a_remote_smarthost(make_server,
                                                            tls_files, host):
    srv = make_server(overrides={
        "relay_host": "%s:587" % host, "relay_auth": auth_file(tls_files),
        "relay_auth_insecure": "yes"}, users={}, start=False)
    p = postd_t(srv)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "relay_auth_insecure needs relay_auth and a relay_host on this " \
        "machine" in out, out


# -- a kept-open connection carries only mail its checks allow ----------------

def test_idle_connection_opened_under_may_not_reused_for_verify(make_server,
                                                                rig,
                                                                tls_files):
    """Two domains go to one HOST:PORT (transports): may.example under the
    default may, strict.example under verify with a CA that did not sign
    the server's certificate. The connection kept open after may.example's
    delivery (unverified TLS) must not carry strict.example's mail, which
    verify would refuse on a connection of its own."""
    dns, make_sink = rig
    sink = make_sink(self_signed(tls_files, SMARTHOST), auth=False)
    srv = make_server(overrides=dict(FAST, **{
        "transport.may.example": "127.0.0.1:%d" % sink.port,
        "transport.strict.example": "127.0.0.1:%d" % sink.port,
        "tls_policy.strict.example": "verify",
        "tls_ca_file": tls_files["ca"]}))
    mark = srv.log_mark()
    submit_to(srv, "a@may.example")
    assert sink.wait_messages(1, timeout=20)
    # The connection is parked for 5 s: the next message comes now.
    submit_to(srv, "b@strict.example")
    srv.wait_log(r"rcpt=b@strict\.example .*status=(deferred|sent)",
                 since=mark, timeout=15)
    assert [m.rcpt_tos for m in sink.messages] == [["a@may.example"]]
    srv.wait_log(r"rcpt=b@strict\.example .*certificate not trusted.*"
                 r"status=deferred until", since=mark)
