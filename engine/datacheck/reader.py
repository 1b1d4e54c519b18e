"""Read a dataset file in chunks: CSV, TSV, JSON Lines, JSON arrays, Parquet and plain text, gzipped or not.

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

Every bad file raises :class:`~engine.errors.ValidationError` naming the problem and, where it applies,
the line: ragged rows ("line 17 has 5 fields, header has 4"), an unclosed quote, invalid UTF-8 (line
and byte offset), a binary file, an empty or header-only file, a line over 10,000 columns or 32 MB, a
corrupt gzip stream, a file over ``max_bytes``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from engine.errors import ValidationError

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "text")
MAX_COLUMNS = 10_000
MAX_LINE_BYTES = 32 << 20
HEAD_BYTES = 4 << 20          # the first bytes read to sniff the format and parse the header
BLOCK_BYTES = 16 << 20        # pyarrow CSV block; one CSV row must fit in it
HEAD_BLOCK_BYTES = 1 << 20    # the block for the first rows only (the threaded reader reads blocks ahead)
DEFAULT_CHUNK_ROWS = 200_000
SNIFF_BYTES = 8192

_EXT = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".text": "text", ".md": "text",
}


def _mb(n: float) -> str:
    """A byte count for a message: '16.8 MB', '10 kB', '512 bytes' (3 significant digits below 10 MB)."""
    if n >= 10e6:
        return f"{n / 1e6:,.1f} MB"
    if n >= 1e6:
        return f"{n / 1e6:.3g} MB"
    if n >= 1e3:
        return f"{n / 1e3:.3g} kB"
    return f"{int(n)} bytes"


def split_ext(path: Path) -> tuple[str, str, bool]:
    """(stem, format extension, gzipped) of a file name: ``data.csv.gz`` -> ("data", ".csv", True)."""
    name = path.name
    gz = name.lower().endswith(".gz")
    if gz:
        name = name[:-3]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, "", gz
    return stem, "." + ext.lower(), gz


@dataclass
class Dataset:
    """An opened, validated dataset file; iterate :meth:`chunks` (any number of times)."""

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

    @property
    def name(self) -> str:
        return self.path.name

    def fraction(self) -> float:
        """How far the current pass has read, 0..1 (by bytes of the file on disk)."""
        return min(1.0, self._read / self.size_bytes) if self.size_bytes else 1.0

    # ---- streams ---------------------------------------------------------------------------

    def _open(self) -> BinaryIO:
        """The decompressed byte stream; progress follows the file on disk."""
        raw = _Counting(open(self.path, "rb"), self)
        if self.compressed:
            return io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), 1 << 20)  # type: ignore[arg-type]
        return io.BufferedReader(raw, 1 << 20)  # type: ignore[arg-type]

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """DataFrames of at most ``chunk_rows`` rows, index = 0-based data row."""
        self._read = 0
        reader = {"csv": self._csv_chunks, "tsv": self._csv_chunks, "jsonl": self._jsonl_chunks,
                  "json": self._json_chunks, "parquet": self._parquet_chunks, "text": self._text_chunks}[self.format]
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

    # ---- CSV / TSV ---------------------------------------------------------------------------

    def _csv_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        names = self._raw_names
        stream = self._open()
        quotes = _QuoteCount(stream)
        reader = None
        try:
            reader = pcsv.open_csv(
                quotes,
                read_options=pcsv.ReadOptions(block_size=self._block, use_threads=True),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                    quoted_strings_can_be_null=False, null_values=[]),
            )
            start = 0
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield self._csv_frame(table.slice(0, chunk_rows), start)
                    start += chunk_rows
                    rest = table.slice(chunk_rows)
                    pending, pending_rows = rest.to_batches(), rest.num_rows
            if pending_rows:
                yield self._csv_frame(pa.Table.from_batches(pending), start)
            if quotes.odd and not self._quotes_checked:
                # pyarrow closes a quoted field still open at the end of the file silently
                stream.close()
                problem = self._unclosed_quote()
                if problem is not None:
                    raise problem
                self._quotes_checked = True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problem = str(exc)
        else:
            problem = None
        finally:
            # pyarrow's reader reads ahead on its own I/O thread (which takes the GIL to read this Python
            # stream). Close it and drop the last reference here, on this thread: left to a later garbage
            # collection (an exception's traceback keeps this frame alive), it can be collected on that
            # I/O thread, whose destructor then joins itself and aborts the process ("terminate called
            # without an active exception").
            _close_reader(reader)
            reader = None
            stream.close()
        if problem is not None:
            import gc

            gc.collect()  # see above: collect what the failed read left in cycles here, on this thread
            if "Empty CSV file" in problem:
                return  # a header without a line ending, no rows
            raise self._diagnose_csv(problem)  # outside the except: no chained Arrow traceback

    def _csv_frame(self, table, start: int) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.compute as pc

        cols = []
        for col in table.columns:
            if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                col = pc.cast(col, pa.string())
            cols.append(col)
        table = pa.table(cols, names=[f"_{i}" for i in range(len(cols))])
        frame = table.to_pandas()
        frame.columns = self.columns
        frame.index = pd.RangeIndex(start, start + len(frame))
        return frame

    def _lines(self, stream: BinaryIO) -> Iterator[str]:
        lines = _checked_lines(stream, self.name, delimiter=self.delimiter)
        return _strip_bom(lines) if self._bom else lines

    def _unclosed_quote(self) -> ValidationError | None:
        """A streaming scan (run only when the file holds an odd number of ``"``): the error for a quoted
        field that is still open at the end of the file, or None (the odd quote sits inside an unquoted
        field, which is allowed). A sentinel line after the last one shows whether the reader ends
        inside quotes: it is then swallowed into the last field instead of forming its own row."""
        sentinel = "\x00preflight-end-of-file\x00"
        stream = self._open()
        old = csv.field_size_limit()
        csv.field_size_limit(MAX_LINE_BYTES)
        try:
            lines = self._lines(stream)

            def with_sentinel() -> Iterator[str]:
                last = ""
                for last in lines:
                    yield last
                yield ("" if last.endswith(("\n", "\r")) or not last else "\n") + sentinel + "\n"

            reader = csv.reader(with_sentinel(), delimiter=self.delimiter or ",")
            prev, start = 0, 1
            row: list[str] = []
            try:
                for row in reader:
                    start, prev = prev + 1, reader.line_num
            except csv.Error as exc:
                return self._quote_error(prev + 1, str(exc))
            if row and row[-1].rstrip("\r\n").endswith(sentinel) and row != [sentinel]:
                return ValidationError(f"{self.name}: line {start}: a quoted field is never closed "
                                       "(unbalanced quote); close it or remove the stray quote")
            return None
        finally:
            csv.field_size_limit(old)
            stream.close()

    def _quote_error(self, line: int, message: str) -> ValidationError:
        if "end of data" in message or "field larger than field limit" in message:
            return ValidationError(f"{self.name}: line {line}: a quoted field is never closed "
                                   "(unbalanced quote); close it or remove the stray quote")
        return ValidationError(f"{self.name}: malformed CSV at line {line}: {message.split(' - ')[0]}")

    def _diagnose_csv(self, arrow_message: str) -> ValidationError:
        """pyarrow says *that* a CSV is malformed; find *where* with a streaming Python scan."""
        expected = len(self._raw_names)
        stream = self._open()
        old_limit = csv.field_size_limit()
        csv.field_size_limit(MAX_LINE_BYTES)  # a long field is an unclosed quote, not Python's 128 kB limit
        try:
            lines = _checked_lines(stream, self.name, delimiter=self.delimiter)
            if self._bom:
                lines = _strip_bom(lines)
            for strict in (False, True):
                reader = csv.reader(lines, delimiter=self.delimiter or ",", strict=strict)
                prev = 0
                header = True
                try:
                    for row in reader:
                        start, end = prev + 1, reader.line_num
                        prev = end
                        if not row:
                            continue
                        if header:
                            header = False
                            continue
                        if len(row) != expected:
                            if end > start and next(reader, None) is None:  # the row ran to the end
                                return self._quote_error(start, "end of data")
                            if end > start:
                                return ValidationError(
                                    f"{self.name}: line {start} opens a quoted field that is not closed until line "
                                    f"{end} (unbalanced quote?); that row has {len(row)} {'field' if len(row) == 1 else 'fields'}, header has {expected}")
                            return ValidationError(
                                f"{self.name}: line {start} has {len(row)} {'field' if len(row) == 1 else 'fields'}, header has {expected}; "
                                "fix the quoting or the delimiters on that line")
                        if end - start > 100_000:
                            return ValidationError(
                                f"{self.name}: line {start} opens a quoted field that runs over 100,000 lines "
                                "(unbalanced quote?)")
                except csv.Error as exc:
                    return self._quote_error(prev + 1, str(exc))
                if not strict:
                    stream.close()
                    stream = self._open()
                    lines = _checked_lines(stream, self.name, delimiter=self.delimiter)
                    if self._bom:
                        lines = _strip_bom(lines)
        except ValidationError as exc:
            return exc
        finally:
            csv.field_size_limit(old_limit)
            stream.close()
        if "straddling" in arrow_message or "block" in arrow_message:
            return ValidationError(f"{self.name}: a row is longer than {_mb(BLOCK_BYTES)} (an unclosed quote?)")
        return ValidationError(f"{self.name}: malformed CSV: {arrow_message.splitlines()[0][:200]}")

    # ---- JSON --------------------------------------------------------------------------------

    def _frames_from_records(self, items: Iterator[tuple[int, dict]], chunk_rows: int) -> Iterator[pd.DataFrame]:
        columns: dict[str, None] = dict.fromkeys(self.columns)
        batch: list[dict] = []
        start = 0
        for _, obj in items:
            if not columns.keys() >= obj.keys():
                for key in obj:
                    if key not in columns:
                        columns[key] = None
                        if len(columns) > MAX_COLUMNS:
                            raise ValidationError(f"{self.name}: more than {MAX_COLUMNS:,} distinct keys")
            batch.append(obj)
            if len(batch) >= chunk_rows:
                yield _records_frame(batch, list(columns), start)
                start += len(batch)
                batch = []
        if batch:
            yield _records_frame(batch, list(columns), start)
        self.columns = list(columns)

    def _jsonl_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        yield from self._frames_from_records(_jsonl_objects(self), chunk_rows)

    def _json_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        yield from self._frames_from_records(_json_array_objects(self), chunk_rows)

    # ---- Parquet -----------------------------------------------------------------------------

    def _parquet_file(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if self.compressed:
                tmp = _decompressed_copy(self)
                return pq.ParquetFile(tmp)
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{self.name}: not a readable Parquet file ({str(exc).splitlines()[0][:160]})") from None

    def _parquet_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        pf = self._parquet_file()
        start = 0
        total = max(1, pf.metadata.num_rows)
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows):
                frame = _arrow_to_frame(pa.Table.from_batches([batch]))
                frame.columns = self.columns
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                self._read = int(self.size_bytes * start / total)
                yield frame
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError(f"{self.name}: Parquet file is corrupt near row {start} ({str(exc)[:160]})") from None

    # ---- plain text --------------------------------------------------------------------------

    def _text_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        batch: list[str] = []
        start = 0
        for _, doc in _text_docs(self):
            batch.append(doc)
            if len(batch) >= chunk_rows:
                yield _text_frame(batch, start)
                start += len(batch)
                batch = []
        if batch:
            yield _text_frame(batch, start)


class _QuoteCount(io.RawIOBase):
    """A pass-through stream that keeps the parity of the ``"`` bytes read: a well-formed CSV has an
    even number (each quoted field opens and closes, inner quotes are doubled), so an odd count at the
    end is the one case worth a second look for a quote left open (see ``Dataset._unclosed_quote``)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.odd = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._f.readinto(b)
        if n and bytes(memoryview(b)[:n]).count(b'"') % 2:
            self.odd = not self.odd
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


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


def _text_frame(docs: list[str], start: int) -> pd.DataFrame:
    return pd.DataFrame({"text": pd.array(docs, dtype="str")}, index=pd.RangeIndex(start, start + len(docs)))


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


def _records_frame(batch: list[dict], columns: list[str], start: int) -> pd.DataFrame:
    data = {c: pd.array([_scalar_text(obj.get(c)) for obj in batch], dtype="str") for c in columns}
    return pd.DataFrame(data, index=pd.RangeIndex(start, start + len(batch)), columns=columns)


def _arrow_to_frame(table) -> pd.DataFrame:
    """Parquet columns as pandas, nested values as JSON text and decimals as floats (hashable, typed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols, names = [], []
    for i, col in enumerate(table.columns):
        t = col.type
        if pa.types.is_nested(t):
            col = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in col.to_pylist()],
                           pa.string())
        elif pa.types.is_decimal(t):
            col = pc.cast(col, pa.float64())
        elif pa.types.is_dictionary(t):
            col = pc.cast(col, t.value_type)
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            col = pa.array([None if v is None else v.hex() for v in col.to_pylist()], pa.string())
        elif pa.types.is_null(t):
            col = pa.nulls(len(col), pa.string())
        cols.append(col)
        names.append(f"_{i}")
    return pa.table(cols, names=names).to_pandas()


def _decompressed_copy(ds: Dataset) -> str:
    import tempfile

    tmp = tempfile.NamedTemporaryFile(prefix="preflight-", suffix=".parquet", delete=False)
    with tmp, ds._open() as src:
        while True:
            buf = src.read(1 << 20)
            if not buf:
                break
            tmp.write(buf)
    import atexit

    atexit.register(lambda p=tmp.name: os.path.exists(p) and os.unlink(p))
    return tmp.name


def _close_reader(reader) -> None:
    if reader is not None:
        try:
            reader.close()
        except Exception:  # noqa: BLE001 - already closed or failed: nothing left to stop
            pass


# ---- line streams --------------------------------------------------------------------------------

def _capped_lines(stream: BinaryIO, name: str) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset, raw line with its ending), refusing a line over the cap
    before it is read whole."""
    number = offset = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise ValidationError(f"{name}: line {number} is longer than {_mb(MAX_LINE_BYTES)}")
        yield number, offset, raw
        offset += len(raw)


def _raw_lines(ds: Dataset) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes without the line ending) with a length cap, from the decompressed file."""
    with ds._open() as stream:
        for number, _, raw in _capped_lines(stream, ds.name):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            yield number, raw.rstrip(b"\r\n")


def _decode(ds: Dataset, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{ds.name} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at line {number}, column {exc.start + 1}; "
            "re-save the file as UTF-8") from None


def _checked_lines(stream: BinaryIO, name: str, delimiter: str | None = None) -> Iterator[str]:
    """Decoded lines (endings kept, for csv.reader) that raise on bad UTF-8, over-long lines, too many fields."""
    sep = (delimiter or ",").encode()
    for number, offset, raw in _capped_lines(stream, name):
        if raw.count(sep) >= MAX_COLUMNS:
            raise ValidationError(f"{name}: line {number} has more than {MAX_COLUMNS:,} fields")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{name} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at line {number} "
                f"(byte offset {offset + exc.start}); re-save the file as UTF-8") from None
        yield text


def _strip_bom(lines: Iterator[str]) -> Iterator[str]:
    first = True
    for line in lines:
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        yield line


def _jsonl_objects(ds: Dataset) -> Iterator[tuple[int, dict]]:
    for number, raw in _raw_lines(ds):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            _decode(ds, number, raw)
            raise  # pragma: no cover - _decode raised
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{ds.name}: line {number} is not valid JSON ({exc.msg}, column {exc.colno})") from None
        except RecursionError:
            raise ValidationError(f"{ds.name}: line {number} nests JSON too deeply") from None
        if not isinstance(obj, dict):
            raise ValidationError(f"{ds.name}: line {number} is a JSON {_json_kind(obj)}, expected an object {{...}}")
        if len(obj) > MAX_COLUMNS:
            raise ValidationError(f"{ds.name}: line {number} has more than {MAX_COLUMNS:,} keys")
        yield number, obj


def _json_kind(obj: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(obj), "null")


def _json_array_objects(ds: Dataset) -> Iterator[tuple[int, dict]]:
    """Objects of a top-level JSON array, one at a time (never the whole array in memory)."""
    decoder = json.JSONDecoder()
    with ds._open() as stream:
        dec = codecs.getincrementaldecoder("utf-8")()
        buf = ""
        pos = 0
        line_base = 1          # line number at buf[0]
        eof = False
        consumed_bytes = 0

        def more() -> bool:
            nonlocal buf, pos, line_base, eof, consumed_bytes
            if eof:
                return False
            data = stream.read(1 << 20)
            try:
                text = dec.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                line = line_base + buf.count("\n") + data[: exc.start].count(b"\n")
                raise ValidationError(
                    f"{ds.name} is not valid UTF-8: byte 0x{data[exc.start]:02x} at line {line} "
                    f"(byte offset {consumed_bytes + exc.start}); re-save the file as UTF-8") from None
            consumed_bytes += len(data)
            if not data:
                eof = True
            line_base += buf.count("\n", 0, pos)
            buf = buf[pos:] + text
            pos = 0
            return bool(data)

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not more():
                    return

        def line_at(p: int) -> int:
            return line_base + buf.count("\n", 0, p)

        more()
        if buf.startswith("\ufeff"):
            pos = 1
        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise ValidationError(f"{ds.name}: expected a JSON array of objects [{{...}}, ...] or JSON Lines")
        pos += 1
        number = 0
        first = True
        while True:
            skip_ws()
            if pos >= len(buf):
                raise ValidationError(f"{ds.name}: the JSON array is not closed (truncated file?) at line {line_at(pos)}")
            if buf[pos] == "]":
                return
            if not first:
                if buf[pos] != ",":
                    raise ValidationError(f"{ds.name}: line {line_at(pos)}: expected ',' or ']' between array items")
                pos += 1
                skip_ws()
            first = False
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    if end >= len(buf) and not eof and isinstance(obj, (int, float)):
                        raise json.JSONDecodeError("number may continue", buf, end)
                    break
                except json.JSONDecodeError as exc:
                    if eof or exc.pos < len(buf) - 65536:
                        raise ValidationError(
                            f"{ds.name}: line {line_at(exc.pos)} is not valid JSON ({exc.msg})") from None
                    if len(buf) - pos > MAX_LINE_BYTES:
                        raise ValidationError(
                            f"{ds.name}: an array item starting at line {line_at(pos)} is larger than "
                            f"{_mb(MAX_LINE_BYTES)}") from None
                    more()
                except RecursionError:
                    raise ValidationError(f"{ds.name}: line {line_at(pos)} nests JSON too deeply") from None
            if not isinstance(obj, dict):
                raise ValidationError(
                    f"{ds.name}: array item {number + 1} (line {line_at(pos)}) is a JSON {_json_kind(obj)}, "
                    "expected an object {...}")
            if len(obj) > MAX_COLUMNS:
                raise ValidationError(f"{ds.name}: array item {number + 1} has more than {MAX_COLUMNS:,} keys")
            yield line_at(pos), obj
            number += 1
            pos = end


def _text_docs(ds: Dataset) -> Iterator[tuple[int, str]]:
    """(first line, document): one per non-blank line, or per blank-line-separated block."""
    block: list[str] = []
    first = 0
    size = 0
    for number, raw in _raw_lines(ds):
        text = _decode(ds, number, raw)
        if ds.text_mode == "block":
            if text.strip():
                if not block:
                    first = number
                block.append(text)
                size += len(raw)
                if size > MAX_LINE_BYTES:
                    raise ValidationError(f"{ds.name}: the block starting at line {first} is longer than {_mb(MAX_LINE_BYTES)}")
            elif block:
                yield first, "\n".join(block)
                block, size = [], 0
        elif text.strip():
            yield number, text
    if block:
        yield first, "\n".join(block)


# ---- detection --------------------------------------------------------------------------------------

def _looks_binary(head: bytes) -> bool:
    sample = head[:SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control / len(sample) > 0.1


def _read_head(path: Path, gz: bool, name: str) -> bytes:
    try:
        with open(path, "rb") as f:
            if not gz:
                return f.read(HEAD_BYTES)
            with gzip.GzipFile(fileobj=f) as g:
                return g.read(HEAD_BYTES)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValidationError(f"{name}: the gzip stream is corrupt or truncated ({exc})") from None


def _check_utf8_head(name: str, head: bytes, complete: bool) -> None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise ValidationError(
            f"{name} is not valid UTF-8: byte 0x{head[exc.start]:02x} at line {line} (byte offset {exc.start}); "
            "re-save the file as UTF-8") from None


def detect_format(path: Path, head: bytes) -> str:
    """The format from the extension, corrected by the content (magic bytes, first character)."""
    _, ext, _ = split_ext(path)
    if head[:4] == b"PAR1":
        return "parquet"
    fmt = _EXT.get(ext)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if fmt == "json" and text[:1] == b"{":
        return "jsonl"
    if fmt is not None:
        return fmt
    if text[:1] == b"{":
        return "jsonl"
    if text[:1] == b"[":
        return "json"
    first = text.split(b"\n", 1)[0]
    for sep, f in ((b"\t", "tsv"), (b",", "csv")):
        if first.count(sep) >= 1:
            lines = [ln for ln in text.split(b"\n")[:20] if ln.strip()]
            counts = {ln.count(sep) for ln in lines[:-1] or lines}
            if len(counts) == 1:
                return f
    return "text"


def _sniff_delimiter(fmt: str, first_line: str) -> str:
    if fmt == "tsv":
        return "\t"
    if "," in first_line:
        return ","
    counts = {d: first_line.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, n in enumerate(names):
        n = n.strip() or f"unnamed_{i}"
        base, k = n, seen.get(n, 0)
        while n in seen:
            k += 1
            n = f"{base}.{k}"
        seen[base] = k
        seen[n] = 0
        out.append(n)
    return out


def open_dataset(path: str | os.PathLike, *, max_bytes: int | None = None, fmt: str | None = None) -> Dataset:
    """Detect, validate and open ``path``; raises ValidationError for every bad file (see module doc)."""
    p = Path(path)
    name = p.name
    if not p.exists():
        raise ValidationError(f"file not found: {path}")
    if not p.is_file():
        raise ValidationError(f"not a file: {path}")
    size = p.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValidationError(f"{name} is {_mb(size)}, over the {_mb(max_bytes)} upload limit")
    if size == 0:
        raise ValidationError(f"{name} is empty (0 bytes)")
    with open(p, "rb") as f:
        magic = f.read(4)
    gz = magic[:2] == b"\x1f\x8b"
    if magic[:4] == b"PK\x03\x04":
        raise ValidationError(f"{name} is a ZIP archive (an Excel workbook?), not a data file; export it as CSV")
    head = _read_head(p, gz, name)
    complete = len(head) < HEAD_BYTES
    if fmt is None:
        fmt = detect_format(p, head)
    elif fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    ds = Dataset(path=p, format=fmt, compressed=gz, columns=[], size_bytes=size)
    if fmt == "parquet":
        if gz:
            ds.compressed = True
        pf = ds._parquet_file()
        names = pf.schema_arrow.names
        if len(names) > MAX_COLUMNS:
            raise ValidationError(f"{name} has {len(names):,} columns; at most {MAX_COLUMNS:,} are supported")
        if not names:
            raise ValidationError(f"{name} has no columns")
        ds.columns = _dedupe([str(n) for n in names])
        if pf.metadata.num_rows == 0:
            raise ValidationError(f"{name} has a schema but no data rows")
        ds.head = next(ds.chunks(2000))
        return ds

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValidationError(f"{name} is UTF-16 text; re-save it as UTF-8")
    if _looks_binary(head):
        what = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "json": "JSON", "text": "text"}[fmt]
        raise ValidationError(f"{name} looks like a binary file (NUL or control bytes near the start), not {what}")
    _check_utf8_head(name, head, complete)
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
                    f"{_mb(HEAD_BYTES)}); at most {MAX_COLUMNS:,} are supported")
            raise ValidationError(f"{name}: line 1 (the header) is longer than {_mb(HEAD_BYTES)}")
        text = head.decode("utf-8", errors="ignore")
        first_line = text.split("\n", 1)[0]
        ds.delimiter = _sniff_delimiter(fmt, first_line)
        if first_line.count(ds.delimiter) >= MAX_COLUMNS:
            raise ValidationError(
                f"{name}: line 1 has {first_line.count(ds.delimiter) + 1:,} columns; at most {MAX_COLUMNS:,} are supported")
        try:
            header = next(csv.reader(io.StringIO(text, newline=""), delimiter=ds.delimiter))
        except (csv.Error, StopIteration) as exc:
            raise ValidationError(f"{name}: cannot read the header line ({exc})") from None
        ds._raw_names = header
        ds.columns = _dedupe(header)
        ds.head = _first_chunk(ds)
        if ds.head is None:
            raise ValidationError(f"{name} has a header but no data rows")
        return ds

    if fmt == "text":
        ds.columns = ["text"]
        ds.text_mode = _text_mode(head.decode("utf-8", errors="ignore"))
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


def _text_mode(sample: str) -> str:
    """'block' when blank lines separate multi-line blocks, else 'line'."""
    lines = sample.splitlines()[:-1] or sample.splitlines()
    blank = [not ln.strip() for ln in lines]
    has_blank = any(blank)
    multi = any(not a and not b for a, b in zip(blank, blank[1:]))
    return "block" if has_blank and multi else "line"
