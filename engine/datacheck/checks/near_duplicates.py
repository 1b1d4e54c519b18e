"""``near_duplicates``: texts that nearly repeat an earlier text (Jaccard >= threshold of shingle sets).

Method (see :mod:`engine.datacheck.minhash`): MinHash signatures (Broder 1997) + LSH banding (MMDS
ch. 3) find candidate pairs; each candidate pair is verified by its *exact* shingle Jaccard; verified
pairs are clustered with union-find. ``count`` = rows that near-duplicate an earlier row = for every
cluster, its members except the first. The threshold is ``ctx.options["near_dup_threshold"]``
(default 0.8, allowed 0.5–1.0).

Exact duplicates are not reported here: rows whose normalized text (NFKC, lower-cased, collapsed
whitespace; :func:`engine.datacheck.values.same_text_hashes`) equals an earlier row's are left out
(``duplicate_text`` reports them, or ``duplicate_rows`` when the whole row repeats), so only the first
copy of a text can take part in a near-duplicate cluster. Empty texts are left out too.

Two passes keep memory at ~180 bytes per row: pass 1 keeps 21 band hashes and one text hash per row;
between the passes the candidate pairs are formed; pass 2 rebuilds the shingle sets of the candidate
rows only and verifies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.datacheck import minhash, values
from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.text_utils import agree, example_text, normalize, plural, share_severity, texts_of


class NearDuplicates(Check):
    """Rows whose text nearly repeats an earlier row's (MinHash LSH, verified by exact Jaccard)."""

    id = "near_duplicates"
    title = "Near-duplicate texts"
    needs = ("text",)
    passes = 2

    def start(self, ctx: Context) -> None:
        self.threshold = minhash.check_threshold(ctx.options.get("near_dup_threshold", 0.8))
        self.r, self.b = minhash.lsh_params(self.threshold)
        self.pass_no = 1
        self._rows: list[np.ndarray] = []
        self._hashes: list[np.ndarray] = []
        self._bands: list[np.ndarray] = []
        self.pairs = np.empty((0, 2), dtype=np.int64)  # candidate pairs as row numbers
        self.needed = np.empty(0, dtype=np.int64)
        self.sets: dict[int, set] = {}
        self.texts: dict[int, str] = {}
        self.texts_seen = 0

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        rows, texts = texts_of(chunk, ctx.text_col)
        if self.pass_no == 1:
            keep_rows, hashes, encoded = [], [], []
            # the same comparison hash as duplicate_text, so every exact copy left out here is reported there
            same = values.same_text_hashes(chunk[ctx.text_col])[0] if ctx.text_col in chunk.columns else None
            for p, (row, t) in enumerate(zip(rows, texts)):
                norm = normalize(t[: minhash.PREFIX_CHARS]) if t else ""  # what minhash.prepare cuts to
                enc = minhash.prepare_normalized(norm) if norm else b""
                if not enc:
                    continue
                keep_rows.append(row)
                hashes.append(same[p] if same is not None else minhash.text_hash(norm))
                encoded.append(enc)
            self.texts_seen += len(keep_rows)
            if keep_rows:
                self._rows.append(np.array(keep_rows, dtype=np.int64))
                self._hashes.append(np.array(hashes, dtype=np.uint64))
                self._bands.append(minhash.band_hashes(minhash.signatures(encoded=encoded), self.r, self.b))
            return
        if not len(self.needed):
            return
        arr = np.asarray(rows, dtype=np.int64)
        hit = np.flatnonzero(np.isin(arr, self.needed)).tolist()
        self.sets.update(minhash.shingle_sets({rows[p]: minhash.prepare(texts[p]) for p in hit}))
        for p in hit:
            self.texts[rows[p]] = texts[p][:1000]

    def start_pass(self, number: int, ctx: Context) -> None:
        if number != 2 or self.pass_no != 1:
            return
        if not self._rows:
            self.set_candidates(np.empty((0, 2), dtype=np.int64))
            return
        rows, hashes, bands = self.pass1_state()
        self._rows, self._hashes, self._bands = [], [], []
        keep = first_occurrences(rows, hashes)
        self.set_candidates(candidate_rows(rows[keep], bands[keep]))

    def pass1_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, comparison hashes, band hashes) of the non-empty texts seen in pass 1, in row order:
        what the Dask engine shuffles (hashes by value, bands by band) instead of gathering."""
        if not self._rows:
            return (np.empty(0, np.int64), np.empty(0, np.uint64), np.empty((0, self.b), np.uint64))
        return np.concatenate(self._rows), np.concatenate(self._hashes), np.concatenate(self._bands)

    def set_candidates(self, pairs: np.ndarray) -> None:
        """Enter pass 2 with these candidate pairs (row numbers, each ``(earlier, later)``, unique)."""
        self.pass_no = 2
        self.pairs = pairs if len(pairs) else np.empty((0, 2), dtype=np.int64)
        self.needed = np.unique(self.pairs)

    def merge(self, other: "NearDuplicates") -> None:
        """Fold in pass-2 state of a later partition (the shingle sets and texts of its candidate rows)."""
        self.sets.update(other.sets)
        self.texts.update(other.texts)
        self.texts_seen += other.texts_seen

    def finish(self, ctx: Context) -> list[Finding]:
        if self.pass_no == 1:  # a runner that skipped pass 2: form the candidates, nothing to verify
            self.start_pass(2, ctx)
        uf = minhash.UnionFind()
        best: dict[int, tuple[float, int]] = {}  # later row -> (similarity, earlier partner)
        verified = 0
        for a, b in self.pairs.tolist():
            if a not in self.sets or b not in self.sets:
                continue
            sim = minhash.jaccard(self.sets[a], self.sets[b])
            if sim < self.threshold:
                continue
            uf.union(a, b)
            verified += 1
            if b not in best or sim > best[b][0]:
                best[b] = (sim, a)
        flagged = sorted(r for group in uf.groups() for r in group[1:])
        n = len(flagged)
        if not n:
            return []
        examples = []
        for row in flagged:
            if len(examples) >= MAX_EXAMPLES:
                break
            if row in best:
                sim, other = best[row]
                examples.append({"row_a": other, "row_b": row, "similarity": round(sim, 3),
                                 "text_a": example_text(self.texts.get(other, "")),
                                 "text_b": example_text(self.texts.get(row, ""))})
        share = n / max(ctx.rows, n)
        clusters = len(uf.groups())
        return [Finding(
            id=self.id, severity=share_severity(share, high=0.30, medium=0.05), count=n,
            title=f"{plural(n, 'row')} nearly {agree(n, 'repeats', 'repeat')} an earlier row "
                  f"(Jaccard >= {self.threshold:g}, {plural(clusters, 'cluster')})",
            fix="Keep one row per near-duplicate cluster (check that the kept rows' labels agree); "
                "near copies overweight their content and leak between train and test splits",
            column=ctx.text_col, rows=flagged[:MAX_ROWS], rows_total=n, examples=examples,
            details={"clusters": clusters, "threshold": self.threshold, "share": round(share, 6),
                     "candidate_pairs": int(len(self.pairs)), "verified_pairs": verified,
                     "method": f"MinHash {minhash.NUM_PERM} perms, LSH {self.b} bands x {self.r} rows, "
                               f"character {minhash.CHAR_K}-gram shingles, exact Jaccard check"},
        )]


def first_occurrences(rows: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """True where a text is the first (lowest row) with its comparison hash; later exact copies
    take no part in near-duplicate clusters. Any subset holding every row of the hashes it has
    (a hash bucket of a shuffle) gives the same answer for its rows."""
    return ~values.first_rows(hashes, rows)[0]


def candidate_rows(rows: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Candidate pairs as row numbers from rows (increasing) and their band hashes (any subset of the
    bands: the union over disjoint band groups equals the pairs of all bands together)."""
    if not len(rows):
        return np.empty((0, 2), dtype=np.int64)
    pairs = minhash.candidate_pairs(bands)
    return rows[pairs] if len(pairs) else np.empty((0, 2), dtype=np.int64)
