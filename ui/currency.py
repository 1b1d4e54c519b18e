"""The currency setting: USD (default), CNY or EUR at an editable exchange rate, shared by every page.

``currency_setting()`` draws it in the sidebar; ``app.py`` calls it once per run, before the page, so
the one setting (in session state) follows the user from page to page. Pages read it through
``current_currency()`` (or ``ui.widgets.money``), which falls back to USD when a page runs alone.
Engine figures stay USD (``*_usd``); this module converts what is shown and reads prices typed in the
chosen currency back into USD (``price_input``).
"""

from __future__ import annotations

import datetime as _dt
import math

import pandas as pd
import streamlit as st

from engine import money
from engine.errors import ValidationError

CODE_KEY = "currency-code"


def _rate_key(code: str) -> str:
    return f"currency-rate-{code}"


def _date_key(code: str) -> str:
    return f"currency-date-{code}"


def current_currency() -> money.Currency:
    """The currency the user chose, at their rate (USD when nothing is set or the setting is bad)."""
    state = st.session_state
    code = state.get(CODE_KEY, money.BASE)
    if code not in money.currencies() or code == money.BASE:
        return money.get_currency()
    rate = state.get(_rate_key(code))
    date = state.get(_date_key(code))
    try:
        return money.get_currency(code, rate, date.isoformat() if isinstance(date, _dt.date) else None)
    except ValidationError:
        return money.get_currency()


def currency_setting() -> money.Currency:
    """The sidebar setting: a currency and, for CNY and EUR, its rate per US dollar (prefilled with the
    catalog's dated rate, editable) and the date of a rate you type."""
    table = money.currencies()
    with st.sidebar:
        code = st.selectbox("Currency", list(table), key=CODE_KEY,
                            format_func=lambda c: f"{c} ({table[c].symbol}) {table[c].name}",
                            help="every money figure on every page; the engine computes in USD and the "
                                 "downloads keep the *_usd fields beside the converted ones")
        if code != money.BASE:
            stored = table[code]
            rate = st.number_input(f"{code} per US dollar", min_value=1e-4, max_value=1e6, value=float(stored.per_usd),
                                   step=0.01, format="%.4f", key=_rate_key(code),
                                   help=f"catalog: {stored.per_usd:g} on {stored.date}. {stored.source}")
            if rate != stored.per_usd:
                st.date_input("Rate as of", value=_dt.date.today(), key=_date_key(code))
            cur = current_currency()
            st.caption(f"1 USD = {cur.per_usd:g} {code}, {cur.date}"
                       + (" (catalog rate)" if cur.per_usd == stored.per_usd else " (your rate)")
                       + ". Prices you type are in " + code + ".")
            return cur
    return money.get_currency()


def price_input(label: str, usd: float, key: str, container=None, min_usd: float = 0.0, max_usd: float = 1000.0,
                step_usd: float = 0.05, **kwargs) -> float:
    """A number input in the chosen currency, prefilled with ``usd`` converted; returns USD. The key
    includes the currency and rate, so switching either prefills the converted default afresh."""
    cur = current_currency()
    box = container or st
    step = step_usd if cur.code == money.BASE else 10.0 ** math.floor(math.log10(cur.from_usd(step_usd)))  # ¥0.1, €0.01
    value = box.number_input(f"{label} ({cur.code})", cur.from_usd(min_usd), cur.from_usd(max_usd),
                             float(round(cur.from_usd(usd), 4)), step,
                             key=f"{key}-{cur.code}-{cur.per_usd:g}", **kwargs)
    return cur.to_usd(float(value))


def money_table(df: pd.DataFrame) -> pd.DataFrame:
    """A table for display and CSV: each ``*_usd`` column joined, right after it, by its converted twin."""
    cur = current_currency()
    if cur.code == money.BASE or df.empty:
        return df
    out = df.copy()
    for col in list(df.columns):
        twin = money.converted_key(str(col), cur)
        if twin and twin not in out and pd.api.types.is_numeric_dtype(df[col]):
            out.insert(out.columns.get_loc(col) + 1, twin, df[col] * cur.per_usd)
    return out


def money_result(result: dict | None) -> dict | None:
    """An estimate's JSON with converted twins and the ``currency`` block (as the CLI's --currency)."""
    cur = current_currency()
    if result is None or cur.code == money.BASE:
        return result
    return money.convert_result(result, cur)
