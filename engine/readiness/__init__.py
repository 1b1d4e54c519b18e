"""Readiness: the latest data check, training run and calibration in this workspace, side by side with
a budget, so one overview can say whether the data, the model and the money line up.

This package's ``__init__`` reads the artifacts; the company side lives beside it: ``profile`` (the
founder's numbers and named scenarios), ``store`` (scenarios in the registry's SQLite file),
``finance`` (the month-by-month cash model), ``montecarlo`` (P10/P50/P90, tornado, cash fan),
``areas`` (verdicts), ``assess`` (all of it for one scenario), ``report`` (HTML, Markdown, JSON) and
``cli`` (``preflight readiness``).

Reads only what the other rooms wrote ($PREFLIGHT_HOME: the data-check jobs' report.json files and
the run registry); computes nothing new except the cost of training on the checked tokens, which is
the data-check report's own link to the estimator.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import workspace


@dataclass(frozen=True)
class Readiness:
    data: dict[str, Any] | None         # latest finished data check: score, file, rows, tokens, top findings
    training: dict[str, Any] | None     # latest training run: status, preset, steps, losses, tokens/s, MFU
    calibration: dict[str, Any] | None  # latest finished calibration: device, tokens/s, TFLOP/s, MFU
    home: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def all_runs():
    """Every run in the registry (one read). Opening it creates it on first use, with the shipped demo run
    (engine/store.py), so a newcomer's Overview shows a model."""
    from engine.store import Registry

    return Registry().list_runs()


def _runs(kind: str, frame=None):
    """Runs of ``kind``, newest first: from ``frame`` (an :func:`all_runs` read shared by several
    callers) or from the registry."""
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


def _latest_finished(kind: str, keys: tuple[str, ...], frame=None) -> dict[str, Any] | None:
    """The newest finished run of ``kind``: its name and these keys of its summary, or None."""
    runs = _runs(kind, frame)
    if runs is None or runs.empty:
        return None
    done = runs[runs["status"] == "finished"]
    if done.empty:
        return None
    s = done.iloc[0]["summary"] or {}
    return {"name": done.iloc[0]["name"], **{k: s.get(k) for k in keys}}


def latest_calibration(frame=None) -> dict[str, Any] | None:
    """The newest finished training calibration (tokens/s, FLOP/s, MFU, memory parts), or None."""
    return _latest_finished("calibrate", (
        "preset", "device", "device_name", "dtype", "batch_size", "context", "tokens_per_s", "achieved_tflops",
        "mfu", "mfu_basis", "peak_memory_bytes", "predicted_memory_bytes", "measured_parts", "predicted_parts",
        "rss_rise_bytes", "process_peak_rss_bytes", "measured_basis", "memory_basis"), frame)


# The inference room records serving measurements as runs of these kinds; a finished one's summary
# carries ``model``, ``gpu``, ``gpus`` (per replica), ``requests_per_s_per_replica`` and
# ``p95_latency_s``. Until it lands none exist, and the serving and latency areas say so.
SERVING_KINDS = ("serve", "infer")
# The inference room's ``calibrate --serve`` (engine/infer/serve_calibrate.py) records runs of this kind:
# measured prefill and decode rates on its device and the efficiencies they imply for the estimator.
SERVE_CALIBRATE_KIND = "serve-calibrate"


def latest_serving_calibration(frame=None) -> dict[str, Any] | None:
    """The newest finished serving calibration (device, measured peak and bandwidth, implied prefill and
    decode efficiencies, the levels measured), or None: the Serving page's measured efficiencies."""
    return _latest_finished(SERVE_CALIBRATE_KIND, (
        "source", "backend", "device", "device_name", "prompt_tokens", "output_tokens", "peak_tflops",
        "bandwidth_gbs", "implied_prefill_efficiency", "implied_decode_efficiency",
        "calibrated_decode_ratio_max_error", "levels"), frame)


def latest_serving_measurement(model: str | None = None, gpu: str | None = None, frame=None) -> dict[str, Any] | None:
    """The newest finished serving measurement (of ``model`` on ``gpu`` when given), or None."""
    if frame is None:
        frame = all_runs()
    for kind in SERVING_KINDS:
        runs = _runs(kind, frame)
        if runs is None or runs.empty:
            continue
        for _, run in runs[runs["status"] == "finished"].iterrows():
            s = {**(run["config"] or {}), **(run["summary"] or {})}
            if model and str(s.get("model", "")).lower() != model.lower():
                continue
            if gpu and str(s.get("gpu", "")).lower() != gpu.lower():
                continue
            keys = ("model", "gpu", "gpus", "requests_per_s_per_replica", "p95_latency_s", "tokens_per_s", "device_name")
            return {"name": run["name"], "kind": kind, **{k: s.get(k) for k in keys}}
    return None


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


def readiness() -> Readiness:
    """What this workspace knows now (each part None until its room has produced something)."""
    return Readiness(data=latest_data_check(), training=latest_training_run(), calibration=latest_calibration(),
                     home=str(workspace.home()))


def human(result: dict[str, Any]) -> str:
    """Readiness as a few lines for the terminal."""
    lines = [f"workspace    {result['home']}"]
    data = result.get("data")
    lines.append(f"data         {data['file']}: score {data['score']}/100, {data['rows']:,} rows, "
                 f"{data['problems']} problem(s)" + (f", {data['tokens']:,} tokens" if data.get("tokens") else "")
                 if data else "data         no data check yet (preflight check PATH)")
    run = result.get("training")
    if run:
        loss = run.get("best_val_loss") or run.get("val_loss")
        lines.append(f"training     {run['name']} ({run['preset']}): {run['status']}, step {run.get('steps') or 0}"
                     + (f", val loss {loss:.3f}" if loss is not None else "")
                     + (f", {run['tokens_per_s']:,.0f} tokens/s" if run.get("tokens_per_s") else ""))
    else:
        lines.append("training     no training run yet (preflight train --sample stories --out DIR)")
    cal = result.get("calibration")
    lines.append(f"calibration  {cal['preset']} on {cal['device_name']}: {cal['tokens_per_s']:,.0f} tokens/s, "
                 f"{cal['achieved_tflops']:.3g} TFLOP/s" + (f", MFU {cal['mfu']:.1%}" if cal.get("mfu") else "")
                 if cal else "calibration  none yet (preflight calibrate --preset tiny)")
    return "\n".join(lines)
