"""Everything a training run needs (:class:`TrainConfig`), what it returns (:class:`TrainResult`), its
validation and resolution (a resumed run's saved config with the allowed overrides), the numbers it trains
with (:class:`RunPlan`: the config's or its preset's), and the learning-rate schedule: warmup then cosine
(Loshchilov & Hutter 2017, SGDR eq. 5 without restarts), a pure function of the step. The loop itself is
:mod:`engine.lab.trainer`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from engine.errors import ValidationError, require_choice, require_number
from engine.lab.device import DEVICES, DTYPES

TASKS = ("lm", "classify")
# Fields a resumed run may change; everything else (data, model, batch, lr schedule) is the saved run's.
RESUME_OVERRIDES = ("max_steps", "device", "dtype", "compile", "threads", "fsdp", "eval_every", "eval_batches", "checkpoint_every",
                    "sample_every", "early_stop_patience", "stop_at", "registry", "keep_checkpoints")
ARCH_OVERRIDES = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "context", "dropout")



@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. ``None`` means "the preset's value"."""

    # data (mirrors engine.lab.data.DataInput)
    data: str | None = None
    sample: str | None = None
    task: str = "lm"
    text_col: str | None = None
    label_col: str | None = None
    tokenizer: str = "byte"
    bpe_vocab: int = 4096
    val_fraction: float = 0.1
    # model
    preset: str = "tiny"
    n_layers: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    d_model: int | None = None
    d_ff: int | None = None
    context: int | None = None
    dropout: float | None = None
    # optimisation
    max_steps: int | None = None
    batch_size: int | None = None
    grad_accum: int = 1
    lr: float | None = None
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    # evaluation and stopping
    eval_every: int | None = None
    eval_batches: int = 10
    early_stop_patience: int = 0
    stop_at: int | None = None           # pause after this step (checkpoint, status 'stopped'), as Stop does
    overfit_one_batch: bool = False      # train on step 0's batch every step (the overfit sanity check)
    # machine
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    compile: bool = False
    fsdp: bool = False                   # shard weights, gradients and optimizer state (FSDP2) under torchrun
    threads: int | None = None           # CPU intra-op threads (None: PyTorch's default, one per core)
    # bookkeeping
    out: str | None = None
    name: str | None = None
    resume: str | None = None
    registry: str | None = None
    checkpoint_every: int | None = None  # default: eval_every
    keep_checkpoints: int = 2
    sample_every: int = 0                # LM samples every N steps (0: only at the end)
    sample_tokens: int = 120
    # LoRA of a finished lab run (engine/lab/lora.py): rank 0 means a normal run
    lora_from: str | None = None
    lora_rank: int = 0
    lora_alpha: float | None = None
    lora_target: str = "all-linear"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        clean = {k: v for k, v in dict(data).items() if k in known}
        if "betas" in clean and clean["betas"] is not None:
            clean["betas"] = tuple(clean["betas"])
        return cls(**clean)


@dataclass
class TrainResult:
    run_dir: str
    name: str
    status: str
    params: int
    steps: int
    train_loss: float | None
    val_loss: float | None
    val_ppl: float | None
    val_accuracy: float | None
    val_f1: float | None
    tokens_per_s: float | None
    checkpoint: str | None
    best_val_loss: float | None = None
    best_step: int | None = None
    best_checkpoint: str | None = None
    stopped_reason: str = ""
    task: str = "lm"
    device: str = "cpu"
    device_name: str = ""
    dtype: str = "fp32"
    world_size: int = 1
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    train_time_s: float = 0.0
    first_step_s: float | None = None
    compile_s: float | None = None
    flops_per_token: float = 0.0
    achieved_tflops: float | None = None
    mfu: float | None = None
    mfu_basis: str = ""
    peak_flops: float | None = None
    peak_memory_bytes: int | None = None
    resumed_from_step: int | None = None
    samples: list[str] = field(default_factory=list)
    trainable_params: int | None = None

    def to_dict(self) -> dict:
        """The CLI contract's keys (``val_accuracy`` only for classification) plus extras; JSON-ready."""
        out = {k: _clean(v) for k, v in asdict(self).items()}
        if self.task != "classify":
            out.pop("val_accuracy")
            out.pop("val_f1")
        return out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---- schedule ------------------------------------------------------------------------------------
