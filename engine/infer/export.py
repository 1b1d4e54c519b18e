"""Export a lab model, or its attention core, to ONNX: checked, parity-tested, written atomically.

- torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset ≥ 18) with dynamic batch,
  sequence and cache-length axes; the result is checked with ``onnx.checker.check_model(full_check)``.
- Every export is then run in onnxruntime against the PyTorch model on several shapes (and, for a
  language model, one KV-cache decode step): ``parity_max_abs_err`` / ``parity_rel_err`` (max |Δ| over
  max |reference|). A graph that does not match within its precision's tolerance is refused.
- The file is written to a temporary name in the target folder and renamed into place only after it
  passed both checks, so an interrupted export leaves nothing at the target path.
- ``int8``: onnxruntime's dynamic quantization (``quantize_dynamic``, int8 weights, activations
  quantized per batch at run time) of the fp32 graph; for a trained run its accuracy cost is the change
  in validation loss, reported beside the parity figures.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import ValidationError, require_choice, require_number

PARTS = ("model", "attention")
EXPORT_DTYPES = ("fp32", "fp16", "bf16", "int8")
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 18, 23, 18
# Parity limits, relative to the largest reference value: fp32 is the same arithmetic in another order
# (TF32 on GPUs: 1e-3); fp16/bf16 round every activation (2^-11 / 2^-8 ulp); int8 is judged by loss.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 5e-2, "int8": 0.25}
# Bumped when the exported graphs change, so cached ONNX files of older code are not reused.
GRAPH_VERSION = "1"


@dataclass(frozen=True)
class ExportInput:
    run: str | None = None
    preset: str | None = None
    part: str = "model"
    dtype: str = "fp32"
    opset: int = DEFAULT_OPSET
    out: str | None = None
    graph: str = "fused"       # "fused" (onnxruntime contrib ops) | "portable" (standard ops: TensorRT)
    which: str = "latest"


@dataclass(frozen=True)
class ExportResult:
    path: str
    part: str
    dtype: str
    opset: int
    graph: str
    inputs: list[dict]
    outputs: list[dict]
    bytes: int
    sha256: str
    parity_max_abs_err: float | None
    parity_rel_err: float | None
    parity_backend: str
    parity_shapes: list[list[int]]
    source: str
    export_s: float
    val_loss: float | None = None
    val_loss_fp32: float | None = None
    val_loss_change: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _io(model_proto) -> tuple[list[dict], list[dict]]:
    import onnx

    def describe(values):
        rows = []
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            rows.append({"name": v.name, "shape": dims,
                         "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
                         if t.elem_type != onnx.TensorProto.BFLOAT16 else "bfloat16"})
        return rows

    return describe(model_proto.graph.input), describe(model_proto.graph.output)


def past_names(n_layers: int) -> tuple[list[str], list[str]]:
    pasts, presents = [], []
    for i in range(n_layers):
        pasts += [f"past_key_{i}", f"past_value_{i}"]
        presents += [f"present_key_{i}", f"present_value_{i}"]
    return pasts, presents


def _export_module(loaded, part: str, dtype: str, graph: str, opset: int, dest: str) -> None:
    """torch.onnx.export (dynamo) of the decoder or attention core in ``dtype`` to ``dest``."""
    import warnings

    import torch
    from torch.export import Dim

    from engine.infer.graphs import AttentionCore, Decoder

    cfg = loaded.config
    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    model = loaded.model
    if dtype != "fp32":  # a copy in the target precision (norm weights are read back in fp32 by the graph)
        import copy

        model = copy.deepcopy(model).to(tdtype)
    batch = Dim("batch", min=1, max=65536)
    seq = Dim("seq", min=1, max=max(2, cfg.context))
    if part == "attention":
        module = AttentionCore(model, graph, dtype).eval()
        args = (torch.randn(2, min(8, cfg.context), cfg.d_model, dtype=tdtype),)
        dynamic = ({0: batch, 1: seq},)
        in_names, out_names = ["x"], ["y"]
    else:
        module = Decoder(model, graph, dtype).eval()
        t = min(5, cfg.context)
        ids = torch.randint(0, cfg.vocab_size, (2, t))
        if module.lm:
            p = min(3, max(2, cfg.context - t))
            past = tuple(torch.randn(2, cfg.n_kv_heads, p, cfg.head_dim, dtype=tdtype) for _ in range(2 * cfg.n_layers))
            pdim = Dim("past", min=0, max=max(3, cfg.context))
            args = (ids, *past)
            dynamic = ({0: batch, 1: seq}, tuple({0: batch, 2: pdim} for _ in past))
            pasts, presents = past_names(cfg.n_layers)
            in_names, out_names = ["input_ids", *pasts], ["logits", *presents]
        else:
            args = (ids,)
            dynamic = ({0: batch, 1: seq},)
            in_names, out_names = ["input_ids"], ["logits"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            with torch.no_grad():
                program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                                            input_names=in_names, output_names=out_names, verbose=False,
                                            report=False)
        except Exception as exc:  # noqa: BLE001 - exporter errors are long; one line is enough here
            text = str(exc)
            if "Exception summary" in text:  # torch.export's own reason, not its boilerplate
                text = text.split("Exception summary", 1)[1]
            lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
            first = lines[0][:300] if lines else type(exc).__name__
            raise ValidationError(f"ONNX export of this {part} failed: {first}") from None
    program.save(dest, external_data=False)


def _quantize_int8(src: str, dest: str) -> None:
    """onnxruntime's dynamic int8 quantization of the MatMul/Gemm weights (per-channel int8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dest, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])


