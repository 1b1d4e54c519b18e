"""Budget-aware hyperparameter search over the model lab: Optuna's TPE sampler (Bergstra et al. 2011,
"Algorithms for Hyper-Parameter Optimization", §4) with pruning driven by the trainer's evaluations:
asynchronous successive halving by default (Optuna's SuccessiveHalvingPruner, ASHA: Li et al. 2020, "A System
for Massively Parallel Hyperparameter Tuning", Alg. 2; rungs at eval_every × 3^k steps, reduction factor 3),
or the median stopping rule (MedianPruner; Golovin et al. 2017, Google Vizier §3.2.2).

A study lives in one folder (``--out``; the page uses ``$PREFLIGHT_HOME/runs/sweeps/<name>``)::

    sweep.json      the input, the search space, the throughput the predictions use (written once)
    study.sqlite    Optuna's RDB storage (SQLite): several worker processes share it; it survives restarts
    trials/trial-0007/   each trial is a normal lab run (registered in the run registry)
    workers/worker-0.log, STOP (the stop flag), result.json (the summary when the sweep ends)

Workers (``python -m engine sweep-worker``) take trials one at a time. Under a file lock a worker marks
the trials of dead workers failed (pid gone: "killed"), counts the trials that ran or run, asks TPE for
the next configuration, predicts its time and cost, and starts it only when it fits the budget; so N
trials are run exactly once over any number of workers and restarts.

Prediction (before a trial starts): model FLOPs per trained token 6N + 12·L·H·Q·T (PaLM, Chowdhery et
al. 2022, App. B; :meth:`ModelSpec.training_flops_per_token`) × the trial's tokens (steps × batch ×
tokens per row; a classifier's rows are padded to the longest in the batch, measured on the data),
plus evaluation forwards (a third of a training step's FLOPs per token), divided by the FLOP/s this machine
measured (the latest calibration in the registry, or a quick probe when there is none), scaled to the
worker's share of the cores, plus the measured time to load the data. Cost = time × the machine's price
per hour ÷ workers. The budget counts the wall-clock time covered by trials (the union of their intervals),
and the sweep stops when the next trial's predicted end would pass it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.errors import RunError, ValidationError, require_number

TASKS = ("lm", "classify")
OBJECTIVES = ("train", "planted")
PRUNERS = ("asha", "median")
LAUNCHER_FILES = ("log.txt", "space.json", "sweep.pid", "STOP", ".lock")  # what start_sweep writes before prepare
# Parameters a space may search and their types; everything else in TrainConfig stays fixed.
PARAMS = {"lr": float, "warmup_steps": int, "batch_size": int, "d_model": int, "n_layers": int, "n_heads": int,
          "n_kv_heads": int, "dropout": float, "weight_decay": float, "tokenizer": str, "context": int, "d_ff": int}
FIXED = ("max_steps", "eval_every", "eval_batches", "context", "bpe_vocab", "grad_clip", "min_lr_ratio", "dtype",
         "preset", "step_s")
NOT_COUNTED = ("killed", "stopped", "skipped")  # trial outcomes that do not use up one of the N trials
PLANTED_LR = 3e-3  # the planted objective's optimum (tests, demos)


def default_space(task: str, steps: int | None = None) -> dict[str, Any]:
    """The default search space of ``task``: CPU-sized models around the tiny preset."""
    steps = int(steps or 60)
    space = {
        "fixed": {"max_steps": steps, "eval_every": max(1, steps // 6), "eval_batches": 4, "context": 64},
        "params": {
            "lr": {"low": 3e-4, "high": 3e-2, "log": True},
            "warmup_steps": {"low": 0, "high": max(1, steps // 5)},
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
    preset: str = "tiny"
    seed: int = 0
    prune: bool = True
    name: str | None = None
    out: str | None = None
    registry: str | None = None
    objective: str = "train"        # "planted": a synthetic objective with a known best lr (tests, demos)
    pruner: str = "asha"            # asha (successive halving) or median

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
    require_number("seed", inp.seed, low=0, high=2**31 - 1, integer=True)
    name = _study_name(inp)
    raw = inp.space if isinstance(inp.space, dict) else (load_space(inp.space) if inp.space else default_space(task, inp.steps))
    space = validate_space(raw)
    if inp.steps is not None:
        space["fixed"]["max_steps"] = int(inp.steps)
    from engine.lab.presets import get_preset

    preset = get_preset(space["fixed"].get("preset", inp.preset))
    space["fixed"].setdefault("max_steps", int(inp.steps or preset.max_steps))
    return replace(inp, task=task, trials=trials, workers=workers), space, name


# ---- configurations and predictions -----------------------------------------------------------------------
def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """The trial's parameters from the space (Optuna's suggest_* API)."""
    out = {}
    for name, spec in space["params"].items():
        if spec["kind"] == "categorical":
            out[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["kind"] == "int":
            out[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            out[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
    return out


def trial_config(base: dict[str, Any], space: dict[str, Any], params: dict[str, Any]):
    """The TrainConfig of one trial: the sweep's data, the space's fixed values and the sampled ``params``.
    Heads that do not divide the width (or KV heads the heads) are lowered to the nearest divisor, and the
    FFN width follows the model width at the preset's ratio; ``adjusted`` lists what changed."""
    from engine.lab.presets import get_preset
    from engine.lab.trainer import TrainConfig

    fixed = dict(space["fixed"])
    preset = get_preset(fixed.pop("preset", base.get("preset", "tiny")))
    fixed.pop("step_s", None)
    values = {**fixed, **params}
    adjusted = {}
    d_model = int(values.get("d_model") or preset.d_model)
    heads = int(values.get("n_heads") or preset.n_heads)
    if d_model % heads:
        new = max(h for h in range(1, heads + 1) if d_model % h == 0)
        adjusted["n_heads"], heads = new, new
    if "n_heads" in values or "d_model" in values:
        values["n_heads"] = heads
    kv = int(values.get("n_kv_heads") or min(heads, preset.n_kv_heads))
    if heads % kv or kv > heads:
        new = max(k for k in range(1, min(kv, heads) + 1) if heads % k == 0)
        adjusted["n_kv_heads"], kv = new, new
    values["n_kv_heads"] = kv
    if "d_model" in values and "d_ff" not in values:
        values["d_ff"] = max(16, int(round(d_model * preset.d_ff / preset.d_model / 16)) * 16)
    if "warmup_steps" in values:
        values["warmup_steps"] = min(int(values["warmup_steps"]), int(values["max_steps"]))
    keys = {"data", "sample", "task", "text_col", "label_col", "seed", "registry", "device", "threads"}
    cfg = TrainConfig(**{k: v for k, v in base.items() if k in keys}, preset=preset.id,
                      **{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__},
                      sample_tokens=0, keep_checkpoints=1)
    return cfg, adjusted


