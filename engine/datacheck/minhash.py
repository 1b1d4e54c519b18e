"""Near-duplicate search: MinHash signatures, LSH banding, exact verification.

* Shingles (Broder 1997, "On the resemblance and containment of documents"): a text is normalized
  (NFKC, casefold, whitespace collapsed), reduced to its word tokens (``\\w+``) joined by one space
  (so punctuation and case never matter), and turned into the *set* of its character 5-grams (byte
  5-grams of the UTF-8, each hashed to 64 bits; texts under 5 bytes are one shingle). Character
  5-grams, not word n-grams, because most fine-tuning data is short (tickets, reviews, prompts): one
  edited word in a 20-word text leaves ~0.87 of the 5-grams but only ~0.71 of the word 3-grams, so a
  "same text, a word changed" pair stays above 0.8. Only the first ``MAX_BYTES`` bytes of a text are
  shingled (long near-copies already agree there), which bounds the cost on long documents.
  Shingling is vectorized with numpy over a whole batch of texts.
* MinHash (Broder 1997): ``NUM_PERM`` = 128 min-wise hashes per text, computed by ``rensa`` (Rust).
  P[two signatures agree at one position] = Jaccard similarity of the shingle sets.
* LSH banding (Leskovec, Rajaraman, Ullman, *Mining of Massive Datasets*, ch. 3.4): the signature is
  cut into ``b`` bands of ``r`` rows; two texts become candidates if any band agrees, with probability
  ``1 - (1 - s^r)^b`` at similarity ``s`` (the S-curve). :func:`lsh_params` picks the largest ``r``
  (fewest false candidates) whose S-curve still gives >= 0.99 at the threshold: at 0.8 that is
  r=6, b=21 (P=0.998 at s=0.8, 0.28 at s=0.5, 0.015 at s=0.3, 0.0013 at s=0.2).
* Verification: every candidate pair's *exact* Jaccard similarity of the shingle sets must reach the
  threshold, so a reported pair is never a hashing accident (precision), and recall at the threshold
  is the S-curve's 0.99.

Buckets are grouped with numpy; a bucket of more than ``BUCKET_CAP`` texts (templated boilerplate)
links every member to its first member and to its neighbour instead of forming all pairs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from engine.datacheck.text_utils import normalize
from engine.errors import ValidationError

NUM_PERM = 128
SEED = 1
CHAR_K = 5
MAX_BYTES = 10_000
# only this many characters of a text are normalized (8x MAX_BYTES: enough for 10 kB of words unless
# the text is mostly punctuation), so a 20 MB document costs no more than an 80 kB one
PREFIX_CHARS = 8 * MAX_BYTES
BATCH_BYTES = 4_000_000
BUCKET_CAP = 50
RECALL_AT_THRESHOLD = 0.99

_WORD = re.compile(r"\w+")
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def check_threshold(threshold: object) -> float:
    """The Jaccard threshold as a float in [0.5, 1.0], else ``ValidationError``."""
    try:
        t = float(threshold)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"near_dup_threshold must be a number in [0.5, 1.0], got {threshold!r}") from None
    if not 0.5 <= t <= 1.0:
        raise ValidationError(f"near_dup_threshold must be in [0.5, 1.0], got {t:g}")
    return t


def prepare(text: object) -> bytes:
    """The bytes that are shingled: normalized word tokens joined by one space, UTF-8, cut to
    ``MAX_BYTES`` (``b""`` for empty or non-string text)."""
    if not isinstance(text, str) or not text:
        return b""
    return prepare_normalized(normalize(text[:PREFIX_CHARS]))


def prepare_normalized(norm: str) -> bytes:
    """:func:`prepare` for a text already passed through ``text_utils.normalize``."""
    return " ".join(_WORD.findall(norm)).encode("utf-8", "surrogatepass")[:MAX_BYTES]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer (Steele et al. 2014): spreads 40-bit windows over 64 bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(encoded: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Hashed character 5-grams of many prepared texts at once: ``(hashes, offsets)`` where text ``i``
    owns ``hashes[offsets[i]:offsets[i + 1]]`` (uint64, with repeats; empty for an empty text).

    The texts are joined with zero bytes (never inside a prepared text); every 5-byte window is read
    as a 40-bit integer with contiguous numpy slices, and the windows holding a zero byte are dropped.
    A text shorter than 5 bytes is one zero-padded window."""
    n = len(encoded)
    lens = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=n)
    nwin = np.where(lens >= CHAR_K, lens - CHAR_K + 1, (lens > 0).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(nwin)]).astype(np.int64)
    if not offsets[-1]:
        return np.empty(0, dtype=np.uint64), offsets
    buf = np.frombuffer(b"\0".join(encoded) + b"\0" * CHAR_K, dtype=np.uint8)
    npos = len(buf) - CHAR_K + 1
    value = np.zeros(npos, dtype=np.uint64)
    for k in range(CHAR_K):
        value = (value << np.uint64(8)) | buf[k : k + npos].astype(np.uint64)
    zeros = np.concatenate([[0], np.cumsum(buf == 0)])
    valid = zeros[CHAR_K : CHAR_K + npos] == zeros[:npos]
    starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
    for d in np.flatnonzero((lens > 0) & (lens < CHAR_K)).tolist():
        value[starts[d]] = int.from_bytes(encoded[d].ljust(CHAR_K, b"\0"), "big")
        valid[starts[d]] = True
    return _mix(value[valid]), offsets


