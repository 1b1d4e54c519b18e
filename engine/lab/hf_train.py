"""Fine-tuning a local Hugging Face model folder in the lab: ``train --hf-model DIR --method full|lora|qlora``.

A normal lab run: the run folder and registry row come from :mod:`engine.lab.run_folder`, checkpoints
from :mod:`engine.lab.checkpoint` (safetensors + JSON, atomic; for LoRA only the adapters and their
optimizer state, the frozen base stays in the model folder), metrics go to the registry about once a
second, a stop request (registry flag, SIGTERM) checkpoints and ends the run as 'stopped', and a
resumed run continues step-identically (batches are a function of (seed, step); the optimizer and
RNG states are restored).

- LoRA (Hu et al. 2021) through PEFT's ``get_peft_model`` with no bias and no dropout, alpha 2·r by
  default; targets named as the estimator names them (engine/estimate/finetune.py). The trainable count
  is PEFT's, recorded beside :func:`engine.estimate.finetune.lora_trainable_params` of the architecture
  the HF-config importer reads.
- QLoRA (Dettmers et al. 2023): NF4 with double quantization through bitsandbytes, CUDA only.
- Learning rate: the lab's warmup + cosine (:func:`engine.lab.train_config.lr_at`); AdamW.
- At the end: ``adapter/`` (PEFT's ``adapter_model.safetensors`` + ``adapter_config.json``) for LoRA, and
  ``merged/``, a complete model folder (adapters merged with ``merge_and_unload``, or the fully fine-tuned
  weights, plus the tokenizer) that the inference room loads like any model folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

from engine.errors import ValidationError, require_choice, require_number

METHODS = ("full", "lora", "qlora")
TARGETS = ("qv", "attention", "all-linear")
RESUME_OVERRIDES = ("max_steps", "device", "eval_every", "checkpoint_every", "stop_at", "registry", "threads")
KIND = "hf"


@dataclass(frozen=True)
class HFTrainConfig:
    """A fine-tuning run of a model folder. ``None`` means the default stated beside the field."""

    hf_model: str | None = None
    method: str = "lora"
    rank: int = 8
    alpha: float | None = None            # 2·rank
    target: str = "all-linear"
    data: str | None = None
    sample: str | None = None
    text_col: str | None = None
    prompt_col: str | None = None
    response_col: str | None = None
    val_fraction: float = 0.1
    context: int = 128
    max_steps: int = 50
    batch_size: int = 4
    grad_accum: int = 1
    lr: float | None = None               # 2e-4 for LoRA/QLoRA, 2e-5 for full fine-tuning
    warmup_steps: int | None = None       # a tenth of the steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int | None = None         # a fifth of the steps
    eval_batches: int = 4
    checkpoint_every: int | None = None   # eval_every
    keep_checkpoints: int = 2
    stop_at: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    threads: int | None = None
    out: str | None = None
    name: str | None = None
    resume: str | None = None
    registry: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HFTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in known})


def is_hf_run(run_dir: str | Path) -> bool:
    """True for a run folder this module made (its config.json says kind 'hf')."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def merged_folder(run: str | Path) -> Path:
    """A fine-tuning run's ``merged/`` model folder (base weights + adapters merged, or the full weights),
    made from its latest checkpoint when the run has none yet (e.g. a stopped run)."""
    from engine.lab import checkpoint as ck
    from engine.store import resolve_run_dir

    run_dir = resolve_run_dir(run).resolve()
    if not is_hf_run(run_dir):
        raise ValidationError(f"run {run_dir.name} did not fine-tune a model folder")
    merged = run_dir / "merged"
    if (merged / "config.json").is_file():
        return merged
    cfg = resolve(HFTrainConfig(resume=str(run_dir)))
    c = ck.load(run_dir, optimizer=False)
    loaded, model = build_model(cfg, "cpu")
    restore(model, c, cfg.method)
    return export(run_dir, model, loaded.tokenizer, cfg.method)


def resolve(cfg: HFTrainConfig) -> HFTrainConfig:
    """A resumed run's saved config with the allowed overrides, or ``cfg``, validated."""
    if cfg.resume:
        path = Path(cfg.resume) / "config.json"
        try:
            saved = HFTrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8"))["hf_train"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidationError(f"--resume {cfg.resume}: config.json cannot be read ({exc})") from None
        defaults = {f.name: f.default for f in fields(HFTrainConfig)}
        changes = {k: getattr(cfg, k) for k in RESUME_OVERRIDES if getattr(cfg, k) != defaults[k]}
        changes["stop_at"] = cfg.stop_at
        cfg = replace(saved, **changes, resume=str(cfg.resume), out=str(cfg.resume), name=cfg.name or saved.name)
    validate(cfg)
    return cfg


