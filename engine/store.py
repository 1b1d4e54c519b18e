"""The run registry: one SQLite database (stdlib ``sqlite3``) holding every run's config, status,
metrics, samples and errors.

One writer (the training process) and many readers (the page polling it) share the file safely:
WAL journal mode lets readers read while the writer commits, ``busy_timeout`` makes a briefly locked
database wait instead of failing, and every call opens and closes its own connection, so nothing is
shared across threads, processes or Streamlit reruns.

Tables (schema version in ``meta``; :data:`MIGRATIONS` upgrades older files in order):

- ``runs``: one row per run (unique sanitized name, run_dir, kind, status, config/summary JSON, pid
  and the pid's start time, host, timestamps, error text, a stop flag the trainer polls).
- ``metrics``: wide rows keyed by (run, step): train and validation values logged at the same step
  merge into one row, so "everything since step k" is one indexed range scan.
- ``samples``: text generated from the model during or after training.

The demo model (assets/demo_run/, made by scripts/make_demo_model.py) is registered as the run ``demo``
when the workspace's registry is created (or upgraded to schema 2): its folder is copied into the runs
folder and its row, metrics and samples come from its ``demo.json``, in the same transaction, so it happens
once, costs a file copy, and needs no torch. It is marked ``shipped``: it cannot be deleted, and the
readiness verdicts do not count it as the user's model. ``PREFLIGHT_DEMO_RUN=0`` turns it off.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path

from engine.errors import ValidationError
from engine.workspace import registry_path, runs_dir, safe_name

SCHEMA_VERSION = 2
KINDS = ("train", "calibrate", "serve-calibrate")  # serve-calibrate: engine.infer.serve_calibrate
STATUSES = ("queued", "running", "stopping", "finished", "stopped", "failed", "diverged")
ACTIVE = ("queued", "running", "stopping")
# Metric columns of the wide ``metrics`` table (all REAL, NULL where not logged at that step).
METRIC_COLUMNS = (
    "train_loss", "val_loss", "val_ppl", "val_acc", "val_f1", "lr", "grad_norm", "tokens_per_s",
    "tokens_seen", "elapsed_s", "mem_bytes", "mfu",
)

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    run_dir TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'train',
    status TEXT NOT NULL DEFAULT 'queued',
    config TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    pid INTEGER,
    pid_started REAL,
    host TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    started REAL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS runs_dir_idx ON runs(run_dir);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    time REAL NOT NULL,
    {metric_cols},
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run_idx ON samples(run_id, step);
""".replace("{metric_cols}", ",\n    ".join(f"{c} REAL" for c in METRIC_COLUMNS))

# Schema upgrades: MIGRATIONS[v] takes a database at version v to v + 1.
MIGRATIONS: dict[int, str] = {
    1: "ALTER TABLE runs ADD COLUMN shipped INTEGER NOT NULL DEFAULT 0",  # 1: the demo model shipped in assets/
}
# The demo model shipped with the repository (see the module docstring).
DEMO_RUN = "demo"
DEMO_META = "demo.json"
DEMO_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo_run"


def demo_enabled() -> bool:
    """Whether a new workspace gets the shipped demo run (``PREFLIGHT_DEMO_RUN=0`` turns it off)."""
    return os.environ.get("PREFLIGHT_DEMO_RUN", "1").strip().lower() not in ("0", "false", "no", "off")


def _now() -> float:
    return time.time()


