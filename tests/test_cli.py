"""The command line: one JSON object per --json command, exit code 2 and one stderr line for bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__, catalog
from engine.estimate.models import models
from engine.catalog import get_gpu
from engine.cli import main

REPO = Path(__file__).resolve().parents[1]

TRAIN_KEYS = {"params", "tokens", "flops_total", "gpu_hours", "wall_clock_hours", "cost_usd", "energy_kwh", "co2_kg", "mfu"}
MEMORY_KEYS = {"weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "kv_cache_bytes",
               "total_bytes_per_gpu", "fits"}
SERVE_KEYS = {"prefill_seconds", "decode_tokens_per_s", "time_per_output_token_s", "max_concurrency", "gpus_needed",
              "cost_per_million_input_tokens_usd", "cost_per_million_output_tokens_usd"}
OPTIMAL_KEYS = {"params", "tokens", "predicted_loss"}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr), whether it returns or raises SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""
    assert out.count("\n") == 1 and out.endswith("\n"), "exactly one line of JSON"
    obj = json.loads(out)  # json.loads rejects trailing data: exactly one object
    assert isinstance(obj, dict)
    return obj


def finite_numbers(obj: dict) -> None:
    for key, value in obj.items():
        if isinstance(value, float):
            assert math.isfinite(value), key


# ---- JSON contract ----------------------------------------------------------------------------

def test_models(capsys):
    obj = cli_json(capsys, "models")
    ids = [row["id"] for row in obj["models"]]
    assert ids == list(models())
    row = next(r for r in obj["models"] if r["id"] == "llama-2-7b")
    assert row["params_total"] == 6_738_415_616 and row["attention"] == "mha"
    assert obj["version"] == catalog.catalog_versions()["models"]


def test_gpus(capsys):
    obj = cli_json(capsys, "gpus")
    assert [row["id"] for row in obj["gpus"]] == list(catalog.gpus())
    h100 = next(r for r in obj["gpus"] if r["id"] == "h100-sxm")
    assert h100["bf16_tflops"] == 989.4 and h100["memory_gib"] == 80 and h100["typical_mfu_fp8"] == 0.25
    assert "memory_gb" not in h100


def test_gpus_human_output_in_gib(capsys):
    code, out, err = cli(capsys, "gpus")
    assert code == 0 and err == ""
    line = next(row for row in out.splitlines() if row.startswith("h100-sxm"))
    assert "80 GiB" in line and " GB " not in line


def test_estimate_train(capsys):
    obj = cli_json(capsys, "estimate", "train", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "a100-80gb",
                   "--gpus", "1024")
    assert TRAIN_KEYS <= obj.keys()
    finite_numbers(obj)
    assert obj["params"] == 6_738_415_616 and obj["tokens"] == 2e12
    assert obj["mfu"] == pytest.approx(get_gpu("a100-80gb").typical_mfu)
    assert obj["wall_clock_hours"] == pytest.approx(obj["gpu_hours"] / 1024)


def test_estimate_train_fp8_default_mfu(capsys):
    """FP8 on an H100 SXM: 25% of the 1978.9 TFLOP/s FP8 peak by default."""
    obj = cli_json(capsys, "estimate", "train", "--params", "1B", "--tokens", "10B", "--gpu", "h100-sxm",
                   "--precision", "fp8")
    assert obj["mfu"] == pytest.approx(0.25, rel=1e-12)
    assert obj["gpu_hours"] == pytest.approx(6 * 1e9 * 10e9 / (1978.9e12 * 0.25) / 3600, rel=1e-12)


def test_estimate_train_gpu_hours_gives_implied_mfu(capsys):
    """Llama 2 7B: 184,320 A100 GPU-hours for 2T tokens (Touvron et al. 2023, Table 2)."""
    obj = cli_json(capsys, "estimate", "train", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "a100-80gb",
                   "--gpu-hours", "184320")
    assert TRAIN_KEYS <= obj.keys()
    assert obj["gpu_hours"] == 184_320
    assert obj["mfu"] == pytest.approx(obj["flops_total"] / (184_320 * 3600 * 312e12), rel=1e-12)
    assert 0.3 < obj["mfu"] < 0.6


def test_estimate_train_params_and_options(capsys):
    obj = cli_json(capsys, "estimate", "train", "--params", "175B", "--tokens", "300B", "--gpu", "A100-80GB",
                   "--gpus", "1024", "--achieved-tflops", "140", "--recompute", "full", "--price", "2",
                   "--pue", "1.1", "--grid", "0.2", "--precision", "bf16")
    assert obj["flops_total"] == pytest.approx(6 * 175e9 * 300e9)
    assert obj["wall_clock_hours"] / 24 == pytest.approx(33.9, abs=0.05)  # Narayanan et al. 2021: ~34 days
    assert obj["cost_usd"] == pytest.approx(obj["gpu_hours"] * 2)
    assert obj["co2_kg"] == pytest.approx(obj["energy_kwh"] * 0.2)


def test_estimate_memory(capsys):
    obj = cli_json(capsys, "estimate", "memory", "--model", "llama-2-7b", "--gpu", "a100-80gb", "--dp", "64",
                   "--zero", "3", "--recompute", "full")
    assert MEMORY_KEYS <= obj.keys()
    finite_numbers(obj)
    assert obj["fits"] is True
    total = sum(obj[k] for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes"))
    assert total / obj["params_per_gpu"] == pytest.approx(16 / 64)


def test_estimate_memory_infer(capsys):
    obj = cli_json(capsys, "estimate", "memory", "--model", "llama-2-7b", "--mode", "infer", "--batch", "1",
                   "--seq-len", "1", "--dtype", "fp16")
    assert MEMORY_KEYS <= obj.keys()
    assert obj["kv_cache_bytes"] == 524_288
    assert obj["fits"] is None  # no --gpu given


def test_estimate_memory_all_options(capsys):
    obj = cli_json(capsys, "estimate", "memory", "--model", "gpt3-175b", "--tp", "8", "--pp", "8", "--dp", "8",
                   "--zero", "1", "--no-sequence-parallel", "--optimizer", "adamw-8bit", "--microbatches", "4",
                   "--recompute", "selective", "--gpu", "h100-sxm", "--overhead-gib", "2", "--batch", "1",
                   "--seq-len", "2k", "--attention", "eager", "--prefill-chunk-tokens", "4096")
    assert MEMORY_KEYS <= obj.keys() and obj["overhead_bytes"] == 2 * 2**30 and obj["gpus"] == 512
    assert obj["gpu_memory_bytes"] == 80 * 2**30
    assert obj["headroom_bytes"] == pytest.approx(80 * 2**30 - obj["total_bytes_per_gpu"] - 2 * 2**30)


def test_estimate_memory_attention(capsys):
    """--attention eager keeps Korthikanti's 5·a·s²·b scores; flash (the default) keeps 4·a·s·b of
    log-sum-exp: for GPT-2 (12 layers, 12 heads, dropout) at b = 1, s = 1024 the difference is
    12 · (5·12·1024² − 4·12·1024)."""
    base = ("estimate", "memory", "--model", "gpt2", "--batch", "1", "--seq-len", "1024")
    flash = cli_json(capsys, *base)
    assert cli_json(capsys, *base, "--attention", "flash") == flash
    eager = cli_json(capsys, *base, "--attention", "EAGER")
    assert eager["activations_bytes"] - flash["activations_bytes"] == 12 * (5 * 12 * 1024**2 - 4 * 12 * 1024)


def test_estimate_memory_prefill_chunk(capsys):
    """Inference keeps one prefill chunk's activations: Llama 3 8B, 4 × 8192 tokens in chunks of 1024:
    1024 · (4096 + 3·14336) · 2 bytes + 4 sequences' fp32 logits over 128,256 tokens."""
    obj = cli_json(capsys, "estimate", "memory", "--model", "llama-3-8b", "--mode", "infer", "--batch", "4",
                   "--seq-len", "8192", "--prefill-chunk-tokens", "1024")
    assert obj["activations_bytes"] == 1024 * (4096 + 3 * 14336) * 2 + 4 * 128_256 * 4


