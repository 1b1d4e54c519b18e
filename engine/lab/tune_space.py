"""Sweeps, part 1: the search space (defaults per task, a TOML/JSON file, validation) and the sweep's input
with its one-line refusals. The study itself is :mod:`engine.lab.tune`."""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import ValidationError, require_number


TASKS = ("lm", "classify")
OBJECTIVES = ("train", "planted")
PRUNERS = ("asha", "median")
LAUNCHER_FILES = ("log.txt", "space.json", "sweep.pid", "STOP", ".lock")  # what start_sweep writes before prepare
# Parameters a space may search and their types; everything else in TrainConfig stays fixed.
PARAMS = {"lr": float, "warmup_steps": int, "batch_size": int, "d_model": int, "n_layers": int, "n_heads": int,
          "n_kv_heads": int, "dropout": float, "weight_decay": float, "tokenizer": str, "context": int, "d_ff": int,
          "min_lr_ratio": float}
FIXED = ("max_steps", "trial_seconds", "eval_every", "eval_batches", "context", "bpe_vocab", "grad_clip",
         "min_lr_ratio", "dtype", "preset", "step_s")
TIMED_EVALS = 4  # evaluations in an equal-time trial (at 1/4, 1/2, 3/4 and the end); ASHA's rungs are fractions
NOT_COUNTED = ("killed", "stopped", "skipped")  # trial outcomes that do not use up one of the N trials
PLANTED_LR = 3e-3  # the planted objective's optimum (tests, demos)


