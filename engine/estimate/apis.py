"""API offers: what calling a hosted model costs per million tokens, and per month at a load.

The offers are reference data (``engine/catalog/apis.toml``: China's vendors in yuan at their own list
prices, OpenAI / Anthropic / Google and hosts of open-weight models in dollars, each row with its
source and date). A user adds a negotiated price as a row of the same shape, on the page or in a file
(:func:`load_api_file`, TOML ``[[offer]]`` tables, a JSON list, or CSV with a header); a row with the id
of a catalog offer replaces it.

An API's monthly cost at ``R`` requests/s of ``P`` prompt and ``O`` output tokens is

    R × 2,628,000 s × (P × input price + O × output price) / 10⁶

(a month of 730 hours, as everywhere in Preflight), converted to USD at the catalog's dated exchange
rate (``engine/catalog/currencies.toml`` through :mod:`engine.money`) or at a rate the user set. A
``cached_fraction`` of the prompt tokens may be billed at the cached-input price where one is listed.
"""

from __future__ import annotations

import csv
import datetime as _dt
import difflib
import io
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from engine import catalog, money
from engine.errors import ValidationError

SECONDS_PER_MONTH = 730 * 3600.0  # 2,628,000 s: the month of engine/readiness/finance.py
CUSTOM_SOURCE = "a price entered by the user (negotiated or quoted)"
_FIELDS = ("id", "provider", "model", "currency", "input_per_million", "cached_input_per_million",
           "output_per_million", "context", "open_model", "source", "date")
MAX_PRICE_PER_MILLION = 1e4  # ten thousand of a currency per million tokens: beyond any list price


@dataclass(frozen=True, slots=True)
class ApiOffer:
    """One API offer: prices per million tokens in ``currency`` (its own: CNY, USD, EUR)."""

    id: str
    provider: str
    model: str
    currency: str
    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    context: int | None = None
    open_model: str | None = None
    source: str = ""
    date: str = ""
    custom: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def usd_per_million(self, rate: money.Currency | None = None) -> tuple[float, float, float | None]:
        """(input, output, cached input) in USD per million tokens: at the catalog's rate for the
        offer's currency, or at ``rate`` when it is that currency at a user-set rate."""
        cur = rate if rate is not None and rate.code == self.currency else money.get_currency(self.currency)
        cached = None if self.cached_input_per_million is None else cur.to_usd(self.cached_input_per_million)
        return cur.to_usd(self.input_per_million), cur.to_usd(self.output_per_million), cached


def _price(where: str, name: str, value: Any, required: bool) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            direction = "input" if name.startswith("input") else "output"
            raise ValidationError(f"{where}: no {direction} price ({name}): an offer needs a price per million "
                                  "tokens for both directions (0 is a price; missing is not)")
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{where}: {name} must be a number, got {value!r}")
    try:
        number = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or number > MAX_PRICE_PER_MILLION:
        raise ValidationError(f"{where}: {name} must be between 0 and {MAX_PRICE_PER_MILLION:g} per million "
                              f"tokens, got {value!r}")
    return number


def _text(where: str, name: str, value: Any, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{where}: {name} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: {name} must be text, got {type(value).__name__}")
    return value.strip()[:500]


def offer_from_mapping(row: Mapping[str, Any], where: str = "offer", custom: bool = True) -> ApiOffer:
    """A validated offer from a row (a catalog row, a file row or the page's table): the id is
    "provider/model" (lower-cased), both prices are required, a custom row's source and date default
    to "entered by the user" and today."""
    if not isinstance(row, Mapping):
        raise ValidationError(f"{where} must be a table of fields, got {type(row).__name__}")
    unknown = sorted(set(row) - set(_FIELDS) - {"custom"})
    if unknown:
        raise ValidationError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(_FIELDS)}")
    ident = _text(where, "id", row.get("id"))
    where = f"{where} ({ident!r})"
    if "/" not in ident or ident.startswith("/") or ident.endswith("/"):
        raise ValidationError(f"{where}: id must read 'provider/model', e.g. 'deepseek/deepseek-chat'")
    code = _text(where, "currency", row.get("currency") or ("USD" if custom else None))
    if code.upper() not in money.codes():
        raise ValidationError(f"{where}: currency {code!r} is not one of {', '.join(money.codes())}")
    context = row.get("context")
    if context is not None and context != "":
        try:
            context = int(float(context))
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: context must be a whole number of tokens, got {context!r}") from None
        if context < 1:
            raise ValidationError(f"{where}: context must be >= 1 token, got {context}")
    else:
        context = None
    date = _text(where, "date", row.get("date"), required=not custom) or _dt.date.today().isoformat()
    try:
        _dt.date.fromisoformat(date)
    except ValueError:
        raise ValidationError(f"{where}: date must be YYYY-MM-DD, got {date!r}") from None
    provider, _, model = ident.partition("/")
    return ApiOffer(
        id=ident.lower(), provider=_text(where, "provider", row.get("provider"), False) or provider,
        model=_text(where, "model", row.get("model"), False) or model, currency=code.upper(),
        input_per_million=_price(where, "input_per_million", row.get("input_per_million"), True),
        output_per_million=_price(where, "output_per_million", row.get("output_per_million"), True),
        cached_input_per_million=_price(where, "cached_input_per_million", row.get("cached_input_per_million"), False),
        context=context, open_model=(_text(where, "open_model", row.get("open_model"), False) or None),
        source=_text(where, "source", row.get("source"), required=not custom) or CUSTOM_SOURCE, date=date,
        custom=custom)


