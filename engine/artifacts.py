"""The workspace's artifacts, read one way: the latest data check, training run, calibration and serving
calibration that the other rooms wrote under ``$PREFLIGHT_HOME`` (the data-check jobs' report.json files
and the run registry).

A low room (beside ``store``, which it reads): the estimator pages, fine-tuning's measured MFU, the sweeps'
throughput, the Overview and readiness all ask here, and none of them imports another room to find
them. Nothing here computes; every reader returns a plain dict (or None before the room has produced
anything).

``frame``: the registry's runs from one :func:`all_runs` read, shared by several readers (readiness reads
three kinds of run at once); without it each reader reads the registry itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine import workspace

CALIBRATE_KIND = "calibrate"  # engine/lab/calibrate.py: tokens/s, FLOP/s, MFU and memory of a preset
# engine/infer/serve_calibrate.py (``calibrate --serve``): measured prefill and decode rates on its device
# and the efficiencies they imply for the serving estimator.
SERVE_CALIBRATE_KIND = "serve-calibrate"
CALIBRATION_KEYS = (
    "preset", "device", "device_name", "dtype", "batch_size", "context", "tokens_per_s", "achieved_tflops",
    "mfu", "mfu_basis", "peak_memory_bytes", "predicted_memory_bytes", "measured_parts", "predicted_parts",
    "rss_rise_bytes", "process_peak_rss_bytes", "measured_basis", "memory_basis")
SERVING_CALIBRATION_KEYS = (
    "source", "backend", "device", "device_name", "prompt_tokens", "output_tokens", "peak_tflops",
    "bandwidth_gbs", "implied_prefill_efficiency", "implied_decode_efficiency",
    "calibrated_decode_ratio_max_error", "levels")


def latest_data_check() -> dict[str, Any] | None:
    """The newest finished data-check report in the workspace, summarised."""
    folder = workspace.home() / "checks"
    if not folder.is_dir():
        return None
    for job in sorted((p for p in folder.iterdir() if (p / "report.json").is_file()), reverse=True):
        try:
            report = json.loads((job / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        problems = [f for f in report.get("findings", []) if f.get("severity") != "info"]
        return {
            "job_id": job.name, "file": report.get("file"), "score": report.get("score"), "rows": report.get("rows"),
            "test_rows": report.get("test_rows"), "tokens": (report.get("tokens") or {}).get("total"),
            "problems": len(problems),
            "top_findings": [{"id": f["id"], "severity": f["severity"], "title": f["title"]} for f in problems[:3]],
            "estimate": report.get("estimate"),
        }
    return None


def all_runs(registry: str | os.PathLike | None = None):
    """Every run in the registry (one read, newest first). The workspace's own registry is created on first
    use, with the shipped demo run (engine/store.py), so a newcomer's Overview shows a model;
    ``registry``: another registry file than the workspace's (None before it exists)."""
    from engine.store import Registry

    if registry is None:
        return Registry().list_runs()
    if not Path(registry).exists():
        return None
    return Registry(Path(registry)).list_runs()


def _runs(kind: str, frame=None):
    """Runs of ``kind``, newest first: from ``frame`` or from the registry."""
    if frame is None:
        frame = all_runs()
    if frame is None:
        return None
    return frame[frame["kind"] == kind]


def latest_training_run(frame=None) -> dict[str, Any] | None:
    runs = _runs("train", frame)
    if runs is None or runs.empty:
        return None
    run = runs.iloc[0]
    summary, config = run["summary"] or {}, run["config"] or {}
    return {
        "name": run["name"], "status": run["status"], "preset": config.get("preset"),
        "params": summary.get("params"), "steps": summary.get("steps"),
        "max_steps": (config.get("resolved") or {}).get("max_steps"), "train_loss": summary.get("train_loss"),
        "val_loss": summary.get("val_loss"), "best_val_loss": summary.get("best_val_loss"),
        "val_accuracy": summary.get("val_accuracy"), "tokens_per_s": summary.get("tokens_per_s"),
        "mfu": summary.get("mfu"), "device_name": summary.get("device_name"), "error": run["error"],
        "evaluation": _evaluation(run["run_dir"]), "shipped": bool(run.get("shipped")),
    }


def _evaluation(run_dir: str) -> dict[str, Any] | None:
    """The headline of the run's evaluation report (``preflight evaluate --save`` or the lab page), if any."""
    try:
        report = json.loads((Path(run_dir) / "evaluation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    keys = ("task", "step", "source", "accuracy", "macro_f1", "weighted_f1", "ece", "val_loss", "perplexity",
            "bits_per_byte")
    out = {k: report.get(k) for k in keys if report.get(k) is not None}
    if report.get("cv"):
        out["cv"] = {k: report["cv"].get(k) for k in ("k", "mean", "std")}
    return out


def _latest_finished(kind: str, keys: tuple[str, ...], frame=None, **match: Any) -> dict[str, Any] | None:
    """The newest finished run of ``kind`` whose summary holds the ``match`` values (a None value matches
    any): its name and these keys of its summary, or None."""
    runs = _runs(kind, frame)
    if runs is None or runs.empty:
        return None
    for _, run in runs[runs["status"] == "finished"].iterrows():
        s = run["summary"] or {}
        if all(s.get(k) == v for k, v in match.items() if v is not None):
            return {"name": run["name"], **{k: s.get(k) for k in keys}}
    return None


def latest_calibration(frame=None, *, device: str | None = None,
                       registry: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The newest finished training calibration (tokens/s, FLOP/s, MFU, memory parts), or None; on
    ``device`` ("cpu", "cuda") when given, from ``registry`` when given."""
    if frame is None and registry is not None:
        frame = all_runs(registry)
    return _latest_finished(CALIBRATE_KIND, CALIBRATION_KEYS, frame, device=device)


def latest_serving_calibration(frame=None) -> dict[str, Any] | None:
    """The newest finished serving calibration (device, measured peak and bandwidth, implied prefill and
    decode efficiencies, the levels measured), or None: the Serving page's measured efficiencies."""
    return _latest_finished(SERVE_CALIBRATE_KIND, SERVING_CALIBRATION_KEYS, frame)


def first_val_loss(run_name: str) -> float | None:
    """The run's first logged validation loss (how far the model has come since), or None."""
    from engine.store import Registry

    if not workspace.registry_path().exists():
        return None
    try:
        frame = Registry().metrics(run_name)
    except Exception:  # noqa: BLE001 - a run deleted between reads
        return None
    values = frame["val_loss"].dropna()
    return float(values.iloc[0]) if len(values) else None
