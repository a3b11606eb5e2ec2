"""Root never trusts what the run user can plant (SECURITY.md).

The root parent reads queue/env/ and queue/hold/ at start (recovery,
INV-D4), the retention pass writes its CAPA summary before it drops
privileges, and the first start opens and hands over mail/ and queue/.
The run user owns those folders, so a compromised worker can put a FIFO,
a symbolic link, a hard link to a root-only file or a huge file there.
Each test plants one of them, then checks that postd starts (or refuses)
within a bounded time, names the file and the cause in its log, and leaves
the root-owned file exactly as it was. Needs root (CI runs as root).
"""

import os
import stat
import subprocess
import time

import pytest

from conftest import IS_ROOT, POSTD, _child_env
import retention_util

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root")

# A valid queue id (queue_id_valid(): [0-9A-Za-z]).
PLANT_ID = "0000000000000000deadbeefdeadbeef"
KINDS = ("fifo", "symlink", "hardlink", "huge")
CAUSES = {
    "fifo": "is a FIFO",
    "symlink": "is a symbolic link",
    "hardlink": "has another hard link",
    "huge": "is too big",
}
SECRET = b"root:only-root-may-read-this:0:0\n"


def root_file(srv):
    """A root-owned 0600 file outside data_dir, on the same file system
    (so that a hard link to it can be made)."""
    path = os.path.join(srv.base, "root-secret")
    with open(path, "wb") as f:
        f.write(SECRET)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return path


def snapshot(path):
    st = os.lstat(path)
    with open(path, "rb") as f:
        return (f.read(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode),
                st.st_size)


def plant(kind, path, target):
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "symlink":
        os.symlink(target, path)
    elif kind == "hardlink":
        os.link(target, path)
    else:
        with open(path, "wb") as f:
            f.truncate(2 * 1024 * 1024 * 1024)  # sparse, 2 GiB


def first_start(srv):
    """Lets postd make data_dir/mail and data_dir/queue, then stops it."""
    srv.start()
    assert srv.stop() == 0


@pytest.mark.parametrize("folder", ("env", "hold"))
@pytest.mark.parametrize("kind", KINDS)
def test_queue_recovery_refuses_planted_envelope(make_server, kind, folder):
    srv = make_server(start=False)
    first_start(srv)
    target = root_file(srv)
    before = snapshot(target)
    qdir = os.path.join(srv.data_dir, "queue")
    os.makedirs(os.path.join(qdir, folder), exist_ok=True)
    plant(kind, os.path.join(qdir, folder, PLANT_ID), target)
    mark = srv.log_mark()
    t0 = time.monotonic()
    srv.start()  # fails the test if postd is not ready within 15 s
    assert time.monotonic() - t0 < 15
    srv.wait_log(r"queue: entry %s quarantined: envelope %s" %
                 (PLANT_ID, CAUSES[kind]), since=mark)
    assert os.listdir(os.path.join(qdir, folder)) == []
    assert "%s.env" % PLANT_ID in os.listdir(os.path.join(qdir,
                                                          "quarantine"))
    assert snapshot(target) == before
    assert os.stat(target).st_nlink == (2 if kind == "hardlink" else 1)


@pytest.mark.parametrize("kind", KINDS)
def test_queue_recovery_tmp_and_orphan_plants(make_server, kind):
    """Recovery removes names in tmp/ and quarantines an old message
    without an envelope: neither opens the file, and removing or moving
    a hard link leaves the root file's content, owner and mode alone."""
    srv = make_server(start=False)
    first_start(srv)
    target = root_file(srv)
    old = time.time() - 3600
    os.utime(target, (old, old))
    before = snapshot(target)
    qdir = os.path.join(srv.data_dir, "queue")
    plant(kind, os.path.join(qdir, "tmp", "planted.env"), target)
    plant(kind, os.path.join(qdir, "msg", PLANT_ID), target)
    os.utime(os.path.join(qdir, "msg", PLANT_ID), (old, old),
             follow_symlinks=False)
    mark = srv.log_mark()
    srv.start()
    srv.wait_log(r"queue: entry %s quarantined: message without an "
                 r"envelope" % PLANT_ID, since=mark)
    srv.wait_log(r"queue recovery: removed 1 unfinished files", since=mark)
    assert os.listdir(os.path.join(qdir, "tmp")) == []
    assert os.listdir(os.path.join(qdir, "msg")) == []
    assert snapshot(target) == before


