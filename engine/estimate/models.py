"""Model presets and custom architectures as :class:`ModelSpec`: the catalog's plain rows (or a user's
TOML/JSON file, or a form's mapping) turned into specs whose parameter counts are derived.

Lookups by id raise :class:`~engine.errors.ValidationError` naming the allowed ids.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from functools import cache
from pathlib import Path

from engine.catalog import model_rows
from engine.errors import ValidationError, require_choice
from engine.estimate.architecture import ModelSpec


@cache
def models() -> dict[str, ModelSpec]:
    """The model presets, keyed by id, in file order; parameter counts derived from architecture."""
    return {row["id"]: ModelSpec(**row) for row in model_rows()}


def get_model(model_id: object) -> ModelSpec:
    return models()[require_choice("model", model_id, models())]


def resolve_model(model: ModelSpec | str) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if model is None:
        raise ValidationError("a model is required")
    return get_model(model)


MODEL_FILE_MAX_BYTES = 1_000_000
_MODEL_FIELDS = tuple(f.name for f in fields(ModelSpec) if f.init)
_REQUIRED_MODEL_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size")


def load_model_file(path: str | Path) -> ModelSpec:
    """A custom architecture from a TOML or JSON file: the fields of models.toml, either at the top
    level or in one [model] table. Every problem is a one-line ValidationError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MODEL_FILE_MAX_BYTES:
        raise ValidationError(f"model file {path.name!r} is {len(raw):,} bytes; the limit is {MODEL_FILE_MAX_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"model file {path.name!r} is not UTF-8 text") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ValidationError(f"model file {path.name!r} is not valid {kind}: {exc}") from None
    return model_from_mapping(data, where=f"model file {path.name!r}")


def model_from_mapping(data: object, where: str = "model") -> ModelSpec:
    """Build and validate a ModelSpec from a plain mapping (a parsed file or a form)."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if isinstance(data, dict) and isinstance(data.get("model"), list) and len(data["model"]) == 1:
        data = data["model"][0]
    if not isinstance(data, dict):
        raise ValidationError(f"{where} must hold a table of architecture fields")
    unknown = sorted(set(data) - set(_MODEL_FIELDS) - {"version", "schema"})
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_MODEL_FIELDS)}")
    missing = [k for k in _REQUIRED_MODEL_FIELDS if k not in data]
    if missing:
        raise ValidationError(f"{where}: missing required field(s) {', '.join(missing)}")
    spec_fields = {k: v for k, v in data.items() if k in _MODEL_FIELDS}
    spec_fields.setdefault("id", "custom")
    for key in ("tied_embeddings", "bias", "dropout", "router_bias", "qkv_bias", "o_bias", "mlp_bias", "qk_norm",
                "shared_expert_gate"):
        if key in spec_fields and not isinstance(spec_fields[key], bool):
            raise ValidationError(f"{where}: {key} must be true or false, got {spec_fields[key]!r}")
    for key in ("id", "name", "ffn", "position", "norm", "published_gpu", "source", "date"):
        if key in spec_fields and not isinstance(spec_fields[key], str):
            raise ValidationError(f"{where}: {key} must be text, got {spec_fields[key]!r}")
    try:
        return ModelSpec(**spec_fields)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from None
