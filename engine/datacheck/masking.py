"""Find and mask personal data in a string: the primitives under the ``pii`` check, example display
(``values.show``, ``text_utils.example_text``) and the safe fix. This module imports nothing else of
``engine.datacheck``, so every module above it can mask without an import cycle.

Kinds found in free text (precision over recall where a false alarm would be common, recall first for
phone numbers):

* email: a local part, ``@``, a dotted domain.
* card: 13–19 digits, optionally grouped by single spaces/dashes, first digit 2–6 (ISO/IEC 7812-1
  major industry identifiers of the card networks) and a passing Luhn checksum (ISO/IEC 7812-1
  Annex B). ISBN-13 (978/979…) and most order numbers fail the first-digit or Luhn test.
* iban: country code, 2 check digits and up to 30 letters/digits (grouped by spaces or not), valid by
  ISO 13616's mod-97 check (``stdnum.iban``).
* ssn: a US Social Security number written ``AAA-GG-SSSS`` that ``stdnum.us.ssn`` accepts (no area
  000, 666 or 9xx, no group 00 or serial 0000, not a published advertising number).
* phone: a phone-shaped digit run, dialable or not (placeholders, test data and foreign numbers are
  personal data to a reviewer too): 10 digits in the North American 3-3-4 layout with separators
  (``(082) 315-4439``, ``415.555.2671``, ``1-800-555-0199``), with or without a country code; or
  what libphonenumber's ``PhoneNumberMatcher`` finds at ``Leniency.POSSIBLE`` (Google's
  libphonenumber, the ``phonenumbers`` port, offline metadata) with at least 10 digits (8 after a
  ``+``) and a layout (separators, parentheses or ``+``): bare digit runs are order ids, not phones.
  Dates, times, prices, ISBNs and version strings have too few digits or the wrong layout.
* IPv4: four octets 0–255, not part of a longer dotted number; IPv6: validated by ``ipaddress``,
  with at least 3 non-empty groups (so C++ ``a::b`` and ``fe80::1`` are not flagged).

Speed: :data:`PREFILTER_RE`, run by pyarrow's RE2 over a whole column at once by the check, selects
the few cells that can hold PII; only those run the validating Python patterns and libphonenumber.

Column-level kinds (person names, street addresses, dates of birth) are decided by the ``pii`` check
from a column's name and values; :func:`mask_value` masks one of their values.
"""

from __future__ import annotations

import ipaddress
import re

KINDS = ("email", "card", "iban", "ssn", "phone", "ipv4", "ipv6")

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?![\w-])")
_CARD = re.compile(r"(?<![\w-])\d{1,19}(?:[ -]\d{1,19})*(?![\w])")
# 10 digits in the North American 3-3-4 layout, any area code (recall before dialability), with an
# optional country code; not inside a longer dashed/dotted token (order ids, versions)
_PHONE_NANP = re.compile(
    r"(?<![\w+.\-/])(?:(?:\+\d{1,3}|1)[ .-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[./]\d)"
)
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}(?![\w])")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
# A cell can only hold PII if one of these shapes occurs (an '@'; '+' and a digit; 13 digits with
# light separators; a NANP 3-3-4 group; a dotted quad; two colons around hex). Dates, prices and years
# match none, so most cells are skipped after one scan, done by pyarrow's RE2 over a whole column.
PREFILTER_RE = (r"@|\+\d|\d(?:[ -]?\d){12}|\d{3}\)?[ .-]{1,2}\d{3}[ .-]\d{4}|\d\.\d{1,3}\.\d{1,3}\.\d"
                r"|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:|\d{3}-\d{2}-\d{4}|[A-Z]{2}\d{2} ?[A-Z0-9]{4}")
_PREFILTER_RE = PREFILTER_RE
PREFILTER = re.compile(PREFILTER_RE)
_PREFILTER = PREFILTER
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
    """Phone spans: the 3-3-4 layout (any area code) and ``+`` international numbers by pattern; where
    neither finds one but a phone layout is there, libphonenumber's POSSIBLE matches that have
    enough digits (see the module docstring). The patterns come first because the matcher costs
    ~0.3 ms a call: a column of a million phone numbers must not call it a million times."""
    spans = [m.span() for m in _PHONE_NANP.finditer(text)]
    if "+" in text:
        for m in _PHONE_INTL.finditer(text):
            if 8 <= len(_DIGIT.findall(m.group())) <= 15 and all(m.end() <= s or m.start() >= e for s, e in spans):
                spans.append(m.span())
    if not spans and _PHONE_LAYOUT.search(text):
        spans = _libphonenumber(text)
    return spans


