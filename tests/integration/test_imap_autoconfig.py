"""Autoconfig (Thunderbird) and Autodiscover (Outlook) offer IMAP first and
POP3 second once postd serves IMAP: IMAPS, IMAP with STARTTLS, POP3S, POP3
with STLS, then the submission servers (issue 11, item 10)."""

import xml.etree.ElementTree as ET

import pytest

from conftest import ALICE, DOMAIN, REFERENCE, free_port
from test_http import (AD_SCHEMA, ad_protocols, outlook_request, request,
                       wait_http)

pytestmark = pytest.mark.skipif(REFERENCE == "dovecot",
                                reason="postd's own HTTP listener")


def imap_http_server(make_server):
    """postd with listen.http and both IMAP listeners (those of the
    test configuration when it has them, else private ones)."""
    http_port = free_port()
    srv = make_server(overrides={"listen.http": "127.0.0.1:%d" % http_port},
                      start=False)
    if not hasattr(srv, "imap_port"):
        srv.imap_port, srv.imaps_port = free_port(), free_port()
        srv.overrides["listen.imap"] = "127.0.0.1:%d" % srv.imap_port
        srv.overrides["listen.imaps"] = "127.0.0.1:%d" % srv.imaps_port
        srv.write_config()
    srv.start()
    srv.http_port = http_port
    wait_http(srv)
    return srv


def test_autoconfig_offers_imap_first(make_server):
    srv = imap_http_server(make_server)
    status, _, body = request(srv, "GET", "/mail/config-v1.1.xml"
                              "?emailaddress=alice%40example.org")
    assert status == 200, body
    p = ET.fromstring(body).find("emailProvider")
    assert p.get("id") == DOMAIN
    incoming = [(s.get("type"), s.find("port").text,
                 s.find("socketType").text)
                for s in p.findall("incomingServer")]
    assert incoming == [
        ("imap", str(srv.imaps_port), "SSL"),
        ("imap", str(srv.imap_port), "STARTTLS"),
        ("pop3", str(srv.pop3s_port), "SSL"),
        ("pop3", str(srv.pop3_port), "STARTTLS"),
    ], body.decode()
    for s in p.findall("incomingServer"):
        assert s.find("hostname").text == "localhost"
        assert s.find("username").text == "%EMAILADDRESS%"
        assert s.find("authentication").text == "password-cleartext"
        # the POP3 advice (leave on server) belongs to POP3 servers only
        assert (s.find("pop3") is not None) == (s.get("type") == "pop3")
    # every incoming server comes before the outgoing ones
    tags = [c.tag for c in p]
    assert max(i for i, t in enumerate(tags) if t == "incomingServer") < \
        tags.index("outgoingServer")


def test_autodiscover_offers_imap_first(make_server):
    srv = imap_http_server(make_server)
    status, _, body = request(
        srv, "POST", "/autodiscover/autodiscover.xml",
        body=outlook_request(ALICE), headers={"Content-Type": "text/xml"})
    assert status == 200, body
    protos = ad_protocols(body)
    got = [(p["Type"], p["Port"], p["Encryption"]) for p in protos]
    assert got == [
        ("IMAP", str(srv.imaps_port), "SSL"),
        ("IMAP", str(srv.imap_port), "TLS"),
        ("POP3", str(srv.pop3s_port), "SSL"),
        ("POP3", str(srv.pop3_port), "TLS"),
        ("SMTP", str(srv.submissions_port), "SSL"),
        ("SMTP", str(srv.submission_port), "TLS"),
    ], body.decode()
    for p in protos:
        assert p["Server"] == "localhost"
        assert p["LoginName"] == ALICE
        assert p["SSL"] == "on"
    assert AD_SCHEMA in body.decode()
