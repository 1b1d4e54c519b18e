"""Reading the model lab's data files through the one reader, :mod:`engine.tabular` (the data checks
read through it too): the same formats (text, JSONL/JSON, CSV/TSV, Parquet, Excel workbooks, gzip),
the same legacy-encoding detection, limits and one-line errors. Here: uploads reused from the
data-checks page, the size limit, and text/label column inference.

A plain-text file is one document, read whole and exactly (the lm corpus); a table's columns are the
strings the file writes (Parquet keeps its types)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import workspace
from engine.errors import ValidationError
from engine.tabular import EXTENSIONS, encoding_label, open_dataset, read_frame, split_ext

if TYPE_CHECKING:
    import pandas as pd

TEXT_EXTS = tuple(e for e, f in EXTENSIONS.items() if f == "text")
TABLE_EXTS = tuple(e for e, f in EXTENSIONS.items() if f != "text")
SUPPORTED_EXTS = TEXT_EXTS + TABLE_EXTS
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of (decompressed) input
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "y")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_WHOLE_FLOAT = re.compile(r"^[+-]?\d+\.0+$")


def _ext(path: Path) -> tuple[str, bool]:
    """(format extension, gzipped?)"""
    _, ext, gz = split_ext(path)
    return ext, gz


@dataclass
class SourceRows:
    """What a data file holds for the lab: the texts (one per row, or the whole file as one document),
    their labels when classifying, and where they came from (``source``: path, format, encoding...)."""

    texts: list[str]
    labels: list[str] | None
    source: dict[str, Any] = field(default_factory=dict)


def list_uploads() -> list[Path]:
    """Datasets uploaded on the data-checks page (``workspace.uploads_dir()``), newest first."""
    out = []
    for p in workspace.uploads_dir().iterdir():
        if p.name.startswith(".") or not p.is_file():
            continue
        if _ext(p)[0] in SUPPORTED_EXTS:
            out.append(p)
    return sorted(out, key=lambda p: (-p.stat().st_mtime_ns, p.name))


def resolve_path(path: str | Path) -> Path:
    """``path`` if it is a file, else the upload of that name; ValidationError otherwise."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.exists():
        raise ValidationError(f"data path {str(path)!r} is not a file")
    if len(p.parts) == 1:
        try:
            candidate = workspace.uploads_dir() / workspace.safe_name(p.name, "upload name")
        except ValidationError:
            candidate = None
        if candidate is not None and candidate.is_file():
            return candidate
    names = [u.name for u in list_uploads()[:10]]
    hint = f"; uploads: {', '.join(names)}" if names else ""
    raise ValidationError(f"no data file {str(path)!r}{hint}")


def describe_file(path: str | Path) -> dict[str, Any]:
    """What a data file is, from its head only (for the page, before a run starts): format, encoding
    (with a note when it is not UTF-8), the sheet read and every sheet of a workbook, the columns."""
    p = resolve_path(path)
    ds = open_dataset(p)
    out: dict[str, Any] = {"path": str(p), "format": ds.format + (".gz" if ds.compressed else ""),
                           "encoding": encoding_label(ds.encoding), "columns": list(ds.columns),
                           "sheet": ds.sheet, "sheets": list(ds.sheets)}
    if ds.encoding != "utf-8":
        out["encoding_note"] = (f"{p.name} is not UTF-8: read as {encoding_label(ds.encoding)} (detected); "
                                "re-save it as UTF-8 to be sure every character is right")
    return out


