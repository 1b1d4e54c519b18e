"""A company profile (the founder's own numbers) and named scenarios of it.

A profile is what the readiness page's form holds and what ``preflight readiness --profile FILE`` reads
(TOML or JSON, the same field names). A file's top-level fields are the base scenario; tables under
``[scenarios.<name>]`` override some of them to make named variants::

    cash_usd = 2_000_000
    monthly_burn_usd = 120_000
    daily_active_users = 5000
    ...
    [[training]]
    model = "llama-3-8b"
    tokens = "200B"
    gpu = "h100-sxm"
    gpus = 64

    [scenarios.slow-growth]
    monthly_growth = 0.02

Validation is per field (:func:`profile_errors` maps each bad field to one line, for the form); the
first problem becomes the one-line :class:`ValidationError` of :func:`profile_from_mapping` (the CLI's
exit 2). Unknown keys and wrong types are refused, never ignored.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from engine.catalog import defaults, gpus
from engine.errors import ValidationError
from engine.units import parse_quantity
from engine.workspace import safe_name

PRICE_FIELDS = ("price_per_request_usd", "price_per_million_output_tokens_usd", "subscription_usd_per_user_month")
# Training methods a plan may name: pretraining (engine/estimate/training.py, 6·N·D) or adapting an open
# model with the fine-tuning estimator (engine/estimate/finetune.py: full, LoRA, QLoRA; rank 16 on all
# linear layers, gradient checkpointing, one epoch over the plan's tokens).
TRAINING_METHODS = ("pretrain", "full", "lora", "qlora")
MAX_DAILY_USERS = 1e9  # growth is capped here: about the daily users of the largest consumer apps


@dataclass(frozen=True)
class TrainingPlan:
    """One planned training run: a preset (or architecture file), tokens, GPU type and count."""

    model: str
    tokens: float
    gpu: str
    gpus: int
    method: str = "pretrain"
    model_file: str | None = None
    mfu: float | None = None
    price_usd_per_hour: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """The founder's numbers for one scenario. Money in USD; one of the three prices is set."""

    cash_usd: float
    monthly_burn_usd: float
    daily_active_users: float
    monthly_growth: float
    requests_per_user_per_day: float
    prompt_tokens: int
    output_tokens: int
    serving_model: str
    serving_gpu: str
    p95_latency_s: float
    training: tuple[TrainingPlan, ...] = ()
    price_per_request_usd: float | None = None
    price_per_million_output_tokens_usd: float | None = None
    subscription_usd_per_user_month: float | None = None
    peak_to_average: float | None = None  # None: defaults.toml's peak_to_average_load
    serving_dtype: str = "bf16"
    serving_price_usd_per_hour: float | None = None
    company: str = ""
    # An API offer id (engine/catalog/apis.toml, e.g. "deepseek/deepseek-chat"): serve through it at its
    # list price; the readiness report compares it with self-hosting serving_model on serving_gpu.
    serving_api: str | None = None

    @property
    def peak_factor(self) -> float:
        return defaults()["peak_to_average_load"] if self.peak_to_average is None else self.peak_to_average

    @property
    def pricing(self) -> tuple[str, float]:
        """(the price field that is set, its value)."""
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise ValidationError("a price is required: one of " + ", ".join(PRICE_FIELDS))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["training"] = [t.to_dict() for t in self.training]
        return out


@dataclass(frozen=True)
class Scenario:
    """A named profile, as stored in the workspace (``engine.readiness.store``) or read from a file."""

    name: str
    profile: Profile
    created: float | None = None
    updated: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "profile": self.profile.to_dict(), "created": self.created, "updated": self.updated}


# field -> (kind, low, low_inclusive, high, required). kind: "money", "count", "number", "int", "text".
_NUMBERS: dict[str, tuple[str, float, bool, float, bool]] = {
    "cash_usd": ("money", 0, True, 1e13, True),
    "monthly_burn_usd": ("money", 0, True, 1e11, True),
    "daily_active_users": ("count", 0, False, MAX_DAILY_USERS, True),
    "monthly_growth": ("number", -0.5, True, 1.0, True),
    "requests_per_user_per_day": ("number", 0, False, 1000, True),
    "prompt_tokens": ("int", 1, True, 1e6, True),
    "output_tokens": ("int", 1, True, 1e6, True),
    "p95_latency_s": ("number", 0, False, 3600, True),
    "price_per_request_usd": ("money", 0, True, 1e4, False),
    "price_per_million_output_tokens_usd": ("money", 0, True, 1e6, False),
    "subscription_usd_per_user_month": ("money", 0, True, 1e5, False),
    "peak_to_average": ("number", 1, True, 20, False),
    "serving_price_usd_per_hour": ("money", 0, True, 1e4, False),
}
_TEXT = ("serving_model", "serving_gpu", "serving_dtype", "company", "serving_api")
_TRAINING_KEYS = {f.name for f in fields(TrainingPlan)}
_HINTS = {
    "daily_active_users": "expected daily active users, > 0 (a plan with no users has nothing to serve)",
    "monthly_growth": "a fraction per month between -0.5 and 1 (0.1 is 10% a month)",
    "cash_usd": "cash on hand in USD, >= 0",
    "monthly_burn_usd": "monthly spend without compute in USD, >= 0",
}


