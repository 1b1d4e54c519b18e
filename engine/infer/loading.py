"""Loading what inference runs: a trained run's checkpoint (weights via safetensors, tokenizer via JSON),
or a lab preset with random weights (benchmarks only: speed does not depend on the weights)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ValidationError


@dataclass
class Loaded:
    """A model ready for inference: the eval-mode Transformer, its config and (for a run) tokenizer."""

    model: Any                 # engine.lab.model.Transformer, eval mode, fp32, CPU
    config: Any                # engine.lab.model.ModelConfig
    tokenizer: Any | None      # None for a preset (random weights, no tokenizer)
    source: str                # run folder or "preset:NAME"
    checkpoint: str | None     # checkpoint folder
    step: int | None
    key: str                   # identifies the weights: checkpoint path + step, or the preset + seed
    labels: list[str] | None = None

    @property
    def task(self) -> str:
        return self.config.task


def resolve_run_dir(run: str | Path) -> Path:
    """A run folder, or a run name in the registry."""
    path = Path(run)
    if path.is_dir():
        return path
    from engine.store import Registry
    from engine.workspace import registry_path

    if registry_path().exists():
        try:
            return Path(Registry().get_run(str(run))["run_dir"])
        except ValidationError:
            pass
    raise ValidationError(f"no run folder or registered run named {str(run)!r}")


def load_run(run: str | Path, which: str = "latest") -> Loaded:
    """The model of a run's latest (or best) checkpoint. A run with no checkpoint is a ValidationError."""
    from engine.lab import checkpoint as ck
    from engine.lab.model import ModelConfig, Transformer
    from engine.lab.tokenizer import load_tokenizer

    run_dir = resolve_run_dir(run).resolve()
    if ck.latest_path(run_dir, which) is None:
        raise ValidationError(f"run {run_dir} has no checkpoint yet (train it first, or wait for its first checkpoint)")
    c = ck.load(run_dir, which=which, optimizer=False)
    if "model_config" not in c.state:
        raise ValidationError(f"checkpoint {c.path} has no model config")
    cfg = ModelConfig.from_dict(c.state["model_config"])
    model = Transformer(cfg)
    c.restore_model(model)
    model.eval()
    tok_path = run_dir / "tokenizer.json"
    tok = load_tokenizer(tok_path) if tok_path.is_file() else None
    labels = None
    try:  # the trainer writes the class names into config.json's data description
        labels = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["data"].get("label_names")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        labels = None
    key = f"{c.path.resolve()}@{c.step}"
    return Loaded(model=model, config=cfg, tokenizer=tok, source=str(run_dir), checkpoint=str(c.path), step=c.step,
                  key=key, labels=list(labels) if isinstance(labels, list) else None)


def load_preset(name: str, vocab_size: int = 258, seed: int = 0, context: int | None = None) -> Loaded:
    """A lab preset with random weights (seeded): for benchmarks, where the weights do not change the speed."""
    import torch

    from engine.lab.model import Transformer
    from engine.lab.presets import get_preset

    preset = get_preset(name)
    over = {"dropout": 0.0}
    if context is not None:
        over["context"] = int(context)
    cfg = preset.config(vocab_size, **over)
    torch.manual_seed(seed)
    model = Transformer(cfg).eval()
    return Loaded(model=model, config=cfg, tokenizer=None, source=f"preset:{preset.id}", checkpoint=None, step=None,
                  key=f"preset:{preset.id}:{vocab_size}:{seed}:{cfg.context}")


def load(run: str | None = None, preset: str | None = None, which: str = "latest") -> Loaded:
    if bool(run) == bool(preset):
        raise ValidationError("give exactly one of --run DIR or --preset NAME")
    return load_run(run, which) if run else load_preset(preset)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_json(cfg) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True)
