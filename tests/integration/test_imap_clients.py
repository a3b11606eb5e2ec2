"""Real IMAP clients against postd: curl, mbsync, offlineimap3, s-nail,
fetchmail and neomutt, over IMAP (STARTTLS or loopback plaintext) and IMAPS.

Every test runs against the `imap_server` fixture (imapserver.py): postd by
default, the reference Dovecot with POSTD_IMAP_REFERENCE=dovecot, so that
each test is first shown to pass against a server that is known to work.
A test skips only when its client is not installed (Debian packages: curl,
isync, offlineimap3, s-nail, fetchmail, neomutt); what the server does is
checked through imaplib, never through its files.
"""

import contextlib
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time

import pytest

import imapserver
from conftest import ALICE
from pop3util import simple_msg, wire

imap_server = imapserver.imap_server  # the fixture: postd, or Dovecot


def need(binary, package):
    path = shutil.which(binary)
    if not path:
        pytest.skip("%s not installed (apt-get install %s)" % (binary,
                                                               package))
    return path


def run(argv, timeout=90, **kw):
    if "input" not in kw:
        kw["stdin"] = subprocess.DEVNULL
    return subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout.decode(errors="replace")[-3000:],
        p.stderr.decode(errors="replace")[-3000:])


def fill(srv, n, tag, user=ALICE):
    """Delivers n small messages to user's INBOX; returns them."""
    msgs = [simple_msg("%s %d" % (tag, i),
                       "marker-%s-%d\nsecond line\n" % (tag, i))
            for i in range(n)]
    for m in msgs:
        srv.deliver(user, m)
    return msgs


def markers(blobs):
    out = []
    for b in blobs:
        out += re.findall(rb"marker-[\w]+-\d+", b)
    return sorted(out)


def body_of(msg):
    """The body of a message in CRLF form (clients may add headers)."""
    return wire(msg).split(b"\r\n\r\n", 1)[1]


def crlf(b):
    return b.replace(b"\r\n", b"\n")


def uid_of(srv, tag, mailbox="INBOX", user=ALICE):
    """The UID of the message whose body holds marker `tag`."""
    for uid, (_, body) in srv.messages(mailbox, user).items():
        if tag.encode() in body:
            return uid
    raise AssertionError("no message with %s in %s" % (tag, mailbox))


def maildir_files(path):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return out


def read_all(paths):
    blobs = []
    for p in paths:
        with open(p, "rb") as f:
            blobs.append(f.read())
    return blobs


# ==========================================================================
# curl
# ==========================================================================

def curl(srv, url, *extra, user=ALICE, pw=None):
    exe = need("curl", "curl")
    pw = srv.password(user) if pw is None else pw
    return run([exe, "-s", "-S", "--max-time", "30", "--cacert", srv.ca,
                "-u", "%s:%s" % (user, pw)] + list(extra) + [url])


def imap_url(srv, path="", tls=False):
    if tls:
        return "imaps://%s:%d/%s" % (srv.tls_name, srv.imaps_port, path)
    return "imap://%s:%d/%s" % (srv.host, srv.imap_port, path)


def test_curl_list_plain(imap_server):
    srv = imap_server
    srv.create("Projects")
    p = curl(srv, imap_url(srv))
    assert p.returncode == 0, out_of(p)
    lines = p.stdout.decode().splitlines()
    names = [ln.rsplit(" ", 1)[-1].strip('"') for ln in lines
             if ln.startswith("* LIST ")]
    assert "INBOX" in names, lines
    assert "Projects" in names, lines


def test_curl_fetch_by_uid_plain(imap_server):
    srv = imap_server
    msgs = fill(srv, 3, "curluid")
    uid = uid_of(srv, "marker-curluid-1")
    p = curl(srv, imap_url(srv, "INBOX;UID=%d" % uid))
    assert p.returncode == 0, out_of(p)
    assert p.stdout == wire(msgs[1])


