"""Dovecot's imaptest against postd: the 71 scripted conformance tests and
the stress mode with state tracking, through tests/imaptest/run.sh.

POSTD_IMAPTEST=1 runs the scripted tests (./test.sh sets it for its gcc
run; it builds imaptest once into the cache of run.sh, which needs
dovecot-dev, autoconf, automake and libtool). The stress run is random
by nature, so it runs only when asked: POSTD_IMAPTEST_STRESS=SECONDS
(60 or more for the issue's figure). With POSTD_IMAP_REFERENCE=dovecot both run against the
reference Dovecot instead, which proves the thresholds: on Dovecot 2.3.19
the scripted tests give 67 passed, 0 failed, 4 skipped.
"""

import os
import re
import shutil
import subprocess

import pytest

import conftest
import imapserver

RUN_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "../imaptest/run.sh")
# Dovecot 2.3.19, the reference, passes 67 of the 71 (4 need capabilities
# it does not offer): postd must fail none and pass at least as many.
MIN_PASSED = 67

pytestmark = pytest.mark.skipif(
    not os.environ.get("POSTD_IMAPTEST"),
    reason="imaptest conformance runs only with POSTD_IMAPTEST=1")


def run_sh(*args, timeout):
    if not os.path.exists("/usr/lib/dovecot/dovecot-config"):
        pytest.skip("imaptest needs dovecot-dev (Dovecot's libraries)")
    if not shutil.which("autoreconf"):
        pytest.skip("building imaptest needs autoconf, automake, libtool")
    env = dict(os.environ)
    env.pop("PASS", None)  # never an external server by accident
    if imapserver.REFERENCE == "dovecot":
        env["SERVER"] = "dovecot"
    else:
        env["SERVER"] = "postd"
        env["POSTD_BUILD"] = conftest.BUILD
    p = subprocess.run(["bash", RUN_SH] + list(args), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def test_imaptest_scripted():
    rc, out = run_sh("scripted", timeout=3600)
    m = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", out, re.M)
    assert m, out[-4000:]
    passed, failed, skipped = (int(x) for x in m.groups())
    assert failed == 0, out[-6000:]
    assert passed >= MIN_PASSED, out[-6000:]
    assert passed + failed + skipped == 71, out[-6000:]
    assert rc == 0, out[-6000:]


@pytest.mark.skipif(not os.environ.get("POSTD_IMAPTEST_STRESS"),
                    reason="the stress run needs POSTD_IMAPTEST_STRESS=SECONDS")
def test_imaptest_stress():
    secs = int(os.environ.get("POSTD_IMAPTEST_STRESS", "60"))
    rc, out = run_sh("stress", str(secs), timeout=secs + 600)
    m = re.search(r"^stress: (\d+) errors, (\d+) warnings", out, re.M)
    assert m, out[-4000:]
    assert int(m.group(1)) == 0, out[-6000:]
    assert rc == 0, out[-6000:]
    # commands were really sent: the totals row is not all zeros
    totals = out.split("Totals:", 1)[1].splitlines()
    counts = [int(x) for ln in totals for x in ln.split()
              if x.isdigit() and not ln.strip().endswith("%")]
    assert sum(counts) > 0, out[-4000:]
