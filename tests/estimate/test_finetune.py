"""Fine-tuning estimates: exact trainable-parameter counts, published memory claims, FLOPs, cost, the
by-GPU comparison, the CLI contract and its one-line errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.catalog import gpus
from engine.cli import main
from engine.errors import ValidationError
from engine.estimate.finetune import (
    METHODS, NF4_BITS_PER_PARAM, TARGETS, FinetuneInput, block_linear_params, estimate_finetune,
    lora_trainable_params, smallest_fit,
)
from engine.estimate.models import get_model, models
from engine.estimate.sensitivity import FINETUNE_BY_GPU_COLUMNS, cheapest_fits, finetune_by_gpu
from engine.estimate.training import TrainingInput, estimate_training

CONTRACT = {"trainable_params", "total_params", "weights_bytes", "adapter_bytes", "gradients_bytes",
            "optimizer_bytes", "activations_bytes", "total_bytes_per_gpu", "fits", "flops_total", "gpu_hours",
            "wall_clock_hours", "cost_usd"}
SMALL = dict(batch=1, seq_len=512, gradient_checkpointing=True)  # the published claims' settings


# ---- exact trainable-parameter counts ---------------------------------------------------------------
def test_lora_r8_qv_llama2_7b_matches_peft():
    # q and v: 8·(4096 + 4096) = 65,536 each; 2 × 65,536 × 32 layers = 4,194,304 (PEFT's print)
    assert lora_trainable_params(get_model("llama-2-7b"), 8, "qv") == 4_194_304


def test_lora_r16_all_linear_llama3_8b_matches_peft():
    # q, o: 16·(4096+4096) = 131,072; k, v (GQA, 8 kv heads × 128): 16·(4096+1024) = 81,920;
    # gate, up, down: 16·(4096+14336) = 294,912; per layer 2·131,072 + 2·81,920 + 3·294,912 = 1,310,720;
    # × 32 layers = 41,943,040
    assert lora_trainable_params(get_model("llama-3-8b"), 16, "all-linear") == 41_943_040


@pytest.mark.parametrize("model, rank, target, modules", [
    ("llama-2-7b", 8, "qv", ["q_proj", "v_proj"]),
    ("llama-3-8b", 16, "all-linear", "all-linear"),
    ("mistral-7b", 4, "attention", ["q_proj", "k_proj", "v_proj", "o_proj"]),
])
def test_counts_equal_peft_on_the_hugging_face_architecture(model, rank, target, modules):
    """PEFT itself on transformers' Llama built on the meta device (shapes only, no weights, nothing
    downloaded): its trainable count is the estimator's, and its total is the preset's plus adapters."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    spec = get_model(model)
    cfg = transformers.LlamaConfig(hidden_size=spec.d_model, intermediate_size=spec.d_ff,
                                   num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
                                   num_key_value_heads=spec.n_kv_heads, vocab_size=spec.vocab_size,
                                   head_dim=spec.head_dim, tie_word_embeddings=spec.tied_embeddings)
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM(cfg)
    wrapped = peft.get_peft_model(hf, peft.LoraConfig(r=rank, target_modules=modules, lora_dropout=0.0, bias="none"))
    trainable, total = wrapped.get_nb_trainable_parameters()
    assert trainable == lora_trainable_params(spec, rank, target)
    assert total == spec.params_total + trainable


def test_more_counts_by_hand():
    # Llama-2-7B attention r=16: 4 projections × 16·8192 = 524,288 per layer × 32 = 16,777,216
    assert lora_trainable_params(get_model("llama-2-7b"), 16, "attention") == 16_777_216
    # Mistral-7B qv r=8 (GQA, 8 kv heads × 128): q 8·(4096+4096) = 65,536, v 8·(4096+1024) = 40,960;
    # 106,496 × 32 = 3,407,872 (PEFT's print for Mistral-7B with r=8 on q_proj, v_proj)
    assert lora_trainable_params(get_model("mistral-7b"), 8, "qv") == 3_407_872
    # Mixtral-8x7B all-linear r=16: attention 425,984 (as Llama-3-8B) + 8 experts × 3 × 16·(4096+14336)
    # = 7,077,888 per layer; 7,503,872 × 32 = 240,123,904 (router frozen)
    assert lora_trainable_params(get_model("mixtral-8x7b"), 16, "all-linear") == 240_123_904
    # DeepSeek-V3 (MLA) attention r=8: q_a 8·(7168+1536) = 69,632; q_b 8·(1536+128·192) = 208,896;
    # kv_a 8·(7168+576) = 61,952; kv_b 8·(512+128·256) = 266,240; o 8·(128·128+7168) = 188,416;
    # 795,136 per layer × 61 layers = 48,503,296
    assert lora_trainable_params(get_model("deepseek-v3"), 8, "attention") == 48_503_296


