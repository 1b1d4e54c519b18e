"""Training as its own process, for the page: start, stop, resume, delete, and sample from a run.

The page never trains inside the Streamlit script. :func:`start_training` registers the run as
'queued' and starts ``python -m engine train ... --out <run dir>`` through the job runner
(engine/jobs.py: a new session, so it survives Streamlit reruns, page switches and closed tabs); its
output goes to ``<run dir>/log.txt`` and its pid (with the pid's start time) to the registry. The trainer adopts the queued row and reports status, metrics
and samples to the registry, which the page polls. :func:`stop_run` sets the registry's stop flag
(the trainer checkpoints and ends as 'stopped') and sends SIGTERM after a grace period, which the
trainer treats the same way.
"""

from __future__ import annotations

import time
from pathlib import Path

from engine import jobs as runner
from engine.access import require_write
from engine.errors import ValidationError
from engine.store import Registry, is_alive
from engine.workspace import runs_dir, safe_name

__all__ = ["start_calibration", "calibration_running", "start_training", "stop_run", "resume_run", "delete_run", "is_alive", "refresh", "generate", "train_args"]

_FLAG = {
    "data": "--data", "sample": "--sample", "task": "--task", "text_col": "--text-col", "label_col": "--label-col",
    "tokenizer": "--tokenizer", "bpe_vocab": "--bpe-vocab", "preset": "--preset", "n_layers": "--n-layers",
    "n_heads": "--n-heads", "n_kv_heads": "--n-kv-heads", "d_model": "--d-model", "d_ff": "--d-ff",
    "context": "--context", "dropout": "--dropout", "max_steps": "--max-steps", "batch_size": "--batch-size",
    "grad_accum": "--grad-accum", "lr": "--lr", "warmup_steps": "--warmup", "eval_every": "--eval-every",
    "eval_batches": "--eval-batches", "early_stop_patience": "--early-stop", "checkpoint_every": "--checkpoint-every",
    "sample_every": "--sample-every", "stop_at": "--stop-at", "device": "--device", "dtype": "--dtype",
    "seed": "--seed", "registry": "--registry", "threads": "--threads",
}


def train_args(cfg) -> list[str]:
    """The ``train`` command-line arguments for a TrainConfig (fields at their defaults are left out)."""
    from dataclasses import fields

    from engine.lab.trainer import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    out: list[str] = []
    for key, flag in _FLAG.items():
        value = getattr(cfg, key)
        if value is None or value == defaults[key]:
            continue
        out += [flag, repr(value) if isinstance(value, float) else str(value)]
    if cfg.compile:
        out.append("--compile")
    if cfg.fsdp:
        out.append("--fsdp")
    return out


def _spawn(args: list[str], run_dir: Path, env: dict | None = None, command: str = "train",
           record: str | None = None) -> runner.Job:
    return runner.start("engine", [command, *args], run_dir, log="log.txt", record=record, env=env)


def start_training(cfg, name: str | None = None, *, registry: Registry | None = None,
                   env: dict | None = None) -> str:
    """Start a training run in its own process; returns the registered run name. ``cfg`` is a
    TrainConfig (its ``out`` defaults to the workspace's runs folder/<name>) or a list of CLI args
    (which must include ``--out``). Bad input is refused here, before any process starts."""
    from dataclasses import replace

    from engine.lab.train_config import TrainConfig, validate_config

    require_write("starting training")
    reg = registry or Registry()
    if isinstance(cfg, TrainConfig):
        base = safe_name(name or cfg.name or cfg.preset, "run name")
        if cfg.out is None:
            out = runs_dir() / base
            n = 1
            while out.exists() or reg.find_run_by_dir(out) is not None:
                n += 1
                out = runs_dir() / f"{base}-{n}"
            cfg = replace(cfg, out=str(out))
        cfg = replace(cfg, registry=str(reg.path), resume=None)
        validate_config(cfg)
        from engine.lab.data import DataInput

        DataInput(path=cfg.data, sample=cfg.sample, task=cfg.task, text_col=cfg.text_col, label_col=cfg.label_col,
                  tokenizer=cfg.tokenizer, bpe_vocab=cfg.bpe_vocab, val_fraction=cfg.val_fraction, seed=cfg.seed)
        run_dir = Path(cfg.out).resolve()
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ValidationError(f"run folder {run_dir} is not empty; choose another name")
        import json

        args = ["--config-json", json.dumps(cfg.to_dict()), "--out", str(run_dir)]
        config = {"train": cfg.to_dict()}
    else:
        args = [str(a) for a in cfg]
        if "--out" not in args:
            raise ValidationError("start_training needs --out DIR among the arguments")
        run_dir = Path(args[args.index("--out") + 1]).resolve()
        base = safe_name(name or run_dir.name, "run name")
        if "--registry" not in args:
            args += ["--registry", str(reg.path)]
        config = {"args": args}
    run_name = reg.create_run(base, config, run_dir, kind="train", status="queued")
    args += ["--name", run_name]
    job = _spawn(args, run_dir, env)
    reg.set_pid(run_name, job.pid)
    return run_name


