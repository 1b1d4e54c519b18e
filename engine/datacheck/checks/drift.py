"""drift: columns distributed differently in the test split than in train.

Numeric columns and the text length: the two-sample Kolmogorov-Smirnov statistic D on samples of up
to 50,000 values per split, with its asymptotic p-value (Numerical Recipes 3rd ed., 14.3.3).
Categorical columns (at most 100 distinct values) and the label: the population stability index
PSI = Σ (q − p)·ln(q/p) over the categories (counts +0.5), with a chi-square test of homogeneity
(Wilson-Hilferty approximation for the p-value). A column drifts when the effect is large enough to
matter (D >= 0.1, PSI >= 0.1: the usual "moderate shift" line) and not chance (p < 0.001). Severity:
D >= 0.3 or PSI >= 0.25 medium (high for the label), else low. One finding per column; ``count`` =
the test rows compared; ``details`` carries the statistics. Identifier columns
(:mod:`engine.datacheck.identifiers`) differ between splits by design and are left out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from engine.datacheck import values
from engine.datacheck.base import Check, Context, Finding
from engine.datacheck.identifiers import is_identifier

SAMPLE = 50_000
MAX_CATEGORIES = 100
KS_MIN, PSI_MIN, P_MAX = 0.1, 0.1, 1e-3
TEXT_LENGTH = "text length"


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of the two-sample KS statistic (Numerical Recipes 14.3.3)."""
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    total = sum(2 * (-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return min(1.0, max(0.0, total))


def chi2_sf(x: float, k: int) -> float:
    """P[chi-square with k degrees of freedom > x], Wilson-Hilferty cube-root normal approximation."""
    if k <= 0:
        return 1.0
    z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


def psi_and_p(train: dict[str, int], test: dict[str, int]) -> tuple[float, float, float]:
    """(PSI, chi-square p-value, total variation distance) of two category count tables."""
    keys = sorted(set(train) | set(test))
    a = np.array([train.get(k, 0) for k in keys], float)
    b = np.array([test.get(k, 0) for k in keys], float)
    p = (a + 0.5) / (a + 0.5).sum()
    q = (b + 0.5) / (b + 0.5).sum()
    psi = float(np.sum((q - p) * np.log(q / p)))
    tv = float(0.5 * np.abs(a / max(1, a.sum()) - b / max(1, b.sum())).sum())
    table = np.stack([a, b])
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(1.0, table.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = float(np.nansum(np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)))
    return psi, chi2_sf(chi, len(keys) - 1), tv


class _Sampler:
    def __init__(self, seed: int) -> None:
        self.parts: list[np.ndarray] = []
        self.n = 0
        self.rate = 1.0
        self.rng = np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if self.rate < 1:
            x = x[self.rng.random(len(x)) < self.rate]
        self.parts.append(x)
        self.n += len(x)
        while self.n > 2 * SAMPLE:
            v = np.concatenate(self.parts)
            v = v[self.rng.random(len(v)) < 0.5]
            self.parts, self.n, self.rate = [v], len(v), self.rate / 2

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty(0)


class Drift(Check):
    id = "drift"
    title = "Distribution drift between train and test"
    needs = ("test",)
    splits = ("train", "test")

    def start(self, ctx: Context) -> None:
        self.num: dict[str, dict[str, _Sampler]] = {}
        self.cat: dict[str, dict[str, dict[str, int]]] = {}
        self.too_many: set[str] = set()
        self.kind: dict[str, str] = {}

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        split = ctx.split
        for col in chunk.columns:
            if col not in ctx.columns or col == ctx.text_col or is_identifier(col, ctx):
                continue
            s = chunk[col]
            if col not in self.kind:
                if split != "train":
                    continue
                codes = values.type_codes(s)
                present = codes >= 0
                numeric = (not values.is_textual(s) and pd.api.types.is_numeric_dtype(s.dtype)
                           and not pd.api.types.is_bool_dtype(s.dtype)) or (
                    values.is_textual(s) and present.any() and ((codes == 0) | (codes == 1)).sum() >= 0.9 * present.sum())
                self.kind[col] = "numeric" if numeric and col != ctx.label_col else "categorical"
            if self.kind[col] == "numeric":
                self.num.setdefault(col, {}).setdefault(split, _Sampler(len(self.num))).add(values.numeric(s))
            elif col not in self.too_many:
                miss = values.missing_mask(s)
                counts = s[~miss].astype("str").str.strip().value_counts()
                table = self.cat.setdefault(col, {}).setdefault(split, {})
                for k, v in counts.items():
                    table[k] = table.get(k, 0) + int(v)
                if len(table) > MAX_CATEGORIES:
                    self.too_many.add(col)
        if ctx.text_col is not None and ctx.text_col in chunk.columns:
            lens = pc.fill_null(pc.utf8_length(values.to_arrow_str(chunk[ctx.text_col])), 0).to_numpy(zero_copy_only=False)
            self.num.setdefault(TEXT_LENGTH, {}).setdefault(split, _Sampler(7)).add(lens.astype(float))

    def finish(self, ctx: Context) -> list[Finding]:
        out = []
        n_test = ctx.test_rows
        for col, by in self.num.items():
            a, b = by.get("train"), by.get("test")
            if a is None or b is None:
                continue
            va, vb = a.values(), b.values()
            if len(va) < 20 or len(vb) < 20:
                continue
            d = ks_statistic(va, vb)
            p = ks_pvalue(d, len(va), len(vb))
            if d < KS_MIN or p >= P_MAX:
                continue
            name = ctx.text_col if col == TEXT_LENGTH else col
            what = f"the length of {name!r}" if col == TEXT_LENGTH else repr(col)
            out.append(Finding(
                id=self.id, severity="medium" if d >= 0.3 else "low", count=n_test,
                title=(f"{what[0].upper() + what[1:]} is distributed differently in test (KS D={d:.2f}; median "
                       f"{np.median(va):.4g} in train, {np.median(vb):.4g} in test)"),
                fix=("Split train and test from the same shuffled pool (or stratify), or check the test set "
                     "comes from the population the model will serve"),
                column=name, split="test",
                details={"statistic": "ks", "ks": d, "p_value": p, "share": min(1.0, d),
                         "train_median": float(np.median(va)), "test_median": float(np.median(vb)),
                         "text_length": col == TEXT_LENGTH},
            ))
        for col, by in self.cat.items():
            if col in self.too_many or "train" not in by or "test" not in by:
                continue
            psi, p, tv = psi_and_p(by["train"], by["test"])
            if psi < PSI_MIN or p >= P_MAX:
                continue
            big = psi >= 0.25
            severity = ("high" if big else "medium") if col == ctx.label_col else ("medium" if big else "low")
            shift = sorted(set(by["train"]) | set(by["test"]),
                           key=lambda k: -abs(by["test"].get(k, 0) / max(1, sum(by["test"].values()))
                                              - by["train"].get(k, 0) / max(1, sum(by["train"].values()))))[:3]
            out.append(Finding(
                id=self.id, severity=severity, count=n_test,
                title=(f"{'The label' if col == ctx.label_col else 'Column'} {col!r} is distributed differently in "
                       f"test (PSI {psi:.2f}); most changed: {', '.join(repr(k) for k in shift)}"),
                fix=("Split train and test from the same shuffled pool (stratify by the label), or check the test "
                     "set comes from the population the model will serve"),
                column=col, split="test",
                details={"statistic": "psi", "psi": psi, "p_value": p, "total_variation": tv, "share": min(1.0, tv * 2),
                         "train": dict(sorted(by["train"].items(), key=lambda kv: -kv[1])[:20]),
                         "test": dict(sorted(by["test"].items(), key=lambda kv: -kv[1])[:20])},
            ))
        return out
