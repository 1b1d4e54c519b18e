"""How many full estimates per second the engine computes on one core.

One "full estimate" = estimate_training + estimate_memory (mode="train") + estimate_serving for a
random model preset, GPU and inputs. The inputs are drawn up front (fixed seed) so the timed loops
measure the engine only; each function and the full estimate are timed in the same run, side by side,
with time.perf_counter over a few seconds each. Target: >= 10,000 full estimates/s on one core.

    .venv/bin/python bench/estimate_sweep.py [--seconds 3] [--profile]

--profile also runs the full estimate under cProfile and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import random
import sys
import time

from engine import catalog
from engine.estimate import models as model_specs
from engine.estimate.memory import MemoryInput, estimate_memory
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training

TARGET_FULL_PER_S = 10_000
POOL = 2_000  # distinct random input sets, cycled through


def make_inputs(rng: random.Random, n: int) -> list[tuple[TrainingInput, MemoryInput, ServeInput]]:
    """n random (training, memory, serving) inputs over every preset and GPU, all valid."""
    models = sorted(model_specs.models())
    gpus = sorted(catalog.gpus())
    out = []
    for _ in range(n):
        model, gpu = rng.choice(models), rng.choice(gpus)
        spec = model_specs.models()[model]
        seq = rng.choice([None, 512, 1024, 2048, 4096])
        seq = None if seq is not None and seq > spec.context else seq
        train = TrainingInput(
            model=model, tokens=rng.choice([1e9, 3e11, 2e12, 1.5e13]), gpu=gpu,
            gpus=rng.choice([1, 8, 64, 512, 2048]), seq_len=seq,
            mfu=rng.choice([None, 0.3, 0.45]), precision=rng.choice(["bf16", "fp8"]),
            recompute=rng.choice(["none", "selective", "full"]),
        )
        divisors = [t for t in (1, 2, 4, 8) if spec.n_heads % t == 0]  # tensor parallelism splits heads
        tp = rng.choice(divisors)
        pp = rng.choice([p for p in (1, 2, 4) if p <= spec.n_layers])
        memory = MemoryInput(
            model=model, mode="train", batch=rng.choice([1, 2, 4, 8]), seq_len=seq,
            dtype=rng.choice(["bf16", "fp32"]), dp=rng.choice([1, 8, 64]), zero=rng.choice([0, 1, 2, 3]),
            tp=tp, pp=pp, recompute=rng.choice(["none", "selective", "full"]), gpu=gpu,
        )
        serve = ServeInput(
            model=model, gpu=gpu, gpus=rng.choice(divisors), dtype=rng.choice(["bf16", "fp8", "int4"]),
            prompt_tokens=rng.choice([128, 512, 2048, 8000]), output_tokens=rng.choice([64, 256, 1024]),
            requests_per_s=rng.choice([0.5, 1.0, 10.0]),
        )
        out.append((train, memory, serve))
    return out


def rate(fn, items, seconds: float) -> float:
    """Calls per second of fn over items (cycled), timed for about `seconds`."""
    for item in items[:50]:  # warm caches (catalog loading, cached properties)
        fn(item)
    calls, n_items = 0, len(items)
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        calls += n_items
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def full(inputs: tuple[TrainingInput, MemoryInput, ServeInput]) -> None:
    train, memory, serve = inputs
    estimate_training(train)
    estimate_memory(memory)
    estimate_serving(serve)


def cpu_model() -> str:
    """The CPU model name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pin_one_core() -> str:
    """Pin this process to one CPU where the OS allows it (Linux); say which."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity); single-threaded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile the full estimate and print hot spots")
    args = parser.parse_args(argv)

    pinned = pin_one_core()
    inputs = make_inputs(random.Random(args.seed), POOL)
    for triple in inputs:  # every input must be valid: a ValidationError here is a bench bug
        full(triple)

    print(f"python   {platform.python_implementation()} {platform.python_version()}")
    print(f"machine  {platform.machine()} {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs ({cpu_model()}); {pinned}")
    print(f"engine   {os.path.dirname(catalog.__file__.rsplit(os.sep, 1)[0])}")
    print(f"inputs   {POOL} random (preset, GPU, inputs) triples, seed {args.seed}; {args.seconds:g} s per line")
    rows = [
        ("estimate_training", rate(estimate_training, [t for t, _, _ in inputs], args.seconds)),
        ("estimate_memory (train)", rate(estimate_memory, [m for _, m, _ in inputs], args.seconds)),
        ("estimate_serving", rate(estimate_serving, [s for _, _, s in inputs], args.seconds)),
        ("full estimate (all three)", rate(full, inputs, args.seconds)),
    ]
    print(f"\n{'function':<27} {'calls/s':>10} {'us/call':>9}")
    for name, r in rows:
        print(f"{name:<27} {r:>10,.0f} {1e6 / r:>9.1f}")
    full_rate = rows[-1][1]
    verdict = "meets" if full_rate >= TARGET_FULL_PER_S else "BELOW"
    print(f"\nfull estimates/s: {full_rate:,.0f} ({verdict} the {TARGET_FULL_PER_S:,}/s target, "
          f"{full_rate / TARGET_FULL_PER_S:.2f}x)")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            for triple in inputs:
                full(triple)
        prof.disable()
        print("\ncProfile, full estimate x", 5 * POOL, "- top 20 by own time:")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
