"""Export: fields, onnx.checker, parity against PyTorch at several shapes, precisions, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ValidationError
from engine.infer import export as ex
from engine.infer.loading import file_sha256


def test_model_export_fields_and_parity(lm):
    out = ex.default_path(lm, "model", "fp32", "fused", 18)  # the file the onnxruntime backend tests reuse
    r = ex.export(ex.ExportInput(out=str(out)), loaded=lm)
    assert r.path == str(out) and out.is_file() and r.bytes == out.stat().st_size and r.sha256 == file_sha256(out)
    assert r.part == "model" and r.dtype == "fp32" and r.opset == 18
    names = [i["name"] for i in r.inputs]
    assert names[0] == "input_ids" and "past_key_0" in names and "present_value_1" in [o["name"] for o in r.outputs]
    assert r.inputs[0]["shape"] == ["batch", "seq"]  # dynamic batch and sequence axes
    assert r.parity_rel_err <= 1e-5 and r.parity_max_abs_err < 1e-4
    assert len(r.parity_shapes) >= 4 and {s[0] for s in r.parity_shapes} >= {1, 2, 3}


def test_attention_core_export_parity(lm, tmp_path):
    r = ex.export(ex.ExportInput(part="attention", out=str(tmp_path / "a.onnx")), loaded=lm)
    assert r.inputs[0]["name"] == "x" and r.inputs[0]["shape"][:2] == ["batch", "seq"]
    assert r.parity_rel_err <= 1e-5


def test_portable_graph_uses_standard_ops_only(lm, tmp_path):
    import onnx

    r = ex.export(ex.ExportInput(graph="portable", out=str(tmp_path / "p.onnx")), loaded=lm)
    domains = {n.domain for n in onnx.load(r.path).graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # TensorRT's parser takes these
    assert r.parity_rel_err <= 1e-5


def test_fp16_keeps_norms_and_softmax_in_fp32_and_matches(lm, tmp_path):
    import onnx

    r = ex.export(ex.ExportInput(dtype="fp16", graph="portable", out=str(tmp_path / "h.onnx")), loaded=lm)
    assert any(i["dtype"] == "float16" for i in r.inputs)
    assert r.parity_rel_err <= 1e-2
    g = onnx.load(r.path).graph
    softmax_inputs = {n.input[0] for n in g.node if n.op_type == "Softmax"}
    casts_to_fp32 = {n.output[0] for n in g.node if n.op_type == "Cast"
                     and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in n.attribute)}
    assert softmax_inputs and r.dtype == "fp16"
    # the softmax reads fp32 values (a Cast to float upstream: the scores are computed from fp32 casts)
    assert casts_to_fp32


def test_int8_reports_validation_loss_change(lm, tmp_path):
    r = ex.export(ex.ExportInput(dtype="int8", out=str(tmp_path / "q.onnx")), loaded=lm)
    assert r.val_loss is not None and r.val_loss_fp32 is not None
    assert r.val_loss_change == pytest.approx((r.val_loss - r.val_loss_fp32) / r.val_loss_fp32)
    assert abs(r.val_loss_change) < 0.05


def test_interrupted_export_leaves_nothing_at_the_target(lm, tmp_path, monkeypatch):
    target = tmp_path / "never.onnx"

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "parity", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ex.export(ex.ExportInput(part="attention", out=str(target)), loaded=lm)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw, msg", [
    (dict(dtype="bf16"), "bf16"),
    (dict(opset=12), "opset"),
    (dict(part="attention", dtype="int8"), "whole model"),
    (dict(part="head"), "part"),
])
def test_bad_export_arguments(lm, kw, msg):
    with pytest.raises(ValidationError, match=msg):
        ex.export(ex.ExportInput(**kw), loaded=lm)


def test_run_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no checkpoint"):
        ex.export(ex.ExportInput(run=str(tmp_path / "empty")))


def test_decode_step_graph_reuses_the_cache(lm):
    """The exported decoder continues from its own present tensors: cached logits == full forward."""
    import torch

    from engine.infer.capabilities import ort_cpu_session

    sess = ort_cpu_session(str(ex.ensure_onnx(lm)))
    cfg = lm.config
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 12))
    pasts, _ = ex.past_names(cfg.n_layers)
    empty = np.zeros((2, cfg.n_kv_heads, 0, cfg.head_dim), np.float32)
    outs = sess.run(None, {"input_ids": ids[:, :8], **{n: empty for n in pasts}})
    for t in range(8, 12):
        outs = sess.run(None, {"input_ids": ids[:, t:t + 1], **dict(zip(pasts, outs[1:], strict=True))})
    assert outs[1].shape == (2, cfg.n_kv_heads, 12, cfg.head_dim)
    with torch.no_grad():
        ref = lm.model(torch.from_numpy(ids))[:, -1].numpy()
    assert np.abs(outs[0][:, -1] - ref).max() / np.abs(ref).max() <= 1e-5
