"""What a training run reports as it goes: one metric row per step (train loss, lr, grad norm; throughput,
memory and validation metrics where measured), written to the run registry at most about once a second and
echoed to the caller's ``progress`` callback. Loss tensors are read in batches (one device sync per
logging boundary), which is also where a non-finite loss is caught."""

from __future__ import annotations

import math
import time
from typing import Any, Callable


class MetricLog:
    """Queued metric rows of one run (rank 0 writes them; other ranks only read their losses)."""

    def __init__(self, reg, name: str | None, progress: Callable[[dict], None] | None, *, main: bool,
                 max_steps: int = 0) -> None:
        self.reg, self.name, self.progress, self.main, self.max_steps = reg, name, progress, main, max_steps
        self.pending: list[dict] = []  # rows not yet written
        self.losses: list[tuple[int, Any, float, Any]] = []  # (step, loss tensor, lr, grad norm) not yet read
        self.last_flush = 0.0
        self.last_train_loss: float | None = None

    def add_step(self, step: int, loss, lr: float, grad_norm) -> None:
        self.losses.append((step, loss, lr, grad_norm))

    def read_losses(self) -> tuple[int, float, float] | None:
        """Turn the queued loss tensors into floats and queue their rows; at the first non-finite loss stop
        and return ``(step, loss, lr)`` of that step (its row and later ones are dropped)."""
        import torch

        if not self.losses:
            return None
        values = torch.stack([t for _, t, _, _ in self.losses]).float().cpu().tolist()
        norms = [n for _, _, _, n in self.losses]
        norm_vals = torch.stack(norms).float().cpu().tolist() if norms and norms[0] is not None else [None] * len(values)
        queued, self.losses = self.losses, []
        for (s, _, lr_s, _), v, gn in zip(queued, values, norm_vals):
            if not math.isfinite(v):
                return s, v, lr_s
            self.last_train_loss = v
            self.pending.append({"step": s, "train_loss": v, "lr": lr_s, "grad_norm": gn})
        return None

    def stamp(self, **fields) -> None:
        """Add fields to the newest queued row (none queued: nothing to stamp)."""
        if self.pending:
            self.pending[-1].update(fields)

    def add_eval(self, step: int, row: dict) -> None:
        """Validation metrics join the step's row (or start one)."""
        if self.pending and self.pending[-1]["step"] == step:
            self.pending[-1].update(row)
        else:
            self.pending.append({"step": step, **row})

    def flush(self, force: bool = False) -> None:
        """Write queued metric rows to the registry (at most about once a second unless forced)."""
        now = time.perf_counter()
        if not self.pending or (not force and now - self.last_flush < 1.0):
            return
        rows, self.pending = self.pending, []
        self.last_flush = now
        if self.main and self.reg is not None:
            self.reg.log_metrics(self.name, rows=[{k: v for k, v in r.items() if v is not None or k == "step"}
                                                  for r in rows])
        if self.progress is not None and self.main:
            self.progress({"event": "metrics", "step": rows[-1]["step"], "max_steps": self.max_steps,
                           **{k: v for k, v in rows[-1].items() if k != "step"}})
