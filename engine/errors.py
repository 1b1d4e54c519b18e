"""The one validation error type of the engine.

Every bad input (unknown preset, negative count, NaN, absurd size) raises :class:`ValidationError`
with a one-line message naming the bad value and what is allowed. The CLI turns it into exit code 2
and the pages into ``st.error``; nothing else is allowed to escape the engine for bad input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class ValidationError(ValueError):
    """A bad input, with a message fit to show a user as one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class RunError(RuntimeError):
    """A job that started and then failed for a reason outside the input's validity: a diverged loss,
    out of memory, a killed worker. One line, like ValidationError; the CLI exits 1 with it and, under
    ``--json``, first prints ``result`` (what the job got done, e.g. the last checkpoint) when given."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(" ".join(str(message).split()))
        self.result = result


def _show(value: object) -> str:
    """The bad value as a message shows it: quoted if text, cut short if long (one line, any input)."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        text = f"a {type(value).__name__} too large to print"
    return text if len(text) <= 80 else text[:77] + "..."


def require_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    integer: bool = False,
) -> float:
    """Return ``value`` as a float (or int) if it is a finite number in range, else raise."""
    if isinstance(value, bool):  # True is an int to Python, but never a count or a rate
        raise ValidationError(f"{name} must be a number, got {value}")
    if not isinstance(value, (int, float)):
        try:
            value = float(value)  # accept numeric strings and numpy scalars
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be a number, got {_show(value)}") from None
        except OverflowError:  # e.g. Fraction(10**400)
            raise ValidationError(f"{name} must be a finite number, got one too large for a float") from None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        raise ValidationError(f"{name} must be a finite number, got one too large for a float") from None
    if not finite:
        raise ValidationError(f"{name} must be a finite number, got {value}")
    if integer:
        if value != int(value):
            raise ValidationError(f"{name} must be a whole number, got {value}")
        value = int(value)
    if low is not None and (value < low or (not low_inclusive and value == low)):
        op = ">=" if low_inclusive else ">"
        raise ValidationError(f"{name} must be {op} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValidationError(f"{name} must be <= {high:g}, got {value:g}")
    return value


def require_finite_result(result: object, check: str) -> None:
    """Raise when inputs that are each in range combine into an overflow (e.g. an MFU of 1e-320).
    ``result`` is a slotted result dataclass; its fields are read in place (no copy)."""
    for key in type(result).__slots__:
        value = getattr(result, key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"inputs out of range: {key} would be {value}; check {check}")


def require_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed`` (case-insensitive), else raise."""
    allowed = list(allowed)
    if isinstance(value, str):
        key = value.strip().lower()
        for option in allowed:
            if option.lower() == key:
                return option
    shown = ", ".join(allowed) if len(allowed) <= 16 else ", ".join(allowed[:16]) + ", ..."
    raise ValidationError(f"unknown {name} {_show(value)}; allowed: {shown}")
