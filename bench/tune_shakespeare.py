"""Sweep benchmark on Tiny Shakespeare (character level), side by side in one run:

1. ``recipe``: nanoGPT's CPU recipe through the lab trainer (4 layers, 4 heads, 128 wide, context 64,
   batch 12, 2,000 iterations, lr 1e-3, dropout 0; nanoGPT's README reports val 1.88 in ~3 min on a
   laptop). The lab's blocks are RMSNorm/SwiGLU/RoPE (d_ff 352 ≈ 4·128·2/3, parameter-matched to a GELU
   MLP of 512), not nanoGPT's LayerNorm/GELU/learned positions: same shapes, not the same network.
2. ``sweep``: a budgeted study (``engine.lab.tune``) over lr, width, depth, batch and warmup, then the best
   configuration trained with the trainer's stop flag at 0.6 × the recipe's wall time; reports the wall
   time at which it first reaches the recipe's final validation loss. The sweep's own wall time and cost
   are reported apart.
3. Always: the sweep's predicted vs measured trial time (median of measured / predicted over complete trials,
   raw FLOP-based and study-corrected).

The load average (``os.getloadavg``) is printed with every figure: the machine is shared.

    .venv/bin/python bench/tune_shakespeare.py --part predictions --trials 6 --steps 40
    .venv/bin/python bench/tune_shakespeare.py --part all --budget-minutes 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_HERE = Path(__file__).resolve().parents[1]
DATA = next((p for p in (_HERE.parent / "shared" / "data" / "tinyshakespeare.txt",
             _HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt") if p.is_file()),
            _HERE.parent / "shared" / "data" / "tinyshakespeare.txt")  # ../shared (main) or ../../shared (a worktree)


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} / {b:.1f} / {c:.1f}"


def recipe(data: Path, out: Path, max_steps: int) -> dict:
    from engine.lab.trainer import TrainConfig, train

    t0 = time.perf_counter()
    r = train(TrainConfig(data=str(data), tokenizer="char", preset="tiny", n_layers=4, n_heads=4, n_kv_heads=4,
                          d_model=128, d_ff=352, context=64, dropout=0.0, batch_size=12, max_steps=max_steps,
                          lr=1e-3, warmup_steps=100, eval_every=max(1, max_steps // 10), eval_batches=20,
                          device="cpu", sample_tokens=0, out=str(out / "recipe")))
    return {"val_loss": r.val_loss, "best_val_loss": r.best_val_loss, "wall_s": time.perf_counter() - t0,
            "steps": r.steps, "params": r.params, "load": load()}


def sweep(data: Path, out: Path, trials: int, steps: int, minutes: float | None, workers: int) -> dict:
    from engine.lab.tune import run_sweep

    from engine.lab.tune_space import SweepInput

    space = {"fixed": {"max_steps": steps, "eval_every": max(1, steps // 4), "eval_batches": 4, "context": 64,
                       "tokenizer": "char", "dropout": 0.0},
             "params": {"lr": {"low": 5e-4, "high": 1e-2, "log": True}, "d_model": {"choices": [64, 96, 128]},
                        "n_layers": {"low": 1, "high": 4}, "n_heads": {"choices": [2, 4]},
                        "batch_size": {"choices": [8, 12, 16]}, "warmup_steps": {"low": 0, "high": max(1, steps // 10)}}}
    t0 = time.perf_counter()
    res = run_sweep(SweepInput(data=str(data), task="lm", trials=trials, budget_minutes=minutes, workers=workers,
                               space=space, out=str(out / "study"), name="shakespeare"))
    d = res.to_dict()
    d["wall_s"] = time.perf_counter() - t0
    d["load"] = load()
    return d


def best_until(study_dir: Path, target: float, budget_s: float, max_steps: int, out: Path) -> dict:
    """Train the sweep's best configuration; stop at the first evaluation at or under ``target`` or at the budget."""
    from dataclasses import replace

    from engine.lab.trainer import train
    from engine.lab.tune_jobs import best_config

    cfg = replace(best_config(study_dir, max_steps), out=str(out / "best"), eval_every=50, eval_batches=20,
                  sample_tokens=0, threads=None)
    t0 = time.perf_counter()
    hit: dict = {}

    def on_eval(step: int, m: dict) -> bool:
        now = time.perf_counter() - t0
        if m["val_loss"] <= target and not hit:
            hit.update(step=step, wall_s=now, val_loss=m["val_loss"])
        return bool(hit) or now > budget_s

    r = train(cfg, on_eval=on_eval)
    return {"reached": bool(hit), **hit, "final_val_loss": r.val_loss, "steps": r.steps,
            "wall_s": time.perf_counter() - t0, "config": {k: v for k, v in cfg.to_dict().items() if v is not None},
            "load": load()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("predictions", "all"), default="predictions")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--steps", type=int, default=40, help="steps per trial")
    p.add_argument("--budget-minutes", type=float)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--recipe-steps", type=int, default=2000)
    p.add_argument("--best-steps", type=int, help="the best configuration's cosine length (default: as many steps "
                   "as 0.6 × the recipe's wall time holds at the best trial's measured time per step; it is "
                   "stopped at the recipe's val loss or at that time anyway)")
    args = p.parse_args()
    data = Path(args.data).resolve()
    out = Path(tempfile.mkdtemp(prefix="tune-bench-"))
    os.environ.setdefault("PREFLIGHT_HOME", str(out / "home"))
    print(f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.machine()}, {load()} at start", flush=True)
    report: dict = {}
    if args.part == "all":
        report["recipe"] = recipe(data, out, args.recipe_steps)
        print("recipe", json.dumps(report["recipe"]), flush=True)
    s = sweep(data, out, args.trials, args.steps, args.budget_minutes, args.workers)
    pvm = s["predicted_vs_measured"]
    report["sweep"] = {"wall_s": s["wall_s"], "spent_s": s["spent_s"], "spent_usd": s["spent_usd"],
                       "best_params": s["best_params"], "best_value": s["best_value"], "pruned": s["pruned"],
                       "n_complete": s["n_complete"], "median_ratio": pvm["median_ratio"],
                       "median_ratio_raw": pvm["median_ratio_raw"], "throughput": s["throughput"]["basis"],
                       "trials": [{k: t[k] for k in ("number", "outcome", "value", "steps", "predicted_raw_s",
                                                      "predicted_s", "measured_s", "params")} for t in s["trials"]],
                       "load": s["load"]}
    print("sweep", json.dumps(report["sweep"]), flush=True)
    if args.part == "all" and s["best_params"]:
        target = report["recipe"]["val_loss"]
        # the best configuration on a cosine schedule sized to the time allowed (0.6 × the recipe's wall time at
        # the best trial's measured seconds per step: a smaller model's steps are cheaper), stopped at the
        # recipe's final val loss or at that time
        allowed = 0.6 * report["recipe"]["wall_s"]
        best_trial = min((t for t in s["trials"] if t["outcome"] == "complete"), key=lambda t: t["value"])
        per_step = best_trial["measured_s"] / best_trial["steps"]
        steps = args.best_steps or max(1, int(allowed / per_step))
        report["best"] = best_until(Path(s["study_dir"]), target, allowed, steps, out)
        report["best"]["planned_steps"], report["best"]["allowed_s"] = steps, allowed
        print("best", json.dumps(report["best"]), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
