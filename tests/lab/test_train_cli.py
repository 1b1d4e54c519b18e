"""The train/runs/generate/calibrate CLI contract: fixed JSON keys, exit codes 0/1/2, one-line errors."""

from __future__ import annotations

import json

import pytest

from engine.cli import main

SMALL = ["--preset", "tiny", "--n-layers", "2", "--d-model", "64", "--n-heads", "4", "--n-kv-heads", "2",
         "--d-ff", "128", "--context", "32", "--batch-size", "4", "--eval-batches", "2", "--device", "cpu",
         "--threads", "1"]
CONTRACT = ("run_dir", "params", "steps", "train_loss", "val_loss", "tokens_per_s", "checkpoint")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFLIGHT_HOME", str(tmp_path / "home"))
    return tmp_path


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_contract_then_resume_runs_and_generate(home, capsys):
    out_dir = str(home / "r1")
    code, out, err = _run(capsys, ["train", "--sample", "stories", *SMALL, "--max-steps", "4", "--eval-every", "2",
                                   "--out", out_dir, "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert all(k in d for k in CONTRACT) and "val_accuracy" not in d
    assert d["steps"] == 4 and d["run_dir"] == out_dir and d["checkpoint"].endswith("step-000004")
    assert isinstance(d["samples"], list) and len(d["samples"]) == 1

    code, out, err = _run(capsys, ["train", "--resume", out_dir, "--max-steps", "6", "--json"])
    assert code == 0, err
    assert json.loads(out)["steps"] == 6 and json.loads(out)["resumed_from_step"] == 4

    code, out, _ = _run(capsys, ["runs", "--json"])
    runs = json.loads(out)["runs"]
    assert [r["name"] for r in runs] == ["r1"] and runs[0]["status"] == "finished" and runs[0]["steps"] == 6

    code, out, _ = _run(capsys, ["generate", "--run", out_dir, "--prompt", "Once", "--max-new-tokens", "8", "--json"])
    g = json.loads(out)
    assert code == 0 and g["text"].startswith("Once") and g["step"] == 6 and g["new_tokens"] <= 8

    # the same folder again without --resume is refused
    code, out, err = _run(capsys, ["train", "--sample", "stories", *SMALL, "--out", out_dir, "--json"])
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1


def test_classification_contract(home, capsys):
    code, out, err = _run(capsys, ["train", "--sample", "sentiment", "--task", "classify", *SMALL, "--context", "64",
                                   "--max-steps", "2", "--eval-every", "2", "--out", str(home / "c"), "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert all(k in d for k in CONTRACT) and 0 <= d["val_accuracy"] <= 1 and "val_f1" in d


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x00\x01binary\x00" * 100, "binary"),
    (b"too short\n", "context"),
])
def test_bad_data_exits_2_with_one_line(home, capsys, content, message):
    path = home / "data.txt"
    path.write_bytes(content)
    code, out, err = _run(capsys, ["train", "--data", str(path), *SMALL, "--out", str(home / "bad"), "--json"])
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_classify_with_single_valued_or_missing_label_exits_2(home, capsys):
    path = home / "one.csv"
    path.write_text("text,label\n" + "".join(f"row number {i} here,pos\n" for i in range(50)))
    code, _, err = _run(capsys, ["train", "--data", str(path), "--task", "classify", *SMALL, "--out",
                                 str(home / "one"), "--json"])
    assert code == 2 and "single value" in err
    code, _, err = _run(capsys, ["train", "--data", str(path), "--task", "classify", "--label-col", "nope", *SMALL,
                                 "--out", str(home / "two"), "--json"])
    assert code == 2 and "nope" in err


def test_missing_source_and_divergence_exit_codes(home, capsys):
    code, _, err = _run(capsys, ["train", *SMALL, "--out", str(home / "x"), "--json"])
    assert code == 2 and "--data" in err
    code, out, err = _run(capsys, ["train", "--sample", "arithmetic", *SMALL, "--lr", "1e6", "--warmup", "0",
                                   "--max-steps", "40", "--eval-every", "100", "--out", str(home / "div"), "--json"])
    assert code == 1 and "diverged" in err
    partial = json.loads(out)
    assert partial["checkpoint"] is None and partial["run_dir"].endswith("div")
    code, _, err = _run(capsys, ["train", "--sample", "arithmetic", *SMALL, "--preset", "nope", "--out",
                                 str(home / "p"), "--json"])
    assert code == 2 and "unknown lab preset" in err


def test_calibrate_cli_contract(home, capsys):
    code, out, err = _run(capsys, ["calibrate", "--preset", "tiny", "--device", "cpu", "--batch-size", "2",
                                   "--context", "32", "--steps", "2", "--warmup", "1", "--json"])
    assert code == 0, err
    d = json.loads(out)
    for key in ("tokens_per_s", "achieved_tflops", "mfu", "peak_memory_bytes"):
        assert key in d
    assert d["tokens_per_s"] > 0 and d["achieved_tflops"] > 0 and 0 < d["mfu"] < 5
