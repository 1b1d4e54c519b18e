"""Where the data checks run: this process, or Dask (a local cluster, or a scheduler at an address).

Validated here, before any file is read, so a bad choice costs one line and no waiting."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ValidationError, require_number

ENGINES = ("local", "dask")
CONNECT_TIMEOUT_S = 10.0          # an unreachable scheduler is given up after this long
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|inproc)://[^\s/:]+(:\d{1,5})?/?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B)?$", re.IGNORECASE)


@dataclass(frozen=True)
class EngineSpec:
    name: str = "local"
    workers: int = 2
    scheduler: str | None = None
    worker_memory: str = "2GiB"

    @classmethod
    def of(cls, name: str | None, workers: int = 2, scheduler: str | None = None,
           worker_memory: str = "2GiB") -> "EngineSpec":
        name = (name or "local").strip().lower()
        if name not in ENGINES:
            raise ValidationError(f"unknown engine {name!r}; allowed: {', '.join(ENGINES)}")
        require_number("workers", workers, low=1, high=256, integer=True)
        scheduler = (scheduler or "").strip() or None
        if scheduler is not None:
            if name != "dask":
                raise ValidationError("a scheduler address needs --engine dask")
            if not _ADDRESS.match(scheduler):
                raise ValidationError(f"scheduler address {scheduler!r} is not tcp://HOST:PORT")
        if not _MEMORY.match(str(worker_memory).strip()):
            raise ValidationError(f"worker memory {worker_memory!r} is not a size such as 2GiB or 512MiB")
        return cls(name, int(workers), scheduler, str(worker_memory).strip())


__all__ = ["EngineSpec", "ENGINES", "CONNECT_TIMEOUT_S"]
