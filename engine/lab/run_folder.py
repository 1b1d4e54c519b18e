"""A training run's folder and its row in the run registry: a new folder (empty but for what a launcher
wrote) or a resumed one, the checks a resume must pass before anything is marked running, and registering
the run (or adopting the row a launcher queued for the folder). Used by :mod:`engine.lab.trainer`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import ValidationError
from engine.lab.train_config import TrainConfig

FRESH_DIR_OK = {"log.txt"}  # files a launcher may create in a run folder before the trainer starts


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """The run's folder: a resumed run's (it must exist), or a new one (empty but for what a launcher wrote)."""
    run_dir = Path(cfg.resume or cfg.out).expanduser().resolve()
    if cfg.resume:
        if not run_dir.is_dir():
            raise ValidationError(f"--resume {cfg.resume}: no such run folder")
        return run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValidationError(f"--out {cfg.out} is a file, not a folder")
    if run_dir.is_dir():
        present = {p.name for p in run_dir.iterdir()} - FRESH_DIR_OK
        if present:
            raise ValidationError(f"run folder {run_dir} is not empty; pass --resume {cfg.out} to continue that run "
                                  f"or choose a new --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def attach_registry(registry, cfg: TrainConfig, run_dir: Path, config_doc: dict) -> str:
    """Register the run (or adopt the queued row a launcher made for this folder); returns its name."""
    existing = registry.find_run_by_dir(run_dir)
    if existing is not None and (cfg.resume or existing["status"] == "queued"):
        name = existing["name"]
    elif existing is not None:  # a stale row for a folder that was emptied: start over under its name
        name = existing["name"]
        registry.truncate_metrics(name, -1)
    else:
        name = registry.create_run(cfg.name or run_dir.name, config_doc, run_dir, kind="train")
    registry.set_status(name, "running", pid=os.getpid(), config=config_doc)
    return name


def check_resume_target(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse a resume that has nothing to do (before the registry marks the run as running)."""
    from engine.lab import checkpoint as ck
    from engine.lab.presets import get_preset

    latest = ck.latest_path(run_dir)
    if latest is None:
        raise ValidationError(f"--resume {cfg.resume}: no checkpoint to resume from in {run_dir}")
    try:
        step = int(json.loads((latest / "state.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValidationError(f"--resume {cfg.resume}: checkpoint {latest.name} cannot be read ({exc})") from None
    max_steps = int(cfg.max_steps or get_preset(cfg.preset).max_steps)
    if step >= max_steps:
        raise ValidationError(f"the run is already at step {step}; pass a larger --max-steps (now {max_steps}) "
                              f"to train further")
