"""Money in the user's currency: USD (the engine's own), CNY or EUR at an editable exchange rate.

Every estimate is computed in US dollars and its JSON fields are named ``*_usd``. A :class:`Currency`
converts those for display and reads prices typed in it back into USD. Rates come from
``engine/catalog/currencies.toml`` (each with its source and date) or from the user, who can set
today's rate; a user-set rate carries the date it was set.

Used three ways: the pages (``ui.widgets.money`` and the sidebar setting in ``ui/currency.py``), the
reports, and the CLI (``--currency``, ``--exchange-rate``), which keeps the ``*_usd`` fields and adds
converted ones (``cost_usd`` -> ``cost_cny``) with a ``currency`` block naming the rate and its date.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import Any

from engine import catalog
from engine.errors import ValidationError, require_choice, require_number
from engine.units import parse_quantity

BASE = "USD"


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency at a rate: ``per_usd`` units of it buy one US dollar (7.13 for CNY)."""

    code: str
    symbol: str
    name: str
    per_usd: float
    source: str = ""
    date: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_usd", require_number(f"{self.code} exchange rate", self.per_usd,
                                                           low=0, low_inclusive=False, high=1e6))

    def from_usd(self, usd: float) -> float:
        """USD -> this currency."""
        return usd * self.per_usd

    def to_usd(self, amount: float) -> float:
        """An amount in this currency -> USD (how prices typed in it reach the engine)."""
        return amount / self.per_usd

    def format(self, usd: float, compact: bool = True) -> str:
        """A USD amount shown in this currency: ``¥39.75M``, ``€2.57``, ``$0.0123``."""
        return format_amount(self.from_usd(usd), self, compact)

    def to_dict(self) -> dict:
        return asdict(self)


@cache
def currencies() -> dict[str, Currency]:
    """The catalog's currencies at their stored rates, by code, USD first."""
    return {row["code"]: Currency(**{k: row[k] for k in ("code", "symbol", "name", "per_usd", "source", "date")})
            for row in catalog.currency_rows()}


def codes() -> tuple[str, ...]:
    return tuple(currencies())


def get_currency(code: object = BASE, per_usd: object = None, date: str | None = None) -> Currency:
    """The currency ``code`` (case-insensitive) at its stored rate, or at ``per_usd`` when given (a
    user-set rate: its source says so and its date is ``date`` or today). USD is always 1."""
    cur = currencies()[require_choice("currency", code, currencies())]
    if per_usd is None:
        return cur
    rate = require_number(f"{cur.code} exchange rate", per_usd, low=0, low_inclusive=False, high=1e6)
    if cur.code == BASE:
        if rate != 1.0:
            raise ValidationError(f"the USD exchange rate is 1 by definition, got {per_usd!r}")
        return cur
    if rate == cur.per_usd and date is None:
        return cur
    return replace(cur, per_usd=rate, source=f"set by the user ({cur.per_usd:g} in the catalog, {cur.date})",
                   date=date or _dt.date.today().isoformat())


def format_amount(amount: float, currency: Currency | None = None, compact: bool = True) -> str:
    """An amount already in ``currency`` with its symbol; compact: K, M, B suffixes (``¥39.75M``),
    else every digit to the cent (``¥39,756,880.00``; under one unit, four significant digits)."""
    symbol = (currency or currencies()[BASE]).symbol
    if not math.isfinite(amount):
        return f"{symbol}–"
    sign, value = ("-", -amount) if amount < 0 else ("", amount)
    if compact and value >= 1e9:
        text = f"{value / 1e9:,.2f}B"
    elif compact and value >= 1e6:
        text = f"{value / 1e6:,.2f}M"
    elif compact and value >= 1e3:
        text = f"{value / 1e3:,.1f}K"
    elif value >= 1 or value == 0:
        text = f"{value:,.2f}"
    elif compact:
        text = f"{value:.4f}"
    else:  # cents and below, e.g. a cost per million tokens: four significant digits, two decimals at least
        text = f"{value:.4g}"
        if "e" not in text and len(text.split(".")[-1]) < 2:
            text = f"{value:.2f}"
    return f"{sign}{symbol}{text}"


def format_money(usd: float, currency: Currency | None = None, compact: bool = True) -> str:
    """A USD amount shown in ``currency`` (default USD)."""
    return (currency or currencies()[BASE]).format(usd, compact)


_SYMBOLS = {"$": "USD", "us$": "USD", "¥": "CNY", "￥": "CNY", "rmb": "CNY", "元": "CNY", "€": "EUR"}


def parse_money(text: object, currency: Currency | None = None, name: str = "amount") -> float:
    """Text in ``currency`` -> USD. Takes ``14``, ``¥14``, ``14 CNY``, ``1.5M``, ``€2,000``; a symbol or
    code of another currency is refused rather than silently read in the wrong one."""
    cur = currency or currencies()[BASE]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return cur.to_usd(require_number(name, text, low=0, high=1e15))
    if not isinstance(text, str):
        raise ValidationError(f"{name} must be an amount like 2.5 or {cur.symbol}2.5, got {text!r}")
    body = text.strip()
    named = None
    for symbol, code in sorted(_SYMBOLS.items(), key=lambda kv: -len(kv[0])):
        if body.lower().startswith(symbol):
            named, body = code, body[len(symbol):]
            break
    if named is None:
        m = re.search(r"\s*\b([A-Za-z]{3})$", body)
        if m and m.group(1).upper() in currencies():
            named, body = m.group(1).upper(), body[:m.start()]
        elif body.endswith("元"):
            named, body = "CNY", body[:-1]
    if named is not None and named != cur.code:
        raise ValidationError(f"{name} {text!r} is in {named}, but the currency is {cur.code}; "
                              f"switch the currency or type the amount in {cur.code}")
    value = parse_quantity(body.strip(), name)
    return cur.to_usd(require_number(name, value, low=0, high=1e15))


def converted_key(key: str, currency: Currency) -> str | None:
    """``cost_usd`` -> ``cost_cny``, ``price_usd_per_hour`` -> ``price_cny_per_hour``; None when the
    key names no USD amount."""
    parts = key.split("_")
    if "usd" not in parts:
        return None
    return "_".join(currency.code.lower() if p == "usd" else p for p in parts)


def convert_result(result: Any, currency: Currency) -> Any:
    """A JSON-ready result with every ``*_usd`` number (nested dicts and lists included) joined by its
    converted twin, and a top-level ``currency`` block (code, symbol, per_usd, source, date). The
    ``*_usd`` fields stay as they are. USD adds the block only."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out: dict = {}
            for key, item in value.items():
                out[key] = walk(item)
                twin = converted_key(key, currency) if isinstance(key, str) and currency.code != BASE else None
                if twin and isinstance(item, (int, float)) and not isinstance(item, bool) and twin not in value:
                    out[twin] = currency.from_usd(float(item))
            return out
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    out = walk(result)
    if isinstance(out, dict):
        out["currency"] = currency.to_dict()
    return out


__all__ = ["BASE", "Currency", "codes", "convert_result", "converted_key", "currencies", "format_amount",
           "format_money", "get_currency", "parse_money"]
