"""Identifier columns: row keys such as ``review_id``, ``uuid`` or ``C5000``, which have no
distribution to be out of.

A column is an identifier when its name says so (``id``, ``uuid``, ``guid``, ``pk``, ``index``, or a
name ending in ``_id``, ``-id``, `` id``, ``Id``, ``_uuid``) or when its values do, judged on the
first rows of the file (at least :data:`MIN_VALUES` present values):

* integers, all distinct, that either increase down the file or fill a dense range (max − min + 1
  at most twice their count): a counter. A column of distinct but scattered integers (salaries,
  populations) stays a measurement, and so does one named like a time or a quantity (``year``,
  ``timestamp``, ``amount``...);
* strings (not numbers, dates or booleans) without spaces (at most 64 characters, each holding a digit, or a UUID/hex shape), at least
  :data:`DISTINCT_SHARE` distinct: codes like ``T100023`` or ``550e8400-e29b-...``.

The outliers, drift and constant-column checks leave identifiers out; duplicate rows and missing
values still count them (a repeated or missing key is a real problem).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from engine.datacheck import values

NAMES = ("id", "uuid", "guid", "pk", "index")
SUFFIXES = ("_id", "-id", " id", ".id", "_uuid", "_guid")
MIN_VALUES = 20
DISTINCT_SHARE = 0.95
# counters by value only when the name does not say "time" or "amount": a column of distinct years or
# timestamps in file order is a measurement whose drift matters
_MEASURE_NAME = re.compile(r"(?i)year|date|time|month|day|epoch|age|count|amount|price|size|qty|quantity|score")
_CODE = re.compile(r"^(?=.*\d)[\w.:/#-]{1,64}$|^[0-9a-fA-F-]{8,64}$")


def id_like_name(name: str) -> bool:
    """Whether a column name says "identifier" (``id``, ``user_id``, ``ticketId``, ``uuid``)."""
    n = str(name).strip()
    low = n.lower()
    return low in NAMES or low.endswith(SUFFIXES) or (n.endswith("Id") and len(n) > 2 and n[-3].islower())


def _id_values(s: pd.Series) -> bool:
    present = s[~values.missing_mask(s)]
    if len(present) < MIN_VALUES:
        return False
    codes = values.type_codes(s)[~values.missing_mask(s)]
    if (codes == values.TYPES.index("int")).all():
        x = values.numeric(s)[~values.missing_mask(s)]
        if len(np.unique(x)) != len(x):
            return False
        increasing = bool((np.diff(x) > 0).all())
        dense = (x.max() - x.min() + 1) <= 2 * len(x)
        return increasing or dense
    if not values.is_textual(s) or (codes != values.TYPES.index("string")).any():
        return False  # numbers with fractions, dates, booleans: measurements, not keys
    text = present.astype("str").str.strip()
    if not text.str.fullmatch(_CODE).all():
        return False
    return text.nunique() >= DISTINCT_SHARE * len(text)


def identifier_columns(head: pd.DataFrame, exclude: tuple[str | None, ...] = ()) -> list[str]:
    """The identifier columns of a file, judged by name and by its first rows (``head``)."""
    out = []
    for col in head.columns:
        if col in exclude:
            continue
        if id_like_name(col) or (not _MEASURE_NAME.search(str(col)) and _id_values(head[col])):
            out.append(str(col))
    return out


def is_identifier(col: str, ctx) -> bool:
    """Whether ``col`` is an identifier of the dataset in ``ctx`` (the runner's verdict, or the name
    alone when a check runs without the runner)."""
    known = getattr(ctx, "id_columns", None)
    if known is not None:
        return col in known
    return id_like_name(col)
