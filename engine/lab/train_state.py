"""A run's progress, and the part of a checkpoint a resume needs to continue step for step: where the data
stands, the best validation loss so far, the early-stopping count, the elapsed time and the RNG states
(the weights and optimizer tensors themselves are :mod:`engine.lab.checkpoint`'s)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import ValidationError
from engine.lab.distributed import Dist
from engine.lab.train_config import TrainConfig


@dataclass
class TrainState:
    """Where a run stands after ``step`` optimizer steps."""

    step: int = 0
    tokens_seen: int = 0
    best_val: float = math.inf
    best_step: int | None = None
    evals_since_best: int = 0
    prior_elapsed: float = 0.0  # seconds the run trained before this invocation (resumed runs)
    resumed_from: int | None = None

    @property
    def best_val_or_none(self) -> float | None:
        return self.best_val if math.isfinite(self.best_val) else None


def start_state(ckpt, model, optimizer, cfg: TrainConfig, dist: Dist) -> TrainState:
    """A fresh run's state, or a resumed run's: weights, optimizer and RNG restored from ``ckpt`` (under FSDP
    from the full state dicts). Only rank 0's RNG states are saved; the other ranks re-seed deterministically
    (their own dropout masks; DDP broadcasts the weights)."""
    import torch

    if ckpt is None:
        if dist.enabled and dist.rank:
            torch.manual_seed(cfg.seed + 1_000_003 * dist.rank)
        return TrainState()
    if bool(ckpt.state.get("fsdp")) != bool(cfg.fsdp):
        raise ValidationError("this run was checkpointed " + ("with" if ckpt.state.get("fsdp") else "without")
                              + " --fsdp; resume it the same way")
    if cfg.fsdp:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions, set_model_state_dict, set_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, ckpt.model_state_dict(), options=full)
        if ckpt.optimizer is not None:
            set_optimizer_state_dict(model, optimizer, ckpt.optimizer, options=full)
    else:
        ckpt.restore_model(model)
        ckpt.restore_optimizer(optimizer)
    if dist.main:
        ckpt.restore_rng()
    else:
        torch.manual_seed(cfg.seed + 1_000_003 * dist.rank + ckpt.step)
    st = ckpt.state
    return TrainState(step=ckpt.step, tokens_seen=int(st.get("tokens_seen", 0)),
                      best_val=st.get("best_val_loss") if st.get("best_val_loss") is not None else math.inf,
                      best_step=st.get("best_step"), evals_since_best=int(st.get("evals_since_best", 0)),
                      prior_elapsed=float(st.get("elapsed_s", 0.0)), resumed_from=ckpt.step)


def full_state_dicts(model, optimizer) -> tuple[dict, dict]:
    """FSDP: gather the shards into full CPU state dicts (a collective: every rank takes part)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
    )

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=full), get_optimizer_state_dict(model, optimizer, options=full)


def resume_doc(state: TrainState, cfg: TrainConfig, mcfg, *, batch_size: int, world: int, fingerprint: str,
               elapsed: float) -> dict:
    """The training state a checkpoint's state.json carries for :func:`start_state`."""
    return {"fsdp": bool(cfg.fsdp), "model_config": mcfg.to_dict(), "train_config": cfg.to_dict(),
            "data_position": {"next_step": state.step, "seed": cfg.seed, "batch_size": batch_size,
                              "world_size": world},
            "data_fingerprint": fingerprint, "tokens_seen": state.tokens_seen,
            "best_val_loss": state.best_val_or_none,
            "best_step": state.best_step, "evals_since_best": state.evals_since_best, "elapsed_s": elapsed,
            "scheduler": {"step": state.step}}