def test_qlora_weights_nf4_with_16bit_embeddings_and_head():
    spec = get_model("llama-2-7b")
    # block linears: 32 × (4·4096² + 3·4096·11008) = 6,476,005,376; the rest (embeddings, head, norms)
    # 6,738,415,616 − 6,476,005,376 = 262,410,240 stay 16-bit
    assert block_linear_params(spec) == 6_476_005_376
    assert NF4_BITS_PER_PARAM == pytest.approx(4.127, abs=1e-3)  # QLoRA paper, Sec. 3
    est = estimate_finetune(FinetuneInput(model=spec, tokens=1e6, gpu="l4", method="qlora", **SMALL))
    assert est.weights_bytes == pytest.approx(6_476_005_376 * NF4_BITS_PER_PARAM / 8 + 262_410_240 * 2)
    assert est.quantized_params == 6_476_005_376
    assert any("16-bit" in a for a in est.assumptions)


def test_adapter_state_is_trainable_params_only():
    est = estimate_finetune(FinetuneInput(model="llama-3-8b", tokens=1e6, gpu="h100-sxm", method="lora", rank=16))
    n = 41_943_040
    assert est.trainable_params == n
    assert (est.adapter_bytes, est.gradients_bytes, est.optimizer_bytes) == (2 * n, 2 * n, 8 * n)
    assert est.weights_bytes == get_model("llama-3-8b").params_total * 2


# ---- published memory claims --------------------------------------------------------------------------
def test_qlora_fits_llama2_70b_on_one_l40s():
    """QLoRA paper, abstract: a 65B model fine-tunes on a single 48 GB GPU. Assumptions: Llama-2-70B,
    rank 16 on all linear layers, batch 1 × 512 tokens, gradient checkpointing, 1 GiB overhead."""
    l40s = gpus()["l40s"]
    assert l40s.memory_gib == 48
    est = estimate_finetune(FinetuneInput(model="llama-2-70b", tokens=1e6, gpu="l40s", method="qlora", rank=16, **SMALL))
    assert est.fits, est.to_dict()
    assert est.total_bytes_per_gpu > 30 * 2**30  # it is a tight fit, not a trivial one


def test_full_bf16_adamw_llama2_7b_does_not_fit_one_a100_80gb():
    # 16 B/param (2 weights + 2 gradients + 12 AdamW with fp32 master) × 6.74e9 ≈ 100 GiB > 80 GiB
    est = estimate_finetune(FinetuneInput(model="llama-2-7b", tokens=1e6, gpu="a100-80gb", method="full", **SMALL))
    assert not est.fits
    assert est.weights_bytes + est.gradients_bytes + est.optimizer_bytes == pytest.approx(16 * 6_738_415_616)


def test_lora_llama2_7b_bf16_fits_a_24gb_card():
    cards = [g for g in gpus().values() if g.memory_gib == 24]
    assert cards, "the catalog needs a 24 GB GPU"
    for card in cards:
        est = estimate_finetune(FinetuneInput(model="llama-2-7b", tokens=1e6, gpu=card.id, method="lora", **SMALL))
        assert est.fits, (card.id, est.to_dict())


def test_checkpointing_shrinks_activations():
    base = FinetuneInput(model="llama-3-8b", tokens=1e6, gpu="h100-sxm", method="lora", seq_len=4096, batch=4)
    off = estimate_finetune(base)
    on = estimate_finetune(replace(base, gradient_checkpointing=True))
    assert on.activations_bytes < off.activations_bytes / 4
    assert on.flops_total == off.flops_total and on.hardware_flops_total > off.hardware_flops_total