def _tokens_per_row(data_info: dict, tokenizer: str, batch: int, context: int) -> float:
    """Tokens a step trains per row: the context for a language model; for a classifier, the expected
    longest row of a batch (rows are padded to it), from the row lengths measured on the data."""
    lengths = (data_info.get("row_lengths") or {}).get(tokenizer)
    if not lengths:
        return float(context)
    import numpy as np

    arr = np.minimum(np.asarray(lengths), context)
    rng = np.random.default_rng(0)
    draws = rng.choice(arr, size=(64, min(batch, len(arr))))
    return float(draws.max(axis=1).mean())


def predict_trial(cfg, data_info: dict, throughput: dict, price: dict) -> dict[str, float]:
    """Predicted seconds, FLOPs and USD of one trial (see the module docstring)."""
    from engine.lab.presets import get_preset

    preset = get_preset(cfg.preset)
    if data_info.get("objective") == "planted":
        seconds = cfg.max_steps * float(data_info.get("step_s", 0.0)) + float(data_info.get("setup_s", 0.0))
        return {"seconds": seconds, "flops": 0.0, "usd": seconds / 3600 * price["usd_per_worker_hour"],
                "setup_s": float(data_info.get("setup_s", 0.0)), "per_step_s": float(data_info.get("step_s", 0.0))}
    vocab = int(data_info["vocab"].get(cfg.tokenizer, 258))
    overrides = {k: getattr(cfg, k) for k in ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "context",
                                              "dropout") if getattr(cfg, k) is not None}
    mcfg = preset.config(vocab, n_classes=int(data_info.get("n_classes") or 0), **overrides)
    context = int(overrides.get("context", preset.context))
    batch = int(cfg.batch_size or preset.batch_size)
    steps = int(cfg.max_steps or preset.max_steps)
    per_row = _tokens_per_row(data_info, cfg.tokenizer, batch, context)
    f_tok = mcfg.model_spec().training_flops_per_token(context)
    train_flops = f_tok * steps * batch * per_row
    eval_every = int(cfg.eval_every or preset.eval_every)
    n_evals = steps // eval_every + (0 if steps % eval_every == 0 else 1)
    eval_flops = f_tok / 3.0 * n_evals * cfg.eval_batches * batch * per_row
    rate = float(throughput["flops_per_s_per_worker"])
    setup = float(data_info.get("setup_s", 0.0))
    seconds = (train_flops + eval_flops) / rate + setup
    return {"seconds": seconds, "flops": train_flops + eval_flops, "usd": seconds / 3600 * price["usd_per_worker_hour"],
            "setup_s": setup, "per_step_s": (seconds - setup) / steps}


def correction(trials) -> tuple[float, int]:
    """The study's own correction of the FLOP-based prediction: the median of measured / raw predicted
    seconds over finished trials (a pruned trial's raw prediction is re-scaled to the steps it ran), and
    how many trials it rests on; 1.0 before any trial finished. Small models on a CPU run far below the
    calibrated FLOP/s (per-operation overhead dominates), and a shared machine's load changes; the factor
    absorbs both and the report shows raw and corrected predictions apart."""
    import statistics

    ratios = []
    for t in trials:
        ua = attrs(t)
        if ua.get("measured_s") and ua.get("per_step_s") is not None and ua.get("steps"):
            raw = float(ua.get("setup_s", 0.0)) + int(ua["steps"]) * float(ua["per_step_s"])
            if raw > 0:
                ratios.append(float(ua["measured_s"]) / raw)
    if not ratios:
        return 1.0, 0
    return min(20.0, max(0.05, statistics.median(ratios))), len(ratios)


