"""Parsing and formatting of quantities: '70B' parameters, '1.4T' tokens, '3.8e25' FLOPs, bytes."""

from __future__ import annotations

import math
import re

from engine.errors import ValidationError

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_THOUSANDS = re.compile(r"^\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:e[+-]?\d+)?\s*[kmbgtp]?\s*$", re.IGNORECASE)
_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgtp]?)\s*$", re.IGNORECASE)


def parse_quantity(text: object, name: str = "value") -> float:
    """Parse '2e12', '2T', '70b', '1.5M', '1_000' into a float. Suffixes: K M B/G T P (powers of 1000)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        try:
            value = float(text)
        except OverflowError:  # an int beyond float range, e.g. 10**400
            raise ValidationError(f"{name} must be finite, got a number too large for a float") from None
    else:
        s = str(text).replace("_", "")
        if "," in s:  # thousands separators only: '1,5' (a decimal comma) would silently read as 15
            if not _THOUSANDS.match(s):
                raise ValidationError(f"{name}: commas are only thousands separators (1,000,000); got {str(text)!r}")
            s = s.replace(",", "")
        m = _QUANTITY.match(s)
        if not m:
            raise ValidationError(f"{name} must be a number like 2e12 or 2T, got {str(text)!r}")
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be finite, got {text!r}")
    return value


def format_count(value: float, digits: int = 3) -> str:
    """1.23B-style rendering of a count (parameters, tokens, FLOPs use scientific notation instead)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{unit}"
    return f"{value:.{digits}g}"


def format_bytes(value: float, *, decimal: bool = False) -> str:
    """Binary units (1 GiB = 2**30 bytes), the units GPU memory is built and sized in: "80.00 GiB".
    ``decimal=True``: SI units for file sizes, the units ``--max-mb`` and Streamlit's upload limit are
    given in: "16.8 MB", "10 kB", "512 bytes" (3 significant digits below 10 MB)."""
    if decimal:
        if value >= 10e6:
            return f"{value / 1e6:,.1f} MB"
        if value >= 1e6:
            return f"{value / 1e6:.3g} MB"
        if value >= 1e3:
            return f"{value / 1e3:.3g} kB"
        return f"{int(value)} bytes"
    for unit, scale in (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f} B"


def format_bytes_short(value: float) -> str:
    """Binary units with three significant figures ("713 MiB", "1.21 GiB", "45.2 KiB"): for metric tiles,
    where "713.36 MiB" does not fit."""
    for unit, scale in (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if abs(value) >= scale:
            scaled = value / scale
            digits = 0 if abs(scaled) >= 99.95 else 1 if abs(scaled) >= 9.995 else 2
            return f"{scaled:.{digits}f} {unit}"
    return f"{value:.0f} B"


def format_duration_hours(hours: float) -> str:
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{hours * 60:.1f} min"


def format_sci(value: float, digits: int = 3) -> str:
    """Compact scientific notation for FLOPs: 4.77e23 (no '+', no leading zero in the exponent)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_wall_time(seconds: float) -> str:
    """A measured wall time in words: "about 74 s" under a minute and a half, else "about 4 min"."""
    minutes = seconds / 60
    return f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s"
