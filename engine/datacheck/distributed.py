"""The data checks on Dask: the same checks as tasks per shard, with global reductions.

``run_checks(CheckInput(engine="dask", ...))`` calls :func:`run_on_dask` in place of the one-process
stream (``runner.stream_checks``). A partition is one shard (a single file is one partition), its rows
numbered after the previous shards' (``engine.tabular.shards``), so every row keeps the number it has in
one process. The work, all of it on the workers:

* **counts**: one task per shard counts its rows (Parquet: the footer), which fixes every shard's first
  row number.
* **per partition, combined** (:data:`MERGED`: missing values, empty text, encoding errors, PII, quality
  heuristics, and the charts' figures): each shard's task runs the checks' own ``update`` on its chunks;
  the partial states are folded pairwise, in shard order, by the checks' ``merge`` (a tree of tasks), so
  the result is the state one pass over all shards leaves.
* **near-duplicates by MinHash LSH, shuffled**: each shard's task runs the check's pass-1 ``update``
  (signatures and band hashes of its texts). Exact copies are left out by a shuffle on the comparison
  hash (bucket = hash mod G; :func:`~engine.datacheck.checks.near_duplicates.first_occurrences` per
  bucket); then the bands are shuffled: bucket task *g* receives from every shard bands
  ``g, g + G, ...`` only and forms their candidate pairs
  (:func:`~engine.datacheck.checks.near_duplicates.candidate_rows`). No task holds all bands of all
  rows. The candidate pairs (small) are gathered, and pass 2 runs per shard for the candidate rows' shingle
  sets, which verify the pairs on the client exactly as in one process.
* **exact duplicates by hash, shuffled** (:data:`~engine.datacheck.exact_shuffle.KEYED`:
  duplicate_rows, duplicate_text): each shard's task computes the checks' own ``keys`` (row and text
  hashes); a shuffle by hash finds each hash's first row in global order; each shard's verdicts go back
  to the checks' own ``take``, and their ``merge`` folds the shards in order
  (:mod:`engine.datacheck.exact_shuffle`).
* **the token count** (:mod:`engine.datacheck.dask_tokens`): one task trains the BPE on the first
  texts, each shard's task counts its texts with it, one task folds the counts in shard order.
* **ordered checks** (every other check: leakage keeps a hash index of train whose "first row" is
  global, outliers/drift/language keep seeded reservoir samples, the schema and type profile are
  judged on the first rows): one task on a worker
  streams every shard in order through ``runner.stream_checks``, concurrently with the others. Their
  counts are exact by construction; their time does not shrink with more workers (stated in
  docs/BENCHMARKS.md).

With the same seeds the counts equal the one-process run's (tests/datacheck/test_distributed.py).
Without a scheduler address a ``LocalCluster`` of N worker processes with a memory limit each is started
and stopped afterwards. A worker that dies is retried by Dask (``distributed.scheduler.allowed-failures``);
after that the check fails with a one-line error naming the shard that task was reading; the report is
only written when every task has finished.
"""

from __future__ import annotations

import copy
import logging
import operator
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.datacheck import values
from engine.datacheck.base import Check, Context
from engine.datacheck.dask_tokens import COUNTED, count_on_dask
from engine.datacheck.engine_spec import CONNECT_TIMEOUT_S, EngineSpec
from engine.datacheck.exact_shuffle import KEYED, exact_shuffle
from engine.datacheck.exact_shuffle import open_part as _open
from engine.datacheck.exact_shuffle import safe_hook as _safe
from engine.errors import ValidationError

MERGED = ("missing_values", "empty_text", "encoding_errors", "pii", "low_quality_text")
SHUFFLED = ("near_duplicates",)
BUCKETS_PER_WORKER = 2


# ---- the cluster ---------------------------------------------------------------------------------