def read_rows(path: Path, task: str, text_col: str | None, label_col: str | None,
              max_bytes: int | None = None) -> SourceRows:
    """Read ``path`` through :func:`engine.tabular.open_dataset` and pick its text (and label) column."""
    limit = max_bytes or DEFAULT_MAX_BYTES
    ds = open_dataset(path, max_decompressed=limit)
    ext, gz = _ext(path)
    source: dict[str, Any] = {"path": str(path), "format": (ext[1:] or ds.format) + (".gz" if gz else "")}
    if ds.encoding != "utf-8":
        source["encoding"] = encoding_label(ds.encoding)
        source["encoding_note"] = (f"{path.name} is not UTF-8: read as {encoding_label(ds.encoding)} "
                                   "(detected); re-save it as UTF-8 to be sure every character is right")
    if ds.sheet is not None:
        source["sheet"] = ds.sheet
    if ds.format == "text":
        if task == "classify":
            raise ValidationError(f"{path.name!r} is plain text without labels; classification needs a CSV, "
                                  "TSV, JSONL, Parquet or Excel file with a text and a label column")
        text = ds.text()
        if not text.strip():
            raise ValidationError(f"data file {path.name!r} is empty")
        return SourceRows([text], None, source)
    df = read_frame(ds)
    if len(df) == 0:
        raise ValidationError(f"data file {path.name!r} has no rows")
    df.columns = [str(c) for c in df.columns]
    text_name, label_name = pick_columns(df, task, text_col, label_col, path.name)
    source.update(text_col=text_name, label_col=label_name, n_rows=len(df))
    texts_s = df[text_name]
    if task == "lm":
        texts = [t if isinstance(t, str) else str(t) for t in texts_s.dropna().tolist()]
        texts = [t for t in texts if t]
        if not any(t.strip() for t in texts):
            raise ValidationError(f"text column {text_name!r} of {path.name!r} has no text")
        return SourceRows(texts, None, source)
    labels_s = label_strings(df[label_name])
    keep = labels_s.notna().to_numpy()
    source["n_rows_without_label"] = int((~keep).sum())
    labels = labels_s[keep].tolist()
    texts = ["" if t is None or (isinstance(t, float) and math.isnan(t)) else str(t) for t in texts_s[keep].tolist()]
    return SourceRows(texts, labels, source)


def _is_text_column(s: pd.Series) -> float | None:
    """Mean length of the strings in ``s`` if it is a text column, else None."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return None
    values = s.dropna()
    values = values.iloc[: 10_000]
    if len(values) == 0:
        return None
    strings = [v for v in values if isinstance(v, str)]
    if len(strings) * 2 < len(values):
        return None
    if sum(1 for v in strings if _NUMBER.match(v)) >= 0.9 * len(strings):
        return None  # numbers written as text (CSV, JSON): ids, prices, scores
    return sum(len(v) for v in strings) / len(strings)


def _find_column(df: pd.DataFrame, name: str, role: str, fname: str) -> str:
    if name in df.columns:
        return name
    for c in df.columns:
        if c.lower() == name.lower():
            return c
    cols = ", ".join(map(repr, list(df.columns)[:30]))
    raise ValidationError(f"{role} column {name!r} is not in {fname!r}; available: {cols}")


def pick_columns(df: pd.DataFrame, task: str, text_col: str | None, label_col: str | None,
                 fname: str) -> tuple[str, str | None]:
    """(text column, label column or None): the named ones found (case-insensitively), else inferred:
    the label by name (:data:`LABEL_NAMES`), the text as the column of the longest strings."""
    cols = ", ".join(map(repr, list(df.columns)[:30]))
    label = None
    if task == "classify":
        if label_col is not None:
            label = _find_column(df, label_col, "label", fname)
        else:
            lower = {c.lower(): c for c in reversed(list(df.columns))}
            label = next((lower[n] for n in LABEL_NAMES if n in lower), None)
            if label is None:
                raise ValidationError(f"no label column found in {fname!r} (looked for {', '.join(LABEL_NAMES)}); "
                                      f"name one with label_col; available: {cols}")
    if text_col is not None:
        text = _find_column(df, text_col, "text", fname)
    else:
        lengths = {c: _is_text_column(df[c]) for c in df.columns if c != label}
        lengths = {c: v for c, v in lengths.items() if v is not None}
        if not lengths:
            raise ValidationError(f"no text column found in {fname!r}; name one with text_col; available: {cols}")
        text = max(lengths, key=lambda c: lengths[c])  # first of the longest on a tie
    if label is not None and label == text:
        raise ValidationError(f"text and label column are both {text!r}; pick two different columns")
    return text, label


def label_strings(s: pd.Series) -> pd.Series:
    """Labels as strings, missing ones None: blank cells are missing, and whole numbers written as
    floats (``1.0``, what pandas writes for an integer column with gaps) lose their ``.0``."""
    import pandas as pd

    if pd.api.types.is_float_dtype(s) and ((s.dropna() % 1) == 0).all():
        s = s.astype("Int64")

    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        v = str(v)
        return v if v.strip() else None

    out = [one(v) for v in s.tolist()]
    present = [v for v in out if v is not None]
    if present and all(_WHOLE_FLOAT.match(v) or v.lstrip("+-").isdigit() for v in present) \
            and any("." in v for v in present):
        out = [None if v is None else str(int(float(v))) for v in out]
    return pd.Series(out, index=s.index, dtype=object)


def sort_labels(names: Sequence[str]) -> list[str]:
    try:
        return sorted(names, key=lambda v: (float(v), v))
    except ValueError:
        return sorted(names)
