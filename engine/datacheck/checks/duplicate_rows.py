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
from engine.datacheck.checks._util import RowKeeper, capped, example_columns, pct, severity_by_share


class _Split:
    def __init__(self, keep_all: bool) -> None:
        self.index = values.HashIndex()
        self.keeper = RowKeeper(keep_all=keep_all)
        self.examples: list[dict] = []
        self.seen = 0

    def merge(self, other: "_Split") -> None:
        self.keeper.merge(other.keeper)
        self.examples = capped(self.examples, other.examples, MAX_EXAMPLES)
        self.seen += other.seen


class DuplicateRows(Check):
    id = "duplicate_rows"
    title = "Exact duplicate rows"
    splits = ("train", "test")

    def start(self, ctx: Context) -> None:
        self.by_split = {"train": _Split(keep_all=True), "test": _Split(keep_all=False)}

    def keys(self, chunk: pd.DataFrame, ctx: Context) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What is compared: ``{"rows": (data rows, 64-bit hash of each row's values)}``."""
        return {"rows": (chunk.index.to_numpy().astype(np.int64), values.row_hashes(chunk))}

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        st = self.by_split[ctx.split]
        rows, hashes = self.keys(chunk, ctx)["rows"]
        dup, first = st.index.add(hashes, rows)
        self.take(ctx, {"rows": (rows, dup, first)}, chunk)

    def take(self, ctx: Context, verdicts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
             chunk: pd.DataFrame | None = None) -> None:
        """Record the verdict on rows that follow every row recorded so far: ``verdicts["rows"]`` =
        (rows, repeats an earlier row, that row). Examples come from ``chunk`` (those rows' values);
        without it none are taken (the Dask engine gives it only to the shards holding the first ones)."""
        if "rows" not in verdicts:
            return
        st = self.by_split[ctx.split]
        rows, dup, first = verdicts["rows"]
        if ctx.split == "train" and len(rows):  # duplicate_text leaves these rows to this check
            ctx.shared["duplicate_rows_chunk"] = (int(rows[0]), len(rows), dup)
        idx = np.flatnonzero(dup)
        st.keeper.add(rows[idx])
        if chunk is not None and len(idx) and len(st.examples) < MAX_EXAMPLES:
            cols = example_columns(chunk.columns, ctx.text_col)
            for i in idx[: MAX_EXAMPLES - len(st.examples)]:
                ex = values.example_rows(chunk, [rows[i]], cols)[0]
                ex["same_as_row"] = int(first[i])
                st.examples.append(ex)
        st.seen += len(rows)

    def found(self, split: str) -> int:
        """Rows of ``split`` reported so far (what the examples are drawn from)."""
        return self.by_split[split].keeper.total

    def merge(self, other: "DuplicateRows") -> None:
        """Fold in the state of a later partition (its verdicts given by one global hash index)."""
        for split, st in self.by_split.items():
            st.merge(other.by_split[split])

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
                details={"distinct_rows": st.seen - count, "share": share},
                safe_fix="drop_duplicates" if split == "train" else None,
            ))
        return out
