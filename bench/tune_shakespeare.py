"""Sweep benchmark on Tiny Shakespeare (character level), side by side in one run:

1. ``recipe``: nanoGPT's published CPU recipe through the lab trainer, faithfully: preset ``nanogpt-cpu``
   (4 layers, 4 heads, 128 wide, context 64, LayerNorm, GELU MLP of 512, learned positions, no biases),
   batch 12, 2,000 iterations, lr 1e-3 with 100 warmup steps and a cosine to 1e-4, betas 0.9/0.99, weight
   decay 0.1, dropout 0, 20 evaluation batches (nanoGPT's README reports val 1.88 in ~3 min on a laptop).
2. ``shapes``: the same shapes and recipe with the lab's own blocks (RMSNorm, SwiGLU, RoPE; d_ff 352 ≈
   4·128·2/3, parameter-matched): a stricter target than nanoGPT's network.
3. ``sweep``: a budgeted study (``engine.lab.tune``, the code path of ``preflight sweep``) over lr, width,
   depth, heads, batch and warmup with equal-time trials (``--trial-seconds``, default 0.3 × the recipe's
   wall time: "the best model I can train in that time"). Its own wall time and cost are reported apart.
4. ``best``: the sweep's best configuration trained afresh for 0.6 × the recipe's wall time (steps sized by
   ``best_config(seconds=...)`` from the best trial's measured time per step), evaluated 20 times; reports
   the wall time at which it first reached each target's final validation loss.
5. Always: the sweep's predicted vs measured trial time (median of measured / predicted over complete
   trials, raw FLOP-based and with the speed fitted to the study's trials).

The load average (``os.getloadavg``) is printed with every figure: the machine is shared.

    .venv/bin/python bench/tune_shakespeare.py --part predictions --trials 6 --steps 40
    .venv/bin/python bench/tune_shakespeare.py --part all --budget-minutes 8 --trials 16
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


def recipe(data: Path, out: Path, max_steps: int, preset: str) -> dict:
    """nanoGPT's CPU recipe (preset ``nanogpt-cpu``) or its shapes with the lab's blocks (``tiny`` overridden)."""
    from engine.lab.trainer import TrainConfig, train

    shapes = {} if preset == "nanogpt-cpu" else dict(n_layers=4, n_heads=4, n_kv_heads=4, d_model=128, d_ff=352)
    t0 = time.perf_counter()
    r = train(TrainConfig(data=str(data), tokenizer="char", preset=preset, **shapes, context=64, dropout=0.0,
                          batch_size=12, max_steps=max_steps, lr=1e-3, warmup_steps=100, betas=(0.9, 0.99),
                          eval_every=max(1, max_steps // 10), eval_batches=20, device="cpu", sample_tokens=0,
                          out=str(out / f"recipe-{preset}")))
    return {"preset": preset, "val_loss": r.val_loss, "best_val_loss": r.best_val_loss,
            "wall_s": time.perf_counter() - t0, "steps": r.steps, "params": r.params, "load": load()}


def sweep(data: Path, out: Path, trials: int, steps: int | None, trial_seconds: float | None, minutes: float | None,
          workers: int) -> dict:
    from engine.lab.tune import run_sweep
    from engine.lab.tune_space import SweepInput

    fixed = {"eval_batches": 4, "context": 64, "tokenizer": "char", "dropout": 0.0}
    if trial_seconds is None:
        fixed |= {"max_steps": steps, "eval_every": max(1, steps // 4)}
    space = {"fixed": fixed,
             "params": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "d_model": {"choices": [64, 96, 128, 160]},
                        "n_layers": {"low": 1, "high": 4}, "n_heads": {"choices": [2, 4]},
                        "batch_size": {"choices": [8, 12, 16, 24, 32]},
                        "warmup_steps": {"low": 0, "high": 50 if trial_seconds else max(1, steps // 10)}}}
    t0 = time.perf_counter()
    res = run_sweep(SweepInput(data=str(data), task="lm", trials=trials, budget_minutes=minutes, workers=workers,
                               space=space, trial_seconds=trial_seconds, out=str(out / "study"), name="shakespeare"))
    d = res.to_dict()
    d["wall_s"] = time.perf_counter() - t0
    d["load"] = load()
    return d


def best_run(study_dir: Path, targets: dict[str, float], seconds: float, out: Path) -> dict:
    """Train the sweep's best configuration afresh, its steps sized to ``seconds``; the wall time at which
    the validation loss first reached each target (20 evaluations over the run)."""
    from dataclasses import replace

    from engine.lab.trainer import train
    from engine.lab.tune_jobs import best_config

    cfg = best_config(study_dir, seconds=seconds)
    cfg = replace(cfg, out=str(out / "best"), eval_every=max(1, cfg.max_steps // 20), eval_batches=20,
                  sample_tokens=0)
    t0 = time.perf_counter()
    hits: dict = {}
    curve: list = []

    def on_eval(step: int, m: dict) -> bool:
        now = time.perf_counter() - t0
        curve.append((step, round(now, 2), round(m["val_loss"], 4)))
        for name, target in targets.items():
            if m["val_loss"] <= target and name not in hits:
                hits[name] = {"step": step, "wall_s": now, "val_loss": m["val_loss"]}
        return False

    r = train(cfg, on_eval=on_eval)
    wall = time.perf_counter() - t0
    for name, target in targets.items():  # the last evaluation (at max_steps) is not passed to on_eval
        if name not in hits and r.val_loss is not None and r.val_loss <= target:
            hits[name] = {"step": r.steps, "wall_s": wall, "val_loss": r.val_loss}
    return {"hits": hits, "final_val_loss": r.val_loss, "steps": r.steps, "wall_s": wall, "curve": curve,
            "config": {k: v for k, v in cfg.to_dict().items() if v is not None and k not in ("data", "out")},
            "load": load()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("predictions", "all"), default="predictions")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--steps", type=int, default=40, help="steps per trial (--part predictions)")
    p.add_argument("--trial-seconds", type=float, help="equal-time trials (--part all: default 0.3 × the recipe's "
                   "wall time)")
    p.add_argument("--budget-minutes", type=float)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--recipe-steps", type=int, default=2000)
    p.add_argument("--no-shapes", action="store_true", help="skip the recipe's shapes with the lab's blocks")
    args = p.parse_args()
    data = Path(args.data).resolve()
    out = Path(tempfile.mkdtemp(prefix="tune-bench-"))
    os.environ.setdefault("PREFLIGHT_HOME", str(out / "home"))
    print(f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.machine()}, {load()} at start", flush=True)
    report: dict = {}
    trial_seconds = args.trial_seconds
    if args.part == "all":
        report["recipe"] = recipe(data, out, args.recipe_steps, "nanogpt-cpu")
        print("recipe", json.dumps(report["recipe"]), flush=True)
        if not args.no_shapes:
            report["shapes"] = recipe(data, out, args.recipe_steps, "tiny")
            print("shapes", json.dumps(report["shapes"]), flush=True)
        trial_seconds = trial_seconds or round(0.3 * report["recipe"]["wall_s"], 1)
    s = sweep(data, out, args.trials, None if trial_seconds else args.steps, trial_seconds, args.budget_minutes,
              args.workers)
    pvm = s["predicted_vs_measured"]
    report["sweep"] = {"wall_s": s["wall_s"], "spent_s": s["spent_s"], "spent_usd": s["spent_usd"],
                       "trial_seconds": s["trial_seconds"], "best_params": s["best_params"],
                       "best_value": s["best_value"], "pruned": s["pruned"], "n_complete": s["n_complete"],
                       "median_ratio": pvm["median_ratio"], "median_ratio_raw": pvm["median_ratio_raw"],
                       "throughput": s["throughput"]["basis"], "stopped_reason": s["stopped_reason"],
                       "trials": [{k: t[k] for k in ("number", "outcome", "value", "steps", "predicted_raw_s",
                                                      "predicted_s", "measured_s", "params")} for t in s["trials"]],
                       "load": s["load"]}
    print("sweep", json.dumps(report["sweep"]), flush=True)
    if args.part == "all" and s["best_params"]:
        allowed = 0.6 * report["recipe"]["wall_s"]
        targets = {"recipe": report["recipe"]["val_loss"]}
        if "shapes" in report:
            targets["shapes"] = report["shapes"]["val_loss"]
        report["best"] = best_run(Path(s["study_dir"]), targets, allowed, out)
        report["best"]["allowed_s"] = allowed
        report["best"]["ratio_to_recipe_wall"] = {k: v["wall_s"] / report["recipe"]["wall_s"]
                                                  for k, v in report["best"]["hits"].items()}
        print("best", json.dumps(report["best"]), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
