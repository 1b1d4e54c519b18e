"""Data-parallel processes for the trainer: which process this is (from torchrun's environment), and the
few collectives the loop needs (a barrier, agreeing on a stop, averaging the step's loss)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Dist:
    """This process's place among ``world`` data-parallel processes (one process: rank 0 of 1, disabled)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the process group torchrun describes in ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` (NCCL on CUDA,
    gloo on the CPU); a single process gets the disabled default."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device == "cuda" else "gloo"
        if device == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local, enabled=True)


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: str) -> bool:
    """True on every rank when the flag is set on any rank (a MAX all-reduce)."""
    import torch
    import torch.distributed as tdist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value, dist: Dist, device_type: str):
    """The mean of a scalar tensor over the ranks (gloo has no AVG: a SUM divided by the world size)."""
    import torch.distributed as tdist

    if device_type == "cuda":
        tdist.all_reduce(value, op=tdist.ReduceOp.AVG)
        return value
    tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
    return value / dist.world
