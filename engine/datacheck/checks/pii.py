"""``pii``: personal data — emails, phone numbers, payment cards, IBANs, US SSNs and IP addresses in
any text, and person names, street addresses, dates of birth, SSNs and IBANs by column.

Scope: the text column *and* every other string column of the file (``needs = ()``), because an
``email`` column in a CSV is as much PII as an address inside a review. ``count`` = rows holding at
least one match in any scanned column; ``details`` break it down per kind (rows and matches) and per
column. Examples show the matched spans masked (``j***@e***.com``, ``**** **** **** 1111``).

Value patterns (in every string cell) are :mod:`engine.datacheck.masking`'s (see its docstring for
the precision rules: no dates, prices, order numbers, ISBNs or versions). Column meaning (decided once
per column, on the first chunk that has values in it, from up to :data:`SAMPLE` values):

* ``name``: a column named like a person's name (``first_name``, ``last_name``, ``surname``,
  ``full_name``, ``customer_name``, ...; a plain ``name`` only when the table has other personal
  columns: another name part, ``age``, ``gender``, ``dob``, ``email``, ``phone``, an address) whose
  values are shaped like names (at least 80%: one to four capitalised words of letters, initials
  allowed, no digits). A ``name`` column of products, or a ``city`` column, is not personal.
* ``address``: a column named like an address (``address``, ``street``, ``address_line_1``,
  ``home_address``, ...) whose values ``usaddress`` (Schwartz et al., DataMade; a CRF street-address
  parser, offline) tags as a street address or an intersection (at least 60%); or, whatever its name,
  a column whose values are mostly (80%) full street addresses (house number, street name, street type).
* ``date_of_birth``: a column named ``dob``, ``date_of_birth``, ``birth_date``, ``birthday``, ...
  whose values are dates (80%).
* ``ssn`` / ``iban``: a column named so whose values pass ``stdnum``'s check (80%), written with or
  without separators.

Every present value of such a column counts as a match. The safe fix (``mask_pii``) masks those
columns by kind (:func:`engine.datacheck.masking.mask_value`, listed in ``details["columns_by_kind"]``)
and free-text PII everywhere else.

Speed: a prefilter regex, run by pyarrow's RE2 over a whole column at once, selects the few cells
that can hold PII; only those run the validating Python patterns.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from engine.datacheck import values as _values
from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.masking import (
    COLUMN_KINDS, KINDS, PREFILTER, PREFILTER_RE, find_pii, mask_text, mask_value,
)
from engine.datacheck.checks._util import capped
from engine.datacheck.text_utils import plural, truncate

ALL_KINDS = KINDS + tuple(k for k in COLUMN_KINDS if k not in KINDS)
SAMPLE = 500
NAME_COLUMNS = {"first_name", "firstname", "fname", "given_name", "forename", "last_name", "lastname",
                "lname", "surname", "family_name", "full_name", "fullname", "middle_name", "maiden_name",
                "person_name", "patient_name", "customer_name", "client_name", "employee_name", "contact_name",
                "passenger_name", "student_name", "member_name", "owner_name", "victim_name", "applicant_name"}
NAME_SUFFIXES = ("_first_name", "_last_name", "_full_name", "_surname", "_given_name")
ADDRESS_COLUMNS = {"address", "addr", "street", "street_address", "address_line", "address_line_1", "address_line1",
                   "address1", "address_1", "address_line_2", "address2", "home_address", "mailing_address",
                   "billing_address", "shipping_address", "postal_address", "residence", "residential_address"}
ADDRESS_SUFFIXES = ("_address", "_street", "_addr")
DOB_COLUMNS = {"dob", "date_of_birth", "birth_date", "birthdate", "birthday", "birth_day", "born", "birth"}
DOB_SUFFIXES = ("_dob", "_birth_date", "_date_of_birth", "_birthday")
SSN_COLUMNS = {"ssn", "social_security_number", "social_security", "ss_number", "social_security_no", "us_ssn"}
IBAN_COLUMNS = {"iban", "iban_number", "bank_iban", "account_iban"}
PERSON_CONTEXT = {"age", "gender", "sex", "email", "e_mail", "phone", "phone_number", "mobile", "race", "ethnicity"}
_PERSON_NAME = re.compile(r"^[A-Z][A-Za-z'\u2019-]*\.?(?:[ -][A-Z][A-Za-z'\u2019-]*\.?){0,3}$")
_STREET_START = re.compile(r"^\s*\d+[A-Za-z]?\s+\S")


def _norm_name(col: str) -> str:
    out = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", str(col).strip())   # firstName -> first_Name
    return re.sub(r"[^0-9a-z]+", "_", out.lower()).strip("_")


def _named(col: str, names: set[str], suffixes: tuple[str, ...]) -> bool:
    n = _norm_name(col)
    return n in names or n.endswith(suffixes)


def _share(values: list[str], ok) -> float:
    return sum(1 for v in values if ok(v)) / len(values) if values else 0.0


def _street_address(value: str, intersections: bool) -> bool:
    import usaddress

    try:
        tags, kind = usaddress.tag(value)
    except Exception:  # noqa: BLE001 - usaddress.RepeatedLabelError and the like: not an address
        return False
    if kind == "Street Address":
        return "AddressNumber" in tags and "StreetName" in tags
    return intersections and kind == "Intersection"


def column_kind(col: str, series: pd.Series, columns: list[str]) -> str | None:
    """The personal-data kind of a whole column from its name and values (see the module docstring),
    or None."""
    miss = _values.missing_mask(series)
    present = series[~miss]
    if not len(present):
        return None
    if _named(col, DOB_COLUMNS, DOB_SUFFIXES):
        if not _values.is_textual(series):
            return "date_of_birth" if pd.api.types.is_datetime64_any_dtype(series.dtype) else None
        codes = _values.type_codes(series)[~miss]
        return "date_of_birth" if (codes == _values.TYPES.index("date")).mean() >= 0.8 else None
    if not _values.is_textual(series):
        return None
    sample = [str(v).strip() for v in present.iloc[:SAMPLE].tolist()]
    if _named(col, SSN_COLUMNS, ()):
        from stdnum.us import ssn

        return "ssn" if _share(sample, ssn.is_valid) >= 0.8 else None
    if _named(col, IBAN_COLUMNS, ("_iban",)):
        from stdnum import iban

        return "iban" if _share(sample, iban.is_valid) >= 0.8 else None
    personal = {_norm_name(c) for c in columns}
    if _named(col, NAME_COLUMNS, NAME_SUFFIXES) or (_norm_name(col) == "name" and (
            personal & (NAME_COLUMNS | PERSON_CONTEXT | ADDRESS_COLUMNS | DOB_COLUMNS))):
        return "name" if _share(sample, lambda v: bool(_PERSON_NAME.match(v))) >= 0.8 else None
    if _named(col, ADDRESS_COLUMNS, ADDRESS_SUFFIXES):
        return "address" if _share(sample, lambda v: _street_address(v, True)) >= 0.6 else None
    short = [v for v in sample[:100] if len(v) <= 80]
    if len(short) >= 5 and _share(short, lambda v: bool(_STREET_START.match(v))) >= 0.8:
        return "address" if _share(short, lambda v: _street_address(v, False)) >= 0.8 else None
    return None


def string_columns(chunk: pd.DataFrame, text_col: str | None) -> list[str]:
    """The text column first, then every other column of string/object dtype."""
    cols = [text_col] if text_col in chunk.columns else []
    for c in chunk.columns:
        if c != text_col and (pd.api.types.is_string_dtype(chunk[c]) or chunk[c].dtype == object):
            cols.append(c)
    return cols


class PII(Check):
    """Rows with emails, phones, cards, IBANs, SSNs or IP addresses in any string column, and columns
    of person names, street addresses or dates of birth."""

    id = "pii"
    title = "Personal data (emails, phones, cards, IBANs, SSNs, IPs; names, addresses, birth dates by column)"
    needs = ()

    def start(self, ctx: Context) -> None:
        self.rows: set[int] = set()
        self.kind_rows = {k: 0 for k in ALL_KINDS}
        self.kind_matches = {k: 0 for k in ALL_KINDS}
        self.col_rows: dict[str, int] = {}
        self.examples: list[dict[str, Any]] = []
        self.col_kind: dict[str, str | None] = {}

    def _column_pass(self, col: str, series: pd.Series, index, ctx: Context) -> bool:
        """Count a personal-data column's present values; True when ``col`` is one (then its cells
        need no pattern scan)."""
        if col not in self.col_kind:
            if not (~_values.missing_mask(series)).any():
                return False
            self.col_kind[col] = None if col == ctx.text_col or col == ctx.label_col else column_kind(col, series, ctx.columns)
        kind = self.col_kind[col]
        if kind is None:
            return False
        present = np.flatnonzero(~_values.missing_mask(series))
        rows = index[present]
        self.rows.update(int(r) for r in rows)
        self.kind_rows[kind] += len(present)
        self.kind_matches[kind] += len(present)
        if len(present):
            self.col_rows[col] = self.col_rows.get(col, 0) + len(present)
        for i in present[: max(0, min(2, MAX_EXAMPLES - len(self.examples)))]:
            self.examples.append({"row": int(index[i]), "column": col, "kinds": [kind],
                                  "text": mask_value(kind, str(series.iloc[i]))})
        return True

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        index = chunk.index
        for col in [c for c in chunk.columns if not _values.is_textual(chunk[c])]:
            self._column_pass(col, chunk[col], index, ctx)   # a datetime date-of-birth column
        for col in string_columns(chunk, ctx.text_col):
            if self._column_pass(col, chunk[col], index, ctx):
                continue
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

    def merge(self, other: "PII") -> None:
        """Fold in the state of the rows that follow ``other``'s partition (Dask's combine step: a
        pass over both in order would leave this state)."""
        self.rows |= other.rows
        for mine, theirs in ((self.kind_rows, other.kind_rows), (self.kind_matches, other.kind_matches),
                             (self.col_rows, other.col_rows)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        self.examples = capped(self.examples, other.examples, MAX_EXAMPLES)
        for col, kind in other.col_kind.items():
            self.col_kind.setdefault(col, kind)  # a column's kind is judged on its first rows

    def finish(self, ctx: Context) -> list[Finding]:
        n = len(self.rows)
        if not n:
            return []
        share = n / max(ctx.rows, n)
        severity = "critical" if self.kind_rows["card"] else "high" if share >= 0.01 else "medium"
        kinds = [k for k in ALL_KINDS if self.kind_rows[k]]
        cols = sorted(self.col_rows, key=lambda c: -self.col_rows[c])
        by_kind = {c: k for c, k in self.col_kind.items() if k is not None and c in self.col_rows}
        return [Finding(
            id=self.id, severity=severity, count=n,
            title=f"{plural(n, 'row')} {'contains' if n == 1 else 'contain'} personal data ({', '.join(kinds)})",
            fix=("Mask the personal data before training (safe fix: mask_pii"
                 + (f"; masks the {', '.join(sorted(set(by_kind.values())))} columns {', '.join(repr(c) for c in by_kind)}"
                    if by_kind else "") + "), or drop the rows or columns if the data must not hold them at all"),
            column=cols[0] if len(cols) == 1 else None,
            rows=sorted(self.rows)[:MAX_ROWS], rows_total=n, examples=self.examples,
            details={"rows_by_kind": {k: self.kind_rows[k] for k in kinds},
                     "matches_by_kind": {k: self.kind_matches[k] for k in kinds},
                     "rows_by_column": {c: self.col_rows[c] for c in cols},
                     "columns_by_kind": by_kind},
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
