"""Open a dataset file and read it in chunks: CSV, TSV, JSON Lines, JSON arrays, Parquet, plain text
and Excel/OpenDocument workbooks, gzipped or not (workbooks not).

:func:`open_dataset` detects the format (magic bytes first: gzip, Parquet ``PAR1``, ZIP; then the
extension; then the content), validates the start of the file and returns a :class:`Dataset` whose
:meth:`Dataset.chunks` yields pandas DataFrames of at most ``chunk_rows`` rows, indexed by the 0-based
data-row number (header excluded). Nothing reads a file whole: CSV streams through
``pyarrow.csv.open_csv`` (16 MB blocks), Parquet through ``iter_batches``, JSON and text line by line
(a JSON array object by object).

Values stay as the file writes them: CSV, TSV, JSON and text columns are strings (pandas ``str``,
missing JSON values NA) so checks can see ``"unknown"`` in a numeric column; Parquet keeps its types.
Plain text becomes one column ``text``: one document per line, or per blank-line-separated block when
the file's blank lines separate multi-line blocks.

Text is UTF-8, or a legacy encoding (cp1252, latin-1, ...) detected by charset-normalizer when the
file's head is not UTF-8 (``Dataset.encoding``; the data checks report it). Workbooks are read one
sheet at a time (``sheet``, default the first; ``Dataset.sheets`` lists them).

Every bad file raises :class:`~engine.errors.ValidationError` naming the problem and, where it applies,
the line: ragged rows ("line 17 has 5 fields, header has 4"), an unclosed quote, invalid UTF-8 that no
legacy encoding explains (line and byte offset), a binary file (NUL or control bytes), a ZIP that is
not a workbook, a missing sheet (the sheets are listed), an empty or header-only file, a line over
10,000 columns or 32 MB, a corrupt gzip stream, a file over ``max_bytes``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from engine.errors import ValidationError
from engine.tabular.csv_format import CsvReading
from engine.tabular.excel_format import ExcelReading
from engine.tabular.formats import (
    BLOCK_BYTES, DEFAULT_CHUNK_ROWS, EXTENSIONS, FORMATS, HEAD_BLOCK_BYTES, HEAD_BYTES, MAX_COLUMNS, dedupe,
    detect_encoding, detect_format, looks_binary, read_head, sniff_delimiter, split_ext, text_mode,
)
from engine.tabular.json_format import JsonReading, _json_array_objects, _jsonl_objects
from engine.tabular.lines import encoding_label
from engine.tabular.parquet_format import ParquetReading
from engine.tabular.text_format import TextReading, _text_docs
from engine.units import format_bytes


@dataclass
class Dataset(CsvReading, JsonReading, ParquetReading, TextReading, ExcelReading):
    """An opened, validated dataset file; iterate :meth:`chunks` (any number of times). The reading of
    each format lives in its own module (``csv_format``, ``json_format``, ``parquet_format``,
    ``text_format``, ``excel_format``), mixed in here."""

    path: Path
    format: str
    compressed: bool
    columns: list[str]
    size_bytes: int
    delimiter: str | None = None
    text_mode: str | None = None          # "line" or "block" for plain text
    head: pd.DataFrame | None = None      # the first rows (up to 2,000), for inference
    _raw_names: list[str] = field(default_factory=list)
    _read: int = 0                        # bytes of the file consumed so far (progress)
    _bom: bool = False
    _block: int = BLOCK_BYTES
    _quotes_checked: bool = False         # an odd quote count was already scanned and found harmless
    encoding: str = "utf-8"               # the text encoding read (a legacy one is detected, see formats)
    sheet: str | None = None              # workbooks: the sheet read
    sheets: list[str] = field(default_factory=list)  # workbooks: every sheet
    max_decompressed: int | None = None   # refuse a stream that decompresses past this many bytes

    @property
    def name(self) -> str:
        return self.path.name

    def fraction(self) -> float:
        """How far the current pass has read, 0..1 (by bytes of the file on disk)."""
        return min(1.0, self._read / self.size_bytes) if self.size_bytes else 1.0

    # ---- streams ---------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        """The decompressed byte stream; progress follows the file on disk."""
        raw = _Counting(open(self.path, "rb"), self)  # noqa: SIM115 - the returned stream owns it
        if self.compressed:
            inner = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
            if self.max_decompressed is not None:
                inner = _Capped(inner, self.max_decompressed, self.name)  # type: ignore[assignment]
            return io.BufferedReader(inner, 1 << 20)  # type: ignore[arg-type]
        return io.BufferedReader(raw, 1 << 20)  # type: ignore[arg-type]

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """DataFrames of at most ``chunk_rows`` rows, index = 0-based data row."""
        self._read = 0
        reader = {"csv": self._csv_chunks, "tsv": self._csv_chunks, "jsonl": self._jsonl_chunks,
                  "json": self._json_chunks, "parquet": self._parquet_chunks, "text": self._text_chunks,
                  "xlsx": self._excel_chunks}[self.format]
        try:
            yield from reader(chunk_rows)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ValidationError(f"{self.name}: the gzip stream is corrupt or truncated ({exc})") from None
        self._read = self.size_bytes

    def records(self) -> Iterator[dict[str, Any]]:
        """JSON formats only: the parsed objects, unchanged, in data-row order (for fixes)."""
        if self.format == "jsonl":
            for _, obj in _jsonl_objects(self):
                yield obj
        elif self.format == "json":
            for _, obj in _json_array_objects(self):
                yield obj
        else:
            raise ValueError("records() is for JSON formats")

    def documents(self) -> Iterator[str]:
        """Plain text only: the documents, in data-row order."""
        for _, doc in _text_docs(self):
            yield doc

    def text(self) -> str:
        """Plain text only: the whole file as one string, exactly as written (BOM dropped), decoded in
        its encoding; ``max_decompressed`` bounds it."""
        if self.format != "text":
            raise ValueError("text() is for plain-text files")
        with self._open() as stream:
            data = stream.read() if self.max_decompressed is None else stream.read(self.max_decompressed + 1)
        if self.max_decompressed is not None and len(data) > self.max_decompressed:
            raise _too_big(self.name, self.max_decompressed, self.compressed)
        if data.startswith(codecs.BOM_UTF8):
            data = data[3:]
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ValidationError(f"{self.name} is not valid {encoding_label(self.encoding)}: byte "
                                  f"0x{data[exc.start]:02x} at line {line} (byte offset {exc.start}); "
                                  "re-save the file as UTF-8") from None


class _Counting(io.RawIOBase):
    """A raw file that tells its Dataset how many bytes were read (for the progress bar)."""

    def __init__(self, f: BinaryIO, owner: Dataset):
        self._f, self._owner = f, owner

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        self._owner._read = self._f.tell()
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to give more than ``limit`` bytes (a gzip bomb, or a file
    over the caller's limit once decompressed)."""

    def __init__(self, f, limit: int, name: str):
        self._f, self._limit, self._name, self._seen = f, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        self._seen += n or 0
        if self._seen > self._limit:
            raise _too_big(self._name, self._limit, True)
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _too_big(name: str, limit: int, compressed: bool) -> ValidationError:
    return ValidationError(f"{name} is larger than max_bytes={limit} ({'decompressed' if compressed else 'on disk'}); "
                           "raise the limit or use a smaller file")


