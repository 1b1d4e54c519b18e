"""Property-based tests: over thousands of generated inputs, the estimators either return finite,
non-negative numbers or raise the one error type, ValidationError, with a one-line message."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from engine.catalog import GPUSpec, gpus
from engine.estimate.models import models
from engine.errors import ValidationError
from engine.estimate.architecture import ModelSpec
from engine.estimate.memory import MemoryInput, estimate_memory, inference_activation_bytes
from engine.estimate.scaling import OptimalInput, estimate_optimal, predicted_loss
from engine.estimate.serving import ServeInput, estimate_serving
from engine.estimate.training import TrainingInput, estimate_training

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
MODEL_IDS = sorted(models())
GPU_IDS = list(gpus())
SIGNED = {"headroom_bytes"}  # the one field that may be negative: memory short of the GPU's capacity


def check_result(result, nullable=()) -> dict:
    """Every number finite and non-negative (headroom may be negative); None only where documented."""
    d = result.to_dict()
    for key, value in d.items():
        if value is None:
            assert key in nullable, f"{key} is None"
            continue
        if isinstance(value, (bool, str)):
            continue
        assert isinstance(value, (int, float)), (key, value)
        assert math.isfinite(value), (key, value)
        if key not in SIGNED:
            assert value >= 0, (key, value)
    return d


def check_error(exc: ValidationError) -> None:
    message = str(exc)
    assert message and "\n" not in message and len(message) < 400, message


def run(fn, *args, nullable=()):
    """Call an estimator: a result must be clean, an error must be a one-line ValidationError."""
    try:
        result = fn(*args)
    except ValidationError as exc:
        check_error(exc)
        event(f"{fn.__name__}: ValidationError")
        return None
    event(f"{fn.__name__}: result")
    return check_result(result, nullable)


# ---- strategies ---------------------------------------------------------------------------------

JUNK = st.sampled_from([
    0, -1, -1e9, float("nan"), float("inf"), float("-inf"), 1e40, 10**400, "abc", "", "1e", None, [1], {},
    (2,), object(), True, False, complex(1, 1), -0.0, 5e-324,
])
TINY = 5e-324  # the smallest positive float: rates this small must not overflow the results


def good(low, high, integer=False):
    """In-range values, the bounds and the extremes (subnormal rates, 1e17 tokens) included."""
    if integer:
        return st.integers(int(low), int(high))
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def anything(low, high, integer=False):
    """Sometimes in range, sometimes junk of any type."""
    return st.one_of(good(low, high, integer), JUNK, st.floats(), st.integers(-10**30, 10**30))


def optional(strategy):
    return st.one_of(st.none(), strategy)


def known(ids_):
    """A valid id, in any case and with stray spaces (lookups are case-insensitive)."""
    return st.sampled_from(ids_).flatmap(lambda x: st.sampled_from([x, x.upper(), f" {x} "]))


def ids(ids_):
    return st.one_of(known(ids_), st.text(max_size=12), JUNK)


@st.composite
def valid_specs(draw, max_layers=64):
    """Architectures that should construct: MHA/GQA/MQA, MLA, dense or MoE, any norm/FFN/position."""
    n_heads = draw(st.sampled_from([1, 2, 4, 8, 12, 16, 32, 64, 128]))
    head_dim = draw(st.sampled_from([8, 32, 64, 128, 256]))
    explicit_head_dim = draw(st.booleans())
    d_model = draw(st.integers(1, 20_000)) if explicit_head_dim else n_heads * head_dim
    n_kv_heads = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32, 64, 128) if n_heads % k == 0]))
    n_layers = draw(st.integers(1, max_layers))
    kw = dict(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
        head_dim=head_dim if explicit_head_dim else 0, d_ff=draw(st.integers(1, 100_000)),
        vocab_size=draw(st.integers(1, 300_000)), ffn=draw(st.sampled_from(["gelu", "swiglu"])),
        tied_embeddings=draw(st.booleans()), position=draw(st.sampled_from(["learned", "rope"])),
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])), bias=draw(st.booleans()),
        dropout=draw(st.booleans()), context=draw(st.integers(1, 200_000)),
        sliding_window=draw(st.sampled_from([0, 0, 1, 256, 4096])),
    )
    if draw(st.booleans()):
        n_experts = draw(st.integers(1, 256))
        kw.update(n_experts=n_experts, top_k=draw(st.integers(1, n_experts)),
                  n_shared_experts=draw(st.integers(0, 2)), d_ff_expert=draw(st.integers(1, 20_000)),
                  first_dense_layers=draw(st.integers(0, n_layers)))
    if draw(st.integers(0, 3)) == 0:
        kw.update(q_lora_rank=draw(st.sampled_from([0, 64, 1536])), kv_lora_rank=draw(st.sampled_from([16, 512])),
                  qk_nope_head_dim=draw(st.sampled_from([16, 128])), qk_rope_head_dim=draw(st.sampled_from([8, 64])),
                  v_head_dim=draw(st.sampled_from([16, 128])))
    return ModelSpec(**kw)


@st.composite
def huge_specs(draw):
    """Valid architectures at the top of the allowed ranges (1e7-wide layers): nothing may overflow."""
    big = 10_000_000
    return ModelSpec(
        n_layers=draw(st.sampled_from([1, 2, 100])), d_model=big, n_heads=draw(st.sampled_from([1, 100, big])),
        n_kv_heads=1, d_ff=big, vocab_size=big, context=big, head_dim=draw(st.sampled_from([0, big])),
        position=draw(st.sampled_from(["learned", "rope"])), dropout=True,
    )


SPECS = st.one_of(valid_specs(), huge_specs())
MODELS = st.one_of(known(MODEL_IDS), SPECS)
MEMORY_NULLABLE = ("gpu", "gpu_memory_bytes", "fits", "headroom_bytes")
OPTIMAL_NULLABLE = ("gpu", "gpu_hours", "cost_usd")


# ---- random architectures ---------------------------------------------------------------------

@settings(max_examples=200, **SETTINGS)
@given(valid_specs(max_layers=200))
def test_valid_specs_have_consistent_counts(spec):
    assert isinstance(spec.params_total, int)
    assert spec.params_total >= spec.params_active > 0
    assert spec.params_total > spec.params_embedding + spec.params_head
    for seq in (1, 4096):
        flops = spec.training_flops_per_token(seq)
        assert math.isfinite(flops) and flops >= 6 * spec.params_matmul_active
    assert spec.kv_cache_bytes_per_token(2) > 0
    if not spec.is_moe:
        assert spec.params_active == spec.params_total
    assert spec.summary()["params_total"] == spec.params_total


FIELD_VALUES = {
    "n_layers": anything(1, 200, True), "d_model": anything(1, 5000, True), "n_heads": anything(1, 64, True),
    "n_kv_heads": anything(1, 64, True), "d_ff": anything(1, 20_000, True), "vocab_size": anything(1, 100_000, True),
    "head_dim": anything(0, 256, True), "ffn": ids(["gelu", "swiglu"]),
    "position": ids(["learned", "rope"]), "norm": ids(["layernorm", "rmsnorm"]), "context": anything(1, 10**5, True),
    "sliding_window": anything(0, 10**4, True), "n_experts": anything(0, 64, True), "top_k": anything(0, 8, True),
    "n_shared_experts": anything(0, 2, True), "d_ff_expert": anything(0, 1000, True),
    "first_dense_layers": anything(0, 10, True), "kv_lora_rank": anything(0, 64, True),
    "qk_nope_head_dim": anything(0, 64, True), "qk_rope_head_dim": anything(0, 64, True),
    "v_head_dim": anything(0, 64, True), "q_lora_rank": anything(0, 64, True),
}


@settings(max_examples=500, **SETTINGS)
@given(st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_arbitrary_specs_construct_or_raise_validation_error(overrides):
    kw = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=128, vocab_size=100)
    kw.update(overrides)
    try:
        spec = ModelSpec(**kw)
    except ValidationError as exc:
        check_error(exc)
        event("ModelSpec: ValidationError")
        return
    event("ModelSpec: built")
    # whatever was accepted is usable: all counts are numbers and the estimators run on it
    assert spec.params_total > 0 and isinstance(spec.n_layers, int) and isinstance(spec.head_dim, int)
    run(estimate_memory, MemoryInput(model=spec, mode="infer", seq_len=64), nullable=MEMORY_NULLABLE)
    run(estimate_training, TrainingInput(model=spec, tokens=1e9, gpu="h100-sxm"))


# ---- estimators over valid (often extreme) inputs: results finite and non-negative ----------------

@st.composite
def training_inputs(draw):
    gpu = draw(known(GPU_IDS))
    precision = draw(st.sampled_from(["bf16", "fp8", "fp32"]))
    kw = dict(tokens=draw(good(1, 1e17)), gpu=gpu, gpus=draw(good(1, 1e7, True)), precision=precision,
              recompute=draw(known(["none", "selective", "full"])))
    if draw(st.booleans()):
        kw["model"] = draw(MODELS)
        kw["seq_len"] = draw(optional(good(1, 1e8, True)))
    else:
        kw["params"] = draw(good(1, 1e15))
    peak = gpus()[gpu.strip().lower()].peak_flops(precision) / 1e12
    rate = draw(st.sampled_from(["default", "mfu", "achieved_tflops", "gpu_hours"]))
    if rate == "mfu":
        kw["mfu"] = draw(good(TINY, 1))
    elif rate == "achieved_tflops":
        kw["achieved_tflops"] = draw(good(TINY, peak or 1.0))  # peak 0: no published rate (Ascend fp32), refused
    elif rate == "gpu_hours":
        kw["gpu_hours"] = draw(good(TINY, 1e12))
    kw.update(price_usd_per_hour=draw(optional(good(0, 1e4))), pue=draw(optional(good(1, 5))),
              grid_kg_per_kwh=draw(optional(good(0, 5))))
    return TrainingInput(**kw)


@settings(max_examples=700, **SETTINGS)
@given(training_inputs())
def test_training_properties(inp):
    d = run(estimate_training, inp)
    if d is not None:
        assert d["hardware_flops_total"] >= d["flops_total"] > 0
        assert d["gpu_hours"] > 0 and d["hfu"] >= d["mfu"] >= 0
        assert d["cost_usd"] == pytest.approx(d["gpu_hours"] * d["price_usd_per_hour"])


def tensor_parallel(spec: ModelSpec):
    """Valid tensor-parallel degrees: the divisors of n_heads (Megatron splits attention by heads)."""
    return st.sampled_from([d for d in range(1, min(spec.n_heads, 1024) + 1) if spec.n_heads % d == 0])


@st.composite
def memory_inputs(draw):
    model = draw(MODELS)
    spec = model if isinstance(model, ModelSpec) else models()[model.strip().lower()]
    mode = draw(st.sampled_from(["train", "infer"]))
    dtypes = ["fp32", "bf16", "fp16", "fp8"] + (["int8", "int4"] if mode == "infer" else [])
    return MemoryInput(
        model=model, mode=mode, batch=draw(good(1, 1e6, True)), seq_len=draw(optional(good(1, 1e8, True))),
        dtype=draw(st.sampled_from(dtypes)), kv_dtype=draw(optional(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8"]))),
        dp=draw(good(1, 1e6, True)), zero=draw(good(0, 3, True)), tp=draw(tensor_parallel(spec)),
        pp=draw(good(1, min(spec.n_layers, 16), True)), recompute=draw(known(["none", "selective", "full"])),
        sequence_parallel=draw(st.booleans()), optimizer=draw(known(["adamw", "adamw-8bit", "sgd"])),
        microbatches=draw(optional(good(1, 1e6, True))), gpu=draw(optional(known(GPU_IDS))),
        overhead_gib=draw(optional(good(0, 1e4))), attention=draw(known(["flash", "eager"])),
        prefill_chunk_tokens=draw(optional(good(1, 1e8, True))),
    )


@settings(max_examples=600, **SETTINGS)
@given(memory_inputs())
def test_memory_properties(inp):
    d = run(estimate_memory, inp, nullable=MEMORY_NULLABLE)
    assert d is not None, "a valid memory input was rejected"
    parts = sum(d[k] for k in ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "kv_cache_bytes"))
    assert d["total_bytes_per_gpu"] == pytest.approx(parts)
    assert (d["gpu"] is None) == (d["fits"] is None) == (d["headroom_bytes"] is None)
    if d["fits"] is not None:
        assert d["fits"] == (d["headroom_bytes"] >= 0)
    if d["mode"] == "infer":
        assert d["gradients_bytes"] == d["optimizer_bytes"] == 0
    else:
        assert d["kv_cache_bytes"] == 0 and d["optimizer_bytes"] > 0
    if d["gpu"] is not None:
        assert d["gpu_memory_bytes"] == gpus()[d["gpu"]].memory_gib * 2**30


@settings(max_examples=300, **SETTINGS)
@given(valid_specs(), st.integers(1, 16), st.sampled_from([1, 64, 4096]), st.data())
def test_flash_minus_eager_is_lse_minus_scores(spec, b, s, data):
    """Flash attention replaces eager's a·s·span score bytes by 4·a·s·b of log-sum-exp: it keeps less
    unless the span is tiny (span·(2 or 5 bytes) < 4 bytes), and under flash selective recompute
    changes nothing."""
    from engine.estimate.memory import activation_bytes_per_layer

    tp = data.draw(tensor_parallel(spec))
    sp = data.draw(st.booleans())
    moe = spec.is_moe and data.draw(st.booleans())
    kw = dict(b=b, s=s, tp=tp, sp=sp, moe=moe)
    flash = activation_bytes_per_layer(spec, attention="flash", **kw)
    eager = activation_bytes_per_layer(spec, attention="eager", **kw)
    assert flash == activation_bytes_per_layer(spec, attention="flash", recompute="selective", **kw)
    span = spec.cached_positions(s)
    per_score = 5.0 if spec.dropout else 2.0
    lse_minus_scores = spec.n_heads * s * b * (4.0 - span * per_score) / tp
    assert flash - eager == pytest.approx(lse_minus_scores, rel=1e-9, abs=1e-6 * max(flash, eager))
    assert (activation_bytes_per_layer(spec, attention="flash", recompute="full", **kw)
            == activation_bytes_per_layer(spec, attention="eager", recompute="full", **kw))


@st.composite
def serve_inputs(draw):
    model = draw(MODELS)
    spec = model if isinstance(model, ModelSpec) else models()[model.strip().lower()]
    return ServeInput(
        model=model, gpu=draw(known(GPU_IDS)), gpus=draw(tensor_parallel(spec)),
        dtype=draw(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8", "int4"])),
        kv_dtype=draw(optional(st.sampled_from(["fp32", "bf16", "fp16", "fp8", "int8"]))),
        prompt_tokens=draw(good(1, 1e7, True)), output_tokens=draw(good(1, 1e7, True)),
        concurrency=draw(optional(good(1, 1e6, True))), requests_per_s=draw(good(TINY, 1e9)),
        price_usd_per_hour=draw(optional(good(0, 1e4))), prefill_efficiency=draw(optional(good(TINY, 1))),
        decode_efficiency=draw(optional(good(TINY, 1))), overhead_gib=draw(optional(good(0, 1e4))),
        max_batch=draw(optional(good(1, 1e6, True))), prefill_chunk_tokens=draw(optional(good(1, 1e8, True))),
        layer_overhead_us=draw(optional(good(0, 1e6))), allreduce_us=draw(optional(good(0, 1e6))),
    )


@settings(max_examples=600, **SETTINGS)
@given(serve_inputs())
def test_serving_properties(inp):
    d = run(estimate_serving, inp)
    if d is not None:
        assert d["gpus_needed"] >= d["gpus"] >= 1 and d["replicas"] >= 1
        assert d["fits"] == (d["max_concurrency"] >= 1)
        if inp.concurrency is None:  # the default: what both the memory and the scheduler allow
            assert d["concurrency"] == max(1, min(d["max_concurrency"], d["max_batch_sequences"]))
        assert d["decode_tokens_per_s"] == pytest.approx(d["concurrency"] * d["decode_tokens_per_s_per_sequence"])
        assert d["min_gpus_to_fit"] >= 1
        assert d["prefill_seconds"] > 0 and d["time_per_output_token_s"] > 0


def _fits_on(spec, gpu, n, kw) -> bool:
    return estimate_serving(ServeInput(model=spec, gpu=gpu, gpus=n, **kw)).fits


@settings(max_examples=150, **SETTINGS)
@given(valid_specs(), known(GPU_IDS), st.sampled_from(["bf16", "fp8", "int4"]),
       st.integers(1, 200_000), st.integers(1, 20_000))
def test_min_gpus_to_fit_is_the_smallest_fitting_divisor(spec, gpu, dtype, prompt, output):
    """min_gpus_to_fit is the smallest divisor of n_heads whose tensor-parallel group fits (checked by
    estimating that group); when no divisor fits, a full tensor-parallel group of n_heads ranks times
    k >= 2 pipeline stages, k the fewest whose stages split the weights and one sequence's KV enough."""
    kw = dict(dtype=dtype, prompt_tokens=prompt, output_tokens=output, concurrency=1)
    try:
        est = estimate_serving(ServeInput(model=spec, gpu=gpu, **kw))
    except ValidationError as exc:
        check_error(exc)
        return
    need = est.min_gpus_to_fit
    divisors = [d for d in range(1, spec.n_heads + 1) if spec.n_heads % d == 0]
    fitting = [d for d in divisors if _fits_on(spec, gpu, d, kw)]
    if fitting:
        event("a tensor-parallel group fits")
        assert need == fitting[0]
        assert est.fits == (need == 1)
    else:
        event("no tensor-parallel group fits")
        g = gpus()[gpu.strip().lower()]
        h = spec.n_heads
        usable = g.memory_bytes - 2**30
        reserve = inference_activation_bytes(spec, 8192, 256, h, 4.0 if dtype == "fp32" else 2.0)
        per_group = est.weights_bytes / h + est.kv_cache_bytes_per_sequence * spec.kv_fraction_per_rank(h)
        room = usable - reserve
        stages = max(2, math.ceil(per_group / room)) if room > 0 else 2**31
        assert need == min(h * stages, 2**31)
        assert need > h and need % h == 0 or need == 2**31


