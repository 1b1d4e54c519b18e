"""What a training run reads: its dataset and tokenizer (a resumed run reuses its saved tokenizer and must
see the same data), and the micro-batches of each optimizer step for this data-parallel rank."""

from __future__ import annotations

from pathlib import Path

from engine.errors import ValidationError
from engine.lab.distributed import Dist
from engine.lab.train_config import TrainConfig


def load_run_data(cfg: TrainConfig, run_dir: Path, context: int, ckpt=None):
    """The run's :class:`~engine.lab.data.Dataset` and its fingerprint. A resumed run (``ckpt`` given)
    tokenizes with the tokenizer saved in its folder and is refused when the data's fingerprint changed since
    the checkpoint; a LoRA run tokenizes with its source run's tokenizer."""
    from engine.lab.data import DataInput, load_dataset
    from engine.lab.tokenizer import load_tokenizer

    inp = DataInput(path=cfg.data, sample=cfg.sample, task=cfg.task, text_col=cfg.text_col,
                    label_col=cfg.label_col, tokenizer=cfg.tokenizer, bpe_vocab=cfg.bpe_vocab,
                    val_fraction=cfg.val_fraction, seed=cfg.seed)
    tok = None
    if cfg.resume:
        tok_path = run_dir / "tokenizer.json"
        if tok_path.is_file():
            tok = load_tokenizer(tok_path)
    elif cfg.lora_from:
        from engine.lab.lora import source_tokenizer

        tok = source_tokenizer(cfg)
    ds = load_dataset(inp, context, tokenizer=tok)
    fingerprint = ds.fingerprint()
    if ckpt is not None and ckpt.state.get("data_fingerprint") not in (None, fingerprint):
        raise ValidationError(f"the data of {run_dir.name} changed since it was checkpointed "
                              f"(fingerprint differs); resume needs the same data, or start a new run")
    return ds, fingerprint


def to_device(t, device: str):
    """A CPU tensor on ``device`` (pinned memory and a non-blocking copy off the CPU)."""
    if device == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


class BatchFeeder:
    """Each micro-batch of each step: this rank's slice of the step's global batch (pinned memory and
    non-blocking copies on CUDA). The batch is a pure function of seed and step, so a resumed run and an
    N-process run see exactly the batches of an uninterrupted single process."""

    def __init__(self, ds, cfg: TrainConfig, dist: Dist, batch_size: int, context: int, device: str) -> None:
        self.ds, self.cfg, self.dist = ds, cfg, dist
        self.batch_size, self.context, self.device = batch_size, context, device
        self.parts = cfg.grad_accum * dist.world

    def get(self, step: int, micro: int):
        # rank r's micro-batch m is slice r·grad_accum + m of the global batch cut into grad_accum·world parts
        part = self.dist.rank * self.cfg.grad_accum + micro
        batch = self.ds.get_batch("train", step, self.batch_size, self.context, seed=self.cfg.seed, rank=part,
                                  world=self.parts, device="cpu")
        return tuple(to_device(t, self.device) for t in batch)