def default_space(task: str, steps: int | None = None, trial_seconds: float | None = None) -> dict[str, Any]:
    """The default search space of ``task``: CPU-sized models around the tiny preset. Trials are ``steps``
    long, or (``trial_seconds``) equal-time: each trial gets the steps its configuration is predicted to
    train in that many seconds, so a bigger model trains fewer steps (the question "what is the best model
    I can train in S seconds")."""
    if trial_seconds:
        fixed: dict[str, Any] = {"trial_seconds": float(trial_seconds), "eval_batches": 4, "context": 64}
        warmup_high = 50
    else:
        steps = int(steps or 60)
        fixed = {"max_steps": steps, "eval_every": max(1, steps // 6), "eval_batches": 4, "context": 64}
        warmup_high = max(1, steps // 5)
    space = {
        "fixed": fixed,
        "params": {
            "lr": {"low": 3e-4, "high": 3e-2, "log": True},
            "warmup_steps": {"low": 0, "high": warmup_high},
            "batch_size": {"choices": [8, 16, 32]},
            "d_model": {"choices": [64, 128]},
            "n_layers": {"low": 1, "high": 4},
            "n_heads": {"choices": [2, 4]},
            "n_kv_heads": {"choices": [1, 2]},
            "dropout": {"low": 0.0, "high": 0.2},
            "weight_decay": {"low": 0.0, "high": 0.2},
            "tokenizer": {"choices": ["byte", "char"] if task == "lm" else ["byte", "bpe"]},
        },
    }
    if task == "classify":
        space["fixed"]["bpe_vocab"] = 1024
    return space


def load_space(path: str | os.PathLike) -> dict[str, Any]:
    """A search space from a TOML or JSON file: ``[params.lr] low/high/log`` or ``choices``; ``[fixed]``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValidationError(f"--space {path}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"--space {p.name} cannot be read as {'JSON' if p.suffix == '.json' else 'TOML'}: "
                              f"{str(exc).splitlines()[0]}") from None
    return data


def validate_space(space: Any) -> dict[str, Any]:
    """The space with each parameter's kind resolved; one-line errors for anything unusable."""
    if not isinstance(space, dict) or not isinstance(space.get("params"), dict):
        raise ValidationError("a search space needs a [params] table (e.g. [params.lr] low = 1e-4, high = 1e-2)")
    params = space["params"]
    if not params:
        raise ValidationError("the search space is empty: give at least one parameter under [params]")
    fixed = dict(space.get("fixed") or {})
    for key in fixed:
        if key not in FIXED and key not in PARAMS:
            raise ValidationError(f"[fixed] {key!r} is not something a sweep holds fixed; allowed: "
                                  f"{', '.join((*FIXED, *PARAMS))}")
    out: dict[str, Any] = {}
    points = 1.0
    for name, spec in params.items():
        if name not in PARAMS:
            raise ValidationError(f"unknown search parameter {name!r}; allowed: {', '.join(PARAMS)}")
        if name in fixed:
            raise ValidationError(f"{name!r} is both searched and fixed; keep it in one place")
        if not isinstance(spec, dict):
            raise ValidationError(f"[params.{name}] must be a table with low/high or choices")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ValidationError(f"[params.{name}] choices must be a non-empty list")
            if len(set(map(str, choices))) != len(choices):
                raise ValidationError(f"[params.{name}] lists a choice twice")
            kind = PARAMS[name]
            for c in choices:
                if kind is str and not isinstance(c, str) or kind is not str and (
                        isinstance(c, bool) or not isinstance(c, (int, float))):
                    raise ValidationError(f"[params.{name}] choice {c!r} is not a {kind.__name__}")
            out[name] = {"kind": "categorical", "choices": list(choices)}
            points *= len(choices)
            continue
        if "low" not in spec or "high" not in spec:
            raise ValidationError(f"[params.{name}] needs low and high (or choices)")
        low, high = spec["low"], spec["high"]
        for v in (low, high):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError(f"[params.{name}] bounds must be finite numbers, got {v!r}")
        if PARAMS[name] is str:
            raise ValidationError(f"[params.{name}] is a choice; give choices = [...]")
        if low > high:
            raise ValidationError(f"[params.{name}] bounds are reversed: low {low} > high {high}")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ValidationError(f"[params.{name}] log scale needs low > 0, got {low}")
        kind = "int" if PARAMS[name] is int else "float"
        if kind == "int" and (low != int(low) or high != int(high)):
            raise ValidationError(f"[params.{name}] is a whole number; bounds {low}..{high} are not")
        out[name] = {"kind": kind, "low": int(low) if kind == "int" else float(low),
                     "high": int(high) if kind == "int" else float(high), "log": log}
        points *= (int(high) - int(low) + 1) if kind == "int" else (1 if low == high else math.inf)
    if points <= 1:
        raise ValidationError("the search space has a single point (every parameter has one value); "
                              "widen a range or add a choice, or train that configuration directly")
    for name, spec in out.items():
        if spec["kind"] != "categorical" and spec["low"] == spec["high"]:
            raise ValidationError(f"[params.{name}] has low == high ({spec['low']}); move it to [fixed] or widen it")
    return {"params": out, "fixed": fixed}


# ---- input ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepInput:
    data: str | None = None
    sample: str | None = None
    task: str | None = None
    text_col: str | None = None
    label_col: str | None = None
    trials: int = 10
    budget_minutes: float | None = None
    budget_usd: float | None = None
    usd_per_hour: float | None = None
    workers: int = 1
    space: str | dict | None = None
    steps: int | None = None
    trial_seconds: float | None = None  # equal-time trials: each trial's steps sized to this (replaces steps)
    preset: str = "tiny"
    seed: int = 0
    prune: bool = True
    name: str | None = None
    out: str | None = None
    registry: str | None = None
    objective: str = "train"        # "planted": a synthetic objective with a known best lr (tests, demos)
    pruner: str = "asha"            # asha (successive halving) or median
    storage: str | None = None      # an Optuna storage URL; None: the study folder's study.sqlite

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


def check_study_name(name: str) -> str:
    """``name`` unchanged when it is a safe study name; a one-line error for path or special characters."""
    from engine.workspace import safe_name

    name = str(name)
    ok = bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")
    try:
        ok = ok and safe_name(name, "study name") == name
    except ValidationError:
        ok = False
    if not ok:
        raise ValidationError(f"study name {name[:40]!r} has path or special characters; use letters, digits, "
                              f"'.', '_' and '-'")
    return name


def _study_name(inp: SweepInput) -> str:
    from engine.workspace import safe_name

    if inp.name is not None:
        return check_study_name(inp.name)
    return safe_name(Path(str(inp.out)).name, "study name")


def validate_sweep(inp: SweepInput) -> tuple[SweepInput, dict[str, Any], str]:
    """Cheap checks (no torch, no data read): the resolved input, the validated space, the study name."""
    if not isinstance(inp, SweepInput):
        raise ValidationError(f"sweep input must be a SweepInput, got {type(inp).__name__}")
    if not inp.out:
        raise ValidationError("--out DIR is required (the study folder)")
    if (inp.data is None) == (inp.sample is None) and inp.objective == "train":
        raise ValidationError("give --data PATH or --sample NAME (exactly one)")
    from engine.lab.tune_storage import check_url

    inp = replace(inp, storage=check_url(inp.storage))
    if inp.pruner not in PRUNERS:
        raise ValidationError(f"pruner must be one of {', '.join(PRUNERS)}, got {inp.pruner!r}")
    if inp.objective not in OBJECTIVES:
        raise ValidationError(f"objective must be one of {', '.join(OBJECTIVES)}, got {inp.objective!r}")
    task = inp.task
    if task is None:
        from engine.lab.corpora import CORPORA

        task = CORPORA[inp.sample].task if inp.sample in CORPORA else "lm"
    if task not in TASKS:
        raise ValidationError(f"task must be lm or classify, got {task!r}")
    trials = int(require_number("trials", inp.trials, low=1, high=10_000, integer=True))
    workers = int(require_number("workers", inp.workers, low=1, high=1024, integer=True))
    if workers > cores():
        raise ValidationError(f"--workers {workers} is more than this machine's {cores()} cores; each worker "
                              f"needs a core (use --workers {cores()} or fewer)")
    if inp.budget_minutes is not None and inp.budget_usd is not None:
        raise ValidationError("give --budget-minutes or --budget-usd, not both")
    for key in ("budget_minutes", "budget_usd", "usd_per_hour"):
        if getattr(inp, key) is not None:
            require_number(key.replace("_", "-"), getattr(inp, key), low=0, low_inclusive=False)
    if inp.steps is not None:
        require_number("steps", inp.steps, low=2, high=1e7, integer=True)
    if inp.trial_seconds is not None:
        require_number("trial-seconds", inp.trial_seconds, low=0, high=7 * 86400, low_inclusive=False)
        if inp.steps is not None:
            raise ValidationError("give --steps or --trial-seconds, not both (a trial is a number of steps or a time)")
    require_number("seed", inp.seed, low=0, high=2**31 - 1, integer=True)
    name = _study_name(inp)
    raw = inp.space if isinstance(inp.space, dict) else (
        load_space(inp.space) if inp.space else default_space(task, inp.steps, inp.trial_seconds))
    space = validate_space(raw)
    fixed = space["fixed"]
    if inp.steps is not None:
        fixed.pop("trial_seconds", None)
        fixed["max_steps"] = int(inp.steps)
    if inp.trial_seconds is not None:
        fixed.pop("max_steps", None)
        fixed.pop("eval_every", None)
        fixed["trial_seconds"] = float(inp.trial_seconds)
    if "trial_seconds" in fixed:
        fixed["trial_seconds"] = float(require_number("[fixed] trial_seconds", fixed["trial_seconds"], low=0,
                                                      high=7 * 86400, low_inclusive=False))
        for key in ("max_steps", "eval_every"):
            if key in fixed:
                raise ValidationError(f"[fixed] has both trial_seconds and {key}: an equal-time trial's steps and "
                                      f"evaluations follow from its time; keep one")
        return replace(inp, task=task, trials=trials, workers=workers), space, name
    from engine.lab.presets import get_preset

    preset = get_preset(fixed.get("preset", inp.preset))
    fixed.setdefault("max_steps", int(inp.steps or preset.max_steps))
    return replace(inp, task=task, trials=trials, workers=workers), space, name