def measure_throughput(registry_path: str | None, device: str, preset: str, context: int, threads: int,
                       n_cores: int) -> dict[str, Any]:
    """FLOP/s for the predictions: the latest finished calibration on this device in the registry, or
    (none there) a quick measured probe of the preset; scaled to one worker's share of the cores."""
    from engine.store import Registry

    found = None
    try:
        runs = Registry(registry_path).list_runs(kind="calibrate")
        done = runs[runs["status"] == "finished"]
        for _, row in done.iterrows():
            s = row["summary"] or {}
            if s.get("device") == device and s.get("achieved_tflops"):
                found = (row["name"], s)
                break
    except ValidationError:
        found = None
    if found is not None:
        name, s = found
        rate = float(s["achieved_tflops"]) * 1e12
        basis = (f"calibration {name!r} in the registry ({s.get('preset')}, {s.get('device_name')}, "
                 f"{rate / 1e9:.2f} GFLOP/s on all cores)")
        source = "calibration"
    else:
        from engine.lab.calibrate import CalibrateInput, calibrate

        r = calibrate(CalibrateInput(preset=preset, device=device, steps=3, warmup=1, context=context))
        rate = r.achieved_tflops * 1e12
        basis = (f"no calibration in the registry: a quick probe (3 timed steps of {r.preset}, batch {r.batch_size}, "
                 f"context {r.context}) measured {rate / 1e9:.2f} GFLOP/s; run `preflight calibrate` for a better figure")
        source = "probe"
    share = min(1.0, threads / max(1, n_cores)) if device == "cpu" else 1.0
    return {"flops_per_s": rate, "flops_per_s_per_worker": rate * share, "source": source, "basis": basis,
            "threads_per_worker": threads}


def _price(inp: SweepInput, device: str, n_cores: int) -> dict[str, Any]:
    if inp.usd_per_hour is not None:
        per_hour, basis = float(inp.usd_per_hour), "--usd-per-hour"
    elif device == "cpu":
        from engine.catalog import defaults

        per_hour = defaults()["cpu_usd_per_vcpu_hour"] * n_cores
        basis = (f"{n_cores} vCPU × ${defaults()['cpu_usd_per_vcpu_hour']}/vCPU-hour (engine/catalog/defaults.toml: "
                 f"AWS c7i on-demand)")
    else:
        if inp.budget_usd is not None:
            raise ValidationError("--budget-usd on a GPU needs --usd-per-hour (what this machine costs per hour)")
        per_hour, basis = 0.0, "no price given (--usd-per-hour)"
    return {"usd_per_hour": per_hour, "usd_per_worker_hour": per_hour / max(1, inp.workers), "basis": basis}


# ---- the study ---------------------------------------------------------------------------------------------
def _storage(study_dir: Path):
    """Optuna's RDB storage on ``study.sqlite``: WAL journal (readers never block the writer) and
    synchronous=NORMAL (a commit survives a killed process; no fsync per commit), 60 s busy timeout."""
    import sqlite3

    import optuna

    path = study_dir / "study.sqlite"

    def connect():
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": connect})


def _load_study(study_dir: Path, doc: dict, worker: int = 0):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(doc["input"]["seed"]) + 7919 * worker,
                                         n_startup_trials=doc.get("n_startup_trials", 5))
    kind = doc["input"].get("pruner", "asha") if doc["input"]["prune"] else "none"
    if kind == "asha":  # rungs at eval_every × 3^k steps; a trial continues only in the top third of its rung
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=int(doc["space"]["fixed"].get("eval_every") or 1), reduction_factor=3)
    elif kind == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=doc.get("prune_startup_trials", 3), n_warmup_steps=0)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(study_name=doc["study"], storage=_storage(study_dir), sampler=sampler, pruner=pruner,
                               direction="minimize", load_if_exists=True)


@contextlib.contextmanager
def _locked(study_dir: Path):
    import fcntl

    with open(study_dir / ".lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def attrs(t) -> dict[str, Any]:
    """A trial's bookkeeping: what its worker wrote when it started ("meta") and ended ("result"), and the
    outcome a reaper or the budget check set directly."""
    ua = t.user_attrs
    out = {**(ua.get("meta") or {}), **{k: v for k, v in (ua.get("result") or {}).items() if v is not None}}
    for key in ("pid", "outcome", "error"):
        if ua.get(key) is not None:
            out[key] = ua[key]
    return out


def _ts(dt) -> float | None:
    return dt.timestamp() if dt is not None else None


def reap_dead_trials(study, registry_path: str | None = None) -> list[int]:
    """Mark running trials whose worker process is gone (SIGKILL, OOM killer, reboot) as failed, outcome
    'killed', and their registry runs failed too. Returns the trial numbers marked."""
    from optuna.trial import TrialState

    from engine.store import Registry, is_alive

    marked = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if pid is None or is_alive(int(pid), attrs(t).get("pid_started")):
            continue
        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, "outcome", "killed")
            storage.set_trial_user_attr(t._trial_id, "error", f"worker was killed (pid {pid} gone)")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            marked.append(t.number)
        except Exception:  # noqa: BLE001 - another worker finished or reaped it first
            continue
    if marked and registry_path is not False:
        with contextlib.suppress(Exception):
            Registry(registry_path).mark_dead()
    return marked


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _spent_and_projected(trials, now: float, exclude: int | None = None) -> tuple[float, float]:
    """Seconds of wall clock covered by trials so far, and projected to the predicted ends of running ones."""
    from optuna.trial import TrialState

    spent, projected = [], []
    for t in trials:
        if t.number == exclude or attrs(t).get("outcome") == "skipped":
            continue
        start = _ts(t.datetime_start)
        if start is None:
            continue
        if t.state == TrialState.RUNNING:
            spent.append((start, now))
            projected.append((start, max(now, start + float(attrs(t).get("predicted_s", 0.0)))))
        else:
            end = _ts(t.datetime_complete) or now
            spent.append((start, end))
            projected.append((start, end))
    return _union_seconds(spent), _union_seconds(projected)


