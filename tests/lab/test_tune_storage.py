"""Sweeps across machines: two workers, each with its own copy of the study folder (as on two machines,
so the folder's flock cannot serialize them), share one study on a real PostgreSQL server started here
(initdb in a temporary folder, as a non-root user), without losing or duplicating a trial. Bad storage
URLs are one line with exit code 2."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engine.cli import main
from engine.lab.tune import prepare, summary, worker_main
from engine.lab.tune_space import SweepInput

def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(dirs[-1]) if dirs and (Path(dirs[-1]) / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install -y postgresql "
                    "(scripts/setup.sh --test does)")
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed (the test extra has it)")
    root = Path(tempfile.mkdtemp(prefix="preflight-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = pwd.getpwnam("nobody")
        os.chmod(root, 0o755)
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    init = run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert init.returncode == 0, init.stderr
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
    assert start.returncode == 0, start.stderr + (root / "log").read_text(errors="replace")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(180)
def test_two_machines_share_one_postgres_study_without_lost_or_duplicated_trials(tmp_path, postgres):
    space = {"fixed": {"max_steps": 12, "eval_every": 4, "step_s": 0.02}, "params": {"lr": {"low": 1e-5, "high": 1.0, "log": True}}}
    inp = SweepInput(objective="planted", space=space, trials=8, out=str(tmp_path / "a" / "s"), storage=postgres,
                     prune=False)
    first, _ = prepare(inp)
    second = tmp_path / "b" / "s"       # the other machine's copy of the study folder: sweep.json only
    second.mkdir(parents=True)
    shutil.copy(first / "sweep.json", second / "sweep.json")
    # two workers at once, each on its own folder: only the database can keep them from racing (threads,
    # not processes, to keep the test fast; each opens its own connections and its own lock file)
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda a: worker_main(*a), [(first, 0), (second, 1)]))
    took = [o["trials"] for o in outs]
    assert took[0] and took[1], took                         # both machines worked
    assert sorted(took[0] + took[1]) == list(range(8))       # every trial once, none lost, none doubled
    res = summary(first)
    assert sorted(t["number"] for t in res.trials) == list(range(8))
    assert all(t["state"] == "complete" for t in res.trials), res.trials
    assert not (first / "study.sqlite").exists()             # the study lives in PostgreSQL


def test_unreachable_or_bad_storage_is_one_line(tmp_path, capsys):
    url = f"postgresql://u:secret@127.0.0.1:{_free_port()}/x"
    t = time.monotonic()
    assert main(["sweep", "--objective", "planted", "--trials", "2", "--out", str(tmp_path / "s"),
                 "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach the study storage" in err and "127.0.0.1" in err and "secret" not in err
    assert err.count("\n") == 0 and time.monotonic() - t < 15
    assert main(["sweep", "--objective", "planted", "--trials", "2", "--out", str(tmp_path / "t"),
                 "--storage", "redis://x"]) == 2
    assert "not an Optuna storage URL" in capsys.readouterr().err