def _number(name: str, value: Any, kind: str, low: float, low_inclusive: bool, high: float) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ValidationError(f"{name} must be a number, got {type(value).__name__}")
    if isinstance(value, str):
        value = parse_quantity(value, name)  # '2M', '1,000,000', '1.5e6'
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {value}")
    if value < low or (not low_inclusive and value == low) or value > high:
        bound = f"{'>=' if low_inclusive else '>'} {low:g} and <= {high:g}"
        hint = _HINTS.get(name)
        raise ValidationError(f"{name} must be {bound}, got {value:g}" + (f": {hint}" if hint else ""))
    if kind == "int":
        if value != int(value):
            raise ValidationError(f"{name} must be a whole number, got {value:g}")
        return int(value)
    return value


def check_scenario_name(name: Any) -> str:
    """A scenario name as stored: letters, digits, '.', '_', '-' only; anything else is refused with
    the sanitized name to use instead (a name never becomes a path, but it is shown and stored)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("scenario name must be non-empty text")
    clean = safe_name(name, "scenario name")
    if clean != name:
        raise ValidationError(f"scenario name {name[:40]!r} may use only letters, digits, '.', '_' and '-' "
                              f"(no spaces or path characters); try {clean!r}")
    return clean


def _training(value: Any) -> tuple[TrainingPlan, ...]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValidationError(f"training must be a list of {{model, tokens, gpu, gpus}} tables, got {type(value).__name__}")
    plans = []
    for i, row in enumerate(value):
        where = f"training[{i}]"
        if not isinstance(row, dict):
            raise ValidationError(f"{where} must be a table with model, tokens, gpu and gpus")
        unknown = sorted(set(row) - _TRAINING_KEYS)
        if unknown:
            raise ValidationError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(_TRAINING_KEYS))}")
        missing = [k for k in ("tokens", "gpu", "gpus") if row.get(k) is None]
        if row.get("model") is None and row.get("model_file") is None:
            missing.insert(0, "model")
        if missing:
            raise ValidationError(f"{where}: {missing[0]} is required")
        method = str(row.get("method") or "pretrain").strip().lower()
        if method not in TRAINING_METHODS:
            raise ValidationError(f"{where}: method {method!r} is not one of {', '.join(TRAINING_METHODS)}")
        for key in ("model", "gpu", "model_file"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise ValidationError(f"{where}.{key} must be text, got {type(row[key]).__name__}")
        gpu = row["gpu"].strip().lower()
        if gpu not in gpus():
            raise ValidationError(f"{where}.gpu: unknown GPU {row['gpu']!r}; allowed: {', '.join(gpus())}")
        model = (row.get("model") or "").strip().lower()
        if row.get("model_file") is None:
            from engine.estimate.models import model_ids

            if model not in model_ids():
                raise ValidationError(f"{where}.model: unknown preset {row['model']!r}; allowed: {', '.join(model_ids())}")
        plans.append(TrainingPlan(
            model=model or "custom", tokens=_number(f"{where}.tokens", row["tokens"], "count", 1, True, 1e17),
            gpu=gpu, gpus=int(_number(f"{where}.gpus", row["gpus"], "int", 1, True, 1e7)), method=method,
            model_file=row.get("model_file"),
            mfu=None if row.get("mfu") is None else _number(f"{where}.mfu", row["mfu"], "number", 0, False, 1),
            price_usd_per_hour=None if row.get("price_usd_per_hour") is None else
            _number(f"{where}.price_usd_per_hour", row["price_usd_per_hour"], "money", 0, True, 1e4),
        ))
    return tuple(plans)


def profile_errors(data: Any) -> dict[str, str]:
    """Every problem of a profile mapping, one line per field ("" key: the profile as a whole)."""
    if not isinstance(data, dict):
        return {"": f"a profile must be a table of fields, got {type(data).__name__}"}
    errors: dict[str, str] = {}
    allowed = set(_NUMBERS) | set(_TEXT) | {"training"}
    for key in sorted(set(data) - allowed):
        errors[key] = f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}"
    for name, (kind, low, inclusive, high, required) in _NUMBERS.items():
        value = data.get(name)
        if value is None:
            if required:
                errors[name] = f"{name} is required" + (f": {_HINTS[name]}" if name in _HINTS else "")
            continue
        try:
            _number(name, value, kind, low, inclusive, high)
        except ValidationError as exc:
            errors[name] = str(exc)
    for name in ("serving_model", "serving_gpu"):
        value = data.get(name)
        if value is None:
            errors[name] = f"{name} is required"
        elif not isinstance(value, str):
            errors[name] = f"{name} must be text, got {type(value).__name__}"
    if isinstance(data.get("serving_gpu"), str) and data["serving_gpu"].strip().lower() not in gpus():
        errors["serving_gpu"] = f"unknown serving_gpu {data['serving_gpu']!r}; allowed: {', '.join(gpus())}"
    if isinstance(data.get("serving_model"), str):
        from engine.estimate.models import model_ids

        if data["serving_model"].strip().lower() not in model_ids():
            errors["serving_model"] = f"unknown serving_model {data['serving_model']!r}; allowed: {', '.join(model_ids())}"
    for name in ("serving_dtype", "company", "serving_api"):
        if data.get(name) is not None and not isinstance(data[name], str):
            errors[name] = f"{name} must be text, got {type(data[name]).__name__}"
    if isinstance(data.get("serving_api"), str) and data["serving_api"].strip():
        from engine.estimate.apis import get_offer

        try:
            get_offer(data["serving_api"])
        except ValidationError as exc:
            errors["serving_api"] = f"serving_api: {exc}"
    prices = [p for p in PRICE_FIELDS if data.get(p) is not None]
    if not prices:
        errors.setdefault("price", "a price is required: one of " + ", ".join(PRICE_FIELDS))
    elif len(prices) > 1:
        errors.setdefault("price", f"give one price, not {len(prices)}: {', '.join(prices)}")
    if data.get("training") is not None:
        try:
            _training(data["training"])
        except ValidationError as exc:
            errors["training"] = str(exc)
    return errors


def profile_from_mapping(data: Any) -> Profile:
    """A validated Profile; the first problem as a one-line ValidationError."""
    errors = profile_errors(data)
    if errors:
        key, message = next(iter(errors.items()))
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ValidationError(message + more)
    values: dict[str, Any] = {}
    for name, (kind, low, inclusive, high, _) in _NUMBERS.items():
        if data.get(name) is not None:
            values[name] = _number(name, data[name], kind, low, inclusive, high)
    for name in _TEXT:
        if data.get(name) is not None:
            values[name] = data[name].strip().lower() if name != "company" else data[name].strip()[:200]
    if not values.get("serving_api"):
        values.pop("serving_api", None)
    values["training"] = _training(data.get("training") or [])
    return Profile(**values)


def load_profile_file(path: str | Path) -> tuple[Profile, dict[str, Profile]]:
    """(base profile, named scenarios) from a TOML or JSON file; every problem names the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read profile file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"profile file {path.name} is not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: "
                              f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"profile file {path.name} must hold a table of fields")
    data = dict(data)
    overrides = data.pop("scenarios", None) or {}
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ValidationError(f"profile file {path.name}: [scenarios.<name>] must be tables of fields to override")
    try:
        base = profile_from_mapping(data)
        named = {}
        for name, fields_ in overrides.items():
            check_scenario_name(name)
            try:
                named[name] = profile_from_mapping({**data, **fields_})
            except ValidationError as exc:
                raise ValidationError(f"scenario {name!r}: {exc}") from None
    except ValidationError as exc:
        raise ValidationError(f"profile file {path.name}: {exc}") from None
    return base, named