@st.composite
def optimal_inputs(draw):
    fit = draw(known(["besiroglu2024", "hoffmann2022"]))
    mfu, price = draw(optional(good(TINY, 1))), draw(optional(good(0, 1e4)))
    if draw(st.booleans()):
        return OptimalInput(flops=draw(good(1e6, 1e32)), gpu=draw(optional(known(GPU_IDS))), mfu=mfu,
                            price_usd_per_hour=price, fit=fit)
    return OptimalInput(budget_usd=draw(good(TINY, 1e13)), gpu=draw(known(GPU_IDS)), mfu=mfu,
                        price_usd_per_hour=price, fit=fit)


@settings(max_examples=600, **SETTINGS)
@given(optimal_inputs())
def test_optimal_properties(inp):
    d = run(estimate_optimal, inp, nullable=OPTIMAL_NULLABLE)
    if d is not None:
        assert d["params"] * d["tokens"] * 6 == pytest.approx(d["flops"], rel=1e-9)
        assert d["predicted_loss"] > 1.0
        assert (d["gpu"] is None) == (d["gpu_hours"] is None) == (d["cost_usd"] is None)
        if inp.budget_usd is not None:
            assert d["cost_usd"] == pytest.approx(inp.budget_usd, rel=1e-9)


@settings(max_examples=200, **SETTINGS)
@given(anything(1, 1e16), anything(1, 1e17), ids(["besiroglu2024", "hoffmann2022"]))
def test_predicted_loss_properties(n, d, fit):
    try:
        loss = predicted_loss(n, d, fit)
    except ValidationError as exc:
        check_error(exc)
        return
    assert math.isfinite(loss) and loss > 1.0


