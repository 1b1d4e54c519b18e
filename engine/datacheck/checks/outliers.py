"""outliers: robust outliers per numeric column, modified z-score |M| > 3.5 with
M = 0.6745·(x − median)/MAD (Iglewicz & Hoaglin 1993, "How to Detect and Handle Outliers", ch. 3).
When MAD is 0 the mean absolute deviation stands in (M = (x − median)/(1.253314·MeanAD)); a column
with fewer than 10 distinct numbers (codes, flags) is not checked.

Numbers are kept per column (8 bytes per value) up to 16 million values in all; beyond that the
check keeps a random sample of 200,000 per column for the median and MAD and counts in a second pass
over the file. One finding per column; ``count`` = values flagged. Identifier columns
(:mod:`engine.datacheck.identifiers`: ``review_id``, a row counter) have no distribution and are left out.

On normally distributed data the rule itself flags ``NORMAL_TAIL`` = 2·(1 − Φ(3.5)) ≈ 0.047% of the
values (MAD/0.6745 estimates σ). A column whose flagged count stays within what a normal sample of its
size produces (expected + 3 binomial standard deviations) gets severity ``info``: nothing unusual.
The typical range shown is the rule's bounds clipped to the column's observed min and max, so a
strictly positive column never shows a negative lower bound (``details`` keep the raw bounds).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import plural
from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS, Check, Context, Finding
from engine.datacheck.checks._util import RowKeeper, pct
from engine.datacheck.identifiers import is_identifier

THRESHOLD = 3.5
MIN_DISTINCT = 10
BUDGET_VALUES = 16_000_000
SAMPLE = 200_000
NORMAL_TAIL = math.erfc(THRESHOLD / math.sqrt(2))  # P(|Z| > 3.5) for a normal: 4.65e-4


def within_normal_tail(flagged: int, n: int) -> bool:
    """Whether ``flagged`` of ``n`` values is no more than a normal sample's tail beyond |M| > 3.5
    produces: at most n·p + 3·sqrt(n·p·(1 − p)) (binomial), p = NORMAL_TAIL."""
    mean = n * NORMAL_TAIL
    return flagged <= mean + 3 * math.sqrt(mean * (1 - NORMAL_TAIL))


def robust_z(x: np.ndarray, median: float, scale: float) -> np.ndarray:
    return (x - median) / scale


def robust_center_scale(v: np.ndarray) -> tuple[float, float] | None:
    """(median, scale) such that M = (x − median)/scale, or None when the spread is zero."""
    med = float(np.median(v))
    dev = np.abs(v - med)
    mad = float(np.median(dev))
    if mad > 0:
        return med, mad / 0.6745
    mean_ad = float(dev.mean())
    if mean_ad > 0:
        return med, 1.253314 * mean_ad
    return None


def has_distinct(v: np.ndarray, k: int = MIN_DISTINCT) -> bool:
    """Whether ``v`` holds at least ``k`` distinct values (a short prefix usually settles it)."""
    if len(v) < k:
        return False
    if len(v) > 4096 and len(np.unique(v[:4096])) >= k:
        return True
    return len(np.unique(v)) >= k


class Outliers(Check):
    id = "outliers"
    title = "Outliers in numeric columns (robust modified z-score)"

    def start(self, ctx: Context) -> None:
        self.store: dict[str, list[np.ndarray]] = {}
        self.sample: dict[str, list[np.ndarray]] = {}
        self.stored = 0
        self.full = True
        self.passes = 1
        self.seen = 0
        self.rng = np.random.default_rng(0)
        self.rate = 1.0
        self.bounds: dict[str, tuple[float, float]] = {}
        self.keepers: dict[str, RowKeeper] = {}
        self.top: dict[str, list[tuple[float, int, float]]] = {}
        self.lo: dict[str, float] = {}     # observed min / max / count of finite values, per column
        self.hi: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def _candidates(self, chunk: pd.DataFrame, ctx: Context) -> list[str]:
        out = []
        for col in chunk.columns:
            if col == ctx.text_col or is_identifier(col, ctx):
                continue
            s = chunk[col]
            if not values.is_textual(s):
                if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                    out.append(col)
                continue
            codes = values.type_codes(s)
            present = codes >= 0
            if present.any() and ((codes == 0) | (codes == 1)).sum() >= 0.5 * present.sum():
                out.append(col)
        return out

    def start_pass(self, number: int, ctx: Context) -> None:
        for col, parts in self.sample.items():
            v = np.concatenate(parts) if parts else np.empty(0)
            v = v[np.isfinite(v)]
            cs = robust_center_scale(v) if has_distinct(v[:SAMPLE]) else None
            if cs is not None:
                self.bounds[col] = cs
                self.keepers[col] = RowKeeper()
                self.top[col] = []
        self._counting = True

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        if getattr(self, "_counting", False):  # second pass: count against the sample's bounds
            for col, (med, scale) in self.bounds.items():
                if col in chunk.columns:
                    self._count(col, values.numeric(chunk[col]), chunk.index.to_numpy(), med, scale)
            return
        start = int(chunk.index[0])
        cols = dict.fromkeys(self._candidates(chunk, ctx))
        cols.update(dict.fromkeys(c for c in (self.store if self.full else self.sample) if c in chunk.columns))
        for col in cols:
            x = values.numeric(chunk[col])
            fin = x[np.isfinite(x)]
            if len(fin):
                self.lo[col] = min(self.lo.get(col, math.inf), float(fin.min()))
                self.hi[col] = max(self.hi.get(col, -math.inf), float(fin.max()))
                self.n[col] = self.n.get(col, 0) + len(fin)
            if self.full:
                if col not in self.store:
                    self.store[col] = [np.full(start, np.nan)] if start else []
                self.store[col].append(x)
                self.stored += len(x)
            self.sample.setdefault(col, []).append(self._thin(x))
        self.seen += len(chunk)
        if self.full and self.stored > BUDGET_VALUES:
            self.full = False
            self.store = {}
            self.passes = 2
        self._resample()

    def _thin(self, x: np.ndarray) -> np.ndarray:
        if self.rate >= 1.0:
            return x
        return x[self.rng.random(len(x)) < self.rate]

    def _resample(self) -> None:
        biggest = max((sum(len(p) for p in parts) for parts in self.sample.values()), default=0)
        while biggest > 2 * SAMPLE:
            self.rate /= 2
            for col, parts in self.sample.items():
                v = np.concatenate(parts)
                self.sample[col] = [v[self.rng.random(len(v)) < 0.5]]
            biggest //= 2

    def _count(self, col: str, x: np.ndarray, rows: np.ndarray, med: float, scale: float) -> None:
        with np.errstate(invalid="ignore"):
            z = np.abs(robust_z(x, med, scale))
            hit = np.flatnonzero(z > THRESHOLD)
        if not len(hit):
            return
        self.keepers[col].add(rows[hit])
        best = hit[np.argsort(-z[hit], kind="stable")[:MAX_EXAMPLES]]
        top = self.top[col] + [(float(z[i]), int(rows[i]), float(x[i])) for i in best]
        self.top[col] = sorted(top, key=lambda t: -t[0])[:MAX_EXAMPLES]

    def finish(self, ctx: Context) -> list[Finding]:
        prof = values.type_profile(ctx)
        numeric_cols = []
        for col in (self.store if self.full else self.bounds):
            if col in prof.counts and col not in prof.native:
                kind, share = prof.dominant(col)
                if kind not in ("int", "float") or share < 0.5:
                    continue
            numeric_cols.append(col)
        if self.full:
            for col in numeric_cols:
                x = np.concatenate(self.store[col])
                v = x[np.isfinite(x)]
                if not has_distinct(v):
                    continue
                cs = robust_center_scale(v)
                if cs is None:
                    continue
                self.bounds[col] = cs
                self.keepers[col] = RowKeeper()
                self.top[col] = []
                self._count(col, x, np.arange(len(x)), *cs)
        out = []
        for col in numeric_cols:
            keeper = self.keepers.get(col)
            if keeper is None or keeper.total == 0:
                continue
            med, scale = self.bounds[col]
            lo, hi = med - THRESHOLD * scale, med + THRESHOLD * scale
            show_lo, show_hi = max(lo, self.lo.get(col, lo)), min(hi, self.hi.get(col, hi))
            share = keeper.total / max(1, self.seen)
            normal = within_normal_tail(keeper.total, self.n.get(col, self.seen))
            ex = [{"row": r, col: v, "modified_z": round(z, 1)} for z, r, v in self.top[col]]
            worst = ", ".join(f"{e[col]:g}" for e in ex[:3])
            out.append(Finding(
                id=self.id, severity="info" if normal else "medium" if share >= 0.05 else "low", count=keeper.total,
                title=(f"{plural(keeper.total, 'outlier')} in {col!r} ({pct(share)}), e.g. {worst}; typical range "
                       f"{show_lo:.4g} to {show_hi:.4g}" + ("; no more than a normal distribution's tails" if normal else "")),
                fix=(f"Check these values of {col!r}: correct data-entry errors, clip to the range, or keep them if "
                     "they are real (then consider a log transform)"),
                column=col, split=ctx.split, rows=sorted(keeper.rows())[:MAX_ROWS], rows_total=keeper.total,
                examples=ex,
                details={"median": med, "scale": scale, "low": lo, "high": hi, "threshold": THRESHOLD,
                         "share": share, "method": "modified z-score, Iglewicz & Hoaglin 1993",
                         "range_shown": [show_lo, show_hi], "within_normal_tail": normal,
                         "normal_tail_share": NORMAL_TAIL,
                         "sampled": not self.full},
            ))
        return out
