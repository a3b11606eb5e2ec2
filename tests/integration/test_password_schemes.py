"""Logins against every password hash scheme an admin may bring from
another server, made by other tools than postd's own (Python's crypt(3)
binding and hashlib), through the real daemon: POP3 USER/PASS and SMTP
AUTH PLAIN on submission. postctl writes ARGON2ID, so without this file
no crypt(3) scheme would ever be checked end to end (the sanitizer build
once died of SIGSEGV on the first {SHA512-CRYPT} login, unnoticed)."""

import base64
import hashlib
import os
import smtplib
import warnings

import pytest

from conftest import DOMAIN

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, still the binding to crypt(3)

PASSWORD = "correct horse 7"


def _salted(digest, password, salt):
    return base64.b64encode(
        digest((password + "").encode() + salt).digest() + salt).decode()


def _schemes():
    salt = os.urandom(8)
    return {
        "sha512crypt": "{SHA512-CRYPT}" + crypt.crypt(
            PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)),
        "sha256crypt": "{SHA256-CRYPT}" + crypt.crypt(
            PASSWORD, crypt.mksalt(crypt.METHOD_SHA256)),
        "blfcrypt": "{BLF-CRYPT}" + crypt.crypt(
            PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)),
        "bare": crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512)),
        "ssha512": "{SSHA512}" + _salted(hashlib.sha512, PASSWORD, salt),
        "ssha256": "{SSHA256}" + _salted(hashlib.sha256, PASSWORD, salt),
    }


@pytest.fixture(scope="module")
def hashes():
    return _schemes()


@pytest.fixture
def scheme_server(make_server, hashes):
    srv = make_server(users={}, start=False)
    with open(srv.users_file, "w") as f:
        for name, stored in hashes.items():
            f.write("%s@%s:%s\n" % (name, DOMAIN, stored))
    srv.start()
    return srv


@pytest.mark.parametrize("name", sorted(_schemes()))
def test_pop3_login_with_foreign_hash(scheme_server, name):
    user = "%s@%s" % (name, DOMAIN)
    c = scheme_server.connect()
    assert c.login(user, "wrong " + PASSWORD).startswith("-ERR [AUTH]")
    c.close()
    c = scheme_server.connect()
    r = c.login(user, PASSWORD)
    assert r.startswith("+OK"), r
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    assert scheme_server.crash_report() is None


def test_smtp_auth_plain_with_sha512_crypt(scheme_server):
    user = "sha512crypt@" + DOMAIN
    with smtplib.SMTP("127.0.0.1", scheme_server.submission_port,
                      timeout=30) as s:
        s.starttls(context=scheme_server.ctx())
        s.login(user, PASSWORD)
        s.sendmail(user, [user], b"Subject: crypt\r\n\r\nbody\r\n")
    c = scheme_server.login(user, PASSWORD)
    assert c.cmd("STAT").startswith("+OK 1 ")
    c.cmd("QUIT")
    c.close()
