"""The one way to load a trained run's model, for every consumer: the lab's generate, evaluate, every
inference backend, export, benchmarks and serving calibration.

A run folder records what kind of model it holds (``config.json``'s ``model_kind``; runs the lab trains
have none and are ``"lab"``), and :func:`load_run` dispatches on it through :data:`LOADERS`, so a second
kind (a local Hugging Face checkpoint) is one more entry there and every consumer gets it at once.

A lab run's checkpoint is read as safetensors + JSON (engine/lab/checkpoint.py, nothing unpickled). A
LoRA run's checkpoint holds its adapters beside the frozen base weights (engine/lab/lora.py); they are
injected before the weights load and, by default, merged into the base weights with PEFT's
``merge_and_unload`` (https://huggingface.co/docs/peft/main/en/package_reference/lora#peft.LoraModel.merge_and_unload),
so every consumer (the exported ONNX graph included) sees the plain lab Transformer it knows, with
W + (alpha/r)·B·A in place of W (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
eq. 3 and the alpha/r scaling of §4.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ValidationError
from engine.store import resolve_run_dir

DEFAULT_KIND = "lab"
HF_KIND = "hf"  # a run that fine-tuned a local Hugging Face model folder (engine/lab/hf_train.py)


@dataclass
class Loaded:
    """A model ready for inference: the eval-mode module, its config and (for a run) tokenizer."""

    model: Any                 # engine.lab.model.Transformer, eval mode, fp32, CPU (LoRA adapters merged)
    config: Any                # engine.lab.model.ModelConfig
    tokenizer: Any | None      # None for a preset (random weights, no tokenizer)
    source: str                # run folder or "preset:NAME"
    checkpoint: str | None     # checkpoint folder
    step: int | None
    key: str                   # identifies the weights: checkpoint path + step, or the preset + seed
    labels: list[str] | None = None
    kind: str = DEFAULT_KIND   # the run's recorded model kind (LOADERS)
    run_config: dict = field(default_factory=dict)  # the run's config.json ({} for a preset)
    lora: dict | None = None   # a LoRA run's rank, alpha, target and whether the adapters were merged

    @property
    def task(self) -> str:
        return self.config.task


def run_config(run_dir: Path) -> dict:
    """The run's config.json ({} when it has none or it cannot be read)."""
    try:
        doc = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def model_kind(config: dict) -> str:
    """The model kind a run's config.json records (the lab's own Transformer when it names none)."""
    kind = config.get("model_kind") or (HF_KIND if config.get("kind") == HF_KIND else DEFAULT_KIND)
    return str(kind)


def load_run(run: str | Path, which: str = "latest", *, merge: bool = True) -> Loaded:
    """The model of a run's latest (or best, falling back to the newest) checkpoint, in eval mode on the CPU,
    with a LoRA run's adapters applied (merged into the weights unless ``merge=False``). A run with no
    checkpoint, or of a kind this Preflight cannot load, is a ValidationError."""
    if which not in ("latest", "best"):
        raise ValidationError(f"which must be best or latest, got {which!r}")
    run_dir = resolve_run_dir(run)
    config = run_config(run_dir)
    kind = model_kind(config)
    loader = LOADERS.get(kind)
    if loader is None:
        raise ValidationError(f"run {run_dir.name} holds a {kind!r} model; this Preflight loads: {', '.join(LOADERS)}")
    return loader(run_dir, which, config, merge)


def _load_lab(run_dir: Path, which: str, config: dict, merge: bool) -> Loaded:
    from engine.lab import checkpoint as ck
    from engine.lab.lora import adapters_for
    from engine.lab.model import ModelConfig, Transformer
    from engine.lab.tokenizer import load_tokenizer

    if ck.latest_path(run_dir, which) is None:
        raise ValidationError(f"run {run_dir.name} has no checkpoint yet (train it first, or wait for its first "
                              f"checkpoint)")
    c = ck.load(run_dir, which=which, optimizer=False)
    if "model_config" not in c.state:
        raise ValidationError(f"checkpoint {c.path} has no model config")
    cfg = ModelConfig.from_dict(c.state["model_config"])
    model = Transformer(cfg)
    tuner, lora = adapters_for(model, c.state)  # a LoRA run's checkpoint holds its adapters too
    c.restore_model(model)
    if tuner is not None and merge:
        model = tuner.merge_and_unload()
    model.eval()
    if lora is not None:
        lora = {**lora, "merged": bool(merge)}
    tok_path = run_dir / "tokenizer.json"
    tok = load_tokenizer(tok_path) if tok_path.is_file() else None
    labels = (config.get("data") or {}).get("label_names") if isinstance(config.get("data"), dict) else None
    return Loaded(model=model, config=cfg, tokenizer=tok, source=str(run_dir), checkpoint=str(c.path), step=c.step,
                  key=f"{c.path.resolve()}@{c.step}", labels=list(labels) if isinstance(labels, list) else None,
                  kind=DEFAULT_KIND, run_config=config, lora=lora)


def _load_hf_run(run_dir: Path, which: str, config: dict, merge: bool):
    """A run that fine-tuned a model folder: its merged folder (adapters merged into the base weights, made from
    the latest checkpoint when needed) through the model-folder loader, as engine.lab.hf_model.HFLoaded (the
    transformers model and its tokenizer). Its adapters are always merged: the merged folder is what serves."""
    from engine.lab.hf_model import load_hf
    from engine.lab.hf_train import merged_folder

    return load_hf(merged_folder(run_dir))


# The run's recorded model kind -> its loader (run folder, "latest"/"best", config.json, merge) -> Loaded
# (engine.lab.hf_model.HFLoaded for a Hugging Face run).
LOADERS: dict[str, Callable[[Path, str, dict, bool], Any]] = {DEFAULT_KIND: _load_lab, HF_KIND: _load_hf_run}
