"""Real clients: curl, fetchmail, getmail6."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ALICE, ALICE_PW
from pop3util import simple_msg, wire

CURL = shutil.which("curl")
FETCHMAIL = shutil.which("fetchmail")
GETMAIL = shutil.which("getmail")
IS_ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")


def count_on_server(srv, user=ALICE):
    c = srv.login(user)
    try:
        r = c.cmd("STAT").split()
        assert r[0] == "+OK"
        return int(r[1])
    finally:
        c.cmd("QUIT")
        c.close()


def run(argv, **kw):
    kw.setdefault("timeout", 60)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       **kw)
    return p


def fill(srv, n, tag):
    srv.clear_mailbox()
    msgs = [simple_msg("%s %d" % (tag, i),
                       "marker-%s-%d\n.dot line\nend\n" % (tag, i))
            for i in range(n)]
    for m in msgs:
        srv.deliver(ALICE, m)
    return msgs


# -- curl ---------------------------------------------------------------------

@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_retr_plain(shared_server):
    srv = shared_server
    msgs = fill(srv, 2, "curl")
    p = run([CURL, "-s", "-S", "--max-time", "20",
             "pop3://127.0.0.1:%d/1" % srv.pop3_port,
             "-u", "alice:" + ALICE_PW])
    assert p.returncode == 0, p.stderr
    # curl removes the dot-stuffing and the terminator: the CRLF form
    assert p.stdout == wire(msgs[0])


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_list_pop3s(shared_server):
    srv = shared_server
    msgs = fill(srv, 3, "curls")
    mark = srv.log_mark()
    p = run([CURL, "-s", "-S", "--max-time", "20", "--cacert", srv.ca,
             "pop3s://localhost:%d/" % srv.pop3s_port,
             "-u", ALICE + ":" + ALICE_PW])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().split("\r\n")
    assert lines[-1] == ""
    assert lines[:-1] == ["%d %d" % (i + 1, len(wire(m)))
                          for i, m in enumerate(msgs)]
    srv.wait_log(r"login user=alice@example\.org .*tls=TLSv1\.[23]",
                 since=mark)


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_ssl_reqd_uses_stls(shared_server):
    srv = shared_server
    msgs = fill(srv, 1, "curlstls")
    mark = srv.log_mark()
    p = run([CURL, "-s", "-S", "--max-time", "20", "--ssl-reqd", "--cacert",
             srv.ca, "pop3://localhost:%d/1" % srv.pop3_port,
             "-u", ALICE + ":" + ALICE_PW])
    assert p.returncode == 0, p.stderr
    assert p.stdout == wire(msgs[0])
    srv.wait_log(r"login user=alice@example\.org .*tls=TLSv1\.[23]",
                 since=mark)


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_wrong_password_fails(shared_server):
    srv = shared_server
    p = run([CURL, "-s", "--max-time", "20",
             "pop3://127.0.0.1:%d/" % srv.pop3_port, "-u", "alice:wrong"])
    assert p.returncode == 67, (p.returncode, p.stderr)  # login denied


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_dele(shared_server):
    srv = shared_server
    fill(srv, 2, "curldele")
    p = run([CURL, "-s", "-S", "--max-time", "20", "-X", "DELE", "-I",
             "pop3://127.0.0.1:%d/1" % srv.pop3_port, "-u", "alice:" +
             ALICE_PW])
    assert p.returncode == 0, p.stderr
    assert count_on_server(srv) == 1


# -- fetchmail ----------------------------------------------------------------

def write_fetchmailrc(srv, d, keep, tls):
    out = os.path.join(d, "out")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(d, "mda.sh")
    with open(mda, "w") as f:
        f.write('#!/bin/sh\nexec cat > "$(mktemp %s/msg.XXXXXX)"\n' % out)
    os.chmod(mda, 0o755)
    if tls == "pop3s":
        port, ssl = srv.pop3s_port, "ssl sslproto 'TLS1.2+'"
    else:
        port, ssl = srv.pop3_port, "sslproto 'TLS1.2+'"  # STLS required
    rc = os.path.join(d, "fetchmailrc")
    with open(rc, "w") as f:
        f.write("""set no bouncemail
