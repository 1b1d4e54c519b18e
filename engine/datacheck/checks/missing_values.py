"""missing_values: missing cells per column. ``count`` = missing cells; ``rows`` = rows with any.

Missing = NA/null, empty or whitespace-only text, or NA, N/A, NaN, null, None (any case); see
:data:`engine.datacheck.values.MISSING_TOKENS`. Severity by the worst column's share: >= 50% high,
>= 5% medium, else low.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import plural
from engine.datacheck.base import MAX_EXAMPLES, Check, Context, Finding
from engine.datacheck.checks._util import RowKeeper, capped, pct, severity_by_share


class MissingValues(Check):
    id = "missing_values"
    title = "Missing values (empty, NA, N/A, NaN, null, None) per column"

    def start(self, ctx: Context) -> None:
        self.per_col: dict[str, int] = {}
        self.keeper = RowKeeper()
        self.examples: list[dict] = []
        self.seen = 0

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        any_missing = np.zeros(len(chunk), bool)
        masks = {}
        for col in chunk.columns:
            m = values.missing_mask(chunk[col])
            if col not in self.per_col:
                self.per_col[col] = self.seen  # a JSON key that first appears now was missing before
            self.per_col[col] += int(m.sum())
            any_missing |= m
            masks[col] = m
        idx = np.flatnonzero(any_missing)
        self.keeper.add(chunk.index.to_numpy()[idx])
        for i in idx[: MAX_EXAMPLES - len(self.examples)]:
            self.examples.append({"row": int(chunk.index[i]),
                                  "missing_columns": [c for c in chunk.columns if masks[c][i]][:20]})
        self.seen += len(chunk)

    def merge(self, other: "MissingValues") -> None:
        """Fold in the state of the rows that follow ``other``'s partition (Dask's combine step: a
        pass over both in order would leave this state)."""
        for col, n in other.per_col.items():
            self.per_col[col] = self.per_col[col] + n if col in self.per_col else self.seen + n
        self.keeper.merge(other.keeper)
        self.examples = capped(self.examples, other.examples, MAX_EXAMPLES)
        self.seen += other.seen

    def finish(self, ctx: Context) -> list[Finding]:
        cells = sum(self.per_col.values())
        rows = max(1, self.seen)
        if cells == 0:
            return []
        per = {c: n for c, n in sorted(self.per_col.items(), key=lambda kv: -kv[1]) if n}
        worst, worst_n = next(iter(per.items()))
        share = worst_n / rows
        severity = severity_by_share(share, 0.5, 0.05)
        if ctx.label_col in per and severity == "low":
            severity = "medium"  # a row without a label cannot be trained on
        mostly = [c for c, n in per.items() if n / rows >= 0.5]
        fix = ("Fill the gaps (median for numbers, the most common value or an explicit 'missing' category "
               "for categories) or drop the affected rows")
        if mostly:
            fix = f"Drop the mostly-empty column(s) {', '.join(repr(c) for c in mostly[:5])}; " + fix[0].lower() + fix[1:]
        return [Finding(
            id=self.id, severity=severity, count=cells,
            title=f"{plural(cells, 'missing cell')} in {plural(len(per), 'column')}; worst: {worst!r} is {pct(share)} missing",
            fix=fix, column=worst if len(per) == 1 else None, split=ctx.split,
            rows=self.keeper.rows(), rows_total=self.keeper.total, examples=self.examples,
            details={"per_column": {c: {"missing": n, "share": n / rows} for c, n in per.items()},
                     "cells": cells, "rows_with_missing": self.keeper.total, "share": self.keeper.total / rows,
                     "missing_tokens": list(values.MISSING_TOKENS)},
        )]