# ---- any input at all: a result or a ValidationError, nothing else --------------------------------

mixed_training = st.builds(
    TrainingInput,
    tokens=anything(1, 1e17), gpu=ids(GPU_IDS), gpus=anything(1, 1e7, True),
    model=st.one_of(st.none(), ids(MODEL_IDS), SPECS), params=optional(anything(1, 1e15)),
    seq_len=optional(anything(1, 1e8, True)), mfu=optional(anything(TINY, 1)),
    achieved_tflops=optional(anything(TINY, 2000)), gpu_hours=optional(anything(TINY, 1e12)),
    price_usd_per_hour=optional(anything(0, 1e4)), precision=ids(["bf16", "fp8", "fp32"]),
    recompute=ids(["none", "selective", "full"]), pue=optional(anything(1, 5)), grid_kg_per_kwh=optional(anything(0, 5)),
)
mixed_memory = st.builds(
    MemoryInput,
    model=st.one_of(ids(MODEL_IDS), SPECS), mode=ids(["train", "infer"]), batch=anything(1, 64, True),
    seq_len=optional(anything(1, 1e5, True)), dtype=ids(["fp32", "bf16", "fp16", "fp8", "int8", "int4"]),
    kv_dtype=optional(ids(["fp32", "bf16", "fp8", "int8"])), dp=anything(1, 1024, True), zero=anything(0, 3, True),
    tp=anything(1, 16, True), pp=anything(1, 8, True), recompute=ids(["none", "selective", "full"]),
    sequence_parallel=st.booleans(), optimizer=ids(["adamw", "adamw-8bit", "sgd"]),
    microbatches=optional(anything(1, 64, True)), gpu=optional(ids(GPU_IDS)), overhead_gib=optional(anything(0, 100)),
    attention=ids(["flash", "eager"]), prefill_chunk_tokens=optional(anything(1, 1e5, True)),
)
mixed_serving = st.builds(
    ServeInput,
    model=st.one_of(ids(MODEL_IDS), SPECS), gpu=ids(GPU_IDS), gpus=anything(1, 64, True),
    dtype=ids(["fp32", "bf16", "fp16", "fp8", "int8", "int4"]), kv_dtype=optional(ids(["fp32", "bf16", "fp8", "int8"])),
    prompt_tokens=anything(1, 1e6, True), output_tokens=anything(1, 1e5, True),
    concurrency=optional(anything(1, 4096, True)), requests_per_s=anything(TINY, 1e9),
    price_usd_per_hour=optional(anything(0, 1e4)), prefill_efficiency=optional(anything(TINY, 1)),
    decode_efficiency=optional(anything(TINY, 1)), overhead_gib=optional(anything(0, 100)),
    max_batch=optional(anything(1, 1024, True)), prefill_chunk_tokens=optional(anything(1, 1e5, True)),
    layer_overhead_us=optional(anything(0, 1000)), allreduce_us=optional(anything(0, 1000)),
)
mixed_optimal = st.builds(
    OptimalInput,
    flops=optional(anything(1e6, 1e32)), budget_usd=optional(anything(TINY, 1e13)), gpu=optional(ids(GPU_IDS)),
    mfu=optional(anything(TINY, 1)), price_usd_per_hour=optional(anything(0, 1e4)),
    fit=ids(["besiroglu2024", "hoffmann2022"]),
)
MIXED = {
    "train": (estimate_training, mixed_training, ()),
    "memory": (estimate_memory, mixed_memory, MEMORY_NULLABLE),
    "serve": (estimate_serving, mixed_serving, ()),
    "optimal": (estimate_optimal, mixed_optimal, OPTIMAL_NULLABLE),
}