def test_curl_fetch_by_uid_imaps(imap_server):
    srv = imap_server
    msgs = fill(srv, 2, "curlimaps")
    uid = uid_of(srv, "marker-curlimaps-0")
    p = curl(srv, imap_url(srv, "INBOX;UID=%d" % uid, tls=True))
    assert p.returncode == 0, out_of(p)
    assert p.stdout == wire(msgs[0])


def test_curl_starttls_required(imap_server):
    """--ssl-reqd on the imap:// port: curl must upgrade with STARTTLS
    (it refuses to go on in plaintext) and then list."""
    srv = imap_server
    p = curl(srv, "imap://%s:%d/" % (srv.tls_name, srv.imap_port),
             "--ssl-reqd")
    assert p.returncode == 0, out_of(p)
    assert re.search(r'^\* LIST .* "?INBOX"?\r?$', p.stdout.decode(), re.M)


def test_curl_upload_then_fetch(imap_server, tmp_path):
    """curl -T appends a message (APPEND); it is in the folder afterwards,
    byte for byte in its CRLF form, and curl reads it back by UID."""
    srv = imap_server
    srv.create("Uploads")
    msg = simple_msg("curl upload", "marker-curlup-0\nline two\n")
    f = tmp_path / "msg.eml"
    f.write_bytes(wire(msg))
    p = curl(srv, imap_url(srv, "Uploads", tls=True), "-T", str(f))
    assert p.returncode == 0, out_of(p)
    stored = srv.messages("Uploads")
    assert [b for _, b in stored.values()] == [wire(msg)]
    uid = next(iter(stored))
    p = curl(srv, imap_url(srv, "Uploads;UID=%d" % uid))
    assert p.returncode == 0, out_of(p)
    assert p.stdout == wire(msg)


def test_curl_wrong_password_refused(imap_server):
    srv = imap_server
    p = curl(srv, imap_url(srv), pw="not-the-password")
    assert p.returncode == 67, out_of(p)  # CURLE_LOGIN_DENIED


def test_curl_search(imap_server):
    """A URL query is a SEARCH; curl prints the untagged SEARCH reply."""
    srv = imap_server
    fill(srv, 3, "curlsearch")
    with srv.session() as c:
        c.select("INBOX", readonly=True)
        typ, data = c.search(None, "BODY", "marker-curlsearch-2")
        assert typ == "OK", data
        want = [int(x) for x in data[0].split()]
    assert len(want) == 1
    p = curl(srv, imap_url(srv, "INBOX?SUBJECT%20%22curlsearch%202%22"))
    assert p.returncode == 0, out_of(p)
    m = re.search(r"^\* SEARCH([ 0-9]*)\r?$", p.stdout.decode(), re.M)
    assert m, out_of(p)
    assert [int(x) for x in m.group(1).split()] == want, out_of(p)


# ==========================================================================
# mbsync (isync)
# ==========================================================================

MBSYNCRC = """\
IMAPAccount remote
Host {host}
Port {port}
User {user}
Pass {pw}
SSLType {tls}
SystemCertificates no
CertificateFile {ca}
AuthMechs LOGIN

IMAPStore remote
Account remote

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel both
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
Sync All
"""


def mbsync(srv, d, tls):
    exe = need("mbsync", "isync")
    rc = os.path.join(d, "mbsyncrc")
    os.makedirs(os.path.join(d, "mail"), exist_ok=True)
    if not os.path.exists(rc):
        with open(rc, "w") as f:
            f.write(MBSYNCRC.format(
                host=srv.tls_name,
                port=srv.imaps_port if tls == "IMAPS" else srv.imap_port,
                user=ALICE, pw=srv.password(), tls=tls, ca=srv.ca,
                local=os.path.join(d, "mail")))
    p = run([exe, "-c", rc, "-V", "-a"], cwd=d, env=dict(os.environ, HOME=d))
    assert p.returncode == 0, out_of(p)
    return p


