"""The one runner for background work: data checks, training, calibration, sweeps, evaluation, export,
benchmark and serving calibration all start, watch and stop their worker processes through it.

A job is a worker process, ``python -m MODULE ARGS``, and a folder it writes to:

- :func:`start` starts it in a new session (its own process group: it survives Streamlit reruns, page
  switches and closed tabs, and a stop reaches its children), with the environment every worker needs
  (``PYTHONPATH`` led by the folder that holds this ``engine`` package, so a worker runs the same code
  as its parent; unbuffered output, so the log is current). Its output goes to a log file in the
  folder, and its pid and the OS start time of that pid go to a record file in the folder
  (``job.json``), or, for a training run, to the registry (``Registry.set_pid`` keeps the same two).
- :func:`alive` / :func:`running` tell a live worker from a dead one or a recycled pid (the start time
  must match), and reap a finished child of this process, which would count as alive otherwise.
- :func:`write_progress` / :func:`read_progress` are the progress file (``progress.json``, written
  atomically) a worker reports its fraction and message in; :func:`read_events` reads a JSON-lines
  progress log (the benchmark's).
- :func:`stop` asks a worker to end: SIGTERM to its process group (workers treat it as Stop).
- :func:`status` puts these together: running while the recorded worker lives; done once its result
  is there; failed otherwise, with the last line its log holds (the one-line error of a bad input, or
  the crash) instead of a silent end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.store import is_alive, process_start_time

RECORD = "job.json"
PROGRESS = "progress.json"
DISCARD = object()  # start(stdout=DISCARD): the worker's stdout goes nowhere (its result is a file it writes)
ROOT = Path(__file__).resolve().parents[1]  # the folder holding the engine package


@dataclass(frozen=True)
class Job:
    """A started worker: its pid and the pid's OS start time, its folder and log."""

    pid: int
    pid_started: float | None
    folder: str
    log: str
    process: subprocess.Popen | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class JobStatus:
    """What a page shows while it polls: ``status`` is running | done | failed."""

    status: str
    fraction: float = 0.0
    message: str = ""
    result: Any = None
    error: str | None = None
    progress: list = field(default_factory=list)  # a JSON-lines progress log's events, where the job keeps one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a worker: PYTHONPATH led by the engine's folder, unbuffered output."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if extra:
        env.update(extra)
    return env


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path`` and rename it: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def start(module: str, args: list[str], folder: str | os.PathLike, *, log: str = "log.txt",
          stdout: str | object | None = None, append: bool = True, record: str | None = RECORD,
          new_session: bool = True, env: dict[str, str] | None = None) -> Job:
    """Start ``python -m module args`` with its output in ``folder/log`` (appended, or truncated when
    ``append`` is False). ``stdout``: None puts it in the log too; a file name gives it its own file
    (truncated: the worker's one JSON answer); :data:`DISCARD` drops it. ``record``: the file in
    ``folder`` that gets the pid and its start time (None: the caller records them, as the registry
    does). ``new_session=False`` keeps the worker in this process's group (a sweep's trial workers, which
    end with the sweep). ``env`` adds variables to :func:`worker_env`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    err = open(log_path, "ab" if append else "wb")  # noqa: SIM115 - handed to the child, closed below
    out: Any = err
    if stdout is DISCARD:
        out = subprocess.DEVNULL
    elif stdout is not None:
        out = open(folder / str(stdout), "wb")  # noqa: SIM115 - handed to the child, closed below
    try:
        proc = subprocess.Popen([sys.executable, "-m", module, *[str(a) for a in args]], stdout=out,
                                stderr=subprocess.STDOUT if out is err else err,
                                stdin=subprocess.DEVNULL, start_new_session=new_session, cwd=os.getcwd(),
                                env=worker_env(env))
    finally:
        err.close()
        if out is not err and hasattr(out, "close"):
            out.close()
    job = Job(proc.pid, process_start_time(proc.pid), str(folder), str(log_path), proc)
    if record:
        write_atomic(folder / record, json.dumps({"pid": job.pid, "pid_started": job.pid_started, "started": time.time(),
                                                  "group": new_session, "argv": [module, *map(str, args)], "log": log}))
    return job


def read_record(folder: str | os.PathLike, record: str = RECORD) -> dict[str, Any] | None:
    """The job's record (pid, pid_started, started, group, argv, log), or None when it has none."""
    try:
        rec = json.loads((Path(folder) / record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) else None


def alive(pid: int | None, started: float | None = None) -> bool:
    """Whether ``pid`` is a live worker (the same process, when its start time is given). A finished
    child of this process is reaped first: a zombie would count as alive."""
    if not pid:
        return False
    try:
        os.waitpid(int(pid), os.WNOHANG)
    except (ChildProcessError, OSError):
        pass  # not our child, or already reaped
    return is_alive(int(pid), started)


def running(folder: str | os.PathLike, record: str = RECORD) -> bool:
    rec = read_record(folder, record)
    return bool(rec) and alive(rec["pid"], rec.get("pid_started"))


def send(pid: int | None, started: float | None = None, sig: int = signal.SIGTERM, *, group: bool = True) -> bool:
    """Send ``sig`` to a live worker (to its process group, where it leads one). Whether it was sent."""
    if not alive(pid, started):
        return False
    try:
        if group:
            os.killpg(int(pid), sig)
        else:
            os.kill(int(pid), sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(folder: str | os.PathLike, record: str = RECORD, sig: int = signal.SIGTERM) -> bool:
    """Ask the job's worker to end (SIGTERM: workers treat it as Stop). Whether a signal was sent."""
    rec = read_record(folder, record)
    if not rec:
        return False
    return send(rec["pid"], rec.get("pid_started"), sig, group=bool(rec.get("group", True)))


def write_progress(folder: str | os.PathLike, fraction: float, message: str, **extra: Any) -> None:
    """The worker's side: its progress now, for the page (``progress.json``, atomically)."""
    write_atomic(Path(folder) / PROGRESS, json.dumps({"fraction": round(float(fraction), 4), "message": message,
                                                      "time": time.time(), **extra}))


def read_progress(folder: str | os.PathLike) -> dict[str, Any]:
    try:
        out = json.loads((Path(folder) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def read_events(path: str | os.PathLike) -> list[dict]:
    """The events of a JSON-lines progress log (a half-written last line is left out)."""
    events = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


def last_line(path: str | os.PathLike, marker: str | None = None) -> str:
    """The last non-blank line of a log (its last 16 KiB), at most 500 characters; with ``marker``
    (e.g. ``"error:"``), the text after it on the last line that holds it ("" when none does)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 16384))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if marker is not None:
        lines = [ln.split(marker, 1)[1].strip() for ln in lines if marker in ln]
    return lines[-1][:500] if lines else ""


def status(folder: str | os.PathLike, result: Callable[[], Any], *, record: str = RECORD, log: str | None = None,
           marker: str | None = None, dead: str = "the worker stopped without a result",
           events: str | None = None) -> JobStatus:
    """The job now: running while its recorded worker lives; done when ``result()`` gives something
    (not None); failed otherwise, with the last line of its log (after ``marker`` where given), or
    ``dead`` when the log says nothing. ``events``: a JSON-lines progress log in the folder."""
    folder = Path(folder)
    rec = read_record(folder, record)
    progress = read_progress(folder)
    fraction, message = float(progress.get("fraction", 0.0)), str(progress.get("message", ""))
    seen = read_events(folder / events) if events else []
    if rec and alive(rec["pid"], rec.get("pid_started")):
        return JobStatus("running", fraction, message or "starting", progress=seen)
    value = result()
    if value is not None:
        return JobStatus("done", 1.0, "done", result=value, progress=seen)
    line = last_line(folder / (log or (rec or {}).get("log") or "log.txt"), marker)
    return JobStatus("failed", fraction, "", error=line or dead, progress=seen)
