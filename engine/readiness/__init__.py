"""Readiness: the latest data check, training run and calibration in this workspace, side by side with
a budget, so one overview can say whether the data, the model and the money line up.

This package's ``__init__`` puts the artifacts side by side; the company side lives beside it: ``profile`` (the
founder's numbers and named scenarios), ``store`` (scenarios in the registry's SQLite file),
``finance`` (the month-by-month cash model), ``montecarlo`` (P10/P50/P90, tornado, cash fan),
``areas`` (verdicts), ``assess`` (all of it for one scenario), ``report`` (HTML, Markdown, JSON) and
``cli`` (``preflight readiness``).

Reads only what the other rooms wrote, through ``engine.artifacts`` (the latest data check, training
run, calibration and serving calibration); computes nothing new except the cost of training on the
checked tokens, which is the data-check report's own link to the estimator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from engine import workspace
from engine.artifacts import latest_calibration, latest_data_check, latest_training_run


@dataclass(frozen=True)
class Readiness:
    data: dict[str, Any] | None         # latest finished data check: score, file, rows, tokens, top findings
    training: dict[str, Any] | None     # latest training run: status, preset, steps, losses, tokens/s, MFU
    calibration: dict[str, Any] | None  # latest finished calibration: device, tokens/s, TFLOP/s, MFU
    home: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