set no syslog
poll localhost via 127.0.0.1 protocol pop3 port {port} timeout 20
    user "{user}" there with password "{pw}" is "root" here
    options {keep} fetchall
    {ssl} sslcertck sslcertfile "{ca}" sslcommonname localhost
    mda "{mda}"
""".format(port=port, user=ALICE, pw=ALICE_PW,
           keep="keep" if keep else "no keep", ssl=ssl, ca=srv.ca, mda=mda))
    os.chmod(rc, 0o600)
    return rc, out


def fetchmail(srv, tmp_path, keep, tls):
    rc, out = write_fetchmailrc(srv, str(tmp_path), keep, tls)
    env = dict(os.environ, HOME=str(tmp_path),
               FETCHMAILHOME=str(tmp_path))
    p = run([FETCHMAIL, "-f", rc, "-d0", "--nodetach", "-v",
             "--idfile", os.path.join(str(tmp_path), "fetchids"),
             "--pidfile", os.path.join(str(tmp_path), "fetchmail.pid")],
            env=env, cwd=str(tmp_path))
    got = []
    for n in sorted(os.listdir(out)):
        with open(os.path.join(out, n), "rb") as f:
            got.append(f.read())
    return p, got


def markers(blobs):
    out = []
    for b in blobs:
        out += re.findall(rb"marker-[\w]+-\d+", b)
    return sorted(out)


@pytest.mark.skipif(not FETCHMAIL, reason="fetchmail not installed")
def test_fetchmail_keep_pop3s(shared_server, tmp_path):
    srv = shared_server
    msgs = fill(srv, 3, "fmkeep")
    p, got = fetchmail(srv, tmp_path, keep=True, tls="pop3s")
    assert p.returncode == 0, (p.stdout.decode()[-2000:],
                               p.stderr.decode()[-2000:])
    assert markers(got) == sorted(b"marker-fmkeep-%d" % i for i in range(3))
    for m, g in zip(msgs, sorted(got, key=lambda b: markers([b]))):
        # the body arrives intact (fetchmail may add a Received: header)
        assert wire(m).split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n") in \
            g.replace(b"\r\n", b"\n")
    assert count_on_server(srv) == 3
    assert len(srv.stored_messages()) == 3


@pytest.mark.skipif(not FETCHMAIL, reason="fetchmail not installed")
def test_fetchmail_nokeep_stls(shared_server, tmp_path):
    srv = shared_server
    fill(srv, 4, "fmnokeep")
    mark = srv.log_mark()
    p, got = fetchmail(srv, tmp_path, keep=False, tls="stls")
    assert p.returncode == 0, (p.stdout.decode()[-2000:],
                               p.stderr.decode()[-2000:])
    assert markers(got) == sorted(b"marker-fmnokeep-%d" % i for i in range(4))
    assert count_on_server(srv) == 0
    assert srv.stored_messages() == []
    srv.wait_log(r"login user=alice@example\.org .*tls=TLSv1\.[23]",
                 since=mark)
    srv.wait_log(r"logout user=alice@example\.org .*deleted=4", since=mark)


# -- getmail6 -----------------------------------------------------------------

def write_getmailrc(srv, d, tls=True):
    # getmail refuses to deliver as root: as root, deliver as nobody into
    # a Maildir nobody owns, under a directory nobody can traverse.
    os.chmod(d, 0o755)
    md = os.path.join(d, "Maildir")
    for sub in ("", "new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        if IS_ROOT:
            os.chown(os.path.join(md, sub), NOBODY.pw_uid, NOBODY.pw_gid)
    dest_user = "user = nobody\n" if IS_ROOT else ""
    if tls:
        retr = """type = SimplePOP3SSLRetriever
server = localhost
port = %d
ca_certs = %s
ssl_cert_hostname = localhost""" % (srv.pop3s_port, srv.ca)
    else:
        retr = """type = SimplePOP3Retriever
