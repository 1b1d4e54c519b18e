"""The trainer's periodic evaluation: validation loss over ``eval_batches`` fixed batches (every rank takes
its share of each batch), perplexity exp(loss) for a language model, accuracy and macro-F1 for a classifier;
and the text samples a language model writes while it trains.
(The full evaluation report of a finished run is :mod:`engine.lab.evaluate`.)"""

from __future__ import annotations

import math

from engine.lab.distributed import Dist
from engine.lab.train_config import TrainConfig
from engine.lab.train_data import to_device


def evaluate(train_model, raw_model, ds, *, cfg: TrainConfig, dist: Dist, micro: int, context: int, device: str,
             autocast) -> dict:
    """``{"val_loss", "val_ppl"}`` (plus ``"val_acc"``, ``"val_f1"`` for a classifier). Under DDP the
    forward runs on ``raw_model`` (no gradient sync to arm); otherwise on ``train_model`` (compiled or
    FSDP-sharded). Leaves ``train_model`` in training mode."""
    import torch
    import torch.nn.functional as F

    classify = ds.task == "classify"
    model = train_model
    model.eval()
    n_cls = ds.n_classes if classify else 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros((max(n_cls, 1), max(n_cls, 1)), dtype=torch.float64, device=device)
    forward = raw_model if dist.enabled else model
    with torch.no_grad():
        for batch in ds.eval_batches("val", micro, context, cfg.eval_batches, cfg.seed,
                                     rank=dist.rank, world=dist.world, device="cpu"):
            batch = tuple(to_device(t, device) for t in batch)
            if batch[0].shape[0] == 0 and not cfg.fsdp:  # FSDP ranks must run every forward together
                continue
            with autocast():
                if not classify:
                    x, y = batch
                    logits = forward(x).float()
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                else:
                    x, mask, y = batch
                    logits = forward(x, mask).float()
                    loss = F.cross_entropy(logits, y, reduction="sum")
                    pred = logits.argmax(dim=-1)
                    confusion.index_put_((y, pred), torch.ones_like(y, dtype=torch.float64), accumulate=True)
            loss_sum += loss.double()  # sums, so ranks with unequal (even empty) shares weigh by rows
            count += y.numel()
    if dist.enabled:
        import torch.distributed as tdist

        for t in (loss_sum, count, confusion):
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    model.train()
    val_loss = float(loss_sum / count.clamp_min(1))
    out = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 700.0))}
    if classify:
        out.update(_accuracy_and_f1(confusion.cpu()))
    return out


def _accuracy_and_f1(c) -> dict:
    """Accuracy and macro-F1 (the unweighted mean of the per-class F1) from a confusion matrix
    (rows: true class, columns: predicted)."""
    import torch

    tp = c.diag()
    precision = tp / c.sum(0).clamp_min(1e-12)
    recall = tp / c.sum(1).clamp_min(1e-12)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
    return {"val_acc": float(tp.sum() / c.sum().clamp_min(1)), "val_f1": float(f1.mean())}


def sample_text(model, tok, n_tokens: int, *, seed: int, device: str, autocast) -> str:
    """``n_tokens`` generated after an end-of-text token (temperature 0.8, top-k 40, seeded by ``seed``);
    leaves ``model`` in training mode."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    prompt = torch.tensor([[tok.eos_id]], device=device)
    with torch.no_grad(), autocast():
        out = model.generate(prompt, n_tokens, temperature=0.8, top_k=40, generator=gen)
    model.train()
    return tok.decode([i for i in out[0, 1:].tolist() if i not in (tok.pad_id,)])