def test_estimate_serve(capsys):
    obj = cli_json(capsys, "estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm",
                   "--prompt-tokens", "512", "--output-tokens", "256", "--concurrency", "1")
    assert SERVE_KEYS <= obj.keys()
    finite_numbers(obj)
    roofline = (obj["weights_bytes"] + 131_072 * 640) / (3350e9 * 0.8)
    # + 20 us per layer, and since issue 18 the host work of the one sequence each step (defaults.toml, 5 us)
    roofline += 5e-6
    assert obj["time_per_output_token_s"] == pytest.approx(roofline + 32 * 20e-6, rel=1e-12)
    bare = cli_json(capsys, "estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm",
                    "--prompt-tokens", "512", "--output-tokens", "256", "--concurrency", "1", "--layer-overhead-us", "0")
    assert bare["time_per_output_token_s"] == pytest.approx(roofline, rel=1e-12)


def test_estimate_serve_new_options(capsys):
    """--layer-overhead-us and --allreduce-us set the fixed latency of a forward pass (per layer, and two
    all-reduces per layer under TP); --overhead-gib, --max-batch and --prefill-chunk-tokens the memory."""
    base = ("estimate", "serve", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "4",
            "--prompt-tokens", "20000", "--output-tokens", "256", "--concurrency", "1")
    bare = cli_json(capsys, *base, "--layer-overhead-us", "0", "--allreduce-us", "0")
    custom = cli_json(capsys, *base, "--layer-overhead-us", "10", "--allreduce-us", "100",
                      "--prefill-chunk-tokens", "5000")
    assert custom["time_per_output_token_s"] - bare["time_per_output_token_s"] == pytest.approx(80 * 210e-6, rel=1e-9)
    assert custom["prefill_seconds"] - bare["prefill_seconds"] == pytest.approx(4 * 80 * 210e-6, rel=1e-9)
    capped = cli_json(capsys, "estimate", "serve", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "4",
                      "--prompt-tokens", "20000", "--output-tokens", "256", "--max-num-seqs", "3", "--overhead-gib", "2")
    assert capped["max_batch_sequences"] == 3 and capped["concurrency"] == 3 and capped["max_concurrency"] > 3
    llama = cli_json(capsys, "estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm",
                     "--prompt-tokens", "512", "--output-tokens", "256")
    # issue 11 item 1: what the memory holds (674, worked by hand in tests/estimate/test_serving.py), not
    # the scheduler's 256
    assert (llama["max_concurrency"], llama["max_batch_sequences"], llama["concurrency"]) == (674, 256, 256)
    roomy, tight = (cli_json(capsys, "estimate", "serve", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "4",
                             "--prompt-tokens", "100000", "--output-tokens", "1000", "--overhead-gib", gib)
                    for gib in ("0", "20"))
    assert roomy["max_concurrency"] > tight["max_concurrency"]


