"""``pii``: personal data in free text — emails, phone numbers, payment card numbers, IP addresses.

Scope: the text column *and* every other string column of the file (``needs = ()``), because an
``email`` column in a CSV is as much PII as an address inside a review. ``count`` = rows holding at
least one match in any scanned column; ``details`` break it down per kind (rows and matches) and per
column. Examples show the matched spans masked (``j***@e***.com``, ``**** **** **** 1111``).

Precision over recall, so a dataset of dates, prices, order numbers and ISBNs raises no alarm:

* phone: either international (``+`` then 8–15 digits, E.164) or NANP with separators and valid
  area/exchange codes (first digit 2–9); bare digit runs, dates and years never match.
* card: 13–19 digits, optionally grouped by single spaces/dashes, first digit 2–6 (ISO/IEC 7812-1
  major industry identifiers of the card networks) and a passing Luhn checksum (ISO/IEC 7812-1
  Annex B). ISBN-13 (978/979…) and most order numbers fail the first-digit or Luhn test.
* IPv4: four octets 0–255, not part of a longer dotted number; IPv6: validated by ``ipaddress``,
  with at least 3 non-empty groups (so C++ ``a::b`` and ``fe80::1`` are not flagged).

Speed: a prefilter regex, run by pyarrow's RE2 over a whole column at once, selects the few cells
that can hold PII; only those run the validating Python patterns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from engine.datacheck import values as _values
from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.masking import (  # noqa: F401 - find_pii, mask_text and luhn_ok are this check's API too
    KINDS, LONG_TEXT, PREFILTER, PREFILTER_RE, _find_pii_short, find_pii, luhn_ok, mask_text,
)
from engine.datacheck.text_utils import plural, truncate

def string_columns(chunk: pd.DataFrame, text_col: str | None) -> list[str]:
    """The text column first, then every other column of string/object dtype."""
    cols = [text_col] if text_col in chunk.columns else []
    for c in chunk.columns:
        if c != text_col and (pd.api.types.is_string_dtype(chunk[c]) or chunk[c].dtype == object):
            cols.append(c)
    return cols


class PII(Check):
    """Rows with emails, phone numbers, Luhn-valid card numbers or IP addresses in any string column."""

    id = "pii"
    title = "Personal data (emails, phones, card numbers, IP addresses)"
    needs = ()

    def start(self, ctx: Context) -> None:
        self.rows: set[int] = set()
        self.kind_rows = {k: 0 for k in KINDS}
        self.kind_matches = {k: 0 for k in KINDS}
        self.col_rows: dict[str, int] = {}
        self.examples: list[dict[str, Any]] = []

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        index = chunk.index
        for col in string_columns(chunk, ctx.text_col):
            series = chunk[col]
            hits = _candidates(series)
            if not hits:
                continue
            values = dict(zip(hits, series.iloc[hits].tolist()))
            col_hits = 0
            for i in hits:
                spans = find_pii(values[i])
                if not spans:
                    continue
                row = int(index[i])
                col_hits += 1
                self.rows.add(row)
                kinds = sorted({k for k, _, _ in spans})
                for k in kinds:
                    self.kind_rows[k] += 1
                for k, _, _ in spans:
                    self.kind_matches[k] += 1
                if len(self.examples) < MAX_EXAMPLES:
                    self.examples.append({"row": row, "column": col, "kinds": kinds,
                                          "text": _window(values[i], spans)})
            if col_hits:
                self.col_rows[col] = self.col_rows.get(col, 0) + col_hits

    def finish(self, ctx: Context) -> list[Finding]:
        n = len(self.rows)
        if not n:
            return []
        share = n / max(ctx.rows, n)
        severity = "critical" if self.kind_rows["card"] else "high" if share >= 0.01 else "medium"
        kinds = [k for k in KINDS if self.kind_rows[k]]
        cols = sorted(self.col_rows, key=lambda c: -self.col_rows[c])
        return [Finding(
            id=self.id, severity=severity, count=n,
            title=f"{plural(n, 'row')} {'contains' if n == 1 else 'contain'} personal data ({', '.join(kinds)})",
            fix="Mask the emails, phone numbers, card numbers and IP addresses before training "
                "(safe fix: mask_pii), or drop the rows if the data must not hold them at all",
            column=cols[0] if len(cols) == 1 else None,
            rows=sorted(self.rows)[:MAX_ROWS], rows_total=n, examples=self.examples,
            details={"rows_by_kind": {k: self.kind_rows[k] for k in kinds},
                     "matches_by_kind": {k: self.kind_matches[k] for k in kinds},
                     "rows_by_column": {c: self.col_rows[c] for c in cols}},
            safe_fix="mask_pii",
        )]


def _candidates(series: pd.Series) -> list[int]:
    """Positions of the cells that pass the prefilter: pyarrow (RE2, vectorized; once per distinct
    value when the column repeats values) when the column converts to Arrow strings, else a Python
    loop (mixed types, unpaired surrogates)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        enc = _values.encoded(series)
        if enc is not None:
            hit = pc.fill_null(pc.match_substring_regex(enc.dictionary, PREFILTER_RE), False)
            hit = hit.to_numpy(zero_copy_only=False)
            if not hit.any():
                return []
            return np.flatnonzero(hit[enc.indices]).tolist()
        if isinstance(series.array, pd.arrays.ArrowStringArray):
            arr = _values.to_arrow_str(series)
        else:
            arr = pa.array(series, type=pa.large_string(), from_pandas=True)
        mask = pc.fill_null(pc.match_substring_regex(arr, PREFILTER_RE), False)
        return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()
    except Exception:  # noqa: BLE001 - any conversion problem: the exact same test in Python
        search = PREFILTER.search
        return [i for i, v in enumerate(series.tolist()) if isinstance(v, str) and search(v)]


def _window(text: str, spans: list[tuple[str, int, int]], width: int = 200) -> str:
    """The masked text around the first match, at most ``width`` characters."""
    start = max(0, spans[0][1] - 60)
    prefix = "…" if start else ""
    return prefix + truncate(mask_text(text[start:]), width - len(prefix))
