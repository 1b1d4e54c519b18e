"""CSV and TSV: pyarrow's threaded streaming reader (16 MB blocks, every column a string, the file's
encoding transcoded by pyarrow), and a streaming Python scan that finds *where* a malformed file
breaks (ragged rows, unclosed quotes) when pyarrow only says *that* it does."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

import pandas as pd

from engine.errors import ValidationError
from engine.tabular.formats import BLOCK_BYTES, MAX_LINE_BYTES
from engine.tabular.lines import checked_lines, strip_bom
from engine.units import format_bytes


class CsvReading:
    """The CSV/TSV part of :class:`engine.tabular.dataset.Dataset` (a mixin: ``self`` is the Dataset)."""

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
                read_options=pcsv.ReadOptions(block_size=self._block, use_threads=True,
                                              encoding="utf8" if self.encoding == "utf-8" else self.encoding),
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
        lines = checked_lines(stream, self.name, delimiter=self.delimiter, encoding=self.encoding)
        return strip_bom(lines) if self._bom else lines

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
                for row in reader:  # noqa: B007 - the last row read is checked after the loop
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
            lines = self._lines(stream)
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
                    lines = self._lines(stream)
        except ValidationError as exc:
            return exc
        finally:
            csv.field_size_limit(old_limit)
            stream.close()
        if "straddling" in arrow_message or "block" in arrow_message:
            return ValidationError(f"{self.name}: a row is longer than {format_bytes(BLOCK_BYTES, decimal=True)} "
                                   "(an unclosed quote?)")
        return ValidationError(f"{self.name}: malformed CSV: {arrow_message.splitlines()[0][:200]}")


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


def _close_reader(reader) -> None:
    if reader is not None:
        try:
            reader.close()
        except Exception:  # noqa: BLE001 - already closed or failed: nothing left to stop
            pass