def validate(cfg: HFTrainConfig) -> None:
    """One-line refusals before anything is read, loaded or written."""
    if not cfg.hf_model:
        raise ValidationError("--hf-model DIR is required (a Hugging Face model folder)")
    require_choice("method", cfg.method, METHODS)
    require_choice("target", cfg.target, TARGETS)
    require_choice("device", cfg.device, ("auto", "cpu", "cuda"))
    require_choice("dtype", cfg.dtype, ("auto", "fp32", "bf16", "fp16"))
    for name, low in (("rank", 1), ("context", 8), ("max_steps", 1), ("batch_size", 1), ("grad_accum", 1),
                      ("eval_batches", 1), ("keep_checkpoints", 1), ("seed", 0)):
        require_number(name, getattr(cfg, name), low=low, high=2**40, integer=True)
    for name in ("warmup_steps", "eval_every", "checkpoint_every", "stop_at", "threads"):
        if getattr(cfg, name) is not None:
            require_number(name, getattr(cfg, name), low=0 if name == "warmup_steps" else 1, high=1e9, integer=True)
    if cfg.lr is not None:
        require_number("lr", cfg.lr, low=0, low_inclusive=False)
    if cfg.batch_size % cfg.grad_accum:
        raise ValidationError(f"batch size {cfg.batch_size} must be divisible by grad_accum {cfg.grad_accum}")
    if (cfg.prompt_col is None) != (cfg.response_col is None):
        raise ValidationError("instruction data needs both --prompt-col and --response-col")
    if cfg.prompt_col and not cfg.data:
        raise ValidationError("--prompt-col/--response-col need --data FILE (a table with those columns)")
    if not (cfg.data or cfg.sample or cfg.resume):
        raise ValidationError("give --data PATH or --sample NAME (or --resume DIR)")
    if cfg.method == "qlora":
        require_qlora(cfg.device)
    if not cfg.out and not cfg.resume:
        raise ValidationError("--out DIR is required (the run folder)")


def require_qlora(device: str) -> None:
    """QLoRA's 4-bit NF4 weights need bitsandbytes on a CUDA GPU: one line elsewhere."""
    import torch

    from engine.requires import has_package

    if device == "cpu" or not torch.cuda.is_available():
        raise ValidationError("QLoRA needs a CUDA GPU with bitsandbytes (4-bit NF4 base weights); this machine has "
                              "no CUDA device: use --method lora or full")
    if not has_package("bitsandbytes"):
        raise ValidationError("QLoRA needs the Python package 'bitsandbytes': pip install bitsandbytes")


