"""Importing and estimating 100 Hugging Face config.json files: under a second on one core.

One item = read a config.json from disk (engine.estimate.hf_config.load_hf_config: file read, JSON
parse, checks, exact counts), then estimate_memory (inference, 4 × 4096 tokens) and estimate_serving
(1000-token prompts, 250 out) for it on an H100. The 100 files are the 40 catalog configs
(engine/catalog/hf_configs.json) and 60 small random ones of every supported type
(tests/estimate/hf_parity.py), written to a temporary folder before the clock starts. Best of
--repeats runs (the machine is shared).

    .venv/bin/python bench/hf_import.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.catalog import hf_config_rows
from engine.estimate.hf_config import SUPPORTED_MODEL_TYPES, load_hf_config
from engine.estimate.memory import MemoryInput, estimate_memory
from engine.estimate.serving import ServeInput, estimate_serving
from tests.estimate.hf_parity import random_config

TARGET_S = 1.0
N = 100


def write_configs(folder: Path) -> list[Path]:
    rng = random.Random(16)
    configs = [row["config"] for row in hf_config_rows()]
    while len(configs) < N:
        configs.append(random_config(SUPPORTED_MODEL_TYPES[len(configs) % len(SUPPORTED_MODEL_TYPES)], rng))
    paths = []
    for i, cfg in enumerate(configs[:N]):
        (folder / f"m{i:03d}").mkdir()
        path = folder / f"m{i:03d}" / "config.json"
        path.write_text(json.dumps(cfg, indent=2))
        paths.append(path)
    return paths


def import_and_estimate(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        spec = load_hf_config(path)
        estimate_memory(MemoryInput(model=spec, mode="infer", batch=4, seq_len=min(4096, spec.context), gpu="h100-sxm"))
        estimate_serving(ServeInput(model=spec, gpu="h100-sxm", gpus=1, prompt_tokens=min(1000, spec.context - 250),
                                    output_tokens=250))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_configs(Path(tmp))
        import_and_estimate(paths[:5])  # warm imports and caches
        times = [import_and_estimate(paths) for _ in range(args.repeats)]
    out = {"configs": len(paths), "best_s": min(times), "median_s": sorted(times)[len(times) // 2],
           "target_s": TARGET_S, "meets_target": min(times) < TARGET_S, "python": platform.python_version(),
           "cpus": os.cpu_count(), "load": os.getloadavg()}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['configs']} configs imported and estimated (memory + serving): best {out['best_s']:.3f} s, "
              f"median {out['median_s']:.3f} s of {args.repeats} (target < {TARGET_S} s: "
              f"{'met' if out['meets_target'] else 'NOT met'}); load {out['load'][0]:.1f}")


if __name__ == "__main__":
    main()
