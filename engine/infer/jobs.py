"""Inference work that takes longer than a page run (benchmarks, exports, serving calibration), each in its
own process with a job folder the page polls.

``$PREFLIGHT_HOME/infer-jobs/<id>/``: ``args.json`` (the command line), ``out.json`` (the command's one JSON
object, written by the child through its stdout), ``err.txt`` (its stderr: the one-line error of a bad
input), ``progress.jsonl`` (one event per line, from ``--progress``), ``pid``. A job is finished when its
process is gone: ``out.json`` parses (done) or it does not (failed, with the last stderr line as error).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from engine.errors import ValidationError

COMMANDS = ("bench", "export", "calibrate")


def jobs_dir() -> Path:
    from engine import workspace

    path = workspace.home() / "infer-jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start(command: str, args: list[str]) -> str:
    """Start ``python -m engine <command> <args> --json`` in a new session; returns the job id."""
    if command not in COMMANDS:
        raise ValidationError(f"unknown inference job {command!r}")
    if command == "calibrate":
        from engine.access import require_write

        require_write("calibration")
    job = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = jobs_dir() / job
    folder.mkdir()
    argv = [command, *[str(a) for a in args], "--json"]
    if command == "bench":
        argv += ["--progress", str(folder / "progress.jsonl")]
    (folder / "args.json").write_text(json.dumps(argv), encoding="utf-8")
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(folder / "out.json", "wb") as out, open(folder / "err.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine", *argv], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    (folder / "pid").write_text(str(proc.pid), encoding="utf-8")
    return job


def status(job: str) -> dict:
    """{'status': running|done|failed, 'progress': [events], 'result': dict|None, 'error': str|None}."""
    from engine.store import is_alive

    if not job or "/" in job or job.startswith("."):
        raise ValidationError(f"bad job id {job!r}")
    folder = jobs_dir() / job
    if not folder.is_dir():
        raise ValidationError(f"no inference job {job!r}")
    events = []
    try:
        for line in (folder / "progress.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    except OSError:
        pass
    try:
        pid = int((folder / "pid").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pid = None
    if pid and is_alive(pid):
        try:  # reap our own child if it has exited (a zombie counts as alive otherwise)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if is_alive(pid):
            return {"status": "running", "progress": events, "result": None, "error": None}
    try:
        result = json.loads((folder / "out.json").read_text(encoding="utf-8"))
        return {"status": "done", "progress": events, "result": result, "error": None}
    except (OSError, ValueError):
        err = (folder / "err.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        line = err[-1] if err else "the job ended without a result"
        return {"status": "failed", "progress": events, "result": None,
                "error": line.split("error: ", 1)[-1][:500]}
