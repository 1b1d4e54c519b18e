"""conflicting_labels: the same input with different labels. ``count`` = rows involved (every row of
an input that carries two or more labels).

The input is the text column, lower-cased with whitespace collapsed, or, without a text column, all
columns but the label. Severity: >= 5% of rows high, else medium (contradictory labels cap the
accuracy any model can reach on them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from engine.datacheck import values
from engine.datacheck.text_utils import agree, plural
from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS, Check, Context, Finding
from engine.datacheck.checks._util import pct


class ConflictingLabels(Check):
    id = "conflicting_labels"
    title = "Identical inputs with different labels"
    needs = ("label",)

    def start(self, ctx: Context) -> None:
        self.inputs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        self.seen_inputs = values.HashIndex()
        self.seen_pairs = values.HashIndex()
        self.examples: list[dict] = []

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        s = chunk[ctx.label_col]
        keep = ~values.missing_mask(s)
        if ctx.text_col is not None:
            keep &= ~values.missing_mask(chunk[ctx.text_col])
        inp = values.input_hashes(chunk, ctx.text_col, ctx.label_col)[keep]
        lab = values.hash_strings(pc.utf8_trim_whitespace(values.to_arrow_str(s)))[keep]
        rows = chunk.index.to_numpy()[keep]
        self.inputs.append(inp)
        self.labels.append(lab)
        self.rows.append(rows)
        if len(self.examples) < MAX_EXAMPLES:
            pair = inp ^ (lab * np.uint64(0x9E3779B97F4A7C15))
            seen_input, first = self.seen_inputs.add(inp, rows)
            seen_pair, _ = self.seen_pairs.add(pair, rows)
            clash = np.flatnonzero(seen_input & ~seen_pair)
            cols = [c for c in ([ctx.text_col] if ctx.text_col else list(chunk.columns)[:6]) if c != ctx.label_col]
            for i in clash[: MAX_EXAMPLES - len(self.examples)]:
                ex = values.example_rows(chunk, [rows[i]], cols + [ctx.label_col])[0]
                ex["same_input_as_row"] = int(first[i])
                self.examples.append(ex)

    def finish(self, ctx: Context) -> list[Finding]:
        if not self.inputs:
            return []
        inp = np.concatenate(self.inputs)
        lab = np.concatenate(self.labels)
        rows = np.concatenate(self.rows)
        if not len(inp):
            return []
        frame = pd.DataFrame({"i": inp, "l": lab})
        labels_per_input = frame.groupby("i", sort=False)["l"].nunique()
        bad = labels_per_input.index[labels_per_input.to_numpy() > 1].to_numpy(np.uint64)
        if not len(bad):
            return []
        involved = rows[np.isin(inp, bad)]
        count = len(involved)
        share = count / max(1, ctx.rows)
        return [Finding(
            id=self.id, severity="high" if share >= 0.05 else "medium", count=count,
            title=f"{plural(len(bad), 'input')} {agree(len(bad), 'appears', 'appear')} with different labels ({plural(count, 'row')}, {pct(share)})",
            fix=("Review these rows and keep one correct label per input (or drop them); contradictory labels "
                 "teach the model nothing and cap its accuracy"),
            column=ctx.label_col, split=ctx.split, rows=np.sort(involved)[:MAX_ROWS].tolist(), rows_total=count,
            examples=self.examples, details={"inputs": int(len(bad)), "share": share,
                                             "input": ctx.text_col or "all columns but the label"},
        )]