SUMMARY_NAMES = ("postd-policy.tmp", "postd-policy")


@pytest.mark.parametrize("name", SUMMARY_NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_retention_summary_never_writes_through(make_server, kind, name):
    """The summary is written by root (DATA_DIR may be root's alone): what
    sits at its temporary or final name is replaced, never written
    through, and the pass does not hang on a FIFO."""
    srv = make_server({"expire_interval": "1s"}, start=False)
    first_start(srv)
    target = root_file(srv)
    before = snapshot(target)
    path = os.path.join(srv.data_dir, name)
    plant(kind, path, target)
    mark = srv.log_mark()
    srv.start()
    final = os.path.join(srv.data_dir, "postd-policy")
    deadline = time.monotonic() + 15
    while True:
        st = os.lstat(final) if os.path.lexists(final) else None
        if (st is not None and stat.S_ISREG(st.st_mode)
                and st.st_nlink == 1 and 0 < st.st_size < 128):
            break
        assert time.monotonic() < deadline, \
            "no summary written; log:\n" + srv.log_since(mark)[-3000:]
        time.sleep(0.05)
    retention_util.wait_summary(srv)
    assert open(final, "rb").read().startswith(b"postd-policy ")
    assert not os.path.lexists(os.path.join(srv.data_dir,
                                            "postd-policy.tmp"))
    assert snapshot(target) == before
    assert "retention pass (pid" not in srv.log_since(mark)


@pytest.mark.parametrize("kind", ("fifo", "symlink", "file"))
def test_first_start_refuses_planted_queue_folder(make_server, kind):
    """queue/ is the run user's: whatever it put where a queue folder
    belongs makes postd refuse to start at once, naming it, and root
    never changes the owner of what a link points to."""
    srv = make_server(start=False)
    first_start(srv)
    victim = os.path.join(srv.base, "root-dir")
    os.mkdir(victim, 0o700)
    os.chown(victim, 0, 0)
    path = os.path.join(srv.data_dir, "queue", "env")
    os.rmdir(path)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "symlink":
        os.symlink(victim, path)
    else:
        with open(path, "wb") as f:
            f.truncate(2 * 1024 * 1024 * 1024)
    p = subprocess.run([POSTD, "-f", "-c", srv.conf],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20,
                       env=_child_env())
    out = p.stdout.decode(errors="replace")
    assert p.returncode != 0, out
    assert "queue/env" in out and "not a link" in out, out
    st = os.stat(victim)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700)


def test_postctl_deliver_never_follows_a_planted_domain_link(make_server):
    """postctl deliver opens mail/ as root, then drops privileges before
    it walks to the Maildir: a link the run user put at mail/DOMAIN is
    refused and whatever it points to is left as it was."""
    srv = make_server(start=False)
    first_start(srv)
    victim = os.path.join(srv.base, "root-dir")
    os.mkdir(victim, 0o700)
    os.chown(victim, 0, 0)
    domain = os.path.join(srv.data_dir, "mail", "example.org")
    if os.path.isdir(domain):
        subprocess.run(["rm", "-rf", domain], check=True)
    os.symlink(victim, domain)
    p = srv.deliver("alice@example.org", b"Subject: x\n\nhi\n", check=False)
    assert p.returncode != 0
    assert os.listdir(victim) == []
    st = os.stat(victim)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700)
