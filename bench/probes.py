"""Probes the SMTP benches share (bench/lib.sh copies this file next to
each bench's helper.py): how busy the CPUs are, whether a server answers,
the CPU time and memory of a process tree. Linux /proc only."""
import os
import smtplib
import time


def cpu_times():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def busy(secs):
    """Percent of all CPUs busy over SECS, whoever uses them."""
    a = cpu_times()
    time.sleep(float(secs))
    b, t = [y - x for x, y in zip(a, cpu_times())]
    print("%.0f" % (100.0 * b / t if t else 0))
    return 0


def ready(port, secs):
    """Exit 0 once the server answers EHLO with 250."""
    end = time.monotonic() + float(secs)
    while time.monotonic() < end:
        try:
            s = smtplib.SMTP("127.0.0.1", int(port), timeout=2)
            code = s.ehlo("probe.bench.test")[0]
            s.quit()
            if code == 250:
                return 0
        except (OSError, smtplib.SMTPException):
            pass
        time.sleep(0.1)
    return 1


def tree(root):
    """ROOT and its descendants, from /proc/PID/task/TID/children."""
    out, todo = [], [int(root)]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            tasks = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def stat_cpu(pid):
    """utime+stime+cutime+cstime of PID in clock ticks, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    v = st[st.rindex(")") + 2:].split()
    return sum(int(x) for x in v[11:15])


def tree_cpu(root):
    """CPU seconds used so far by process ROOT and all its descendants,
    living or reaped (a reaped child's time is in its parent's cutime)."""
    return sum(stat_cpu(p) or 0 for p in tree(root)) / \
        os.sysconf("SC_CLK_TCK")


def mem(pid):
    """(name, RSS KiB, PSS KiB) of PID, or None once it is gone."""
    try:
        name, rss = "?", 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Name:"):
                    name = line.split()[1]
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
        pss = 0
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
        return name, rss, pss
    except (OSError, ValueError, IndexError):
        return None