def _defaults(cfg: HFTrainConfig) -> dict:
    eval_every = int(cfg.eval_every or max(1, cfg.max_steps // 5))
    return {"lr": float(cfg.lr or (2e-5 if cfg.method == "full" else 2e-4)),
            "warmup": int(cfg.warmup_steps if cfg.warmup_steps is not None else max(1, cfg.max_steps // 10)),
            "eval_every": eval_every, "checkpoint_every": int(cfg.checkpoint_every or eval_every)}


def estimated_trainable(spec, cfg: HFTrainConfig) -> int | None:
    """The fine-tuning estimator's trainable count for this run (the importer's ModelSpec)."""
    if spec is None:
        return None
    if cfg.method == "full":
        return int(spec.params_total)
    from engine.estimate.finetune import lora_trainable_params

    return int(lora_trainable_params(spec, cfg.rank, cfg.target))


def predict_step_time(spec, cfg: HFTrainConfig, tokens_per_step: float, device: str, dtype: str = "fp32",
                      registry: str | Path | None = None) -> dict:
    """The predicted seconds of one optimizer step, to hold beside the measured one (as calibrate holds
    predicted memory beside measured): the fine-tuning estimator's model FLOPs per token for this spec and
    method (:func:`engine.estimate.finetune.model_flops_per_token`: full 6·N, LoRA/QLoRA 4·N + 6·N_adapter,
    plus attention) × ``tokens_per_step`` ÷ the model FLOP/s that this machine's latest finished
    calibration on ``device`` achieved (:func:`engine.artifacts.latest_calibration`). Without one, the
    stated default: on CUDA the GPU's datasheet peak × its typical MFU (engine/catalog/gpus.toml); on a
    CPU the measured fp32 matmul peak at 100 % (a lower bound on the step time). Not modelled: a step's
    fixed cost (framework, optimizer, kernel launches) and QLoRA's dequantization."""
    if spec is None:
        return {}
    from engine.artifacts import latest_calibration
    from engine.estimate.finetune import model_flops_per_token

    device_type = "cuda" if device.startswith("cuda") else "cpu"
    per_token, _ = model_flops_per_token(spec, cfg.method, cfg.rank, cfg.target, cfg.context)
    try:
        cal = latest_calibration(device=device_type, registry=registry)
    except ValidationError:  # an unreadable registry: the default below
        cal = None
    if cal and cal.get("achieved_tflops"):
        rate = float(cal["achieved_tflops"]) * 1e12
        basis = (f"calibration {cal['name']!r} ({cal.get('preset')} on {cal.get('device_name')}: "
                 f"{rate / 1e9:.3g} GFLOP/s achieved)")
    elif device_type == "cuda":
        from engine.catalog import gpus
        from engine.lab.device import device_name, gpu_peak_flops

        peak, gid = gpu_peak_flops(device_name(device), dtype)
        if peak is None:
            return {"step_time_basis": f"no calibration and no catalog peak for {device_name(device)}"}
        rate = peak * gpus()[gid].typical_mfu
        basis = (f"no calibration on cuda: {gid}'s datasheet peak × its typical MFU {gpus()[gid].typical_mfu:.0%} "
                 "(engine/catalog/gpus.toml)")
    else:
        from engine.lab.device import cpu_matmul_peak

        rate = cpu_matmul_peak()
        basis = (f"no calibration on cpu: this CPU's measured fp32 matmul peak ({rate / 1e9:.3g} GFLOP/s) at 100 %, "
                 "a lower bound on the step time; run calibrate for a measured rate")
    flops = per_token * float(tokens_per_step)
    return {"predicted_step_s": flops / rate, "step_flops": flops, "step_flops_per_s": rate,
            "step_time_basis": basis}


def build_model(cfg: HFTrainConfig, device: str):
    """The model folder loaded (memory checked for this method), with PEFT adapters for LoRA/QLoRA."""
    from engine.lab.hf_model import inspect_folder, lora_modules, load_hf

    folder = inspect_folder(cfg.hf_model)
    modules = lora_modules(folder.model_type, cfg.target) if cfg.method != "full" else []
    quant = None
    if cfg.method == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
    loaded = load_hf(folder.path, dtype=cfg.dtype, device=device, purpose=cfg.method, seq_len=cfg.context,
                     batch=cfg.batch_size // cfg.grad_accum, rank=cfg.rank, target=cfg.target, quantization=quant)
    model = loaded.model
    if cfg.method == "full":
        model.train()
        return loaded, model
    from peft import LoraConfig, get_peft_model

    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    lcfg = LoraConfig(r=int(cfg.rank), lora_alpha=float(cfg.alpha if cfg.alpha is not None else 2 * cfg.rank),
                      target_modules=modules, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    model.train()
    return loaded, model


def load_data(cfg: HFTrainConfig, loaded):
    """Instruction rows (prompt/response columns) or the lab's LM dataset, in the model's tokens."""
    if cfg.prompt_col:
        from engine.lab.hf_data import load_instructions

        return load_instructions(cfg.data, loaded.tokenizer, prompt_col=cfg.prompt_col, response_col=cfg.response_col,
                                 context=cfg.context, chat=loaded.chat, val_fraction=cfg.val_fraction, seed=cfg.seed)
    from engine.lab.data import DataInput, load_dataset
    from engine.lab.hf_data import HFTokenizer

    tok = HFTokenizer(loaded.tokenizer, loaded.folder.vocab_size, str(loaded.folder.path / "tokenizer.json"))
    inp = DataInput(path=cfg.data, sample=cfg.sample, task="lm", text_col=cfg.text_col, val_fraction=cfg.val_fraction,
                    seed=cfg.seed)
    return load_dataset(inp, cfg.context, tokenizer=tok)


def batch_loss(model, batch):
    """Mean next-token cross-entropy over the labelled positions (LM windows: every one)."""
    import torch.nn.functional as F

    if len(batch) == 2:  # lab LM windows: y is x shifted by one
        x, y = batch
        logits = model(input_ids=x).logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    x, mask, labels = batch
    logits = model(input_ids=x, attention_mask=mask).logits[:, :-1]
    tgt = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt, ignore_index=-100, reduction="sum")
    return total / (tgt != -100).sum().clamp_min(1)  # a batch whose responses were all cut off adds nothing


def micro_batch(data, cfg: HFTrainConfig, step: int, micro: int, device: str):
    from engine.lab.hf_data import InstructionData

    if isinstance(data, InstructionData):
        batch = data.get_batch(step, cfg.batch_size, cfg.seed, micro, cfg.grad_accum)
    else:
        batch = data.get_batch("train", step, cfg.batch_size, cfg.context, seed=cfg.seed, rank=micro,
                               world=cfg.grad_accum, device="cpu")
    return tuple(t.to(device) for t in batch)


def evaluate_loss(model, data, cfg: HFTrainConfig, device: str) -> dict:
    """Validation loss (token-weighted mean) and perplexity over ``eval_batches`` fixed batches."""
    import torch
    import torch.nn.functional as F

    micro = cfg.batch_size // cfg.grad_accum
    from engine.lab.hf_data import InstructionData

    if isinstance(data, InstructionData):
        batches = data.eval_batches(micro, cfg.eval_batches)
    else:
        batches = data.eval_batches("val", micro, cfg.context, cfg.eval_batches, cfg.seed, device="cpu")
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            batch = tuple(t.to(device) for t in batch)
            if len(batch) == 2:
                x, y = batch
                logits = model(input_ids=x).logits.float()
                tgt = y
            else:
                x, mask, labels = batch
                logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
                tgt = labels[:, 1:]
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100,
                                           reduction="sum"))
            count += int((tgt != -100).sum())
    model.train()
    loss = total / max(count, 1)
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 700.0))}


