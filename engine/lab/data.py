"""Data of the model lab: read a file or a built-in sample, split it, tokenize it, and draw batches.

Split policy (reproducible, stated in ``Dataset.describe()``):

* ``lm``: the last ``val_fraction`` of the corpus text is validation (nanoGPT's policy). The cut is
  made in characters at ``(1 - val_fraction)`` of the text and moved forward to the next line break
  (or space) within 1,000 characters; documents (rows, stories) before it are train, after it
  validation. Independent of the seed. Each document is followed by ``<eos>`` in the token stream.
* ``classify``: a seeded, label-stratified shuffle (``numpy.random.default_rng(seed)``): from each
  label, ``round(val_fraction * n_label)`` rows go to validation.

Batches are a pure function of ``(seed, step, split, batch_size)`` and of nothing else (no state, no
epoch counter): the *global* batch of ``batch_size`` rows is drawn, and rank ``r`` of ``world`` takes
the contiguous slice ``[r*B/world, (r+1)*B/world)``. So one process with batch B sees exactly what
two processes with B/2 each see together, and a run resumed at step k draws what it would have drawn.

* ``lm``: ``batch_size`` random windows, starts from ``default_rng([seed, step, 0|1])`` (0 = train,
  1 = val); returns ``(x, y)`` with ``y`` = ``x`` shifted by one token.
* ``classify``: epochs without replacement: global example ``g = step*B + i`` is row
  ``perm_e[g mod n]`` of the permutation ``default_rng([seed, e, 0|1]).permutation(n)``,
  ``e = g div n``. Returns ``(x, mask, y)``, right-padded with ``pad_id`` to the longest row of the
  global batch (at most ``context``), so every rank pads to the same length as a single process.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import ValidationError, require_choice, require_number
from engine.lab.corpora import CORPORA, generate_corpus
from engine.lab.sources import read_rows, resolve_path, sort_labels
from engine.lab.tokenizer import TOKENIZER_KINDS, BPE_MAX_VOCAB, BPE_MIN_VOCAB, Tokenizer, build_tokenizer

if TYPE_CHECKING:  # torch is imported where batches are made, so listing uploads stays light
    import torch

TASKS = ("lm", "classify")
MAX_CLASSES = 1000
_SNAP = 1000  # how far the lm cut may move forward to reach a line break
_SPLIT_CODE = {"train": 0, "val": 1}


# --- input ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataInput:
    """Where the data comes from and how to read it. Exactly one of ``path`` (a file, or the name of a
    file uploaded on the data-checks page) and ``sample`` (a key of ``CORPORA``)."""

    path: str | None = None
    sample: str | None = None
    task: str = "lm"
    text_col: str | None = None
    label_col: str | None = None
    tokenizer: str = "byte"
    bpe_vocab: int = 4096
    val_fraction: float = 0.1
    seed: int = 0
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.sample is None):
            raise ValidationError("give --data PATH or --sample NAME (exactly one)")
        if self.path is not None and (not isinstance(self.path, (str, Path)) or not str(self.path).strip()):
            raise ValidationError(f"data path must be a file path, got {self.path!r}")
        if self.sample is not None:
            object.__setattr__(self, "sample", require_choice("sample", self.sample, CORPORA))
        object.__setattr__(self, "task", require_choice("task", self.task, TASKS))
        object.__setattr__(self, "tokenizer", require_choice("tokenizer", self.tokenizer, TOKENIZER_KINDS))
        for name in ("text_col", "label_col"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"{name} must be a column name, got {value!r}")
        object.__setattr__(self, "bpe_vocab", int(require_number(
            "bpe_vocab", self.bpe_vocab, low=BPE_MIN_VOCAB, high=BPE_MAX_VOCAB, integer=True)))
        object.__setattr__(self, "val_fraction", float(require_number(
            "val_fraction", self.val_fraction, low=0.0, high=0.5, low_inclusive=False)))
        object.__setattr__(self, "seed", int(require_number("seed", self.seed, low=0, high=2**63 - 1, integer=True)))
        if self.max_bytes is not None:
            object.__setattr__(self, "max_bytes", int(require_number("max_bytes", self.max_bytes, low=1, integer=True)))
        if self.sample is not None and self.task == "classify" and CORPORA[self.sample].task != "classify":
            allowed = ", ".join(k for k, v in CORPORA.items() if v.task == "classify")
            raise ValidationError(f"sample {self.sample!r} has no labels (an lm corpus); for classify use: {allowed}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class _Raw:
    texts: list[str]
    labels: list[str] | None
    source: dict[str, Any]


def _load_raw(inp: DataInput) -> _Raw:
    if inp.sample is not None:
        corpus = generate_corpus(inp.sample, seed=0)
        labels = corpus.labels if inp.task == "classify" else None
        return _Raw(list(corpus.texts), labels, {"sample": inp.sample, "format": "sample"})
    rows = read_rows(resolve_path(inp.path), inp.task, inp.text_col, inp.label_col, inp.max_bytes)
    return _Raw(rows.texts, rows.labels, rows.source)


# --- splitting ------------------------------------------------------------------------------------

def _split_lm(docs: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    total = sum(len(d) for d in docs)
    cut = int(round(total * (1.0 - val_fraction)))
    train: list[str] = []
    val: list[str] = []
    start = 0
    for d in docs:
        end = start + len(d)
        if end <= cut:
            train.append(d)
        elif start >= cut:
            val.append(d)
        else:
            o = cut - start
            nl = d.find("\n", o, o + _SNAP)
            if nl >= 0:
                p = nl + 1
            else:
                m = re.compile(r"\s").search(d, o, o + _SNAP)
                p = m.end() if m else o
            if d[:p]:
                train.append(d[:p])
            if d[p:]:
                val.append(d[p:])
        start = end
    return train, val


def _split_classify(labels: list[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    perm = np.random.default_rng(seed).permutation(n)
    lab = np.asarray(labels, dtype=object)[perm]
    is_val = np.zeros(n, dtype=bool)
    groups = {name: np.flatnonzero(lab == name) for name in sorted(set(labels))}
    quota = {name: int(round(val_fraction * len(idx))) for name, idx in groups.items()}
    if sum(quota.values()) == 0:
        biggest = max(groups, key=lambda k: (len(groups[k]), k))
        if len(groups[biggest]) >= 2:
            quota[biggest] = 1
    for name, idx in groups.items():
        is_val[idx[: quota[name]]] = True
    return perm[~is_val], perm[is_val]


# --- encoding -------------------------------------------------------------------------------------

def _stream_dtype(tok: Tokenizer) -> type:
    return np.uint16 if tok.vocab_size <= 65536 else np.int32


def _encode_docs(tok: Tokenizer, docs: list[str]) -> np.ndarray:
    eos = np.array([tok.eos_id], dtype=np.int64)
    dtype = _stream_dtype(tok)
    if tok.kind == "bpe" and docs and all(len(d) < (1 << 20) for d in docs):
        parts = [np.asarray(ids, dtype=np.int64) for ids in tok.encode_batch(docs)]
    else:
        parts = [tok.encode_array(d) for d in docs]
    out = []
    for p in parts:
        out.append(p)
        out.append(eos)
    return np.concatenate(out).astype(dtype) if out else np.zeros(0, dtype=dtype)


def _encode_rows(tok: Tokenizer, texts: list[str], context: int) -> tuple[list[np.ndarray], int]:
    dtype = _stream_dtype(tok)
    if tok.kind == "bpe":
        encoded = tok.encode_batch(texts)
    else:
        encoded = [tok.encode_array(t) for t in texts]
    rows, truncated = [], 0
    for ids in encoded:
        arr = np.asarray(ids, dtype=np.int64)
        if len(arr) == 0:
            arr = np.array([tok.eos_id], dtype=np.int64)
        if len(arr) > context:
            truncated += 1
            arr = arr[:context]
        rows.append(arr.astype(dtype))
    return rows, truncated


# --- the dataset ----------------------------------------------------------------------------------

def _check_int(name: str, value: object, low: int) -> int:
    return int(require_number(name, value, low=low, integer=True))


class Dataset:
    """A tokenized, split dataset. ``lm``: ``train_ids``/``val_ids`` token streams. ``classify``:
    ``train_x``/``val_x`` (token arrays) with ``train_y``/``val_y`` (indices into ``label_names``)."""

    def __init__(self, *, task: str, tokenizer: Tokenizer, context: int, data_input: DataInput,
                 source: dict[str, Any], train_ids: np.ndarray | None = None, val_ids: np.ndarray | None = None,
                 train_x: list[np.ndarray] | None = None, train_y: np.ndarray | None = None,
                 val_x: list[np.ndarray] | None = None, val_y: np.ndarray | None = None,
                 label_names: list[str] | None = None, extra: dict[str, Any] | None = None):
        self.task = task
        self.tokenizer = tokenizer
        self.context = context
        self.data_input = data_input
        self.source = source
        self.train_ids, self.val_ids = train_ids, val_ids
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y
        self.label_names = label_names or []
        self.extra = extra or {}
        self._perm_cache: dict[tuple[str, int, int], np.ndarray] = {}

    # sizes
    @property
    def n_train_tokens(self) -> int:
        if self.task == "lm":
            return int(len(self.train_ids))
        return int(sum(len(r) for r in self.train_x))

    @property
    def n_val_tokens(self) -> int:
        if self.task == "lm":
            return int(len(self.val_ids))
        return int(sum(len(r) for r in self.val_x))

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def n_examples(self, split: str) -> int:
        """Rows (classify) or tokens (lm) in ``split``."""
        split = require_choice("split", split, _SPLIT_CODE)
        if self.task == "lm":
            return int(len(self.train_ids if split == "train" else self.val_ids))
        return len(self.train_x if split == "train" else self.val_x)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "source": dict(self.source),
            "tokenizer": self.tokenizer.kind,
            "vocab_size": self.tokenizer.vocab_size,
            "context": self.context,
            "n_train_tokens": self.n_train_tokens,
            "n_val_tokens": self.n_val_tokens,
            "val_fraction": self.data_input.val_fraction,
            "seed": self.data_input.seed,
        }
        if self.task == "lm":
            out["split"] = "last val_fraction of the text (nanoGPT); seed-independent"
        else:
            out["split"] = "seeded stratified shuffle of rows"
            out["n_train"] = len(self.train_x)
            out["n_val"] = len(self.val_x)
            out["label_names"] = list(self.label_names)
            out["train_label_counts"] = {n: int(c) for n, c in zip(
                self.label_names, np.bincount(self.train_y, minlength=self.n_classes), strict=True)}
            out["val_label_counts"] = {n: int(c) for n, c in zip(
                self.label_names, np.bincount(self.val_y, minlength=self.n_classes), strict=True)}
        out.update(self.extra)
        return out

    def to_dict(self) -> dict[str, Any]:
        return self.describe()

    def fingerprint(self) -> str:
        """sha256 over tokenizer and token data: equal fingerprints mean identical batches."""
        h = hashlib.sha256(self.tokenizer.fingerprint().encode())
        h.update(self.task.encode())
        if self.task == "lm":
            for a in (self.train_ids, self.val_ids):
                h.update(str(len(a)).encode())
                h.update(np.ascontiguousarray(a).tobytes())
        else:
            for xs, ys in ((self.train_x, self.train_y), (self.val_x, self.val_y)):
                h.update(np.asarray([len(r) for r in xs], dtype=np.int64).tobytes())
                for r in xs:
                    h.update(r.tobytes())
                h.update(np.asarray(ys, dtype=np.int64).tobytes())
            h.update("\x00".join(self.label_names).encode())
        return h.hexdigest()

    # batches
    def _check(self, split: str, batch_size: int, context: int, rank: int, world: int,
               divisible: bool = True) -> tuple[str, int, int]:
        split = require_choice("split", split, _SPLIT_CODE)
        batch_size = _check_int("batch_size", batch_size, 1)
        context = _check_int("context", context, 1)
        world = _check_int("world size", world, 1)
        rank = _check_int("rank", rank, 0)
        if rank >= world:
            raise ValidationError(f"rank {rank} must be below the world size {world}")
        if divisible and batch_size % world:
            raise ValidationError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
        if self.task == "lm":
            n = len(self.train_ids if split == "train" else self.val_ids)
            if n < context + 1:
                raise ValidationError(f"the {split} split has {n} tokens, fewer than context + 1 = {context + 1}")
        elif self.n_examples(split) == 0:
            raise ValidationError(f"the {split} split has no rows")
        return split, batch_size, context

    def _lm_batch(self, ids: np.ndarray, starts: np.ndarray, context: int, device: Any) -> tuple[torch.Tensor, ...]:
        import torch

        window = ids[starts[:, None] + np.arange(context + 1)[None, :]].astype(np.int64)
        x = torch.from_numpy(np.ascontiguousarray(window[:, :-1]))
        y = torch.from_numpy(np.ascontiguousarray(window[:, 1:]))
        return x.to(device), y.to(device)

    def _cls_batch(self, xs: list[np.ndarray], ys: np.ndarray, rows: np.ndarray, mine: np.ndarray,
                   context: int, device: Any) -> tuple[torch.Tensor, ...]:
        """Rows ``mine`` of the global batch ``rows``, padded to the global batch's longest row."""
        import torch

        T = max(1, min(context, max((len(xs[i]) for i in rows), default=1)))
        pad = self.tokenizer.pad_id
        x = np.full((len(mine), T), pad, dtype=np.int64)
        mask = np.zeros((len(mine), T), dtype=bool)
        for j, i in enumerate(mine):
            r = xs[i][:T]
            x[j, : len(r)] = r
            mask[j, : len(r)] = True
        y = np.asarray(ys, dtype=np.int64)[mine]
        return (torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device), torch.from_numpy(y).to(device))

    def _perm(self, split: str, seed: int, epoch: int, n: int) -> np.ndarray:
        key = (split, seed, epoch)
        perm = self._perm_cache.get(key)
        if perm is None:
            perm = np.random.default_rng([seed, epoch, _SPLIT_CODE[split]]).permutation(n)
            if len(self._perm_cache) >= 8:
                self._perm_cache.pop(next(iter(self._perm_cache)))
            self._perm_cache[key] = perm
        return perm

    def batch_indices(self, split: str, step: int, batch_size: int, context: int, *, seed: int) -> np.ndarray:
        """The global batch of ``step``: window starts (lm) or row indices (classify)."""
        split, batch_size, context = self._check(split, batch_size, context, 0, 1)
        step = _check_int("step", step, 0)
        seed = _check_int("seed", seed, 0)
        if self.task == "lm":
            n = len(self.train_ids if split == "train" else self.val_ids)
            rng = np.random.default_rng([seed, step, _SPLIT_CODE[split]])
            return rng.integers(0, n - context, size=batch_size)
        n = self.n_examples(split)
        g = step * batch_size + np.arange(batch_size, dtype=np.int64)
        epochs, pos = np.divmod(g, n)
        out = np.empty(batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(split, seed, int(e), n)[pos[sel]]
        return out

    def get_batch(self, split: str, step: int, batch_size: int, context: int, *, seed: int, rank: int = 0,
                  world: int = 1, device: Any = "cpu") -> tuple[torch.Tensor, ...]:
        """Rank ``rank``'s share of the global batch of ``step``: ``(x, y)`` for lm, ``(x, mask, y)`` for
        classify. A pure function of its arguments (see the module docstring)."""
        split, batch_size, context = self._check(split, batch_size, context, rank, world)
        idx = self.batch_indices(split, step, batch_size, context, seed=seed)
        share = batch_size // world
        mine = idx[rank * share:(rank + 1) * share]
        if self.task == "lm":
            return self._lm_batch(self.train_ids if split == "train" else self.val_ids, mine, context, device)
        xs, ys = (self.train_x, self.train_y) if split == "train" else (self.val_x, self.val_y)
        return self._cls_batch(xs, ys, idx, mine, context, device)

    def eval_batches(self, split: str, batch_size: int, context: int, n_batches: int | None = None, seed: int = 0,
                     *, rank: int = 0, world: int = 1, device: Any = "cpu") -> Iterator[tuple[torch.Tensor, ...]]:
        """The same batches at every evaluation. lm: ``n_batches`` of fixed random windows (default:
        enough to cover the split once, at most 50), drawn from a stream apart from training's.
        classify: the split's rows in order, ``batch_size`` at a time (all of them when ``n_batches`` is
        None). With ``world`` > 1 each rank gets its ``np.array_split`` share of every batch (contiguous;
        ``batch_size`` need not divide; a share may have 0 rows); weight a mean by rows."""
        split, batch_size, context = self._check(split, batch_size, context, rank, world, divisible=False)
        seed = _check_int("seed", seed, 0)
        if n_batches is not None:
            n_batches = _check_int("n_batches", n_batches, 1)
        code = _SPLIT_CODE[split]
        if self.task == "lm":
            ids = self.train_ids if split == "train" else self.val_ids
            if n_batches is None:
                n_batches = max(1, min(50, math.ceil(len(ids) / (batch_size * context))))
            for i in range(n_batches):
                starts = np.random.default_rng([seed, i, 2 + code]).integers(0, len(ids) - context, size=batch_size)
                yield self._lm_batch(ids, np.array_split(starts, world)[rank], context, device)
            return
        xs, ys = (self.train_x, self.train_y) if split == "train" else (self.val_x, self.val_y)
        total = math.ceil(len(xs) / batch_size)
        for i in range(total if n_batches is None else min(total, n_batches)):
            rows = np.arange(i * batch_size, min(len(xs), (i + 1) * batch_size))
            mine = np.array_split(rows, world)[rank]
            yield self._cls_batch(xs, ys, rows, mine, context, device)


# --- loading --------------------------------------------------------------------------------------

def _too_short(n: int, split: str, context: int, inp: DataInput, total: int) -> ValidationError:
    where = "validation split" if split == "val" else "training split"
    return ValidationError(
        f"corpus has {total} tokens ({where}: {n}, val_fraction {inp.val_fraction:g}); the model's context is "
        f"{context} tokens and each split needs at least {context + 2}; use a smaller preset or more data")


def load_dataset(inp: DataInput, context: int, tokenizer: Tokenizer | None = None) -> Dataset:
    """Read, split and tokenize ``inp``. ``tokenizer`` given (a resumed run's saved one) is reused;
    otherwise one of kind ``inp.tokenizer`` is built from the training split's texts."""
    if not isinstance(inp, DataInput):
        raise ValidationError(f"data input must be a DataInput, got {type(inp).__name__}")
    context = _check_int("context", context, 1)
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise ValidationError(f"tokenizer must be a Tokenizer, got {type(tokenizer).__name__}")
    raw = _load_raw(inp)

    if inp.task == "lm":
        train_docs, val_docs = _split_lm(raw.texts, inp.val_fraction)
        tok = tokenizer or build_tokenizer(inp.tokenizer, train_docs, inp.bpe_vocab)
        train_ids = _encode_docs(tok, train_docs)
        val_ids = _encode_docs(tok, val_docs)
        total = len(train_ids) + len(val_ids)
        for split, ids in (("train", train_ids), ("val", val_ids)):
            if len(ids) < context + 2:
                raise _too_short(len(ids), split, context, inp, total)
        extra = {"n_train_docs": len(train_docs), "n_val_docs": len(val_docs)}
        return Dataset(task="lm", tokenizer=tok, context=context, data_input=inp, source=raw.source,
                       train_ids=train_ids, val_ids=val_ids, extra=extra)

    labels = raw.labels or []
    label_col = raw.source.get("label_col") or "label"
    if not labels:
        raise ValidationError(f"label column {label_col!r} has no values; classification needs labelled rows")
    names = sort_labels(sorted(set(labels)))
    if len(names) < 2:
        raise ValidationError(f"label column {label_col!r} has a single value {names[0]!r}; "
                              "classification needs at least 2")
    if len(names) > MAX_CLASSES or (len(labels) >= 20 and len(names) > len(labels) // 2):
        raise ValidationError(f"label column {label_col!r} has {len(names)} distinct values in {len(labels)} rows; "
                              f"that looks like text or an id, not a label (at most {MAX_CLASSES} classes)")
    train_idx, val_idx = _split_classify(labels, inp.val_fraction, inp.seed)
    index = {n: i for i, n in enumerate(names)}
    y_all = np.array([index[v] for v in labels], dtype=np.int64)
    if len(val_idx) == 0:
        raise ValidationError(f"{len(labels)} labelled rows leave none for validation at val_fraction "
                              f"{inp.val_fraction:g}; give more rows or a larger val_fraction")
    if len(np.unique(y_all[train_idx])) < 2:
        raise ValidationError(f"the training split has a single label; give more rows per label "
                              f"(labels: {', '.join(names[:10])})")
    train_texts = [raw.texts[i] for i in train_idx]
    val_texts = [raw.texts[i] for i in val_idx]
    tok = tokenizer or build_tokenizer(inp.tokenizer, train_texts, inp.bpe_vocab)
    train_x, t1 = _encode_rows(tok, train_texts, context)
    val_x, t2 = _encode_rows(tok, val_texts, context)
    extra = {"n_truncated_rows": t1 + t2}
    return Dataset(task="classify", tokenizer=tok, context=context, data_input=inp, source=raw.source,
                   train_x=train_x, train_y=y_all[train_idx], val_x=val_x, val_y=y_all[val_idx],
                   label_names=names, extra=extra)
