"""constant_column: a column whose values are all the same, or all missing. One finding per column;
``count`` = rows in the file. Text is compared trimmed and case-folded (" Yes" = "yes"). A column
with one value and some gaps is not constant: the gaps themselves carry information. Identifier
columns (:mod:`engine.datacheck.identifiers`) are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.datacheck import values
from engine.datacheck.text_utils import plural
from engine.datacheck.base import Check, Context, Finding
from engine.datacheck.identifiers import is_identifier

_UNSET = object()


class ConstantColumn(Check):
    id = "constant_column"
    title = "Columns with a single value"

    def start(self, ctx: Context) -> None:
        self.first: dict[str, object] = {}
        self.raw: dict[str, object] = {}
        self.has_missing: dict[str, bool] = {}
        self.varies: set[str] = set()
        self.seen = 0

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        for col in chunk.columns:
            if is_identifier(col, ctx):
                continue
            if col not in self.has_missing:
                self.has_missing[col] = self.seen > 0   # a JSON key first seen now was absent before
            if col in self.varies:
                continue
            s = chunk[col]
            miss = values.missing_mask(s)
            self.has_missing[col] |= bool(miss.any())
            present = np.flatnonzero(~miss)
            if not len(present):
                continue
            if col not in self.first:
                self.raw[col] = s.iloc[present[0]]
            if values.is_textual(s):
                if not self._same_text(col, s, present):
                    self.varies.add(col)
                continue
            norm = s.to_numpy()
            if col not in self.first:
                self.first[col] = norm[present[0]]
            if not bool((norm[present] == self.first[col]).all()):
                self.varies.add(col)
        self.seen += len(chunk)

    def _same_text(self, col: str, s: pd.Series, present: np.ndarray) -> bool:
        """Whether every present value of a text column equals the column's first one (normalized),
        compared in Arrow: per distinct value when the column is dictionary-encoded."""
        enc = values.encoded(s)
        if enc is not None:
            norm = enc.norm
            if col not in self.first:
                self.first[col] = norm[int(enc.indices[present[0]])].as_py()
            cand = norm.filter(pa.array(~enc.miss))   # every distinct present value occurs in the chunk
        else:
            norm = values.normalized(s)
            if col not in self.first:
                self.first[col] = norm[int(present[0])].as_py()
            cand = norm.take(pa.array(present))
        if not len(cand):
            return True
        return bool(pc.all(pc.equal(cand, pa.scalar(self.first[col], cand.type))).as_py())

    def finish(self, ctx: Context) -> list[Finding]:
        if self.seen < 2:
            return []
        out = []
        for col in self.has_missing:
            if col in self.varies or (col in self.first and self.has_missing[col]):
                continue
            empty = col not in self.first
            shown = values.show(self.raw.get(col))
            title = (f"Column {col!r} is empty in every row" if empty
                     else f"Column {col!r} has the same value {shown!r} in all {plural(self.seen, 'row')}")
            out.append(Finding(
                id=self.id, severity="medium" if col == ctx.label_col else "low", count=self.seen,
                title=title, fix=f"Drop column {col!r}: it carries no information for a model",
                column=col, split=ctx.split, examples=[{"column": col, "value": shown}],
                details={"value": shown, "empty": empty, "share": 1.0},
            ))
        return out
