"""Quantities: parsing '70B' / '1.4T' / '3.8e25' and formatting counts, bytes and durations."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ValidationError
from engine.units import format_bytes, format_count, format_duration_hours, parse_quantity

SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_THOUSANDS = re.compile(r"^\s*[+-]?\d{1,3}(,\d{3})+(\.\d*)?(e[+-]?\d+)?\s*[kmbgtp]?\s*$", re.I)
_VALID = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?\s*[kmbgtp]?\s*$", re.IGNORECASE)


@pytest.mark.parametrize("text, expected", [
    ("70B", 70e9), ("70b", 70e9), ("1.4T", 1.4e12), ("1.4 t", 1.4e12), ("3.8e25", 3.8e25), ("2e12", 2e12),
    ("1.5M", 1.5e6), ("1_000", 1000.0), ("1,000,000", 1e6), ("7k", 7e3), ("7K", 7e3), ("175G", 175e9),
    ("2P", 2e15), (" 42 ", 42.0), (".5", 0.5), ("5.", 5.0), ("+3", 3.0), ("-3", -3.0), ("1E3", 1000.0),
    ("5.76e23", 5.76e23), ("0", 0.0), (12, 12.0), (3.5, 3.5),
])
def test_parse_examples(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("junk", [
    "", " ", "abc", "70 bn", "1.4TT", "e5", "1e", "1e+", "--5", "5-", "0x10", "1/2", "nan", "inf", "-inf",
    "1e400", "9" * 400, "70B tokens", "1.2.3", "½", None, [1], {}, True, False, object(), float("nan"),
    float("inf"), 10**400,
], ids=lambda v: repr(v)[:20])
def test_parse_rejects_junk(junk):
    with pytest.raises(ValidationError) as info:
        parse_quantity(junk, "tokens")
    message = str(info.value)
    assert "tokens" in message and "\n" not in message


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_repr_round_trips_exactly(x):
    assert parse_quantity(repr(x)) == x
    assert parse_quantity(x) == x


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["e", "g", "f"]))
def test_formatted_numbers_round_trip(x, spec):
    text = format(x, f".17{spec}")
    if spec == "f" and abs(x) >= 1e21:
        return  # fixed-point output of huge numbers is exact but long; covered by 'e' and 'g'
    assert parse_quantity(text) == pytest.approx(x, rel=1e-15, abs=1e-300 if spec != "f" else 1e-17)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(sorted(SUFFIXES)), st.booleans(), st.booleans())
def test_suffixes(n, suffix, upper, space):
    s = suffix.upper() if upper else suffix
    assert parse_quantity(f"{n}{' ' if space else ''}{s}") == n * SUFFIXES[suffix]


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False), st.sampled_from(sorted(SUFFIXES)))
def test_decimal_suffixes(d, suffix):
    assert parse_quantity(f"{d}{suffix}") == pytest.approx(float(d) * SUFFIXES[suffix], rel=1e-12)


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=-1e30, max_value=1e30, allow_nan=False))
def test_format_count_round_trips_to_three_digits(x):
    assert parse_quantity(format_count(x)) == pytest.approx(x, rel=5e-3, abs=1e-300)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789.eE+-_, kKmMbBgGtTpP", max_size=12)))
def test_any_text_parses_or_raises_validation_error(text):
    no_underscores = text.replace("_", "")
    # Commas are thousands separators only ('1,000'); '1,5' is a decimal comma and must be refused.
    commas_ok = "," not in no_underscores or _THOUSANDS.match(no_underscores)
    cleaned = no_underscores.replace(",", "")
    try:
        value = parse_quantity(text, "n")
    except ValidationError as exc:
        assert "\n" not in str(exc)
        assert not commas_ok or not _VALID.match(cleaned) or not math.isfinite(
            float(re.sub(r"[kmbgtp\s]", "", cleaned, flags=re.I)))
        return
    assert math.isfinite(value)
    assert commas_ok and _VALID.match(cleaned)


@pytest.mark.parametrize("text", ["1,5", "0,", "1,00", "12,3456"])
def test_decimal_commas_are_refused(text):
    with pytest.raises(ValidationError, match="thousands"):
        parse_quantity(text, "tokens")


def test_thousands_separators():
    assert parse_quantity("1,000,000") == 1e6
    assert parse_quantity("184,320") == 184320


def test_format_count():
    assert format_count(70e9) == "70B"
    assert format_count(1.4e12) == "1.4T"
    assert format_count(6_738_415_616) == "6.74B"
    assert format_count(124_439_808) == "124M"
    assert format_count(1500) == "1.5K"
    assert format_count(12) == "12"
    assert format_count(-2e9) == "-2B"


def test_format_bytes():
    """Binary units, the units GPU memory is built and sized in: 1 GiB = 2**30 bytes."""
    assert format_bytes(80 * 2**30) == "80.00 GiB"  # an "80GB" H100 holds 80 GiB
    assert format_bytes(80e9) == "74.51 GiB"  # 80e9 / 2**30 = 74.5058...
    assert format_bytes(524_288) == "512.00 KiB"  # 2**19
    assert format_bytes(1.5 * 2**40) == "1.50 TiB"
    assert format_bytes(3.5 * 2**20) == "3.50 MiB"
    assert format_bytes(512) == "512 B"
    # each unit starts at exactly its power of two
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.00 KiB"
    assert format_bytes(2**20 - 1) == "1024.00 KiB"  # 1023.999 KiB rounds up in the last digit
    assert format_bytes(2**20) == "1.00 MiB"
    assert format_bytes(2**30) == "1.00 GiB"
    assert format_bytes(2**40) == "1.00 TiB"
    assert format_bytes(-3 * 2**30) == "-3.00 GiB"
    assert format_bytes(0) == "0 B"


def test_format_bytes_decimal_for_file_sizes():
    """SI units for file sizes, the units --max-mb and the upload limit are given in."""
    assert format_bytes(200e6, decimal=True) == "200.0 MB" and format_bytes(16 << 20, decimal=True) == "16.8 MB"
    assert format_bytes(1_234_567, decimal=True) == "1.23 MB" and format_bytes(10_000, decimal=True) == "10 kB"
    assert format_bytes(999, decimal=True) == "999 bytes" and format_bytes(1000, decimal=True) == "1 kB"


def test_format_duration():
    assert format_duration_hours(0.5) == "30.0 min"
    assert format_duration_hours(1.5) == "1.5 h"
    assert format_duration_hours(47.9) == "47.9 h"
    assert format_duration_hours(34 * 24) == "34.0 days"


def test_format_bytes_short_fits_a_metric_tile():
    from engine.units import format_bytes_short

    assert format_bytes_short(748_010_000) == "713 MiB"  # was "713.36 MiB", cut off on the lab page
    assert format_bytes_short(1.3e9) == "1.21 GiB"
    assert format_bytes_short(12.5 * 2**20) == "12.5 MiB"
    assert format_bytes_short(512) == "512 B"
