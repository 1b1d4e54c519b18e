"""Sweeps, part 4: the sweep as its own process for the page (start, stop, alive, error), the studies in the
workspace, and the best configuration of a study."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine import jobs as runner
from engine.errors import ValidationError
from engine.lab.tune import open_study, stop_flag_path, summary
from engine.lab.tune_predict import attrs, trial_config
from engine.lab.tune_space import SweepInput, validate_sweep


# ---- for the page: the sweep as its own process -----------------------------------------------------------
def sweep_args(inp: SweepInput) -> list[str]:
    """The ``sweep`` command line for ``inp`` (the space as a JSON file in the study folder)."""
    args = ["--trials", str(inp.trials), "--workers", str(inp.workers), "--out", str(inp.out), "--seed", str(inp.seed),
            "--preset", inp.preset]
    for key, flag in (("data", "--data"), ("sample", "--sample"), ("task", "--task"), ("text_col", "--text-col"),
                      ("label_col", "--label-col"), ("budget_minutes", "--budget-minutes"),
                      ("budget_usd", "--budget-usd"), ("usd_per_hour", "--usd-per-hour"), ("steps", "--steps"),
                      ("trial_seconds", "--trial-seconds"),
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
    job = runner.start("engine", ["sweep", *sweep_args(inp), "--json"], out, record=PID_FILE)
    return {"study": name, "study_dir": str(out), "pid": job.pid}


PID_FILE = "sweep.pid"  # the sweep process's record (engine/jobs.py), in the study folder


def sweep_error(study_dir: str | os.PathLike) -> str:
    """The error line a sweep process left in its log.txt ("" when none)."""
    return runner.last_line(Path(study_dir) / "log.txt", "error:")


def sweep_alive(study_dir: str | os.PathLike) -> bool:
    return runner.running(study_dir, PID_FILE)


def sweep_status(study_dir: str | os.PathLike) -> dict:
    """{'status': running | done | failed, 'error': the sweep's error line} for the page's watch_job."""
    if sweep_alive(study_dir):
        return {"status": "running", "error": None}
    error = sweep_error(study_dir)
    return {"status": "failed" if error else "done", "error": error or None}


def stop_sweep(study_dir: str | os.PathLike) -> None:
    """Ask the sweep to stop: running trials end at their next evaluation (a stopped trial is re-run on resume)."""
    path = Path(study_dir)
    if not (path / "sweep.json").is_file() and not (path / PID_FILE).is_file():
        raise ValidationError(f"{path} holds no sweep")
    stop_flag_path(path).touch()


def list_studies() -> list[Path]:
    """Study folders under ``$PREFLIGHT_HOME/runs/sweeps``, newest first."""
    from engine.workspace import runs_dir

    root = runs_dir() / "sweeps"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "sweep.json").is_file() or (p / PID_FILE).is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def best_config(study_dir: str | os.PathLike, max_steps: int | None = None, seconds: float | None = None):
    """The TrainConfig of the study's best trial (exactly as it ran: an equal-time trial's sized steps
    included), for a full run: ``max_steps`` steps, or as many as ``seconds`` hold at the best trial's
    measured time per step (its setup taken off), with about ten evaluations."""
    import math

    from engine.lab.trainer import TrainConfig

    if max_steps and seconds:
        raise ValidationError("give the full run's steps or its time, not both")
    res = summary(study_dir)
    if res.best_trial is None:
        raise ValidationError("the study has no complete trial yet")
    doc = json.loads((Path(study_dir) / "sweep.json").read_text(encoding="utf-8"))
    if doc["input"]["objective"] != "train":
        raise ValidationError("this study's objective is synthetic (planted); there is no model to train")
    trial = load_study(study_dir).trials[res.best_trial]
    ua = attrs(trial)
    cfg = TrainConfig.from_dict(ua["config"]) if ua.get("config") else trial_config(doc["base"], doc["space"],
                                                                                    res.best_params)[0]
    changes: dict[str, Any] = {"out": None, "name": None, "sample_tokens": 120, "keep_checkpoints": 2, "threads": None,
                               "resume": None}
    if seconds:
        steps, measured = int(ua.get("steps") or 0), float(ua.get("measured_s") or 0.0)
        train_s = float(ua.get("train_s") or 0.0)  # the trainer's own step time (evaluations excluded)
        setup = measured - train_s if train_s else float(ua.get("setup_s") or 0.0)
        if not steps or measured <= setup:
            raise ValidationError("the best trial has no measured time per step; give the full run's steps instead")
        per_step = (measured - setup) / steps
        max_steps = max(1, int((float(seconds) - setup) / per_step))
    if max_steps:
        changes["max_steps"] = int(max_steps)
        changes["eval_every"] = max(1, math.ceil(int(max_steps) / 10))
        if cfg.warmup_steps is not None:
            changes["warmup_steps"] = min(int(cfg.warmup_steps), int(max_steps))
    return replace(cfg, **changes)


def load_study(study_dir: str | os.PathLike):
    """The Optuna study of a study folder (for optuna.visualization on the page)."""
    path = Path(study_dir).resolve()
    try:
        doc = json.loads((path / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValidationError(f"{path} holds no sweep (no readable sweep.json)") from None
    return open_study(path, doc)


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