def default_path(loaded, part: str, dtype: str, graph: str, opset: int) -> Path:
    """Where exports of a model live: ``<run>/onnx/`` for a run, ``$PREFLIGHT_HOME/onnx/<preset>/`` for a preset."""
    from engine import workspace

    if loaded.checkpoint:
        folder = Path(loaded.source) / "onnx"
        stem = f"{part}-{dtype}-{graph}-op{opset}-step{loaded.step}"
    else:
        import hashlib

        folder = workspace.home() / "onnx" / loaded.source.split(":", 1)[-1]
        weights = hashlib.sha1(f"{loaded.key}|{loaded.config.to_dict()}".encode()).hexdigest()[:10]
        stem = f"{part}-{dtype}-{graph}-op{opset}-{weights}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}-g{GRAPH_VERSION}.onnx"


def parity(loaded, path: str, part: str, dtype: str) -> tuple[float, float, str, list[list[int]]]:
    """Run the ONNX file in onnxruntime (CPU) against the PyTorch fp32 model: (max |Δ|, max |Δ| / max
    |ref|, backend, shapes). Shapes: a few batch × sequence sizes, plus a cached decode step for an LM."""
    import numpy as np
    import torch

    from engine.infer.capabilities import ort_cpu_session
    from engine.infer.graphs import attention_reference

    from engine.infer.capabilities import backend_info, ort_session

    cfg = loaded.config
    where = "onnxruntime-cuda" if backend_info("onnxruntime-cuda").available else "onnxruntime"
    sess = ort_session(path, where, dtype) if where != "onnxruntime" else ort_cpu_session(path, dtype)
    if dtype == "bf16":
        import ml_dtypes

        np_dtype = ml_dtypes.bfloat16
    else:
        np_dtype = {"fp16": np.float16}.get(dtype, np.float32)
    gen = torch.Generator().manual_seed(1234)
    ctx = cfg.context
    shapes = sorted({(1, min(1, ctx)), (2, min(7, ctx)), (3, min(33, ctx)), (1, ctx)})
    worst_abs, worst_ref = 0.0, 0.0
    model = loaded.model
    for b, t in shapes:
        with torch.no_grad():
            if part == "attention":
                x = torch.randn(b, t, cfg.d_model, generator=gen)
                ref = attention_reference(model, x).numpy()
                got = sess.run(None, {"x": x.numpy().astype(np_dtype)})[0]
            else:
                ids = torch.randint(0, cfg.vocab_size, (b, t), generator=gen)
                ref = model(ids).numpy()
                got = sess.run(["logits"], _feed(cfg, ids.numpy(), np_dtype, lm=not cfg.n_classes))[0]
        worst_abs = max(worst_abs, float(np.abs(got.astype(np.float32) - ref).max()))
        worst_ref = max(worst_ref, float(np.abs(ref).max()))
    if part == "model" and not cfg.n_classes and ctx >= 3:  # a cached decode step: prefill t-1, then 1 token
        t = min(9, ctx)
        ids = torch.randint(0, cfg.vocab_size, (2, t), generator=gen)
        outs = sess.run(None, _feed(cfg, ids[:, :-1].numpy(), np_dtype, lm=True))
        pasts, _ = past_names(cfg.n_layers)
        feed = {"input_ids": ids[:, -1:].numpy(), **dict(zip(pasts, outs[1:], strict=True))}
        got = sess.run(["logits"], feed)[0][:, -1]
        with torch.no_grad():
            ref = model(ids)[:, -1].numpy()
        worst_abs = max(worst_abs, float(np.abs(got.astype(np.float32) - ref).max()))
        worst_ref = max(worst_ref, float(np.abs(ref).max()))
        shapes = [*shapes, (2, t)]
    return worst_abs, worst_abs / max(worst_ref, 1e-12), where, [list(s) for s in shapes]


