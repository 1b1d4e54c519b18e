"""``empty_text``: rows whose text is missing, empty or whitespace only.

``count`` = such rows (missing cells — None, NaN, non-strings — included; ``details`` splits them).
Nothing to learn from them, so the safe fix drops them.
"""

from __future__ import annotations

import pandas as pd

from engine.datacheck.base import Check, Context, Finding, MAX_ROWS
from engine.datacheck.checks._util import capped
from engine.datacheck.text_utils import agree, plural, share_severity


class EmptyText(Check):
    """Rows with no text at all: missing, empty or only whitespace."""

    id = "empty_text"
    title = "Empty or whitespace-only text"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.rows: list[int] = []
        self.total = self.missing = self.blank = 0

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values = chunk[ctx.text_col].tolist() if ctx.text_col in chunk.columns else [None] * len(chunk)
        for row, v in zip(chunk.index.tolist(), values):
            if isinstance(v, str):
                if v.strip():
                    continue
                self.blank += 1
            else:
                self.missing += 1
            self.total += 1
            if len(self.rows) < MAX_ROWS:
                self.rows.append(int(row))

    def merge(self, other: "EmptyText") -> None:
        """Fold in the state of the rows that follow ``other``'s partition (Dask's combine step: a
        pass over both in order would leave this state)."""
        self.rows = capped(self.rows, other.rows, MAX_ROWS)
        self.total += other.total
        self.missing += other.missing
        self.blank += other.blank

    def finish(self, ctx: Context) -> list[Finding]:
        n = self.total
        if not n:
            return []
        share = n / max(ctx.rows, n)
        return [Finding(
            id=self.id, severity=share_severity(share, high=0.10, medium=0.01), count=n,
            title=f"{plural(n, 'row')} {agree(n, 'has', 'have')} empty or whitespace-only text",
            fix="Drop these rows (safe fix: drop_rows); if many are missing, check the export step",
            column=ctx.text_col, rows=self.rows, rows_total=n,
            examples=[{"row": r} for r in self.rows[:5]],
            details={"missing": self.missing, "blank": self.blank, "share": round(share, 6)},
            safe_fix="drop_rows",
        )]
