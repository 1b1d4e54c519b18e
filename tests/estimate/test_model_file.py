"""Custom architectures from files (--model-file) and mappings (the pages' editor)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.estimate.models import get_model, load_model_file, model_from_mapping
from engine.cli import main
from engine.errors import ValidationError

LLAMA_32_3B = """
[model]
name = "Llama 3.2 3B shape"
n_layers = 28
d_model = 3072
n_heads = 24
n_kv_heads = 8
d_ff = 8192
vocab_size = 128256
tied_embeddings = true
context = 8192
"""


def test_toml_file_counts_like_the_published_model(tmp_path):
    """Llama 3.2 3B (Meta, 2024; config.json: 28 layers, 3072 wide, 24/8 heads, FFN 8192, tied 128256
    vocabulary) has 3,212,749,824 parameters."""
    path = tmp_path / "ours.toml"
    path.write_text(LLAMA_32_3B)
    spec = load_model_file(path)
    assert spec.params_total == 3_212_749_824
    assert spec.name == "Llama 3.2 3B shape" and spec.id == "custom"


@pytest.mark.parametrize("preset", ["gpt2", "llama-3-8b", "mixtral-8x7b", "deepseek-v3"])
def test_every_preset_round_trips_through_json(tmp_path, preset):
    spec = get_model(preset)
    data = {f.name: getattr(spec, f.name) for f in fields(spec) if f.init}
    path = tmp_path / f"{preset}.json"
    path.write_text(json.dumps(data))
    again = load_model_file(path)
    assert again.params_total == spec.params_total and again.params_active == spec.params_active
    assert again.kv_cache_bytes_per_token(2) == spec.kv_cache_bytes_per_token(2)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.toml", "n_layers = [", "not valid TOML"),
    ("broken.json", "{", "not valid JSON"),
    ("missing.toml", "n_layers = 2\nd_model = 64\n", "missing required field(s) n_heads"),
    ("unknown.toml", "n_layers=2\nd_model=64\nn_heads=4\nn_kv_heads=4\nd_ff=256\nvocab_size=100\nwidth=3\n",
     "unknown field(s) width"),
    ("shape.toml", "n_layers=2\nd_model=64\nn_heads=4\nn_kv_heads=3\nd_ff=256\nvocab_size=100\n", "must divide"),
    ("negative.toml", "n_layers=-2\nd_model=64\nn_heads=4\nn_kv_heads=4\nd_ff=256\nvocab_size=100\n", "n_layers"),
    ("flag.toml", "n_layers=2\nd_model=64\nn_heads=4\nn_kv_heads=4\nd_ff=256\nvocab_size=100\ntied_embeddings=1\n",
     "true or false"),
    ("list.json", "[1, 2]", "table of architecture fields"),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValidationError) as info:
        load_model_file(path)
    text = str(info.value)
    assert message in text and "\n" not in text and name in text


def test_unreadable_binary_and_huge_files(tmp_path):
    with pytest.raises(ValidationError, match="cannot read"):
        load_model_file(tmp_path / "absent.toml")
    binary = tmp_path / "weights.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValidationError, match="not UTF-8"):
        load_model_file(binary)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 1_000_001)
    with pytest.raises(ValidationError, match="limit"):
        load_model_file(huge)


def test_mapping_accepts_a_model_table_or_a_one_element_list():
    fields_ = dict(n_layers=2, d_model=64, n_heads=4, n_kv_heads=4, d_ff=256, vocab_size=100)
    assert model_from_mapping({"model": fields_}).params_total == model_from_mapping(fields_).params_total
    assert model_from_mapping({"model": [fields_]}).params_total == model_from_mapping(fields_).params_total


def test_cli_model_file(tmp_path, capsys):
    path = tmp_path / "ours.toml"
    path.write_text(LLAMA_32_3B)
    assert main(["estimate", "train", "--model-file", str(path), "--tokens", "9T", "--gpu", "h100-sxm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 3_212_749_824 and out["seq_len"] == 8192
    assert main(["estimate", "serve", "--model-file", str(path), "--gpu", "l4", "--prompt-tokens", "100",
                 "--output-tokens", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] is True
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layers = [")
    assert main(["estimate", "memory", "--model-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.toml" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["estimate", "memory", "--model", "gpt2", "--model-file", str(path)])
    assert info.value.code == 2


_FIELD_NAMES = [f.name for f in fields(get_model("gpt2")) if f.init] + ["width", "model", "version"]
_VALUES = (st.integers(-5, 10**6) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
           | st.text(max_size=8) | st.none() | st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELD_NAMES), _VALUES, max_size=12))
def test_any_mapping_gives_a_spec_or_one_validation_error(data):
    try:
        spec = model_from_mapping(data)
    except ValidationError as exc:
        assert "\n" not in str(exc)
        return
    assert spec.params_total > 0 and spec.params_active <= spec.params_total


@pytest.mark.parametrize("line", ["train_tokens = nan", "train_tokens = -1.0", "published_gpu_hours = inf"])
def test_published_figures_in_a_file_are_checked_too(tmp_path, line):
    path = tmp_path / "m.toml"
    path.write_text(f"n_layers=2\nd_model=64\nn_heads=4\nn_kv_heads=4\nd_ff=256\nvocab_size=100\n{line}\n")
    with pytest.raises(ValidationError, match="train_tokens|published_gpu_hours"):
        load_model_file(path)