@cache
def catalog_offers() -> dict[str, ApiOffer]:
    """The catalog's offers by id, in file order."""
    rows = catalog.api_file()["offer"]
    return {o.id: o for o in (offer_from_mapping(r, f"apis.toml offer {i + 1}", custom=False) for i, r in enumerate(rows))}


def offers(extra: Iterable[ApiOffer] = ()) -> dict[str, ApiOffer]:
    """Catalog offers plus ``extra`` (user rows); an extra row with a catalog id replaces that offer."""
    out = dict(catalog_offers())
    for offer in extra:
        out[offer.id] = offer
    return out


def get_offer(offer_id: Any, extra: Iterable[ApiOffer] = ()) -> ApiOffer:
    """The offer ``offer_id`` (case-insensitive); an unknown id names a few close ones."""
    known = offers(extra)
    key = offer_id.strip().lower() if isinstance(offer_id, str) else None
    if key in known:
        return known[key]
    close = difflib.get_close_matches(key or "", list(known), n=3, cutoff=0.4)
    if not close and key:  # "deepseek" alone: the offers of that provider
        close = [k for k in known if k.startswith(key.split("/")[0] + "/")][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else f"; see `preflight apis` ({len(known)} offers)"
    raise ValidationError(f"unknown API offer {str(offer_id)[:60]!r}{hint}")


def load_api_file(path: str | Path) -> list[ApiOffer]:
    """User offers from a file: TOML ``[[offer]]`` tables, JSON (a list, or ``{"offer": [...]}``) or CSV
    with the field names as header. Every problem names the file and the row."""
    path = Path(path)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ValidationError(f"cannot read API price file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValidationError(f"API price file {path.name} is not UTF-8 text") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(raw)
            rows = data.get("offer") if isinstance(data, dict) else data
        elif suffix == ".csv":
            rows = [{k.strip(): v for k, v in r.items() if k} for r in csv.DictReader(io.StringIO(raw))]
        else:
            rows = tomllib.loads(raw).get("offer")
    except ValueError as exc:
        raise ValidationError(f"API price file {path.name} is not valid {suffix.lstrip('.').upper() or 'TOML'}: "
                              f"{str(exc).splitlines()[0]}") from None
    if not isinstance(rows, list) or not rows:
        raise ValidationError(f"API price file {path.name} holds no offers: write [[offer]] tables (TOML), a JSON "
                              "list or CSV rows with id, currency, input_per_million, output_per_million")
    return offers_from_rows(rows, where=f"API price file {path.name}, row")


def offers_from_rows(rows: Iterable[Mapping[str, Any]], where: str = "row") -> list[ApiOffer]:
    """User rows (a file's, or the page's table) as offers; a bad row is named by its 1-based number."""
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            row = {k: v for k, v in row.items() if v is not None and v != ""}
        out.append(offer_from_mapping(row, f"{where} {i + 1}"))
    return out


def api_monthly_usd(offer: ApiOffer, requests_per_s: float, prompt_tokens: float, output_tokens: float,
                    cached_fraction: float = 0.0, rate: money.Currency | None = None) -> float:
    """Monthly API cost in USD: R × 2,628,000 × (P × in + O × out) / 10⁶, a ``cached_fraction`` of the
    prompt at the cached-input price (the input price where none is listed)."""
    if not (0.0 <= cached_fraction <= 1.0):
        raise ValidationError(f"cached fraction must be between 0 and 1, got {cached_fraction!r}")
    pin, pout, pcached = offer.usd_per_million(rate)
    prompt_price = (1.0 - cached_fraction) * pin + cached_fraction * (pin if pcached is None else pcached)
    return requests_per_s * SECONDS_PER_MONTH * (prompt_tokens * prompt_price + output_tokens * pout) / 1e6


def open_model_spec(offer: ApiOffer):
    """(the ModelSpec of the open model the offer serves, or None; a sentence saying which). An id the
    model catalog does not hold yet is reported, not raised: the offer is still priced."""
    from engine.estimate.models import models

    if not offer.open_model:
        return None, f"{offer.id} serves proprietary weights: pick an open model to self-host instead"
    spec = models().get(offer.open_model)
    if spec is None:
        return None, (f"{offer.id} serves {offer.open_model}, which is not in the model catalog yet: pick the "
                      "closest preset, or describe it with --model-file")
    return spec, f"{offer.id} serves {spec.name} (preset {spec.id})"


def offer_rows(extra: Iterable[ApiOffer] = (), rate: money.Currency | None = None) -> list[dict[str, Any]]:
    """Every offer as a JSON-ready row, with its prices also in USD at the dated rate."""
    out = []
    for offer in offers(extra).values():
        pin, pout, pcached = offer.usd_per_million(rate)
        row = offer.to_dict()
        row.update(input_usd_per_million=pin, output_usd_per_million=pout, cached_input_usd_per_million=pcached,
                   open_model_in_catalog=open_model_spec(offer)[0] is not None if offer.open_model else None)
        out.append(row)
    return out


__all__ = ["ApiOffer", "SECONDS_PER_MONTH", "api_monthly_usd", "catalog_offers", "get_offer", "load_api_file",
           "offer_from_mapping", "offer_rows", "offers", "offers_from_rows", "open_model_spec"]
