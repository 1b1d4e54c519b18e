"""A real open model's architecture on this CPU (issue 19): Qwen2.5-0.5B with random weights (weights do not
change the speed), torch eager fp32 vs onnxruntime fp32 and int8 (onnxruntime-genai's builder graphs),
decode tokens/s at batch 1 and 8 and the prefill of 512 tokens, each beside the serving estimator's roofline
for the same architecture (this CPU's measured matmul peak and memory bandwidth) and the calibrated
prediction (the implied decode efficiency of torch fp32 at batch 1 applied to every row).

    PYTHONPATH=. python bench/hf_cpu.py [--model qwen2.5-0.5b] [--iters 3] [--out results.json] [--markdown]

The checkpoint is built here (engine/lab/hf_random.py: transformers' Qwen2Config with the published
config's fields, https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json) under a temporary
PREFLIGHT_HOME, with a small locally trained BPE (the vocabulary size stays 151,936: the embedding and
LM head cost what they cost). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Published configs (config.json of each model on the Hugging Face hub, read 2026-12-08).
SIZES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, tie_word_embeddings=False),
}
COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6)


def build(model: str, root: Path) -> Path:
    from engine.lab.hf_random import build_checkpoint, train_tokenizer

    words = "the of and to in a is that for it as was with be by on not he this are or his from at which".split()
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(300)]
    tok = train_tokenizer(texts, vocab_size=300)
    return build_checkpoint(root / model, "qwen2", tok, seed=0, **COMMON, **SIZES[model])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=tuple(SIZES), default="qwen2.5-0.5b")
    ap.add_argument("--backends", default="torch,onnxruntime")
    ap.add_argument("--dtypes", default="fp32,int8")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hf-bench-"))
    os.environ.setdefault("PREFLIGHT_HOME", str(root / "home"))
    t0 = time.perf_counter()
    folder = build(args.model, root)
    built = time.perf_counter() - t0
    from engine.infer.hf_bench import HFBenchInput, bench_hf

    res = bench_hf(HFBenchInput(hf_model=str(folder), backends=tuple(args.backends.split(",")),
                                dtypes=tuple(args.dtypes.split(",")),
                                batches=tuple(int(b) for b in args.batches.split(",")),
                                prompt_tokens=args.prompt_tokens, iters=args.iters),
                   progress=lambda r: print(json.dumps(r), file=sys.stderr, flush=True)).to_dict()
    res.update(model=args.model, build_s=built, total_s=time.perf_counter() - t0, load_average=os.getloadavg())
    text = json.dumps(res, indent=1)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    if args.markdown:
        print("| backend | precision | batch | decode tok/s | predicted (eff. 1) | calibrated | measured ÷ calibrated |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in res["decode"]:
            print(f"| {r['backend']} | {r['dtype']} | {r['batch']} | {r['decode_tokens_per_s']:.1f} | "
                  f"{r['predicted_decode_tokens_per_s']:.1f} | {r['calibrated_decode_tokens_per_s']:.1f} | "
                  f"{r['measured_over_calibrated']:.2f} |")
        for r in res["prefill"]:
            print(f"| {r['backend']} | {r['dtype']} | prefill {r['prompt_tokens']} | {r['prefill_s']:.2f} s | "
                  f"{r['predicted_prefill_s']:.2f} s | | |")


if __name__ == "__main__":
    main()