def maildir_info(path):
    """{marker: (file, flags)} of a local Maildir folder."""
    out = {}
    for fn in maildir_files(path):
        with open(fn, "rb") as f:
            mk = markers([f.read()])
        assert len(mk) == 1, (fn, mk)
        info = fn.rsplit(":2,", 1)[1] if ":2," in fn else ""
        out[mk[0].decode()] = (fn, set(info))
    return out


def set_maildir_flags(fn, flags):
    """Renames a Maildir file into cur/ with the given info flags, as a
    mail reader does when the user reads or flags a message."""
    d, base = os.path.split(fn)
    base = base.split(":2,", 1)[0]
    new = os.path.join(os.path.dirname(d), "cur",
                       base + ":2," + "".join(sorted(flags)))
    os.rename(fn, new)
    return new


def server_flags(srv, mailbox):
    """{marker: flags} of a server folder."""
    out = {}
    for flags, body in srv.messages(mailbox).values():
        mk = markers([body])
        assert len(mk) == 1, mk
        out[mk[0].decode()] = flags
    return out


@pytest.mark.parametrize("tls", ["IMAPS", "STARTTLS"])
def test_mbsync_round_trip(imap_server, tmp_path, tls):
    """mbsync pulls INBOX and a folder into a local Maildir; a flag set
    locally, a message added locally and a message deleted locally reach
    the server on the next run; a flag set on the server reaches the local
    copy."""
    srv = imap_server
    d = str(tmp_path)
    fill(srv, 3, "mbin")
    srv.create("Work")
    for i in range(2):
        srv.append("Work", wire(simple_msg("work %d" % i,
                                           "marker-mbwork-%d\n" % i)))
    mbsync(srv, d, tls)
    local_inbox = os.path.join(d, "mail", "INBOX")
    local_work = os.path.join(d, "mail", "Work")
    inbox = maildir_info(local_inbox)
    work = maildir_info(local_work)
    assert sorted(inbox) == ["marker-mbin-%d" % i for i in range(3)]
    assert sorted(work) == ["marker-mbwork-%d" % i for i in range(2)]
    # the local copy is the server's message
    for mk, (fn, _) in inbox.items():
        with open(fn, "rb") as f:
            assert crlf(body_of(simple_msg("x", mk + "\nsecond line\n"))) \
                in crlf(f.read())

    # local changes: read+flag one, delete one, file a new one in Work
    set_maildir_flags(inbox["marker-mbin-0"][0], "FS")
    os.unlink(inbox["marker-mbin-2"][0])
    with open(os.path.join(local_work, "new", "1.local.test"), "wb") as f:
        f.write(simple_msg("local", "marker-mbwork-9\n"))
    # a server change: \Answered on another message
    srv.store("INBOX", uid_of(srv, "marker-mbin-1"), "+FLAGS", "\\Answered")
    mbsync(srv, d, tls)

    on_server = server_flags(srv, "INBOX")
    assert sorted(on_server) == ["marker-mbin-0", "marker-mbin-1"]
    assert {"\\Seen", "\\Flagged"} <= on_server["marker-mbin-0"]
    assert "\\Answered" in on_server["marker-mbin-1"]
    assert sorted(server_flags(srv, "Work")) == [
        "marker-mbwork-0", "marker-mbwork-1", "marker-mbwork-9"]
    inbox = maildir_info(local_inbox)
    assert "R" in inbox["marker-mbin-1"][1]
    assert {"F", "S"} <= inbox["marker-mbin-0"][1]


# ==========================================================================
# offlineimap3
# ==========================================================================

OFFLINEIMAPRC = """\
[general]
accounts = test
metadata = {d}/meta
ui = basic
maxsyncaccounts = 1

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {d}/mail

[Repository remote]
type = IMAP
remotehost = {host}
remoteport = {port}
remoteuser = {user}
remotepass = {pw}
ssl = {ssl}
starttls = no
sslcacertfile = {ca}
ssl_version = tls1_2
tls_level = tls_secure
auth_mechanisms = PLAIN, LOGIN
folderfilter = lambda f: f in ["INBOX", "Work"]
"""


