"""Small helpers the checks share (not a check: not listed in MODULES)."""

from __future__ import annotations

import numpy as np

from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS


class RowKeeper:
    """Count rows and keep the first MAX_ROWS of them (and, if ``keep_all``, every one, for fixes)."""

    def __init__(self, keep_all: bool = False) -> None:
        self.total = 0
        self.first: list[np.ndarray] = []
        self._kept = 0
        self.keep_all = keep_all
        self.all: list[np.ndarray] = []

    def add(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        self.total += len(rows)
        if self._kept < MAX_ROWS and len(rows):
            part = rows[: MAX_ROWS - self._kept]
            self.first.append(part)
            self._kept += len(part)
        if self.keep_all and len(rows):
            self.all.append(rows)

    def rows(self) -> list[int]:
        return np.concatenate(self.first).tolist() if self.first else []

    def every(self) -> np.ndarray:
        return np.concatenate(self.all) if self.all else np.empty(0, np.int64)

    def merge(self, other: "RowKeeper") -> None:
        """Append the rows another keeper saw after this one's (a partition's combine step)."""
        for part in other.first:
            if self._kept >= MAX_ROWS:
                break
            part = part[: MAX_ROWS - self._kept]
            self.first.append(part)
            self._kept += len(part)
        self.total += other.total
        if self.keep_all:
            self.all.extend(other.all)


def capped(mine: list, theirs: list, cap: int) -> list:
    """``mine`` followed by ``theirs``, at most ``cap`` items: what one pass over both would keep
    when it keeps the first ``cap`` (the combine step of per-partition example lists)."""
    return mine + theirs[: max(0, cap - len(mine))]


def severity_by_share(share: float, high: float, medium: float) -> str:
    """'high' at or above ``high``, 'medium' at or above ``medium``, else 'low'."""
    return "high" if share >= high else "medium" if share >= medium else "low"


def pct(share: float) -> str:
    """A share as a short percentage: 0.0004 -> '0.04%', 0.25 -> '25%'."""
    p = 100.0 * share
    if p == 0:
        return "0%"
    if p < 0.01:
        return "<0.01%"
    return f"{p:.2g}%" if p < 10 else f"{p:.0f}%"


def example_columns(columns, text_col: str | None, limit: int = 8) -> list[str]:
    cols = list(columns)[:limit]
    if text_col is not None and text_col not in cols:
        cols.append(text_col)
    return cols


__all__ = ["MAX_EXAMPLES", "MAX_ROWS", "RowKeeper", "capped", "severity_by_share", "pct", "example_columns"]