def example_profile() -> Profile:
    """A worked example for an empty form: a seed-stage startup serving an 8B model on H100s."""
    return Profile(
        cash_usd=2_000_000, monthly_burn_usd=120_000, daily_active_users=5_000, monthly_growth=0.1,
        requests_per_user_per_day=20, prompt_tokens=1000, output_tokens=250, serving_model="llama-3-8b",
        serving_gpu="h100-sxm", p95_latency_s=5.0, subscription_usd_per_user_month=20.0,
        training=(TrainingPlan(model="llama-3-8b", tokens=200e9, gpu="h100-sxm", gpus=64),),
    )


def founder_example() -> Profile:
    """The founders' usual plan, the Overview's example before any scenario is saved: fine-tune an open
    model (QLoRA of Llama 3 8B on 40M tokens, one H100) and serve it to a few thousand daily users,
    self-hosted or through DeepSeek's API at its list price."""
    return Profile(
        cash_usd=1_500_000, monthly_burn_usd=100_000, daily_active_users=3_000, monthly_growth=0.1,
        requests_per_user_per_day=20, prompt_tokens=1000, output_tokens=250, serving_model="llama-3-8b",
        serving_gpu="h100-sxm", p95_latency_s=5.0, subscription_usd_per_user_month=20.0,
        serving_api="deepseek/deepseek-chat",
        training=(TrainingPlan(model="llama-3-8b", tokens=40e6, gpu="h100-sxm", gpus=1, method="qlora"),),
    )


def with_changes(profile: Profile, **changes: Any) -> Profile:
    """``profile`` with fields replaced and re-validated (a page edit, a scenario override)."""
    data = profile.to_dict()
    data.update(changes)
    return profile_from_mapping({k: v for k, v in data.items() if v is not None})


__all__ = ["PRICE_FIELDS", "TRAINING_METHODS", "Profile", "Scenario", "TrainingPlan", "check_scenario_name",
           "example_profile", "founder_example", "load_profile_file", "profile_errors", "profile_from_mapping", "with_changes"]
