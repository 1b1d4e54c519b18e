"""The token count on Dask: the BPE trained once, the counting per shard, the batches folded in order.

``tokens`` (:mod:`engine.datacheck.checks.tokens`) trains its BPE on the first ``TRAIN_DOCS``
non-empty texts, counts every text with it, and after ``EXACT_BYTES`` of text extrapolates the rest
at the tokens per byte counted so far. On Dask:

1. **train**: one task feeds the first shards' chunks, in order, to the check's own ``update`` until
   it has trained (the first ``TRAIN_DOCS`` texts, counted as in one process);
2. **count per shard**: each shard's task (the chunks after those) runs the check's own ``measure``
   (the BPE count, which depends on nothing but the tokenizer) on each chunk's texts;
3. **fold in order**: one task hands the measured chunks, in shard order, to the check's own
   ``record``, which decides exact or extrapolated as one process does.

So the figures equal the one-process run's. Step 3 moves 24 bytes per text (row, bytes, tokens).
Past ``EXACT_BYTES`` the shards still count every text (they cannot know the bytes before them);
``record`` then discards those counts for the extrapolated ones, as one process never computes them.
"""

from __future__ import annotations

import copy
from typing import Any

from engine.datacheck.base import Context
from engine.datacheck.exact_shuffle import open_part, safe_hook

COUNTED = ("tokens",)


def _chunks(path: str, fmt: str, offset: int, chunk_rows: int):
    from engine.datacheck import values

    for chunk in open_part(path, fmt).chunks(chunk_rows):
        values.clear_cache()
        if offset:
            chunk.index = chunk.index + offset
        yield chunk


def train_task(parts: list[tuple[str, str, int]], ctx: Context, chunk_rows: int) -> dict[str, Any]:
    """The check fed in order until its BPE is trained: its state, and where it stopped (the shard and
    how many of its chunks it used; ``len(parts)`` when every chunk was used)."""
    from engine.datacheck.checks.tokens import Tokens

    check, errors = Tokens(), {}
    ctx = copy.copy(ctx)
    ctx.split, ctx.shared = "train", {}  # type: ignore[assignment]
    safe_hook(check, errors, "start", ctx)
    for i, (path, fmt, offset) in enumerate(parts):
        used = 0
        for chunk in _chunks(path, fmt, offset, chunk_rows):
            used += 1
            safe_hook(check, errors, "update", chunk, ctx)
            if errors or check.tokenizer is not None:
                return {"check": check, "shard": i, "chunks": used, "errors": errors}
    return {"check": check, "shard": len(parts), "chunks": 0, "errors": errors}


def measure_task(trained: dict[str, Any], i: int, path: str, fmt: str, offset: int, ctx: Context,
                 chunk_rows: int) -> list[tuple]:
    """Shard ``i``'s chunks after those the training used: (rows, UTF-8 bytes, measured) per chunk."""
    check = trained["check"]
    if trained["errors"] or i < trained["shard"]:
        return []
    skip = trained["chunks"] if i == trained["shard"] else 0
    out = []
    for n, chunk in enumerate(_chunks(path, fmt, offset, chunk_rows)):
        if n < skip:
            continue
        rows, texts = check.texts(chunk, ctx)
        if rows:
            nbytes = check.utf8_bytes(texts)
            out.append((rows, nbytes, check.measure(texts, nbytes)))
    return out


def fold_task(trained: dict[str, Any], *shards: list[tuple]) -> dict[str, Any]:
    """The trained state followed by every shard's measured chunks, in order, through ``record``."""
    check, errors = copy.deepcopy(trained["check"]), dict(trained["errors"])  # the input stays as it was
    for rows, nbytes, measured in (c for chunks in shards for c in chunks):
        if errors:
            break
        safe_hook(check, errors, "record", rows, nbytes, measured)
    return {"check": check, "errors": errors}


def count_on_dask(client, parts: list[tuple[str, str, int]], ctx: Context, chunk_rows: int, names: dict):
    """The future of the ``tokens`` state (and its errors) over ``parts`` = (path, format, first row)."""
    trained = client.submit(train_task, parts, ctx, chunk_rows, pure=False)
    names[trained.key] = "the token count's training pass"
    measured = [client.submit(measure_task, trained, i, p, fm, off, ctx, chunk_rows, pure=False)
                for i, (p, fm, off) in enumerate(parts)]
    for f, (p, _, _) in zip(measured, parts):
        names[f.key] = p
    return client.submit(fold_task, trained, *measured, pure=False)


__all__ = ["COUNTED", "count_on_dask", "train_task", "measure_task", "fold_task"]
