"""duplicate_rows: exact full-row duplicates. ``count`` = rows that repeat an earlier row.

Rows are compared by a 64-bit hash of all their values (8 bytes of memory per distinct row; a false
match needs a hash collision, about n²/2⁶⁵: 3e-8 at a million rows). Severity: >= 10% of rows high,
>= 1% medium, else low. The safe fix drops the repeats and keeps the first occurrence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.base import MAX_EXAMPLES, Check, Context, Finding
from engine.datacheck.checks._util import RowKeeper, example_columns, pct, severity_by_share


class DuplicateRows(Check):
    id = "duplicate_rows"
    title = "Exact duplicate rows"

    def start(self, ctx: Context) -> None:
        self.index = values.HashIndex()
        self.keeper = RowKeeper(keep_all=True)
        self.examples: list[dict] = []
        self.seen = 0

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        rows = chunk.index.to_numpy()
        dup, first = self.index.add(values.row_hashes(chunk), rows)
        idx = np.flatnonzero(dup)
        self.keeper.add(rows[idx])
        if len(idx) and len(self.examples) < MAX_EXAMPLES:
            cols = example_columns(chunk.columns, ctx.text_col)
            for i in idx[: MAX_EXAMPLES - len(self.examples)]:
                ex = values.example_rows(chunk, [rows[i]], cols)[0]
                ex["same_as_row"] = int(first[i])
                self.examples.append(ex)
        self.seen += len(chunk)

    def finish(self, ctx: Context) -> list[Finding]:
        count = self.keeper.total
        ctx.shared.setdefault("fix_rows", {})["drop_duplicates"] = self.keeper.every()
        if count == 0:
            return []
        share = count / max(1, self.seen)
        return [Finding(
            id=self.id, severity=severity_by_share(share, 0.1, 0.01), count=count,
            title=f"{count:,} rows repeat an earlier row exactly ({pct(share)} of the data)",
            fix="Drop the repeated rows and keep the first occurrence (safe fix: --fix)",
            split=ctx.split, rows=self.keeper.rows(), rows_total=count, examples=self.examples,
            details={"distinct_rows": len(self.index), "share": share}, safe_fix="drop_duplicates",
        )]