def start_calibration(preset: str, device: str = "auto", batch_size: int | None = None, *,
                      registry: Registry | None = None, env: dict | None = None) -> str:
    """Start ``calibrate`` in its own process; it records a 'calibrate' run in the registry when it
    starts and its result (or error) when it ends. Returns its job folder (log.txt and the runner's
    record, under the runs folder's ``calibrations/``), for :func:`calibration_running`."""
    from engine.lab.presets import get_preset

    from engine.lab.device import resolve_device

    require_write("calibration")
    get_preset(preset)  # a bad preset or a missing GPU is refused here, not in a process nobody watches
    resolve_device(device)
    reg = registry or Registry()
    args = ["--preset", preset, "--device", device, "--json", "--registry", str(reg.path)]
    if batch_size is not None:
        args += ["--batch-size", str(int(batch_size))]
    import uuid

    folder = runs_dir() / "calibrations" / (time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    _spawn(args, folder, env, command="calibrate", record=runner.RECORD)
    return str(folder)


def calibration_running(folder: str | None, *, registry: Registry | None = None) -> bool:
    """Whether a calibration started by :func:`start_calibration` still runs (its process lives, or a
    calibration run in the registry is still active: it registers itself once torch has loaded)."""
    from engine.store import ACTIVE

    if folder and runner.running(folder):
        return True
    runs = (registry or Registry()).list_runs(kind="calibrate")
    return bool(runs["status"].isin(ACTIVE).any())


def stop_run(name: str, *, grace_s: float = 30.0, registry: Registry | None = None, wait: bool = False) -> None:
    """Ask a run to stop gracefully (checkpoint, status 'stopped'). With ``wait``, block up to
    ``grace_s`` for it, then SIGTERM its process group (which the trainer also treats as Stop)."""
    require_write("stopping runs")
    reg = registry or Registry()
    run = reg.get_run(name)
    if run["status"] not in ("queued", "running", "stopping"):
        return
    reg.request_stop(name)
    if not wait:
        return
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if not is_alive(run["pid"], run["pid_started"]) or reg.get_run(name)["status"] not in ("running", "stopping"):
            return
        time.sleep(0.2)
    terminate(name, registry=reg)


def terminate(name: str, *, registry: Registry | None = None) -> bool:
    """SIGTERM the run's process (the trainer checkpoints and stops). Returns whether a signal was sent."""
    require_write("stopping runs")
    reg = registry or Registry()
    run = reg.get_run(name)
    return runner.send(run["pid"], run["pid_started"], group=False)


def resume_run(name: str, *, max_steps: int | None = None, registry: Registry | None = None,
               env: dict | None = None) -> str:
    """Continue a stopped, failed or finished run from its latest checkpoint in a new process."""
    from engine.lab import checkpoint as ck

    require_write("resuming runs")
    reg = registry or Registry()
    refresh(reg)
    run = reg.get_run(name)
    if run["shipped"]:
        raise ValidationError(f"run {name!r} is the demo model shipped with Preflight (no optimizer state to resume); "
                              f"fine-tune it with train --lora-from {name}, or train a new run")
    if run["status"] in ("queued", "running", "stopping") and is_alive(run["pid"], run["pid_started"]):
        raise ValidationError(f"run {name!r} is still {run['status']}")
    run_dir = Path(run["run_dir"])
    if ck.latest_path(run_dir) is None:
        raise ValidationError(f"run {name!r} has no checkpoint to resume from")
    args = ["--resume", str(run_dir), "--registry", str(reg.path), "--name", name]
    if max_steps is not None:
        args += ["--max-steps", str(int(max_steps))]
    reg.set_status(name, "queued")
    job = _spawn(args, run_dir, env)
    reg.set_pid(name, job.pid)
    return name


def delete_run(name: str, *, registry: Registry | None = None) -> None:
    """Forget a run and delete its folder (refused while it runs, or outside the runs folder)."""
    require_write("deleting runs")
    (registry or Registry()).delete_run(name)


def refresh(registry: Registry | None = None) -> list[str]:
    """Mark runs whose process died as failed; where the process left a last line in log.txt that
    explains why (a bad input before training started), that line becomes the error."""
    reg = registry or Registry()
    marked = reg.mark_dead()
    for name in marked:
        run = reg.get_run(name)
        tail = runner.last_line(Path(run["run_dir"]) / "log.txt")
        if tail and "error:" in tail:
            reg.set_status(name, "failed", error=f"{run['error']}: {tail.split('error:', 1)[1].strip()}")
    return marked


def generate(run: str, prompt: str = "", *, max_new_tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = 40, seed: int = 0, which: str = "latest") -> dict:
    """Text sampled from a run's latest (or best) checkpoint, loaded by the one loader (engine/lab/loader.py)."""
    import json

    import torch

    from engine.errors import require_number
    from engine.lab.loader import load_run

    max_new_tokens = int(require_number("max-new-tokens", max_new_tokens, low=1, high=100_000, integer=True))
    temperature = float(require_number("temperature", temperature, low=0, high=100))
    loaded = load_run(run, which)
    mcfg, tok, model = loaded.config, loaded.tokenizer, loaded.model
    if mcfg.n_classes:
        raise ValidationError("this run trained a classifier; generation needs a language model")
    if tok is None:
        raise ValidationError(f"run {loaded.source} has no tokenizer.json; it cannot take text")
    ids = tok.encode(prompt) if prompt else []
    ids = [tok.eos_id] + ids
    gen = torch.Generator().manual_seed(int(seed))
    out = model.generate(torch.tensor([ids]), max_new_tokens, temperature=temperature, top_k=top_k, generator=gen)
    new = [i for i in out[0, len(ids):].tolist() if i != tok.pad_id]
    text = tok.decode(new)
    return {"run_dir": loaded.source, "checkpoint": loaded.checkpoint, "step": loaded.step, "prompt": prompt,
            "text": prompt + text, "new_tokens": len(new), "config": json.loads(json.dumps(mcfg.to_dict()))}


def start_hf_training(cfg, name: str | None = None, *, registry=None) -> str:
    """Start a fine-tuning run of a model folder (an engine.lab.hf_train.HFTrainConfig) in its own process
    (:func:`start_training`); bad input, a bad folder or a model that will not fit is refused here, before any
    process starts."""
    from dataclasses import replace

    from engine.lab.hf_model import inspect_folder, predict_memory, require_fits
    from engine.lab.hf_train import train_args, validate
    from engine.store import Registry
    from engine.workspace import runs_dir, safe_name

    reg = registry or Registry()
    folder = inspect_folder(cfg.hf_model)
    base = safe_name(name or f"{folder.path.name}-{cfg.method}", "run name")
    out, n = runs_dir() / base, 1
    while out.exists() or reg.find_run_by_dir(out) is not None:
        n += 1
        out = runs_dir() / f"{base}-{n}"
    cfg = replace(cfg, out=str(out), registry=str(reg.path), resume=None)
    validate(cfg)
    from engine.lab.device import resolve_device

    device = resolve_device(cfg.device)
    require_fits(predict_memory(folder, cfg.method, dtype="bf16" if device == "cuda" and cfg.dtype == "auto" else
                                ("fp32" if cfg.dtype == "auto" else cfg.dtype), device=device, seq_len=cfg.context,
                                batch=cfg.batch_size // cfg.grad_accum, rank=cfg.rank, target=cfg.target))
    return start_training(train_args(cfg) + ["--out", str(out)], out.name, registry=reg)