# ---- FLOPs, time, cost --------------------------------------------------------------------------------
def test_lora_flops_are_four_n_plus_adapters_and_full_matches_training():
    spec = get_model("llama-2-7b")
    base = FinetuneInput(model=spec, tokens=4e7, epochs=2, gpu="a100-80gb", seq_len=2048, mfu=0.4)
    full = estimate_finetune(replace(base, method="full"))
    train = estimate_training(TrainingInput(model=spec, tokens=8e7, gpu="a100-80gb", seq_len=2048, mfu=0.4))
    assert full.flops_total == pytest.approx(train.flops_total)  # full fine-tuning = training's 6·N + attention
    assert full.gpu_hours == pytest.approx(train.gpu_hours)
    lora = estimate_finetune(replace(base, method="lora", rank=8, target="qv"))
    attn = 3 * spec.attention_flops_forward_per_token(2048)
    # adapters: 4,194,304 weights, 6 FLOPs each per token
    assert lora.flops_per_token == pytest.approx(4 * spec.params_matmul_active + 6 * 4_194_304 + attn)
    # time = FLOPs / (peak · MFU); cost = GPU-hours × price
    assert lora.gpu_hours == pytest.approx(lora.flops_total / (312e12 * 0.4) / 3600)
    assert lora.cost_usd == pytest.approx(lora.gpu_hours * gpus()["a100-80gb"].price_usd_per_hour)
    assert lora.trained_tokens == 8e7


def test_more_gpus_shorten_wall_clock_not_cost():
    base = FinetuneInput(model="llama-3-8b", tokens=4e7, gpu="h100-sxm", method="qlora")
    one, four = estimate_finetune(base), estimate_finetune(replace(base, gpus=4))
    assert four.wall_clock_hours == pytest.approx(one.wall_clock_hours / 4)
    assert four.cost_usd == pytest.approx(one.cost_usd)


# ---- by GPU -------------------------------------------------------------------------------------------
def test_by_gpu_covers_every_catalog_gpu_and_method_at_its_smallest_count():
    inp = FinetuneInput(model="llama-2-70b", tokens=4e7, gpu="l40s", method="qlora", **SMALL)
    table = finetune_by_gpu(inp)
    assert list(table.columns) == FINETUNE_BY_GPU_COLUMNS
    assert len(table) == len(gpus()) * len(METHODS)
    assert set(table["gpu"]) == set(gpus())
    for row in table[table["fits"]].itertuples():
        n = int(row.gpus)
        assert estimate_finetune(replace(inp, method=row.method, gpu=row.gpu, gpus=n, zero=3 if n > 1 else 0)).fits
        if n > 1:  # half as many GPUs would not hold it
            assert not estimate_finetune(replace(inp, method=row.method, gpu=row.gpu, gpus=n // 2,
                                                 zero=3 if n > 2 else 0)).fits
    best = cheapest_fits(table)
    assert set(best["method"]) == set(METHODS)
    for row in best.itertuples():
        assert row.cost_usd == pytest.approx(table[(table["method"] == row.method) & table["fits"]]["cost_usd"].min())
    qlora_l40s = table[(table["method"] == "qlora") & (table["gpu"] == "l40s")].iloc[0]
    assert qlora_l40s["gpus"] == 1


def test_smallest_fit_none_when_nothing_holds_it():
    inp = FinetuneInput(model="llama-3.1-405b", tokens=1e6, gpu="l4", method="full", seq_len=4096, batch=8)
    assert smallest_fit(inp, "l4", limit=4) is None


# ---- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    (dict(rank=0), "rank"), (dict(rank=-4), "rank"), (dict(rank=5000), "width"), (dict(epochs=0), "epochs"),
    (dict(tokens=0), "tokens"), (dict(tokens=1e30), "tokens"), (dict(tokens=float("nan")), "tokens"),
    (dict(target="mlp"), "target"), (dict(method="dora"), "method"), (dict(tp=2), "full fine-tuning only"),
])
def test_bad_input_is_one_line(change, words):
    with pytest.raises(ValidationError, match=words) as exc:
        estimate_finetune(replace(FinetuneInput(model="llama-3-8b", tokens=1e6, gpu="l4"), **change))
    assert "\n" not in str(exc.value)


def test_qv_on_mla_names_no_layer():
    with pytest.raises(ValidationError, match="qv names no layer"):
        estimate_finetune(FinetuneInput(model="deepseek-v3", tokens=1e6, gpu="h200", method="lora", target="qv"))