def offlineimap(srv, d, tls):
    exe = need("offlineimap", "offlineimap3")
    rc = os.path.join(d, "offlineimaprc")
    if not os.path.exists(rc):
        with open(rc, "w") as f:
            f.write(OFFLINEIMAPRC.format(
                d=d, host=srv.tls_name,
                port=srv.imaps_port if tls == "imaps" else srv.imap_port,
                user=ALICE, pw=srv.password(),
                ssl="yes" if tls == "imaps" else "no",
                ca=srv.ca))
    p = run([exe, "-c", rc, "-o", "-u", "basic"], cwd=d,
            env=dict(os.environ, HOME=d))
    # offlineimap exits 0 even after some errors: it prints "ERROR"
    text = p.stdout.decode(errors="replace") + p.stderr.decode(
        errors="replace")
    assert p.returncode == 0 and "ERROR" not in text, out_of(p)
    return p


# IMAPS and plaintext on loopback, not STARTTLS: imaplib2 (offlineimap's
# IMAP library) wraps the socket while its reader thread is polling it, and
# against Dovecot one STARTTLS run in six failed with "[SSL] internal error"
# and another hung: a client race that would make the test flaky.
@pytest.mark.parametrize("tls", ["imaps", "plain"])
def test_offlineimap_round_trip(imap_server, tmp_path, tls):
    """offlineimap copies INBOX and Work to a local Maildir; a message
    read locally becomes \\Seen on the server, a message written locally is
    uploaded (APPEND, then found again by UID), and a flag set on the
    server reaches the local file name."""
    srv = imap_server
    d = str(tmp_path)
    fill(srv, 2, "olin")
    srv.create("Work")
    srv.append("Work", wire(simple_msg("work", "marker-olwork-0\n")))
    offlineimap(srv, d, tls)
    local_inbox = os.path.join(d, "mail", "INBOX")
    local_work = os.path.join(d, "mail", "Work")
    inbox = maildir_info(local_inbox)
    assert sorted(inbox) == ["marker-olin-0", "marker-olin-1"]
    assert sorted(maildir_info(local_work)) == ["marker-olwork-0"]

    set_maildir_flags(inbox["marker-olin-0"][0], "S")
    with open(os.path.join(local_work, "new", "1.local.test"), "wb") as f:
        f.write(simple_msg("local", "marker-olwork-5\n"))
    srv.store("INBOX", uid_of(srv, "marker-olin-1"), "+FLAGS", "\\Flagged")
    offlineimap(srv, d, tls)

    on_server = server_flags(srv, "INBOX")
    assert "\\Seen" in on_server["marker-olin-0"]
    assert "\\Flagged" in on_server["marker-olin-1"]
    assert sorted(server_flags(srv, "Work")) == ["marker-olwork-0",
                                                 "marker-olwork-5"]
    assert "F" in maildir_info(local_inbox)["marker-olin-1"][1]
    # the uploaded message got its server UID: a third run changes nothing
    before = sorted(maildir_info(local_work))
    offlineimap(srv, d, tls)
    assert sorted(maildir_info(local_work)) == before
    assert sorted(server_flags(srv, "Work")) == before


# ==========================================================================
# s-nail
# ==========================================================================

def snail(srv, d, commands):
    exe = need("s-nail", "s-nail")
    url = "imaps://%s@%s:%d" % (ALICE.replace("@", "%40"), srv.tls_name,
                                srv.imaps_port)
    return run([exe, "-n", "-#", "-Sv15-compat", "-Sttycharset=utf-8",
                "-Stls-ca-file=" + srv.ca, "-Stls-ca-no-defaults",
                "-Spassword=" + srv.password(), "-Shold", "-f", url],
               input=commands, cwd=d, env=dict(os.environ, HOME=d))