def _stop_flag(study_dir: Path) -> Path:
    return study_dir / "STOP"


def worker_main(study_dir: str | os.PathLike, worker: int = 0) -> dict[str, Any]:
    """One worker: take trials until N have run, the budget is spent, or the study is asked to stop."""
    from optuna.trial import TrialState

    from engine.store import process_start_time

    study_dir = Path(study_dir).resolve()
    doc = json.loads((study_dir / "sweep.json").read_text(encoding="utf-8"))
    inp = doc["input"]
    study = _load_study(study_dir, doc, worker)
    ran, reason = [], ""
    budget_s = doc["budget"].get("seconds")
    while True:
        if _stop_flag(study_dir).exists():
            reason = "stopped by request"
            break
        with _locked(study_dir):
            reap_dead_trials(study, inp.get("registry"))
            trials = study.get_trials(deepcopy=False)
            if study.user_attrs.get("budget_exhausted"):
                reason = study.user_attrs["budget_exhausted"]
                break
            counted = [t for t in trials if attrs(t).get("outcome") not in NOT_COUNTED]
            if len(counted) >= int(inp["trials"]):
                reason = f"{inp['trials']} trials done"
                break
            trial = study.ask()
            trial.set_user_attr("pid", os.getpid())  # first: a worker killed from here on is reaped
            params = suggest(trial, doc["space"])
            cfg, adjusted = trial_config(doc["base"], doc["space"], params)
            cfg = replace(cfg, out=str(study_dir / "trials" / f"trial-{trial.number:04d}"),
                          name=f"{doc['study']}-t{trial.number:03d}")
            twin = _twin(trials, params)
            if twin is not None:
                _reuse(study, trial, twin)
                ran.append(trial.number)
                continue
            pred = predict_trial(cfg, doc["data_info"], doc["throughput"], doc["price"])
            factor, basis_n = correction(trials)
            pred = {**pred, "raw_seconds": pred["seconds"], "seconds": pred["seconds"] * factor,
                    "usd": pred["usd"] * factor, "correction": factor, "correction_n": basis_n}
            now = time.time()
            if budget_s is not None:
                spent, projected = _spent_and_projected(study.get_trials(deepcopy=False), now, exclude=trial.number)
                if max(spent, projected) + pred["seconds"] > budget_s:
                    msg = (f"budget reached: {spent:.0f} s of {budget_s:.0f} s spent and the next trial would take "
                           f"about {pred['seconds']:.0f} s")
                    trial.set_user_attr("outcome", "skipped")
                    trial.set_user_attr("error", msg)
                    study.tell(trial, state=TrialState.FAIL)
                    study.set_user_attr("budget_exhausted", msg)
                    reason = msg
                    break
            meta = {"pid_started": process_start_time(os.getpid()), "worker": worker, "predicted_s": pred["seconds"],
                    "predicted_usd": pred["usd"], "predicted_flops": pred["flops"], "predicted_raw_s": pred["raw_seconds"],
                    "correction": pred["correction"], "correction_n": pred["correction_n"],
                    "setup_s": pred.get("setup_s", 0.0), "per_step_s": pred.get("per_step_s"), "run": cfg.name,
                    "run_dir": cfg.out, "adjusted": adjusted,
                    "config": {k: v for k, v in cfg.to_dict().items() if v is not None}}
            trial.set_user_attr("meta", meta)  # one write (each is a committed transaction)
        _run_trial(study, trial, cfg, doc, study_dir, pred)
        ran.append(trial.number)
        if _stop_flag(study_dir).exists():
            reason = "stopped by request"
            break
    return {"worker": worker, "trials": ran, "stopped_reason": reason}


def _twin(trials, params: dict):
    """A finished trial (complete or pruned, not a reuse itself) with exactly these parameters, or None."""
    from optuna.trial import TrialState

    for t in trials:
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.params == params \
                and attrs(t).get("outcome") in ("complete", "pruned"):
            return t
    return None


def _reuse(study, trial, twin) -> None:
    """TPE proposed a configuration that already ran. Same configuration and seed give the same result
    (the trainer is a pure function of both), so the result is reused instead of trained again: the twin's
    value (or its evaluations and the pruned state). It counts as a trial, with 0 steps."""
    from optuna.trial import TrialState

    trial.set_user_attr("result", {"outcome": "duplicate", "duplicate_of": twin.number, "steps": 0,
                                   "measured_s": 0.0, "measured_usd": 0.0})
    if twin.state == TrialState.COMPLETE:
        study.tell(trial, twin.value)
    else:
        for step, value in sorted(twin.intermediate_values.items()):
            trial.report(value, step)
        study.tell(trial, state=TrialState.PRUNED)