@pytest.mark.parametrize("which", list(MIXED))
@settings(max_examples=250, **SETTINGS)
@given(data=st.data())
def test_any_input_gives_result_or_validation_error(which, data):
    fn, strategy, nullable = MIXED[which]
    run(fn, data.draw(strategy), nullable=nullable)


# ---- custom GPUs ----------------------------------------------------------------------------------

GPU_FIELDS = dict(
    bf16_tflops=(TINY, 1e6), fp8_tflops=(0, 1e6), fp32_tflops=(0, 1e6), memory_gib=(TINY, 1e6),
    bandwidth_gbs=(TINY, 1e7), tdp_w=(0, 1e5), price_usd_per_hour=(0, 1e4), typical_mfu=(TINY, 1),
    typical_mfu_fp8=(0, 1),
)
valid_gpus = st.builds(GPUSpec, id=st.just("custom"), name=st.just("Custom"), vendor=st.just("x"),
                       **{k: good(lo, hi) for k, (lo, hi) in GPU_FIELDS.items()})


@settings(max_examples=200, **SETTINGS)
@given(valid_gpus, st.sampled_from(MODEL_IDS), st.sampled_from(["fp32", "bf16", "fp8", "int4"]))
def test_custom_gpus(gpu, model, dtype):
    """A GPU described by hand (a page's "custom GPU"), however extreme, gives clean numbers or a
    ValidationError."""
    run(estimate_training, TrainingInput(model=model, tokens=1e12, gpu=gpu, precision=dtype if dtype != "int4" else "bf16"))
    run(estimate_serving, ServeInput(model=model, gpu=gpu, dtype=dtype))
    run(estimate_memory, MemoryInput(model=model, mode="infer", gpu=gpu, dtype=dtype), nullable=MEMORY_NULLABLE)
    run(estimate_optimal, OptimalInput(budget_usd=1e6, gpu=gpu), nullable=OPTIMAL_NULLABLE)
    run(estimate_optimal, OptimalInput(flops=1e24, gpu=gpu), nullable=OPTIMAL_NULLABLE)


