"""``duplicate_text``: rows whose text repeats an earlier row's text while some other field differs.

How it relates to the other duplicate checks:

* ``duplicate_rows`` — the whole row is identical to an earlier row. Those rows are left out here
  (when duplicate_rows runs), so no row is counted by both checks.
* ``duplicate_text`` — the same text (NFKC, lower-cased, whitespace collapsed; see
  :func:`engine.datacheck.values.same_text_hashes`) with a different id, label or other field.
  ``count`` = such rows; each example shows the row and the first row with that text.
* ``near_duplicates`` — texts that are similar but not equal (it leaves exact copies to this check).

Texts are compared by a 64-bit hash (16 bytes per distinct text: the hash and its first row; a false
match needs a collision, ~n²/2⁶⁵). Empty texts are left to ``empty_text``. Severity: >= 10% of rows
high, >= 1% medium, else low. The safe fix (``drop_duplicate_text``) keeps the first row of each text
and drops the later copies whose label equals an earlier copy's (all of them when there is no label
column); a copy with a new label is reported but kept, since picking a label is not safe to automate
(conflicting_labels reports it). Keeping a (text, label) index for that costs 16 more bytes per text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.base import MAX_EXAMPLES, Check, Context, Finding
from engine.datacheck.checks._util import RowKeeper, capped, pct, severity_by_share
from engine.datacheck.text_utils import example_text, plural

# duplicate_rows leaves its per-chunk verdict here so the rows it reports are not counted twice
SHARED_KEY = "duplicate_rows_chunk"


class DuplicateText(Check):
    """Rows that repeat an earlier row's text but differ in another field."""

    id = "duplicate_text"
    title = "Exact duplicate texts (other fields differ)"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.index = values.HashIndex()
        self.with_label = values.HashIndex()   # (text, label) keys: which repeats are safe to drop
        self.keeper = RowKeeper()
        self.droppable = RowKeeper(keep_all=True)
        self.label_differs = 0
        self.examples: list[dict] = []
        self.texts = 0
        self.full_row_dups = 0

    def keys(self, chunk: pd.DataFrame, ctx: Context) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What is compared, for the non-blank texts: ``"text"`` (rows, text hashes) and, with a label
        column, ``"text_label"`` (rows, (text, label) hashes)."""
        if ctx.text_col not in chunk.columns or not len(chunk):
            return {}
        hashes, blank = values.same_text_hashes(chunk[ctx.text_col])
        pos = np.flatnonzero(~blank)
        rows = chunk.index.to_numpy().astype(np.int64)[pos]
        out = {"text": (rows, hashes[pos])}
        if ctx.label_col is not None and ctx.label_col in chunk.columns:
            out["text_label"] = (rows, values._mix(hashes[pos] * values._GOLD
                                                   ^ values.column_hashes(chunk[ctx.label_col])[pos]))
        return out

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        keys = self.keys(chunk, ctx)
        if not keys or not len(keys["text"][0]):
            return
        rows, hashes = keys["text"]
        verdicts = {"text": (rows, *self.index.add(hashes, rows))}
        if "text_label" in keys:
            verdicts["text_label"] = (rows, *self.with_label.add(keys["text_label"][1], rows))
        self.take(ctx, verdicts, chunk)

    def take(self, ctx: Context, verdicts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
             chunk: pd.DataFrame | None = None) -> None:
        """Record the verdicts on non-blank texts that follow every text recorded so far: ``"text"`` =
        (rows, repeats an earlier text, that row), ``"text_label"`` the same for (text, label). Examples
        come from ``chunk`` (those rows' values); without it none are taken."""
        if "text" not in verdicts or not len(verdicts["text"][0]):
            return
        rows, dup, first = verdicts["text"]
        self.texts += len(rows)
        hit = np.flatnonzero(dup)
        firsts = first[hit]
        whole = _whole_row_dups(rows, ctx)
        if whole is not None:
            keep = ~whole[hit]
            self.full_row_dups += int((~keep).sum())
            hit, firsts = hit[keep], firsts[keep]
        self.keeper.add(rows[hit])
        if "text_label" in verdicts:
            drop = hit[verdicts["text_label"][1][hit]]
            self.label_differs += len(hit) - len(drop)
        else:
            drop = hit
        self.droppable.add(rows[drop])
        if chunk is not None and len(hit) and len(self.examples) < MAX_EXAMPLES:
            texts = chunk[ctx.text_col]
            others = [c for c in chunk.columns if c != ctx.text_col][:7]
            at = chunk.index.get_indexer(rows[hit[: MAX_EXAMPLES - len(self.examples)]])
            for p, f in zip(at.tolist(), firsts.tolist()):
                ex = {"row": int(chunk.index[p]), "first_row": int(f), "text": example_text(str(texts.iloc[p]))}
                ex.update({str(c): values.show(chunk[c].iloc[p]) for c in others})
                if f in chunk.index:
                    ex["first_row_values"] = {str(c): values.show(chunk.at[f, c]) for c in others}
                self.examples.append(ex)

    def found(self, split: str) -> int:
        """Rows reported so far (what the examples are drawn from)."""
        return self.keeper.total

    def merge(self, other: "DuplicateText") -> None:
        """Fold in the state of a later partition (its verdicts given by one global hash index)."""
        for keeper in ("keeper", "droppable"):
            getattr(self, keeper).merge(getattr(other, keeper))
        self.label_differs += other.label_differs
        self.texts += other.texts
        self.full_row_dups += other.full_row_dups
        self.examples = capped(self.examples, other.examples, MAX_EXAMPLES)

    def finish(self, ctx: Context) -> list[Finding]:
        ctx.shared.setdefault("fix_rows", {})["drop_duplicate_text"] = self.droppable.every()
        n = self.keeper.total
        if not n:
            return []
        share = n / max(1, ctx.rows)
        return [Finding(
            id=self.id, severity=severity_by_share(share, 0.1, 0.01), count=n,
            title=f"{plural(n, 'row')} {'repeats' if n == 1 else 'repeat'} an earlier row's text with other "
                  f"fields different ({pct(share)} of the data)",
            fix="Keep one row per text (safe fix: --fix keeps the first and drops the later copies that carry "
                "the same label); copies with a different label are kept: settle their label first "
                "(see conflicting_labels)",
            column=ctx.text_col, split=ctx.split, rows=self.keeper.rows(), rows_total=n, examples=self.examples,
            details={"distinct_texts": self.texts - n - self.full_row_dups, "share": round(share, 6),
                     "whole_row_duplicates_left_to_duplicate_rows": self.full_row_dups,
                     "label_differs": self.label_differs, "dropped_by_fix": self.droppable.total},
            safe_fix="drop_duplicate_text",
        )]


def _whole_row_dups(rows: np.ndarray, ctx: Context) -> np.ndarray | None:
    """duplicate_rows' verdict on these rows (True = the whole row repeats an earlier one), if it ran
    and its last verdict covers them."""
    got = ctx.shared.get(SHARED_KEY)
    if not got or not len(rows):
        return None
    first, length, mask = got
    if rows[0] < first or rows[-1] >= first + length:
        return None
    return mask[rows - first]
