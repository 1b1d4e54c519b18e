"""The lab's Transformer: exact parameter and FLOP agreement with the estimator, the KV cache,
classification pooling, learning, and export-friendliness (tracing)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from engine.errors import ValidationError
from engine.lab.model import ModelConfig, Transformer, configure_optimizer, lm_loss
from engine.lab.presets import PRESETS, get_preset

VOCABS = (258, 65, 50304)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("vocab", VOCABS)
def test_estimator_counts_every_preset_exactly(preset, vocab):
    cfg = PRESETS[preset].config(vocab)
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = Transformer(cfg)
    assert model.num_params() == cfg.model_spec().params_total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", [
    dict(ffn="gelu", position="learned", norm="layernorm", bias=True),
    dict(ffn="swiglu", position="rope", norm="rmsnorm", bias=True, n_kv_heads=1),
    dict(ffn="gelu", position="rope", norm="layernorm", bias=False, n_kv_heads=2),
])
def test_estimator_counts_variants_and_classifier_head(variant):
    cfg = get_preset("tiny").config(300, **variant)
    assert Transformer(cfg).num_params() == cfg.model_spec().params_total
    classifier = get_preset("tiny").config(300, n_classes=5, **variant)
    assert Transformer(classifier).num_params() == classifier.expected_params() == (
        cfg.model_spec().params_total + 128 * 5 + 5)


@pytest.mark.parametrize("preset", ["tiny", "shakespeare-char"])
def test_estimator_training_flops_match_counted_flops(preset):
    """6N + 12LHQT (PaLM App. B) equals what torch's FLOP counter sees in forward + backward, with
    attention computed by the math kernel (the fused CPU kernel is invisible to the counter)."""
    cfg = PRESETS[preset].config(258)
    model = Transformer(cfg)
    b, t = 2, cfg.context
    x = torch.randint(0, 258, (b, t + 1))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
    assert counter.get_total_flops() == pytest.approx(cfg.model_spec().training_flops_per_token(t) * b * t, rel=1e-9)


@pytest.mark.parametrize("variant", [{}, dict(position="learned", norm="layernorm", ffn="gelu", bias=True, n_kv_heads=4)])
def test_kv_cache_decoding_equals_full_forward(variant):
    torch.manual_seed(0)
    model = Transformer(get_preset("tiny").config(258, **variant)).eval()
    x = torch.randint(0, 258, (3, 24))
    full = model(x)
    logits, past = model.decode_step(x[:, :9], None, 0)
    torch.testing.assert_close(logits, full[:, 8], atol=1e-5, rtol=1e-5)
    for t in range(9, 24):
        logits, past = model.decode_step(x[:, t:t + 1], past, t)
        torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_argmax_of_full_forward_and_runs_past_the_context():
    torch.manual_seed(1)
    model = Transformer(get_preset("tiny").config(258, context=16)).eval()
    prompt = torch.randint(0, 258, (2, 5))
    out = model.generate(prompt, 6, temperature=0)
    seq = prompt
    for _ in range(6):  # the same tokens, one full forward per token, no cache
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    long = model.generate(prompt, 40, temperature=0.9, top_k=10, generator=torch.Generator().manual_seed(0))
    assert long.shape == (2, 45) and int(long.max()) < 258


def test_causality_future_tokens_do_not_change_past_logits():
    torch.manual_seed(2)
    model = Transformer(get_preset("tiny").config(258)).eval()
    x = torch.randint(0, 258, (1, 30))
    y = x.clone()
    y[0, 20:] = (y[0, 20:] + 7) % 258
    torch.testing.assert_close(model(x)[:, :20], model(y)[:, :20])


def test_classifier_pools_only_real_tokens():
    torch.manual_seed(3)
    model = Transformer(get_preset("tiny").config(258, n_classes=3)).eval()
    x = torch.randint(0, 256, (1, 7))
    padded = torch.cat([x, torch.full((1, 5), 257)], dim=1)
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, :7] = True
    torch.testing.assert_close(model(padded, mask), model(x), atol=1e-5, rtol=1e-5)
    assert model(padded, mask).shape == (1, 3)


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = Transformer(get_preset("tiny").config(258))
    opt = configure_optimizer(model, lr=3e-3, weight_decay=0.0)
    x = torch.randint(0, 258, (8, 65))
    first = None
    for _ in range(80):
        loss = lm_loss(model(x[:, :-1]), x[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 5.0 and loss.item() < 0.1


def test_forward_exports_as_one_graph():
    """torch.export (what ONNX export builds on) captures forward as one graph with no graph break,
    and the graph replays the model on a different input."""
    torch.manual_seed(4)
    model = Transformer(get_preset("tiny").config(258)).eval()
    a, b = torch.randint(0, 258, (2, 32)), torch.randint(0, 258, (2, 32))
    exported = torch.export.export(model, (a,))
    torch.testing.assert_close(exported.module()(b), model(b))


def test_weight_decay_only_on_matrices():
    model = Transformer(get_preset("tiny").config(258, bias=True))
    decay, no_decay = configure_optimizer(model, lr=1e-3).param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("bad, match", [
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(d_model=130), "divisible"),
    (dict(n_classes=1), "n_classes"),
    (dict(dropout=1.0), "dropout"),
    (dict(ffn="relu"), "ffn"),
    (dict(context=0), "context"),
])
def test_bad_configs_are_one_line_validation_errors(bad, match):
    with pytest.raises(ValidationError, match=match):
        get_preset("tiny").config(258, **bad)


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = get_preset("small").config(258, n_classes=4)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValidationError, match="unknown model config field"):
        ModelConfig.from_dict({**cfg.to_dict(), "evil": 1})
    with pytest.raises(ValidationError, match="unknown lab preset"):
        get_preset("gpt5")


def test_presets_carry_source_and_date():
    for preset in PRESETS.values():
        assert preset.source and preset.date
    assert (PRESETS["shakespeare-char"].n_layers, PRESETS["shakespeare-char"].n_heads,
            PRESETS["shakespeare-char"].d_model, PRESETS["shakespeare-char"].context) == (6, 6, 384, 256)
    assert (PRESETS["gpt2-small"].n_layers, PRESETS["gpt2-small"].d_model, PRESETS["gpt2-small"].context) == (12, 768, 1024)


def test_rmsnorm_training_path_matches_torchs_and_keeps_only_its_input():
    """The lab's RMSNorm (a Function that saves x and 1/rms for backward) gives nn.RMSNorm's values and
    gradients, and keeps no normalized copy of x (Korthikanti et al. 2022 count a norm's input only)."""
    from engine.lab.model import RMSNorm, _RMSNormFunction

    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _RMSNormFunction.apply(a, b, 1e-6), (x, w))
    ours, ref = RMSNorm(16, eps=1e-6), torch.nn.RMSNorm(16, eps=1e-6)
    ref.load_state_dict(ours.state_dict())
    xs = torch.randn(4, 7, 16, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = ours(xs)
    assert sum(t.numel() for t in saved if t.data_ptr() != ours.weight.data_ptr()) == xs.numel() + 4 * 7
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, xs, g)
    (rx,) = torch.autograd.grad(ref(xs), xs, g)
    torch.testing.assert_close(y, ref(xs))
    torch.testing.assert_close(gx, rx)
    with torch.no_grad():  # inference and export take nn.RMSNorm's own path
        torch.testing.assert_close(ours(xs), ref(xs))


def test_dropout_keeps_a_one_byte_mask_and_grouped_kv_is_not_repeated():
    from engine.lab.model import Dropout

    x = torch.randn(64, 32, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = Dropout(0.5)(x)
    assert [t.dtype for t in saved] == [torch.bool]
    assert 0.3 < (y == 0).float().mean() < 0.7 and torch.equal(Dropout(0.5).eval()(x), x)
    cfg = get_preset("tiny").config(258)  # 4 query heads share 2 KV heads
    model = Transformer(cfg)
    shapes: list[tuple] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
        model(torch.randint(0, 258, (2, 16)))
    head = cfg.d_model // cfg.n_heads
    assert (2, cfg.n_kv_heads, 16, head) in shapes and (2, cfg.n_heads, 16, head) in shapes  # q whole, k/v grouped
    # per layer, query-head-sized: q and the attention output only (repeated K and V would add two)
    assert shapes.count((2, cfg.n_heads, 16, head)) == 2 * cfg.n_layers
