"""A sharded dataset: a folder of data files or a glob, read as one dataset in file-name order.

:func:`open_shards` lists the shards (a folder's data files, or a glob's matches; hidden files and
names starting with ``_``, such as Spark's ``_SUCCESS``, are left out), sorts them by file name and
opens every one through :func:`engine.tabular.dataset.open_dataset` with the format its *name* says
(``part-0001.jsonl.gz`` must be gzipped JSON Lines), so a shard that is not what its name says is
refused with its name. Every shard must have the first shard's columns (a mixed schema is refused,
naming the shard and the columns that differ). Row numbers continue across shards: the first row of
shard *k* is numbered after the last row of shard *k − 1*, so "an earlier row" means the same in one
file and in many. Nothing reads a shard whole; :meth:`ShardedDataset.chunks` streams them one by one.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.errors import ValidationError
from engine.tabular.dataset import open_dataset as open_file
from engine.tabular.formats import DEFAULT_CHUNK_ROWS, EXTENSIONS, split_ext
from engine.units import format_bytes

GLOB_CHARS = set("*?[")
SHARD_FORMATS = {ext: fmt for ext, fmt in EXTENSIONS.items() if fmt != "xlsx"}


def is_sharded(path: str | os.PathLike) -> bool:
    """Whether ``path`` names several files: a folder or a glob pattern."""
    s = str(path)
    return bool(GLOB_CHARS & set(s)) or Path(s).is_dir()


def list_shards(path: str | os.PathLike) -> list[Path]:
    """The shard files of a folder or glob, sorted by file name (then by full path)."""
    s = str(path)
    if Path(s).is_dir():
        files = [p for p in Path(s).iterdir() if p.is_file() and not p.name.startswith((".", "_"))]
        files = [p for p in files if split_ext(p)[1] in SHARD_FORMATS]
        if not files:
            raise ValidationError(f"folder {s} has no data files (.parquet, .jsonl, .json, .csv, .tsv, .txt; "
                                  "gzipped too)")
    else:
        files = [Path(p) for p in _glob.glob(s, recursive=True) if Path(p).is_file()]
        if not files:
            raise ValidationError(f"no files match {s}")
        odd = [p.name for p in files if split_ext(p)[1] not in SHARD_FORMATS]
        if odd:
            raise ValidationError(f"{odd[0]} (matched by {s}) is not a data file by its name; allowed: "
                                  + ", ".join(sorted(SHARD_FORMATS)))
    return sorted(files, key=lambda p: (p.name, str(p)))


def shard_format(path: Path) -> str:
    return SHARD_FORMATS[split_ext(path)[1]]


@dataclass
class ShardedDataset:
    """Several :class:`~engine.tabular.dataset.Dataset` read as one: the same attributes the checks
    read (``format``, ``columns``, ``head``, ``encoding``, ``size_bytes``, ``chunks``, ``fraction``)."""

    path: Path
    shards: list  # list[Dataset], in file-name order
    size_bytes: int
    columns: list[str]
    _done_bytes: int = 0
    _current: object | None = None
    rows_per_shard: list[int] = field(default_factory=list)   # known after one full pass

    @property
    def first(self):
        return self.shards[0]

    @property
    def name(self) -> str:
        return f"{self.path.name or str(self.path)} ({len(self.shards)} shards)"

    @property
    def format(self) -> str:
        return self.first.format

    @property
    def compressed(self) -> bool:
        return self.first.compressed

    @property
    def head(self) -> pd.DataFrame | None:
        return self.first.head

    @property
    def encoding(self) -> str:
        return self.first.encoding

    @property
    def delimiter(self) -> str | None:
        return self.first.delimiter

    @property
    def text_mode(self) -> str | None:
        return self.first.text_mode

    sheet = None
    sheets: tuple = ()

    def fraction(self) -> float:
        cur = self._current
        part = cur.size_bytes * cur.fraction() if cur is not None else 0
        return min(1.0, (self._done_bytes + part) / self.size_bytes) if self.size_bytes else 1.0

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """Every shard's chunks in order, indexed by the row number across all shards."""
        offset, self._done_bytes, counts = 0, 0, []
        for ds in self.shards:
            self._current = ds
            rows = 0
            for chunk in ds.chunks(chunk_rows):
                rows = int(chunk.index[-1]) + 1 if len(chunk) else rows
                if offset:
                    chunk.index = chunk.index + offset
                yield chunk
            counts.append(rows)
            offset += rows
            self._done_bytes += ds.size_bytes
            self._current = None
        self.rows_per_shard = counts


def open_shards(path: str | os.PathLike, *, max_bytes: int | None = None,
                max_decompressed: int | None = None) -> ShardedDataset:
    """Open a folder or glob of shards (see the module docstring); ValidationError for every bad one."""
    files = list_shards(path)
    total = sum(p.stat().st_size for p in files)
    if max_bytes is not None and total > max_bytes:
        raise ValidationError(f"{path}: {len(files)} shards of {format_bytes(total, decimal=True)} in all, over the "
                              f"{format_bytes(max_bytes, decimal=True)} limit")
    shards = []
    for i, p in enumerate(files):
        try:
            shards.append(open_file(p, fmt=shard_format(p), max_decompressed=max_decompressed))
        except ValidationError as exc:
            msg = str(exc)
            named = msg if p.name in msg else f"{p.name}: {msg}"
            raise ValidationError(f"shard {i + 1} of {len(files)}: {named}") from None
    first = shards[0]
    want = list(first.columns)
    for ds in shards[1:]:
        if set(ds.columns) != set(want):
            missing = [c for c in want if c not in ds.columns]
            extra = [c for c in ds.columns if c not in want]
            parts = ([f"lacks {', '.join(repr(c) for c in missing[:10])}"] if missing else []) + \
                    ([f"adds {', '.join(repr(c) for c in extra[:10])}"] if extra else [])
            raise ValidationError(f"mixed schemas: shard {ds.name} {' and '.join(parts)} (columns of the first "
                                  f"shard {first.name}: {', '.join(repr(c) for c in want[:20])})")
    return ShardedDataset(path=Path(str(path)), shards=shards, size_bytes=max(1, total), columns=want)


def open_dataset(path: str | os.PathLike, *, max_bytes: int | None = None, fmt: str | None = None,
                 sheet: str | None = None, max_decompressed: int | None = None):
    """:func:`engine.tabular.dataset.open_dataset` for one file; a folder or a glob (see
    :func:`is_sharded`) opens as a :class:`ShardedDataset`. The package exports this one."""
    if fmt is None and sheet is None and is_sharded(path):
        return open_shards(path, max_bytes=max_bytes, max_decompressed=max_decompressed)
    return open_file(path, max_bytes=max_bytes, fmt=fmt, sheet=sheet, max_decompressed=max_decompressed)


def shard_rows(ds) -> int:
    """Data rows of one shard (Parquet: from its footer; other formats: read through once)."""
    if ds.format == "parquet" and not ds.compressed:
        return int(ds._parquet_file().metadata.num_rows)
    rows = 0
    for chunk in ds.chunks(DEFAULT_CHUNK_ROWS):
        rows = int(chunk.index[-1]) + 1 if len(chunk) else rows
    return rows


__all__ = ["ShardedDataset", "open_dataset", "open_shards", "is_sharded", "list_shards", "shard_format", "shard_rows"]