def test_estimate_serve_options(capsys):
    obj = cli_json(capsys, "estimate", "serve", "--model", "mixtral-8x7b", "--gpu", "h100-sxm", "--gpus", "2",
                   "--dtype", "fp8", "--kv-dtype", "fp8", "--prompt-tokens", "2k", "--output-tokens", "1k",
                   "--requests-per-s", "20", "--price", "3", "--prefill-efficiency", "0.5", "--decode-efficiency", "0.7")
    assert SERVE_KEYS <= obj.keys() and obj["gpus_needed"] % 2 == 0 and obj["price_usd_per_hour"] == 3


def test_estimate_optimal_flops(capsys):
    obj = cli_json(capsys, "estimate", "optimal", "--flops", "5.76e23")
    assert OPTIMAL_KEYS <= obj.keys()
    assert obj["params"] == pytest.approx(70e9, rel=0.08)
    assert obj["tokens"] == pytest.approx(1.4e12, rel=0.10)
    hoffmann = cli_json(capsys, "estimate", "optimal", "--flops", "5.76e23", "--fit", "hoffmann2022")
    assert hoffmann["params"] < 40e9


def test_estimate_optimal_budget(capsys):
    obj = cli_json(capsys, "estimate", "optimal", "--budget-usd", "1M", "--gpu", "h100-sxm")
    assert OPTIMAL_KEYS <= obj.keys()
    assert obj["cost_usd"] == pytest.approx(1e6)
    obj = cli_json(capsys, "estimate", "optimal", "--budget-usd", "1e6", "--gpu", "h100-sxm", "--mfu", "0.5", "--price", "2")
    assert obj["gpu_hours"] == pytest.approx(5e5)


