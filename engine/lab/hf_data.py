"""The lab's data for a Hugging Face model: its own tokenizer on the lab's inputs.

* Plain language-model data (a text file, an uploaded or checked dataset's text column, a built-in
  sample) goes through :func:`engine.lab.data.load_dataset` unchanged, with the model's tokenizer
  wrapped as a lab :class:`~engine.lab.tokenizer.Tokenizer` (:class:`HFTokenizer`), so the split,
  the windows and the batches are the lab's own: a pure function of (seed, step).
* Instruction data (``prompt_col`` and ``response_col`` of a table): each row becomes the model's chat
  (``apply_chat_template`` with a user and an assistant turn) where it has a template, else
  ``prompt + "\\n" + response + eos``. The labels of the prompt's tokens (and of padding) are -100, so
  the loss falls on the response only (the masking of Ouyang et al. 2022's supervised fine-tuning, and
  TRL's ``completion_only_loss``). Batches are drawn as the lab draws classification batches:
  rows of a seeded permutation per epoch (``default_rng([seed, epoch, split])``), a function of the step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ValidationError
from engine.lab.tokenizer import Tokenizer

IGNORE = -100  # the label PyTorch's cross_entropy ignores (ignore_index default)


class HFTokenizer(Tokenizer):
    """A transformers tokenizer seen through the lab's Tokenizer interface (saved by the model folder)."""

    kind = "hf"

    def __init__(self, tok: Any, vocab_size: int, tokenizer_file: str | None = None):
        self.tok = tok
        self.vocab_size = int(vocab_size)
        self.eos_id = int(tok.eos_token_id)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        self._digest = ""
        if tokenizer_file:
            with open(tokenizer_file, "rb") as fh:
                self._digest = hashlib.sha256(fh.read()).hexdigest()

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int64)

    def encode_batch(self, texts) -> list[list[int]]:
        return [list(x) for x in self.tok(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tokenizer_sha256": self._digest}

    def save(self, path) -> None:  # the model folder's tokenizer files are the saved form
        raise ValidationError("an HF tokenizer is saved with the model folder (save_pretrained), not as lab JSON")


@dataclass
class InstructionData:
    """Tokenized prompt/response rows, split into train and validation, with response-only labels."""

    ids: dict[str, list[np.ndarray]]
    labels: dict[str, list[np.ndarray]]
    pad_id: int
    source: dict

    def n_rows(self, split: str) -> int:
        return len(self.ids[split])

    def describe(self) -> dict:
        return {**self.source, "task": "instruct", "n_train_rows": self.n_rows("train"), "n_val_rows": self.n_rows("val"),
                "n_train_tokens": int(sum(len(r) for r in self.ids["train"])),
                "n_response_tokens": int(sum(int((lab != IGNORE).sum()) for lab in self.labels["train"]))}

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for split in ("train", "val"):
            for a, b in zip(self.ids[split], self.labels[split]):
                h.update(a.tobytes())
                h.update(b.tobytes())
        return h.hexdigest()

    def _rows(self, split: str, step: int, batch_size: int, seed: int) -> np.ndarray:
        n = self.n_rows(split)
        g = step * batch_size + np.arange(batch_size)
        out = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(g // n):
            perm = np.random.default_rng([seed, int(epoch), 0 if split == "train" else 1]).permutation(n)
            sel = g // n == epoch
            out[sel] = perm[g[sel] % n]
        return out

    def _batch(self, split: str, rows: Sequence[int]):
        import torch

        width = max(len(self.ids[split][r]) for r in rows)
        x = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        y = np.full((len(rows), width), IGNORE, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            a, b = self.ids[split][r], self.labels[split][r]
            x[i, :len(a)], y[i, :len(b)], mask[i, :len(a)] = a, b, 1
        return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(y)

    def get_batch(self, step: int, batch_size: int, seed: int, part: int = 0, parts: int = 1):
        """Micro-batch ``part`` of ``parts`` of the global batch of ``step``: (ids, attention mask, labels)."""
        rows = self._rows("train", step, batch_size, seed)
        share = batch_size // parts
        return self._batch("train", rows[part * share:(part + 1) * share])

    def eval_batches(self, batch_size: int, n_batches: int):
        rows = list(range(self.n_rows("val")))[: batch_size * n_batches]
        for i in range(0, len(rows), batch_size):
            yield self._batch("val", rows[i:i + batch_size])


def _pair(tok: Any, chat: bool, prompt: str, response: str, context: int) -> tuple[np.ndarray, np.ndarray]:
    if chat:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=True)
        full = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                       tokenize=True)
        head = list(head["input_ids"] if isinstance(head, dict) or hasattr(head, "keys") else head)
        full = list(full["input_ids"] if isinstance(full, dict) or hasattr(full, "keys") else full)
        if full[:len(head)] != head:  # a template that rewrites the prompt once a reply follows
            raise ValidationError("the model's chat template changes the prompt when the reply is added; "
                                  "the response-only loss cannot be placed")
    else:
        head = list(tok(prompt + "\n", add_special_tokens=False)["input_ids"])
        full = head + list(tok(response, add_special_tokens=False)["input_ids"]) + [int(tok.eos_token_id)]
    full = full[:context]
    labels = [IGNORE] * min(len(head), len(full)) + full[len(head):]
    return np.asarray(full, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def load_instructions(path: str, tok: Any, *, prompt_col: str, response_col: str, context: int, chat: bool,
                      val_fraction: float = 0.1, seed: int = 0) -> InstructionData:
    """Read ``path`` through the one reader (engine.tabular), check both columns, tokenize every row."""
    from engine.lab.sources import resolve_path
    from engine.tabular import open_dataset, read_frame

    p = resolve_path(path)
    ds = open_dataset(p)
    if ds.format == "text":
        raise ValidationError(f"{p.name!r} is plain text; instruction data needs a table with a prompt and a "
                              "response column (CSV, TSV, JSONL, Parquet, Excel)")
    df = read_frame(ds)
    df.columns = [str(c) for c in df.columns]
    for role, col in (("prompt", prompt_col), ("response", response_col)):
        if col not in df.columns:
            raise ValidationError(f"{role} column {col!r} is not in {p.name}; its columns: {', '.join(df.columns)}")
    df = df[[prompt_col, response_col]].dropna()
    if len(df) < 2:
        raise ValidationError(f"{p.name} has {len(df)} rows with both a prompt and a response; give at least 2")
    pairs = [_pair(tok, chat, str(a), str(b), context) for a, b in df.itertuples(index=False)]
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = max(1, int(round(val_fraction * len(pairs))))
    split = {"val": order[:n_val], "train": order[n_val:]}
    ids = {k: [pairs[i][0] for i in v] for k, v in split.items()}
    labels = {k: [pairs[i][1] for i in v] for k, v in split.items()}
    if not any((lab != IGNORE).any() for lab in labels["train"]):
        raise ValidationError(f"every response of {p.name} is cut off by the context ({context} tokens); raise --context")
    return InstructionData(ids=ids, labels=labels, pad_id=int(tok.pad_token_id), source={
        "path": str(p), "prompt_col": prompt_col, "response_col": response_col, "chat_template": chat,
        "n_rows": len(pairs)})
