"""Make the demo model Preflight ships (assets/demo_run/): a fresh workspace registers it as the run ``demo``
(engine/store.py), so generation, the Inference page and the Overview work before anything is trained.

It is trained by the lab itself (engine.lab.trainer.train: the ``tiny`` preset on the built-in ``stories``
corpus, byte tokenizer, seed 0) in a temporary workspace; the shipped folder keeps what a run needs to be
loaded (config.json, tokenizer.json, the best checkpoint's model.safetensors and state.json), not the
optimizer or RNG state, so it stays under 10 MB. The validation loss is measured again on the shipped
folder by ``engine.lab.evaluate`` and recorded with the config, seed, machine and load in demo.json.

    .venv/bin/python scripts/make_demo_model.py            # about 3-5 minutes on a 2-core CPU
    .venv/bin/python scripts/make_demo_model.py --steps 40 --out /tmp/demo   # a quick try
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_BYTES = 10 * 1024 * 1024


def _clean(value):
    """JSON-safe: NaN/inf (never logged) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scrub(doc: dict) -> dict:
    """The temporary workspace's paths (the run folder, the registry) left out of what is shipped."""
    for key in ("train", "train_config"):
        if isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], "out": None, "registry": None}
    return doc


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def make(steps: int, seed: int, out: Path) -> dict:
    from engine.lab import checkpoint as ck
    from engine.lab.trainer import TrainConfig, train
    from engine.store import DEMO_META, DEMO_RUN, Registry

    work = Path(tempfile.mkdtemp(prefix="preflight-demo-"))
    os.environ["PREFLIGHT_HOME"] = str(work / "home")
    os.environ["PREFLIGHT_DEMO_RUN"] = "0"  # the workspace that trains it must not seed a demo itself
    reg = Registry(work / "registry.sqlite")
    cfg = TrainConfig(preset="tiny", sample="stories", seed=seed, max_steps=steps, device="cpu", threads=1,
                      name=DEMO_RUN, out=str(work / DEMO_RUN), registry=str(reg.path))
    load_before = os.getloadavg()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = train(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    load_after = os.getloadavg()
    if result.status != "finished":
        raise SystemExit(f"the demo run ended {result.status}: {result.stopped_reason}")
    run_dir = Path(result.run_dir)
    best = ck.latest_path(run_dir, "best")

    if out.exists():
        shutil.rmtree(out)
    (out / ck.CKPT_DIR / best.name).mkdir(parents=True)
    shutil.copy2(run_dir / "tokenizer.json", out / "tokenizer.json")
    doc = _scrub(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    (out / "config.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    shutil.copy2(best / "model.safetensors", out / ck.CKPT_DIR / best.name / "model.safetensors")
    state = _scrub(json.loads((best / "state.json").read_text(encoding="utf-8")))
    state.update(optimizer=None, rng={})  # not shipped: the demo is for inference (and --lora-from), not resuming
    (out / ck.CKPT_DIR / best.name / "state.json").write_text(json.dumps(state), encoding="utf-8")
    for pointer in ("latest", "best"):
        (out / ck.CKPT_DIR / pointer).write_text(best.name + "\n", encoding="utf-8")

    from engine.lab.evaluate import EvaluateInput, evaluate

    measured = evaluate(EvaluateInput(run=str(out), which="best")).to_dict()
    row = reg.get_run(result.name)
    metrics = [{k: _clean(v) for k, v in r.items() if _clean(v) is not None}
               for r in reg.metrics(result.name).to_dict(orient="records")]
    samples = [{"step": s["step"], "prompt": s["prompt"], "text": s["text"]} for s in reg.samples(result.name, 5)]
    summary = {k: v for k, v in row["summary"].items() if k not in ("run_dir", "checkpoint", "best_checkpoint")}
    meta = {
        "name": DEMO_RUN, "made_by": "scripts/make_demo_model.py", "made": datetime.now(timezone.utc).isoformat(),
        "commit": _commit(), "seed": seed, "train_config": cfg.to_dict() | {"out": None, "registry": None},
        "checkpoint": best.name, "steps": result.steps, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in load_after]},
        "best_val_loss": result.best_val_loss,
        "measured": {k: measured.get(k) for k in ("val_loss", "perplexity", "bits_per_byte", "tokens_scored",
                                                    "source", "basis", "step")},
        "sample": (measured.get("samples") or [{}])[0].get("text"),
        "registry": {"config": _scrub(dict(row["config"])), "summary": summary}, "metrics": metrics, "samples": samples,
    }
    import torch

    meta["torch"] = torch.__version__
    (out / DEMO_META).write_text(json.dumps(meta, indent=1, default=str), encoding="utf-8")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if size > MAX_BYTES:
        raise SystemExit(f"{out} is {size / 1e6:.1f} MB, over the 10 MB the repository allows")
    shutil.rmtree(work, ignore_errors=True)
    return {"out": str(out), "bytes": size, "steps": result.steps, "wall_s": meta["wall_s"], "cpu_s": meta["cpu_s"],
            "best_val_loss": result.best_val_loss, "measured_val_loss": meta["measured"]["val_loss"],
            "bits_per_byte": meta["measured"]["bits_per_byte"], "load": [load_before[0], load_after[0]],
            "sample": meta["sample"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="training steps (default 300: the tiny preset's own recipe)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "assets" / "demo_run")
    args = ap.parse_args()
    print(json.dumps(make(args.steps, args.seed, args.out.resolve()), indent=1))


if __name__ == "__main__":
    main()