@pytest.mark.parametrize("argv", [
    ["models"], ["gpus"],
    ["estimate", "train", "--model", "gpt2", "--tokens", "1B", "--gpu", "l4"],
    ["estimate", "memory", "--model", "gpt2", "--gpu", "l4"],
    ["estimate", "serve", "--model", "gpt2", "--gpu", "l4", "--prompt-tokens", "100", "--output-tokens", "10"],
    ["estimate", "optimal", "--flops", "1e21"],
])
def test_human_output(capsys, argv):
    code, out, err = cli(capsys, *argv)
    assert code == 0 and err == ""
    assert out.strip() and not out.lstrip().startswith("{")


def test_human_memory_output_uses_units(capsys):
    code, out, _ = cli(capsys, "estimate", "memory", "--model", "llama-2-7b", "--mode", "infer")
    assert code == 0
    assert "weights_bytes" in out and "GiB" in out
    # Llama 2 7B bf16: 6,738,415,616 · 2 bytes = 12.55 GiB (13.48 GB)
    line = next(row for row in out.splitlines() if row.startswith("weights_bytes"))
    assert line.split()[-2:] == ["12.55", "GiB"]


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and __version__ in out


def test_module_entry_point():
    """`python -m engine ... --json` works as a real process (the same CLI as `preflight`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "estimate", "train", "--model", "llama-2-7b", "--tokens", "2T",
         "--gpu", "a100-80gb", "--gpu-hours", "184320", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert TRAIN_KEYS <= obj.keys()
    assert obj["gpu_hours"] == 184_320 and 0.3 < obj["mfu"] < 0.6


# ---- bad input: exit 2, one line on stderr naming the bad value, no traceback ---------------------

TRAIN = ["estimate", "train", "--model", "llama-2-7b", "--tokens", "2T", "--gpu", "a100-80gb"]
MEMORY = ["estimate", "memory", "--model", "llama-2-7b"]
SERVE = ["estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "512", "--output-tokens", "256"]


@pytest.mark.parametrize("argv, named", [
    # unknown presets
    (["estimate", "train", "--model", "gpt-9", "--tokens", "1T", "--gpu", "h100-sxm"], "gpt-9"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "1T", "--gpu", "tpu-v9"], "tpu-v9"),
    (["estimate", "memory", "--model", "llama-9"], "llama-9"),
    (MEMORY + ["--gpu", "voodoo2"], "voodoo2"),
    (["estimate", "serve", "--model", "gpt2", "--gpu", "h1000", "--prompt-tokens", "1", "--output-tokens", "1"], "h1000"),
    (["estimate", "optimal", "--budget-usd", "1e6", "--gpu", "k80"], "k80"),
    (["estimate", "optimal", "--flops", "1e23", "--fit", "kaplan"], "kaplan"),
    (MEMORY + ["--dtype", "int3"], "int3"),
    (MEMORY + ["--optimizer", "lion"], "lion"),
    (TRAIN + ["--recompute", "some"], "some"),
    # negative, zero, NaN, inf, junk numbers
    (["estimate", "train", "--params", "-7e9", "--tokens", "2T", "--gpu", "a100-80gb"], "-7e+09"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "-2T", "--gpu", "l4"], "-2e+12"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "-1.5", "--gpu", "l4"], "-1.5"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "-5", "--gpu", "l4"], "-5"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "0", "--gpu", "l4"], "tokens"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "abc", "--gpu", "l4"], "abc"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "nan", "--gpu", "l4"], "nan"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "inf", "--gpu", "l4"], "inf"),
    (["estimate", "train", "--model", "gpt2", "--tokens", "1e400", "--gpu", "l4"], "1e400"),
    (TRAIN + ["--gpus", "0"], "gpus"),
    (TRAIN + ["--gpus", "-3"], "-3"),
    (TRAIN + ["--gpus", "2.5"], "2.5"),
    (TRAIN + ["--mfu", "nan"], "nan"),
    (TRAIN + ["--mfu", "1.5"], "1.5"),
    (TRAIN + ["--mfu", "0"], "mfu"),
    (TRAIN + ["--mfu", "abc"], "abc"),
    (TRAIN + ["--gpu-hours", "0"], "gpu-hours"),
    (TRAIN + ["--achieved-tflops", "5000"], "5000"),
    (TRAIN + ["--price", "-1"], "-1"),
    (TRAIN + ["--pue", "0.5"], "0.5"),
    (TRAIN + ["--seq-len", "0"], "seq-len"),
    (MEMORY + ["--batch", "0"], "batch"),
    (MEMORY + ["--batch", "abc"], "abc"),
    (MEMORY + ["--zero", "5"], "5"),
    (MEMORY + ["--tp", "64"], "64"),
    (MEMORY + ["--pp", "33"], "33"),
    (MEMORY + ["--overhead-gib", "inf"], "inf"),
    (MEMORY + ["--overhead-gb", "2"], "--overhead-gb"),  # renamed: the overhead is in GiB
    (MEMORY + ["--attention", "sdpa"], "sdpa"),
    (MEMORY + ["--prefill-chunk-tokens", "0"], "prefill-chunk-tokens"),
    (MEMORY + ["--mode", "infer", "--kv-dtype", "int4"], "int4"),
    (MEMORY + ["--dtype", "int4"], "int4"),  # int4 is for inference only
    (SERVE + ["--concurrency", "0"], "concurrency"),
    (SERVE + ["--requests-per-s", "-2"], "-2"),
    (SERVE + ["--decode-efficiency", "2"], "2"),
    (SERVE + ["--overhead-gib", "-1"], "-1"),
    (SERVE + ["--max-num-seqs", "0"], "max-num-seqs"),
    (SERVE + ["--max-batch", "0"], "max-num-seqs"),  # the older name of the same option
    (SERVE + ["--prefill-chunk-tokens", "1.5"], "1.5"),
    (SERVE + ["--layer-overhead-us", "nan"], "nan"),
    (SERVE + ["--allreduce-us", "-3"], "-3"),
    (SERVE[:-1] + ["NaN"], "NaN"),
    (["estimate", "optimal", "--flops", "-1e23"], "-1e+23"),
    (["estimate", "optimal", "--flops", "zillions"], "zillions"),
    (["estimate", "optimal", "--budget-usd", "0", "--gpu", "h100-sxm"], "budget-usd"),
    # conflicting and missing arguments
    (TRAIN + ["--mfu", "0.4", "--gpu-hours", "1000"], "--gpu-hours"),
    (TRAIN + ["--params", "7B"], "--params"),
    (["estimate", "optimal", "--flops", "1e23", "--budget-usd", "1e6", "--gpu", "h100-sxm"], "--budget-usd"),
    (["estimate", "optimal", "--budget-usd", "1e6"], "--gpu"),
    (["estimate", "train", "--model", "gpt2", "--gpu", "l4"], "--tokens"),
    (["estimate", "train", "--tokens", "1T", "--gpu", "l4"], "--model"),
    (["estimate", "serve", "--model", "gpt2", "--gpu", "l4", "--output-tokens", "5"], "--prompt-tokens"),
    (["estimate", "memory"], "--model"),
    (["estimate", "optimal"], "--flops"),
    (["estimate"], "what"),
    ([], "command"),
    (["train"], "--data"),              # the model lab's train command needs data
    (["trian"], "trian"),               # an unknown command is named
    (TRAIN + ["--bogus"], "--bogus"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, named):
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert named in lines[0]
    assert lines[0].startswith("preflight")


def test_bad_input_never_prints_traceback_for_huge_values(capsys):
    code, _, err = cli(capsys, *TRAIN, "--gpus", "1" + "0" * 500)
    assert code == 2 and len(err.strip().split("\n")) == 1
    code, _, err = cli(capsys, *TRAIN, "--mfu", "1e-320")
    assert code == 2 and len(err.strip().split("\n")) == 1 and "out of range" in err


# ---- sensitivity tables: the pages' charts are reachable from the CLI too -----------------------

def test_train_by_gpu_table_matches_single_estimates(capsys):
    obj = cli_json(capsys, "estimate", "train", "--model", "llama-3-8b", "--tokens", "15T", "--gpu", "h100-sxm",
                   "--gpus", "1024", "--by-gpu")
    rows = {row["gpu"]: row for row in obj["by_gpu"]}
    assert set(rows) == set(catalog.gpus())  # bf16: every GPU has the units
    assert rows["h100-sxm"]["cost_usd"] == pytest.approx(obj["cost_usd"])
    single = cli_json(capsys, "estimate", "train", "--model", "llama-3-8b", "--tokens", "15T", "--gpu", "mi300x",
                      "--gpus", "1024")
    assert rows["mi300x"]["gpu_hours"] == pytest.approx(single["gpu_hours"])


def test_memory_by_plan_table(capsys):
    obj = cli_json(capsys, "estimate", "memory", "--model", "llama-3-70b", "--dp", "64", "--gpu", "h100-sxm", "--by-plan")
    plans = {row["plan"]: row for row in obj["by_plan"]}
    assert plans["ZeRO-3"]["total"] < plans["ZeRO-1"]["total"] < plans["DP only"]["total"]
    assert plans["DP only"]["fits"] is False
    assert all(row["gpus"] >= 64 for row in obj["by_plan"])


def test_serve_by_concurrency_table(capsys):
    obj = cli_json(capsys, "estimate", "serve", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "1000",
                   "--output-tokens", "200", "--by-concurrency")
    rows = obj["by_concurrency"]
    assert [r["concurrency"] for r in rows] == sorted(r["concurrency"] for r in rows)
    costs = [r["cost_per_million_output_tokens_usd"] for r in rows]
    assert costs == sorted(costs, reverse=True)  # batching amortizes the weight reads


def test_optimal_frontier_table(capsys):
    obj = cli_json(capsys, "estimate", "optimal", "--flops", "5.76e23", "--frontier")
    losses = [row["loss"] for row in obj["frontier"]]
    assert len(losses) == 41 and losses == sorted(losses, reverse=True)


def test_tables_are_opt_in(capsys):
    obj = cli_json(capsys, "estimate", "optimal", "--flops", "5.76e23")
    assert "frontier" not in obj


def test_serve_by_gpu_table(capsys):
    obj = cli_json(capsys, "estimate", "serve", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--prompt-tokens", "1000",
                   "--output-tokens", "250", "--by-gpu")
    rows = {row["gpu"]: row for row in obj["by_gpu"]}
    assert set(rows) == set(catalog.gpus())
    assert all(64 % row["gpus_per_replica"] == 0 for row in rows.values())  # 64 heads


def test_deepseek_v3_published_cost_on_h800(capsys):
    """Issue 11 item 9: the number founders quote most, DeepSeek-V3's $5.576M (2.788M H800 GPU-hours
    at $2; DeepSeek-V3 technical report, Table 1), reproduced from the command line."""
    obj = cli_json(capsys, "estimate", "train", "--model", "deepseek-v3", "--tokens", "14.8T", "--gpu", "h800",
                   "--gpus", "2048", "--gpu-hours", "2.788M", "--price", "2")
    assert obj["cost_usd"] == pytest.approx(5.576e6, rel=1e-12) and obj["gpu"] == "h800"
    assert obj["gpu_hours"] == 2.788e6


def test_gpus_json_says_which_are_not_cuda(capsys):
    rows = {row["id"]: row for row in cli_json(capsys, "gpus")["gpus"]}
    assert {"h800", "a800-80gb", "h20", "l20", "ascend-910b"} <= set(rows)
    assert rows["ascend-910b"]["cuda"] is False and rows["ascend-910b"]["platform"] == "CANN"
    assert rows["h20"]["cuda"] is True and rows["h800"]["platform"] == "CUDA"
