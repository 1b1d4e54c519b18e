"""Budget-aware hyperparameter search over the model lab: Optuna's TPE sampler (Bergstra et al. 2011,
"Algorithms for Hyper-Parameter Optimization", §4) with pruning driven by the trainer's evaluations:
asynchronous successive halving by default (Optuna's SuccessiveHalvingPruner, ASHA: Li et al. 2020, "A System
for Massively Parallel Hyperparameter Tuning", Alg. 2; rungs at eval_every × 3^k steps, reduction factor 3),
or the median stopping rule (MedianPruner; Golovin et al. 2017, Google Vizier §3.2.2).

A study lives in one folder (``--out``; the page uses ``$PREFLIGHT_HOME/runs/sweeps/<name>``)::

    sweep.json      the input, the search space, the throughput the predictions use (written once)
    study.sqlite    Optuna's RDB storage (SQLite): several worker processes share it; it survives restarts
                    (or ``--storage URL``, e.g. PostgreSQL, shared by workers on several machines:
                    engine/lab/tune_storage.py)
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
worker's share of the cores, plus a step's fixed cost (the probe at batch 2) and the measured time to load
the data: the "raw" figure. Once trials have run, the prediction uses the speed fitted to them
(:func:`engine.lab.tune_predict.fit_speed`: seconds per step = a·FLOPs + b, and their median setup).
Cost = time × the machine's price per hour ÷ workers. The budget counts the wall-clock time covered by
trials (the union of their intervals), and the sweep stops when the next trial's predicted end would pass it.

Equal-time trials (``[fixed] trial_seconds``, ``--trial-seconds``): each trial trains the steps its
configuration is predicted to fit in that time (:func:`engine.lab.tune_predict.size_to_seconds`), with
``TIMED_EVALS`` evaluations reported to the pruner at per mille of the trial, so rungs compare equal shares
of equal time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.errors import RunError, ValidationError
from engine.lab.tune_predict import (
    attrs, fit_speed, machine_price, measure_data, measure_throughput, predict_trial, size_to_seconds, suggest,
    trial_config, typical_trial,
)
from engine.lab.tune_space import LAUNCHER_FILES, NOT_COUNTED, PLANTED_LR, TIMED_EVALS, SweepInput, cores, validate_sweep

PER_MILLE = 1000


# ---- the study ---------------------------------------------------------------------------------------------
def _storage(study_dir: Path, url: str | None = None):
    """The study's storage: ``study.sqlite`` in the folder, or ``url`` (engine.lab.tune_storage)."""
    from engine.lab.tune_storage import storage

    return storage(study_dir, url)


def open_study(study_dir: Path, doc: dict, worker: int = 0):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(doc["input"]["seed"]) + 7919 * worker,
                                         n_startup_trials=doc.get("n_startup_trials", 5))
    kind = doc["input"].get("pruner", "asha") if doc["input"]["prune"] else "none"
    if kind == "asha":  # rungs at eval_every × 3^k steps; a trial continues only in the top third of its rung
        # (equal-time trials report per mille of the trial, so their first rung is the first evaluation)
        first = PER_MILLE // TIMED_EVALS if timed(doc) else int(doc["space"]["fixed"].get("eval_every") or 1)
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    elif kind == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=doc.get("prune_startup_trials", 3), n_warmup_steps=0)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(study_name=doc["study"], storage=_storage(study_dir, doc["input"].get("storage")),
                               sampler=sampler, pruner=pruner,
                               direction="minimize", load_if_exists=True)


def _work_rate(doc: dict) -> float:
    """The probe's FLOP/s per worker (the planted objective counts seconds: 1 per second)."""
    return 1.0 if doc["input"]["objective"] == "planted" else float(doc["throughput"]["flops_per_s_per_worker"])


def timed(doc: dict) -> bool:
    """Whether the study's trials are equal-time (``[fixed] trial_seconds``) rather than a number of steps."""
    return bool(doc["space"]["fixed"].get("trial_seconds"))


