"""Inference work that takes longer than a page run (benchmarks, exports, serving calibration), each in its
own process with a job folder the page polls.

``$PREFLIGHT_HOME/infer-jobs/<id>/``: ``args.json`` (the command line), ``out.json`` (the command's one JSON
object, written by the child through its stdout), ``err.txt`` (its stderr: the one-line error of a bad
input), ``progress.jsonl`` (one event per line, from ``--progress``), ``job.json`` (engine.jobs' record). A job is finished when its
process is gone: ``out.json`` parses (done) or it does not (failed, with the last stderr line as error).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from engine import jobs as runner
from engine.errors import ValidationError

COMMANDS = ("bench", "export", "calibrate")


def jobs_dir() -> Path:
    from engine import workspace

    path = workspace.home() / "infer-jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start(command: str, args: list[str]) -> str:
    """Start ``python -m engine <command> <args> --json`` through the job runner; returns the job id."""
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
    runner.start("engine", argv, folder, log="err.txt", stdout="out.json", append=False)
    return job


def _result(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "out.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def status(job: str) -> dict:
    """{'status': running|done|failed, 'progress': [events], 'result': dict|None, 'error': str|None}."""
    if not job or "/" in job or job.startswith("."):
        raise ValidationError(f"bad job id {job!r}")
    folder = jobs_dir() / job
    if not folder.is_dir():
        raise ValidationError(f"no inference job {job!r}")
    s = runner.status(folder, lambda: _result(folder), log="err.txt", dead="the job ended without a result",
                      events="progress.jsonl")
    error = s.error
    if error and "error: " in error:
        error = error.split("error: ", 1)[-1]
    return {"status": s.status, "progress": s.progress, "result": s.result, "error": error}
