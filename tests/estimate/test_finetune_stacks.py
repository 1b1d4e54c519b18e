"""Fine-tuning by software stack: logits and loss by hand for each stack, offloaded checkpoints against the
host, paged and in-backward optimizers, the longest sequence that fits (and one token more that does not),
QLoRA's dequantization time, and the one-line errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.catalog import gpus
from engine.cli import main
from engine.errors import ValidationError
from engine.estimate.finetune import NF4_BITS_PER_PARAM, FinetuneInput, block_linear_params, estimate_finetune
from engine.estimate.finetune_stacks import stack_ids
from engine.estimate.models import get_model

BASE = FinetuneInput(model="llama-3-8b", tokens=1e6, gpu="rtx-4090", method="qlora", rank=16, batch=1, seq_len=1024,
                     gradient_checkpointing=True, host_memory_gib=64.0)


@pytest.mark.parametrize("stack, expected", [
    # T = 1 × 1024 tokens, V = 128,256: T·V = 131,334,144 logits.
    # hf: bf16 logits kept in the output (2 B) + in backward the saved fp32 log-softmax (4), the fp32 gradient of
    # the log-probabilities (4) and of the logits (4): 14 B → 131,334,144 × 14 = 1,838,678,016
    ("hf", 1_838_678_016),
    # torchtune: the 8 bf16 chunks all held (2 B) + one chunk's fp32 up-cast (4), its gradient (4) and the bf16
    # gradient (2) = 10 B / 8 chunks: 2 + 1.25 = 3.25 B → 131,334,144 × 3.25 = 426,835,968
    ("torchtune", 426_835_968),
    # unsloth: Cut Cross-Entropy computes the logits block by block on chip and never stores them: 0
    ("unsloth", 0),
])
def test_logits_and_loss_by_hand(stack, expected):
    est = estimate_finetune(replace(BASE, stack=stack))
    assert est.logits_bytes == expected
    assert est.stack == stack


def test_loss_chunks_and_logits_bytes_are_editable():
    # hf with the loss in 4 chunks: 2 + 12/4 = 5 B → 131,334,144 × 5 = 656,670,720
    assert estimate_finetune(replace(BASE, loss_chunks=4)).logits_bytes == 656_670_720
    assert estimate_finetune(replace(BASE, logits_bytes=1.0)).logits_bytes == 131_334_144


def test_offloaded_checkpoints_count_against_the_host():
    # 32 layers × 1024 tokens × 4096 × 2 B = 268,435,456 B of checkpoints; two layers stay on the GPU
    est = estimate_finetune(replace(BASE, stack="unsloth"))
    assert est.offload_checkpoints
    assert est.checkpoint_bytes == 2 * 1024 * 4096 * 2
    assert est.host_bytes == 30 * 1024 * 4096 * 2
    small = estimate_finetune(replace(BASE, stack="unsloth", host_memory_gib=0.1))
    assert small.fits_gpu and not small.fits_host and not small.fits
    on_gpu = estimate_finetune(replace(BASE, stack="unsloth", offload_checkpoints=False, host_memory_gib=None))
    assert on_gpu.host_bytes == 0 and on_gpu.checkpoint_bytes == 32 * 1024 * 4096 * 2
    assert estimate_finetune(replace(BASE, stack="unsloth")).max_seq_len_fits > on_gpu.max_seq_len_fits


def test_torchtune_full_pages_its_optimizer_and_steps_it_in_backward():
    spec = get_model("llama-3-8b")
    est = estimate_finetune(replace(BASE, method="full", stack="torchtune", batch=2, seq_len=2048))
    # PagedAdamW8bit without an fp32 master copy: 2 B/param in unified memory, on the host
    assert est.optimizer_bytes == 0 and est.host_bytes == pytest.approx(2 * spec.params_total)
    # optimizer_in_bwd: one gradient alive at a time, the largest matrix (128,256 × 4,096 in bf16)
    assert est.gradients_bytes == 128_256 * 4096 * 2
    assert est.weights_bytes == 2 * spec.params_total


@pytest.mark.parametrize("stack", stack_ids())
def test_max_seq_len_fits_agrees_with_fits_at_the_boundary(stack):
    est = estimate_finetune(replace(BASE, stack=stack))
    m = est.max_seq_len_fits
    assert 1 < m < 10_000_000
    assert estimate_finetune(replace(BASE, stack=stack, seq_len=m)).fits
    assert not estimate_finetune(replace(BASE, stack=stack, seq_len=m + 1)).fits  # one token more does not


def test_stacks_order_the_longest_context_as_published():
    # unsloth.ai/blog/llama3-3: Unsloth holds several times the context of HF + FA2 on the same card
    longest = {s: estimate_finetune(replace(BASE, stack=s, rank=32)).max_seq_len_fits for s in stack_ids()}
    assert longest["unsloth"] > 3 * longest["hf"] and longest["torchtune"] > longest["hf"]


def test_qlora_is_slower_than_lora_at_equal_mfu_by_its_dequantization():
    spec = get_model("llama-3-8b")
    lora = estimate_finetune(replace(BASE, method="lora", mfu=0.3, host_memory_gib=None))
    qlora = estimate_finetune(replace(BASE, mfu=0.3, host_memory_gib=None))
    assert qlora.flops_total == lora.flops_total  # the same matmul FLOPs...
    assert qlora.gpu_hours > lora.gpu_hours  # ...but every micro-batch dequantizes each NF4 weight per pass
    # forward, backward and the recomputed forward: 3 passes × quantized weights × (4.127/8 + 2) B per weight
    # / (1,008 GB/s × 0.5) per micro-batch of 1,024 tokens, for 1e6 tokens
    per_step = 3 * block_linear_params(spec) * (NF4_BITS_PER_PARAM / 8 + 2) / (1008e9 * 0.5)
    assert qlora.dequant_hours == pytest.approx(1e6 / 1024 * per_step / 3600)
    assert qlora.gpu_hours == pytest.approx(lora.gpu_hours + qlora.dequant_hours)
    assert qlora.tokens_per_second < lora.tokens_per_second


def test_stack_speed_follows_hardware_flops_and_is_editable():
    hf = estimate_finetune(replace(BASE, method="lora", host_memory_gib=None))
    # hf: the GPU's typical MFU (0.30 on a 4090) as its hardware FLOPs utilization; checkpointing's recompute
    # costs time, so the MFU is below it
    assert hf.hfu == pytest.approx(0.30) and hf.mfu < hf.hfu
    faster = estimate_finetune(replace(BASE, method="lora", host_memory_gib=None, hfu=0.6))
    assert faster.gpu_hours == pytest.approx(hf.gpu_hours / 2)
    with pytest.raises(ValidationError, match="not both"):
        estimate_finetune(replace(BASE, mfu=0.3, hfu=0.3))


@pytest.mark.parametrize("change, words", [
    (dict(stack="deepspeed"), "stack"),
    (dict(stack="unsloth", method="full"), "supports lora, qlora"),
    (dict(stack="unsloth", host_memory_gib=None), "host-memory-gib"),
    (dict(stack="torchtune", method="full", host_memory_gib=None), "pages its optimizer"),
    (dict(loss_chunks=0), "loss-chunks"), (dict(fragmentation=2), "fragmentation"),
])
def test_bad_stack_input_is_one_line(change, words):
    with pytest.raises(ValidationError, match=words) as exc:
        estimate_finetune(replace(BASE, **change))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("argv, words", [
    (["--stack", "nope"], "stack"),
    (["--stack", "unsloth", "--method", "full"], "supports lora, qlora"),
    (["--stack", "unsloth", "--gradient-checkpointing"], "host-memory-gib"),
])
def test_cli_bad_stack_exits_2_with_one_line(capsys, argv, words):
    base = ["estimate", "finetune", "--model", "llama-3-8b", "--tokens", "1M", "--gpu", "rtx-4090"]
    argv = base + (argv if "--method" in argv else argv + ["--method", "qlora"])
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err


def test_cli_json_has_the_stack_fields(capsys):
    import json

    code = main(["estimate", "finetune", "--model", "llama-3-8b", "--method", "qlora", "--tokens", "1M", "--gpu",
                 "rtx-4090", "--gradient-checkpointing", "--stack", "torchtune", "--seq-len", "1024", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code in (0, None) and d["stack"] == "torchtune" and d["max_seq_len_fits"] > 1024
    assert {"logits_bytes", "checkpoint_bytes", "cuda_context_bytes", "fragmentation_bytes", "host_bytes",
            "tokens_per_second", "dequant_hours"} <= set(d)


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(stack=st.sampled_from(stack_ids()), method=st.sampled_from(("lora", "qlora")), low=st.floats(4, 200),
       extra=st.floats(0, 200), batch=st.integers(1, 4), ckpt=st.booleans())
def test_property_longest_sequence_is_monotone_in_gpu_memory(stack, method, low, extra, batch, ckpt):
    card = gpus()["h100-sxm"]
    inp = replace(BASE, stack=stack, method=method, batch=batch, gradient_checkpointing=ckpt, seq_len=64,
                  host_memory_gib=4096.0)
    small = estimate_finetune(replace(inp, gpu=replace(card, memory_gib=low))).max_seq_len_fits
    large = estimate_finetune(replace(inp, gpu=replace(card, memory_gib=low + extra))).max_seq_len_fits
    assert small <= large


def test_cli_flags_override_the_stack_defaults(capsys):
    import json

    base = ["estimate", "finetune", "--model", "llama-3-8b", "--method", "qlora", "--tokens", "1M", "--gpu", "rtx-4090",
            "--seq-len", "1024", "--gradient-checkpointing", "--json"]
    main(base + ["--stack", "unsloth", "--no-offload-checkpoints", "--cuda-context-gib", "1", "--fragmentation", "0"])
    d = json.loads(capsys.readouterr().out)
    assert d["host_bytes"] == 0 and d["cuda_context_bytes"] == 2**30 and d["fragmentation_bytes"] == 0
    main(base + ["--loss-chunks", "4", "--hfu", "0.5", "--dequant-efficiency", "1"])
    d = json.loads(capsys.readouterr().out)
    assert d["logits_bytes"] == 656_670_720 and d["hfu"] == 0.5  # hf: (2 + 12/4) B × 131,334,144 logits


def test_longest_context_table_is_the_estimates_own_figure():
    from engine.estimate.sensitivity import finetune_longest_context

    table = finetune_longest_context(BASE, gpu_ids=["rtx-4090", "l4"])
    assert len(table) == 2 * 3 * len(stack_ids())
    full_unsloth = table[(table["stack"] == "unsloth") & (table["method"] == "full")]
    assert full_unsloth["max_seq_len_fits"].isna().all()
    row = table[(table["stack"] == "torchtune") & (table["method"] == "qlora") & (table["gpu"] == "l4")].iloc[0]
    one = estimate_finetune(replace(BASE, stack="torchtune", gpu="l4"))
    assert row["max_seq_len_fits"] == one.max_seq_len_fits


def test_every_stack_row_has_a_source_a_date_and_known_methods():
    import datetime

    from engine.catalog import stack_rows
    from engine.estimate.finetune import METHODS

    for row in stack_rows():
        assert row["source"].count("http") >= 2 and datetime.date.fromisoformat(row["date"]), row["id"]
        assert set(row["methods"]) <= set(METHODS) and row["methods"]
        for method in row["methods"]:
            assert row[f"hfu_{method}"] == "typical" or 0 < row[f"hfu_{method}"] <= 1


def test_eager_cross_entropy_saves_fp32_log_probs_chunked_or_not():
    """The premise of the logits coefficients, measured with autograd's saved-tensor hooks on a tiny case:
    F.cross_entropy(logits.float()) keeps the fp32 log-softmax (4 B per token × vocabulary entry) for
    backward; splitting it into 8 chunks in eager mode keeps the same 4 B in total (only a compiled loss,
    which recomputes the softmax, drops it: torchtune's row assumes compile on)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    t, v = 64, 1000
    logits = torch.randn(t, v, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, v, (t,))

    def saved(fn) -> int:
        seen: dict[int, int] = {}

        def pack(x):
            seen[id(x)] = x.numel() * x.element_size()
            return x

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            fn()
        return sum(seen.values())

    whole = saved(lambda: functional.cross_entropy(logits.float(), labels))
    chunked = saved(lambda: sum(functional.cross_entropy(c.float(), y, reduction="sum")
                                for c, y in zip(logits.chunk(8), labels.chunk(8))))
    assert whole == pytest.approx(4 * t * v, rel=0.01) and chunked == pytest.approx(4 * t * v, rel=0.01)
