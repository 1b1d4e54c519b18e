"""Benchmark of the near-duplicate search: 100,000 short documents with planted near-copies.

Documents are 20–60 words drawn from a seeded Zipf-like vocabulary (so unrelated documents share
common words, like real text). ``--pairs`` of them get a near-copy with 1–3 word edits whose true
shingle Jaccard (``engine.datacheck.minhash.shingles``) is >= the threshold; the rest are random.
Prints the wall time of ``near_duplicate_pairs`` and of the streaming ``near_duplicates`` check, and
recall/precision on the planted pairs.

    .venv/bin/python bench/near_duplicates.py [--docs 100000] [--pairs 5000] [--threshold 0.8]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import pandas as pd

from engine.datacheck import minhash
from engine.datacheck.base import Context
from engine.datacheck.checks.near_duplicates import NearDuplicates


def make_corpus(n_docs: int, n_pairs: int, threshold: float, seed: int = 0):
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(20_000)})
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(vocab))]  # Zipf
    cum = np.cumsum(weights) / sum(weights)
    nprng = np.random.default_rng(seed)

    def doc(n: int) -> list[str]:
        return [vocab[i] for i in np.searchsorted(cum, nprng.random(n))]

    base = [doc(rng.randint(20, 60)) for _ in range(n_docs - n_pairs)]
    copies, sources = [], []
    for src in range(n_pairs):
        words = base[src]
        for edits in (3, 2, 1, 1, 1):
            w = list(words)
            for _ in range(edits):
                op, at = rng.random(), rng.randrange(len(w))
                if op < 0.6:
                    w[at] = rng.choice(vocab)
                elif op < 0.8:
                    w.insert(at, rng.choice(vocab))
                else:
                    del w[at]
            sim = minhash.jaccard(minhash.shingles(" ".join(words)), minhash.shingles(" ".join(w)))
            if sim >= threshold and w != words:
                copies.append(w)
                sources.append(src)
                break
    texts = [" ".join(d) for d in base] + [" ".join(d) for d in copies]
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    shuffled = [texts[i] for i in order]
    planted = {tuple(sorted((position[s], position[len(base) + k]))) for k, s in enumerate(sources)}
    return shuffled, planted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--pairs", type=int, default=5_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--chunk", type=int, default=20_000)
    args = ap.parse_args()

    t0 = time.perf_counter()
    texts, planted = make_corpus(args.docs, args.pairs, args.threshold)
    print(f"corpus: {len(texts):,} docs, {len(planted):,} planted pairs (Jaccard >= {args.threshold}), "
          f"built in {time.perf_counter() - t0:.1f} s")
    r, b = minhash.lsh_params(args.threshold)
    print(f"MinHash {minhash.NUM_PERM} perms, LSH b={b} bands x r={r} rows: "
          f"P(candidate | s={args.threshold}) = {1 - (1 - args.threshold ** r) ** b:.4f}")

    t0 = time.perf_counter()
    found = {(i, j) for i, j, _ in minhash.near_duplicate_pairs(texts, threshold=args.threshold)}
    t_fn = time.perf_counter() - t0
    hit = len(found & planted)
    print(f"near_duplicate_pairs: {t_fn:.1f} s wall, {len(found):,} pairs; "
          f"recall {hit / len(planted):.4f}, precision {hit / max(len(found), 1):.4f}")

    frame = pd.DataFrame({"text": texts})
    ctx = Context(kind="text", columns=["text"], text_col="text", rows=len(texts),
                  options={"near_dup_threshold": args.threshold})
    check = NearDuplicates()
    t0 = time.perf_counter()
    check.start(ctx)
    for p in (1, 2):
        if p == 2:
            check.start_pass(2, ctx)
        for a in range(0, len(frame), args.chunk):
            check.update(frame.iloc[a : a + args.chunk], ctx)
    findings = check.finish(ctx)
    t_check = time.perf_counter() - t0
    expected = {max(p) for p in planted}
    total = findings[0].count if findings else 0
    details = findings[0].details if findings else {}
    print(f"near_duplicates check (2 passes, chunks of {args.chunk:,}): {t_check:.1f} s wall, "
          f"count {total:,} rows (planted copies: {len(expected):,}), "
          f"{details.get('candidate_pairs', 0):,} candidate pairs, {details.get('verified_pairs', 0):,} verified")


if __name__ == "__main__":
    main()
