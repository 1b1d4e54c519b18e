"""Issue 11 item 19: a run ends on pytest's own summary line, even when Playwright's driver died during
the session. Then its transport holds a "Connection closed while reading from the driver" error that
nothing reads; when that object outlives the session (a failed test's traceback keeps it), asyncio
prints "Future exception was never retrieved" after the summary. A small pytest session in a subprocess
uses this suite's ``browser`` fixture and SIGKILLs the driver: the fixture must read that error and
report it as a warning (inside the run), and the output's last line must be pytest's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

_INNER = '''
import signal

import psutil


def test_driver_dies(browser):
    assert browser.is_connected()
    drivers = [p for p in psutil.Process().children() if "node" in p.name()]
    assert drivers, [p.name() for p in psutil.Process().children()]
    for p in drivers:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(drivers, timeout=10)
'''


def test_suite_ends_on_pytests_summary_when_the_driver_dies(browser, tmp_path):  # browser: skips without Chromium
    (tmp_path / "test_inner.py").write_text(_INNER)
    # collect garbage once the session is over, as a long run eventually does: an error left in a future
    # nobody read is printed then, after the summary
    (tmp_path / "conftest.py").write_text("import gc\n\n\ndef pytest_unconfigure(config):\n    gc.collect()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.e2e.conftest",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    out = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, out[-3000:]
    assert "never retrieved" not in out, out[-3000:]
    assert "Playwright's driver exited during the session: Connection closed" in out, out[-3000:]
    assert re.fullmatch(r"=*\s*1 passed.* in [\d.]+s.*", out.splitlines()[-1]), out[-3000:]