def trainable_state(model, method: str) -> dict:
    """What a checkpoint keeps: the adapters (LoRA/QLoRA) or every weight (full)."""
    sd = model.state_dict()
    if method == "full":
        return sd
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in sd.items() if k in names}


def restore(model, ckpt, method: str) -> None:
    """Load a checkpoint's tensors into the model, checking that they are exactly what it trains."""
    state = ckpt.model_state_dict()
    result = model.load_state_dict(state, strict=method == "full")
    if result.unexpected_keys:
        raise ValidationError(f"checkpoint {ckpt.path} holds tensors this model does not have "
                              f"({result.unexpected_keys[0]}); was the model folder replaced?")
    missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(state)
    if missing:
        raise ValidationError(f"checkpoint {ckpt.path} lacks trained tensors ({sorted(missing)[0]})")


def export(run_dir: Path, model, tokenizer, method: str) -> Path:
    """``adapter/`` (LoRA) and ``merged/``, a complete model folder with the tokenizer, written atomically."""
    import shutil
    import tempfile

    def atomic(name: str, write: Callable[[Path], None]) -> Path:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=run_dir))
        write(tmp)
        final = run_dir / name
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return final

    if method != "full":
        atomic("adapter", lambda d: model.save_pretrained(str(d), safe_serialization=True))
        merged = model.merge_and_unload()  # the run is over: merge in place (no second copy in memory)
    else:
        merged = model
    merged.eval()

    def write_merged(d: Path) -> None:
        merged.save_pretrained(str(d), safe_serialization=True)
        tokenizer.save_pretrained(str(d))

    return atomic("merged", write_merged)


_FLAGS = {"hf_model": "--hf-model", "method": "--method", "rank": "--rank", "alpha": "--alpha", "target": "--target",
          "data": "--data", "sample": "--sample", "text_col": "--text-col", "prompt_col": "--prompt-col",
          "response_col": "--response-col", "context": "--context", "max_steps": "--max-steps",
          "batch_size": "--batch-size", "grad_accum": "--grad-accum", "lr": "--lr", "warmup_steps": "--warmup",
          "eval_every": "--eval-every", "eval_batches": "--eval-batches", "checkpoint_every": "--checkpoint-every",
          "stop_at": "--stop-at", "device": "--device", "dtype": "--dtype", "seed": "--seed", "threads": "--threads"}


def train_args(cfg: HFTrainConfig) -> list[str]:
    """``train`` arguments for ``cfg`` (every field given, so the child's defaults never matter)."""
    out: list[str] = []
    for key, flag in _FLAGS.items():
        value = getattr(cfg, key)
        if value is not None:
            out += [flag, repr(value) if isinstance(value, float) else str(value)]
    return out
