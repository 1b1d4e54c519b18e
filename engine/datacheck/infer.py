"""Which column holds the text and which the label, when the user does not say.

Text: among string columns, those whose values are mostly multi-word (at least half have 3+ words)
and average at least 20 characters; the longest on average wins. Label: a column named like a label
(:data:`LABEL_NAMES`, case-insensitive); failing that, and only when a text column exists (a text
classification set), the last low-cardinality column (at most 50 distinct values, repeated on average
at least twice in the first rows). A tabular file without such a name gets no label: guessing that
``city`` is the target would invent findings.
"""

from __future__ import annotations

import pandas as pd

from engine.datacheck import values
from engine.errors import ValidationError

LABEL_NAMES = ("label", "labels", "target", "class", "y", "category", "sentiment", "intent", "outcome",
               "class_label", "tag")
MAX_LABEL_CLASSES = 50


def _columns_list(columns: list[str]) -> str:
    shown = ", ".join(repr(c) for c in columns[:20])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > 20 else "")


def require_column(what: str, name: str, columns: list[str]) -> str:
    """``name`` if it is a column (exact, then case-insensitive), else a ValidationError listing them."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    raise ValidationError(f"{what} column {name!r} not found; columns: {_columns_list(columns)}")


def infer_text_column(head: pd.DataFrame) -> str | None:
    best, best_len = None, 0.0
    for col in head.columns:
        s = head[col]
        if not values.is_textual(s):
            continue
        present = s[~values.missing_mask(s)].astype("str")
        if len(present) == 0:
            continue
        lengths = present.str.len()
        words = present.str.count(r"\S+")
        if (words >= 3).mean() >= 0.5 and lengths.mean() >= 20 and lengths.mean() > best_len:
            best, best_len = col, float(lengths.mean())
    return best


def infer_label_column(head: pd.DataFrame, text_col: str | None) -> str | None:
    for name in LABEL_NAMES:
        for col in head.columns:
            if col.strip().lower() == name and col != text_col:
                return col
    if text_col is None:
        return None
    for col in reversed(list(head.columns)):
        if col == text_col:
            continue
        s = head[col][~values.missing_mask(head[col])]
        n = s.nunique()
        if len(s) and 2 <= n <= MAX_LABEL_CLASSES and len(s) / n >= 2:
            return col
    return None


def resolve_columns(head: pd.DataFrame, fmt: str, text_col: str | None, label_col: str | None) -> tuple[str | None, str | None]:
    """(text column, label column): the given names validated, the missing ones inferred."""
    columns = [str(c) for c in head.columns]
    if label_col is not None:
        label_col = require_column("label", label_col, columns)
    if text_col is not None:
        text_col = require_column("text", text_col, columns)
    elif fmt == "text":
        text_col = "text"
    else:
        text_col = infer_text_column(head.drop(columns=[label_col]) if label_col is not None else head)
    if label_col is not None:
        if label_col == text_col:
            raise ValidationError(f"the label column {label_col!r} cannot also be the text column")
    else:
        label_col = infer_label_column(head, text_col)
    return text_col, label_col