server = 127.0.0.1
port = %d""" % srv.pop3_port
    rc = os.path.join(d, "getmailrc")
    with open(rc, "w") as f:
        f.write("""[retriever]
{retr}
username = {user}
password = {pw}
timeout = 8

[destination]
type = Maildir
path = {md}/
{dest_user}
[options]
delete = false
read_all = false
verbose = 1
""".format(retr=retr, user=ALICE, pw=ALICE_PW, md=md, dest_user=dest_user))
    os.chmod(rc, 0o600)
    return rc, md


@pytest.fixture
def gm_dir():
    """A directory nobody can traverse (tmp_path's parents are 0700)."""
    d = tempfile.mkdtemp(prefix="postd-test-getmail-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def getmail(rc, d):
    """Runs getmail. getmail 6 has a race of its own: its SIGCHLD handler
    can miss the exit of its delivery child ("waiting child pid N timed
    out"), more often on a loaded machine. That is no fault of the server,
    so such a run is repeated (a message delivered by the failed run is
    then delivered twice; maildir_markers() drops such duplicates and
    GETMAIL_RETRIED tells the caller)."""
    for attempt in range(3):
        p = run([GETMAIL, "--getmaildir", d, "--rcfile", rc],
                env=dict(os.environ, HOME=d), cwd=d)
        if p.returncode == 0 or b"waiting child pid" not in p.stderr:
            return p
        GETMAIL_RETRIED.append(p.stderr)
    return p


GETMAIL_RETRIED = []


def maildir_markers(md):
    blobs = []
    for n in os.listdir(os.path.join(md, "new")):
        with open(os.path.join(md, "new", n), "rb") as f:
            blobs.append(f.read())
    found = markers(blobs)
    if GETMAIL_RETRIED:
        return sorted(set(found))
    return found


@pytest.mark.skipif(not GETMAIL, reason="getmail6 not installed")
@pytest.mark.parametrize("tls", [True, False], ids=["pop3s", "plain"])
def test_getmail_only_new_messages(shared_server, gm_dir, tls):
    srv = shared_server
    fill(srv, 2, "gm")
    d = gm_dir
    GETMAIL_RETRIED.clear()
    rc, md = write_getmailrc(srv, d, tls=tls)
    p = getmail(rc, d)
    assert p.returncode == 0, (p.stdout.decode()[-2000:],
                               p.stderr.decode()[-2000:])
    assert maildir_markers(md) == [b"marker-gm-0", b"marker-gm-1"]
    assert count_on_server(srv) == 2  # delete = false

    srv.deliver(ALICE, simple_msg("gm new", "marker-gm-9\n"))
    p = getmail(rc, d)
    assert p.returncode == 0, (p.stdout.decode()[-2000:],
                               p.stderr.decode()[-2000:])
    # read_all = false: only the new one (by UIDL) is fetched
    assert maildir_markers(md) == [b"marker-gm-0", b"marker-gm-1",
                                   b"marker-gm-9"]
    n = len(os.listdir(os.path.join(md, "new")))
    assert n == 3 or GETMAIL_RETRIED
    assert count_on_server(srv) == 3

    # and a third run fetches nothing
    p = getmail(rc, d)
    assert p.returncode == 0
    assert len(os.listdir(os.path.join(md, "new"))) == n


@pytest.mark.skipif(not GETMAIL, reason="getmail6 not installed")
def test_getmail_survives_daemon_restart(server, gm_dir):
    """UIDLs survive a restart (INV-P2): getmail does not refetch."""
    srv = server
    srv.deliver(ALICE, simple_msg("gr 0", "marker-gr-0\n"))
    d = gm_dir
    GETMAIL_RETRIED.clear()
    rc, md = write_getmailrc(srv, d, tls=True)
    assert getmail(rc, d).returncode == 0
    srv.restart()
    os.unlink(os.path.join(srv.maildir(), "postd-index"))
    srv.deliver(ALICE, simple_msg("gr 1", "marker-gr-1\n"))
    p = getmail(rc, d)
    assert p.returncode == 0, p.stderr
    assert maildir_markers(md) == [b"marker-gr-0", b"marker-gr-1"]
