"""Where a sweep's study lives: the study folder's SQLite file (default), or any storage URL Optuna
accepts (``sweep --storage postgresql://user@host:5432/db``), so workers on several machines share one
study.

Taking a trial (reap the dead, count, ``ask``) must happen one worker at a time. On one machine an
``flock`` on the study folder does it; workers on several machines do not share that folder, so with a
PostgreSQL storage the same critical section also holds a PostgreSQL advisory lock keyed by the study
name (``pg_advisory_lock``, https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS).
Other server databases (MySQL...) work for storage, but only workers of one machine are serialized; the
report says so. Dead-trial reaping only judges trials started on this host (``host`` user attribute):
a pid says nothing about another machine's processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import ValidationError

CONNECT_TIMEOUT_S = 10
_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql", "mysql+pymysql")


def this_host() -> str:
    return socket.gethostname()


def redact(url: str) -> str:
    """A storage URL without its password (for messages)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def check_url(url: str | None) -> str | None:
    """The URL, stripped, if its scheme is one Optuna's RDB storage speaks; None for the default."""
    if url is None or not str(url).strip():
        return None
    url = str(url).strip()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ValidationError(f"storage {redact(url)!r} is not an Optuna storage URL; use e.g. "
                              "postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///path/study.sqlite")
    return url


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.startswith("postgresql")


def _sqlite_storage(study_dir: Path):
    """Optuna's RDB storage on ``study.sqlite``: WAL journal (readers never block the writer) and
    synchronous=NORMAL (a commit survives a killed process; no fsync per commit), 60 s busy timeout."""
    import sqlite3

    import optuna

    path = study_dir / "study.sqlite"

    def connect():
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    # Two processes opening a new study file at once (the page's summary and the sweep's first worker) both
    # create Optuna's schema, and the slower one fails on alembic's version row; by then the schema exists,
    # so opening it again succeeds.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": connect})
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's IntegrityError / OperationalError
            if attempt == 4 or type(exc).__name__ not in ("IntegrityError", "OperationalError"):
                raise
            time.sleep(0.2 * (attempt + 1))


def storage(study_dir: Path, url: str | None = None):
    """The study's Optuna storage: the folder's SQLite file, or ``url``; an unreachable server is one
    line (ValidationError) after at most about ``CONNECT_TIMEOUT_S`` seconds."""
    if url is None:
        return _sqlite_storage(study_dir)
    import optuna

    kwargs: dict = {"pool_pre_ping": True}
    if is_postgres(url):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except ImportError as exc:
            raise ValidationError(f"storage {redact(url)}: its database driver is not installed ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's OperationalError and friends
            if type(exc).__name__ == "IntegrityError" and attempt < 4:  # two workers creating the schema at once
                time.sleep(0.2 * (attempt + 1))
                continue
            first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ValidationError(f"cannot reach the study storage {redact(url)}: {first}") from None


@contextlib.contextmanager
def study_lock(study_dir: Path, study_name: str, url: str | None = None) -> Iterator[None]:
    """One worker at a time takes a trial: the folder's flock, plus an advisory lock on PostgreSQL."""
    import fcntl

    with open(study_dir / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            if is_postgres(url):
                with _pg_lock(url, study_name):  # type: ignore[arg-type]
                    yield
            else:
                yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


_ENGINES: dict[str, object] = {}


@contextlib.contextmanager
def _pg_lock(url: str, study_name: str) -> Iterator[None]:
    import sqlalchemy

    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = sqlalchemy.create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    key = int.from_bytes(hashlib.blake2b(f"preflight-sweep:{study_name}".encode(), digest_size=8).digest(),
                         "big", signed=True)
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


__all__ = ["storage", "study_lock", "check_url", "redact", "this_host", "is_postgres", "CONNECT_TIMEOUT_S"]