def _finite(value: object) -> float | None:
    """A metric value as a float, or None (NaN/inf are stored as NULL: JSON and charts choke on them)."""
    if value is None:
        return None
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def process_start_time(pid: int) -> float | None:
    """The OS start time of ``pid`` (to tell a live run from a reused pid), or None if gone."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - psutil missing, no such process, access denied
        return None


def is_alive(pid: int | None, started: float | None = None) -> bool:
    """True if ``pid`` is a running (non-zombie) process and, when ``started`` is given, the same
    process that was recorded (a recycled pid has a different start time)."""
    if not pid or pid <= 0:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied
        return False


def resolve_run_dir(run: str | os.PathLike) -> Path:
    """A run folder, or the folder of a run registered under that name (absolute). Opening the workspace's
    registry creates it on first use, with the shipped demo run."""
    path = Path(str(run)).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        return Path(Registry().get_run(str(run))["run_dir"]).resolve()
    except ValidationError:
        raise ValidationError(f"--run {run}: no such run folder or registered run") from None


class Registry:
    """The run registry at ``path`` (default: the workspace's ``registry.sqlite``)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else registry_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            self._migrate(conn)

    # ---- plumbing -------------------------------------------------------------------------
    @contextmanager
    def connect(self):
        """One short-lived connection in autocommit mode; callers group writes with ``transaction``.
        Public for the tables other rooms keep in this file (readiness scenarios)."""
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: no fsync per commit, durable at checkpoints
            conn.execute("PRAGMA foreign_keys = ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self):
        """A connection inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:  # the common case, a current database: a read, no write lock (pages open one every poll)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row and int(row[0]) == SCHEMA_VERSION:
                return
        except sqlite3.OperationalError:  # no meta table yet
            pass
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: set once, readers never block the writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
            version = 0
            if has_meta:
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else 0
            before = version
            if version == 0:
                for stmt in _V1.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                version = 1
            while version < SCHEMA_VERSION:
                for stmt in MIGRATIONS[version].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                version += 1
            if version > SCHEMA_VERSION:
                raise ValidationError(f"registry {self.path} has schema version {version}, newer than this "
                                      f"Preflight understands ({SCHEMA_VERSION}); upgrade Preflight")
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
            if before < 2 and demo_enabled() and self.path.resolve() == registry_path().resolve():
                _seed_demo(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _run_id(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValidationError(f"no run named {name!r} in the registry")
        return int(row[0])

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        out = dict(row)
        for key in ("config", "summary"):
            try:
                out[key] = json.loads(out[key]) if out.get(key) else {}
            except ValueError:
                out[key] = {}
        out["stop_requested"] = bool(out.get("stop_requested"))
        out["shipped"] = bool(out.get("shipped"))
        return out

    # ---- runs -----------------------------------------------------------------------------
    def create_run(self, name: str, config: Mapping | None, run_dir: str | os.PathLike, *, kind: str = "train",
                   status: str = "queued") -> str:
        """Add a run; returns its registered name: ``name`` sanitized, with ``-2``, ``-3``, ... appended
        when taken."""
        if kind not in KINDS:
            raise ValidationError(f"unknown run kind {kind!r}; allowed: {', '.join(KINDS)}")
        if status not in STATUSES:
            raise ValidationError(f"unknown run status {status!r}; allowed: {', '.join(STATUSES)}")
        base = safe_name(name, "run name")
        now = _now()
        config_json = json.dumps(dict(config or {}), default=str)
        with self.transaction() as conn:
            taken = {r[0] for r in conn.execute("SELECT name FROM runs WHERE substr(name, 1, ?) = ?",
                                                (len(base[:90]), base[:90]))}
            final, n = base, 1
            while final in taken:
                n += 1
                final = f"{base[:90]}-{n}"
            conn.execute(
                "INSERT INTO runs(name, run_dir, kind, status, config, created, updated, host) VALUES (?,?,?,?,?,?,?,?)",
                (final, str(Path(run_dir).resolve()), kind, status, config_json, now, now, socket.gethostname()),
            )
        return final

    def get_run(self, name: str) -> dict:
        """The run's row as a dict (config and summary parsed); ValidationError if unknown."""
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ValidationError(f"no run named {name!r} in the registry")
        return self._row(row)

    def find_run_by_dir(self, run_dir: str | os.PathLike) -> dict | None:
        """The newest run recorded for ``run_dir``, or None."""
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_dir = ? ORDER BY id DESC LIMIT 1",
                               (str(Path(run_dir).resolve()),)).fetchone()
        return None if row is None else self._row(row)

    def list_runs(self, kind: str | None = None):
        """All runs, newest first, as a pandas DataFrame (config and summary parsed into dicts)."""
        import pandas as pd

        with self.connect() as conn:
            query = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY id DESC"
            rows = [self._row(r) for r in conn.execute(query, (kind,) if kind else ())]
        columns = ["id", "name", "run_dir", "kind", "status", "config", "summary", "error", "pid", "pid_started",
                   "host", "stop_requested", "created", "updated", "started", "ended", "shipped"]
        # object dtype throughout: pandas would turn SQL NULL into NaN (not JSON) in a numeric or
        # string column; a missing error, pid or end time stays None.
        return pd.DataFrame(rows, columns=columns, dtype=object)

    def set_status(self, name: str, status: str, *, error: str | None = None, pid: int | None = None,
                   summary: Mapping | None = None, config: Mapping | None = None) -> None:
        """Move a run to ``status``; 'running' stamps started (and the pid), a final status stamps ended.
        ``summary`` is merged into the stored summary; ``error`` replaces the error text."""
        if status not in STATUSES:
            raise ValidationError(f"unknown run status {status!r}; allowed: {', '.join(STATUSES)}")
        now = _now()
        with self.transaction() as conn:
            row = conn.execute("SELECT id, summary FROM runs WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ValidationError(f"no run named {name!r} in the registry")
            sets, args = ["status = ?", "updated = ?"], [status, now]
            if status == "running":
                sets += ["started = COALESCE(started, ?)", "ended = NULL", "error = NULL", "stop_requested = 0"]
                args.append(now)
            elif status not in ACTIVE:
                sets.append("ended = ?")
                args.append(now)
            if error is not None:
                sets.append("error = ?")
                args.append(" ".join(str(error).split()))
            if pid is not None:
                sets += ["pid = ?", "pid_started = ?", "host = ?"]
                args += [pid, process_start_time(pid), socket.gethostname()]
            if summary is not None:
                merged = json.loads(row["summary"] or "{}")
                merged.update(summary)
                sets.append("summary = ?")
                args.append(json.dumps(merged, default=_json_default))
            if config is not None:
                sets.append("config = ?")
                args.append(json.dumps(dict(config), default=str))
            conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, row["id"]))

    def set_pid(self, name: str, pid: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET pid = ?, pid_started = ?, host = ?, updated = ? WHERE name = ?",
                         (pid, process_start_time(pid), socket.gethostname(), _now(), name))

    # ---- stop flag ------------------------------------------------------------------------
    def request_stop(self, name: str) -> None:
        """Ask a run to stop: the trainer polls this flag, checkpoints and ends as 'stopped'. A queued
        run that never started ends as 'stopped' at once."""
        with self.transaction() as conn:
            run_id = self._run_id(conn, name)
            conn.execute("UPDATE runs SET stop_requested = 1, updated = ?, "
                         "status = CASE status WHEN 'running' THEN 'stopping' ELSE status END WHERE id = ?",
                         (_now(), run_id))

    def stop_requested(self, name: str) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE name = ?", (name,)).fetchone()
        return bool(row and row[0])

    # ---- metrics --------------------------------------------------------------------------
    def log_metrics(self, name: str, step: int | None = None, rows: Iterable[Mapping] | None = None,
                    **values: float) -> None:
        """Record metrics: ``log_metrics(name, step, train_loss=..., lr=...)`` or a batch
        ``log_metrics(name, rows=[{"step": 1, "train_loss": ...}, ...])`` in one transaction.
        Values logged for a step that already has a row are merged into it (NaN/inf stored as NULL)."""
        batch = list(rows or [])
        if step is not None:
            batch.append({"step": step, **values})
        if not batch:
            return
        now = _now()
        with self.transaction() as conn:
            run_id = self._run_id(conn, name)
            _insert_metrics(conn, run_id, batch, now)
            conn.execute("UPDATE runs SET updated = ? WHERE id = ?", (now, run_id))

    def metrics(self, name: str, since_step: int | None = None):
        """The run's metrics as a DataFrame (one row per step, ascending), only steps > ``since_step``
        when given: what a page polling every second needs."""
        import pandas as pd

        with self.connect() as conn:
            run_id = self._run_id(conn, name)
            query = f"SELECT step, time, {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ?"
            args: list = [run_id]
            if since_step is not None:
                query += " AND step > ?"
                args.append(int(since_step))
            rows = conn.execute(query + " ORDER BY step", args).fetchall()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=["step", "time", *METRIC_COLUMNS])
        if not frame.empty:
            frame["step"] = frame["step"].astype("int64")
        for col in ("time", *METRIC_COLUMNS):
            frame[col] = frame[col].astype("float64")
        return frame

    def truncate_metrics(self, name: str, after_step: int) -> None:
        """Drop metrics and samples logged after ``after_step`` (a resumed run replays those steps)."""
        with self.transaction() as conn:
            run_id = self._run_id(conn, name)
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND step > ?", (run_id, int(after_step)))
            conn.execute("DELETE FROM samples WHERE run_id = ? AND step > ?", (run_id, int(after_step)))

    # ---- samples --------------------------------------------------------------------------
    def add_sample(self, name: str, step: int, text: str, prompt: str = "") -> None:
        with self.transaction() as conn:
            run_id = self._run_id(conn, name)
            conn.execute("INSERT INTO samples(run_id, step, prompt, text, time) VALUES (?,?,?,?,?)",
                         (run_id, int(step), prompt, text, _now()))

    def samples(self, name: str, limit: int = 20) -> list[dict]:
        """The newest generated samples first."""
        with self.connect() as conn:
            run_id = self._run_id(conn, name)
            rows = conn.execute("SELECT step, prompt, text, time FROM samples WHERE run_id = ? "
                                "ORDER BY step DESC, rowid DESC LIMIT ?", (run_id, int(limit))).fetchall()
        return [dict(r) for r in rows]

    # ---- housekeeping ---------------------------------------------------------------------
    def mark_dead(self) -> list[str]:
        """Runs that claim to be active but whose process is gone (SIGKILL, OOM killer, reboot) become
        'failed' with "worker was killed (pid N gone)". Only this host's pids are checked; a queued run
        with no pid yet is left alone. Returns the names marked."""
        host = socket.gethostname()
        with self.connect() as conn:
            rows = conn.execute("SELECT name, pid, pid_started, host FROM runs WHERE status IN ('running', "
                                "'stopping', 'queued') AND pid IS NOT NULL").fetchall()
        dead = [r for r in rows if (r["host"] in (None, host)) and not is_alive(r["pid"], r["pid_started"])]
        marked = []
        for r in dead:
            with self.transaction() as conn:
                cur = conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, ended = ?, updated = ? "
                    "WHERE name = ? AND status IN ('running', 'stopping', 'queued') AND pid = ?",
                    (f"worker was killed (pid {r['pid']} gone)", _now(), _now(), r["name"], r["pid"]),
                )
                if cur.rowcount:
                    marked.append(r["name"])
        return marked

    def delete_run(self, name: str, *, remove_files: bool = True) -> None:
        """Forget a run and (by default) delete its directory. Refuses while the run is active, and
        refuses to delete files outside the workspace's runs folder (``remove_files=False`` forgets
        the registry rows only)."""
        self.mark_dead()
        run = self.get_run(name)
        if run["shipped"]:
            raise ValidationError(f"run {name!r} is the demo model shipped with Preflight; it cannot be deleted "
                                  f"(train your own runs beside it)")
        if run["status"] in ACTIVE and is_alive(run["pid"], run["pid_started"]):
            raise ValidationError(f"run {name!r} is {run['status']}; stop it before deleting")
        run_dir = Path(run["run_dir"]).resolve()
        root = runs_dir().resolve()
        if remove_files and run_dir.exists():
            if run_dir == root or root not in run_dir.parents:
                raise ValidationError(f"run folder {run_dir} is outside the runs folder {root}; not deleting it "
                                      f"(forget the run only with remove_files=False)")
        with self.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE name = ?", (name,))
        if remove_files and run_dir.exists():
            shutil.rmtree(run_dir, ignore_errors=True)