@settings(max_examples=200, **SETTINGS)
@given(st.sampled_from(sorted(GPU_FIELDS)), st.data())
def test_bad_custom_gpu_fields(field, data):
    lo, hi = GPU_FIELDS[field]
    value = data.draw(bad_values(zero_ok=lo == 0))
    kw = {k: 1.0 for k in GPU_FIELDS}
    kw[field] = value
    with pytest.raises(ValidationError) as info:
        GPUSpec(id="custom", name="Custom", vendor="x", **kw)
    check_error(info.value)
    assert field in str(info.value)


# ---- each bad value on its own raises ValidationError naming the field -----------------------------

NEGATIVE = st.one_of(st.floats(max_value=-1e-300, allow_nan=False), st.integers(max_value=-1))
NOT_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), 10**400])
WRONG_TYPE = st.sampled_from(["abc", "", "1e", "12 parsecs", [1], {}, (2,), object(), True, complex(1, 1)])
HUGE = st.floats(min_value=1e40, allow_infinity=False)


def bad_values(zero_ok=False, integer=False, huge_ok=False):
    parts = [NEGATIVE, NOT_FINITE, WRONG_TYPE]
    if not zero_ok:
        parts.append(st.sampled_from([0, 0.0, -0.0]))
    if integer:
        parts.append(st.sampled_from([0.5, 1.5, 2.25, 1e-9 + 3]))
    if not huge_ok:
        parts.append(HUGE)
    return st.one_of(*parts)