class Cluster:
    """A Dask client: connected to ``spec.scheduler``, or to a LocalCluster started (and stopped) here."""

    def __init__(self, spec: EngineSpec):
        self.spec, self.cluster, self.client = spec, None, None

    def __enter__(self) -> "Cluster":
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValidationError("the dask engine needs dask[distributed]: .venv/bin/pip install "
                                  "'dask[distributed]' (scripts/setup.sh installs it)") from None
        if self.spec.scheduler:
            try:
                self.client = Client(self.spec.scheduler, timeout=f"{CONNECT_TIMEOUT_S:g}s")
            except (OSError, TimeoutError) as exc:
                raise ValidationError(f"no Dask scheduler answered at {self.spec.scheduler} within "
                                      f"{CONNECT_TIMEOUT_S:g} s ({str(exc).splitlines()[0][:120]})") from None
            try:
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError):
                self.client.close()
                raise ValidationError(f"the Dask scheduler at {self.spec.scheduler} has no workers "
                                      f"(waited {CONNECT_TIMEOUT_S:g} s); start some with dask worker "
                                      f"{self.spec.scheduler}") from None
            return self
        self.cluster = LocalCluster(n_workers=self.spec.workers, threads_per_worker=1, processes=True,
                                    memory_limit=self.spec.worker_memory, silence_logs=logging.CRITICAL,
                                    dashboard_address=":0" if _has_bokeh() else None)
        self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def block(self, partitions: int) -> dict[str, Any]:
        info = self.client.scheduler_info()
        served = "dashboard" in (info.get("services") or {}) and (self.cluster is None or _has_bokeh())
        link = self.client.dashboard_link if served else None
        return {"name": "dask", "scheduler": self.spec.scheduler or info.get("address"),
                "workers": len(info.get("workers") or {}), "partitions": partitions, "dashboard": link,
                "local_cluster": self.cluster is not None,
                "memory_limit": self.spec.worker_memory if self.cluster is not None else None}


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


# ---- tasks (module-level: the workers import them) -----------------------------------------------

def count_task(path: str, fmt: str) -> int:
    """Data rows of one shard."""
    from engine.tabular import shard_rows

    return shard_rows(_open(path, fmt))


def partition_task(path: str, fmt: str, offset: int, split: str, ctx: Context, ids: tuple[str, ...],
                   chunk_rows: int, stats_cls: type) -> dict[str, Any]:
    """One shard through the per-partition checks' ``update`` (rows numbered from ``offset``);
    ``stats_cls`` is the runner's RunStats (passed in: this module does not import the runner)."""
    from engine.datacheck.checks import CHECKS

    ctx = copy.copy(ctx)
    ctx.split, ctx.shared = split, {}  # type: ignore[assignment]
    checks = {c.id: c() for c in CHECKS if c.id in ids and c.id in MERGED + SHUFFLED} if split == "train" else {}
    keyed = [c() for c in CHECKS if c.id in ids and c.id in KEYED and split in c.splits]
    errors: dict[str, str] = {}
    for check in [*checks.values(), *keyed]:
        _safe(check, errors, "start", ctx)
    stats = stats_cls()
    keys: dict[tuple[str, str, str], list] = {}
    for chunk in _open(path, fmt).chunks(chunk_rows):
        values.clear_cache()
        if offset:
            chunk.index = chunk.index + offset
        if split == "train":
            ctx.rows = int(chunk.index[-1]) + 1 if len(chunk) else ctx.rows
        stats.update(chunk, ctx)
        for check in checks.values():
            if check.id not in errors:
                _safe(check, errors, "update", chunk, ctx)
        for check in keyed:  # exact duplicates: only the keys here, the verdicts after the shuffle
            if check.id not in errors and len(chunk):
                for name, got in (_safe(check, errors, "keys", chunk, ctx) or {}).items():
                    keys.setdefault((check.id, name, split), []).append(got)
    values.clear_cache()
    near = checks.pop("near_duplicates", None)
    keys = {fam: (np.concatenate([r for r, _ in got]), np.concatenate([h for _, h in got]))
            for fam, got in keys.items()}
    return {"checks": checks, "stats": stats, "errors": errors, "near": near, "keys": keys}