def lr_at(step: int, *, lr: float, warmup: int, max_steps: int, min_lr_ratio: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup over ``warmup`` steps, then
    cosine decay to ``min_lr_ratio·lr`` at ``max_steps`` (SGDR eq. 5, one cycle)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, max_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    min_lr = lr * min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """The effective config: a resumed run's saved config with the allowed overrides applied."""
    if not cfg.resume:
        from engine.lab.lora import inherit

        return inherit(cfg)  # a LoRA run takes its source run's architecture and tokenizer
    run_dir = Path(cfg.resume)
    saved_path = run_dir / "config.json"
    if not saved_path.is_file():
        raise ValidationError(f"--resume {cfg.resume}: no config.json there (not a Preflight run folder)")
    try:
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8"))["train"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(f"--resume {cfg.resume}: config.json cannot be read ({exc})") from None
    changes = {k: getattr(cfg, k) for k in RESUME_OVERRIDES
               if getattr(cfg, k) != next(f.default for f in fields(TrainConfig) if f.name == k)}
    changes["stop_at"] = cfg.stop_at  # a pause point belongs to one invocation, never inherited
    return replace(saved, **changes, resume=str(run_dir), out=str(run_dir), name=cfg.name or saved.name)


def validate_config(cfg: TrainConfig) -> None:
    """One-line errors for values no run can use (before anything is read or written)."""
    require_choice("task", cfg.task, TASKS)
    require_choice("device", cfg.device, DEVICES)
    require_choice("dtype", cfg.dtype, DTYPES)
    for name, low in (("grad_accum", 1), ("eval_batches", 1), ("early_stop_patience", 0), ("seed", 0),
                      ("keep_checkpoints", 1), ("sample_every", 0), ("sample_tokens", 0)):
        require_number(name, getattr(cfg, name), low=low, high=2**62, integer=True)
    for name in ("max_steps", "batch_size", "warmup_steps", "eval_every", "checkpoint_every", "stop_at", "threads"):
        if getattr(cfg, name) is not None:
            require_number(name, getattr(cfg, name), low=0 if name in ("warmup_steps",) else 1, high=1e9, integer=True)
    if cfg.lr is not None:
        require_number("lr", cfg.lr, low=0, low_inclusive=False)
    require_number("min_lr_ratio", cfg.min_lr_ratio, low=0, high=1)
    require_number("weight_decay", cfg.weight_decay, low=0)
    require_number("grad_clip", cfg.grad_clip, low=0)
    if len(cfg.betas) != 2:
        raise ValidationError(f"betas must be two numbers, got {cfg.betas!r}")
    for b in cfg.betas:
        require_number("beta", b, low=0, high=1, low_inclusive=True)
    if not cfg.out and not cfg.resume:
        raise ValidationError("--out DIR is required (the run folder)")


@dataclass(frozen=True)
class RunPlan:
    """The numbers a run trains with: the config's, or its preset's where the config says ``None``."""

    max_steps: int
    batch_size: int
    lr: float
    warmup: int
    eval_every: int
    checkpoint_every: int
    micro: int  # rows per micro-batch over all ranks

    def resolved(self, dtype: str, device: str) -> dict:
        """The ``resolved`` block of the run's config.json."""
        return {"max_steps": self.max_steps, "batch_size": self.batch_size, "lr": self.lr,
                "warmup_steps": self.warmup, "eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every,
                "dtype": dtype, "device": device}


def plan_run(cfg: TrainConfig, preset, world: int) -> RunPlan:
    """Fill the config's ``None`` numbers from the preset (:class:`engine.lab.presets.LabPreset`); the global
    batch must split evenly into ``grad_accum`` micro-batches on each of ``world`` processes."""
    max_steps = int(cfg.max_steps or preset.max_steps)
    batch_size = int(cfg.batch_size or preset.batch_size)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(preset.warmup_steps, max(1, max_steps // 10))
    eval_every = int(cfg.eval_every or preset.eval_every)
    parts = cfg.grad_accum * world
    if batch_size % parts:
        raise ValidationError(f"batch size {batch_size} must be divisible by grad_accum × processes "
                              f"= {cfg.grad_accum} × {world} = {parts}")
    return RunPlan(max_steps=max_steps, batch_size=batch_size, lr=float(cfg.lr or preset.lr), warmup=warmup,
                   eval_every=eval_every, checkpoint_every=int(cfg.checkpoint_every or eval_every),
                   micro=batch_size // cfg.grad_accum)
