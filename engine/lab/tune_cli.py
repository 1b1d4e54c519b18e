"""CLI commands of the model lab's search and evaluation (registered by engine/cli.py). Heavy imports
stay inside handlers.

    preflight evaluate --run runs/sentiment-1 --folds 5 --json
    preflight sweep --sample sentiment --task classify --trials 12 --budget-minutes 10 --workers 2 --out studies/s1 --json
"""

from __future__ import annotations

import argparse

from engine.cliargs import finite as _float
from engine.cliargs import whole as _int


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate``, ``sweep`` and ``sweep-worker`` to the top-level parser."""
    e = sub.add_parser("evaluate", parents=[common], help="evaluation report of a trained run (sklearn metrics)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR", help="run folder (or registered run name)")
    src.add_argument("--hf-model", metavar="DIR", help="a Hugging Face model folder (needs --data or --sample)")
    e.add_argument("--data", metavar="PATH", help="score this file instead of the run's validation split")
    e.add_argument("--sample", metavar="NAME", help="with --hf-model: a built-in corpus")
    e.add_argument("--context", type=_int("context"), default=128, metavar="T",
                   help="with --hf-model or an HF run: window length in tokens")
    e.add_argument("--folds", type=_int("folds"), default=0, metavar="K",
                   help="stratified k-fold cross-validation of macro-F1 (classifiers; each fold trains a fresh model)")
    e.add_argument("--cv-steps", type=_int("cv-steps"), metavar="N", help="training steps per fold (default min(run's, 200))")
    e.add_argument("--latest", action="store_true", help="use the latest checkpoint instead of the best")
    e.add_argument("--save", action="store_true", help="also write the report to <run>/evaluation.json")
    e.set_defaults(handler=_evaluate, human=_evaluate_human)

    s = sub.add_parser("sweep", parents=[common], help="budget-aware hyperparameter search (Optuna TPE + pruning)")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="a text/CSV/TSV/JSONL/Parquet file, or an upload's name")
    src.add_argument("--sample", metavar="NAME", help="a built-in corpus: arithmetic, stories, sentiment")
    s.add_argument("--task", type=str.lower, choices=("lm", "classify"), default=None)
    s.add_argument("--text-col", metavar="C")
    s.add_argument("--label-col", metavar="L")
    s.add_argument("--trials", type=_int("trials"), required=True, metavar="N", help="trials to finish (complete or pruned)")
    budget = s.add_mutually_exclusive_group()
    budget.add_argument("--budget-minutes", type=_float("budget-minutes"), metavar="M", help="wall-clock budget")
    budget.add_argument("--budget-usd", type=_float("budget-usd"), metavar="B", help="dollar budget (at --usd-per-hour)")
    s.add_argument("--usd-per-hour", type=_float("usd-per-hour"), metavar="P",
                   help="what this machine costs per hour (default: engine/catalog defaults' CPU price)")
    s.add_argument("--workers", type=_int("workers"), default=1, metavar="K", help="worker processes (at most the cores)")
    s.add_argument("--space", metavar="FILE", help="search space (TOML or JSON); default: the task's space")
    length = s.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_int("steps"), metavar="N", help="training steps per trial (default: the space's)")
    length.add_argument("--trial-seconds", type=_float("trial-seconds"), metavar="S",
                        help="equal-time trials: each trial trains the steps its configuration is predicted to fit "
                             "in S seconds (a bigger model trains fewer steps); ASHA compares trials at equal shares")
    s.add_argument("--preset", default="tiny", metavar="NAME", help="base lab preset (default tiny)")
    s.add_argument("--seed", type=_int("seed"), default=0, metavar="S")
    s.add_argument("--no-prune", action="store_true", help="run every trial to the end (no pruning)")
    s.add_argument("--pruner", type=str.lower, choices=("asha", "median"), default="asha",
                   help="asha: successive halving (default); median: the median stopping rule")
    s.add_argument("--name", metavar="NAME", help="study name (default: the --out folder's name)")
    s.add_argument("--out", required=True, metavar="DIR", help="the study folder (trial runs, sweep.json)")
    s.add_argument("--registry", metavar="PATH", help="registry database (default: $PREFLIGHT_HOME/registry.sqlite)")
    s.add_argument("--storage", metavar="URL",
                   help="an Optuna storage URL shared by workers on several machines, e.g. "
                        "postgresql://USER:PASSWORD@HOST:5432/DB (default: the study folder's study.sqlite)")
    s.add_argument("--objective", choices=("train", "planted"), default="train", help=argparse.SUPPRESS)
    s.set_defaults(handler=_sweep, human=_sweep_human)

    w = sub.add_parser("sweep-worker", parents=[common], help=argparse.SUPPRESS)
    w.add_argument("--study-dir", required=True, metavar="DIR")
    w.add_argument("--worker", type=_int("worker"), default=0, metavar="I")
    w.set_defaults(handler=_worker)


def _evaluate(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    require_torch("evaluate")
    from engine.lab.hf_train import is_hf_run

    if args.hf_model or is_hf_run(args.run):
        from engine.lab.hf_evaluate import evaluate_hf

        return evaluate_hf(hf_model=args.hf_model, run=args.run, data=args.data, sample=args.sample,
                           context=args.context)
    from engine.lab.evaluate import EvaluateInput, evaluate, save_report

    result = evaluate(EvaluateInput(run=args.run, data=args.data, folds=args.folds, cv_steps=args.cv_steps,
                                    which="latest" if args.latest else "best"))
    if args.save:
        save_report(result)
    return result.to_dict()


def _evaluate_human(d: dict) -> str:
    if "folder" in d:  # a model folder (engine/infer/hf_infer.py)
        return (f"{d['folder']} on {d['tokens']} validation tokens: val loss {d['val_loss']:.4f}, perplexity "
                f"{d['perplexity']:.2f}, {d['bits_per_byte']:.3f} bits/byte")
    head = f"{d['task']} run {d['run_dir']} at step {d['step']} on {d['source']} ({d['n_examples']} examples)"
    if d["task"] == "lm":
        return (f"{head}\n  val loss {d['val_loss']:.4f}, perplexity {d['perplexity']:.2f}, "
                f"{d['bits_per_byte']:.3f} bits/byte")
    lines = [head, f"  accuracy {d['accuracy']:.3f}, macro-F1 {d['macro_f1']:.3f}, weighted-F1 {d['weighted_f1']:.3f}, "
                   f"ECE {d['ece']:.3f}"]
    for label, m in d["per_class"].items():
        lines.append(f"  {label:<16} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} n {m['support']}")
    if d.get("cv"):
        lines.append(f"  {d['cv']['k']}-fold macro-F1 {d['cv']['mean']:.3f} ± {d['cv']['std']:.3f}")
    return "\n".join(lines)


def _sweep(args: argparse.Namespace) -> dict:
    from engine.requires import require_torch

    if args.objective != "planted":  # the planted objective (tests, demos) trains nothing
        require_torch("sweep")
    from engine.lab.tune import run_sweep

    from engine.lab.tune_space import SweepInput

    return run_sweep(SweepInput(
        data=args.data, sample=args.sample, task=args.task, text_col=args.text_col, label_col=args.label_col,
        trials=args.trials, budget_minutes=args.budget_minutes, budget_usd=args.budget_usd,
        usd_per_hour=args.usd_per_hour, workers=args.workers, space=args.space, steps=args.steps,
        trial_seconds=args.trial_seconds, preset=args.preset, seed=args.seed, prune=not args.no_prune, name=args.name, out=args.out, registry=args.registry,
        objective=args.objective, pruner=args.pruner, storage=args.storage)).to_dict()


def _sweep_human(d: dict) -> str:
    lines = [f"study {d['study']}: {d['n_complete']} complete, {len(d['pruned'])} pruned, {d['n_failed']} failed "
             f"({d['stopped_reason']})", f"  best value {d['best_value']} with {d['best_params']}"]
    lines.append(f"  spent {d['spent_s'] / 60:.1f} min, ${d['spent_usd']:.4f}; time predictions from {d['throughput']['basis']}")
    pvm = d.get("predicted_vs_measured") or {}
    if pvm.get("median_ratio") is not None:
        lines.append(f"  measured/predicted trial time, median {pvm['median_ratio']:.2f} over {pvm['n']} trials")
    return "\n".join(lines)


def _worker(args: argparse.Namespace) -> dict:
    from engine.lab.tune import worker_main

    return worker_main(args.study_dir, args.worker)
