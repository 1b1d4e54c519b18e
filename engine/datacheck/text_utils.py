"""Helpers the text checks share: pull strings out of a chunk, normalize them for comparison, and cut
them short (PII-masked) for a finding's examples."""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

from engine.datacheck.masking import mask_text

_SPACE = re.compile(r"\s+")
EXAMPLE_CHARS = 200


def texts_of(chunk: pd.DataFrame, column: str) -> tuple[list[int], list[str]]:
    """Row numbers and texts of ``column`` in ``chunk`` (missing/non-string cells become ``""``)."""
    rows = [int(i) for i in chunk.index]
    if column not in chunk.columns:
        return rows, [""] * len(rows)
    return rows, [v if isinstance(v, str) else "" for v in chunk[column].tolist()]


def normalize(text: str) -> str:
    """Comparison form: Unicode NFKC, casefolded, whitespace runs collapsed to one space, stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def truncate(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks the cut)."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def example_text(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """What an example may show of ``text``: PII masked first (so a cut never exposes half a number),
    then cut to ``limit`` characters."""
    return truncate(mask_text(text), limit)


def share_severity(share: float, *, high: float, medium: float) -> str:
    """``"high"`` at or above ``high``, ``"medium"`` at or above ``medium``, else ``"low"``."""
    return "high" if share >= high else "medium" if share >= medium else "low"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 row"`` / ``"1,204 rows"``."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def agree(n: int, one: str, many: str) -> str:
    """The verb form for a count: ``agree(1, "has", "have")`` -> ``"has"``."""
    return one if n == 1 else many
