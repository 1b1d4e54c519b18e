"""The run registry: names, statuses, metrics polling, stop flag, dead workers, deletion, concurrency."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import pytest

from engine.errors import ValidationError
from engine.store import Registry, is_alive


@pytest.fixture
def reg(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    return Registry()


def test_create_run_sanitizes_and_uniquifies(reg, tmp_path):
    from engine.workspace import runs_dir

    a = reg.create_run("../../x", {"lr": 1e-3}, runs_dir() / "x")
    b = reg.create_run("../../x", {}, runs_dir() / "x2")
    c = reg.create_run("x", {}, runs_dir() / "x3")
    assert (a, b, c) == ("x", "x-2", "x-3")
    assert "/" not in a and ".." not in a
    run = reg.get_run("x")
    assert run["config"] == {"lr": 1e-3} and run["status"] == "queued" and run["kind"] == "train"
    with pytest.raises(ValidationError):
        reg.create_run("../..", {}, tmp_path)
    with pytest.raises(ValidationError):
        reg.get_run("nope")
    assert list(reg.list_runs()["name"]) == ["x-3", "x-2", "x"]


def test_status_metrics_merge_and_since_step(reg, tmp_path):
    name = reg.create_run("r", {}, tmp_path / "r")
    reg.set_status(name, "running", pid=os.getpid())
    reg.log_metrics(name, rows=[{"step": s, "train_loss": 5.0 - s, "lr": 0.1} for s in range(1, 6)])
    reg.log_metrics(name, 5, val_loss=3.5, val_ppl=math.exp(3.5))
    reg.log_metrics(name, 6, train_loss=float("nan"))  # stored as NULL, never NaN in JSON
    df = reg.metrics(name)
    assert list(df["step"]) == [1, 2, 3, 4, 5, 6]
    row5 = df[df.step == 5].iloc[0]
    assert row5.train_loss == 0.0 and row5.val_loss == 3.5  # merged into one row
    assert math.isnan(df[df.step == 6].iloc[0].train_loss)
    assert list(reg.metrics(name, since_step=4)["step"]) == [5, 6]
    assert reg.metrics(name, since_step=6).empty
    with pytest.raises(ValidationError):
        reg.log_metrics(name, 7, bogus=1.0)
    reg.truncate_metrics(name, 3)
    assert list(reg.metrics(name)["step"]) == [1, 2, 3]
    reg.set_status(name, "finished", summary={"train_loss": 1.0})
    run = reg.get_run(name)
    assert run["status"] == "finished" and run["ended"] is not None and run["summary"]["train_loss"] == 1.0
    with pytest.raises(ValidationError):
        reg.set_status(name, "exploded")


def test_stop_flag_and_samples(reg, tmp_path):
    name = reg.create_run("s", {}, tmp_path / "s")
    reg.set_status(name, "running", pid=os.getpid())
    assert not reg.stop_requested(name)
    reg.request_stop(name)
    assert reg.stop_requested(name) and reg.get_run(name)["status"] == "stopping"
    reg.add_sample(name, 10, "hello", prompt="h")
    reg.add_sample(name, 20, "world")
    assert [s["text"] for s in reg.samples(name)] == ["world", "hello"]


def test_mark_dead_marks_killed_worker(reg, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        name = reg.create_run("dead", {}, tmp_path / "d")
        reg.set_status(name, "running", pid=proc.pid)
        alive = reg.create_run("alive", {}, tmp_path / "a")
        reg.set_status(alive, "running", pid=os.getpid())
        assert reg.mark_dead() == []
        proc.kill()
        proc.wait()
        assert not is_alive(proc.pid)
        assert reg.mark_dead() == [name]
        run = reg.get_run(name)
        assert run["status"] == "failed" and run["error"] == f"worker was killed (pid {proc.pid} gone)"
        assert reg.get_run(alive)["status"] == "running"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_delete_run_refuses_while_running_and_outside_runs_dir(reg, tmp_path):
    from engine.workspace import runs_dir

    inside = runs_dir() / "keep"
    inside.mkdir()
    (inside / "f.txt").write_text("x")
    name = reg.create_run("keep", {}, inside)
    reg.set_status(name, "running", pid=os.getpid())
    with pytest.raises(ValidationError, match="stop it"):
        reg.delete_run(name)
    reg.set_status(name, "stopped")
    reg.log_metrics(name, 1, train_loss=1.0)
    reg.delete_run(name)
    assert not inside.exists()
    with pytest.raises(ValidationError):
        reg.get_run(name)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    other = reg.create_run("out", {}, outside)
    with pytest.raises(ValidationError, match="outside the runs folder"):
        reg.delete_run(other)
    assert outside.exists()
    reg.delete_run(other, remove_files=False)
    assert outside.exists() and reg.list_runs().empty


def test_writer_process_and_reader_concurrently(reg, tmp_path):
    name = reg.create_run("conc", {}, tmp_path / "c")
    writer = textwrap.dedent(f"""
        from engine.store import Registry
        reg = Registry({str(reg.path)!r})
        for s in range(1, 301):
            reg.log_metrics({name!r}, s, train_loss=1.0 / s, tokens_per_s=100.0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=os.getcwd())
    seen, last = [], 0
    deadline = time.time() + 60
    while time.time() < deadline:
        df = reg.metrics(name, since_step=last)
        if not df.empty:
            seen.extend(df["step"].tolist())
            last = int(df["step"].iloc[-1])
        if proc.poll() is not None and last == 300:
            break
        reg.list_runs()
    assert proc.wait(timeout=30) == 0
    assert seen == list(range(1, 301))  # every step read exactly once, in order


def test_schema_version_recorded_and_newer_refused(reg):
    import sqlite3

    conn = sqlite3.connect(reg.path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ValidationError, match="newer"):
        Registry(reg.path)


def test_a_version_1_workspace_registry_upgrades_keeping_its_runs_and_gets_the_demo(tmp_path, monkeypatch):
    """Schema 1 -> 2 adds the ``shipped`` flag; an existing workspace gets the shipped demo run beside its own."""
    import sqlite3

    from engine.store import _V1, DEMO_RUN

    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PREFLIGHT_DEMO_RUN", "1")
    from engine.workspace import registry_path

    conn = sqlite3.connect(registry_path())
    conn.executescript(_V1 + "; INSERT INTO meta VALUES ('schema_version', '1');"
                       "INSERT INTO runs(name, run_dir, created, updated) VALUES ('mine', '/x', 1, 1);")
    conn.close()
    reg = Registry()
    assert sorted(reg.list_runs()["name"]) == [DEMO_RUN, "mine"]
    assert reg.get_run("mine")["shipped"] is False and reg.get_run(DEMO_RUN)["shipped"] is True
    reg.delete_run("mine", remove_files=False)  # the user's own run still deletes
    assert list(Registry().list_runs()["name"]) == [DEMO_RUN]


def test_list_runs_keeps_missing_values_as_none_not_nan(tmp_path):
    """A run without an error, pid or end time must list as None: NaN breaks JSON (runs --json,
    readiness --json) and shows as 'nan' on the pages."""
    import json

    from engine.store import Registry

    reg = Registry(tmp_path / "r.sqlite")
    reg.create_run("ok-run", {"a": 1}, tmp_path / "runs" / "ok-run")
    row = reg.list_runs().iloc[0]
    assert row["error"] is None and row["ended"] is None and row["pid"] is None
    json.dumps(reg.list_runs().to_dict(orient="records"), allow_nan=False)
