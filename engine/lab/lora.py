"""LoRA fine-tuning of a finished lab run with PEFT: ``preflight train --lora-from RUN --rank R``.

The source run's weights are loaded (its best checkpoint, else its latest), frozen, and PEFT's LoRA
layers (Hu et al. 2021) are injected in place into the targeted linear layers with
``peft.inject_adapter_in_model``, so the module tree and the checkpoint format (safetensors, no pickle)
stay as they are; the adapters appear as ``<layer>.lora_A.default.weight`` and
``<layer>.lora_B.default.weight`` beside ``<layer>.base_layer.weight``. The one loader
(engine/lab/loader.py) injects them again from the checkpoint's train config (:func:`adapters_for`)
and merges them for every consumer. Targets use the estimator's names
(engine/estimate/finetune.py): ``qv``, ``attention``, ``all-linear`` (attention plus the MLP), so the
trainable count equals :func:`engine.estimate.finetune.lora_trainable_params` for the run's ModelSpec.

The new run keeps the source's tokenizer and architecture; its data defaults to the source's data.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from engine.errors import ValidationError, require_choice, require_number

# The lab Transformer's module names for each target (engine/lab/model.py).
LAB_MODULES = {
    "qv": ["attn.q_proj", "attn.v_proj"],
    "attention": ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj"],
    "all-linear": ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "mlp.up", "mlp.gate", "mlp.down"],
}
# Fields a LoRA run inherits from its source run (the architecture and the tokenizer must match).
INHERITED = ("preset", "n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "context", "dropout", "tokenizer",
             "bpe_vocab", "task", "text_col", "label_col")


def _source_config(run: str | Path) -> tuple[Path, dict]:
    from engine.store import resolve_run_dir

    try:  # a run folder, or a registered run's name (``--lora-from demo``: the shipped demo model)
        run_dir = resolve_run_dir(run)
    except ValidationError:
        run_dir = Path(run).expanduser()
    path = run_dir / "config.json"
    if not path.is_file():
        raise ValidationError(f"--lora-from {run}: no config.json there (not a Preflight run folder)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return run_dir.resolve(), doc
    except (OSError, ValueError) as exc:
        raise ValidationError(f"--lora-from {run}: config.json cannot be read ({exc})") from None


def inherit(cfg):
    """The TrainConfig of a new LoRA run: architecture, tokenizer and task from the source run, its data
    unless ``cfg`` names other data. Checks the rank and target before anything starts."""
    if not cfg.lora_from:
        if cfg.lora_rank:
            raise ValidationError("--rank needs --lora-from RUN (the finished lab run to fine-tune)")
        return cfg
    if cfg.fsdp:
        raise ValidationError("--lora-from does not combine with --fsdp in the lab (adapters are small: use DDP)")
    run_dir, doc = _source_config(cfg.lora_from)
    saved = doc.get("train") or {}
    changes = {k: saved[k] for k in INHERITED if k in saved}
    if not (cfg.data or cfg.sample):
        changes.update(data=saved.get("data"), sample=saved.get("sample"))
    rank = require_number("rank", cfg.lora_rank, low=1, high=1e6, integer=True)
    target = require_choice("lora target", cfg.lora_target, tuple(LAB_MODULES))
    out = replace(cfg, **changes, lora_from=str(run_dir), lora_rank=int(rank), lora_target=target)
    from engine.estimate.finetune import check_rank
    from engine.lab.model import ModelConfig

    model_cfg = doc.get("model")
    if model_cfg:
        check_rank(ModelConfig.from_dict(model_cfg).model_spec(), rank, target)
    return out


def source_tokenizer(cfg):
    """The source run's tokenizer (the adapters learn on top of its vocabulary)."""
    from engine.lab.tokenizer import load_tokenizer

    path = Path(cfg.lora_from) / "tokenizer.json"
    if not path.is_file():
        raise ValidationError(f"--lora-from {cfg.lora_from}: no tokenizer.json in that run folder")
    return load_tokenizer(path)


def lora_config(rank: int, alpha: float | None, target: str):
    """PEFT's LoraConfig for the lab model: no bias, no dropout (PEFT's defaults), alpha 2·r unless given."""
    from peft import LoraConfig

    return LoraConfig(r=int(rank), lora_alpha=float(alpha if alpha is not None else 2 * rank),
                      target_modules=LAB_MODULES[target], lora_dropout=0.0, bias="none")


def inject(model, rank: int, alpha: float | None, target: str):
    """Inject LoRA adapters in place (everything else frozen) and return the same module."""
    from peft import inject_adapter_in_model

    model = inject_adapter_in_model(lora_config(rank, alpha, target), model)
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name)
    return model


def attach(model, cfg, *, fresh: bool, model_config: dict):
    """The trainer's hook: for a new LoRA run load the source run's weights into ``model`` (the same
    architecture, checked), then inject the adapters. A resumed run gets its adapters injected and
    its weights from its own checkpoint afterwards."""
    if fresh:
        from engine.lab import checkpoint as ck

        source = ck.load(cfg.lora_from, which="best", optimizer=False)
        if source.state.get("model_config") != model_config:
            raise ValidationError("the source run's model differs from the one this run builds (its tokenizer or "
                                  "task changed?); LoRA needs the same architecture")
        if source.state.get("train_config", {}).get("lora_rank"):
            raise ValidationError("--lora-from names a LoRA run; fine-tune its source run instead")
        source.restore_model(model)
    return inject(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_target)


def adapters_for(model, state: dict):
    """Make a plain lab model ready to load a checkpoint: for a LoRA run's checkpoint, inject the adapters it
    saved (in place, the same module names :func:`inject` gives) and return PEFT's tuner over the model
    (whose ``merge_and_unload`` folds them into the weights once they are loaded) and the adapter settings;
    ``(None, None)`` for a plain run. Used by engine/lab/loader.py, the one loader."""
    train = state.get("train_config") or {}
    if not train.get("lora_rank"):
        return None, None
    from peft import LoraModel

    rank, alpha, target = int(train["lora_rank"]), train.get("lora_alpha"), train.get("lora_target", "all-linear")
    tuner = LoraModel(model, lora_config(rank, alpha, target), "default")  # what inject_adapter_in_model builds
    return tuner, {"rank": rank, "alpha": float(alpha if alpha is not None else 2 * rank), "target": target}


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token(spec, cfg, context: int) -> float:
    """Model FLOPs per token of LoRA training: 4·N + 6·N_adapter + attention (engine.estimate.finetune)."""
    from engine.estimate.finetune import adapter_flops_forward_per_token

    return (4.0 * spec.params_matmul_active + 3.0 * adapter_flops_forward_per_token(spec, cfg.lora_rank, cfg.lora_target)
            + 3.0 * spec.attention_flops_forward_per_token(context))