def _planted_curve(lr: float, step: int, steps: int) -> float:
    """The planted objective: a loss curve whose final value has a sharp minimum at lr = PLANTED_LR
    (8 nats per decade², squared in log10 lr); every curve decays the same way, so their order holds at
    every step and a pruner never removes the best."""
    final = 1.0 + 8.0 * math.log10(lr / PLANTED_LR) ** 2
    return final + 5.0 * math.exp(-4.0 * step / steps)


def _run_trial(study, trial, cfg, doc: dict, study_dir: Path, pred: dict) -> None:
    from optuna.trial import TrialState

    prune = bool(doc["input"]["prune"])
    stopped = {"flag": False}

    def on_eval(step: int, metrics: dict) -> bool:
        value = float(metrics["val_loss"])
        if math.isfinite(value):
            trial.report(value, step)
        if _stop_flag(study_dir).exists():
            stopped["flag"] = True
            return True
        return prune and trial.should_prune()

    t0 = time.perf_counter()
    outcome, value, steps, error, extra = "complete", None, 0, None, {}
    try:
        if doc["input"]["objective"] == "planted":
            step_s = float(doc["data_info"].get("step_s", 0.0))
            every = int(cfg.eval_every)
            for step in range(1, int(cfg.max_steps) + 1):
                if step_s:
                    time.sleep(step_s)
                steps = step
                if step % every == 0 or step == cfg.max_steps:
                    value = _planted_curve(float(cfg.lr), step, int(cfg.max_steps))
                    if step < cfg.max_steps and on_eval(step, {"val_loss": value}):
                        outcome = "stopped" if stopped["flag"] else "pruned"
                        break
        else:
            from engine.lab.trainer import train
            from engine.store import Registry

            res = train(cfg, registry=Registry(doc["input"].get("registry")), on_eval=on_eval)
            steps, value = res.steps, res.best_val_loss
            extra = {"status": res.status, "val_accuracy": res.val_accuracy, "val_f1": res.val_f1}
            if res.status == "stopped":
                outcome = "stopped" if stopped["flag"] else "pruned"
    except (RunError, ValidationError) as exc:
        outcome = "diverged" if "diverged" in str(exc) else "failed"
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a crash fails this trial, not the study
        outcome, error = "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
    measured = time.perf_counter() - t0
    trial.set_user_attr("result", {**extra, "measured_s": measured, "steps": steps, "outcome": outcome, "error": error,
                                   "measured_usd": measured / 3600 * doc["price"]["usd_per_worker_hour"]})
    if outcome == "complete" and value is not None and math.isfinite(value):
        study.tell(trial, float(value))
    elif outcome == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


# ---- the sweep: prepare, run workers, summarise ----------------------------------------------------------------
def _data_info(inp: SweepInput, space: dict) -> dict[str, Any]:
    """What predictions need from the data: vocabulary per tokenizer, classes, row lengths, load time."""
    from engine.lab.data import DataInput, load_dataset

    tokenizers = space["params"].get("tokenizer", {}).get("choices") or [space["fixed"].get("tokenizer", "byte")]
    context = int(space["fixed"].get("context") or 64)
    info: dict[str, Any] = {"vocab": {}, "row_lengths": {}, "n_classes": 0, "objective": "train"}
    setup = []
    for tok in tokenizers:
        t0 = time.perf_counter()
        ds = load_dataset(DataInput(path=inp.data, sample=inp.sample, task=inp.task, text_col=inp.text_col,
                                    label_col=inp.label_col, tokenizer=tok,
                                    bpe_vocab=int(space["fixed"].get("bpe_vocab", 4096)), seed=inp.seed), context)
        setup.append(time.perf_counter() - t0)
        info["vocab"][tok] = ds.tokenizer.vocab_size
        if ds.task == "classify":
            info["n_classes"] = ds.n_classes
            info["row_lengths"][tok] = [int(len(r)) for r in ds.train_x[:2000]]
    info["setup_s"] = max(setup) + 0.5  # + model build, first checkpoint (measured order of magnitude)
    return info


def study_dir_for(name: str) -> Path:
    """The page's default study folder: ``$PREFLIGHT_HOME/runs/sweeps/<name>`` (so the lab page may delete trials)."""
    from engine.workspace import runs_dir

    return runs_dir() / "sweeps" / name


