"""Fine-tuning estimates against published measurements: torchtune's README table (the aim) and
Unsloth's longest-context tables (held out).

    .venv/bin/python bench/finetune_published.py [--fit] [--json]

**Aim** (issue 21): with ``--stack torchtune``, every row of torchtune's "Memory and training speed"
table for Llama 3.1 8B within ±15 % on peak memory and ±25 % on tokens/s. Source:
https://github.com/pytorch/torchtune/blob/30b8519e8/README.md (commit of 2024-09-24, "Readme Updates
(#1664)"): batch 2 without gradient accumulation, a dataset packed to 2,048 tokens, torch.compile on.
The configs of that commit (recipes/configs/llama3_1/8B_{full,lora,qlora}_single_device.yaml) give the
rest: LoRA rank 8 on q and v; QLoRA rank 8 on q, k, v, output and the MLP; full with PagedAdamW8bit
and optimizer_in_bwd; activation checkpointing on, offloading off. The README does not say how the
A6000 rows were run; they use about 14-18 GiB more and run 1.5x faster than the 4090 rows, which is
what turning activation checkpointing off does, so they are estimated without it (an inference, said
so in docs/BENCHMARKS.md). torchtune's peak is the caching allocator's (torchtune/training/memory.py:
torch.cuda active / allocated / reserved, no CUDA context; its tutorials quote "GPU peak memory
allocation"), so it is compared with the estimate's allocated bytes (total_bytes_per_gpu), without the
CUDA context and the fragmentation.

``--fit`` prints the hardware FLOPs utilization and the dequantization efficiency the 4090 rows imply
under the estimator's FLOP count: the torchtune defaults in engine/catalog/stacks.toml are these, so the
4090 tokens/s rows are in-sample; the A6000 rows (no checkpointing, another GPU) and the memory rows
are not fitted.

**Held out**: https://unsloth.ai/blog/llama3-3 (2024-12): the longest context of QLoRA (4-bit, rank
32, all linear layers, batch 1) for Llama 3.1 8B and Llama 3.3 70B under Unsloth (with Apple's Cut
Cross-Entropy) and under Hugging Face + FlashAttention 2, on 8, 48 and 80 GB GPUs ("OOM": not even
a short sequence). Host memory for Unsloth's offloaded checkpoints is set large (1 TiB) since the
blog does not give it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from engine.catalog import GPUSpec, gpus
from engine.estimate.finetune import FinetuneInput, estimate_finetune

# NVIDIA RTX A6000 datasheet (2021): 48 GB GDDR6, 768 GB/s, 309.7 TFLOPS tensor with sparsity (154.8
# dense), 38.7 TFLOPS FP32, 300 W. Not in the catalog; a custom GPU as any user could give.
A6000 = GPUSpec(id="rtx-a6000", name="NVIDIA RTX A6000 48GB", vendor="nvidia", bf16_tflops=154.8, fp8_tflops=0.0,
                fp32_tflops=38.7, memory_gib=48.0, bandwidth_gbs=768.0, tdp_w=300, price_usd_per_hour=0.8,
                typical_mfu=0.30, source="NVIDIA RTX A6000 datasheet (2021)", date="2021-04-12")

TT = dict(model="llama-3-8b", tokens=1e7, batch=2, seq_len=2048, stack="torchtune", host_memory_gib=64.0)
# (label, inputs, published peak GiB, published tokens/s)
TORCHTUNE = [
    ("full, 1x 4090", dict(method="full", gpu="rtx-4090", gradient_checkpointing=True), 18.9, 1650),
    ("full, 1x A6000", dict(method="full", gpu=A6000, gradient_checkpointing=False), 37.4, 2579),
    ("LoRA, 1x 4090", dict(method="lora", gpu="rtx-4090", rank=8, target="qv", gradient_checkpointing=True), 16.2, 3083),
    ("LoRA, 1x A6000", dict(method="lora", gpu=A6000, rank=8, target="qv", gradient_checkpointing=False), 30.3, 4699),
    ("QLoRA, 1x 4090", dict(method="qlora", gpu="rtx-4090", rank=8, target="all-linear", gradient_checkpointing=True),
     7.4, 2413),
]
GIB8 = replace(gpus()["rtx-4090"], id="8gb-card", name="an 8 GB card", memory_gib=8.0)
UQ = dict(method="qlora", rank=32, target="all-linear", batch=1, gradient_checkpointing=True, tokens=1e7,
          host_memory_gib=1024.0)
# (label, model, gpu, stack, published longest context; 0 = out of memory)
UNSLOTH = [
    ("Llama 3.1 8B, 80 GB, Unsloth+CCE", "llama-3-8b", "a100-80gb", "unsloth", 342_000),
    ("Llama 3.1 8B, 80 GB, HF+FA2", "llama-3-8b", "a100-80gb", "hf", 28_000),
    ("Llama 3.1 8B, 8 GB, Unsloth+CCE", "llama-3-8b", GIB8, "unsloth", 2_900),
    ("Llama 3.1 8B, 8 GB, HF+FA2", "llama-3-8b", GIB8, "hf", 0),
    ("Llama 3.3 70B, 48 GB, Unsloth+CCE", "llama-3-70b", "l40s", "unsloth", 12_106),
    ("Llama 3.3 70B, 48 GB, HF+FA2", "llama-3-70b", "l40s", "hf", 0),
    ("Llama 3.3 70B, 80 GB, Unsloth+CCE", "llama-3-70b", "a100-80gb", "unsloth", 89_389),
    ("Llama 3.3 70B, 80 GB, HF+FA2", "llama-3-70b", "a100-80gb", "hf", 6_916),
]


def torchtune_rows() -> list[dict]:
    out = []
    for label, change, gib, tps in TORCHTUNE:
        est = estimate_finetune(FinetuneInput(**{**TT, **change}))
        peak = est.total_bytes_per_gpu / 2**30  # allocated: torchtune's "peak memory allocation"
        out.append(dict(row=label, published_gib=gib, estimated_gib=round(peak, 2), memory_ratio=round(peak / gib, 3),
                        published_tps=tps, estimated_tps=round(est.tokens_per_second), tps_ratio=round(est.tokens_per_second / tps, 3),
                        memory_ok=abs(peak / gib - 1) <= 0.15, speed_ok=abs(est.tokens_per_second / tps - 1) <= 0.25))
    return out


def implied_fit() -> dict:
    """Hardware FLOPs utilization and dequantization efficiency implied by the 4090 rows."""
    fit = {}
    for label, change, _, tps in TORCHTUNE:
        if "4090" not in label:
            continue
        est = estimate_finetune(FinetuneInput(**{**TT, **change}, hfu=0.5, dequant_efficiency=1.0))
        peak = gpus()["rtx-4090"].bf16_tflops * 1e12
        hw_per_token = est.hardware_flops_total / est.trained_tokens
        if change["method"] != "qlora":
            fit[f"hfu_{change['method']}"] = round(hw_per_token * tps / peak, 3)
        else:
            compute = hw_per_token / (peak * fit["hfu_lora"])  # seconds per token at LoRA's utilization
            dequant_at_1 = est.dequant_hours * 3600 / est.trained_tokens  # seconds per token at efficiency 1
            fit["dequant_efficiency"] = round(dequant_at_1 / (1.0 / tps - compute), 3)
    return fit


def unsloth_rows() -> list[dict]:
    out = []
    for label, model, gpu, stack, published in UNSLOTH:
        est = estimate_finetune(FinetuneInput(model=model, gpu=gpu, stack=stack, seq_len=512, **UQ))
        got = est.max_seq_len_fits
        ratio = None if published == 0 else round(got / published, 3)
        out.append(dict(row=label, published=published or "OOM", estimated=got, ratio=ratio))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = dict(torchtune=torchtune_rows(), unsloth_held_out=unsloth_rows())
    if args.fit:
        result["implied_by_4090_rows"] = implied_fit()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("| torchtune README row | peak GiB published | estimated | ratio | tokens/s published | estimated | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in result["torchtune"]:
        print(f"| {r['row']} | {r['published_gib']} | {r['estimated_gib']} | {r['memory_ratio']}{'' if r['memory_ok'] else ' ✗'} "
              f"| {r['published_tps']} | {r['estimated_tps']} | {r['tps_ratio']}{'' if r['speed_ok'] else ' ✗'} |")
    print("\n| Unsloth blog (held out) | longest context published | estimated | ratio |")
    print("|---|---:|---:|---:|")
    for r in result["unsloth_held_out"]:
        print(f"| {r['row']} | {r['published']} | {r['estimated']} | {r['ratio'] if r['ratio'] is not None else '—'} |")
    if args.fit:
        print("\nimplied by the 4090 rows:", result["implied_by_4090_rows"])


if __name__ == "__main__":
    main()
