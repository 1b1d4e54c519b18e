"""Perplexity and bits per byte of a Hugging Face model folder, or of a run that fine-tuned one, on the lab's
validation split (engine/lab/data.py) through the model's own tokenizer (engine/lab/hf_data.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from engine.errors import ValidationError


def _folder(hf_model: str | None, run: str | None) -> Path:
    """The folder to score: ``hf_model``, or a fine-tuning run's merged folder (engine.lab.hf_train.merged_folder)."""
    if bool(hf_model) == bool(run):
        raise ValidationError("give exactly one of --hf-model DIR or --run DIR")
    if hf_model:
        from engine.lab.hf_model import inspect_folder

        return inspect_folder(hf_model).path
    from engine.lab.hf_train import merged_folder

    return merged_folder(run)


def evaluate_hf(*, hf_model: str | None = None, run: str | None = None, data: str | None = None,
                sample: str | None = None, context: int = 128, max_windows: int = 16) -> dict:
    """Perplexity and bits per byte on the validation split of ``data``/``sample`` (the lab's split), in
    non-overlapping windows of ``context`` tokens: bits/byte = Σ nats / ln 2 / UTF-8 bytes of the targets."""
    import torch
    import torch.nn.functional as F

    from engine.lab.data import DataInput, load_dataset
    from engine.lab.hf_data import HFTokenizer
    from engine.lab.hf_model import load_hf

    folder = _folder(hf_model, run)
    if run and not (data or sample):  # the run's own data and split
        from engine.store import resolve_run_dir

        saved = json.loads((resolve_run_dir(run) / "config.json").read_text(encoding="utf-8"))["hf_train"]
        if saved.get("prompt_col"):
            raise ValidationError("this run trained on instruction pairs; give --data FILE (plain text) to score")
        data, sample = saved.get("data"), saved.get("sample")
    if not (data or sample):
        raise ValidationError("give --data PATH or --sample NAME to evaluate a model folder on")
    loaded = load_hf(folder, seq_len=context)
    tok = HFTokenizer(loaded.tokenizer, loaded.folder.vocab_size, str(loaded.folder.path / "tokenizer.json"))
    ds = load_dataset(DataInput(path=data, sample=sample, task="lm"), context, tokenizer=tok)
    ids = torch.as_tensor(ds.val_ids.astype("int64"))
    nats, tokens, n_bytes = 0.0, 0, 0
    with torch.no_grad():
        for w in range(min(max_windows, (len(ids) - 1) // context)):
            x = ids[w * context:(w + 1) * context][None]
            y = ids[w * context + 1:(w + 1) * context + 1]
            logits = loaded.model(input_ids=x).logits[0].float()
            nats += float(F.cross_entropy(logits, y, reduction="sum"))
            tokens += len(y)
            n_bytes += len(loaded.tokenizer.decode(y.tolist()).encode("utf-8"))
    if not tokens:
        raise ValidationError(f"the validation split has fewer than {context + 1} tokens; give more data or a smaller --context")
    loss = nats / tokens
    return {"folder": str(folder), "val_loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_byte": nats / math.log(2) / max(n_bytes, 1), "tokens": tokens, "bytes": n_bytes,
            "context": context, "split": "val"}


# ---- what the serving calibration and the benchmarks take (engine/infer/serve_calibrate.py) -----------
