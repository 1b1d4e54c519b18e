"""train_test_leakage: test rows whose input also appears in train. ``count`` = test rows affected;
``rows`` are test-file rows.

Exact: the normalized text (lower-cased, whitespace collapsed) or, without a text column, all columns
but the label. Nearly (text only): MinHash LSH candidates (engine.datacheck.minhash: character
5-gram shingles, 128 permutations, bands tuned for the near-dup threshold) verified by the exact
Jaccard similarity of the shingle sets >= the threshold (default 0.8), on up to 1,000,000 train rows.
``details["train_rows_matched"]`` = distinct train rows involved (all copies of a matched input).
Severity: >= 10% of the test split critical (the test score is not to be trusted), else high.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import agree, plural
from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS, Check, Context, Finding
from engine.datacheck.checks._util import pct

NEAR_MAX_TRAIN = 1_000_000

try:
    from engine.datacheck import minhash as _mh
except ImportError:  # pragma: no cover - the text helper's module is missing
    _mh = None


class TrainTestLeakage(Check):
    id = "train_test_leakage"
    title = "Test rows whose input appears in train (exactly or nearly)"
    needs = ("test",)
    splits = ("train", "test")

    def start(self, ctx: Context) -> None:
        self.index = values.HashIndex()
        self.train_copies: dict[int, int] = {}  # first train row -> later train rows with the same input
        self.exact_rows: list[np.ndarray] = []
        self.exact_train: list[np.ndarray] = []
        self.examples: list[dict] = []
        self.cols = [c for c in ctx.columns if c != ctx.label_col]
        self.near = ctx.text_col is not None and _mh is not None
        self.threshold = float(ctx.options.get("near_dup_threshold", 0.8))
        if self.near:
            try:
                self.threshold = _mh.check_threshold(self.threshold)
            except Exception:  # noqa: BLE001 - a threshold minhash refuses: exact matching only
                self.near = False
        self.bands: list[np.ndarray] = []
        self.band_rows: list[np.ndarray] = []
        self.sorted_bands: list[tuple[np.ndarray, np.ndarray]] = []
        self.candidates: dict[int, set[int]] = {}    # test row -> train rows
        self.test_text: dict[int, str] = {}
        self.train_text: dict[int, str] = {}
        self.near_rows: dict[int, tuple[int, float]] = {}
        self.passes = 1
        self.skipped_reason: str | None = None
        self.train_rows = 0

    def _hashes(self, chunk: pd.DataFrame, ctx: Context) -> np.ndarray | None:
        if ctx.text_col is not None:
            return values.text_hashes(chunk[ctx.text_col])
        if any(c not in chunk.columns for c in self.cols):
            self.skipped_reason = "the test file lacks some train columns"
            return None
        return values.row_hashes(chunk[self.cols])

    def _band(self, texts: list[str]) -> np.ndarray:
        r, b = _mh.lsh_params(self.threshold)
        enc = [_mh.prepare(t) for t in texts]
        return _mh.band_hashes(_mh.signatures(encoded=enc), r, b), np.array([bool(e) for e in enc])

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        if getattr(self, "_collect", False):   # pass 2: fetch the train texts of near candidates
            want = self._want
            rows = chunk.index.to_numpy()
            hit = rows[np.isin(rows, want)]
            for r in hit.tolist():
                self.train_text[r] = chunk.at[r, ctx.text_col]
            return
        h = self._hashes(chunk, ctx)
        if h is None:
            return
        rows = chunk.index.to_numpy()
        if ctx.split == "train":
            dup, first = self.index.add(h, rows)
            for f in first[dup].tolist():
                self.train_copies[f] = self.train_copies.get(f, 0) + 1
            self.train_rows = int(rows[-1]) + 1
            if self.near and self.train_rows <= NEAR_MAX_TRAIN:
                texts = chunk[ctx.text_col].fillna("").astype("str").tolist()
                bands, ok = self._band(texts)
                self.bands.append(bands[ok])
                self.band_rows.append(rows[ok])
            return
        found, first = self.index.lookup(h)
        idx = np.flatnonzero(found)
        self.exact_rows.append(rows[idx])
        self.exact_train.append(first[idx])
        cols = [ctx.text_col] if ctx.text_col else self.cols[:8]
        for i in idx[: MAX_EXAMPLES - len(self.examples)]:
            ex = values.example_rows(chunk, [rows[i]], cols)[0]
            ex.update(train_row=int(first[i]), match="exact")
            self.examples.append(ex)
        if self.near and (self.bands or self.sorted_bands):
            self._near_candidates(chunk, ctx, rows, found)

    def _near_candidates(self, chunk: pd.DataFrame, ctx: Context, rows: np.ndarray, found: np.ndarray) -> None:
        if not self.sorted_bands:
            bands = np.concatenate(self.bands)
            brows = np.concatenate(self.band_rows)
            for k in range(bands.shape[1]):
                order = np.argsort(bands[:, k], kind="stable")
                self.sorted_bands.append((bands[order, k], brows[order]))
            self.bands, self.band_rows = [], []
        todo = np.flatnonzero(~found)
        if not len(todo):
            return
        texts = chunk[ctx.text_col].fillna("").astype("str").to_numpy()[todo].tolist()
        bands, ok = self._band(texts)
        for k, (keys, krows) in enumerate(self.sorted_bands):
            if not len(keys):
                continue
            pos = np.minimum(np.searchsorted(keys, bands[:, k]), len(keys) - 1)
            hit = np.flatnonzero((keys[pos] == bands[:, k]) & ok)
            for i in hit.tolist():
                test_row = int(rows[todo[i]])
                self.candidates.setdefault(test_row, set()).add(int(krows[pos[i]]))
                self.test_text[test_row] = texts[i]
        if self.candidates:
            self.passes = 2  # the runner then reads train again so the candidates can be verified

    def start_pass(self, number: int, ctx: Context) -> None:
        self._want = np.array(sorted({r for s in self.candidates.values() for r in s}), np.int64)
        self._collect = True

    def _train_rows_matched(self, exact_train: np.ndarray, near: dict[int, tuple[int, float]]) -> int:
        """Distinct train rows a test row matched: every copy of an exactly matched train input (the
        index keeps only the first, ``train_copies`` counts the rest), plus the near matches' rows."""
        firsts = np.unique(exact_train).tolist()
        n = sum(1 + self.train_copies.get(f, 0) for f in firsts)
        return n + len({r for r, _ in near.values()} - set(firsts))

    def finish(self, ctx: Context) -> list[Finding]:
        exact = np.concatenate(self.exact_rows) if self.exact_rows else np.empty(0, np.int64)
        exact_train = np.concatenate(self.exact_train) if self.exact_train else np.empty(0, np.int64)
        near: dict[int, tuple[int, float]] = {}
        if self.train_text:
            for test_row, train_rows in self.candidates.items():
                a = _mh.shingles(self.test_text[test_row])
                best = (-1, 0.0)
                for r in train_rows:
                    if r in self.train_text:
                        sim = _mh.jaccard(a, _mh.shingles(self.train_text[r]))
                        if sim > best[1]:
                            best = (r, sim)
                if best[1] >= self.threshold:
                    near[test_row] = best
        for test_row, (train_row, sim) in sorted(near.items())[: max(0, MAX_EXAMPLES - len(self.examples))]:
            self.examples.append({"row": test_row, ctx.text_col: values.show(self.test_text[test_row]),
                                  "train_row": train_row, "train_text": values.show(self.train_text[train_row]),
                                  "match": "near", "jaccard": round(sim, 3)})
        leaked = np.union1d(exact, np.array(sorted(near), np.int64))
        ctx.shared.setdefault("fix_rows", {})["drop_leaked_test"] = leaked
        count = len(leaked)
        if count == 0:
            return []
        share = count / max(1, ctx.test_rows)
        how = "the same normalized text" if ctx.text_col else "identical values in every column but the label"
        return [Finding(
            id=self.id, severity="critical" if share >= 0.10 else "high", count=count,
            title=(f"{plural(count, 'test row')} ({pct(share)} of the test split) also {agree(count, 'appears', 'appear')} in train"
                   + (f" ({len(exact):,} exactly, {len(near):,} nearly)" if self.near else "")),
            fix=("Drop them from the test split (safe fix: --fix writes <stem>.test<ext>), or split by a group "
                 "key (user, document) so copies cannot straddle the split"),
            column=ctx.text_col, split="test", rows=leaked[:MAX_ROWS].tolist(), rows_total=count,
            examples=self.examples,
            details={"exact": int(len(exact)), "near": len(near), "share": share, "match": how,
                     "near_threshold": self.threshold if self.near else None,
                     "near_checked": bool(self.near) and self.train_rows <= NEAR_MAX_TRAIN,
                     "train_rows_matched": self._train_rows_matched(exact_train, near)},
            safe_fix="drop_leaked_test",
        )]
