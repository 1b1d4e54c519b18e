"""Wall time of a lab preset's default run on this CPU: the figure its label quotes.

Runs ``python -m engine train --sample arithmetic --preset NAME --device cpu --out TMP --json`` in its own
process, the way the lab page starts a run (engine.lab.jobs), with the preset's own recipe (its
max_steps, batch, evaluation every eval_every steps, checkpoints), and times it from process start to
exit: importing torch, preparing the corpus, building the model, training, evaluating and writing
checkpoints all count, as they do for someone waiting on the page. The 1-minute load average before and
after is printed with the figure (this machine is shared; the figure is only as good as the load beside it).

``--check`` compares the measured time with the one recorded in engine/catalog/lab_presets.toml
(``cpu_run_s``) and exits 1 when it is more than ``--tolerance`` (default 25 %) slower, so the label's
promise is re-checked, not assumed. Without ``--check`` it prints the TOML lines to record.

    .venv/bin/python bench/lab_preset_time.py                 # tiny, prints the lines to record
    .venv/bin/python bench/lab_preset_time.py --check         # fails when the recorded figure no longer holds
    .venv/bin/python bench/lab_preset_time.py --preset small --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--sample", default="arithmetic", help="built-in corpus (the page's default)")
    ap.add_argument("--threads", type=int, help="CPU threads (default: the trainer's, one per core)")
    ap.add_argument("--check", action="store_true", help="exit 1 if slower than the recorded cpu_run_s by --tolerance")
    ap.add_argument("--tolerance", type=float, default=0.25)
    args = ap.parse_args()

    from engine.lab.presets import get_preset

    preset = get_preset(args.preset)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "engine", "train", "--sample", args.sample, "--preset", preset.id,
               "--device", "cpu", "--out", str(Path(tmp) / "run"), "--registry", str(Path(tmp) / "reg.sqlite"),
               "--json"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PREFLIGHT_HOME": tmp}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
        wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        return 2
    result = json.loads(done.stdout)
    row = {"preset": preset.id, "steps": result["steps"], "batch_size": preset.batch_size, "context": preset.context,
           "wall_s": round(wall, 1), "train_time_s": round(result.get("train_time_s") or 0, 1),
           "tokens_per_s": round(result.get("tokens_per_s") or 0), "val_loss": result.get("val_loss"),
           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "load_1min_before": round(load_before, 2), "load_1min_after": round(load_after, 2),
           "recorded_cpu_run_s": preset.cpu_run_s}
    print(json.dumps(row, indent=1))
    if args.check:
        if preset.cpu_run_s is None:
            print(f"{preset.id} records no cpu_run_s to check", file=sys.stderr)
            return 1
        limit = preset.cpu_run_s * (1 + args.tolerance)
        verdict = "holds" if wall <= limit else "does NOT hold"
        print(f"recorded {preset.cpu_run_s:.0f} s (+{args.tolerance:.0%} = {limit:.0f} s); measured {wall:.0f} s: "
              f"the label {verdict} at load {load_before:.1f} → {load_after:.1f}", file=sys.stderr)
        return 0 if wall <= limit else 1
    today = dt.date.today().isoformat()
    print(f"\n# engine/catalog/lab_presets.toml, [[preset]] id = \"{preset.id}\":\n"
          f"cpu_run_s = {wall:.0f}\n"
          f"cpu_run_measured = \"{today}, bench/lab_preset_time.py, {os.cpu_count()}-core CPU shared with other "
          f"work, load {load_before:.1f} → {load_after:.1f}\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