SETTINGS = dict(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def _check(inp: FinetuneInput) -> None:
    try:
        d = estimate_finetune(inp).to_dict()
    except ValidationError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("ValidationError")
        return
    event("result")
    assert CONTRACT <= set(d)
    for key, value in d.items():
        if isinstance(value, float):
            assert math.isfinite(value), key
            assert value >= 0 or key == "headroom_bytes", key
    # under checkpointing the logits/loss and the recomputed layer are never alive together: the larger counts
    acts, logits = d["activations_bytes"], d["logits_bytes"]
    live = max(acts, logits) if d["gradient_checkpointing"] and inp.pp == 1 else acts + logits
    assert d["total_bytes_per_gpu"] == pytest.approx(live + sum(d[k] for k in (
        "weights_bytes", "adapter_bytes", "gradients_bytes", "optimizer_bytes", "checkpoint_bytes")))
    assert d["trainable_params"] <= d["total_params"]
    assert d["fits"] == (d["headroom_bytes"] >= 0)


@settings(**SETTINGS)
@given(model=st.sampled_from(sorted(models())), method=st.sampled_from(METHODS), target=st.sampled_from(TARGETS),
       rank=st.integers(1, 512), tokens=st.floats(1, 1e12), epochs=st.floats(0.01, 100), gpu=st.sampled_from(list(gpus())),
       n=st.sampled_from([1, 2, 3, 8, 64]), seq=st.one_of(st.none(), st.integers(1, 32_768)), batch=st.integers(1, 16),
       ckpt=st.booleans(), mfu=st.one_of(st.none(), st.floats(0.01, 1.0)), zero=st.integers(0, 3))
def test_property_plausible_inputs(model, method, target, rank, tokens, epochs, gpu, n, seq, batch, ckpt, mfu, zero):
    _check(FinetuneInput(model=model, method=method, target=target, rank=rank, tokens=tokens, epochs=epochs, gpu=gpu,
                         gpus=n, seq_len=seq, batch=batch, gradient_checkpointing=ckpt, mfu=mfu, zero=zero))


@settings(**SETTINGS)
@given(model=st.sampled_from(sorted(models())), method=st.sampled_from(METHODS + ("x",)),
       target=st.sampled_from(TARGETS + ("mlp",)), rank=st.one_of(st.integers(-3, 20000), st.floats()),
       tokens=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)), epochs=st.floats(-1, 2000),
       gpu=st.sampled_from(list(gpus())), n=st.integers(0, 5000), seq=st.one_of(st.none(), st.integers(-1, 10**9)),
       batch=st.integers(-1, 10**6), mfu=st.one_of(st.none(), st.floats()), price=st.one_of(st.none(), st.floats()),
       alpha=st.one_of(st.none(), st.floats()))
def test_property_wild_inputs(model, method, target, rank, tokens, epochs, gpu, n, seq, batch, mfu, price, alpha):
    _check(FinetuneInput(model=model, method=method, target=target, rank=rank, tokens=tokens, epochs=epochs, gpu=gpu,
                         gpus=n, seq_len=seq, batch=batch, mfu=mfu, price_usd_per_hour=price, alpha=alpha))


