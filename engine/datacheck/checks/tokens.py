"""``tokens``: how many tokens the text column holds, counted offline.

Tokenizer: a byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant, Radford et al. 2019)
with an 8,000-token vocabulary, trained with the ``tokenizers`` library on the first ``TRAIN_DOCS`` =
5,000 non-empty texts of the file, then run on every row. Nothing is downloaded, and the count
reflects the dataset's own vocabulary; a general 50k–200k tokenizer usually gives a similar or
slightly lower count on English. Files with less than ``MIN_TRAIN_BYTES`` of text fall back to the
``bytes / 4`` rule of thumb (a BPE trained on so little memorizes whole words); the UTF-8 byte count
is always reported as the hard upper bound of any byte-level tokenizer.

Speed: texts are split with GPT-2's pre-tokenization pattern (Python ``re``; ``\\p{L}`` read as
``[^\\W\\d_]``) and each distinct piece is encoded once and cached — the same count as
``Tokenizer.encode`` at a fraction of its per-document overhead. After ``EXACT_BYTES`` (256 MB) of
text the rest is extrapolated from bytes with the measured tokens-per-byte ratio (``method`` says so).

The finding is ``info``: ``count`` = non-empty rows counted; totals and percentiles in ``details``;
A text over ``DOC_CHARS`` (1M characters) is counted exactly on its first 1M characters and the rest
extrapolated at that text's own tokens per byte, so one huge document costs no more than 1 MB of work.

``rows`` = rows longer than ``LONG_TOKENS`` = 2,048 tokens (a common context length), which training
would truncate. ``ctx.shared["tokens"]`` carries the totals for the cost estimator and charts.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from engine.datacheck.base import Check, Context, Finding, MAX_ROWS
from engine.datacheck.text_utils import agree, plural

TRAIN_DOCS = 5_000
VOCAB = 8_000
MIN_TRAIN_BYTES = 200_000
EXACT_BYTES = 256_000_000
LONG_TOKENS = 2_048
SAMPLE_CHARS = 20_000     # the BPE trains on the first this-many characters of each sampled text
DOC_CHARS = 1_000_000     # a longer text: its first 1M characters counted, the rest extrapolated
_GPT2 = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


class _PieceCounts(dict):
    """piece -> number of BPE tokens, filled on first use."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, piece: str) -> int:
        n = len(self.tokenizer.encode(piece, add_special_tokens=False).ids)
        if len(self) < 2_000_000:
            self[piece] = n
        return n


def train_bpe(texts: list[str], vocab_size: int = VOCAB):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def count_tokens(texts: list[str], tokenizer, cache: dict | None = None) -> list[int]:
    """Tokens of each text under ``tokenizer`` (same as ``len(tokenizer.encode(t).ids)``)."""
    counts = cache if cache is not None else _PieceCounts(tokenizer)
    get = counts.__getitem__
    return [sum(map(get, _GPT2.findall(t))) for t in texts]


