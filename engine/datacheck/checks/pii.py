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

import ipaddress
import re
from typing import Any

import numpy as np
import pandas as pd

from engine.datacheck import values as _values
from engine.datacheck.base import Check, Context, Finding, MAX_EXAMPLES, MAX_ROWS
from engine.datacheck.text_utils import plural, truncate

KINDS = ("email", "card", "phone", "ipv4", "ipv6")

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\w-])\d{1,19}(?:[ -]\d{1,19})*(?![\w])")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?![\w])")
_PHONE_NANP = re.compile(
    r"(?<![\w+.-])(?:1[ .-]?)?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-]|\.\d)"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
# A cell can only hold PII if one of these shapes occurs (an '@'; '+' and a digit; 13 digits with
# light separators; a NANP 3-3-4 group; a dotted quad; two colons around hex). Dates, prices and years
# match none, so most cells are skipped after one scan, done by pyarrow's RE2 over a whole column.
_PREFILTER_RE = (r"@|\+\d|\d(?:[ -]?\d){12}|\d{3}\)?[ .-]{1,2}\d{3}[ .-]\d{4}|\d\.\d{1,3}\.\d{1,3}\.\d"
                 r"|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:")
_PREFILTER = re.compile(_PREFILTER_RE)
_DIGIT = re.compile(r"\d")


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B (Luhn) checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def _cards(text: str) -> list[tuple[int, int]]:
    """Card spans: a run of digit groups is a card if its digits pass; otherwise the longest
    group-aligned sub-run that passes (so ``"5 4111 1111 1111 1111"`` still finds the card)."""
    spans = []
    for m in _CARD.finditer(text):
        run = m.group()
        digits = run.replace(" ", "").replace("-", "")
        if len(digits) < 13:
            continue
        if _card_number(digits):
            spans.append(m.span())
            continue
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", run)]
        if len(groups) < 2:
            continue
        best = None
        for a in range(len(groups)):
            digits_ab = ""
            for b in range(a, len(groups)):
                digits_ab += run[groups[b][0] : groups[b][1]]
                if len(digits_ab) > 19:
                    break
                if _card_number(digits_ab) and (best is None or groups[b][1] - groups[a][0] > best[1] - best[0]):
                    best = (groups[a][0], groups[b][1])
        if best:
            spans.append((m.start() + best[0], m.start() + best[1]))
    return spans


def _phones(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _PHONE_INTL.finditer(text):
        n = len(_DIGIT.findall(m.group()))
        if 8 <= n <= 15:
            spans.append(m.span())
    spans.extend(m.span() for m in _PHONE_NANP.finditer(text))
    return spans


def _ipv6(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _IPV6.finditer(text):
        s = m.group()
        if sum(1 for g in s.split(":") if g) < 3:  # "a::b", "fe80::1": code or local, not personal
            continue
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            continue
        spans.append(m.span())
    return spans


LONG_TEXT = 1 << 16   # longer texts are scanned in blocks of this many characters
BLOCK_PAD = 512       # ... each seen with this much context either side (PII spans are shorter)


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every PII span in ``text``, sorted, non-overlapping (an email beats a
    card beats an IPv6 address beats an IPv4 address beats a phone number where they overlap)."""
    if not isinstance(text, str):
        return []
    if len(text) > LONG_TEXT:
        return _find_pii_long(text)
    return _find_pii_short(text)


def _find_pii_long(text: str) -> list[tuple[str, int, int]]:
    """:func:`find_pii` for a long text: cut into 64k-character blocks (with 512 characters of context
    either side), the prefilter run over all blocks at once by RE2, the Python patterns only in the
    blocks it selects. A 20 MB document with one email costs ~0.1 s instead of ~6 s. A span belongs to
    the block its start falls in, so overlapping context never reports it twice."""
    starts = range(0, len(text), LONG_TEXT)
    blocks = [text[max(0, s - BLOCK_PAD): s + LONG_TEXT + BLOCK_PAD] for s in starts]
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(blocks, type=pa.large_string())
        hits = pc.fill_null(pc.match_substring_regex(arr, _PREFILTER_RE), False).to_numpy(zero_copy_only=False)
    except Exception:  # noqa: BLE001 - unpaired surrogates and the like: Python's prefilter
        hits = [bool(_PREFILTER.search(b)) for b in blocks]
    found: list[tuple[str, int, int]] = []
    for s, block, hit in zip(starts, blocks, hits):
        if not hit:
            continue
        off = max(0, s - BLOCK_PAD)
        for kind, a, b in _find_pii_short(block):
            if s <= off + a < s + LONG_TEXT and (not found or off + a >= found[-1][2]):
                found.append((kind, off + a, off + b))
    return found


def _find_pii_short(text: str) -> list[tuple[str, int, int]]:
    if not _PREFILTER.search(text):
        return []
    found: list[tuple[str, int, int]] = []
    for kind, spans in (
        ("email", [m.span() for m in _EMAIL.finditer(text)] if "@" in text else []),
        ("card", _cards(text)),
        ("ipv6", _ipv6(text) if ":" in text else []),
        ("ipv4", [m.span() for m in _IPV4.finditer(text)]),
        ("phone", _phones(text)),
    ):
        for a, b in spans:
            if all(b <= s or a >= e for _, s, e in found):
                found.append((kind, a, b))
    return sorted(found, key=lambda f: f[1])


def _mask_span(kind: str, span: str) -> str:
    if kind == "email":
        local, _, domain = span.rpartition("@")
        head, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{head[:1]}***.{tld}"
    if kind == "ipv4":
        return "***.***.***." + span.rsplit(".", 1)[1]
    if kind == "ipv6":
        head, _, last = span.rpartition(":")
        return re.sub(r"[0-9A-Fa-f.]", "*", head) + ":" + last
    keep = 4 if kind == "card" else 2  # cards keep the last 4 digits (PCI DSS 3.4 display rule)
    n = sum(ch.isdigit() for ch in span)
    out, seen = [], 0
    for ch in span:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > n - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_text(text: str) -> str:
    """``text`` with every PII span masked (kind-aware, keeps the last digits for reference). Repeats
    until nothing is found, so masking can never expose a new match; non-strings become ``""``."""
    if not isinstance(text, str):
        return ""
    for _ in range(8):
        spans = find_pii(text)
        if not spans:
            return text
        parts, pos = [], 0
        for kind, a, b in spans:
            parts += [text[pos:a], _mask_span(kind, text[a:b])]
            pos = b
        parts.append(text[pos:])
        masked = "".join(parts)
        if masked == text:  # cannot happen with the masks above; never loop on it
            break
        text = masked
    for _, a, b in find_pii(text)[::-1]:  # last resort: blank what is still left
        text = text[:a] + re.sub(r"[\w@]", "*", text[a:b]) + text[b:]
    return text


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
            hit = pc.fill_null(pc.match_substring_regex(enc.dictionary, _PREFILTER_RE), False)
            hit = hit.to_numpy(zero_copy_only=False)
            if not hit.any():
                return []
            return np.flatnonzero(hit[enc.indices]).tolist()
        if isinstance(series.array, pd.arrays.ArrowStringArray):
            arr = _values.to_arrow_str(series)
        else:
            arr = pa.array(series, type=pa.large_string(), from_pandas=True)
        mask = pc.fill_null(pc.match_substring_regex(arr, _PREFILTER_RE), False)
        return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).tolist()
    except Exception:  # noqa: BLE001 - any conversion problem: the exact same test in Python
        search = _PREFILTER.search
        return [i for i, v in enumerate(series.tolist()) if isinstance(v, str) and search(v)]


def _window(text: str, spans: list[tuple[str, int, int]], width: int = 200) -> str:
    """The masked text around the first match, at most ``width`` characters."""
    start = max(0, spans[0][1] - 60)
    prefix = "…" if start else ""
    return prefix + truncate(mask_text(text[start:]), width - len(prefix))