def _insert_metrics(conn: sqlite3.Connection, run_id: int, batch: Iterable[Mapping], now: float) -> None:
    for row in batch:
        unknown = set(row) - {"step", "time", *METRIC_COLUMNS}
        if unknown:
            raise ValidationError(f"unknown metric {sorted(unknown)[0]!r}; allowed: {', '.join(METRIC_COLUMNS)}")
        cols = [c for c in METRIC_COLUMNS if c in row]
        vals = [_finite(row[c]) for c in cols]
        conn.execute(
            f"INSERT INTO metrics(run_id, step, time{''.join(', ' + c for c in cols)}) "
            f"VALUES (?, ?, ?{', ?' * len(cols)}) ON CONFLICT(run_id, step) DO UPDATE SET time = excluded.time"
            + "".join(f", {c} = COALESCE(excluded.{c}, {c})" for c in cols),
            (run_id, int(row["step"]), float(row.get("time", now)), *vals),
        )


def _seed_demo(conn: sqlite3.Connection) -> None:
    """Register the shipped demo model (inside the migration's transaction): copy assets/demo_run/ to the
    runs folder, add its row (finished, shipped) with the metrics and samples its demo.json recorded. Left
    out where this install has no assets/demo_run/, or a run or folder named ``demo`` is someone else's."""
    meta_path = DEMO_ASSETS / DEMO_META
    if not meta_path.is_file() or conn.execute("SELECT 1 FROM runs WHERE name = ?", (DEMO_RUN,)).fetchone():
        return
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    dest = runs_dir() / DEMO_RUN
    if dest.exists() and not (dest / DEMO_META).is_file():
        return
    if not dest.exists():  # copied beside, then renamed into place: never a half-copied demo
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-demo-", dir=dest.parent))
        shutil.copytree(DEMO_ASSETS, tmp / DEMO_RUN)
        os.replace(tmp / DEMO_RUN, dest)
        shutil.rmtree(tmp, ignore_errors=True)
    reg = meta.get("registry") or {}
    now = _now()
    cur = conn.execute(
        "INSERT INTO runs(name, run_dir, kind, status, config, summary, created, updated, started, ended, host, "
        "shipped) VALUES (?,?,?,?,?,?,?,?,?,?,?,1)",
        (DEMO_RUN, str(dest.resolve()), "train", "finished", json.dumps(reg.get("config") or {}),
         json.dumps(reg.get("summary") or {}), now, now, now, now, socket.gethostname()))
    _insert_metrics(conn, int(cur.lastrowid), meta.get("metrics") or [], now)
    for sample in meta.get("samples") or []:
        conn.execute("INSERT INTO samples(run_id, step, prompt, text, time) VALUES (?,?,?,?,?)",
                     (cur.lastrowid, int(sample["step"]), sample.get("prompt", ""), sample["text"], now))


def _json_default(value: object):
    """JSON for numpy scalars and paths in summaries."""
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