def merge_task(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Fold partition ``b`` (the later rows) into ``a``: the checks' own ``merge``, the charts' figures."""
    out = {"checks": a["checks"], "stats": a["stats"], "errors": {**a["errors"], **b["errors"]}}
    for cid, check in b["checks"].items():
        if cid in out["checks"]:
            out["checks"][cid].merge(check)
    out["stats"].merge(b["stats"])
    return out


def hash_bucket(near, g: int, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """One shard's (rows, comparison hashes) whose hash falls in bucket ``g``."""
    if near is None:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    rows, hashes, _ = near.pass1_state()
    keep = hashes % np.uint64(buckets) == np.uint64(g)
    return rows[keep], hashes[keep]


def later_copies(*pieces: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The rows of one hash bucket (from every shard) that repeat an earlier row's normalized text."""
    from engine.datacheck.checks.near_duplicates import first_occurrences

    rows = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0, np.int64)
    hashes = np.concatenate([p[1] for p in pieces]) if pieces else np.empty(0, np.uint64)
    return rows[~first_occurrences(rows, hashes)] if len(rows) else rows


def band_slice(near, copies: np.ndarray, g: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """One shard's rows (exact later copies left out) and their bands ``g, g + groups, ...``."""
    if near is None:
        return np.empty(0, np.int64), np.empty((0, 0), np.uint64)
    rows, _, bands = near.pass1_state()
    keep = ~np.isin(rows, copies)
    return rows[keep], bands[keep][:, g::groups]


def band_pairs(*slices: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Candidate pairs (row numbers) of one band group, from every shard's slice in shard order."""
    from engine.datacheck.checks.near_duplicates import candidate_rows

    full = [s for s in slices if len(s[0])]
    if not full:
        return np.empty((0, 2), np.int64)
    return candidate_rows(np.concatenate([s[0] for s in full]), np.concatenate([s[1] for s in full]))


def near_pass2_task(path: str, fmt: str, offset: int, ctx: Context, pairs: np.ndarray, chunk_rows: int):
    """Pass 2 of near_duplicates over one shard: the shingle sets of its candidate rows."""
    from engine.datacheck.checks.near_duplicates import NearDuplicates

    check = NearDuplicates()
    ctx = copy.copy(ctx)
    check.start(ctx)
    check.set_candidates(pairs)
    for chunk in _open(path, fmt).chunks(chunk_rows):
        if offset:
            chunk.index = chunk.index + offset
        check.update(chunk, ctx)
    return check


def ordered_task(path: str, test_path: str | None, ctx: Context, checks: list[Check], chunk_rows: int,
                 stream_checks: Callable):
    """The ordered checks over every shard in order: the runner's one-process stream (``stream_checks``,
    passed in), on a worker."""
    errors: dict[str, str] = {}
    failed: set[int] = set()

    def call(check: Check, method: str, *args):
        if id(check) in failed:
            return None
        try:
            return getattr(check, method)(*args)
        except ValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - as runner.run_checks' call
            failed.add(id(check))
            errors[check.id] = f"{type(exc).__name__}: {str(exc)[:200]}"
            return None

    train = _open(path, None)
    test = _open(test_path, None) if test_path is not None else None
    stream_checks(train, test, ctx, checks, None, lambda f, m: None, chunk_rows, call, failed)
    return {"checks": checks, "shared": ctx.shared, "errors": errors}


# ---- the run -------------------------------------------------------------------------------------

def _parts(ds) -> list[tuple[str, str]]:
    """(path, format) of every partition: the shards, or the one file."""
    return [(str(s.path), s.format) for s in (getattr(ds, "shards", None) or [ds])]


def _tree(client, items: list, fn) -> Any:
    """Fold ``items`` pairwise, keeping their order, as a tree of tasks; the last future."""
    while len(items) > 1:
        nxt = [client.submit(fn, items[i], items[i + 1], pure=False) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def run_on_dask(spec: EngineSpec, train, test, ctx: Context, checks: list[Check], stats, tell: Callable,
                chunk_rows: int, fail: Callable[[Check, str], None], stream_checks: Callable) -> dict[str, Any]:
    """Run ``checks`` (already started) on Dask, leaving them and ``stats`` as one pass would; the
    report's ``engine`` block. ``stream_checks`` is the runner's one-process stream (for the ordered
    checks), ``stats`` a RunStats whose class the partition tasks instantiate."""
    started = time.perf_counter()
    tell(0.01, "starting the Dask cluster" if not spec.scheduler else f"connecting to {spec.scheduler}")
    parts = _parts(train)
    test_parts = _parts(test) if test is not None else []
    with Cluster(spec) as cl:
        client = cl.client
        block = cl.block(len(parts))
        dash = f" (dashboard: {block['dashboard']})" if block.get("dashboard") else ""
        names: dict[str, str] = {}

        def watch(futs: list, what: list[str], lo: float, hi: float, label: str) -> list:
            from distributed import as_completed

            for f, name in zip(futs, what):
                names[f.key] = name
            done = 0
            for f in as_completed(futs):
                done += 1
                _result(f, names)
                tell(lo + (hi - lo) * done / max(1, len(futs)), f"{label}: {done} of {len(futs)}{dash}")
            return futs

        counts = watch([client.submit(count_task, p, fm, pure=False) for p, fm in parts + test_parts],
                       [p for p, _ in parts + test_parts], 0.02, 0.15, "counting rows in shards")
        rows = [_result(f, names) for f in counts]
        n_train = len(parts)
        offsets = np.concatenate([[0], np.cumsum(rows[:n_train])]).astype(int).tolist()
        test_offsets = np.concatenate([[0], np.cumsum(rows[n_train:])]).astype(int).tolist()
        ctx.rows, ctx.test_rows = int(sum(rows[:n_train])), int(sum(rows[n_train:]))

        per_part = tuple(c.id for c in checks if c.id in MERGED + SHUFFLED + KEYED + COUNTED)
        ordered = [c for c in checks if c.id not in per_part]
        ctx_task = copy.copy(ctx)
        ctx_task.shared = {}
        seq = client.submit(ordered_task, str(train.path), str(test.path) if test is not None else None,
                            ctx_task, ordered, chunk_rows, stream_checks, pure=False) if ordered else None
        if seq is not None:
            names[seq.key] = "the ordered pass over every shard"
        counted = None
        if "tokens" in per_part:
            counted = count_on_dask(client, [(p, fm, offsets[i]) for i, (p, fm) in enumerate(parts)], ctx_task,
                                    chunk_rows, names)
        pf = [client.submit(partition_task, p, fm, offsets[i], "train", ctx_task, per_part, chunk_rows, type(stats),
                            pure=False) for i, (p, fm) in enumerate(parts)]
        pf += [client.submit(partition_task, p, fm, test_offsets[i], "test", ctx_task, per_part, chunk_rows,
                             type(stats), pure=False) for i, (p, fm) in enumerate(test_parts)]
        watch(pf, [p for p, _ in parts + test_parts], 0.15, 0.55, "checking shards")
        near = [client.submit(operator.getitem, f, "near", pure=False) for f in pf[:n_train]]
        merged = _tree(client, pf, merge_task)
        by_id = {c.id: c for c in checks}
        exact = None
        if any(c in by_id for c in KEYED):
            shards = [(p, fm, offsets[i], offsets[i + 1], "train") for i, (p, fm) in enumerate(parts)]
            shards += [(p, fm, test_offsets[i], test_offsets[i + 1], "test") for i, (p, fm) in enumerate(test_parts)]
            keys = [client.submit(operator.getitem, f, "keys", pure=False) for f in pf]
            exact = exact_shuffle(client, keys, shards, ctx_task, per_part, chunk_rows, _buckets(client), _tree,
                                  watch)
        if "near_duplicates" in by_id:
            _near_shuffle(client, cl, near, parts, offsets, ctx_task, by_id["near_duplicates"], chunk_rows,
                          names, watch)
        result = _result(merged, names)
        for cid, check in result["checks"].items():
            by_id[cid].__dict__.update(check.__dict__)
        stats.merge(result["stats"])
        errors = dict(result["errors"])
        if exact is not None:
            got = _result(exact, names)
            for cid, check in got["checks"].items():
                by_id[cid].__dict__.update(check.__dict__)
            errors.update(got["errors"])
        if counted is not None:
            watch([counted], ["the token count"], 0.8, 0.82, "token count")
            got = _result(counted, names)
            by_id["tokens"].__dict__.update(got["check"].__dict__)
            errors.update(got["errors"])
        if seq is not None:
            watch([seq], [names[seq.key]], 0.82, 0.92, "ordered checks")
            got = _result(seq, names)
            for mine, theirs in zip(ordered, got["checks"]):
                mine.__dict__.update(theirs.__dict__)
            ctx.shared.update(got["shared"])
            errors.update(got["errors"])
        for cid, reason in errors.items():
            if cid in by_id:
                fail(by_id[cid], reason)
        block["seconds"] = round(time.perf_counter() - started, 3)
        block["ordered_checks"] = [c.id for c in ordered]
    return block


def _near_shuffle(client, cl, near: list, parts, offsets, ctx: Context, check, chunk_rows, names, watch) -> None:
    """near_duplicates: the exact-copy shuffle, the band shuffle, pass 2 per shard; sets ``check``."""
    buckets = _buckets(client)
    groups = min(buckets, check.b)
    copies = [client.submit(later_copies, *[client.submit(hash_bucket, n, g, buckets, pure=False) for n in near],
                            pure=False) for g in range(buckets)]
    watch(copies, [f"hash bucket {g}" for g in range(buckets)], 0.6, 0.65, "near-duplicates: exact copies")
    later = client.submit(np.concatenate, copies, pure=False) if copies else None
    pair_futs = [client.submit(band_pairs, *[client.submit(band_slice, n, later, g, groups, pure=False) for n in near],
                               pure=False) for g in range(groups)]
    watch(pair_futs, [f"band group {g}" for g in range(groups)], 0.65, 0.72, "near-duplicates: band buckets")
    pairs = [_result(f, names) for f in pair_futs]
    allp = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    allp = np.unique(allp, axis=0) if len(allp) else np.empty((0, 2), np.int64)
    check.set_candidates(allp)
    ends = offsets[1:]
    p2 = []
    for i, (p, fm) in enumerate(parts):
        mine = allp[np.isin(allp, np.arange(offsets[i], ends[i])).any(axis=1)] if len(allp) else allp
        if len(mine):
            p2.append(client.submit(near_pass2_task, p, fm, offsets[i], ctx, mine, chunk_rows, pure=False))
            names[p2[-1].key] = p
    watch(p2, [names[f.key] for f in p2], 0.72, 0.8, "near-duplicates: verifying candidates")
    seen = [client.submit(_texts_seen, f, pure=False) for f in near]
    texts = sum(_result(f, names) for f in seen)
    for f in p2:
        check.merge(_result(f, names))
    check.texts_seen = texts


def _buckets(client) -> int:
    """How many hash buckets a shuffle uses: BUCKETS_PER_WORKER per worker."""
    return max(1, BUCKETS_PER_WORKER * len(client.scheduler_info().get("workers") or {1: 0}))


def _texts_seen(near) -> int:
    return int(near.texts_seen) if near is not None else 0


def _result(fut, names: dict[str, str]):
    """A future's value; a dead worker (after Dask's retries) is one line naming the shard."""
    try:
        return fut.result()
    except ValidationError:
        raise
    except Exception as exc:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            where = names.get(fut.key, "a task")
            raise ValidationError(f"a Dask worker died while reading {where} (retried, then gave up); "
                                  "nothing was written") from None
        raise


__all__ = ["run_on_dask", "Cluster", "MERGED", "SHUFFLED"]
