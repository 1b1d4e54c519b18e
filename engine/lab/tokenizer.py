"""Tokenizers of the model lab. None of them downloads anything.

Three kinds, all saved as JSON (never pickle) next to a run so a resumed run encodes exactly as before:

* ``byte`` (default): ids 0-255 are the UTF-8 bytes, 256 = ``<eos>``, 257 = ``<pad>``; vocab 258.
  Any text round-trips; decoding invalid byte sequences (a model's output) uses ``errors='replace'``.
* ``char``: the sorted set of characters seen in the training texts, then ``<unk>``, ``<eos>``, ``<pad>``
  (specials last, in that order). Unseen characters encode to ``<unk>`` and decode to U+FFFD.
* ``bpe``: a byte-level BPE (Sennrich et al. 2016, with the GPT-2 byte-to-unicode pre-tokenizer of
  Radford et al. 2019) trained locally with the ``tokenizers`` library; ids 0 = ``<pad>``, 1 = ``<eos>``,
  then the 256 byte symbols, then merges (min frequency 2) up to ``vocab_size``. Any text round-trips.

Special ids are counted in ``vocab_size``; ``decode`` drops them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ValidationError, require_choice, require_number

TOKENIZER_KINDS = ("byte", "char", "bpe")
FORMAT = "preflight-tokenizer"
VERSION = 1
BPE_MIN_VOCAB = 260  # 256 byte symbols + <pad> + <eos> + room for at least two merges
BPE_MAX_VOCAB = 1 << 20
MAX_TOKENIZER_FILE = 64 << 20


class Tokenizer:
    """Base class: ``kind``, ``vocab_size`` (specials included), ``pad_id``, ``eos_id``."""

    kind: str = ""
    vocab_size: int = 0
    pad_id: int = 0
    eos_id: int = 0

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as a 1-D int64 array (fast path for big corpora)."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "vocab_size": self.vocab_size,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: two tokenizers with equal fingerprints encode identically."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()

    def save(self, path: Path) -> None:
        """Write the tokenizer as JSON (UTF-8)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes 0-255, ``<eos>`` = 256, ``<pad>`` = 257."""

    kind = "byte"
    vocab_size = 258
    eos_id = 256
    pad_id = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8", errors="surrogatepass"))

    def encode_array(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", errors="surrogatepass"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")


class CharTokenizer(Tokenizer):
    """The characters seen in training, sorted, then ``<unk>``, ``<eos>``, ``<pad>``."""

    kind = "char"

    def __init__(self, chars: Sequence[str]):
        chars = sorted(set(chars))
        if any(len(c) != 1 for c in chars):
            raise ValidationError("char tokenizer: every vocabulary entry must be one character")
        self.chars = chars
        n = len(chars)
        self.unk_id, self.eos_id, self.pad_id = n, n + 1, n + 2
        self.vocab_size = n + 3
        self._index = {c: i for i, c in enumerate(chars)}
        self._codes = np.array([ord(c) for c in chars], dtype=np.int64)  # sorted, as chars are

    def encode(self, text: str) -> list[int]:
        index, unk = self._index, self.unk_id
        return [index.get(c, unk) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        if not text:
            return np.zeros(0, dtype=np.int64)
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(np.int64)
        if not len(self._codes):
            return np.full(len(codes), self.unk_id, dtype=np.int64)
        pos = np.searchsorted(self._codes, codes)
        pos_c = np.minimum(pos, len(self._codes) - 1)
        return np.where(self._codes[pos_c] == codes, pos_c, self.unk_id).astype(np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        n, chars = len(self.chars), self.chars
        out = []
        for i in ids:
            i = int(i)
            if 0 <= i < n:
                out.append(chars[i])
            elif i == self.unk_id:
                out.append("\ufffd")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "unk_id": self.unk_id, "chars": "".join(self.chars)}


class BPETokenizer(Tokenizer):
    """Byte-level BPE from the ``tokenizers`` library, trained on local text only."""

    kind = "bpe"

    def __init__(self, backend: Any):
        self._tok = backend
        self.vocab_size = int(backend.get_vocab_size())
        self.pad_id = backend.token_to_id("<pad>")
        self.eos_id = backend.token_to_id("<eos>")
        if self.pad_id is None or self.eos_id is None:
            raise ValidationError("bpe tokenizer file lacks the <pad>/<eos> special tokens")

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def encode_array(self, text: str) -> np.ndarray:
        # Long texts are encoded line by line (the byte-level pre-tokenizer never merges across a
        # line break except runs of blank lines), so a 1 GB file does not become one giant call.
        if len(text) < (1 << 20):
            return np.asarray(self.encode(text), dtype=np.int64)
        lines = text.splitlines(keepends=True)
        parts = [np.asarray(ids, dtype=np.int64) for ids in self.encode_batch(lines)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        n = self.vocab_size
        return self._tok.decode([int(i) for i in ids if 0 <= int(i) < n], skip_special_tokens=True)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tokenizers": json.loads(self._tok.to_str())}


def _train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    texts = [t for t in texts if t]
    if not any(t.strip() for t in texts):
        raise ValidationError("bpe tokenizer needs training text; the training split is empty")
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte, so nothing is ever <unk>
        show_progress=False,
    )

    def chunks() -> Iterable[str]:  # bounded pieces: one huge string would be one giant word list
        for t in texts:
            if len(t) <= (1 << 20):
                yield t
            else:
                yield from t.splitlines(keepends=True)

    tok.train_from_iterator(chunks(), trainer)
    return BPETokenizer(tok)


def build_tokenizer(kind: str, texts: Iterable[str] | None = None, vocab_size: int = 4096) -> Tokenizer:
    """A new tokenizer of ``kind``; ``char`` and ``bpe`` learn from ``texts`` (the training split)."""
    kind = require_choice("tokenizer", kind, TOKENIZER_KINDS)
    if kind == "byte":
        return ByteTokenizer()
    if texts is None:
        raise ValidationError(f"a {kind} tokenizer is learned from text; give texts (the training split)")
    if isinstance(texts, str):
        texts = [texts]
    if kind == "char":
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        if not seen:
            raise ValidationError("char tokenizer needs training text; the training split is empty")
        return CharTokenizer(sorted(seen))
    vocab_size = int(require_number("bpe vocab size", vocab_size, low=BPE_MIN_VOCAB, high=BPE_MAX_VOCAB, integer=True))
    return _train_bpe(texts, vocab_size)


def tokenizer_from_dict(data: Any) -> Tokenizer:
    """The inverse of ``Tokenizer.to_dict`` (ValidationError on anything else)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError("not a Preflight tokenizer file (format field missing)")
    if data.get("version") != VERSION:
        raise ValidationError(f"tokenizer file version {data.get('version')!r} is not supported; allowed: {VERSION}")
    kind = data.get("kind")
    if kind == "byte":
        tok: Tokenizer = ByteTokenizer()
    elif kind == "char":
        chars = data.get("chars")
        if not isinstance(chars, str):
            raise ValidationError("char tokenizer file has no 'chars' string")
        tok = CharTokenizer(list(chars))
    elif kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        try:
            backend = HFTokenizer.from_str(json.dumps(data.get("tokenizers")))
        except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception on a malformed spec
            raise ValidationError(f"bpe tokenizer file is malformed: {str(exc).splitlines()[0][:120]}") from None
        tok = BPETokenizer(backend)
    else:
        raise ValidationError(f"unknown tokenizer kind {kind!r} in file; allowed: {', '.join(TOKENIZER_KINDS)}")
    for key in ("vocab_size", "pad_id", "eos_id"):
        if data.get(key) != getattr(tok, key):
            raise ValidationError(f"tokenizer file is inconsistent: {key} {data.get(key)!r} != {getattr(tok, key)}")
    return tok


def load_tokenizer(path: Path) -> Tokenizer:
    """Read a tokenizer saved by ``Tokenizer.save``."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ValidationError(f"no tokenizer file at {str(path)!r}") from None
    if size > MAX_TOKENIZER_FILE:
        raise ValidationError(f"tokenizer file {path.name!r} is {size} bytes; the limit is {MAX_TOKENIZER_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"tokenizer file {path.name!r} is not valid JSON: {exc}") from None
    return tokenizer_from_dict(data)
