"""Plain text: one document per non-blank line, or per blank-line-separated block when the file's
blank lines separate multi-line blocks; one column ``text``."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from engine.errors import ValidationError
from engine.tabular.formats import MAX_LINE_BYTES
from engine.tabular.lines import decode_line, raw_lines
from engine.units import format_bytes


class TextReading:
    """The plain-text part of :class:`engine.tabular.dataset.Dataset` (a mixin: ``self`` is the Dataset)."""

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


def _text_frame(docs: list[str], start: int) -> pd.DataFrame:
    return pd.DataFrame({"text": pd.array(docs, dtype="str")}, index=pd.RangeIndex(start, start + len(docs)))


def _text_docs(ds) -> Iterator[tuple[int, str]]:
    """(first line, document): one per non-blank line, or per blank-line-separated block."""
    block: list[str] = []
    first = 0
    size = 0
    for number, raw in raw_lines(ds):
        text = decode_line(ds, number, raw)
        if ds.text_mode == "block":
            if text.strip():
                if not block:
                    first = number
                block.append(text)
                size += len(raw)
                if size > MAX_LINE_BYTES:
                    raise ValidationError(f"{ds.name}: the block starting at line {first} is longer than "
                                          f"{format_bytes(MAX_LINE_BYTES, decimal=True)}")
            elif block:
                yield first, "\n".join(block)
                block, size = [], 0
        elif text.strip():
            yield number, text
    if block:
        yield first, "\n".join(block)
