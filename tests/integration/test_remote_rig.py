"""The remote-side rig (remote.py) on its own: its DNS server answers what
it was given, its SMTP sink records, scripts replies, does STARTTLS and
AUTH, and can hang. The delivery tests rely on all of this."""

import os
import smtplib
import socket
import ssl
import time

import pytest

pytest.importorskip("aiosmtpd")

import remote  # noqa: E402

needs_dnsmasq = pytest.mark.skipif(not os.access(remote.DNSMASQ, os.X_OK),
                                   reason="dnsmasq (dnsmasq-base) missing")

MSG = b"From: a@sender.test\r\nSubject: rig\r\n\r\nHello sink.\r\n"


# -- DnsServer -------------------------------------------------------------------

@needs_dnsmasq
def test_dns_server_answers_the_records_given():
    records = {
        "mx": {"example.test": [(20, "mx2.example.test"),
                                (10, "mx1.example.test")]},
        "a": {"mx1.example.test": "127.0.0.2",
              "mx2.example.test": ["127.0.0.3", "127.0.0.4"],
              "aonly.test": "127.0.0.5"},
        "aaaa": {"mx1.example.test": "::1"},
        "null_mx": ["nullmx.test"],
    }
    with remote.DnsServer(records) as dns:
        assert dns.address == "127.0.0.1:%d" % dns.port
        rcode, mx = dns.query("example.test", "MX")
        assert rcode == "NOERROR"
        assert sorted(mx) == ["10 mx1.example.test", "20 mx2.example.test"]
        assert dns.query("mx1.example.test", "A") == ("NOERROR",
                                                       ["127.0.0.2"])
        assert dns.query("mx1.example.test", "AAAA") == ("NOERROR", ["::1"])
        rcode, addrs = dns.query("mx2.example.test", "A")
        assert sorted(addrs) == ["127.0.0.3", "127.0.0.4"]
        # RFC 7505 null MX: preference 0, the root name.
        assert dns.query("nullmx.test", "MX") == ("NOERROR", ["0 ."])
        # A name with only an address: NODATA for MX (implicit MX).
        assert dns.query("aonly.test", "MX") == ("NOERROR", [])
        assert dns.query("aonly.test", "A") == ("NOERROR", ["127.0.0.5"])
        # Authoritative for .test: unknown names do not exist.
        assert dns.query("nosuch.test", "MX") == ("NXDOMAIN", [])
        assert dns.query("ghost.example.test", "A") == ("NXDOMAIN", [])
        # Outside its zones there is no upstream.
        assert dns.query("example.org", "MX")[0] == "REFUSED"
    with pytest.raises(OSError):
        remote.dns_query("127.0.0.1", dns.port, "example.test", "MX",
                         timeout=0.5)


@needs_dnsmasq
def test_dns_server_keyword_form_and_null_mx_as_dot():
    with remote.DnsServer(mx={"remote.example": [(0, ".")]},
                          a={"other.example": "127.0.0.9"}) as dns:
        assert dns.query("remote.example", "MX") == ("NOERROR", ["0 ."])
        assert dns.query("other.example", "A") == ("NOERROR",
                                                    ["127.0.0.9"])
        assert dns.query("nosuch.example", "A") == ("NXDOMAIN", [])


@needs_dnsmasq
def test_dns_servers_run_side_by_side():
    with remote.DnsServer(a={"h.test": "127.0.0.2"}) as d1, \
            remote.DnsServer(a={"h.test": "127.0.0.3"}) as d2:
        assert d1.port != d2.port
        assert d1.query("h.test")[1] == ["127.0.0.2"]
        assert d2.query("h.test")[1] == ["127.0.0.3"]


# -- SmtpSink --------------------------------------------------------------------

def test_sink_records_a_message():
    with remote.SmtpSink() as sink:
        with smtplib.SMTP(sink.host, sink.port, local_hostname="client.test",
                          timeout=10) as c:
            code, _ = c.ehlo()
            assert code == 250
            refused = c.sendmail("a@sender.test",
                                 ["x@remote.test", "y@remote.test"], MSG)
            assert refused == {}
        assert sink.wait_messages(1, 5)
        m = sink.messages[0]
        assert m.mail_from == "a@sender.test"
        assert m.rcpt_tos == ["x@remote.test", "y@remote.test"]
        assert m.data == MSG
        assert m.tls is False
        assert m.ehlo_name == "client.test"
        assert m.auth_user is None
        assert m.peer[0] == "127.0.0.1"
        assert sink.connections == 1
        assert sink.data_attempts == 1
        assert not sink.wait_messages(2, 0.2)