def prepare(inp: SweepInput) -> tuple[Path, dict]:
    """Validate, read the data, measure throughput, check the budget fits one trial and write sweep.json
    (or check a resumed study's). Returns the study folder and its document."""
    from engine.access import require_write

    require_write("starting a sweep")
    inp, space, name = validate_sweep(inp)
    study_dir = Path(inp.out).expanduser().resolve()
    doc_path = study_dir / "sweep.json"
    old = None
    if doc_path.is_file():
        try:
            old = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ValidationError(f"{doc_path} cannot be read; choose a new --out") from None
        if old.get("study") != name:
            raise ValidationError(f"{study_dir} holds study {old.get('study')!r}, not {name!r}; choose another --out")
        if old.get("space") != space or any(old["input"].get(k) != getattr(inp, k) for k in (
                "data", "sample", "task", "text_col", "label_col", "objective", "seed")):
            raise ValidationError(f"study {name!r} in {study_dir} was started with other data or another search space; "
                                  f"resume it with the same ones, or choose a new --out")
    elif study_dir.exists() and any(p.name not in LAUNCHER_FILES for p in study_dir.iterdir()):
        raise ValidationError(f"{study_dir} is not empty and holds no study; choose a new --out")
    n_cores = cores()
    threads = max(1, n_cores // inp.workers)
    if inp.objective == "planted":
        device = "cpu"
        fixed = space["fixed"]
        data_info = {"objective": "planted", "step_s": float(fixed.get("step_s", 0.0)), "setup_s": 0.0,
                     "vocab": {}, "n_classes": 0}
        throughput = {"source": "planted", "basis": "synthetic objective: step_s per step",
                      "flops_per_s": None, "flops_per_s_per_worker": None, "threads_per_worker": threads}
    else:
        from engine.lab.device import resolve_device
        from engine.requires import require_torch

        require_torch("a sweep")
        device = resolve_device("auto")
        data_info = _data_info(inp, space)
        throughput = (old or {}).get("throughput") or measure_throughput(
            inp.registry, device, space["fixed"].get("preset", inp.preset), int(space["fixed"].get("context") or 64),
            threads, n_cores)
        throughput = {**throughput, "flops_per_s_per_worker": throughput["flops_per_s"] * (
            min(1.0, threads / n_cores) if device == "cpu" else 1.0), "threads_per_worker": threads}
    price = _price(inp, device, n_cores)
    base = {"data": inp.data, "sample": inp.sample, "task": inp.task, "text_col": inp.text_col,
            "label_col": inp.label_col, "seed": inp.seed, "registry": inp.registry, "device": device,
            "threads": threads, "preset": space["fixed"].get("preset", inp.preset)}
    budget: dict[str, Any] = {"minutes": inp.budget_minutes, "usd": inp.budget_usd, "seconds": None}
    if inp.budget_minutes is not None:
        budget["seconds"] = inp.budget_minutes * 60.0
    elif inp.budget_usd is not None:
        if not price["usd_per_hour"]:
            raise ValidationError("--budget-usd needs a price: pass --usd-per-hour")
        budget["seconds"] = inp.budget_usd / price["usd_per_hour"] * 3600.0
    typical = _typical_trial(space, base, data_info, throughput, price, inp.seed)
    if budget["seconds"] is not None and budget["seconds"] < typical["min_s"]:
        raise ValidationError(
            f"the budget ({budget['seconds'] / 60:.2g} min) is smaller than one trial: a trial in this space takes "
            f"about {typical['median_s']:.0f} s (the cheapest about {typical['min_s']:.0f} s) on this machine")
    doc = {"study": name, "input": inp.to_dict() | {"space": None}, "space": space, "base": base,
           "data_info": data_info, "throughput": throughput, "price": price, "budget": budget, "typical": typical,
           "cores": n_cores, "created": (old or {}).get("created", time.time()),
           "n_startup_trials": 5, "prune_startup_trials": 3}
    study_dir.mkdir(parents=True, exist_ok=True)
    from engine.lab.checkpoint import atomic_write_text

    atomic_write_text(doc_path, json.dumps(doc, indent=1, default=str))
    with contextlib.suppress(FileNotFoundError):
        _stop_flag(study_dir).unlink()
    study = _load_study(study_dir, doc)  # create the study (or check it loads) before workers race to
    if study.user_attrs.get("budget_exhausted"):  # a resumed study gets this run's budget afresh
        study.set_user_attr("budget_exhausted", "")
    return study_dir, doc


def _typical_trial(space, base, data_info, throughput, price, seed) -> dict[str, float]:
    """Predicted seconds of 32 random configurations of the space (median and cheapest)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seconds = []
    for _ in range(32):
        t = study.ask()
        cfg, _ = trial_config(base, space, suggest(t, space))
        seconds.append(predict_trial(cfg, data_info, throughput, price)["seconds"])
        study.tell(t, 0.0)
    seconds.sort()
    return {"median_s": seconds[len(seconds) // 2], "min_s": seconds[0], "max_s": seconds[-1]}


def _spawn_worker(study_dir: Path, index: int) -> subprocess.Popen:
    logs = study_dir / "workers"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(logs / f"worker-{index}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "engine", "sweep-worker", "--study-dir", str(study_dir),
                                 "--worker", str(index), "--json"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=os.getcwd())


@dataclass
class SweepResult:
    study: str
    study_dir: str
    trials: list[dict]
    best_params: dict | None
    best_value: float | None
    best_trial: int | None
    pruned: list[int]
    predicted_vs_measured: dict
    n_complete: int
    n_failed: int
    stopped_reason: str
    budget: dict
    throughput: dict
    price: dict
    trial_steps: int
    spent_s: float
    spent_usd: float
    workers: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def summary(study_dir: str | os.PathLike, reason: str = "", workers: list[dict] | None = None) -> SweepResult:
    """The study as it stands (also while it runs): trials with predicted and measured time and cost."""
    import statistics

    from optuna.trial import TrialState

    study_dir = Path(study_dir).resolve()
    if not (study_dir / "sweep.json").is_file():
        raise ValidationError(f"{study_dir} holds no sweep (no sweep.json)")
    doc = json.loads((study_dir / "sweep.json").read_text(encoding="utf-8"))
    study = _load_study(study_dir, doc)
    trials = study.get_trials(deepcopy=False)
    rows = []
    for t in trials:
        ua = attrs(t)
        outcome = ua.get("outcome") or ("running" if t.state == TrialState.RUNNING else t.state.name.lower())
        rows.append({"number": t.number, "state": t.state.name.lower(), "outcome": outcome, "value": t.value,
                     "params": dict(t.params), "steps": ua.get("steps"), "run": ua.get("run"),
                     "predicted_s": ua.get("predicted_s"), "measured_s": ua.get("measured_s"),
                     "predicted_raw_s": ua.get("predicted_raw_s"), "correction": ua.get("correction"),
                     "predicted_usd": ua.get("predicted_usd"), "measured_usd": ua.get("measured_usd"),
                     "val_accuracy": ua.get("val_accuracy"), "error": ua.get("error"), "worker": ua.get("worker"),
                     "adjusted": ua.get("adjusted") or {}, "start": _ts(t.datetime_start), "end": _ts(t.datetime_complete)})
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(done, key=lambda t: t.value) if done else None
    ratios = [(r["number"], r["predicted_s"], r["measured_s"], r["measured_s"] / r["predicted_s"],
               r["predicted_raw_s"], r["correction"])
              for r in rows if r["outcome"] == "complete" and r["predicted_s"] and r["measured_s"]]
    raw = [m / pr for _, _, m, _, pr, _ in ratios if pr]
    pvm = {"n": len(ratios), "median_ratio": statistics.median([x[3] for x in ratios]) if ratios else None,
           "median_ratio_raw": statistics.median(raw) if raw else None,
           "basis": ("measured / predicted wall time of complete trials (pruned ones stop early and are left out); "
                     "'predicted' is the FLOP-based figure × the study's correction from the trials finished before "
                     "it started; 'raw' is the FLOP-based figure alone"),
           "trials": [{"number": n, "predicted_s": p, "measured_s": m, "ratio": q, "predicted_raw_s": pr,
                       "correction": c} for n, p, m, q, pr, c in ratios]}
    spent, _ = _spent_and_projected(trials, time.time())
    if not reason:
        reason = study.user_attrs.get("budget_exhausted") or ""
    if not reason and (study_dir / "result.json").is_file():  # the last session's ending
        with contextlib.suppress(OSError, ValueError):
            reason = json.loads((study_dir / "result.json").read_text(encoding="utf-8")).get("stopped_reason") or ""
    return SweepResult(
        study=doc["study"], study_dir=str(study_dir), trials=rows,
        best_params=dict(best.params) if best else None, best_value=best.value if best else None,
        best_trial=best.number if best else None,
        pruned=[r["number"] for r in rows if r["outcome"] == "pruned"], predicted_vs_measured=pvm,
        n_complete=len(done), n_failed=sum(1 for r in rows if r["state"] == "fail" and r["outcome"] != "skipped"),
        stopped_reason=reason, budget=doc["budget"], throughput=doc["throughput"], price=doc["price"],
        trial_steps=sum(int(r["steps"] or 0) for r in rows), spent_s=spent,
        spent_usd=spent / 3600 * doc["price"]["usd_per_hour"], workers=workers or [])


def run_sweep(inp: SweepInput) -> SweepResult:
    """Prepare the study, run ``inp.workers`` worker processes on it until they finish, and summarise."""
    study_dir, doc = prepare(inp)
    procs = [_spawn_worker(study_dir, i) for i in range(int(doc["input"]["workers"]))]

    def _stop(signum, frame):  # noqa: ARG001 - the page's Stop (SIGTERM) or Ctrl-C: workers finish their step
        _stop_flag(study_dir).touch()

    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, _stop)
    try:
        codes = []
        for i, p in enumerate(procs):
            while True:
                try:
                    codes.append({"worker": i, "pid": p.pid, "exit_code": p.wait()})
                    break
                except KeyboardInterrupt:  # pragma: no cover
                    _stop_flag(study_dir).touch()
    finally:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
    study = _load_study(study_dir, doc)
    reap_dead_trials(study, doc["input"].get("registry"))
    reason = ""
    if _stop_flag(study_dir).exists():
        reason = "stopped by request"
    elif any(c["exit_code"] for c in codes):
        reason = "a worker died: " + ", ".join(f"worker {c['worker']} exit {c['exit_code']}" for c in codes
                                               if c["exit_code"]) + " (its trial is marked failed; run again to resume)"
    res = summary(study_dir, reason, codes)
    if not res.stopped_reason:
        res.stopped_reason = f"{doc['input']['trials']} trials done"
    from engine.lab.checkpoint import atomic_write_text

    atomic_write_text(study_dir / "result.json", json.dumps(res.to_dict(), indent=1))
    return res


# ---- for the page: the sweep as its own process -----------------------------------------------------------
def sweep_args(inp: SweepInput) -> list[str]:
    """The ``sweep`` command line for ``inp`` (the space as a JSON file in the study folder)."""
    args = ["--trials", str(inp.trials), "--workers", str(inp.workers), "--out", str(inp.out), "--seed", str(inp.seed),
            "--preset", inp.preset]
    for key, flag in (("data", "--data"), ("sample", "--sample"), ("task", "--task"), ("text_col", "--text-col"),
                      ("label_col", "--label-col"), ("budget_minutes", "--budget-minutes"),
                      ("budget_usd", "--budget-usd"), ("usd_per_hour", "--usd-per-hour"), ("steps", "--steps"),
                      ("name", "--name"), ("registry", "--registry"), ("space", "--space")):
        value = getattr(inp, key)
        if value is not None:
            args += [flag, str(value)]
    if not inp.prune:
        args.append("--no-prune")
    args += ["--pruner", inp.pruner]
    if inp.objective != "train":
        args += ["--objective", inp.objective]
    return args


def start_sweep(inp: SweepInput) -> dict[str, Any]:
    """Start ``preflight sweep`` in its own process (it survives page reruns); returns its folder and pid.
    Cheap checks run here first, so bad input is one error line on the page, not a dead process."""
    from engine.access import require_write
    from engine.lab.checkpoint import atomic_write_text

    require_write("starting a sweep")
    inp2, space, name = validate_sweep(inp)
    out = Path(inp.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(inp.space, dict):
        space_file = out / "space.json"
        atomic_write_text(space_file, json.dumps(inp.space, indent=1))
        inp = replace(inp, space=str(space_file))
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with open(out / "log.txt", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "sweep", *sweep_args(inp), "--json"], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=os.getcwd(), env=env)
    atomic_write_text(out / "sweep.pid", json.dumps({"pid": proc.pid, "started": time.time()}))
    return {"study": name, "study_dir": str(out), "pid": proc.pid}


def sweep_error(study_dir: str | os.PathLike) -> str:
    """The error line a sweep process left in its log.txt ("" when none)."""
    try:
        lines = [ln for ln in (Path(study_dir) / "log.txt").read_text(encoding="utf-8", errors="replace").splitlines()
                 if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "error:" in ln]
    return errors[-1].split("error:", 1)[1].strip()[:500] if errors else ""


def sweep_alive(study_dir: str | os.PathLike) -> bool:
    from engine.store import is_alive

    try:
        pid = json.loads((Path(study_dir) / "sweep.pid").read_text(encoding="utf-8"))["pid"]
    except (OSError, ValueError, KeyError):
        return False
    return is_alive(int(pid))


def stop_sweep(study_dir: str | os.PathLike) -> None:
    """Ask the sweep to stop: running trials end at their next evaluation (a stopped trial is re-run on resume)."""
    path = Path(study_dir)
    if not (path / "sweep.json").is_file() and not (path / "sweep.pid").is_file():
        raise ValidationError(f"{path} holds no sweep")
    _stop_flag(path).touch()


def list_studies() -> list[Path]:
    """Study folders under ``$PREFLIGHT_HOME/runs/sweeps``, newest first."""
    from engine.workspace import runs_dir

    root = runs_dir() / "sweeps"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "sweep.json").is_file() or (p / "sweep.pid").is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def best_config(study_dir: str | os.PathLike, max_steps: int | None = None):
    """The TrainConfig of the study's best trial, for a full run (more steps when ``max_steps`` is given)."""
    res = summary(study_dir)
    if res.best_trial is None:
        raise ValidationError("the study has no complete trial yet")
    doc = json.loads((Path(study_dir) / "sweep.json").read_text(encoding="utf-8"))
    if doc["input"]["objective"] != "train":
        raise ValidationError("this study's objective is synthetic (planted); there is no model to train")
    cfg, _ = trial_config(doc["base"], doc["space"], res.best_params)
    changes: dict[str, Any] = {"out": None, "name": None, "sample_tokens": 120, "keep_checkpoints": 2, "threads": None}
    if max_steps:
        changes["max_steps"] = int(max_steps)
    return replace(cfg, **changes)


def load_study(study_dir: str | os.PathLike):
    """The Optuna study of a study folder (for optuna.visualization on the page)."""
    path = Path(study_dir).resolve()
    try:
        doc = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValidationError(f"{path} holds no sweep (no readable sweep.json)") from None
    return _load_study(path, doc)


def study_input(study_dir: str | os.PathLike) -> SweepInput:
    """The input a study was last started with (to resume it from the page)."""
    path = Path(study_dir).resolve()
    try:
        doc = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValidationError(f"{path} holds no sweep (no readable sweep.json)") from None
    known = set(SweepInput.__dataclass_fields__)
    data = {k: v for k, v in doc["input"].items() if k in known}
    data["space"] = {"params": {k: {kk: vv for kk, vv in v.items() if kk != "kind"} for k, v in doc["space"]["params"].items()},
                     "fixed": doc["space"]["fixed"]}
    data["out"] = str(path)
    return SweepInput(**data)
