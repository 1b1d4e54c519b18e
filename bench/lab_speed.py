"""Speed benchmark: Preflight's trainer against a plain PyTorch loop, same model, same shapes, one run.

Variant A is the real trainer, ``engine.lab.trainer.train(TrainConfig(...))``: its AdamW groups, lr
schedule, batch feeder (``Dataset.get_batch``), loss reading, divergence check, registry logging,
throughput windows. Variant B is the loop a PyTorch user would write (nanoGPT's shape of it): the same
``engine.lab.model.Transformer`` built from the same preset, ``torch.optim.AdamW`` over all parameters
(fused on CUDA, as nanoGPT), random windows gathered with ``torch.randint``, cross-entropy, backward,
gradient clipping at 1.0 (nanoGPT clips too), step. Nothing else: no logging, no evaluation.

Both see random tokens of the preset's vocabulary (the data does not change the cost of a step):
the trainer through a synthetic ``Dataset`` patched in for ``engine.lab.data.load_dataset`` (so the
trainer builds no tokenizer and reads no file), the plain loop from the same token array. The
variants alternate (A B A B ...) so drifts in a shared machine's load hit both; each repetition is a
fresh model, the first ``--warmup`` steps (allocator warmup, ``torch.compile``) are excluded, and the
rate is tokens over the next ``--steps`` steps divided by their wall time (the trainer's from the
``elapsed_s`` it logs per step to its registry, read after ``torch.cuda.synchronize`` on CUDA).

MFU follows PaLM (Chowdhery et al. 2022, App. B): ``ModelConfig.model_spec().training_flops_per_token``
× tokens/s ÷ peak. The peak on CUDA is the GPU's datasheet bf16 figure (``gpu_peak_flops``, from
engine/catalog/gpus.toml); on a CPU, which has no datasheet peak, it is the measured fp32 FLOP/s of a
1024×1024 ``torch.mm`` (``cpu_matmul_peak``). The output says which.

Defaults: CPU: presets tiny and small, fp32, batch ≈ 2,048 tokens per step (the calibrator's CPU
rule), 3 repetitions of 1 + 5 steps, PyTorch's thread count (one per core) unless the load average is
already at or above the core count, then one thread (said in the header). CUDA: presets
shakespeare-char (batch 64 × 256, vocab 65) and gpt2-small (batch 16 × 1024, vocab 50304): nanoGPT's shapes, bf16 autocast, TF32, fused AdamW; add
``--compile`` for the compiled figures. References (nanoGPT on one H100, PyTorch 2.11): GPT-2 small
457k tokens/s compiled (39.5 % MFU), 349k eager; the Shakespeare model 2.05M tokens/s compiled.

    .venv/bin/python bench/lab_speed.py                                   # CPU, tiny + small
    .venv/bin/python bench/lab_speed.py --threads 1
    .venv/bin/python bench/lab_speed.py --device cuda                     # eager
    .venv/bin/python bench/lab_speed.py --device cuda --compile
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# vocabulary per preset: byte tokenizer (258), nanoGPT's Shakespeare characters (65), GPT-2 padded (50304)
VOCAB = {"tiny": 258, "small": 258, "shakespeare-char": 65, "gpt2-small": 50304}
CPU_TOKENS_PER_STEP = 2048
NANOGPT_H100 = {  # tokens/s measured on one H100 (issue text, 2026-11-23): (eager, compiled)
    "gpt2-small": (349_000, 457_000),
    "shakespeare-char": (None, 2_050_000),
}


def _synthetic_dataset(vocab: int, n_tokens: int, seed: int = 0):
    """A token stream of uniform random ids as an ``engine.lab.data.Dataset`` (90 % train, 10 % val)."""
    import numpy as np

    from engine.lab.data import Dataset, DataInput
    from engine.lab.tokenizer import Tokenizer

    class SyntheticTokenizer(Tokenizer):
        kind = "synthetic"

        def __init__(self, size: int) -> None:
            self.vocab_size, self.eos_id, self.pad_id = size, size - 1, size - 1

        def decode(self, ids) -> str:  # never called: the bench asks for no samples
            return " ".join(str(int(i)) for i in ids)

    ids = np.random.default_rng(seed).integers(0, vocab, size=n_tokens, dtype=np.int64).astype(
        np.uint16 if vocab < 2**16 else np.int64)
    cut = int(n_tokens * 0.9)
    tok = SyntheticTokenizer(vocab)

    def build(inp: DataInput, context: int, tokenizer=None):  # load_dataset's signature
        return Dataset(task="lm", tokenizer=tok, context=context, data_input=inp,
                       source={"synthetic": f"{n_tokens} uniform random ids < {vocab}"},
                       train_ids=ids[:cut], val_ids=ids[cut:])

    return ids[:cut], build


def _rate(steps_elapsed: list[tuple[int, float]], warmup: int, tokens_per_step: int) -> float:
    """Tokens/s between the first logged step ≥ warmup and the last logged step."""
    rows = sorted(steps_elapsed)
    start = next((r for r in rows if r[0] >= warmup), None)
    end = rows[-1]
    if start is None or end[0] <= start[0] or end[1] <= start[1]:
        raise RuntimeError(f"too few timed steps (logged: {[r[0] for r in rows]})")
    return (end[0] - start[0]) * tokens_per_step / (end[1] - start[1])


def run_trainer(preset: str, builder, *, device: str, batch: int, context: int, steps: int, warmup: int,
                compile_: bool, threads: int | None, workdir: Path, rep: int) -> dict:
    import engine.lab.data as data_mod
    from engine.lab.trainer import TrainConfig, train
    from engine.store import Registry

    total = warmup + steps
    out = workdir / f"{preset}-trainer-{rep}"
    cfg = TrainConfig(sample="stories", preset=preset, device=device, compile=compile_, threads=threads,
                      batch_size=batch, context=context, max_steps=total, warmup_steps=min(10, total // 2),
                      eval_every=total, eval_batches=1, checkpoint_every=total, sample_tokens=0,
                      out=str(out), name=out.name, keep_checkpoints=1)
    original = data_mod.load_dataset
    data_mod.load_dataset = builder
    try:
        reg = Registry()
        res = train(cfg, registry=reg)
    finally:
        data_mod.load_dataset = original
    frame = reg.metrics(res.name)
    rows = [(int(s), float(e)) for s, e in zip(frame["step"], frame["elapsed_s"]) if e == e]
    rate = _rate(rows, warmup, batch * context)
    shutil.rmtree(out, ignore_errors=True)
    return {"tokens_per_s": rate, "trainer_reported_tokens_per_s": res.tokens_per_s, "params": res.params}


def run_plain(preset: str, train_ids, *, device: str, batch: int, context: int, steps: int, warmup: int,
              compile_: bool, threads: int | None, seed: int) -> dict:
    import torch
    import torch.nn.functional as F

    from engine.lab.model import Transformer
    from engine.lab.presets import get_preset

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        p = get_preset(preset)
        cfg = p.config(VOCAB[preset], context=context)
        torch.manual_seed(seed)
        cuda = device == "cuda"
        model = Transformer(cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.95), weight_decay=0.1,
                                fused=True if cuda else None)
        run_model = torch.compile(model) if compile_ else model
        autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if cuda else None
        data = torch.from_numpy(train_ids.astype("int64"))
        offsets = torch.arange(context + 1)
        model.train()

        def step() -> None:
            ix = torch.randint(len(data) - context - 1, (batch,))
            window = data[ix[:, None] + offsets]
            x, y = window[:, :-1], window[:, 1:]
            if cuda:
                x = x.pin_memory().to(device, non_blocking=True)
                y = y.pin_memory().to(device, non_blocking=True)
            with autocast if autocast is not None else contextlib.nullcontext():
                logits = run_model(x)
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        def now() -> float:
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter()

        for _ in range(warmup):
            step()
        t0 = now()
        for _ in range(steps):
            step()
        elapsed = now() - t0
        return {"tokens_per_s": steps * batch * context / elapsed}
    finally:
        torch.set_num_threads(old_threads)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--presets", help="comma-separated (default: tiny,small on CPU; shakespeare-char,gpt2-small on CUDA)")
    ap.add_argument("--batch-size", type=int, help="sequences per step (default: preset's on CUDA; ~2,048 tokens on CPU)")
    ap.add_argument("--context", type=int, help="sequence length (default: the preset's)")
    ap.add_argument("--steps", type=int, help="timed steps per repetition (default 5 on CPU, 30 on CUDA)")
    ap.add_argument("--warmup", type=int, help="untimed steps per repetition (default 1 on CPU, 10 on CUDA)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each variant, alternating")
    ap.add_argument("--compile", action="store_true", help="torch.compile both variants")
    ap.add_argument("--threads", type=int, help="CPU threads for both variants (default: PyTorch's, one per core; "
                    "1 when the load average is already at or above the core count)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("PREFLIGHT_HOME", tempfile.mkdtemp(prefix="preflight-bench-"))

    import torch

    from engine.lab.presets import get_preset
    from engine.lab.device import cpu_matmul_peak, device_name, gpu_peak_flops

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if args.compile:
            import torch._dynamo

            torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    presets = [p.strip() for p in (args.presets or ("shakespeare-char,gpt2-small" if cuda else "tiny,small")).split(",")]
    steps = args.steps or (30 if cuda else 5)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    if cuda and warmup % 10:
        warmup += 10 - warmup % 10  # the trainer logs every 10th step on CUDA
    if cuda and steps % 10:
        steps += 10 - steps % 10

    auto_note = ""
    if not cuda and args.threads is None and os.getloadavg()[0] >= (os.cpu_count() or 1) > 1:
        # two OpenMP threads on cores other processes already fill wait on each other at every op: on the
        # 2-core VM at load 5 they ran tiny 7× slower than one thread (docs/BENCHMARKS.md, "Model lab")
        args.threads = 1
        auto_note = f" (auto: load average {os.getloadavg()[0]:.1f} ≥ {os.cpu_count()} cores; pass --threads to override)"
    old = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        dname = device_name("cuda")
        peak, gid = gpu_peak_flops(dname, "bf16")
        basis = f"datasheet bf16 dense peak of {gid} ({peak / 1e12:.0f} TFLOP/s)" if peak else f"no catalog peak for {dname}"
    else:
        dname = device_name("cpu")
        peak = cpu_matmul_peak()
        basis = f"measured fp32 matmul peak of this CPU ({peak / 1e9:.1f} GFLOP/s, 1024×1024 torch.mm), not a datasheet figure"
    torch.set_num_threads(old)
    threads = args.threads or torch.get_num_threads()
    load0 = os.getloadavg()
    print(f"lab speed: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {dname} ({platform.machine()}, "
          f"{os.cpu_count()} CPUs), Python {platform.python_version()}, torch {torch.__version__}, device {args.device}"
          f"{', bf16 autocast' if cuda else ', fp32'}, compile {args.compile}, threads {threads}{auto_note}, load average {load0}")
    print(f"MFU peak: {basis}")
    if not cuda and load0[0] >= (os.cpu_count() or 1) and threads > 1:
        print(f"note: the load average ({load0[0]:.1f}) is at or above the {os.cpu_count()} cores; multi-threaded CPU "
              f"figures swing by several × between repetitions on a shared machine")
    print(f"{args.reps} repetitions × (trainer, plain) alternating; {warmup} untimed + {steps} timed steps each\n")

    workdir = Path(tempfile.mkdtemp(prefix="lab-speed-"))
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "device": dname, "machine": platform.machine(),
              "python": platform.python_version(), "torch": torch.__version__, "compile": args.compile,
              "threads": threads, "peak_flops": peak, "peak_basis": basis, "load_before": load0, "presets": {}}
    rows = []
    for preset in presets:
        p = get_preset(preset)
        context = args.context or p.context
        batch = args.batch_size or (p.batch_size if cuda else max(1, min(p.batch_size, CPU_TOKENS_PER_STEP // context)))
        vocab = VOCAB.get(preset, 258)
        n_tokens = max(1_000_000, 20 * batch * (context + 1))
        train_ids, builder = _synthetic_dataset(vocab, n_tokens)
        cfg = p.config(vocab, context=context)
        fpt = cfg.model_spec().training_flops_per_token(context)
        rates = {"trainer": [], "plain": []}
        reported = []
        for rep in range(args.reps):
            a = run_trainer(preset, builder, device=args.device, batch=batch, context=context, steps=steps,
                            warmup=warmup, compile_=args.compile, threads=args.threads, workdir=workdir, rep=rep)
            rates["trainer"].append(a["tokens_per_s"])
            reported.append(a["trainer_reported_tokens_per_s"])
            b = run_plain(preset, train_ids, device=args.device, batch=batch, context=context, steps=steps,
                          warmup=warmup, compile_=args.compile, threads=args.threads, seed=rep)
            rates["plain"].append(b["tokens_per_s"])
            print(f"  {preset} rep {rep + 1}: trainer {a['tokens_per_s']:,.0f}  plain {b['tokens_per_s']:,.0f} tokens/s",
                  flush=True)
            if cuda:
                torch.cuda.empty_cache()
        entry = {"batch": batch, "context": context, "vocab": vocab, "params": cfg.expected_params(),
                 "flops_per_token": fpt, "trainer_reported_tokens_per_s": reported}
        for variant, values in rates.items():
            best, med = max(values), statistics.median(values)
            entry[variant] = {"tokens_per_s": values, "best": best, "median": med,
                              "mfu_best": best * fpt / peak if peak else None}
            rows.append((preset, batch, context, vocab, variant, best, med, best * fpt / peak if peak else None,
                         batch * context / best * 1000))
        entry["ratio_best"] = entry["trainer"]["best"] / entry["plain"]["best"]
        entry["ratio_median"] = entry["trainer"]["median"] / entry["plain"]["median"]
        ref = NANOGPT_H100.get(preset)
        if cuda and ref:
            r = ref[1 if args.compile else 0]
            entry["nanogpt_h100_tokens_per_s"] = r
            entry["trainer_vs_nanogpt_h100"] = entry["trainer"]["best"] / r if r else None
        report["presets"][preset] = entry
    shutil.rmtree(workdir, ignore_errors=True)
    report["load_after"] = os.getloadavg()

    print("\n| preset | batch × context | vocab | loop | best tokens/s | median tokens/s | ms/step (best) | MFU (best) |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for preset, batch, context, vocab, variant, best, med, mfu, ms in rows:
        mfu_s = f"{100 * mfu:.1f} %" if mfu is not None else "-"
        print(f"| {preset} | {batch} × {context} | {vocab} | {variant} | {best:,.0f} | {med:,.0f} | {ms:.1f} | {mfu_s} |")
    print()
    for preset, e in report["presets"].items():
        line = (f"{preset}: trainer / plain = {e['ratio_best']:.2f} (best), {e['ratio_median']:.2f} (median); "
                f"trainer's own tokens/s (excludes only step 1): {', '.join(f'{r:,.0f}' for r in e['trainer_reported_tokens_per_s'] if r)}")
        if "nanogpt_h100_tokens_per_s" in e:
            line += (f"; nanoGPT on one H100 ({'compiled' if args.compile else 'eager'}): "
                     f"{e['nanogpt_h100_tokens_per_s']:,} tokens/s, trainer / nanoGPT = {e['trainer_vs_nanogpt_h100']:.2f}")
        print(line)
    print(f"MFU basis: {basis}; load average before {load0}, after {report['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
