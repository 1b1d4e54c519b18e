"""Safe automatic fixes: a cleaned copy of the file, never a change in place.

Applied only when the matching finding exists: drop exact duplicate rows (keep the first), drop rows
whose text repeats an earlier row's (duplicate_text; keep the first), drop rows with an empty text,
mask PII in the text column and in every column the pii finding names (its ``column`` and each column
of ``details["rows_by_column"]``) with ``engine.datacheck.masking.mask_text``, and the person-name,
address and birth-date columns (``details["columns_by_kind"]``) with ``mask_value`` by kind, and drop test rows
leaked from train (the test split's own duplicates stay: see duplicate_rows). The cleaned train file
goes to ``out``; a cleaned test file, when there is one, next to it as ``<stem>.test<ext>``
(``clean.csv.gz`` -> ``clean.test.csv.gz``). The format follows ``out``'s extension (csv, tsv, jsonl,
json, parquet, txt; ``.gz`` compresses), else the input's. JSON records are copied as parsed, so their
numbers stay numbers. Each file is written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.base import Context, Finding
from engine.tabular import EXTENSIONS as _EXT, Dataset, encoding_label, split_ext
from engine.errors import ValidationError


@dataclass
class FixResult:
    path: str
    rows_in: int
    rows_out: int
    format: str
    test_path: str | None = None
    test_rows_in: int | None = None
    test_rows_out: int | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cleaned_test_path(out: Path) -> Path:
    """Where the cleaned test split goes: ``<stem>.test<ext>`` next to ``out``."""
    stem, ext, gz = split_ext(out)
    return out.with_name(f"{stem}.test{ext}{'.gz' if gz else ''}")


def _out_format(out: Path, ds: Dataset) -> tuple[str, bool]:
    _, ext, gz = split_ext(out)
    fmt = _EXT.get(ext)
    if fmt == "xlsx":
        raise ValidationError(f"cannot write a workbook ({out.name}); name the cleaned file .csv, .tsv, .jsonl, "
                              ".json, .parquet or .txt")
    if fmt is None:
        return ("csv" if ds.format == "xlsx" else ds.format), gz
    return fmt, gz


def _pii_masker() -> Callable[[str], str] | None:
    from engine.datacheck.masking import mask_text

    return mask_text


class _Plan:
    def __init__(self, drop: np.ndarray, drop_empty: str | None, mask_cols: list[str], masker,
                 drop_text: np.ndarray | None = None, column_kinds: dict[str, str] | None = None) -> None:
        self.drop = np.unique(np.asarray(drop, np.int64))
        # rows duplicate_text reports (same text, other fields differ); disjoint from duplicate_rows'
        self.drop_text = np.setdiff1d(np.asarray(drop_text if drop_text is not None else [], np.int64), self.drop)
        self.drop_empty = drop_empty
        self.mask_cols = mask_cols
        self.masker = masker
        self.column_kinds = column_kinds or {}   # personal-data columns masked by kind (names, addresses...)
        self.counts = {"drop_duplicates": 0, "drop_duplicate_text": 0, "drop_empty_text": 0, "mask_pii": 0,
                       "drop_leaked_test": 0}

    def masker_for(self, col: str):
        kind = self.column_kinds.get(col)
        if kind is None:
            return self.masker
        from engine.datacheck.masking import mask_value

        return lambda v: mask_value(kind, v)


def _open_out(tmp: Path, gz: bool, binary: bool = False):
    if gz:
        raw = gzip.open(tmp, "wb")  # noqa: SIM115 - the caller owns and closes the returned stream
        return raw if binary else io.TextIOWrapper(raw, encoding="utf-8", newline="")
    return open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="")


def _mask_value(masker, v: Any) -> Any:
    return masker(v) if isinstance(v, str) and v else v


def _filter_chunk(chunk: pd.DataFrame, plan: _Plan, dup_key: str) -> pd.DataFrame:
    idx = chunk.index.to_numpy()
    keep = ~np.isin(idx, plan.drop)
    plan.counts[dup_key] += int((~keep).sum())
    if len(plan.drop_text):
        same_text = np.isin(idx, plan.drop_text) & keep
        plan.counts["drop_duplicate_text"] += int(same_text.sum())
        keep &= ~same_text
    if plan.drop_empty is not None and plan.drop_empty in chunk.columns:
        empty = values.blank_mask(chunk[plan.drop_empty]) & keep
        plan.counts["drop_empty_text"] += int(empty.sum())
        keep &= ~empty
    chunk = chunk[keep]
    if plan.masker is not None and plan.mask_cols:
        chunk = chunk.copy()
        for col in plan.mask_cols:
            if col in chunk.columns:
                before = chunk[col]
                masker = plan.masker_for(col)
                after = before.map(lambda v: _mask_value(masker, v))
                plan.counts["mask_pii"] += int((before.fillna("") != after.fillna("")).sum())
                chunk[col] = after.astype(before.dtype) if values.is_textual(before) else after
    return chunk


def _write(ds: Dataset, out: Path, plan: _Plan, chunk_rows: int, dup_key: str) -> tuple[int, int, str]:
    """Stream ``ds`` to ``out`` under ``plan``; returns (rows in, rows out, format)."""
    fmt, gz = _out_format(out, ds)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rows_in = rows_out = 0
    try:
        if fmt in ("jsonl", "json") and ds.format in ("jsonl", "json"):
            with _open_out(tmp, gz) as f:
                if fmt == "json":
                    f.write("[\n")
                first = True
                dropset, textset = _DropSet(plan.drop), _DropSet(plan.drop_text)
                for i, obj in enumerate(ds.records()):
                    rows_in += 1
                    if i in dropset:
                        plan.counts[dup_key] += 1
                        continue
                    if i in textset:
                        plan.counts["drop_duplicate_text"] += 1
                        continue
                    if plan.drop_empty is not None and _is_empty(obj.get(plan.drop_empty)):
                        plan.counts["drop_empty_text"] += 1
                        continue
                    if plan.masker is not None:
                        for col in plan.mask_cols:
                            v = obj.get(col)
                            m = _mask_value(plan.masker_for(col), v)
                            if m != v:
                                obj[col] = m
                                plan.counts["mask_pii"] += 1
                    line = json.dumps(obj, ensure_ascii=False)
                    if fmt == "json":
                        f.write(("" if first else ",\n") + line)
                    else:
                        f.write(line + "\n")
                    first = False
                    rows_out += 1
                if fmt == "json":
                    f.write("\n]\n")
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            sink = _open_out(tmp, gz, binary=True)
            try:
                for chunk in ds.chunks(chunk_rows):
                    rows_in += len(chunk)
                    kept = _filter_chunk(chunk, plan, dup_key)
                    table = pa.Table.from_pandas(kept, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(sink, table.schema)
                    elif table.schema != writer.schema:
                        table = table.cast(writer.schema)
                    writer.write_table(table)
                    rows_out += len(kept)
                if writer is None:
                    raise ValidationError("nothing to write")
            finally:
                if writer is not None:
                    writer.close()
                sink.close()
        elif fmt == "text":
            col = plan.drop_empty or ("text" if "text" in ds.columns else ds.columns[0])
            with _open_out(tmp, gz) as f:
                for chunk in ds.chunks(chunk_rows):
                    rows_in += len(chunk)
                    kept = _filter_chunk(chunk, plan, dup_key)
                    docs = kept[col].fillna("").astype("str").tolist()
                    block = ds.text_mode == "block" or any("\n" in d for d in docs)
                    for d in docs:
                        f.write(d + ("\n\n" if block else "\n"))
                    rows_out += len(kept)
        else:
            sep = "\t" if fmt == "tsv" else (ds.delimiter if fmt == ds.format and ds.delimiter else ",")
            with _open_out(tmp, gz) as f:
                header = True
                for chunk in ds.chunks(chunk_rows):
                    rows_in += len(chunk)
                    kept = _filter_chunk(chunk, plan, dup_key)
                    if fmt in ("jsonl", "json"):
                        for rec in kept.to_dict("records"):
                            rec = {k: (None if values._isna(v) else v) for k, v in rec.items()}
                            f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                    else:
                        kept.to_csv(f, sep=sep, header=header, index=False, lineterminator="\n")
                    header = False
                    rows_out += len(kept)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows_in, rows_out, fmt + (".gz" if gz else "")


class _DropSet:
    """Membership in a sorted int array without building a Python set."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr

    def __contains__(self, i: int) -> bool:
        j = np.searchsorted(self.arr, i)
        return bool(j < len(self.arr) and self.arr[j] == i)