def test_sink_starttls_and_auth(tls_files):
    sink = remote.SmtpSink(tls=(tls_files["cert"], tls_files["key"]),
                           auth={"relay-user": "relay-Secret"})
    try:
        ctx = ssl.create_default_context(cafile=tls_files["ca"])
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
            c.ehlo("client.test")
            assert c.has_extn("starttls")
            # No AUTH before TLS, and no mail without AUTH.
            assert not c.has_extn("auth")
            code, _ = c.mail("a@sender.test")
            assert code == 530
            c.rset()
            code, _ = c.starttls(context=ctx)
            assert code == 220
            c.ehlo("client.test")
            assert "PLAIN" in c.esmtp_features["auth"]
            assert "LOGIN" in c.esmtp_features["auth"]
            with pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("relay-user", "wrong")
            c.login("relay-user", "relay-Secret")
            c.sendmail("a@sender.test", ["x@remote.test"], MSG)
        assert sink.wait_messages(1, 5)
        m = sink.messages[0]
        assert m.tls is True
        assert m.auth_user == "relay-user"
        assert m.ehlo_name == "client.test"
        assert m.data == MSG
        assert sink.connections == 1
    finally:
        sink.stop()


def test_sink_auth_login_without_tls():
    with remote.SmtpSink(auth={"u": "p"}) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
            c.ehlo("client.test")
            assert not c.has_extn("starttls")
            c.user, c.password = "u", "p"
            code, _ = c.auth("LOGIN", c.auth_login)
            assert code == 235
            c.sendmail("a@sender.test", ["x@remote.test"], MSG)
        assert sink.wait_messages(1, 5)
        assert sink.messages[0].auth_user == "u"
        assert sink.messages[0].tls is False


def test_sink_scripted_rcpt_replies():
    replies = {"<Slow@Remote.test>": ["450 4.2.0 try later", "250 OK"],
               "gone@remote.test": ["550 5.1.1 no such user"]}
    with remote.SmtpSink(rcpt_replies=replies) as sink:
        def send(rcpts):
            with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
                try:
                    return c.sendmail("a@sender.test", rcpts, MSG)
                except smtplib.SMTPRecipientsRefused as e:
                    return e.recipients

        # First attempt: 450 for slow@, 550 for gone@.
        refused = send(["slow@remote.test", "gone@remote.test"])
        assert refused["slow@remote.test"][0] == 450
        assert refused["gone@remote.test"][0] == 550
        assert sink.messages == []
        # Second attempt: slow@ is accepted; the 250 then repeats.
        assert send(["slow@remote.test", "ok@remote.test"]) == {}
        assert send(["slow@remote.test"]) == {}
        refused = send(["gone@remote.test", "ok@remote.test"])
        assert refused == {"gone@remote.test":
                           (550, b"5.1.1 no such user")}
        assert sink.wait_messages(3, 5)
        assert [m.rcpt_tos for m in sink.messages] == [
            ["slow@remote.test", "ok@remote.test"], ["slow@remote.test"],
            ["ok@remote.test"]]
        assert [r for a, r in sink.rcpt_attempts
                if a == "slow@remote.test"] == [
            "450 4.2.0 try later", "250 OK", "250 OK"]
        assert sink.connections == 4


def test_sink_data_reply():
    with remote.SmtpSink(data_reply=["451 4.3.0 later", "250 2.0.0 fine"]) \
            as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("a@sender.test", ["x@remote.test"], MSG)
            assert e.value.smtp_code == 451
            c.rset()
            c.sendmail("a@sender.test", ["x@remote.test"], MSG)
        assert sink.wait_messages(1, 5)
        assert len(sink.messages) == 1
        assert sink.data_attempts == 2
    with remote.SmtpSink(data_reply="554 5.6.0 rejected") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as c:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail("a@sender.test", ["x@remote.test"], MSG)
            assert e.value.smtp_code == 554
        assert not sink.wait_messages(1, 0.3)
        assert sink.data_attempts == 1


def test_sink_hang_never_greets():
    with remote.SmtpSink(hang=True) as sink:
        s = socket.create_connection((sink.host, sink.port), timeout=5)
        s.settimeout(1.0)
        start = time.monotonic()
        with pytest.raises(socket.timeout):
            s.recv(100)
        assert time.monotonic() - start >= 0.9
        with pytest.raises((socket.timeout, smtplib.SMTPServerDisconnected)):
            smtplib.SMTP(sink.host, sink.port, timeout=1)
        deadline = time.monotonic() + 5
        while sink.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.connections == 2
        s.close()
    assert sink.messages == []


def test_sinks_share_a_port_on_several_loopback_addresses():
    port = remote.free_port("127.0.0.2", "127.0.0.3")
    with remote.SmtpSink(host="127.0.0.2", port=port) as s2, \
            remote.SmtpSink(host="127.0.0.3", port=port) as s3:
        assert s2.port == s3.port == port
        for host in ("127.0.0.3", "127.0.0.2", "127.0.0.3"):
            with smtplib.SMTP(host, port, timeout=10) as c:
                c.sendmail("a@sender.test", ["to-%s@remote.test" % host],
                           MSG)
        assert s3.wait_messages(2, 5)
        assert s2.wait_messages(1, 5)
        assert [m.rcpt_tos for m in s2.messages] == [
            ["to-127.0.0.2@remote.test"]]
        assert len(s3.messages) == 2
        assert (s2.connections, s3.connections) == (1, 2)


def test_free_port_is_free_and_not_repeated():
    seen = {remote.free_port() for _ in range(20)}
    assert len(seen) == 20
    p = remote.free_port("127.0.0.1", udp=True)
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", p))