# field -> (name the message must mention, zero allowed, integer)
TRAIN_FIELDS = {
    "tokens": ("tokens", False, False), "gpus": ("gpus", False, True), "seq_len": ("seq-len", False, True),
    "mfu": ("mfu", False, False), "achieved_tflops": ("achieved-tflops", False, False),
    "gpu_hours": ("gpu-hours", False, False), "price_usd_per_hour": ("price", True, False),
    "pue": ("pue", False, False), "grid_kg_per_kwh": ("grid", True, False),
}
MEMORY_FIELDS = {
    "batch": ("batch", False, True), "seq_len": ("seq-len", False, True), "dp": ("dp", False, True),
    "zero": ("zero", True, True), "tp": ("tp", False, True), "pp": ("pp", False, True),
    "microbatches": ("microbatches", False, True), "overhead_gib": ("overhead-gib", True, False),
    "prefill_chunk_tokens": ("prefill-chunk-tokens", False, True),
}
SERVE_FIELDS = {
    "gpus": ("gpus", False, True), "prompt_tokens": ("prompt-tokens", False, True),
    "output_tokens": ("output-tokens", False, True), "concurrency": ("concurrency", False, True),
    "requests_per_s": ("requests-per-s", False, False), "price_usd_per_hour": ("price", True, False),
    "prefill_efficiency": ("prefill-efficiency", False, False), "decode_efficiency": ("decode-efficiency", False, False),
    "overhead_gib": ("overhead-gib", True, False), "max_batch": ("max-num-seqs", False, True),
    "prefill_chunk_tokens": ("prefill-chunk-tokens", False, True),
    "layer_overhead_us": ("layer-overhead-us", True, False), "allreduce_us": ("allreduce-us", True, False),
}
OPTIMAL_FIELDS = {"flops": ("flops", False, False), "mfu": ("mfu", False, False), "price_usd_per_hour": ("price", True, False)}
CHOICE_FIELDS = {
    "train": {"gpu": ("gpu", GPU_IDS), "model": ("model", MODEL_IDS), "precision": ("precision", ["bf16", "fp8", "fp32"]),
              "recompute": ("recompute", ["none", "selective", "full"])},
    "memory": {"model": ("model", MODEL_IDS), "mode": ("mode", ["train", "infer"]), "dtype": ("dtype", ["bf16"]),
               "kv_dtype": ("kv-dtype", ["bf16"]), "recompute": ("recompute", ["none"]), "optimizer": ("optimizer", ["adamw"]),
               "gpu": ("gpu", GPU_IDS), "attention": ("attention", ["flash"])},
    "serve": {"model": ("model", MODEL_IDS), "gpu": ("gpu", GPU_IDS), "dtype": ("dtype", ["bf16"]), "kv_dtype": ("kv-dtype", ["bf16"])},
    "optimal": {"gpu": ("gpu", GPU_IDS), "fit": ("fit", ["besiroglu2024", "hoffmann2022"])},
}
KNOWN_WORDS = {x.lower() for x in MODEL_IDS + GPU_IDS} | {
    "bf16", "fp16", "fp32", "fp8", "int8", "int4", "none", "selective", "full", "train", "infer", "adamw",
    "adamw-8bit", "sgd", "besiroglu2024", "hoffmann2022", "flash", "eager",
}

