"""LoRA of a finished lab run with PEFT: the trainable count equals the estimator's for the same model,
only the adapters move, the checkpoint (safetensors) resumes and generates, bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ValidationError
from engine.estimate.finetune import lora_trainable_params
from engine.lab import checkpoint as ck
from engine.lab.jobs import generate
from engine.lab.model import ModelConfig, Transformer
from engine.lab.presets import PRESETS
from engine.lab.trainer import TrainConfig, train

pytest.importorskip("peft")  # (engine.lab.lora imports it where the adapters are made)

SMALL = dict(preset="tiny", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128, context=32, device="cpu",
             threads=1, sample_tokens=0, eval_batches=2, batch_size=4)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("target", ["qv", "attention", "all-linear"])
def test_peft_count_equals_estimator_for_every_lab_preset(preset, target):
    from engine.lab.lora import inject

    cfg = PRESETS[preset].config(258)
    if cfg.n_layers > 2:
        cfg = PRESETS[preset].config(258, n_layers=2)  # same shapes per layer, fewer layers: fast
    model = inject(Transformer(cfg), 8, None, target)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == lora_trainable_params(cfg.model_spec(), 8, target)


def test_lora_from_a_finished_run_trains_adapters_only_and_stays_loadable(home):
    base = train(TrainConfig(**SMALL, sample="arithmetic", out=str(home / "base"), max_steps=4, eval_every=4))
    lora = train(TrainConfig(**SMALL, out=str(home / "lora"), max_steps=4, eval_every=2, lora_from=base.run_dir,
                             lora_rank=4, lora_target="all-linear"))
    mcfg = ModelConfig.from_dict(json.loads((Path(lora.run_dir) / "config.json").read_text())["model"])
    # 2 layers × (q, o: 4·(64+64) = 512 each; k, v (2 kv heads × 16): 4·(64+32) = 384 each;
    # gate, up: 4·(64+128) = 768 each; down 4·(128+64) = 768) = 2 × (1,792 + 2,304) = 8,192
    assert lora.trainable_params == lora_trainable_params(mcfg.model_spec(), 4, "all-linear") == 8_192
    src = ck.load(base.run_dir, which="best", optimizer=False)
    out = ck.load(lora.run_dir, optimizer=False)
    assert (Path(out.path) / "model.safetensors").is_file()
    # frozen base weights unchanged, adapters present (B starts at zero and has moved)
    assert (out.model["blocks.0.attn.q_proj.base_layer.weight"] == src.model["blocks.0.attn.q_proj.weight"]).all()
    assert out.model["blocks.0.mlp.down.lora_B.default.weight"].abs().sum() > 0
    assert (out.model["tok_emb.weight"] == src.model["tok_emb.weight"]).all()
    resumed = train(TrainConfig(resume=lora.run_dir, max_steps=6, device="cpu", threads=1))
    assert resumed.steps == 6 and resumed.trainable_params == 8_192
    text = generate(lora.run_dir, "1+1=", max_new_tokens=5)
    assert text["new_tokens"] >= 0 and text["step"] == 6


def test_bad_lora_input_is_one_line(home):
    base = train(TrainConfig(**SMALL, sample="arithmetic", out=str(home / "b"), max_steps=2, eval_every=2))
    cases = [(dict(lora_from=base.run_dir, lora_rank=0), "rank"), (dict(lora_from=base.run_dir, lora_rank=65), "width"),
             (dict(lora_from=str(home / "nowhere"), lora_rank=4), "config.json"),
             (dict(lora_rank=4, sample="arithmetic"), "--lora-from")]
    for i, (kw, words) in enumerate(cases):
        with pytest.raises(ValidationError, match=words) as exc:
            train(TrainConfig(**SMALL, out=str(home / f"bad{i}"), max_steps=2, **kw))
        assert "\n" not in str(exc.value)


def test_cli_train_lora_from(home, capsys):
    from engine.cli import main

    base = train(TrainConfig(**SMALL, sample="arithmetic", out=str(home / "src"), max_steps=2, eval_every=2))
    common = ["--max-steps", "2", "--device", "cpu", "--threads", "1", "--json"]
    code = main(["train", "--lora-from", base.run_dir, "--rank", "2", "--target", "qv", "--out", str(home / "ft"),
                 *common])
    out, err = capsys.readouterr()
    assert code == 0, err
    d = json.loads(out)
    spec = ModelConfig.from_dict(json.loads((home / "ft" / "config.json").read_text())["model"]).model_spec()
    assert d["trainable_params"] == lora_trainable_params(spec, 2, "qv")
    try:
        code = main(["train", "--lora-from", base.run_dir, "--rank", "0", "--out", str(home / "ft0"), *common])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "rank" in err


def test_activation_estimate_matches_what_autograd_saves():
    """The estimator's LoRA activations against the bytes autograd actually keeps for backward (a
    saved-tensors hook over one forward of the lab model with PEFT adapters, fp32 on the CPU, weights and
    buffers excluded). MHA, so the lab model's GQA key/value expansion does not enter. The estimator keeps a
    frozen matmul's input only where an adapter needs it (Korthikanti's count plus the r-wide A·x), so
    all-linear and attention are the measurement within 1%; qv measures 0.94 of the estimate here, which
    stays an upper bound. The loss's own
    tensors (logits up-cast, log-probabilities) are counted apart by the stack (engine/estimate/finetune_stacks.py,
    tests/estimate/test_finetune_stacks.py), so they are left out here."""
    import torch

    from engine.estimate.finetune import FinetuneInput, estimate_finetune
    from engine.lab.lora import inject
    from engine.lab.model import lm_loss

    torch.manual_seed(0)
    cfg = PRESETS["tiny"].config(258, n_kv_heads=4, n_layers=2, d_model=128, d_ff=352, context=64)
    b, t, r = 4, 64, 8
    for target in ("all-linear", "attention", "qv"):
        model = inject(Transformer(cfg), r, None, target)
        own = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
        saved: dict = {}

        def pack(x):
            if x.untyped_storage().data_ptr() not in own:
                saved[(x.untyped_storage().data_ptr(), x.storage_offset(), tuple(x.shape))] = x.numel() * x.element_size()
            return x

        tokens = torch.randint(0, 258, (b, t))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            logits = model(tokens)
        lm_loss(logits, tokens)  # the logits and the loss are the stack's own bar (logits_bytes), not activations
        measured = sum(saved.values())
        predicted = estimate_finetune(FinetuneInput(model=cfg.model_spec(), tokens=1e6, gpu="l4", method="lora",
                                                    dtype="fp32", rank=r, target=target, seq_len=t,
                                                    batch=b)).activations_bytes
        if target == "qv":  # k, o and the MLP keep their inputs for no adapter; the estimate stays an upper bound
            assert 0.9 * predicted < measured <= predicted, (target, measured, predicted)
        else:  # measured 1.0008 (all-linear) and 1.0009 (attention) of the estimate here, 2026-12-08
            assert measured == pytest.approx(predicted, rel=0.01), (target, measured, predicted)
