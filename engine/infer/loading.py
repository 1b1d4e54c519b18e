"""Loading what inference runs: a trained run through the one loader (engine/lab/loader.py: checkpoint,
tokenizer, LoRA adapters merged), or a lab preset with random weights (benchmarks only: speed does not
depend on the weights)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engine.errors import ValidationError
from engine.lab.loader import Loaded, load_run


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
    """A run's model (the one loader) or a preset's random weights: exactly one of the two."""
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
