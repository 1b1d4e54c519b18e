"""``--hf-config`` on every estimate subcommand and on ``models``: the same numbers as the catalog model
generated from the same config.json, and one stderr line with exit code 2 for a bad file."""

from __future__ import annotations

import json

import pytest

from engine.catalog import hf_config_rows
from tests.test_cli import cli, cli_json

CONFIG = next(row["config"] for row in hf_config_rows() if row["id"] == "qwen2.5-0.5b")
COMMANDS = {
    "train": ["estimate", "train", "--tokens", "1T", "--gpu", "h100-sxm"],
    "memory": ["estimate", "memory", "--mode", "infer", "--batch", "4", "--seq-len", "4096", "--gpu", "l4"],
    "serve": ["estimate", "serve", "--gpu", "l4", "--prompt-tokens", "512", "--output-tokens", "128"],
    "finetune": ["estimate", "finetune", "--method", "qlora", "--tokens", "5M", "--gpu", "rtx-4090"],
}


@pytest.fixture()
def folder(tmp_path):
    model = tmp_path / "my-qwen"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    return model


@pytest.mark.parametrize("what", sorted(COMMANDS))
def test_every_estimate_subcommand_takes_hf_config(capsys, folder, what):
    imported = cli_json(capsys, *COMMANDS[what], "--hf-config", str(folder))
    preset = cli_json(capsys, *COMMANDS[what], "--model", "qwen2.5-0.5b")
    imported.pop("model", None), preset.pop("model", None)
    assert imported == preset
    file_too = cli_json(capsys, *COMMANDS[what], "--hf-config", str(folder / "config.json"))
    file_too.pop("model", None)
    assert file_too == preset


def test_models_hf_config_prints_counts_and_spec(capsys, folder):
    obj = cli_json(capsys, "models", "--hf-config", str(folder))
    assert obj["params_total"] == obj["params_active"] == 494_032_768
    assert obj["spec"]["tied_embeddings"] is True and obj["spec"]["qkv_bias"] is True
    assert obj["spec"]["id"] == "my-qwen"


@pytest.mark.parametrize(("content", "message"), [
    ('{"model_type": "bert", "hidden_size": 768}', "not a decoder language model"),
    ('{"model_type": "llama",', "not valid JSON"),
    ('{"model_type": "llama", "hidden_size": 64}', "missing num_hidden_layers"),
    (None, "holds no config.json"),
])
def test_bad_hf_config_is_one_line_exit_2(capsys, tmp_path, content, message):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    for argv in (["models"], COMMANDS["serve"], COMMANDS["finetune"]):
        code, out, err = cli(capsys, *argv, "--hf-config", str(tmp_path), "--json")
        assert code == 2 and out == ""
        assert message in err and err.count("\n") == 1


def test_hf_config_and_model_are_exclusive(capsys, folder):
    code, _, err = cli(capsys, *COMMANDS["memory"], "--model", "gpt2", "--hf-config", str(folder))
    assert code == 2 and "not allowed with" in err


def test_model_names_a_saved_workspace_model(capsys):
    from engine.estimate import models as model_specs

    qwen = next(row["config"] for row in hf_config_rows() if row["id"] == "qwen2.5-7b")
    model_specs.save_model("cli-qwen", qwen)
    obj = cli_json(capsys, "estimate", "serve", "--model", "cli-qwen", "--gpu", "h100-sxm",
                   "--prompt-tokens", "100", "--output-tokens", "10")
    assert obj["weights_bytes"] == 7_615_616_512 * 2