def reported_step(doc: dict, step: int, max_steps: int) -> int:
    """The step an evaluation is reported to the pruner at: the trainer's step, or for equal-time trials
    (whose step counts differ by configuration) the per mille of the trial reached, so rungs compare
    trials at the same share of the same time (evaluation k of TIMED_EVALS reports k/TIMED_EVALS, whatever
    the rounding of its step)."""
    if not timed(doc):
        return int(step)
    return PER_MILLE // TIMED_EVALS * int(round(TIMED_EVALS * step / max_steps))


def _locked(study_dir: Path, doc: dict):
    """One worker at a time takes a trial (engine.lab.tune_storage.study_lock: flock, and a PostgreSQL
    advisory lock for workers on other machines)."""
    from engine.lab.tune_storage import study_lock

    return study_lock(study_dir, doc["study"], doc["input"].get("storage"))


def _ts(dt) -> float | None:
    return dt.timestamp() if dt is not None else None


def reap_dead_trials(study, registry_path: str | None = None) -> list[int]:
    """Mark running trials whose worker process is gone (SIGKILL, OOM killer, reboot) as failed, outcome
    'killed', and their registry runs failed too. Returns the trial numbers marked."""
    from optuna.trial import TrialState

    from engine.lab.tune_storage import this_host
    from engine.store import Registry, is_alive

    marked = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host", this_host()) != this_host():
            continue  # another machine's worker: its pid means nothing here
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


def stop_flag_path(study_dir: Path) -> Path:
    return study_dir / "STOP"


def worker_main(study_dir: str | os.PathLike, worker: int = 0) -> dict[str, Any]:
    """One worker: take trials until N have run, the budget is spent, or the study is asked to stop."""
    from optuna.trial import TrialState

    from engine.lab.tune_storage import this_host
    from engine.store import process_start_time

    study_dir = Path(study_dir).resolve()
    doc = json.loads((study_dir / "sweep.json").read_text(encoding="utf-8"))
    inp = doc["input"]
    study = open_study(study_dir, doc, worker)
    ran, reason = [], ""
    budget_s = doc["budget"].get("seconds")
    while True:
        if stop_flag_path(study_dir).exists():
            reason = "stopped by request"
            break
        with _locked(study_dir, doc):
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
            trial.set_user_attr("host", this_host())
            params = suggest(trial, doc["space"])
            cfg, adjusted = trial_config(doc["base"], doc["space"], params)
            cfg = replace(cfg, out=str(study_dir / "trials" / f"trial-{trial.number:04d}"),
                          name=f"{doc['study']}-t{trial.number:03d}")
            twin = _twin(trials, params)
            if twin is not None:
                _reuse(study, trial, twin)
                ran.append(trial.number)
                continue
            speed = fit_speed(trials, _work_rate(doc))
            if timed(doc):
                cfg, _ = size_to_seconds(cfg, doc["space"]["fixed"]["trial_seconds"], doc["data_info"],
                                         doc["throughput"], doc["price"], speed)
            raw = predict_trial(cfg, doc["data_info"], doc["throughput"], doc["price"])
            pred = predict_trial(cfg, doc["data_info"], doc["throughput"], doc["price"], speed) if speed else raw
            pred = {**pred, "raw_seconds": raw["seconds"], "correction": pred["seconds"] / raw["seconds"]
                    if raw["seconds"] > 0 else 1.0, "correction_n": speed["n"] if speed else 0, "speed": speed}
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
                    "step_flops": pred["step_flops"], "eval_flops": pred["eval_flops"], "speed": pred["speed"],
                    "run_dir": cfg.out, "adjusted": adjusted,
                    "config": {k: v for k, v in cfg.to_dict().items() if v is not None}}
            trial.set_user_attr("meta", meta)  # one write (each is a committed transaction)
        _run_trial(study, trial, cfg, doc, study_dir, pred)
        ran.append(trial.number)
        if stop_flag_path(study_dir).exists():
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
            trial.report(value, reported_step(doc, step, int(cfg.max_steps)))
        if stop_flag_path(study_dir).exists():
            stopped["flag"] = True
            return True
        return prune and trial.should_prune()

    t0 = time.perf_counter()
    outcome, value, steps, error, extra = "complete", None, 0, None, {}
    train_s = None
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
            steps, value, train_s = res.steps, res.best_val_loss, res.train_time_s
            extra = {"status": res.status, "val_accuracy": res.val_accuracy, "val_f1": res.val_f1}
            if res.status == "stopped":
                outcome = "stopped" if stopped["flag"] else "pruned"
    except (RunError, ValidationError) as exc:
        outcome = "diverged" if "diverged" in str(exc) else "failed"
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a crash fails this trial, not the study
        outcome, error = "failed", f"{type(exc).__name__}: {str(exc)[:300]}"
    measured = time.perf_counter() - t0
    if train_s is None and doc["input"]["objective"] == "planted":
        train_s = measured  # the planted objective has no setup
    trial.set_user_attr("result", {**extra, "measured_s": measured, "train_s": train_s, "steps": steps,
                                   "outcome": outcome, "error": error,
                                   "measured_usd": measured / 3600 * doc["price"]["usd_per_worker_hour"]})
    if outcome == "complete" and value is not None and math.isfinite(value):
        study.tell(trial, float(value))
    elif outcome == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


