"""What a training run trains: torch's settings for the device, the model and its optimizer (LoRA adapters
and FSDP shards where asked), the wrapped module the loop calls (DDP, ``torch.compile``), mixed precision
and the model FLOPs per token that throughput and MFU divide by."""

from __future__ import annotations

from contextlib import nullcontext

from engine.errors import ValidationError
from engine.lab.distributed import Dist
from engine.lab.train_config import ARCH_OVERRIDES, TrainConfig


def configure_torch(cfg: TrainConfig, device_type: str) -> int | None:
    """TF32 matmuls on CUDA and the CPU thread count; returns the thread count to restore afterwards."""
    import torch

    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if not cfg.threads:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(int(cfg.threads))
    return old


def arch_overrides(cfg: TrainConfig) -> dict:
    """The architecture fields the config sets over its preset's."""
    return {k: getattr(cfg, k) for k in ARCH_OVERRIDES if getattr(cfg, k) is not None}


def model_config(cfg: TrainConfig, preset, ds, ckpt=None):
    """The run's :class:`~engine.lab.model.ModelConfig`; a resume must rebuild the saved one."""
    mcfg = preset.config(ds.tokenizer.vocab_size, n_classes=ds.n_classes if ds.task == "classify" else 0,
                         **arch_overrides(cfg))
    if ckpt is not None and ckpt.state.get("model_config") not in (None, mcfg.to_dict()):
        raise ValidationError("the saved model config differs from the one this resume would build")
    return mcfg


def build_model(cfg: TrainConfig, mcfg, device: str, device_type: str, *, fresh: bool):
    """Seed every RNG and build the model on ``device``: for a LoRA run the frozen source weights (a fresh
    run's; a resumed run's come from its checkpoint) plus PEFT adapters."""
    import numpy as np
    import torch

    from engine.lab.model import Transformer

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    if device_type == "cuda":
        torch.cuda.manual_seed_all(cfg.seed)
    model = Transformer(mcfg).to(device)
    if cfg.lora_rank:  # frozen source weights plus PEFT adapters (engine/lab/lora.py)
        from engine.lab.lora import attach

        model = attach(model, cfg, fresh=fresh, model_config=mcfg.to_dict())
    return model


def shard(model, cfg: TrainConfig, dist: Dist) -> None:
    """Under ``--fsdp``: one FSDP unit per block, then the root (embedding, norm, head)."""
    if not cfg.fsdp:
        return
    if not dist.enabled:
        raise ValidationError("--fsdp shards the model over data-parallel processes; launch with "
                              "torchrun --nproc-per-node N (N >= 2)")
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)


def optimizer_for(model, cfg: TrainConfig, lr: float, device_type: str):
    """AdamW, decoupled weight decay on matrices only (engine.lab.model.configure_optimizer)."""
    from engine.lab.model import configure_optimizer

    return configure_optimizer(model, lr, cfg.weight_decay, tuple(cfg.betas), device_type)


def wrap_for_training(model, cfg: TrainConfig, dist: Dist, device_type: str):
    """The module the loop calls: DDP over the processes (not under FSDP, which shards instead), then
    ``torch.compile`` when asked."""
    import torch

    train_model = model
    if dist.enabled and not cfg.fsdp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[dist.local_rank] if device_type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    return train_model


def precision(dtype: str, device_type: str):
    """``(scaler, autocast)``: a gradient scaler for fp16 (None otherwise) and a factory of the autocast
    context (bf16/fp16 autocast, or a no-op for fp32)."""
    import torch

    scaler = torch.amp.GradScaler("cuda") if dtype == "fp16" else None
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)
    if amp_dtype is None:
        return scaler, nullcontext
    return scaler, lambda: torch.autocast(device_type=device_type, dtype=amp_dtype)


def flops_per_token(mcfg, cfg: TrainConfig, context: int) -> float:
    """Model FLOPs per trained token (PaLM App. B: 6·N plus attention; LoRA: engine/lab/lora.py)."""
    spec = mcfg.model_spec()
    if cfg.lora_rank:
        from engine.lab.lora import flops_per_token as lora_flops

        return lora_flops(spec, cfg, context)
    return spec.training_flops_per_token(context)
