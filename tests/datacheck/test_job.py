"""Data checks as a background job: results, one-line failures, a killed worker, cancelling."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from engine.datacheck import job
from engine.errors import ValidationError


def _csv(tmp_path, rows: int = 50, name: str = "d.csv"):
    path = tmp_path / name
    path.write_text("id,x\n" + "".join(f"{i % 40},{i % 40}\n" for i in range(rows)))
    return path


def _wait(job_id: str, timeout: float = 90.0) -> job.JobStatus:
    deadline = time.monotonic() + timeout
    while (status := job.poll(job_id)).state == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


def test_inline_job_writes_report_html_and_cleaned_file(tmp_path):
    job_id = job.start_check({"path": str(_csv(tmp_path))}, inline=True)
    status = job.poll(job_id)
    assert status.state == "done" and status.fraction == 1.0
    assert status.report["rows"] == 50
    dups = next(f for f in status.report["findings"] if f["id"] == "duplicate_rows")
    assert dups["count"] == 10
    assert "<html" in job.artifact(job_id, "report.html").read_text().lower()
    cleaned = status.report["fix"]["path"]
    assert sum(1 for _ in open(cleaned)) == 41  # header + 40 distinct rows
    assert json.loads((job.jobs_dir() / job_id / "report.json").read_text()) == status.report


def test_background_job_reports_progress_then_the_same_report(tmp_path):
    path = _csv(tmp_path, rows=2000)
    job_id = job.start_check({"path": str(path)})
    status = _wait(job_id)
    assert status.state == "done", status.error
    inline = job.poll(job.start_check({"path": str(path)}, inline=True)).report
    strip = lambda r: {k: v for k, v in r.items() if k not in ("elapsed_s", "fix", "checks_run")}  # noqa: E731
    assert strip(status.report) == strip(inline)


def test_bad_file_fails_with_one_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    status = _wait(job.start_check({"path": str(empty)}))
    assert status.state == "failed" and "\n" not in status.error and "empty" in status.error.lower()


def test_unknown_field_is_refused_before_any_process_starts(tmp_path):
    with pytest.raises(ValidationError, match="bad check input"):
        job.start_check({"path": str(_csv(tmp_path)), "rm_rf": True})


def test_killed_worker_is_reported_failed(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("id,text\n" + "".join(f"{i},some words here number {i}\n" for i in range(300_000)))
    job_id = job.start_check({"path": str(big)})
    from engine import jobs

    pid = jobs.read_record(job.jobs_dir() / job_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    status = _wait(job_id, timeout=30)
    assert status.state == "failed" and "stopped without a report" in status.error


def test_cancel_stops_a_running_job(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("id,text\n" + "".join(f"{i},other words here number {i}\n" for i in range(300_000)))
    job_id = job.start_check({"path": str(big)})
    job.cancel(job_id)
    status = _wait(job_id, timeout=30)
    assert status.state == "failed" and "cancelled" in status.error


def test_poll_of_unknown_or_hostile_job_id_is_a_failure_not_a_crash():
    assert job.poll("20990101-000000-deadbeef").state == "failed"
    assert job.poll("../../etc").state == "failed"
