"""Data checks on Dask: rows/s in one process and on a local cluster of 1 and 2 workers, the counts
compared; a corpus larger than one worker's memory limit; the MinHash shuffle volume; and, on paper,
the time and cost of 1 TB on N cloud workers from the measured per-worker rate.

The corpus is ``engine.datacheck.samples.write_sharded_corpus`` (support tickets with exact copies,
near copies across shards, emails and missing labels planted), ``--shards`` JSON Lines shards of
``--rows`` rows each. Every run checks the same folder with every check; the counts of every finding
must be equal across the runs (the script says so). The client's peak memory is the bench process's
``ru_maxrss`` of a fresh process running that one check (the cluster's workers are other processes).

    .venv/bin/python bench/datacheck_dask.py [--shards 8] [--rows 20000] [--big-mb 0 --worker-memory 1GiB]

``--big-mb N`` adds a second corpus of about N MB checked on 2 workers with ``--worker-memory`` each
(the claim: it completes although it is larger than one worker's limit).

The paper projection prices a c7i.4xlarge (16 vCPU) at the catalog's CPU price per vCPU-hour
(engine/catalog/defaults.toml ``cpu_usd_per_vcpu_hour``: AWS on-demand c7i, us-east-1) and scales the
measured rate of the per-partition phase and of the ordered task: the ordered checks stream every
shard in one task, so they bound the wall time however many workers there are.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def _run(path: Path, **engine) -> tuple[dict, float, float, dict]:
    """One check in a fresh process (so its peak RSS is this run's): counts, seconds, peak MB, engine."""
    import json
    import subprocess
    import sys

    code = ("import json, resource, sys, time; from engine.datacheck.runner import CheckInput, run_checks\n"
            "def main():\n"
            f"    t = time.perf_counter(); r = run_checks(CheckInput(path={str(path)!r}, **{engine!r}))\n"
            "    print(json.dumps([{f.id + (':' + f.split if f.split != 'train' else ''): f.count for f in r.findings},"
            " time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.engine,"
            " {c['id']: c.get('seconds', 0.0) for c in r.checks_run}]))\n"
            "if __name__ == '__main__':\n    main()\n")
    script = path.parent / "run_one.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"the check failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    out = done.stdout
    counts, secs, peak, eng, per_check = json.loads(out.strip().splitlines()[-1])
    eng["check_seconds"] = per_check
    return counts, secs, peak, eng


def _corpus(folder: Path, shards: int, rows: int) -> tuple[int, int]:
    from engine.datacheck.samples import write_sharded_corpus

    write_sharded_corpus(folder, shards=shards, rows_per_shard=rows, seed=5)
    size = sum(p.stat().st_size for p in folder.iterdir())
    return shards * rows, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--rows", type=int, default=20_000, help="rows per shard")
    ap.add_argument("--big-mb", type=float, default=0, help="also check a corpus of about this many MB")
    ap.add_argument("--worker-memory", default="1GiB")
    ap.add_argument("--nodes", type=int, default=16, help="cloud workers for the paper projection")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="preflight-dask-bench-"))
    try:
        rows, size = _corpus(tmp / "c", args.shards, args.rows)
        print(f"corpus: {args.shards} shards, {rows:,} rows, {size / 1e6:.1f} MB JSONL; load {os.getloadavg()}")
        base, secs, rss, one = _run(tmp / "c")
        print(f"one process: {secs:.1f} s, {rows / secs:,.0f} rows/s, peak RSS {rss:.0f} MB")
        ordered: list[str] = []
        for workers in (1, 2):
            got, secs, rss, eng = _run(tmp / "c", engine="dask", workers=workers, worker_memory=args.worker_memory)
            print(f"dask, {workers} worker(s): {secs:.1f} s ({eng['seconds']:.1f} s from cluster start to the last "
                  f"result), {rows / secs:,.0f} rows/s, client peak RSS {rss:.0f} MB, counts equal: {got == base}")
            if got != base:
                print("   differs:", {k: (base.get(k), got.get(k)) for k in set(base) | set(got) if base.get(k) != got.get(k)})
            ordered = eng.get("ordered_checks", [])
        spent = one["check_seconds"]
        share = sum(spent.get(c, 0.0) for c in ordered) / max(sum(spent.values()), 1e-9)
        print(f"ordered checks (one task on Dask): {', '.join(ordered)}; in one process they took {share:.0%} of the "
              f"check time ({sum(spent.get(c, 0.0) for c in ordered):.1f} of {sum(spent.values()):.1f} s); slowest checks: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])[:6]))
        texts = rows
        from engine.datacheck import minhash

        _, b = minhash.lsh_params(0.8)
        per_text = b * 8 + 16 + 8  # band hashes, (row, hash) for the exact-copy shuffle, the row in the slice
        print(f"MinHash shuffle: {b} band hashes x 8 B + 24 B = {per_text} B per text, {texts * per_text / 1e6:.1f} MB "
              f"for this corpus ({per_text / (size / rows):.2f} x the JSONL bytes)")
        if args.big_mb:
            per_row = size / rows
            big_rows = int(args.big_mb * 1e6 / per_row)
            n_shards = max(4, int(args.big_mb // 25))
            _, big_size = _corpus(tmp / "big", n_shards, big_rows // n_shards)
            got, secs, rss, eng = _run(tmp / "big", engine="dask", workers=2, worker_memory=args.worker_memory)
            print(f"big corpus: {big_size / 1e6:.0f} MB JSONL in {n_shards} shards ({big_rows:,} rows) on 2 workers "
                  f"of {args.worker_memory}: {secs:.0f} s, {big_rows / secs:,.0f} rows/s, client peak RSS {rss:.0f} MB, "
                  f"counts {got}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
