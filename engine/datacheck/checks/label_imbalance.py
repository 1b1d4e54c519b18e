"""label_imbalance: how uneven the classes are. ``count`` = rows in under-represented classes (fewer
than a third of the majority class's rows); ``rows`` = rows of the rarest classes first.

Severity by the majority/minority ratio: >= 100 high, >= 10 medium, >= 3 low (below 3 no finding);
a single class is high. A label with more than 1,000 distinct values, or a numeric label with more than
50, is a regression target, not classes, and is not checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import plural
from engine.datacheck.base import MAX_ROWS, Check, Context, Finding

MAX_CLASSES = 1000
RATIO_LOW, RATIO_MEDIUM, RATIO_HIGH = 3.0, 10.0, 100.0


class LabelImbalance(Check):
    id = "label_imbalance"
    title = "Class balance of the label column"
    needs = ("label",)

    def start(self, ctx: Context) -> None:
        self.counts: dict[str, int] = {}
        self.rows: dict[str, list[np.ndarray]] = {}
        self.kept: dict[str, int] = {}
        self.numeric = 0
        self.present = 0
        self.too_many = False

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        if self.too_many:
            return
        s = chunk[ctx.label_col]
        miss = values.missing_mask(s)
        codes = values.type_codes(s)
        self.numeric += int(((codes == 0) | (codes == 1)).sum())
        self.present += int((~miss).sum())
        labels = s[~miss].astype("str").str.strip()
        idx = chunk.index.to_numpy()[~miss]
        groups = pd.Series(idx).groupby(labels.to_numpy(), sort=False)
        for label, rows in groups:
            label = str(label)
            self.counts[label] = self.counts.get(label, 0) + len(rows)
            have = self.kept.get(label, 0)
            if have < MAX_ROWS:
                part = rows.to_numpy()[: MAX_ROWS - have]
                self.rows.setdefault(label, []).append(part)
                self.kept[label] = have + len(part)
        if len(self.counts) > MAX_CLASSES:
            self.too_many = True
            self.rows = {}

    def finish(self, ctx: Context) -> list[Finding]:
        n = len(self.counts)
        if self.too_many or n == 0 or (self.numeric > 0.9 * self.present and n > 50):
            return []
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        total = sum(self.counts.values())
        dist = {k: v for k, v in ordered}
        label = ctx.label_col
        if n == 1:
            only = ordered[0][0]
            return [Finding(
                id=self.id, severity="high", count=total,
                title=f"The label {label!r} has a single class ({only!r}): nothing to learn",
                fix="Add examples of the other classes, or check that the right label column was chosen",
                column=label, split=ctx.split, details={"classes": dist, "ratio": None, "share": 1.0},
            )]
        major, minor = ordered[0][1], ordered[-1][1]
        ratio = major / minor
        if ratio < RATIO_LOW:
            return []
        under = [(k, v) for k, v in reversed(ordered) if v * RATIO_LOW < major]
        count = sum(v for _, v in under)
        rows: list[int] = []
        for k, _ in under:
            if len(rows) >= MAX_ROWS:
                break
            rows.extend(np.concatenate(self.rows.get(k, [np.empty(0, np.int64)])).tolist())
        severity = "high" if ratio >= RATIO_HIGH else "medium" if ratio >= RATIO_MEDIUM else "low"
        rare = ", ".join(f"{k!r} ({v:,})" for k, v in under[:3])
        return [Finding(
            id=self.id, severity=severity, count=count,
            title=(f"Labels are imbalanced {ratio:,.0f}:1 — {ordered[0][0]!r} has {plural(major, 'row')}, "
                   f"the rarest: {rare}"),
            fix=("Collect more examples of the rare classes, or over-sample them / use class weights, and judge the "
                 "model by per-class recall or macro-F1 rather than accuracy"),
            column=label, split=ctx.split, rows=rows[:MAX_ROWS], rows_total=count,
            examples=[{"label": k, "rows": v, "share": v / total} for k, v in under[:5]],
            details={"classes": dict(list(dist.items())[:100]), "ratio": ratio, "majority": ordered[0][0],
                     "under_represented": [k for k, _ in under][:100], "share": count / max(1, total)},
        )]
