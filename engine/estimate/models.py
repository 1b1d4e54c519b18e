"""Model presets and custom architectures as :class:`ModelSpec`: the catalog's plain rows (or a user's
TOML/JSON file, or a form's mapping) turned into specs whose parameter counts are derived.

The catalog is models.toml's hand-written rows followed by the open models of hf_configs.json, each
generated from its config.json by the importer (``engine.estimate.hf_config``). Lookups by id also find
the models a user saved into the workspace (``$PREFLIGHT_HOME/models/<name>.json``, a config.json), so
readiness scenarios, training plans and the fine-tuning page can name them.

Lookups by id raise :class:`~engine.errors.ValidationError` naming the allowed ids.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from functools import cache
from pathlib import Path

from engine import workspace
from engine.catalog import hf_config_rows, model_rows
from engine.errors import ValidationError, require_choice
from engine.estimate.architecture import ModelSpec
from engine.estimate.hf_config import load_hf_config


@cache
def models() -> dict[str, ModelSpec]:
    """The model presets, keyed by id, in file order; parameter counts derived from architecture:
    models.toml's rows, then hf_configs.json's configs through the importer."""
    out = {row["id"]: ModelSpec(**row) for row in model_rows()}
    for row in hf_config_rows():
        if row["id"] in out:
            raise ValidationError(f"model id {row['id']!r} is in both models.toml and hf_configs.json")
        out[row["id"]] = load_hf_config(row["config"], id=row["id"], name=row["name"], meta=row)
    return out


def get_model(model_id: object) -> ModelSpec:
    if isinstance(model_id, str) and model_id not in models():
        saved = saved_model_path(model_id)
        if saved is not None:
            return load_hf_config(saved, id=model_id, name=model_id, meta={"source": f"workspace model {model_id}"})
        return models()[require_choice("model", model_id, [*models(), *saved_models()])]
    return models()[require_choice("model", model_id, models())]


def model_ids() -> list[str]:
    """Every id a lookup finds: the catalog's, then the workspace's saved models."""
    return [*models(), *(name for name in saved_models() if name not in models())]


def saved_models() -> list[str]:
    """Names of the models saved into the workspace (imported config.json files), sorted."""
    return sorted(p.stem for p in workspace.models_dir().glob("*.json") if not p.name.startswith("."))


def saved_model_path(name: str) -> Path | None:
    """The saved config.json of workspace model ``name``, or None."""
    try:
        path = workspace.models_dir() / f"{workspace.safe_name(name, 'model name').lower()}.json"
    except ValidationError:
        return None
    return path if path.is_file() else None


def save_model(name: str, config: object) -> ModelSpec:
    """Keep an imported config.json in the workspace under ``name`` (checked through the importer
    first; a catalog id cannot be reused). Returns the spec that lookups by ``name`` will find."""
    safe = workspace.safe_name(name, "model name").lower()  # ids are matched in lower case
    if safe in models():
        raise ValidationError(f"model name {safe!r} is a catalog model; choose another name")
    from engine.estimate.hf_config import read_hf_config

    data = read_hf_config(config)
    spec = load_hf_config(data, id=safe, name=safe)
    workspace.write_model_file(safe, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
    return spec


HF_CONFIG_HELP = "a Hugging Face config.json, or the model folder holding one (in place of --model)"


def hf_config_names(path: str | Path) -> dict[str, str]:
    """``id`` and ``name`` for a config.json read from ``path``: its folder's name (a downloaded
    model folder is named after the model), or the file's own name when it is not config.json."""
    path = Path(path)
    label = path.name if path.is_dir() or path.name != "config.json" else path.parent.name
    label = label.removesuffix(".json")
    try:
        model_id = workspace.safe_name(label, "model name")
    except ValidationError:
        model_id = "hf-config"
    return {"id": model_id, "name": f"{label} (config.json)"}


def model_from_args(model: str | None = None, model_file: str | None = None,
                    hf_config: str | None = None) -> str | ModelSpec | None:
    """What a command line chose: a preset id, a --model-file architecture or a --hf-config import
    (a bad file is a one-line ValidationError). The CLIs of every room share this."""
    if hf_config:
        return load_hf_config(hf_config, **hf_config_names(hf_config))
    if model_file:
        return load_model_file(model_file)
    return model


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