# ---- the sweep: prepare, run workers, summarise ----------------------------------------------------------------
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
    if inp.storage is not None:  # an unreachable server: one line now, before the data is read
        _storage(study_dir, inp.storage)
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
        data_info = measure_data(inp, space)
        throughput = (old or {}).get("throughput") or measure_throughput(
            inp.registry, device, space["fixed"].get("preset", inp.preset), int(space["fixed"].get("context") or 64),
            threads, n_cores)
        throughput = {**throughput, "flops_per_s_per_worker": throughput["flops_per_s"] * (
            min(1.0, threads / n_cores) if device == "cpu" else 1.0), "threads_per_worker": threads}
    price = machine_price(inp, device, n_cores)
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
    typical = typical_trial(space, base, data_info, throughput, price, inp.seed)
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
        stop_flag_path(study_dir).unlink()
    study = open_study(study_dir, doc)  # create the study (or check it loads) before workers race to
    if study.user_attrs.get("budget_exhausted"):  # a resumed study gets this run's budget afresh
        study.set_user_attr("budget_exhausted", "")
    return study_dir, doc


def spawn_worker(study_dir: Path, index: int) -> subprocess.Popen:
    """One trial worker through the job runner, in the sweep's own process group (it ends with the sweep);
    its pid goes into each trial it takes, where :func:`reap_dead_trials` looks for it."""
    from engine import jobs as runner

    job = runner.start("engine", ["sweep-worker", "--study-dir", str(study_dir), "--worker", str(index), "--json"],
                       study_dir, log=f"workers/worker-{index}.log", record=None, new_session=False)
    return job.process


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
    trial_seconds: float | None  # equal-time trials' length (None: trials are a number of steps)
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
    study = open_study(study_dir, doc)
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
                     "'predicted' uses the speed fitted to the trials finished before it started (time per FLOP and "
                     "a per-step overhead, engine.lab.tune_predict.fit_speed); 'raw' is FLOPs over the probe's "
                     "FLOP/s alone"),
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
        trial_steps=sum(int(r["steps"] or 0) for r in rows), trial_seconds=doc["space"]["fixed"].get("trial_seconds"),
        spent_s=spent,
        spent_usd=spent / 3600 * doc["price"]["usd_per_hour"], workers=workers or [])


def run_sweep(inp: SweepInput) -> SweepResult:
    """Prepare the study, run ``inp.workers`` worker processes on it until they finish, and summarise."""
    study_dir, doc = prepare(inp)
    procs = [spawn_worker(study_dir, i) for i in range(int(doc["input"]["workers"]))]

    def _stop(signum, frame):  # the page's Stop (SIGTERM) or Ctrl-C: workers finish their step
        stop_flag_path(study_dir).touch()

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
                    stop_flag_path(study_dir).touch()
    finally:
        for sig, handler in old.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
    study = open_study(study_dir, doc)
    reap_dead_trials(study, doc["input"].get("registry"))
    reason = ""
    if stop_flag_path(study_dir).exists():
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
