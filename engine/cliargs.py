"""Argument types and the parser class that every CLI command shares (the main CLI and the rooms'
own ``cli.py`` modules): quantities with suffixes, whole numbers, finite floats, and argparse errors
as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from engine.errors import ValidationError
from engine.units import parse_quantity

EXIT_USAGE = 2   # bad input: a ValidationError, one line on stderr
EXIT_FAILED = 1  # a job that started and failed (diverged, out of memory, killed): a RunError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (argparse prints usage blocks by default)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # argparse only takes '-5' and '-.5' as negative numbers; '-7e9' or '-2T' would read as an
        # unknown option ("expected one argument") instead of reaching the type check that names it.
        self._negative_number_matcher = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*[kmbgtp]?$", re.IGNORECASE)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def quantity(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_quantity(text, name)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in its message
    return parse


def whole(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = quantity(name)(text)
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}")
        return int(value)

    parse.__name__ = name
    return parse


def finite(name: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def currency_args(parser: argparse.ArgumentParser) -> None:
    """--currency and --exchange-rate: money shown (and prices typed) in USD, CNY or EUR."""
    from engine.money import codes

    parser.add_argument("--currency", type=lambda text: text.strip().upper(), choices=codes(), metavar="CODE",
                        help=f"one of {', '.join(codes())}: --json keeps every *_usd field and adds its twin "
                             "(cost_usd -> cost_cny) and a 'currency' block with the rate and its date; the text "
                             "output shows money in it; prices and budgets you type (--price, --budget) are read "
                             "in it (default USD)")
    parser.add_argument("--exchange-rate", "--usd-rate", dest="exchange_rate", type=finite("exchange-rate"),
                        metavar="RATE", help="units of --currency per US dollar, e.g. 7.2 for CNY "
                                             "(default: the catalog's rate, engine/catalog/currencies.toml)")


def currency_from_args(args: argparse.Namespace):
    """The chosen :class:`engine.money.Currency` (USD when none was chosen); a ValidationError for an
    exchange rate without a currency, or a bad rate."""
    from engine.money import BASE, get_currency

    code = getattr(args, "currency", None)
    rate = getattr(args, "exchange_rate", None)
    if code is None and rate is not None:
        raise ValidationError("--exchange-rate needs --currency CNY or EUR")
    return get_currency(code or BASE, rate)
