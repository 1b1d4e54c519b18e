"""Benchmark: data checks end to end on a generated 1,000,000-row x 10-column CSV (or --cols N).

    .venv/bin/python bench/datacheck_tabular.py [--rows N] [--cols N] [--ydata [--ydata-python PY]] [--keep DIR]

Generates the CSV (numbers, categories, dates, booleans, short text; planted duplicates, missing
values, 'unknown' ages and outliers) in a temporary folder, then runs ``run_checks`` on it in a fresh
subprocess so generation does not count, and prints wall seconds and peak RSS (ru_maxrss). With
``--ydata``, runs ydata-profiling's minimal mode on the same file the same way, if it is installed.
Target (issue 3): < 20 s and < 2 GB on 2 cores; aim >= 10x faster than ydata-profiling minimal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHECKS = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t = time.perf_counter()
from engine.datacheck.runner import CheckInput, run_checks
r = run_checks(CheckInput(path={path!r}))
secs = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": secs, "peak_rss_bytes": rss, "score": r.score, "rows": r.rows,
                  "findings": [(f.id, f.column, f.count) for f in r.findings],
                  "check_seconds": {{c["id"]: c.get("seconds") for c in r.checks_run}}}}))
"""

_YDATA = """
import json, resource, sys, time
import pandas as pd
t = time.perf_counter()
from ydata_profiling import ProfileReport
df = pd.read_csv({path!r})
ProfileReport(df, minimal=True, progress_bar=False).to_json()
secs = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"seconds": secs, "peak_rss_bytes": rss}}))
"""


def _kinds(rng, start: int, n: int) -> dict:
    """The ten column kinds, ``n`` rows of each (the draws of the original 10-column file)."""
    import numpy as np

    return {
        "id": np.arange(start, start + n),
        "age": rng.integers(18, 90, n).astype(str).astype(object),
        "income": rng.normal(50_000, 12_000, n).round(2).astype(str).astype(object),
        "score": rng.random(n).round(4),
        "city": rng.choice(["Paris", "Berlin", "Rome", "Madrid", "Oslo", "Lisbon", "Vienna"], n),
        "segment": rng.choice(["A", "B", "C", "D"], n),
        "joined": (np.datetime64("2020-01-01") + rng.integers(0, 1500, n).astype("timedelta64[D]")).astype(str),
        "active": rng.choice(["true", "false"], n),
        "note": rng.choice(["great service", "slow delivery, please fix", "ok", "would buy again", ""], n),
        "qty": rng.integers(0, 100, n),
    }


def generate(path: Path, rows: int, seed: int = 0, cols: int = 10) -> None:
    """Write the benchmark CSV; ``cols`` > 10 adds columns cycling through the ten kinds (``age_1``,
    ``income_1``, ...) drawn from a second generator, so the first ten columns never change."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    extra_rng = np.random.default_rng(seed + 1)
    chunk = 250_000
    first = True
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        kinds = _kinds(rng, start, n)
        frame = pd.DataFrame(kinds)
        frame.loc[rng.random(n) < 0.01, "income"] = ""                 # ~1% missing
        frame.loc[rng.random(n) < 0.0005, "age"] = "unknown"           # mixed types
        frame.loc[rng.random(n) < 0.0002, "income"] = "9999999"        # outliers
        names = list(kinds)
        for k in range(1, -(-cols // len(names))):
            more = pd.DataFrame(_kinds(extra_rng, start, n))
            more.loc[extra_rng.random(n) < 0.01, "income"] = ""
            more.loc[extra_rng.random(n) < 0.0005, "age"] = "unknown"
            more.loc[extra_rng.random(n) < 0.0002, "income"] = "9999999"
            more.columns = [f"{c}_{k}" for c in names]
            frame = pd.concat([frame, more], axis=1)
        frame = frame.iloc[:, :cols]
        if start == 0:
            frame.iloc[-1000:, 1:] = frame.iloc[:1000, 1:].to_numpy()   # 1,000 near-copies (ids differ)
            frame.iloc[-500:] = frame.iloc[:500].to_numpy()            # 500 exact duplicate rows
        frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False


def measure(code: str, python: str = sys.executable) -> dict:
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=REPO)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=10,
                    help="columns (default 10); more cycle through the ten kinds with suffixes _1, _2, ...")
    ap.add_argument("--ydata", action="store_true", help="also run ydata-profiling minimal mode, if installed")
    ap.add_argument("--ydata-python", metavar="PYTHON", default=sys.executable,
                    help="interpreter that has ydata-profiling (a separate venv keeps it out of Preflight's)")
    ap.add_argument("--keep", metavar="DIR", help="write the CSV here and keep it")
    args = ap.parse_args()
    if args.rows < 1 or args.cols < 1:
        ap.error("--rows and --cols must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bench_{args.rows}x{args.cols}.csv"
        if not path.exists():
            generate(path, args.rows, cols=args.cols)
        print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows x {args.cols} columns)")
        res = measure(_CHECKS.format(repo=str(REPO), path=str(path)))
        if "error" in res:
            print("preflight: failed:", res["error"])
        else:
            print(f"preflight check: {res['seconds']:.1f} s, peak RSS {res['peak_rss_bytes'] / 2**30:.2f} GiB, score {res['score']}")
            print("  per check (s):", {k: v for k, v in res["check_seconds"].items() if v})
            for f in res["findings"]:
                print("  finding:", f)
        if args.ydata:
            y = measure(_YDATA.format(path=str(path)), args.ydata_python)
            if "error" in y:
                print("ydata-profiling minimal: not run:", y["error"])
            else:
                print(f"ydata-profiling minimal: {y['seconds']:.1f} s, peak RSS {y['peak_rss_bytes'] / 2**30:.2f} GiB")
                if "seconds" in res:
                    print(f"speed-up: {y['seconds'] / res['seconds']:.1f}x")


if __name__ == "__main__":
    main()
