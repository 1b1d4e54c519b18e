"""Line streams of a (decompressed) data file: numbered, capped at MAX_LINE_BYTES before a line is read
whole, decoded in the file's encoding with the line and byte offset of a bad byte."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from engine.errors import ValidationError
from engine.tabular.formats import MAX_COLUMNS, MAX_LINE_BYTES
from engine.units import format_bytes

def capped_lines(stream: BinaryIO, name: str) -> Iterator[tuple[int, int, bytes]]:
    """(1-based line number, byte offset, raw line with its ending), refusing a line over the cap
    before it is read whole."""
    number = offset = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise ValidationError(f"{name}: line {number} is longer than "
                                  f"{format_bytes(MAX_LINE_BYTES, decimal=True)}")
        yield number, offset, raw
        offset += len(raw)


def raw_lines(ds) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, bytes without the line ending) with a length cap, from the decompressed file."""
    with ds._open() as stream:
        for number, _, raw in capped_lines(stream, ds.name):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            yield number, raw.rstrip(b"\r\n")


def decode_line(ds, number: int, raw: bytes) -> str:
    try:
        return raw.decode(ds.encoding)
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{ds.name} is not valid {encoding_label(ds.encoding)}: byte 0x{raw[exc.start]:02x} at line {number}, column {exc.start + 1}; "
            "re-save the file as UTF-8") from None


def checked_lines(stream: BinaryIO, name: str, delimiter: str | None = None, encoding: str = "utf-8") -> Iterator[str]:
    """Decoded lines (endings kept, for csv.reader) that raise on bad UTF-8, over-long lines, too many fields."""
    sep = (delimiter or ",").encode()
    for number, offset, raw in capped_lines(stream, name):
        if raw.count(sep) >= MAX_COLUMNS:
            raise ValidationError(f"{name}: line {number} has more than {MAX_COLUMNS:,} fields")
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{name} is not valid {encoding_label(encoding)}: byte 0x{raw[exc.start]:02x} at line {number} "
                f"(byte offset {offset + exc.start}); re-save the file as UTF-8") from None
        yield text


def strip_bom(lines: Iterator[str]) -> Iterator[str]:
    first = True
    for line in lines:
        if first:
            line = line.removeprefix("\ufeff")
            first = False
        yield line


def encoding_label(encoding: str) -> str:
    """``UTF-8`` for utf-8, else the codec's name (``cp1252``)."""
    return "UTF-8" if codecs.lookup(encoding).name == "utf-8" else codecs.lookup(encoding).name
