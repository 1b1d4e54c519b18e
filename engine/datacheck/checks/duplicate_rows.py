"""duplicate_rows: exact full-row duplicates. ``count`` = rows that repeat an earlier row.

Rows are compared by a 64-bit hash of all their values (8 bytes of memory per distinct row; a false
match needs a hash collision, about n²/2⁶⁵: 3e-8 at a million rows). Severity: >= 10% of rows high,
>= 1% medium, else low. The safe fix drops the repeats and keeps the first occurrence.

With a test file, duplicates inside the test split are reported too (a second finding, ``split="test"``,
rows numbered in the test file). ``--fix`` does not drop them: the cleaned test file only loses rows
leaked from train, so the evaluation set stays what it was unless you dedupe it on purpose.
Rows repeated *across* the splits are train_test_leakage's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import agree, plural
from engine.datacheck.base import MAX_EXAMPLES, Check, Context, Finding
from engine.datacheck.checks._util import RowKeeper, example_columns, pct, severity_by_share


class _Split:
    def __init__(self, keep_all: bool) -> None:
        self.index = values.HashIndex()
        self.keeper = RowKeeper(keep_all=keep_all)
        self.examples: list[dict] = []
        self.seen = 0


class DuplicateRows(Check):
    id = "duplicate_rows"
    title = "Exact duplicate rows"
    splits = ("train", "test")

    def start(self, ctx: Context) -> None:
        self.by_split = {"train": _Split(keep_all=True), "test": _Split(keep_all=False)}

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        st = self.by_split[ctx.split]
        rows = chunk.index.to_numpy()
        dup, first = st.index.add(values.row_hashes(chunk), rows)
        if ctx.split == "train" and len(rows):  # duplicate_text leaves these rows to this check
            ctx.shared["duplicate_rows_chunk"] = (int(rows[0]), len(rows), dup)
        idx = np.flatnonzero(dup)
        st.keeper.add(rows[idx])
        if len(idx) and len(st.examples) < MAX_EXAMPLES:
            cols = example_columns(chunk.columns, ctx.text_col)
            for i in idx[: MAX_EXAMPLES - len(st.examples)]:
                ex = values.example_rows(chunk, [rows[i]], cols)[0]
                ex["same_as_row"] = int(first[i])
                st.examples.append(ex)
        st.seen += len(chunk)

    def finish(self, ctx: Context) -> list[Finding]:
        ctx.shared.setdefault("fix_rows", {})["drop_duplicates"] = self.by_split["train"].keeper.every()
        out = []
        for split, st in self.by_split.items():
            count = st.keeper.total
            if count == 0:
                continue
            share = count / max(1, st.seen)
            where = "" if split == "train" else " in the test split"
            out.append(Finding(
                id=self.id, severity=severity_by_share(share, 0.1, 0.01), count=count,
                title=(f"{plural(count, 'row')}{where} {agree(count, 'repeats', 'repeat')} an earlier row exactly "
                       f"({pct(share)} of {'the data' if split == 'train' else 'the test rows'})"),
                fix=("Drop the repeated rows and keep the first occurrence (safe fix: --fix)" if split == "train" else
                     "Drop the repeated test rows so each example counts once in the evaluation "
                     "(--fix leaves the test split's own duplicates in place)"),
                split=split, rows=st.keeper.rows(), rows_total=count, examples=st.examples,
                details={"distinct_rows": len(st.index), "share": share},
                safe_fix="drop_duplicates" if split == "train" else None,
            ))
        return out