# ---- CLI ----------------------------------------------------------------------------------------------
def _cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_contract_and_by_gpu(capsys):
    code, out, err = _cli(capsys, "estimate", "finetune", "--model", "llama-3-8b", "--method", "qlora", "--tokens",
                          "40M", "--epochs", "2", "--gpu", "rtx-4090", "--rank", "16", "--target", "all-linear",
                          "--seq-len", "1024", "--batch", "2", "--gradient-checkpointing", "--by-gpu", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert CONTRACT <= set(d)
    assert d["trainable_params"] == 41_943_040 and d["fits"] is True and d["trained_tokens"] == 8e7
    assert len(d["by_gpu"]) == len(gpus()) * 3
    assert {r["method"] for r in d["cheapest"]} == set(METHODS)


@pytest.mark.parametrize("argv, words", [
    (["--rank", "0"], "rank"), (["--rank", "-2"], "rank"), (["--rank", "99999"], "width"), (["--epochs", "0"], "epochs"),
    (["--tokens", "1e30"], "tokens"), (["--tokens", "lots"], "tokens"), (["--target", "everything"], "target"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, words):
    args = {"--tokens": "40M"}
    rest = list(argv)
    if "--tokens" in rest:
        args.pop("--tokens")
    flat = [x for kv in args.items() for x in kv]
    code, out, err = _cli(capsys, "estimate", "finetune", "--model", "llama-3-8b", "--method", "lora", "--gpu", "l4",
                          *flat, *rest, "--json")
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and words in err


def test_cli_tokens_absent_and_qlora_model_file_missing_fields(capsys, tmp_path):
    code, _, err = _cli(capsys, "estimate", "finetune", "--model", "llama-3-8b", "--method", "lora", "--gpu", "l4", "--json")
    assert code == 2 and "--tokens" in err and len(err.strip().splitlines()) == 1
    f = tmp_path / "m.toml"
    f.write_text("n_layers = 2\nd_model = 64\nn_heads = 4\nn_kv_heads = 4\nd_ff = 128\n")  # no vocab_size
    code, out, err = _cli(capsys, "estimate", "finetune", "--model-file", str(f), "--method", "qlora", "--tokens", "1M",
                          "--gpu", "l4", "--json")
    assert code == 2 and not out and "vocab_size" in err and len(err.strip().splitlines()) == 1
    f.write_text(f.read_text() + "vocab_size = 1000\n")
    code, out, err = _cli(capsys, "estimate", "finetune", "--model-file", str(f), "--method", "qlora", "--tokens", "1M",
                          "--gpu", "l4", "--rank", "4", "--json")
    assert code == 0, err
    # 2 layers × (4 attention 4·(64+64) + gate, up 4·(64+128) + down 4·(128+64)) = 2 × (2048 + 2304) = 8,704
    assert json.loads(out)["trainable_params"] == 8_704


def test_measured_mfu_comes_from_the_latest_calibration(monkeypatch):
    import engine.artifacts as artifacts

    monkeypatch.setattr(artifacts, "latest_calibration", lambda: {"mfu": 0.21, "preset": "tiny", "device_name": "H100"})
    base = FinetuneInput(model="llama-3-8b", tokens=4e7, gpu="h100-sxm", method="lora", measured_mfu=True)
    est = estimate_finetune(base)
    assert est.mfu == 0.21 and "measured" in est.mfu_basis
    assert est.gpu_hours == pytest.approx(est.flops_total / (989.4e12 * 0.21) / 3600)
    with pytest.raises(ValidationError, match="not both"):
        estimate_finetune(replace(base, mfu=0.3))
    monkeypatch.setattr(artifacts, "latest_calibration", lambda: None)
    with pytest.raises(ValidationError, match="calibrate"):
        estimate_finetune(base)


def test_data_check_link_prices_a_fine_tune_beside_compute_optimal():
    from engine.datacheck.runner import estimate_for_tokens
    from engine.estimate.finetune_link import finetune_for_tokens

    link = estimate_for_tokens(40e6)
    assert "compute-optimal" in link["sentence"]
    ft = link["finetune"]
    assert ft["model"] == "llama-3-8b" and ft["method"] == "qlora" and ft["gpus"] == 1
    assert ft["sentence"].startswith("Fine-tuning Llama 3 8B with QLoRA on these 40M tokens × 1 epoch takes")
    # the cheapest GPU type that holds it, priced as finetune_by_gpu prices it
    table = finetune_by_gpu(FinetuneInput(model="llama-3-8b", tokens=40e6, gpu="h100-sxm", method="qlora",
                                          gradient_checkpointing=True), methods=("qlora",))
    assert ft["cost_usd"] == pytest.approx(table[table["fits"]]["cost_usd"].min())
    three = finetune_for_tokens(40e6, model="llama-2-70b", method="full", epochs=3)
    assert three["gpus"] > 1 and "× 3 epochs" in three["sentence"] and "in full" in three["sentence"]
    assert finetune_for_tokens(None) is None and finetune_for_tokens(40e6, rank=0) is None


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(sorted(models())), rank=st.integers(1, 64), seq=st.integers(64, 8192),
       batch=st.integers(1, 8), ckpt=st.booleans(), tokens=st.floats(1e3, 1e11))
def test_property_by_gpu_rows_fit_their_capacity(model, rank, seq, batch, ckpt, tokens):
    table = finetune_by_gpu(FinetuneInput(model=model, tokens=tokens, gpu="h100-sxm", rank=rank, seq_len=seq,
                                          batch=batch, gradient_checkpointing=ckpt))
    assert len(table) == len(gpus()) * len(METHODS)
    fit = table[table["fits"]]
    assert (fit["total"] <= fit["memory_gib"] * 2**30).all()
    assert all(int(n) & (int(n) - 1) == 0 for n in fit["gpus"])  # 1, 2, 4, ...
    assert (fit["cost_usd"] > 0).all() and table[~table["fits"]]["cost_usd"].isna().all()


def test_cli_human_output(capsys):
    code, out, err = _cli(capsys, "estimate", "finetune", "--model", "llama-2-7b", "--method", "full", "--tokens", "10M",
                          "--gpu", "a100-80gb", "--gpus", "8", "--zero", "3", "--by-gpu")
    assert code == 0, err
    assert "full fine-tune of llama-2-7b" in out and "fits (data parallel over 8, ZeRO-3)" in out
    assert "cheapest qlora:" in out
