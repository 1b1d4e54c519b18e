"""Exact duplicates on Dask: per-shard hashes, a shuffle by hash, the verdicts back to their shards.

``duplicate_rows`` and ``duplicate_text`` decide "repeats an earlier row" with one hash index over
the rows in order (:class:`engine.datacheck.values.HashIndex`). On Dask the same decision is split:

1. each shard's task (``distributed.partition_task``) calls the checks' own ``keys`` on its chunks:
   per family (``duplicate_rows``' row hashes per split, ``duplicate_text``'s text and (text, label)
   hashes), the rows and their 64-bit hashes;
2. **shuffle by hash**: bucket task *g* of G receives from every shard only the keys with
   ``hash mod G == g`` and finds, per hash, the first row in global (shard, row) order
   (:func:`engine.datacheck.values.first_rows`: what one HashIndex over every row answers for the rows
   of those hashes); it returns the later rows with their first row. No task holds every key;
3. **back to the shards**: each bucket's verdicts are cut by shard row range, and each shard's task
   calls the checks' own ``take`` with them (counts, kept rows, the rows the fix drops). Only the
   shards that hold the first examples (at most ``MAX_EXAMPLES`` per check) are read again, so that
   ``take`` can draw the examples from their chunks;
4. the shards' states are folded in shard order by the checks' ``merge`` (a tree of tasks).

Counts, rows and examples equal the one-process run's (tests/datacheck/test_distributed.py). The
shuffle moves 16 bytes (row, hash) per key: 16 B per row for duplicate_rows, 32 B per non-blank text
for duplicate_text with a label column.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from engine.datacheck import values
from engine.datacheck.base import MAX_EXAMPLES, Check, Context
from engine.errors import ValidationError

KEYED = ("duplicate_rows", "duplicate_text")  # in CHECKS order: duplicate_text reads duplicate_rows' verdict

Family = tuple[str, str, str]  # (check id, the check's name for the keys, split)


# ---- what every task on a worker shares (engine.datacheck.distributed's tasks too) ---------------

def open_part(path: str, fmt: str | None):
    """One partition (a shard, or the one file), read as in one process."""
    from engine.tabular import open_dataset

    return open_dataset(path, fmt=fmt) if fmt else open_dataset(path)


def safe_hook(check: Check, errors: dict[str, str], method: str, *args):
    """``check.method(*args)``; a check that raises is noted in ``errors`` (as in one process)."""
    try:
        return getattr(check, method)(*args)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken check must not sink the report (as in one process)
        errors[check.id] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return None


# ---- the shuffle ---------------------------------------------------------------------------------


def key_bucket(keys: dict[Family, tuple[np.ndarray, np.ndarray]], g: int, buckets: int) -> dict:
    """One shard's keys whose hash falls in bucket ``g`` of ``buckets``, per family."""
    out = {}
    for fam, (rows, hashes) in keys.items():
        keep = hashes % np.uint64(buckets) == np.uint64(g)
        out[fam] = (rows[keep], hashes[keep])
    return out


def bucket_verdicts(*pieces: dict) -> dict[Family, tuple[np.ndarray, np.ndarray]]:
    """One hash bucket from every shard (in shard order): per family, the rows that repeat an earlier
    row's key and that earlier row, by row."""
    out = {}
    for fam in dict.fromkeys(f for p in pieces for f in p):
        got = [p[fam] for p in pieces if fam in p]
        rows = np.concatenate([r for r, _ in got])
        dup, first = values.first_rows(np.concatenate([h for _, h in got]), rows)
        later, first = rows[dup], first[dup]
        order = np.argsort(later, kind="stable")
        out[fam] = (later[order], first[order])
    return out


def verdict_range(verdicts: dict, split: str, lo: int, hi: int) -> dict:
    """The verdicts of one bucket on the rows ``lo <= row < hi`` of ``split`` (one shard's)."""
    out = {}
    for fam, (later, first) in verdicts.items():
        if fam[2] == split:
            a, b = np.searchsorted(later, [lo, hi])
            out[fam] = (later[a:b], first[a:b])
    return out


