"""JSON Lines and JSON arrays, object by object (an array is never held whole): each object is a row;
a file of strings (one JSON string per line, or an array of strings) is one ``text`` column. Scalars
become their JSON text, nested values JSON, so checks see values as the file writes them."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from engine.errors import ValidationError
from engine.tabular.formats import MAX_COLUMNS, MAX_LINE_BYTES
from engine.tabular.lines import decode_line, encoding_label, raw_lines
from engine.units import format_bytes


class JsonReading:
    """The JSON part of :class:`engine.tabular.dataset.Dataset` (a mixin: ``self`` is the Dataset)."""

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


def _jsonl_objects(ds) -> Iterator[tuple[int, dict]]:
    strings: bool | None = None
    for number, raw in raw_lines(ds):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw if ds.encoding == "utf-8" else decode_line(ds, number, raw))
        except UnicodeDecodeError:
            decode_line(ds, number, raw)
            raise  # pragma: no cover - decode_line raised
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{ds.name}: line {number} is not valid JSON ({exc.msg}, column {exc.colno})") from None
        except RecursionError:
            raise ValidationError(f"{ds.name}: line {number} nests JSON too deeply") from None
        obj, strings = _as_record(obj, strings, f"{ds.name}: line {number}")
        if len(obj) > MAX_COLUMNS:
            raise ValidationError(f"{ds.name}: line {number} has more than {MAX_COLUMNS:,} keys")
        yield number, obj


def _json_kind(obj: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(obj), "null")


def _json_array_objects(ds) -> Iterator[tuple[int, dict]]:
    """Objects of a top-level JSON array, one at a time (never the whole array in memory)."""
    decoder = json.JSONDecoder()
    with ds._open() as stream:
        dec = codecs.getincrementaldecoder(ds.encoding)()
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
                    f"{ds.name} is not valid {encoding_label(ds.encoding)}: byte 0x{data[exc.start]:02x} at line {line} "
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
        strings: bool | None = None
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
                            f"{format_bytes(MAX_LINE_BYTES, decimal=True)}") from None
                    more()
                except RecursionError:
                    raise ValidationError(f"{ds.name}: line {line_at(pos)} nests JSON too deeply") from None
            obj, strings = _as_record(obj, strings, f"{ds.name}: array item {number + 1} (line {line_at(pos)})")
            if len(obj) > MAX_COLUMNS:
                raise ValidationError(f"{ds.name}: array item {number + 1} has more than {MAX_COLUMNS:,} keys")
            yield line_at(pos), obj
            number += 1
            pos = end


def _as_record(obj: Any, strings: bool | None, where: str) -> tuple[dict, bool]:
    """``obj`` as a row: an object as it is, a string as ``{"text": obj}`` when every item is a string."""
    is_str = isinstance(obj, str)
    if strings is None:
        strings = is_str
    if is_str and strings:
        return {"text": obj}, strings
    if isinstance(obj, dict) and not strings:
        return obj, strings
    expected = "a string, like the items before it" if strings else "an object {...}"
    raise ValidationError(f"{where} is a JSON {_json_kind(obj)}, expected {expected}")