def _feed(cfg, ids, np_dtype, lm: bool) -> dict:
    import numpy as np

    feed = {"input_ids": ids.astype(np.int64)}
    if lm:
        pasts, _ = past_names(cfg.n_layers)
        empty = np.zeros((ids.shape[0], cfg.n_kv_heads, 0, cfg.head_dim), dtype=np_dtype)
        feed.update({n: empty for n in pasts})
    return feed


def export(inp: ExportInput, loaded=None) -> ExportResult:
    """Export, check, parity-test and atomically write one graph. ``loaded`` (engine.infer.loading.Loaded)
    skips loading the run again."""
    import time

    import onnx

    from engine.infer.graphs import GRAPHS
    from engine.infer.loading import file_sha256, load
    from engine.requires import require_package, require_torch

    require_torch("export")
    require_package("onnx", "onnx", "export")
    require_package("onnxscript", "onnxscript", "export (torch's dynamo ONNX exporter)")
    part = require_choice("part", inp.part, PARTS)
    dtype = require_choice("dtype", inp.dtype, EXPORT_DTYPES)
    graph = require_choice("graph", inp.graph, GRAPHS)
    opset = int(require_number("opset", inp.opset, low=MIN_OPSET, high=MAX_OPSET, integer=True))
    if dtype == "int8" and part != "model":
        raise ValidationError("int8 quantization applies to the whole model (--part model), not the attention core")
    if dtype == "bf16":
        from engine.infer.capabilities import backend_info

        if not backend_info("onnxruntime-cuda").available:
            raise ValidationError("bf16 ONNX graphs cannot be parity-checked here: onnxruntime on CPU has no bf16 "
                                  "kernels and onnxruntime-cuda is not available; export fp32 or fp16 (bf16 runs on "
                                  "the torch backend)")
    loaded = loaded or load(inp.run, inp.preset, inp.which)
    if part == "model" and loaded.config.n_classes and dtype == "int8":
        pass  # a classifier quantizes like an LM; its accuracy cost is judged on logits below
    target = Path(inp.out) if inp.out else default_path(loaded, part, dtype, graph, opset)
    if target.exists() and target.is_dir():
        raise ValidationError(f"--out {target} is a folder; give a file name ending in .onnx")
    if not target.parent.is_dir():
        raise ValidationError(f"--out folder {target.parent} does not exist")
    t0 = time.perf_counter()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_fp32 = None
    notes: list[str] = []
    try:
        if dtype == "int8":
            fd, tmp_fp32 = tempfile.mkstemp(prefix=f".{target.name}.fp32.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            _export_module(loaded, part, "fp32", graph, opset, tmp_fp32)
            _quantize_int8(tmp_fp32, tmp)
        else:
            _export_module(loaded, part, dtype, graph, opset, tmp)
        try:
            onnx.checker.check_model(tmp, full_check=graph == "portable")  # contrib ops have no ONNX schema
        except Exception as exc:  # noqa: BLE001 - onnx.checker.ValidationError and shape-inference errors
            raise ValidationError(f"the exported graph fails onnx.checker: {str(exc).splitlines()[0][:300]}") from None
        max_abs, rel, backend, shapes = parity(loaded, tmp, part, dtype)
        if not rel <= TOLERANCE[dtype]:
            raise ValidationError(f"the exported {dtype} graph does not match PyTorch: relative error {rel:.3g} "
                                  f"> {TOLERANCE[dtype]:g}")
        val = val32 = change = None
        if dtype == "int8":
            val, val32, note = int8_accuracy(loaded, tmp, tmp_fp32)
            change = None if val is None or val32 is None else (val - val32) / val32
            notes.append(note)
        proto = onnx.load(tmp, load_external_data=False)
        inputs, outputs = _io(proto)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        for p in (tmp, tmp_fp32):
            if p:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        raise
    if tmp_fp32:
        try:
            os.unlink(tmp_fp32)
        except OSError:
            pass
    return ExportResult(
        path=str(target), part=part, dtype=dtype, opset=opset, graph=graph, inputs=inputs, outputs=outputs,
        bytes=target.stat().st_size, sha256=file_sha256(target), parity_max_abs_err=max_abs, parity_rel_err=rel,
        parity_backend=backend, parity_shapes=shapes, source=loaded.source, export_s=time.perf_counter() - t0,
        val_loss=val, val_loss_fp32=val32, val_loss_change=change, notes=notes,
    )


def ensure_onnx(loaded, part: str = "model", dtype: str = "fp32", graph: str = "fused", opset: int = DEFAULT_OPSET) -> Path:
    """The exported file for this model, part, precision and graph, exported (and checked) on first use."""
    path = default_path(loaded, part, dtype, graph, opset)
    if not path.is_file():
        export(ExportInput(part=part, dtype=dtype, opset=opset, out=str(path), graph=graph), loaded=loaded)
    return path


def validation_tokens(loaded, max_tokens: int = 16384):
    """Validation token ids of a trained run (its own data split), or None for a preset or unreadable data."""
    import json

    from engine.lab.data import DataInput, load_dataset

    if not loaded.checkpoint:
        return None
    try:
        doc = json.loads((Path(loaded.source) / "config.json").read_text(encoding="utf-8"))
        t = doc["train"]
        inp = DataInput(path=t.get("data"), sample=t.get("sample"), task=t.get("task", "lm"), text_col=t.get("text_col"),
                        label_col=t.get("label_col"), tokenizer=t.get("tokenizer", "byte"),
                        bpe_vocab=t.get("bpe_vocab", 4096), val_fraction=t.get("val_fraction", 0.1), seed=t.get("seed", 0))
        ds = load_dataset(inp, loaded.config.context, loaded.tokenizer)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if ds.task != "lm":
        return None
    return ds.val_ids[:max_tokens] if hasattr(ds, "val_ids") else None


def lm_loss_onnx(sess, cfg, tokens, np_dtype) -> float:
    """Mean next-token cross-entropy (nats) of an ONNX LM over ``tokens`` in context-long windows."""
    import numpy as np

    ctx = cfg.context
    n = (len(tokens) - 1) // ctx
    if n < 1:
        raise ValidationError("too few validation tokens for one window")
    x = np.asarray(tokens[: n * ctx], dtype=np.int64).reshape(n, ctx)
    y = np.asarray(tokens[1: n * ctx + 1], dtype=np.int64).reshape(n, ctx)
    total = 0.0
    for i in range(0, n, 8):
        logits = sess.run(["logits"], _feed(cfg, x[i:i + 8], np_dtype, lm=True))[0].astype(np.float64)
        m = logits.max(axis=-1, keepdims=True)
        logz = np.log(np.exp(logits - m).sum(axis=-1)) + m[..., 0]
        picked = np.take_along_axis(logits, y[i:i + 8][..., None], axis=-1)[..., 0]
        total += float((logz - picked).sum())
    return total / (n * ctx)


def int8_accuracy(loaded, int8_path: str, fp32_path: str) -> tuple[float | None, float | None, str]:
    """Validation loss of the int8 and fp32 graphs on the run's validation split (None for a preset)."""
    import numpy as np

    from engine.infer.capabilities import ort_cpu_session

    cfg = loaded.config
    if cfg.n_classes:
        return None, None, "classifier: int8 accuracy cost shown by parity_rel_err on the class logits"
    tokens = validation_tokens(loaded)
    if tokens is None or len(tokens) <= cfg.context:
        return None, None, "no validation split to measure the int8 loss change on (a preset or unreadable data)"
    l8 = lm_loss_onnx(ort_cpu_session(int8_path, "int8"), cfg, tokens, np.float32)
    l32 = lm_loss_onnx(ort_cpu_session(fp32_path, "fp32"), cfg, tokens, np.float32)
    return l8, l32, f"validation loss over {min(len(tokens), 16384):,} tokens of the run's validation split"
