"""Generation and classification: streaming, the lab's old behaviour on the torch backend, every bad input,
and the CLI contract (one JSON object, exit 2 with one line for bad input)."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.errors import ValidationError
from engine.infer import backends as bk
from engine.infer.capabilities import BACKENDS, backend_info
from engine.infer.capabilities import list_backends
from engine.infer.generate import Stream, classify, encode_prompt, generate


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_stream_yields_growing_text_and_timings(lm):
    s = Stream(lm, bk.make_runner(lm, "torch"), "Once", max_new_tokens=12, temperature=0.8, seed=1)
    pieces = list(s)
    r = s.result()
    assert "".join(pieces) == r.completion and len(pieces) >= 2
    assert r.new_tokens == 12 and r.time_to_first_token_s > 0 and r.tokens_per_s > 0 and r.text == "Once" + r.completion


def test_torch_backend_keeps_the_labs_generate(lm_run, lm):
    from engine.lab.jobs import generate as lab_generate

    old = lab_generate(str(lm_run), "Once", max_new_tokens=15, temperature=0.8, top_k=40, seed=7)
    new = generate(str(lm_run), "Once", backend="torch", max_new_tokens=15, temperature=0.8, top_k=40, seed=7)
    assert new.text == old["text"]


def test_same_tokens_on_every_backend_when_sampling(lm):
    names = [b.name for b in list_backends() if b.available and b.name != "torch-compile"]
    runs = {n: Stream(lm, bk.make_runner(lm, n), "Once", max_new_tokens=10, temperature=0.7, seed=3).result().tokens
            for n in names}
    assert len(set(map(tuple, runs.values()))) == 1, runs


@pytest.mark.parametrize("prompt, msg", [("", "empty"), ("Once \u00a7\u2603", "never saw")])
def test_bad_prompts(lm, prompt, msg):
    with pytest.raises(ValidationError, match=msg):
        encode_prompt(lm, prompt)


def test_long_prompt_keeps_the_last_tokens_and_says_so(lm):
    text = "the cat sat on the mat. " * 10
    ids, notes = encode_prompt(lm, text)
    assert len(ids) == lm.config.context - 1 and "kept the last" in notes[0]
    assert ids == lm.tokenizer.encode(text)[-(lm.config.context - 1):]
    r = Stream(lm, bk.make_runner(lm, "torch"), text, max_new_tokens=3).result()
    assert r.notes and r.prompt_tokens == lm.config.context - 1


@pytest.mark.parametrize("kw, msg", [
    (dict(max_new_tokens=10**9), "max-new-tokens"), (dict(max_new_tokens=0), "max-new-tokens"),
    (dict(temperature=1e6), "temperature"), (dict(temperature=-1), "temperature"),
])
def test_absurd_sampling_arguments(lm_run, kw, msg):
    with pytest.raises(ValidationError, match=msg):
        generate(str(lm_run), "Once", **kw)


def test_classifier_gives_label_and_probabilities(cls):
    r = classify(cls, bk.make_runner(cls, "onnxruntime"), "what a lovely film")
    assert r.label in r.probabilities and abs(sum(r.probabilities.values()) - 1) < 1e-6
    assert set(r.probabilities) == set(cls.labels)
    with pytest.raises(ValidationError, match="empty"):
        classify(cls, bk.make_runner(cls, "torch"), "   ")


def test_cli_generate_classify_backends(capsys, lm_run, cls_run):
    code, out, err = _run(capsys, ["generate", "--run", str(lm_run), "--prompt", "Once", "--backend", "onnxruntime",
                                   "--max-new-tokens", "6", "--json"])
    assert code == 0, err
    d = json.loads(out)
    for k in ("text", "tokens", "backend", "time_to_first_token_s", "tokens_per_s"):
        assert k in d
    assert d["backend"] == "onnxruntime" and len(d["tokens"]) == 6
    code, out, err = _run(capsys, ["classify", "--run", str(cls_run), "--text", "great fun", "--json"])
    assert code == 0, err
    assert set(json.loads(out)) >= {"label", "probabilities"}
    code, out, _ = _run(capsys, ["backends", "--json"])
    rows = json.loads(out)["backends"]
    assert {r["name"] for r in rows} == set(BACKENDS)
    assert all(set(r) >= {"name", "available", "reason", "device", "version"} for r in rows)


@pytest.mark.parametrize("argv, msg", [
    (["generate", "--prompt", "", "--json"], "empty"),
    (["generate", "--prompt", "Once", "--backend", "tensorrt", "--json"], "not available"),
    (["generate", "--prompt", "Once", "--backend", "onnxruntime", "--dtype", "bf16", "--json"], "fp32, fp16, int8"),
    (["generate", "--prompt", "Once", "--temperature", "1e9", "--json"], "temperature"),
    (["classify", "--text", "hello", "--json"], "classifier run"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, lm_run, argv, msg):
    argv = argv[:1] + ["--run", str(lm_run)] + argv[1:]
    if "tensorrt" in argv and backend_info("tensorrt").available:
        pytest.skip("tensorrt is available here")
    code, out, err = _run(capsys, argv)
    assert code == 2 and out == "" and msg in err and len(err.strip().splitlines()) == 1, err


def test_cli_run_without_checkpoint(capsys, tmp_path):
    (tmp_path / "new").mkdir()
    code, out, err = _run(capsys, ["generate", "--run", str(tmp_path / "new"), "--prompt", "x", "--json"])
    assert code == 2 and "no checkpoint" in err


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all", None])
def test_bench_refuses_corrupt_or_truncated_onnx(capsys, tmp_path, lm, content):
    from engine.infer.export import ensure_onnx

    path = tmp_path / "bad.onnx"
    if content is None:  # a real export cut in half
        data = ensure_onnx(lm).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    code, out, err = _run(capsys, ["bench", "--onnx", str(path), "--backends", "onnxruntime", "--json"])
    assert code == 2 and out == "" and "not a valid ONNX file" in err and len(err.strip().splitlines()) == 1, err


def test_cli_export_json(capsys, lm_run, tmp_path):
    code, out, err = _run(capsys, ["export", "--run", str(lm_run), "--part", "attention", "--out",
                                   str(tmp_path / "a.onnx"), "--json"])
    assert code == 0, err
    d = json.loads(out)
    for k in ("path", "part", "dtype", "opset", "inputs", "outputs", "bytes", "sha256", "parity_max_abs_err",
              "parity_rel_err"):
        assert k in d


@pytest.mark.parametrize("argv, msg", [
    (["calibrate", "--json"], "--preset"),
    (["calibrate", "--serve", "--json"], "exactly one of --run DIR or --preset NAME"),
])
def test_calibrate_serve_arguments(capsys, argv, msg):
    code, out, err = _run(capsys, argv)
    assert code == 2 and out == "" and msg in err and len(err.strip().splitlines()) == 1, err
