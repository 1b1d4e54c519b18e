"""The one runner for background work (engine/jobs.py): a worker starts in its own session with the
engine on its path, records its pid, reports progress, stops on request, and a dead worker reads as
failed with the last line of its log."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from engine import jobs

WORKER = '''
import json, os, sys, time
from pathlib import Path
import engine.jobs as jobs

folder, mode = Path(sys.argv[1]), sys.argv[2]
print("pgid", os.getpgid(0) == os.getpid(), "engine", jobs.__file__, flush=True)
if mode == "progress":
    for i in range(1, 4):
        jobs.write_progress(folder, i / 4, f"step {i}")
        time.sleep(0.05)
    (folder / "out.json").write_text(json.dumps({"answer": 42}))
elif mode == "fail":
    print("preflight: error: the file is empty", file=sys.stderr, flush=True)
    sys.exit(2)
else:  # wait: until stopped
    jobs.write_progress(folder, 0.5, "waiting")
    while True:
        time.sleep(0.05)
'''


@pytest.fixture()
def worker(tmp_path, monkeypatch) -> Path:
    """A worker module on a path of its own (handed to the child through start(env=...))."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "jobs_test_worker.py").write_text(WORKER)
    return code


def _start(worker: Path, folder: Path, mode: str, **kw) -> jobs.Job:
    env = {"PYTHONPATH": os.pathsep.join((str(jobs.ROOT), str(worker)))}
    return jobs.start("jobs_test_worker", [str(folder), mode], folder, env=env, **kw)


def _result(folder: Path):
    path = folder / "out.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _wait(folder: Path, timeout: float = 30.0) -> jobs.JobStatus:
    deadline = time.monotonic() + timeout
    while (s := jobs.status(folder, lambda: _result(folder), marker="error:")).status == "running":
        assert time.monotonic() < deadline, s
        time.sleep(0.05)
    return s


def test_start_records_pid_and_start_time_and_reports_progress_then_the_result(tmp_path, worker):
    folder = tmp_path / "job"
    job = _start(worker, folder, "progress")
    rec = jobs.read_record(folder)
    assert rec["pid"] == job.pid and rec["group"] is True and rec["argv"][0] == "jobs_test_worker"
    assert rec["pid_started"] == pytest.approx(job.pid_started) and abs(rec["started"] - time.time()) < 30
    s = _wait(folder)
    assert s.status == "done" and s.result == {"answer": 42} and s.fraction == 1.0
    assert jobs.read_progress(folder)["fraction"] == 0.75 and jobs.read_progress(folder)["message"] == "step 3"
    first = jobs.last_line(folder / "log.txt").split()
    # its own session (process group leader), and the engine it imports is this one
    assert first[:2] == ["pgid", "True"] and Path(first[3]).resolve() == Path(jobs.__file__).resolve()
    assert not jobs.running(folder) and not jobs.alive(job.pid, job.pid_started)


def test_stop_ends_a_running_worker_and_it_reads_failed(tmp_path, worker):
    folder = tmp_path / "job"
    job = _start(worker, folder, "wait")
    deadline = time.monotonic() + 30
    while jobs.read_progress(folder).get("message") != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    s = jobs.status(folder, lambda: _result(folder))
    assert s.status == "running" and s.fraction == 0.5 and s.message == "waiting"
    assert jobs.stop(folder)
    s = _wait(folder)
    assert s.status == "failed" and not jobs.alive(job.pid)
    assert not jobs.stop(folder)  # nothing left to stop


def test_a_dead_worker_is_failed_with_the_last_line_of_its_log(tmp_path, worker):
    folder = tmp_path / "job"
    _start(worker, folder, "fail")
    s = _wait(folder)
    assert s.status == "failed" and s.error == "the file is empty"


def test_a_killed_worker_with_a_silent_log_is_failed_not_running(tmp_path, worker):
    folder = tmp_path / "job"
    job = _start(worker, folder, "wait", stdout=jobs.DISCARD)
    os.kill(job.pid, signal.SIGKILL)
    s = _wait(folder)
    assert s.status == "failed" and s.error == "the worker stopped without a result"


def test_a_recycled_pid_is_not_the_worker(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    # this test's own pid, with another start time: a pid the OS gave to another process
    jobs.write_atomic(folder / jobs.RECORD, json.dumps({"pid": os.getpid(), "pid_started": 1.0, "log": "log.txt"}))
    assert not jobs.running(folder) and not jobs.stop(folder)
    assert jobs.status(folder, lambda: None).status == "failed"


def test_last_line_and_events_skip_what_is_not_there(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("starting\nerror: first\n\nwarming up\nerror: second \n\n")
    assert jobs.last_line(log) == "error: second"
    assert jobs.last_line(log, "error:") == "second"
    assert jobs.last_line(tmp_path / "missing.txt") == ""
    events = tmp_path / "progress.jsonl"
    events.write_text('{"event": "time"}\n{"event": "ti')  # the last line is half-written
    assert jobs.read_events(events) == [{"event": "time"}]