def _is_workbook_zip(path: Path) -> bool:
    """Whether a ZIP file is an Office Open XML or OpenDocument workbook (by its parts)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "xl/workbook.xml" in names or "content.xml" in names and "mimetype" in names


def open_dataset(path: str | os.PathLike, *, max_bytes: int | None = None, fmt: str | None = None,
                 sheet: str | None = None, max_decompressed: int | None = None) -> Dataset:
    """Detect, validate and open ``path``; raises ValidationError for every bad file (see the package
    doc; ``engine.tabular.open_dataset`` also opens a folder or glob of shards). ``sheet`` picks a workbook's sheet (default: the first); ``max_decompressed`` refuses a
    gzipped file whose content is larger (``max_bytes`` limits the file on disk)."""
    p = Path(path)
    name = p.name
    if not p.exists():
        raise ValidationError(f"file not found: {path}")
    if not p.is_file():
        raise ValidationError(f"not a file: {path}")
    size = p.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValidationError(f"{name} is {format_bytes(size, decimal=True)}, over the "
                              f"{format_bytes(max_bytes, decimal=True)} upload limit")
    if size == 0:
        raise ValidationError(f"{name} is empty (0 bytes)")
    with open(p, "rb") as f:
        magic = f.read(4)
    gz = magic[:2] == b"\x1f\x8b"
    _, ext, named_gz = split_ext(p)
    if named_gz and not gz:
        raise ValidationError(f"{name} is named .gz but is not gzip-compressed; rename it or compress it with gzip")
    if max_decompressed is not None and not gz and size > max_decompressed:
        raise _too_big(name, max_decompressed, False)
    workbook = EXTENSIONS.get(ext) == "xlsx" or magic[:4] == b"\xd0\xcf\x11\xe0"
    if magic[:4] == b"PK\x03\x04" and not workbook and fmt != "xlsx":
        if not _is_workbook_zip(p):
            raise ValidationError(f"{name} is a ZIP archive, not a data file or an Excel workbook; unzip it first")
        workbook = True
    if (workbook and not gz) or fmt == "xlsx":
        if gz:
            raise ValidationError(f"{name}: a gzipped workbook is not supported; give the .xlsx file itself")
        ds = Dataset(path=p, format="xlsx", compressed=False, columns=[], size_bytes=size, sheet=sheet)
        ds._excel_header()
        ds.head = _next_chunk(ds)
        if ds.head is None:
            raise ValidationError(f"{name}: sheet {ds.sheet!r} has a header but no data rows")
        return ds
    if sheet is not None:
        raise ValidationError(f"{name} is not a workbook; a sheet applies to .xlsx/.xls/.ods files only")
    head = read_head(p, gz, name)
    complete = len(head) < HEAD_BYTES
    if fmt is None:
        fmt = detect_format(p, head)
    elif fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if max_decompressed is not None and gz and len(head) > max_decompressed:
        raise _too_big(name, max_decompressed, True)
    ds = Dataset(path=p, format=fmt, compressed=gz, columns=[], size_bytes=size, max_decompressed=max_decompressed)
    if fmt == "parquet":
        if gz:
            ds.compressed = True
        pf = ds._parquet_file()
        names = pf.schema_arrow.names
        if len(names) > MAX_COLUMNS:
            raise ValidationError(f"{name} has {len(names):,} columns; at most {MAX_COLUMNS:,} are supported")
        if not names:
            raise ValidationError(f"{name} has no columns")
        ds.columns = dedupe([str(n) for n in names])
        if pf.metadata.num_rows == 0:
            raise ValidationError(f"{name} has a schema but no data rows")
        ds.head = next(ds.chunks(2000))
        return ds

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValidationError(f"{name} is UTF-16 text; re-save it as UTF-8")
    if looks_binary(head):
        what = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "json": "JSON", "text": "text"}[fmt]
        raise ValidationError(f"{name} looks like a binary file (NUL or control bytes near the start), not {what}")
    ds.encoding = detect_encoding(name, head, complete)
    if head.startswith(codecs.BOM_UTF8):
        ds._bom = True
        head = head[3:]
    if not head.strip(b" \r\n\f\v" if fmt == "tsv" else None):  # in a TSV a tab separates fields
        raise ValidationError(f"{name} is empty (no data, only whitespace)")

    if fmt in ("csv", "tsv"):
        nl = head.find(b"\n")
        if nl < 0 and not complete:
            delim = b"\t" if fmt == "tsv" else b","
            n = head.count(delim) + 1
            if n > MAX_COLUMNS:
                raise ValidationError(
                    f"{name}: line 1 has more than {MAX_COLUMNS:,} columns (at least {n:,} in its first "
                    f"{format_bytes(HEAD_BYTES, decimal=True)}); at most {MAX_COLUMNS:,} are supported")
            raise ValidationError(f"{name}: line 1 (the header) is longer than "
                                  f"{format_bytes(HEAD_BYTES, decimal=True)}")
        text = head.decode(ds.encoding, errors="ignore")
        first_line = text.split("\n", 1)[0]
        ds.delimiter = sniff_delimiter(fmt, first_line)
        if first_line.count(ds.delimiter) >= MAX_COLUMNS:
            raise ValidationError(
                f"{name}: line 1 has {first_line.count(ds.delimiter) + 1:,} columns; at most {MAX_COLUMNS:,} are supported")
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=ds.delimiter))
        except (csv.Error, StopIteration) as exc:
            raise ValidationError(f"{name}: cannot read the header line ({exc})") from None
        ds._raw_names = header
        ds.columns = dedupe(header)
        ds.head = _first_chunk(ds)
        if ds.head is None:
            raise ValidationError(f"{name} has a header but no data rows")
        return ds

    if fmt == "text":
        ds.columns = ["text"]
        ds.text_mode = text_mode(head.decode(ds.encoding, errors="ignore"))
    ds.head = _first_chunk(ds)
    if ds.head is None:
        raise ValidationError(f"{name} has no records")
    if fmt in ("jsonl", "json"):
        ds.columns = list(ds.head.columns)
        if not ds.columns:
            raise ValidationError(f"{name}: the records have no keys (every object is {{}})")
    return ds


def _first_chunk(ds: Dataset) -> pd.DataFrame | None:
    if ds.format in ("csv", "tsv"):
        # small blocks, so the threaded reader does not parse megabytes ahead for 2,000 rows; any
        # error is re-raised (or resolved) by the normal block size, so the result cannot differ
        ds._block = HEAD_BLOCK_BYTES
        try:
            return _next_chunk(ds)
        except ValidationError:
            pass
        finally:
            ds._block = BLOCK_BYTES
    return _next_chunk(ds)


def _next_chunk(ds: Dataset) -> pd.DataFrame | None:
    it = ds.chunks(2000)
    try:
        return next(it, None)
    finally:
        it.close()


def read_frame(ds: Dataset) -> pd.DataFrame:
    """The whole dataset as one DataFrame (all chunks; for callers that need it in memory, such as the
    lab, which tokenizes every row)."""
    frames = list(ds.chunks())
    if not frames:
        return pd.DataFrame(columns=ds.columns)
    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    return frame.reindex(columns=list(ds.columns)) if ds.format in ("jsonl", "json") else frame