def test_snail_list_and_read_imaps(imap_server, tmp_path):
    """s-nail lists the INBOX over IMAPS, prints one message (which sets
    \\Seen on that one only) and deletes another (gone after quit)."""
    srv = imap_server
    msgs = fill(srv, 3, "snail")
    p = snail(srv, str(tmp_path), b"headers\nprint 2\ndelete 3\nquit\n")
    assert p.returncode == 0, out_of(p)
    text = p.stdout.decode(errors="replace")
    # a header line: ">N  1 sender@example.net Sun Dec  6 12:03  /125  snail 0"
    headers = re.findall(
        r"^\W*N?\s+(\d+) sender@example\.net .* (snail \d)\s*$", text, re.M)
    assert headers == [("1", "snail 0"), ("2", "snail 1"),
                       ("3", "snail 2")], out_of(p)
    assert crlf(body_of(msgs[1])) in crlf(p.stdout)
    assert b"marker-snail-0" not in p.stdout
    on_server = server_flags(srv, "INBOX")
    assert sorted(on_server) == ["marker-snail-0", "marker-snail-1"]
    assert "\\Seen" in on_server["marker-snail-1"]
    assert "\\Seen" not in on_server["marker-snail-0"]


# ==========================================================================
# fetchmail
# ==========================================================================

FETCHMAILRC = """\
set no bouncemail
set no syslog
poll {host} via 127.0.0.1 protocol imap port {port} timeout 20
    user "{user}" there with password "{pw}" is "root" here
    options {keep} fetchall
    {ssl} sslcertck sslcertfile "{ca}" sslcommonname {host}
    mda "{mda}"
"""


def fetchmail(srv, d, keep, tls):
    exe = need("fetchmail", "fetchmail")
    out = os.path.join(d, "out")
    os.makedirs(out, exist_ok=True)
    mda = os.path.join(d, "mda.sh")
    with open(mda, "w") as f:
        f.write('#!/bin/sh\nexec cat > "$(mktemp %s/msg.XXXXXX)"\n' % out)
    os.chmod(mda, 0o755)
    if tls == "imaps":
        port, ssl = srv.imaps_port, "ssl sslproto 'TLS1.2+'"
    else:
        port, ssl = srv.imap_port, "sslproto 'TLS1.2+'"  # STARTTLS required
    rc = os.path.join(d, "fetchmailrc")
    with open(rc, "w") as f:
        f.write(FETCHMAILRC.format(
            host=srv.tls_name, port=port, user=ALICE, pw=srv.password(),
            keep="keep" if keep else "no keep", ssl=ssl, ca=srv.ca, mda=mda))
    os.chmod(rc, 0o600)
    p = run([exe, "-f", rc, "-d0", "--nodetach", "-v",
             "--idfile", os.path.join(d, "fetchids"),
             "--pidfile", os.path.join(d, "fetchmail.pid")], cwd=d,
            env=dict(os.environ, HOME=d, FETCHMAILHOME=d))
    assert p.returncode == 0, out_of(p)
    return p, read_all(sorted(os.path.join(out, n)
                              for n in os.listdir(out)))


@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_fetchmail_keep(imap_server, tmp_path, tls):
    """fetchmail with `keep` hands every message to the MDA intact and
    leaves them on the server, marked \\Seen."""
    srv = imap_server
    msgs = fill(srv, 3, "fmkeep")
    p, got = fetchmail(srv, str(tmp_path), keep=True, tls=tls)
    assert markers(got) == [b"marker-fmkeep-%d" % i for i in range(3)]
    for m in msgs:
        assert any(crlf(body_of(m)) in crlf(g) for g in got), m
    on_server = server_flags(srv, "INBOX")
    assert sorted(on_server) == ["marker-fmkeep-%d" % i for i in range(3)]
    assert all("\\Seen" in f for f in on_server.values()), on_server


