"""mixed_types: values that do not fit their column's dominant type, e.g. "unknown" in an age column.

Each value is classified int, float, bool (true/false/yes/no), date (ISO or d/m/y) or string
(missing values apart, see values.MISSING_TOKENS). When numbers, bools or dates make up at least half
of a column's present values, every value of another type is reported: one finding per column,
``count`` = values that do not fit. String columns accept anything and are never reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import agree, plural
from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS, Check, Context, Finding
from engine.datacheck.checks._util import pct

DOMINANT_SHARE = 0.5
_WORD = {"int": "whole numbers", "float": "numbers", "bool": "true/false values", "date": "dates"}


class MixedTypes(Check):
    id = "mixed_types"
    title = "Values that do not fit the column's type"

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values.type_profile(ctx).observe(chunk)

    def finish(self, ctx: Context) -> list[Finding]:
        prof = values.type_profile(ctx)
        out = []
        for col in prof.counts:
            if col == ctx.text_col or col in prof.native:
                continue
            kind, share = prof.dominant(col)
            if kind not in _WORD or share < DOMINANT_SHARE:
                continue
            bad = prof.fits(col, kind)
            if not bad:
                continue
            count = int(sum(prof.counts[col][t] for t in bad))
            present = int(prof.counts[col][: len(values.TYPES)].sum())
            rows = np.sort(np.concatenate([prof.type_rows(col, t) for t in bad]))[:MAX_ROWS]
            examples = sorted(
                ({"row": r, col: values.show(v), "type": values.TYPES[t]}
                 for t in bad for r, v in prof.examples.get((col, t), [])), key=lambda e: e["row"])[:MAX_EXAMPLES]
            odd = sorted({str(e[col]) for e in examples})[:3]
            out.append(Finding(
                id=self.id, severity="medium", count=count,
                title=f"{plural(count, 'value')} in {col!r} {agree(count, 'is', 'are')} not {_WORD[kind]} (e.g. {', '.join(repr(o) for o in odd)})",
                fix=(f"Correct them or replace them with an empty value, so {col!r} parses as {kind} "
                     f"({pct(share)} of its values already do)"),
                column=col, split=ctx.split, rows=rows.tolist(), rows_total=count, examples=examples,
                details={"dominant_type": kind, "dominant_share": share, "share": count / max(1, present),
                         "other_types": {values.TYPES[t]: int(prof.counts[col][t]) for t in bad}},
            ))
        return out