def _verdicts(keys: dict, slices: tuple[dict, ...]) -> dict[Family, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per family: (the shard's rows, repeats an earlier row, that row or -1), from every bucket's slice."""
    out = {}
    for fam, (rows, _) in keys.items():
        got = [s[fam] for s in slices if fam in s]
        later = np.concatenate([g[0] for g in got]) if got else np.empty(0, np.int64)
        first = np.concatenate([g[1] for g in got]) if got else np.empty(0, np.int64)
        at = np.searchsorted(rows, later)
        dup = np.zeros(len(rows), bool)
        dup[at] = True
        firsts = np.full(len(rows), -1, np.int64)
        firsts[at] = first
        out[fam] = (rows, dup, firsts)
    return out


def _of(verdicts: dict, cid: str, lo: int | None = None, hi: int | None = None) -> dict:
    """One check's verdicts by its own names, on the rows ``lo <= row <= hi`` when given."""
    out = {}
    for (c, name, _), (rows, dup, first) in verdicts.items():
        if c != cid:
            continue
        a, b = (0, len(rows)) if lo is None else np.searchsorted(rows, [lo, hi + 1])
        out[name] = (rows[a:b], dup[a:b], first[a:b])
    return out


def take_task(path: str, fmt: str, offset: int, split: str, ctx: Context, ids: tuple[str, ...], keys: dict,
              read: bool, chunk_rows: int, *slices: dict) -> dict[str, Any]:
    """One shard's exact-duplicate checks from the verdicts: their own ``take`` over the whole shard,
    or (``read``) chunk by chunk over the shard read again, for the examples."""
    from engine.datacheck.checks import CHECKS

    ctx = copy.copy(ctx)
    ctx.split, ctx.shared = split, {}  # type: ignore[assignment]
    checks = [c() for c in CHECKS if c.id in ids and c.id in KEYED and split in c.splits]
    errors: dict[str, str] = {}
    for check in checks:
        safe_hook(check, errors, "start", ctx)
    verdicts = _verdicts(keys, slices)
    chunks = open_part(path, fmt).chunks(chunk_rows) if read else [None]
    for chunk in chunks:
        if chunk is not None:
            if not len(chunk):
                continue
            values.clear_cache()
            if offset:
                chunk.index = chunk.index + offset
        lo, hi = (None, None) if chunk is None else (int(chunk.index[0]), int(chunk.index[-1]))
        for check in checks:
            if check.id not in errors:
                safe_hook(check, errors, "take", ctx, _of(verdicts, check.id, lo, hi), chunk)
    values.clear_cache()
    return {"checks": {c.id: c for c in checks}, "errors": errors}


def found(state: dict[str, Any], split: str) -> dict[str, int]:
    """Per check, the rows one shard's state reports (what its examples are drawn from)."""
    return {cid: check.found(split) for cid, check in state["checks"].items()}


def merge_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Fold shard ``b``'s states (the later rows) into ``a``'s by the checks' ``merge``."""
    for cid, check in b["checks"].items():
        if cid in a["checks"]:
            a["checks"][cid].merge(check)
        else:
            a["checks"][cid] = check
    return {"checks": a["checks"], "errors": {**a["errors"], **b["errors"]}}


def exact_shuffle(client, keys: list, shards: list[tuple[str, str, int, int, str]], ctx: Context,
                  ids: tuple[str, ...], chunk_rows: int, buckets: int, tree, watch):
    """The future of the merged exact-duplicate states, from every shard's ``keys`` future;
    ``shards`` = (path, format, first row, end row, split) per shard, train first."""
    ins = [[client.submit(key_bucket, k, g, buckets, pure=False) for g in range(buckets)] for k in keys]
    verdicts = [client.submit(bucket_verdicts, *[row[g] for row in ins], pure=False) for g in range(buckets)]
    watch(verdicts, [f"exact-duplicate bucket {g}" for g in range(buckets)], 0.55, 0.58, "exact duplicates: hash buckets")

    def take(i: int, read: bool):
        path, fmt, lo, hi, split = shards[i]
        cut = [client.submit(verdict_range, v, split, lo, hi, pure=False) for v in verdicts]
        return client.submit(take_task, path, fmt, lo, split, ctx, ids, keys[i], read, chunk_rows, *cut, pure=False)

    states = [take(i, False) for i in range(len(shards))]
    counts = [client.submit(found, s, shards[i][4], pure=False) for i, s in enumerate(states)]
    watch(counts, [shards[i][0] for i in range(len(shards))], 0.58, 0.6, "exact duplicates: verdicts per shard")
    before: dict[tuple[str, str], int] = {}
    for i, fut in enumerate(counts):
        split, need = shards[i][4], False
        for cid, n in fut.result().items():
            need |= n > 0 and before.get((cid, split), 0) < MAX_EXAMPLES
            before[(cid, split)] = before.get((cid, split), 0) + n
        if need:  # this shard holds some of the first examples: read it again for them
            states[i] = take(i, True)
    return tree(client, states, merge_states)


__all__ = ["KEYED", "exact_shuffle", "key_bucket", "bucket_verdicts", "verdict_range", "take_task"]
