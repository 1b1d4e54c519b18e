"""Data checks as a background job: the page starts one, then polls it; the check never runs inside
the page's script.

A job is a folder (under ``$PREFLIGHT_HOME/checks/``) and a worker process::

    input.json      the CheckInput, as JSON
    progress.json   {"fraction": 0.42, "message": "train: 420,000 rows checked", "time": ...}
    report.json     the finished report (CheckReport.to_dict())
    report.html     the standalone HTML report
    cleaned.<ext>   the cleaned file (safe fixes), when any fix applied
    error.txt       one line, when the input was bad (ValidationError) or the worker crashed

Every file is written to a temporary name and renamed, so a reader never sees half a file.
Started with ``python -m engine.datacheck.job DIR`` through the job runner (engine/jobs.py: its record
``job.json`` and ``worker.log``); a worker that dies without writing a report or an error is reported as
failed once its pid is gone, with the last line of its log.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import jobs as runner
from engine import workspace
from engine.errors import ValidationError


def jobs_dir() -> Path:
    path = workspace.home() / "checks"
    path.mkdir(parents=True, exist_ok=True)
    return path


_write_atomic = runner.write_atomic


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class JobStatus:
    """What the page shows while polling: state is running | done | failed."""

    job_id: str
    state: str
    fraction: float
    message: str
    report: dict | None = None
    error: str | None = None
    directory: str = ""

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.state}  # "status": the key ui.widgets.watch_job reads


def start_check(inp_fields: dict[str, Any], *, inline: bool = False) -> str:
    """Start checking a file; returns the job id. ``inp_fields`` are CheckInput's fields (paths as
    text). ``inline`` runs the check in this process (small files, tests) and returns when done.
    Bad fields are caught here, before any process starts."""
    from engine.access import require_write
    from engine.datacheck.runner import CheckInput

    require_write("running a data check (it writes to the shared workspace)")
    try:
        inp = CheckInput(**inp_fields)
    except TypeError as exc:
        raise ValidationError(f"bad check input: {exc}") from None
    from engine.datacheck.runner import engine_spec

    engine_spec(inp)  # an unknown engine or a malformed scheduler address: one line now, not in the worker
    job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    directory = jobs_dir() / job_id
    directory.mkdir(parents=True)
    fields = dict(inp_fields)
    fields.setdefault("fix_out", None)
    _write_atomic(directory / "input.json", json.dumps(fields, default=str))
    if inline:
        run_job(directory)
        return job_id
    runner.start("engine.datacheck.job", [str(directory)], directory, log="worker.log", append=False)
    return job_id


def poll(job_id: str) -> JobStatus:
    """The job's state now (never raises for a missing or broken job: it reports it as failed)."""
    directory = jobs_dir() / workspace.safe_name(job_id, "job id")
    if not directory.is_dir():
        return JobStatus(job_id, "failed", 0.0, "", error=f"no data-check job {job_id!r}")
    error = _error(directory)
    if error is not None:
        return JobStatus(job_id, "failed", 1.0, "", error=error, directory=str(directory))
    report = _read_json(directory / "report.json")
    if report is not None:
        return JobStatus(job_id, "done", 1.0, "done", report=report, directory=str(directory))
    s = runner.status(directory, lambda: _read_json(directory / "report.json") or _error(directory))
    if s.status == "running":
        return JobStatus(job_id, "running", s.fraction, s.message, directory=str(directory))
    if s.result is not None:  # finished between the reads above
        return poll(job_id)
    pid = (runner.read_record(directory) or {}).get("pid")
    why = f": {s.error}" if s.error != "the worker stopped without a result" else ""
    return JobStatus(job_id, "failed", s.fraction, "",
                     error=f"the check worker (pid {pid}) stopped without a report{why}; see {directory / 'worker.log'}",
                     directory=str(directory))


def _error(directory: Path) -> str | None:
    """The one line a finished worker left in error.txt, or None."""
    try:
        return (directory / "error.txt").read_text(encoding="utf-8").strip()[:500]
    except OSError:
        return None


def cancel(job_id: str) -> None:
    """Stop a running job's worker (the page starts a new job when its inputs change)."""
    directory = jobs_dir() / workspace.safe_name(job_id, "job id")
    if (directory / "report.json").exists() or (directory / "error.txt").exists():
        return
    if runner.stop(directory):  # SIGTERM to the worker's process group
        _write_atomic(directory / "error.txt", "cancelled: the inputs changed before the check finished")


def artifact(job_id: str, name: str) -> Path | None:
    """A finished job's file (report.html, the cleaned file...), or None."""
    directory = jobs_dir() / workspace.safe_name(job_id, "job id")
    path = directory / workspace.safe_name(name, "file name")
    return path if path.is_file() else None


def run_job(directory: Path) -> None:
    """The worker: run the checks described by ``directory/input.json``, write the results."""
    from engine.datacheck.report_html import render_html
    from engine.datacheck.runner import CheckInput, run_checks

    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or fraction >= 1.0:
            last[0] = now
            runner.write_progress(directory, fraction, message)

    try:
        fields = json.loads((directory / "input.json").read_text(encoding="utf-8"))
        source = Path(fields["path"])
        suffix = "".join(source.suffixes[-2:]) or ".csv"
        if source.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
            suffix = ".csv"  # a workbook's sheet is cleaned into a CSV
        from engine.tabular import is_sharded

        if not is_sharded(source):  # a folder of shards gets no single cleaned file
            fields["fix_out"] = str(directory / f"cleaned{suffix}")
        report = run_checks(CheckInput(**fields), progress=progress).to_dict()
        _write_atomic(directory / "report.html", render_html(report))
        _write_atomic(directory / "report.json", json.dumps(report, allow_nan=False))
    except ValidationError as exc:
        _write_atomic(directory / "error.txt", str(exc))
    except Exception as exc:  # noqa: BLE001 - the page must get one line, the log the rest
        traceback.print_exc()
        _write_atomic(directory / "error.txt", f"the data check failed unexpectedly: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
    # Everything is on disk (written atomically). Skip interpreter teardown: a pyarrow I/O thread still
    # finishing a read-ahead can abort it ("terminate called without an active exception").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
