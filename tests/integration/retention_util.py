"""Helpers for the retention and LOGIN-DELAY tests."""
import os


def set_extra(srv, user, extra):
    """Gives user extra fields in the users file (Dovecot passwd-file:
    everything after the seventh field)."""
    lines = open(srv.users_file).read().splitlines()
    out = []
    for ln in lines:
        if ln.split(":", 1)[0] == user:
            fields = ln.split(":")[:2]
            ln = ":".join(fields) + ":::::" + ":" + extra
        out.append(ln)
    with open(srv.users_file, "w") as f:
        f.write("\n".join(out) + "\n")


def msg_files(srv, user):
    md = srv.maildir(user)
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(md, sub)
        if os.path.isdir(p):
            out += [os.path.join(p, n) for n in sorted(os.listdir(p))]
    return out


def backdate(srv, user, t):
    """Sets every message file's mtime (its delivery time) to t. Only
    useful before postd's index has seen the file."""
    for p in msg_files(srv, user):
        os.utime(p, (t, t))


def index_entries(srv, user):
    """{uid: (mtime, retrieved, base)} from postd-index."""
    path = os.path.join(srv.maildir(user), "postd-index")
    out = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for ln in lines[1:]:
        uid, _size, mtime, retrieved, base = ln.split(" ", 4)
        out[int(uid)] = (int(mtime), int(retrieved), base)
    return out


def capa_value(lines, tag):
    for ln in lines:
        w = ln.split()
        if w and w[0].upper() == tag:
            return " ".join(w[1:])
    return None


def wait_summary(srv, timeout=10.0):
    """Waits for the first retention pass to leave its CAPA summary."""
    import time
    path = os.path.join(srv.data_dir, "postd-policy")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no retention pass ran"
        time.sleep(0.05)


def wait_pass_done(srv, since=0, timeout=10.0):
    """Waits for the log line with which every retention pass ends."""
    srv.wait_log(r"retention pass: \d+ messages removed, \d+ users "
                 r"checked, \d+ errors", since=since, timeout=timeout)
