"""Reading the model lab's data files: formats (text, JSONL/JSON, CSV/TSV, Parquet, gzip), size
limits, UTF-8 checks, uploads reused from the data-checks page, and text/label column inference.
Every bad file is a one-line ValidationError."""

from __future__ import annotations

import gzip
import io
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import workspace
from engine.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from engine.lab.data import DataInput

TEXT_EXTS = (".txt", ".md")
TABLE_EXTS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
SUPPORTED_EXTS = TEXT_EXTS + TABLE_EXTS
DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB of (decompressed) input
LABEL_NAMES = ("label", "labels", "target", "class", "category", "sentiment", "y")


def _ext(path: Path) -> tuple[str, bool]:
    """(format extension, gzipped?)"""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


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


def _read_bytes(path: Path, gz: bool, limit: int) -> bytes:
    if path.stat().st_size == 0:
        raise ValidationError(f"data file {path.name!r} is empty")
    try:
        with (gzip.open(path, "rb") if gz else path.open("rb")) as f:
            data = f.read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise ValidationError(f"data file {path.name!r} could not be read ({'gzip: ' if gz else ''}{exc})") from None
    if len(data) > limit:
        raise ValidationError(f"data file {path.name!r} is larger than max_bytes={limit} "
                              f"({'decompressed' if gz else 'on disk'}); raise max_bytes or use a smaller file")
    return data


def _decode_text(data: bytes, name: str) -> str:
    if not data.strip():
        raise ValidationError(f"data file {name!r} is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValidationError(f"data file {name!r} looks binary (a NUL byte at offset {nul}); give UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"data file {name!r} is not UTF-8 text (bad byte at offset {exc.start}); "
                              "binary files are not supported") from None
    if not text.strip():
        raise ValidationError(f"data file {name!r} is empty")
    return text


def _read_json(text: str, name: str) -> pd.DataFrame:
    import pandas as pd

    stripped = text.lstrip()
    records: list[Any]
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{name!r} is not valid JSON: {exc}") from None
    else:
        records = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"line {i} of {name!r} is not valid JSON: {exc}") from None
    if not records:
        raise ValidationError(f"data file {name!r} has no records")
    if all(isinstance(r, str) for r in records):
        return pd.DataFrame({"text": records})
    if not all(isinstance(r, dict) for r in records):
        raise ValidationError(f"{name!r} must hold JSON objects (one per line, or a list of them) or strings")
    return pd.DataFrame.from_records(records)


def _read_table(path: Path, ext: str, gz: bool, limit: int) -> pd.DataFrame:
    import pandas as pd

    name = path.name
    if ext == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        if path.stat().st_size == 0:
            raise ValidationError(f"data file {name!r} is empty")
        source: Any = io.BytesIO(_read_bytes(path, True, limit)) if gz else path
        try:
            pf = pq.ParquetFile(source)
            size = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.metadata.num_row_groups))
            if size > limit:
                raise ValidationError(f"data file {name!r} holds {size} bytes uncompressed, over max_bytes={limit}; "
                                      "raise max_bytes or use a smaller file")
            df = pf.read().to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"data file {name!r} is not a valid Parquet file ({str(exc)[:120]})") from None
    else:
        text = _decode_text(_read_bytes(path, gz, limit), name)
        if ext in (".jsonl", ".json"):
            df = _read_json(text, name)
        else:
            try:
                df = pd.read_csv(io.StringIO(text), sep="\t" if ext == ".tsv" else ",")
            except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValidationError(f"data file {name!r} is not valid {ext[1:].upper()}: {msg[:160]}") from None
    if len(df) == 0:
        raise ValidationError(f"data file {name!r} has no rows")
    df.columns = [str(c) for c in df.columns]
    return df


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
    return sum(len(v) for v in strings) / len(strings)


def _find_column(df: pd.DataFrame, name: str, role: str, fname: str) -> str:
    if name in df.columns:
        return name
    for c in df.columns:
        if c.lower() == name.lower():
            return c
    cols = ", ".join(map(repr, list(df.columns)[:30]))
    raise ValidationError(f"{role} column {name!r} is not in {fname!r}; available: {cols}")


def _pick_columns(df: pd.DataFrame, inp: DataInput, fname: str) -> tuple[str, str | None]:
    cols = ", ".join(map(repr, list(df.columns)[:30]))
    label = None
    if inp.task == "classify":
        if inp.label_col is not None:
            label = _find_column(df, inp.label_col, "label", fname)
        else:
            lower = {c.lower(): c for c in reversed(list(df.columns))}
            label = next((lower[n] for n in LABEL_NAMES if n in lower), None)
            if label is None:
                raise ValidationError(f"no label column found in {fname!r} (looked for {', '.join(LABEL_NAMES)}); "
                                      f"name one with label_col; available: {cols}")
    if inp.text_col is not None:
        text = _find_column(df, inp.text_col, "text", fname)
    else:
        lengths = {c: _is_text_column(df[c]) for c in df.columns if c != label}
        lengths = {c: v for c, v in lengths.items() if v is not None}
        if not lengths:
            raise ValidationError(f"no text column found in {fname!r}; name one with text_col; available: {cols}")
        text = max(lengths, key=lambda c: lengths[c])  # first of the longest on a tie
    if label is not None and label == text:
        raise ValidationError(f"text and label column are both {text!r}; pick two different columns")
    return text, label


def _label_strings(s: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_float_dtype(s) and ((s.dropna() % 1) == 0).all():
        s = s.astype("Int64")
    return s.map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v))


def _sort_labels(names: Sequence[str]) -> list[str]:
    try:
        return sorted(names, key=lambda v: (float(v), v))
    except ValueError:
        return sorted(names)