def shingles(text: object) -> set[int]:
    """The shingle set of one text (hashed character 5-grams; empty for empty/non-string text)."""
    return shingles_of(prepare(text))


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity |a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def signatures(texts: Sequence[str] | None = None, *, encoded: Sequence[bytes] | None = None,
               num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signatures (``rensa``), an ``(n, num_perm)`` uint32 array; rows of texts without any
    shingle are all-max. Pass ``texts`` or already :func:`prepare`-d ``encoded`` bytes. Batches of
    ``BATCH_BYTES`` keep the temporary arrays small."""
    import rensa

    enc = list(encoded) if encoded is not None else [prepare(t) for t in texts or []]
    out = np.full((len(enc), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    i = 0
    while i < len(enc):
        j, size = i, 0
        while j < len(enc) and (size < BATCH_BYTES or j == i):
            size += len(enc[j]) + 1
            j += 1
        full = [k for k in range(i, j) if enc[k]]
        if full:
            hashes, offsets = shingle_hashes([enc[k] for k in full])
            matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
                hashes, offsets.astype(np.uint64), num_perm, SEED)
            out[full] = np.array(matrix.to_rows(), dtype=np.uint32)
        i = j
    return out


def lsh_params(threshold: float, num_perm: int = NUM_PERM, recall: float = RECALL_AT_THRESHOLD) -> tuple[int, int]:
    """``(r, b)``: the largest rows-per-band ``r`` (with ``b = num_perm // r`` bands) whose S-curve
    ``1 - (1 - t^r)^b`` still reaches ``recall`` at similarity ``t`` (MMDS ch. 3.4.2)."""
    best = (1, num_perm)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1 - (1 - threshold**r) ** b >= recall:
            best = (r, b)
    return best


def band_hashes(sigs: np.ndarray, r: int, b: int) -> np.ndarray:
    """One 64-bit hash per band (FNV-1a over the band's ``r`` 32-bit values): ``(n, b)`` uint64."""
    sig = sigs.astype(np.uint64)
    out = np.empty((len(sigs), b), dtype=np.uint64)
    for k in range(b):
        h = np.full(len(sigs), _FNV_OFFSET ^ np.uint64(k), dtype=np.uint64)
        for j in range(k * r, (k + 1) * r):
            h = (h ^ sig[:, j]) * _FNV_PRIME
        out[:, k] = h
    return out


def candidate_pairs(bands: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Unique ``(i, j)`` with ``i < j`` (positions in ``bands``) sharing at least one band: an
    ``(m, 2)`` int64 array. Rows where ``valid`` is False take no part."""
    n = len(bands)
    idx = np.arange(n) if valid is None else np.flatnonzero(valid)
    found: list[np.ndarray] = []
    for k in range(bands.shape[1]):
        col = bands[idx, k]
        order = np.argsort(col, kind="stable")
        s = col[order]
        same = s[1:] == s[:-1]
        if not same.any():
            continue
        members = idx[order]
        found.append(np.stack([members[:-1][same], members[1:][same]], axis=1))  # neighbours
        # runs of 3+ members: all pairs (or first-member star when huge)
        start = np.flatnonzero(np.concatenate([[True], ~same]))
        length = np.diff(np.concatenate([start, [len(s)]]))
        for a, m in zip(start[length >= 3], length[length >= 3]):
            run = members[a : a + m]
            if m <= BUCKET_CAP:
                i, j = np.triu_indices(m, 1)
                found.append(np.stack([run[i], run[j]], axis=1))
            else:
                found.append(np.stack([np.full(m - 1, run[0]), run[1:]], axis=1))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.sort(np.concatenate(found).astype(np.int64), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def text_hash(norm: str) -> int:
    """Stable 64-bit hash of a normalized text (exact-duplicate detection across chunks)."""
    return int.from_bytes(hashlib.blake2b(norm.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def near_duplicate_pairs(texts_a: Sequence[str], texts_b: Sequence[str] | None = None,
                         threshold: float = 0.8, *, exclude_exact: bool = False) -> list[tuple[int, int, float]]:
    """Pairs of near-duplicate texts, verified by exact shingle Jaccard ``>= threshold``.

    Without ``texts_b``: ``(i, j, jaccard)`` with ``i < j`` indices into ``texts_a``. With ``texts_b``:
    ``(i, j, jaccard)`` with ``i`` into ``texts_a`` and ``j`` into ``texts_b`` (near train/test leakage).
    ``exclude_exact`` drops pairs whose normalized texts are identical. Sorted by ``(i, j)``.
    """
    threshold = check_threshold(threshold)
    texts = list(texts_a) + (list(texts_b) if texts_b is not None else [])
    na = len(texts_a)
    enc = [prepare(t) for t in texts]
    valid = np.array([bool(e) for e in enc], dtype=bool)
    if not valid.any():
        return []
    r, b = lsh_params(threshold)
    pairs = candidate_pairs(band_hashes(signatures(encoded=enc), r, b), valid=valid)
    if texts_b is not None:
        pairs = pairs[(pairs[:, 0] < na) & (pairs[:, 1] >= na)]
    sets = shingle_sets({i: enc[i] for i in np.unique(pairs).tolist()})
    out = []
    for i, j in pairs.tolist():
        sim = jaccard(sets[i], sets[j])
        if sim >= threshold and not (exclude_exact and enc[i] == enc[j] and normalize(texts[i]) == normalize(texts[j])):
            out.append((i, j - na if texts_b is not None else j, sim))
    return sorted(out)


def shingle_sets(encoded: dict[int, bytes]) -> dict[int, set[int]]:
    """Shingle sets of many prepared texts (key -> bytes), hashed in batches."""
    keys = list(encoded)
    out: dict[int, set[int]] = {}
    for a in range(0, len(keys), 20_000):
        part = keys[a : a + 20_000]
        hashes, offsets = shingle_hashes([encoded[k] for k in part])
        for k, lo, hi in zip(part, offsets[:-1].tolist(), offsets[1:].tolist()):
            out[k] = set(hashes[lo:hi].tolist())
    return out


def shingles_of(encoded: bytes) -> set[int]:
    """The shingle set of one already :func:`prepare`-d text."""
    hashes, _ = shingle_hashes([encoded])
    return set(hashes.tolist())


class UnionFind:
    """Disjoint sets over arbitrary hashable keys (path halving, union by smaller root)."""

    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, x):
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the root is the cluster's earliest member

    def groups(self) -> list[list]:
        out: dict = {}
        for x in list(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values()]