def _is_empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _pii_columns(findings: list[Finding]) -> set[str]:
    """Every column a pii finding names: its ``column`` and each key of ``details["rows_by_column"]``
    (``column`` is None when PII sits in more than one column)."""
    cols: set[str] = set()
    for f in findings:
        if f.id != "pii":
            continue
        if f.column:
            cols.add(f.column)
        by_col = f.details.get("rows_by_column") if isinstance(f.details, dict) else None
        cols.update(str(c) for c in (by_col or {}))
    return cols


def _pii_column_kinds(findings: list[Finding]) -> dict[str, str]:
    """The columns the pii finding masks by kind (``details["columns_by_kind"]``)."""
    out: dict[str, str] = {}
    for f in findings:
        if f.id == "pii" and isinstance(f.details, dict):
            out.update({str(c): str(k) for c, k in (f.details.get("columns_by_kind") or {}).items()})
    return out


def apply_fixes(train: Dataset, test: Dataset | None, ctx: Context, findings: list[Finding], out: str | Path,
                chunk_rows: int = 200_000) -> FixResult:
    """Write the cleaned file(s); see the module docstring."""
    out = Path(out)
    for ds in (train, test):
        if ds is not None and getattr(ds, "shards", None) is not None:
            raise ValidationError(f"--fix writes one cleaned file and {ds.name} is a sharded dataset; "
                                  "check and fix one shard at a time")
    if not out.parent.is_dir():
        raise ValidationError(f"cannot write {out}: folder {out.parent} does not exist")
    inputs = {train.path.resolve()} | ({test.path.resolve()} if test is not None else set())
    test_out = cleaned_test_path(out) if test is not None else None
    for target in (out, test_out):
        if target is not None and target.resolve() in inputs:
            raise ValidationError(f"--fix {target} would overwrite an input file; choose another name")
    ids = {f.id for f in findings}
    shared = ctx.shared.get("fix_rows", {})
    drop = shared.get("drop_duplicates", np.empty(0, np.int64)) if "duplicate_rows" in ids else np.empty(0, np.int64)
    drop_empty = ctx.text_col if ("empty_text" in ids and ctx.text_col) else None
    masker = _pii_masker() if "pii" in ids else None
    mask_cols: list[str] = []
    if masker is not None:
        mask_cols = sorted(_pii_columns(findings) | ({ctx.text_col} if ctx.text_col else set()))
    drop_text = shared.get("drop_duplicate_text") if "duplicate_text" in ids else None
    kinds = _pii_column_kinds(findings) if masker is not None else {}
    plan = _Plan(drop, drop_empty, mask_cols, masker, drop_text, kinds)
    rows_in, rows_out, fmt = _write(train, out, plan, chunk_rows, "drop_duplicates")
    result = FixResult(path=str(out), rows_in=rows_in, rows_out=rows_out, format=fmt)
    if test is not None and test_out is not None:
        leaked = shared.get("drop_leaked_test", np.empty(0, np.int64)) if "train_test_leakage" in ids else np.empty(0, np.int64)
        tplan = _Plan(leaked, None, mask_cols, masker, column_kinds=kinds)
        t_in, t_out, _ = _write(test, test_out, tplan, chunk_rows, "drop_leaked_test")
        plan.counts["drop_leaked_test"] = tplan.counts["drop_leaked_test"]
        plan.counts["mask_pii"] += tplan.counts["mask_pii"]
        result.test_path, result.test_rows_in, result.test_rows_out = str(test_out), t_in, t_out
    what = {"drop_duplicates": "rows dropped (exact duplicates)",
            "drop_duplicate_text": "rows dropped (text repeats an earlier row's)", "drop_empty_text": "rows dropped (empty text)",
            "mask_pii": "values with PII masked", "drop_leaked_test": "test rows dropped (leaked from train)"}
    result.actions = [{"id": k, "count": v, "what": what[k]} for k, v in plan.counts.items() if v]
    for ds, rows in ((train, rows_in), (test, result.test_rows_in)):
        if ds is not None and encoding_label(ds.encoding) != "UTF-8":
            result.actions.append({"id": "to_utf8", "count": rows or 0,
                                   "what": f"rows re-encoded from {encoding_label(ds.encoding)} to UTF-8"})
    return result


__all__ = ["FixResult", "apply_fixes", "cleaned_test_path"]