class Tokens(Check):
    """Total and per-row token counts with a BPE trained offline on the data (info)."""

    id = "tokens"
    title = "Token count (offline BPE)"
    needs = ("text",)

    def start(self, ctx: Context) -> None:
        self.pending_rows: list[int] = []
        self.pending_texts: list[str] = []
        self.tokenizer = None
        self.cache: dict | None = None
        self.train_docs = 0
        self.counted_bytes = 0
        self.counted_tokens = 0
        self.rows: list[np.ndarray] = []
        self.tokens: list[np.ndarray] = []
        self.bytes: list[np.ndarray] = []
        self.exact = True
        self.extrapolated_docs = 0
        self.sample_bytes = 0
        self.sample_cut = False

    @staticmethod
    def texts(chunk: pd.DataFrame, ctx: Context) -> tuple[list[int], list[str]]:
        """The chunk's non-empty texts and their rows."""
        values = chunk[ctx.text_col].tolist() if ctx.text_col in chunk.columns else []
        rows, texts = [], []
        for row, v in zip(chunk.index.tolist(), values):
            if isinstance(v, str) and v.strip():
                rows.append(int(row))
                texts.append(v)
        return rows, texts

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        rows, texts = self.texts(chunk, ctx)
        if self.tokenizer is None:
            self.pending_rows += rows
            self.pending_texts += texts
            if len(self.pending_texts) >= TRAIN_DOCS:
                self._train()
                self._count(self.pending_rows, self.pending_texts)
                self.pending_rows, self.pending_texts = [], []
            return
        self._count(rows, texts)

    def _train(self) -> None:
        sample = [t[:SAMPLE_CHARS] for t in self.pending_texts[:TRAIN_DOCS]]
        self.train_docs = len(sample)
        self.sample_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in sample)
        self.sample_cut = any(len(t) > SAMPLE_CHARS for t in self.pending_texts[:TRAIN_DOCS])
        if self.sample_bytes >= MIN_TRAIN_BYTES:
            self.tokenizer = train_bpe([t.encode("utf-8", "replace").decode("utf-8") for t in sample])
            self.cache = _PieceCounts(self.tokenizer)
        else:
            self.tokenizer = "bytes"

    def _count(self, rows: list[int], texts: list[str]) -> None:
        if not rows:
            return
        nbytes = self.utf8_bytes(texts)
        self.record(rows, nbytes, self.measure(texts, nbytes) if self.counts_exactly(nbytes) else None)

    @staticmethod
    def utf8_bytes(texts: list[str]) -> np.ndarray:
        return np.array([len(t.encode("utf-8", "surrogatepass")) for t in texts], dtype=np.int64)

    def counts_exactly(self, nbytes: np.ndarray) -> bool:
        """Whether the next batch (of these byte sizes) is counted (else extrapolated from the ratio)."""
        return (self.tokenizer == "bytes" or self.counted_bytes + int(nbytes.sum()) <= EXACT_BYTES
                or not self.counted_bytes)

    def measure(self, texts: list[str], nbytes: np.ndarray) -> tuple[np.ndarray, int]:
        """(tokens of each text, how many were over DOC_CHARS and extrapolated from their head): the
        count itself, which depends on nothing but the tokenizer (the Dask engine runs it per shard)."""
        if self.tokenizer == "bytes":
            return np.ceil(nbytes / 4).astype(np.int64), 0
        clean = [t[:DOC_CHARS] for t in texts]
        clean = [t.encode("utf-8", "replace").decode("utf-8") if not t.isascii() else t for t in clean]
        toks = np.array(count_tokens(clean, self.tokenizer, self.cache), dtype=np.int64)
        huge = 0
        for i, t in enumerate(texts):
            if len(t) > DOC_CHARS:  # extrapolate the rest of a huge text at its own ratio
                huge += 1
                head = len(clean[i].encode("utf-8"))
                toks[i] = max(1, round(int(toks[i]) * int(nbytes[i]) / max(head, 1)))
        return toks, huge

    def record(self, rows: list[int] | np.ndarray, nbytes: np.ndarray, measured: tuple[np.ndarray, int] | None) -> None:
        """Add a batch that follows every batch recorded so far: counted (``measured``) while
        :meth:`counts_exactly` says so, else extrapolated at the tokens per byte counted so far."""
        if self.tokenizer == "bytes":
            toks = measured[0] if measured is not None else self.measure([], nbytes)[0]
        elif self.counts_exactly(nbytes):
            assert measured is not None, "a batch counted exactly needs its measured tokens"
            toks, huge = measured
            self.extrapolated_docs += huge
            self.counted_bytes += int(nbytes.sum())
            self.counted_tokens += int(toks.sum())
        else:
            self.exact = False
            ratio = self.counted_tokens / max(self.counted_bytes, 1)
            toks = np.maximum(1, np.round(nbytes * ratio)).astype(np.int64)
        self.rows.append(np.array(rows, dtype=np.int64))
        self.tokens.append(toks)
        self.bytes.append(nbytes)

    def finish(self, ctx: Context) -> list[Finding]:
        if self.tokenizer is None and self.pending_texts:
            self._train()
            self._count(self.pending_rows, self.pending_texts)
            self.pending_rows, self.pending_texts = [], []
        if not self.rows:
            ctx.shared["tokens"] = {"total": 0, "per_row_mean": 0.0, "rows": 0, "tokenizer": "none",
                                    "method": "no non-empty text", "bytes": 0}
            return []
        rows, toks, nbytes = (np.concatenate(x) for x in (self.rows, self.tokens, self.bytes))
        total = int(toks.sum())
        if self.tokenizer == "bytes":
            name = "bytes/4"
            if self.sample_cut:
                method = (f"the training sample (the first {SAMPLE_CHARS:,} characters of each text, "
                          f"{plural(self.train_docs, 'text')}) holds {self.sample_bytes / 1000:,.3g} kB, fewer than "
                          f"{MIN_TRAIN_BYTES // 1000} kB to train a BPE on: tokens ~ UTF-8 bytes / 4 "
                          "(rule of thumb for English)")
            else:
                method = (f"fewer than {MIN_TRAIN_BYTES // 1000} kB of text to train a BPE on: "
                          "tokens ~ UTF-8 bytes / 4 (rule of thumb for English)")
        else:
            name = f"bpe-{VOCAB // 1000}k trained on {self.train_docs:,} docs"
            method = ("exact count with the trained BPE" if self.exact else
                      f"exact for the first {self.counted_bytes / 1e6:,.0f} MB of text, the rest extrapolated "
                      f"at {self.counted_tokens / max(self.counted_bytes, 1):.3f} tokens per byte")
            if self.extrapolated_docs:
                method += (f"; {plural(self.extrapolated_docs, 'text')} over {DOC_CHARS:,} characters counted on "
                           "their first 1M characters and extrapolated")
        long_rows = rows[toks > LONG_TOKENS]
        info = {"total": total, "per_row_mean": round(total / len(toks), 3), "rows": int(len(toks)),
                "tokenizer": name, "method": method, "bytes": int(nbytes.sum()),
                "tokens_per_byte": round(total / max(int(nbytes.sum()), 1), 4),
                "p50": float(np.percentile(toks, 50)), "p95": float(np.percentile(toks, 95)),
                "max": int(toks.max()), "long_threshold": LONG_TOKENS, "long_rows": int(len(long_rows))}
        ctx.shared["tokens"] = info
        fix = "Nothing to fix: use the total to budget training (cost estimator)"
        if len(long_rows):
            fix = (f"{plural(len(long_rows), 'row')} {agree(len(long_rows), 'exceeds', 'exceed')} {LONG_TOKENS:,} tokens and would be truncated "
                   "at that context length: split them into chunks or raise the context length")
        return [Finding(
            id=self.id, severity="info", count=int(len(toks)),
            title=f"≈ {_short(total)} tokens in {plural(len(toks), 'row')} "
                  f"(mean {total / len(toks):,.0f} per row; {name})",
            fix=fix, column=ctx.text_col, rows=long_rows[:MAX_ROWS].tolist(), rows_total=int(len(long_rows)),
            details=info,
        )]


def _short(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