def test_fetchmail_no_keep_deletes(imap_server, tmp_path):
    """Without `keep`, fetchmail deletes (and expunges) what it fetched;
    a second run fetches nothing."""
    srv = imap_server
    fill(srv, 2, "fmdel")
    p, got = fetchmail(srv, str(tmp_path), keep=False, tls="starttls")
    assert markers(got) == [b"marker-fmdel-0", b"marker-fmdel-1"]
    assert srv.messages("INBOX") == {}
    shutil.rmtree(str(tmp_path / "out"))
    with pytest.raises(AssertionError) as e:
        fetchmail(srv, str(tmp_path), keep=False, tls="starttls")
    assert "exit 1" in str(e.value)  # fetchmail: 1 = no mail


# ==========================================================================
# neomutt (batch, driven through a pseudo-terminal)
# ==========================================================================

NEOMUTTRC = """\
set imap_user = "{user}"
set imap_pass = "{pw}"
set ssl_ca_certificates_file = "{ca}"
set certificate_file = "{d}/certificates"
set ssl_force_tls = yes
set folder = "{folder}"
set spoolfile = "+INBOX"
set mbox_type = mbox
set confirmcreate = no
set confirmappend = no
set quit = yes
set move = no
set mark_old = no
set header_cache = ""
set message_cachedir = ""
set imap_passive = yes
set sort = date
"""


def in_pty(argv, env, timeout=60):
    """Runs a full-screen program on a pseudo-terminal until it exits;
    returns (exit status, everything it drew)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ.clear()
        os.environ.update(env)
        os.execv(argv[0], argv)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                screen += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), screen
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("%s still running after %ds; screen:\n%r" % (
            argv[0], timeout, screen[-2000:]))
    finally:
        os.close(fd)


def neomutt(srv, d, keys, tls):
    exe = need("neomutt", "neomutt")
    if tls == "imaps":
        folder = "imaps://%s:%d/" % (srv.tls_name, srv.imaps_port)
    else:  # STARTTLS, which ssl_force_tls makes mandatory
        folder = "imap://%s:%d/" % (srv.tls_name, srv.imap_port)
    rc = os.path.join(d, "neomuttrc")
    with open(rc, "w") as f:
        f.write(NEOMUTTRC.format(user=ALICE, pw=srv.password(), ca=srv.ca,
                                 d=d, folder=folder))
    env = {"HOME": d, "TERM": "xterm", "PATH": os.environ.get("PATH", ""),
           "LC_ALL": "C.UTF-8"}
    return in_pty([exe, "-n", "-F", rc, "-e", 'push "%s"' % keys], env)


@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_neomutt_count_and_copy(imap_server, tmp_path, tls):
    """neomutt opens INBOX (its status line counts the messages), copies
    every message to a local mbox (FETCH of each body) and to another IMAP
    folder (server-side COPY), then quits."""
    srv = imap_server
    d = str(tmp_path)
    msgs = fill(srv, 4, "nm")
    srv.create("Copies")
    copy = os.path.join(d, "copy.mbox")
    keys = ("<tag-pattern>~A<enter>"
            "<tag-prefix><copy-message>%s<enter>"
            "<tag-prefix><copy-message>=Copies<enter>"
            "<quit>" % copy)
    rc, screen = neomutt(srv, d, keys, tls)
    assert rc == 0, screen[-2000:]
    assert re.search(rb"Msgs:4\b", screen), screen[-2000:]
    with open(copy, "rb") as f:
        mbox = f.read()
    assert len(re.findall(rb"^From ", mbox, re.M)) == 4, mbox
    for m in msgs:
        assert body_of(m).replace(b"\r\n", b"\n") in mbox
    assert sorted(server_flags(srv, "Copies")) == [
        "marker-nm-%d" % i for i in range(4)]
