"""The fine-tuning comparison: every catalog GPU type × full, LoRA and QLoRA at its smallest fitting
count, its time, and the fine-tuning page's rerun time.

    .venv/bin/python bench/finetune_by_gpu.py [--repeats 7] [--no-page]

Prints the table for the founder's question (Llama-3-8B on 40M tokens, 1 epoch, rank 16 on all linear
layers, 2,048-token sequences, batch 1, gradient checkpointing, each GPU at its typical MFU and list
price) as Markdown, the median time of ``finetune_by_gpu`` for three model sizes, and the median time of
a page rerun in AppTest (a method switch: the estimate, the 33-row sweep, two charts, the table).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from engine.catalog import gpus
from engine.estimate.finetune import METHODS, FinetuneInput
from engine.estimate.sensitivity import cheapest_fits, finetune_by_gpu


def _median(fn, repeats: int) -> float:
    fn()  # warm: imports, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-page", action="store_true")
    args = ap.parse_args()
    print(f"Python {platform.python_version()}, {platform.machine()}, nproc {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    inp = FinetuneInput(model="llama-3-8b", tokens=40e6, gpu="rtx-4090", method="qlora", rank=16,
                        target="all-linear", seq_len=2048, batch=1, gradient_checkpointing=True)
    table = finetune_by_gpu(inp)
    print(f"\n{len(gpus())} GPU types × {len(METHODS)} methods = {len(table)} rows\n")
    print("| GPU | " + " | ".join(f"{m}: GPUs, GiB/GPU, hours, USD" for m in METHODS) + " |")
    print("|---|" + "---:|" * len(METHODS))
    for gpu_id in gpus():
        cells = []
        for m in METHODS:
            r = table[(table["method"] == m) & (table["gpu"] == gpu_id)].iloc[0]
            cells.append("no fit" if not r["fits"] else
                         f"{int(r['gpus'])}, {r['total'] / 2**30:.1f}, {r['wall_clock_hours']:.2f}, {r['cost_usd']:.2f}")
        print(f"| {gpu_id} | " + " | ".join(cells) + " |")
    best = cheapest_fits(table)
    print("\ncheapest: " + "; ".join(f"{r.method} {int(r.gpus)} × {r.gpu} ${r.cost_usd:.2f} ({r.wall_clock_hours:.2f} h)"
                                     for r in best.itertuples()))
    print()
    for model in ("llama-3-8b", "llama-2-70b", "llama-3.1-405b"):
        one = FinetuneInput(model=model, tokens=40e6, gpu="rtx-4090", method="qlora", gradient_checkpointing=True)
        t = _median(lambda: finetune_by_gpu(one), args.repeats)
        print(f"finetune_by_gpu {model}: median {t * 1e3:.1f} ms ({len(gpus()) * len(METHODS)} rows)")
    if not args.no_page:
        from streamlit.testing.v1 import AppTest

        page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "views", "finetune.py")
        at = AppTest.from_file(os.path.normpath(page), default_timeout=60)
        at.run()
        cycle = iter(["full", "lora", "qlora"] * 100)
        t = _median(lambda: at.radio(key="ft-method").set_value(next(cycle)).run(), args.repeats)
        print(f"page rerun (AppTest, method switch): median {t:.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