CASES = {
    "train": (estimate_training, TrainingInput, dict(model="llama-2-7b", tokens=1e12, gpu="h100-sxm"), TRAIN_FIELDS),
    "memory": (estimate_memory, MemoryInput, dict(model="llama-2-7b", microbatches=1), MEMORY_FIELDS),
    "serve": (estimate_serving, ServeInput, dict(model="llama-3-8b", gpu="h100-sxm", concurrency=4), SERVE_FIELDS),
    "optimal": (estimate_optimal, OptimalInput, dict(flops=1e23, gpu="h100-sxm"), OPTIMAL_FIELDS),
}


@pytest.mark.parametrize("which", list(CASES))
@settings(max_examples=300, **SETTINGS)
@given(data=st.data())
def test_each_bad_number_raises(which, data):
    fn, cls, base, fields = CASES[which]
    field = data.draw(st.sampled_from(sorted(fields)))
    name, zero_ok, integer = fields[field]
    value = data.draw(bad_values(zero_ok=zero_ok, integer=integer), label=field)
    kw = dict(base, **{field: value})
    with pytest.raises(ValidationError) as info:
        fn(cls(**kw))
    check_error(info.value)
    assert name in str(info.value)


@pytest.mark.parametrize("which", list(CASES))
@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_each_unknown_id_raises(which, data):
    fn, cls, base, _ = CASES[which]
    field = data.draw(st.sampled_from(sorted(CHOICE_FIELDS[which])))
    name, _allowed = CHOICE_FIELDS[which][field]
    value = data.draw(st.one_of(st.text(max_size=20), st.sampled_from([0, 1.5, [], object(), b"bf16"])), label=field)
    assume(not (isinstance(value, str) and value.strip().lower() in KNOWN_WORDS))
    with pytest.raises(ValidationError) as info:
        fn(cls(**dict(base, **{field: value})))
    check_error(info.value)
    assert name in str(info.value)