def _libphonenumber(text: str) -> list[tuple[int, int]]:
    import phonenumbers

    out = []
    try:
        matches = list(phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE))
    except Exception:  # noqa: BLE001 - the matcher must never break a report
        return out
    for m in matches:
        raw = m.raw_string
        digits = len(_DIGIT.findall(raw))
        plus = raw.startswith("+")
        if digits < (8 if plus else 10) or digits > 15:
            continue
        if not plus and not re.search(r"[ .()-]", raw):  # a bare digit run: an order id, not a phone
            continue
        if _DATE_LIKE.fullmatch(raw):
            continue
        before, after = text[m.start - 1: m.start] if m.start else "", text[m.end: m.end + 1]
        if (before and (before.isalnum() or before in "-./_")) or (after and (after.isalnum() or after in "-_")):
            continue  # part of a longer token: ORD-123-456-7890, a version, a path
        out.append((m.start, m.end))
    return out


# digit groups with separators, or "+" and a digit: what a written phone number looks like (a bare run
# of 13+ digits, an order or tracking number, never reaches libphonenumber)
_PHONE_LAYOUT = re.compile(r"\+\d|\d{2,5}\)?[ .-]\(?\d{2,5}\)?[ .-]\d{2,5}")
_DATE_LIKE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}(?:[ T]\d{1,2}(?::\d{2}){1,2})?")


def _ssns(text: str) -> list[tuple[int, int]]:
    from stdnum.us import ssn

    return [m.span() for m in _SSN.finditer(text) if ssn.is_valid(m.group())]


def _ibans(text: str) -> list[tuple[int, int]]:
    from stdnum import iban

    return [m.span() for m in _IBAN.finditer(text) if iban.is_valid(m.group())]


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


_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")


def _find_pii_short(text: str) -> list[tuple[str, int, int]]:
    if not _PREFILTER.search(text):
        return []
    found: list[tuple[str, int, int]] = []
    for kind, spans in (
        ("email", [m.span() for m in _EMAIL.finditer(text)] if "@" in text else []),
        ("card", _cards(text)),
        ("iban", _ibans(text) if _IBAN_HINT.search(text) else []),
        ("ssn", _ssns(text) if "-" in text else []),
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
    if kind == "iban":  # the country code and the last 4 characters stay (a reference, not the account)
        return span[:2] + _keep_last(span[2:], 4)
    keep = 4 if kind in ("card", "ssn") else 2  # cards/SSNs keep the last 4 digits (PCI DSS 3.4 display rule)
    return _keep_last(span, keep, str.isdigit)


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




COLUMN_KINDS = ("name", "address", "date_of_birth", "ssn", "iban")


def mask_value(kind: str, value: str) -> str:
    """One value of a personal-data column masked by its kind: a name keeps its initials
    (``Cesar A. Aguilar`` -> ``C**** A. A******``), an address its street type and nothing that
    locates it (``2009 W. 6th St.`` -> ``**** *. *** St.``), a date of birth its year only, an SSN or
    IBAN its last 4 characters. Free-text PII inside the value is masked too."""
    if not isinstance(value, str) or not value.strip():
        return value
    if kind == "name":
        return re.sub(r"(?<=\w)\w", "*", value)
    if kind == "address":
        words = value.split(" ")
        last = len(words) - 1
        return " ".join(w if i == last and w.rstrip(".,").isalpha() and i > 0 else re.sub(r"\w", "*", w)
                        for i, w in enumerate(words))
    if kind == "date_of_birth":
        m = re.search(r"(?<!\d)(?:1[89]|20)\d\d(?!\d)", value)
        masked = re.sub(r"\d", "*", value)
        return masked[: m.start()] + m.group() + masked[m.end():] if m else masked
    if kind in ("ssn", "iban"):
        return _keep_last(value, 4)
    return mask_text(value)


def _keep_last(value: str, keep: int, counts=str.isalnum) -> str:
    """The characters ``counts`` picks (letters and digits by default) starred but the last ``keep`` of
    them; everything else (separators) stays."""
    n = sum(counts(ch) for ch in value)
    out, seen = [], 0
    for ch in value:
        if counts(ch):
            seen += 1
            out.append(ch if seen > n - keep else "*")
        else:
            out.append(ch)
    return "".join(out)
