"""Model-lab presets (engine/catalog/lab_presets.toml): architecture plus a training recipe."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING

from engine.catalog import lab_preset_file
from engine.errors import ValidationError
from engine.units import format_wall_time

if TYPE_CHECKING:  # engine.lab.model imports torch; the pages list presets before they know torch is there
    from engine.lab.model import ModelConfig


@dataclass(frozen=True)
class LabPreset:
    id: str
    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_ff: int
    ffn: str
    position: str
    norm: str
    bias: bool
    dropout: float
    context: int
    batch_size: int
    lr: float
    max_steps: int
    warmup_steps: int
    eval_every: int
    source: str
    date: str
    # Measured wall time of the preset's default run on a 2-core CPU (bench/lab_preset_time.py), with when,
    # where and at what load; the label quotes it, so the label says what was measured.
    cpu_run_s: float | None = None
    cpu_run_measured: str = ""

    @property
    def cpu_run_time(self) -> str | None:
        """The measured default run, in words ("about 4 min"), or None where none was measured."""
        return None if self.cpu_run_s is None else format_wall_time(self.cpu_run_s)

    @property
    def label(self) -> str:
        """The name, and for a preset with a measured CPU run, how long its default run took."""
        took = self.cpu_run_time
        return f"{self.name}: {self.max_steps} steps in {took} on 2 CPU cores" if took else self.name

    def config(self, vocab_size: int, n_classes: int = 0, **overrides) -> ModelConfig:
        """The model this preset builds for a tokenizer's ``vocab_size`` (and ``n_classes`` labels)."""
        shape = {k: getattr(self, k) for k in (
            "n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "ffn", "position", "norm", "bias",
            "dropout", "context")}
        shape.update(overrides)
        from engine.lab.model import ModelConfig

        return ModelConfig(vocab_size=vocab_size, n_classes=n_classes, **shape)


@cache
def _load() -> tuple[str, dict[str, LabPreset]]:
    data = lab_preset_file()
    names = {f.name for f in fields(LabPreset)}
    presets = {row["id"]: LabPreset(**{k: row[k] for k in names if k in row}) for row in data["preset"]}
    return data["version"], presets


def presets() -> dict[str, LabPreset]:
    return dict(_load()[1])


PRESETS = presets()
VERSION = _load()[0]


def get_preset(name: str) -> LabPreset:
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise ValidationError(f"unknown lab preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[key]
