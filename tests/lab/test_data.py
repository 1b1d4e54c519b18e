"""Model-lab data: formats, column inference, bad input, reproducible splits and deterministic batches."""

from __future__ import annotations

import gzip
import json
import os
import time

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import workspace
from engine.errors import ValidationError
from engine.lab.data import DataInput, load_dataset
from engine.lab.sources import list_uploads, resolve_path
from engine.lab.tokenizer import build_tokenizer

WORDS = "the cat sat on a mat while a dog ran to the park and back again".split()


def _prose(n_lines: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "\n".join(" ".join(rng.choice(WORDS, size=8)) for _ in range(n_lines)) + "\n"


def _reviews(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    labels = ["pos", "neg", "neu"] * (n // 3)
    texts = [f"{lab} review {' '.join(rng.choice(WORDS, size=int(rng.integers(1, 12))))}" for lab in labels]
    return pd.DataFrame({"id": range(n), "review": texts, "note": ["x"] * n, "label": labels})


def _write(path, text: str, gz: bool = False):
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="module")
def arith():
    return load_dataset(DataInput(sample="arithmetic"), context=32)


@pytest.fixture(scope="module")
def senti():
    return load_dataset(DataInput(sample="sentiment", task="classify"), context=48)


# --- DataInput ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({}, "give --data PATH or --sample NAME"),
    ({"path": "a.txt", "sample": "stories"}, "give --data PATH or --sample NAME"),
    ({"sample": "poems"}, "unknown sample 'poems'"),
    ({"sample": "stories", "task": "regress"}, "unknown task 'regress'"),
    ({"sample": "stories", "tokenizer": "wordpiece"}, "unknown tokenizer"),
    ({"sample": "stories", "val_fraction": 0}, "val_fraction"),
    ({"sample": "stories", "val_fraction": 0.9}, "val_fraction"),
    ({"sample": "stories", "seed": -1}, "seed"),
    ({"sample": "stories", "bpe_vocab": 100}, "bpe_vocab"),
    ({"sample": "stories", "max_bytes": 0}, "max_bytes"),
    ({"sample": "arithmetic", "task": "classify"}, "sample 'arithmetic' has no labels.*sentiment"),
])
def test_data_input_checks(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        DataInput(**kwargs)


def test_data_input_normalises_and_serialises():
    inp = DataInput(sample="Stories", task="LM", tokenizer="BPE")
    assert (inp.sample, inp.task, inp.tokenizer) == ("stories", "lm", "bpe")
    assert json.loads(json.dumps(inp.to_dict()))["sample"] == "stories"


# --- formats --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, gz", [("c.txt", False), ("c.md", False), ("c.txt.gz", True)])
def test_plain_text(tmp_path, name, gz):
    text = _prose(200)
    path = _write(tmp_path / name, text, gz)
    ds = load_dataset(DataInput(path=str(path)), context=16)
    stream = np.concatenate([ds.train_ids, ds.val_ids])
    eos = ds.tokenizer.eos_id
    assert ds.tokenizer.decode(stream) == text  # every byte is there, in order
    assert (stream == eos).sum() == 2  # one document, cut into train and validation, each ends with <eos>
    assert ds.train_ids.dtype == np.uint16
    assert ds.describe()["source"]["format"] == ("txt.gz" if gz else name.split(".")[-1])


@pytest.mark.parametrize("fmt", ["jsonl", "json", "json-strings", "csv", "tsv", "parquet", "csv.gz", "jsonl.gz"])
def test_tables_lm_pick_longest_text_column(tmp_path, fmt):
    df = _reviews()
    if fmt == "json-strings":
        path = tmp_path / "c.json"
        path.write_text(json.dumps(df["review"].tolist()))
    elif fmt.startswith("jsonl"):
        path = _write(tmp_path / f"c.{fmt}", "\n".join(json.dumps(r) for r in df.to_dict("records")), fmt.endswith("gz"))
    elif fmt == "json":
        path = tmp_path / "c.json"
        path.write_text(json.dumps(df.to_dict("records")))
    elif fmt.startswith("csv"):
        path = _write(tmp_path / f"c.{fmt}", df.to_csv(index=False), fmt.endswith("gz"))
    elif fmt == "tsv":
        path = _write(tmp_path / "c.tsv", df.to_csv(index=False, sep="\t"))
    else:
        path = tmp_path / "c.parquet"
        df.to_parquet(path)
    ds = load_dataset(DataInput(path=str(path), val_fraction=0.2), context=8)
    src = ds.describe()["source"]
    assert src["text_col"] in ("review", "text")  # 'note' is shorter, 'id' numeric, 'label' shorter
    decoded = ds.tokenizer.decode(np.concatenate([ds.train_ids, ds.val_ids]))
    assert decoded == "".join(df["review"])  # rows in file order, <eos> between them (dropped by decode)
    assert int((ds.train_ids == ds.tokenizer.eos_id).sum() + (ds.val_ids == ds.tokenizer.eos_id).sum()) >= 60


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "tsv.gz"])
def test_tables_classify_infer_label(tmp_path, fmt):
    df = _reviews().rename(columns={"label": "Sentiment"})
    path = tmp_path / f"c.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        _write(path, df.to_csv(index=False, sep="\t"), gz=True)
    ds = load_dataset(DataInput(path=str(path), task="classify", val_fraction=0.2), context=64)
    d = ds.describe()
    assert (d["source"]["text_col"], d["source"]["label_col"]) == ("review", "Sentiment")
    assert ds.label_names == ["neg", "neu", "pos"]
    assert d["val_label_counts"] == {"neg": 4, "neu": 4, "pos": 4}  # stratified: 20% of 20 each
    assert len(ds.train_x) == 48 and len(ds.val_x) == 12
    for x, y in zip(ds.train_x, ds.train_y, strict=True):  # every text starts with its label: rows kept aligned
        assert ds.tokenizer.decode(x).startswith(ds.label_names[y])


def test_explicit_columns_and_numeric_labels(tmp_path):
    df = pd.DataFrame({"body": ["good stuff"] * 10 + ["bad stuff"] * 10, "stars": [1.0] * 10 + [0.0] * 10,
                       "title": ["a much longer title than the body text"] * 20})
    df.loc[3, "stars"] = None  # a row without a label is dropped
    path = tmp_path / "r.csv"
    df.to_csv(path, index=False)
    ds = load_dataset(DataInput(path=str(path), task="classify", text_col="BODY", label_col="stars",
                                val_fraction=0.2), context=32)
    assert ds.label_names == ["0", "1"]
    assert ds.describe()["source"]["n_rows_without_label"] == 1
    assert len(ds.train_x) + len(ds.val_x) == 19
    assert {ds.tokenizer.decode(x) for x in ds.train_x} == {"good stuff", "bad stuff"}


def test_classify_empty_text_becomes_eos_and_long_text_truncated(tmp_path):
    df = pd.DataFrame({"text": ["", "x" * 500] * 10, "label": ["a", "b"] * 10})
    path = tmp_path / "e.jsonl"
    df.to_json(path, orient="records", lines=True)
    ds = load_dataset(DataInput(path=str(path), task="classify", val_fraction=0.2), context=16)
    lens = sorted({len(x) for x in ds.train_x})
    assert lens == [1, 16]
    assert any(x.tolist() == [ds.tokenizer.eos_id] for x in ds.train_x)
    assert ds.describe()["n_truncated_rows"] == 10


# --- bad input ------------------------------------------------------------------------------------

def _table(tmp_path, df, name="t.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"   \n\n  ", "is empty"),
    (b"hello\x00world" * 50, "looks like a binary file"),
])
def test_bad_text_files(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=match):
        load_dataset(DataInput(path=str(path)), context=8)


def test_short_corpus_message(tmp_path):
    path = _write(tmp_path / "s.txt", "a short corpus of a few words " * 3)
    with pytest.raises(ValidationError) as err:
        load_dataset(DataInput(path=str(path)), context=256)
    msg = str(err.value)
    assert "corpus has 92 tokens" in msg  # 90 bytes + 2 <eos>
    assert "context is 256" in msg and "at least 258" in msg
    assert "smaller preset or more data" in msg and "\n" not in msg
    # the validation side alone can be too short
    path = _write(tmp_path / "m.txt", _prose(40))
    with pytest.raises(ValidationError, match="validation split: .*at least 102"):
        load_dataset(DataInput(path=str(path)), context=100)


@pytest.mark.parametrize("df, kwargs, match", [
    (pd.DataFrame({"text": ["a b", "c d"] * 5}), {}, "no label column found .*available: 'text'"),
    (pd.DataFrame({"text": ["a b"] * 10, "label": ["pos"] * 10}), {},
     "label column 'label' has a single value 'pos'; classification needs at least 2"),
    (pd.DataFrame({"text": ["a b"] * 10, "label": ["pos"] * 10}), {"label_col": "y"},
     "label column 'y' is not in 't.csv'; available: 'text', 'label'"),
    (pd.DataFrame({"text": ["a b"] * 10, "label": ["p", "n"] * 5}), {"text_col": "body"},
     "text column 'body' is not in 't.csv'; available: 'text', 'label'"),
    (pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": [f"l{i}" for i in range(40)]}), {},
     "40 distinct values in 40 rows"),
    (pd.DataFrame({"n": range(10), "label": ["a", "b"] * 5}), {}, "no text column found"),
    (pd.DataFrame({"text": ["a", "b"], "label": ["a", "b"]}), {}, "leave none for validation"),
    (pd.DataFrame({"text": ["a b"] * 10, "label": ["p", "n"] * 5}), {"text_col": "label"}, "both 'label'"),
])
def test_bad_classify_tables(tmp_path, df, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        load_dataset(DataInput(path=_table(tmp_path, df), task="classify", **kwargs), context=8)


def test_classify_needs_labels_not_plain_text(tmp_path):
    path = _write(tmp_path / "p.txt", _prose(50))
    with pytest.raises(ValidationError, match="plain text without labels"):
        load_dataset(DataInput(path=str(path), task="classify"), context=8)


@pytest.mark.parametrize("name, content, match", [
    ("x.docx", b"PK\x03\x04", "ZIP archive, not a data file or an Excel workbook"),
    ("x.xlsx", b"PK\x03\x04", "x.xlsx is not a readable Excel workbook"),
    ("x.jsonl", b'{"text": "a"}\n{broken\n', "x.jsonl: line 2 is not valid JSON"),
    ("x.json", b"[1, 2, 3]", "is a JSON number, expected an object"),
    ("x.csv", b'text,label\n"unterminated,1\n', "line 2 has 1 field, header has 2; fix the quoting"),
    ("x.csv", b"text,label\n", "has a header but no data rows"),
    ("x.parquet", b"PAR1 this is not parquet PAR1", "not a readable Parquet file"),
    ("x.txt.gz", b"not gzip at all", "named .gz but is not gzip-compressed"),
])
def test_bad_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=match):
        load_dataset(DataInput(path=str(path)), context=4)


def test_max_bytes_and_missing_file(tmp_path):
    path = _write(tmp_path / "big.txt.gz", _prose(300), gz=True)
    with pytest.raises(ValidationError, match="larger than max_bytes=1000 .decompressed"):
        load_dataset(DataInput(path=str(path), max_bytes=1000), context=4)
    with pytest.raises(ValidationError, match="no data file '.*nope.csv'"):
        load_dataset(DataInput(path=str(tmp_path / "nope.csv")), context=4)
    with pytest.raises(ValidationError, match="is not a file"):
        load_dataset(DataInput(path=str(tmp_path)), context=4)


def test_bad_call_arguments(arith):
    with pytest.raises(ValidationError, match="context"):
        load_dataset(DataInput(sample="arithmetic"), context=0)
    with pytest.raises(ValidationError, match="batch_size 6 must be divisible by the number of processes 4"):
        arith.get_batch("train", 0, 6, 8, seed=0, world=4)
    with pytest.raises(ValidationError, match="rank 2 must be below"):
        arith.get_batch("train", 0, 4, 8, seed=0, rank=2, world=2)
    with pytest.raises(ValidationError, match="unknown split 'test'"):
        arith.get_batch("test", 0, 4, 8, seed=0)
    with pytest.raises(ValidationError, match="step"):
        arith.get_batch("train", -1, 4, 8, seed=0)


# --- uploads ----------------------------------------------------------------------------------------

def test_list_and_pick_uploads(tmp_path):
    up = workspace.uploads_dir()
    assert str(up).startswith(os.environ["PREFLIGHT_HOME"])
    old = _write(up / "old.csv", _reviews().to_csv(index=False))
    os.utime(old, (time.time() - 100, time.time() - 100))
    new = _write(up / "new.txt.gz", _prose(100), gz=True)
    (up / "notes.docx").write_bytes(b"x")
    (up / ".hidden.csv").write_text("a\n1\n")
    (up / "dir.csv").mkdir()
    assert list_uploads() == [new, old]
    assert resolve_path("old.csv") == old  # picked by name, not uploaded again
    ds = load_dataset(DataInput(path="new.txt.gz"), context=8)
    assert ds.describe()["source"]["path"] == str(new)
    with pytest.raises(ValidationError, match="uploads: new.txt.gz, old.csv"):
        resolve_path("other.csv")


# --- splits -----------------------------------------------------------------------------------------

def test_lm_split_is_the_tail_and_seed_free(tmp_path):
    text = _prose(300)
    path = _write(tmp_path / "c.txt", text)
    a = load_dataset(DataInput(path=str(path), seed=0), context=8)
    b = load_dataset(DataInput(path=str(path), seed=5), context=8)
    assert np.array_equal(a.val_ids, b.val_ids) and np.array_equal(a.train_ids, b.train_ids)
    val_text = a.tokenizer.decode(a.val_ids)
    assert text.endswith(val_text)
    assert a.tokenizer.decode(a.train_ids).endswith("\n")  # the cut moved to a line break
    assert 0.09 < len(val_text) / len(text) < 0.11


def test_lm_sample_split_by_documents(arith):
    d = arith.describe()
    assert d["n_train_docs"] + d["n_val_docs"] >= 375
    assert 0.08 < arith.n_val_tokens / (arith.n_train_tokens + arith.n_val_tokens) < 0.12


def test_classify_split_reproducible_and_seeded():
    a = load_dataset(DataInput(sample="sentiment", task="classify", seed=0), context=32)
    b = load_dataset(DataInput(sample="sentiment", task="classify", seed=0), context=32)
    c = load_dataset(DataInput(sample="sentiment", task="classify", seed=1), context=32)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert not np.array_equal(a.val_y, c.val_y) or any(
        not np.array_equal(x, y) for x, y in zip(a.val_x, c.val_x, strict=True))
    counts = a.describe()["val_label_counts"]
    assert len(a.val_x) == 600 and max(counts.values()) - min(counts.values()) <= 2


def test_resume_reuses_saved_tokenizer(tmp_path):
    inp = DataInput(sample="stories", tokenizer="bpe", bpe_vocab=300)
    first = load_dataset(inp, context=32)
    first.tokenizer.save(tmp_path / "tok.json")
    from engine.lab.tokenizer import load_tokenizer

    again = load_dataset(inp, context=32, tokenizer=load_tokenizer(tmp_path / "tok.json"))
    assert again.fingerprint() == first.fingerprint()
    other = load_dataset(inp, context=32, tokenizer=build_tokenizer("byte"))
    assert other.tokenizer.kind == "byte" and other.fingerprint() != first.fingerprint()


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_learned_from_train_split_only(tmp_path, kind):
    # a character that appears only in the validation tail is unknown to the tokenizer
    text = "abc abc abc abc\n" * 100 + "zzz\n" * 10
    path = _write(tmp_path / "t.txt", text)
    ds = load_dataset(DataInput(path=str(path), tokenizer=kind, val_fraction=0.05, bpe_vocab=300), context=8)
    if kind == "char":
        assert "z" not in ds.tokenizer.chars and ds.tokenizer.unk_id in ds.val_ids
    else:
        assert ds.tokenizer.decode(ds.val_ids).endswith("zzz\n")  # byte-level BPE still covers it


# --- batches ----------------------------------------------------------------------------------------

def test_lm_batch_shapes_shift_and_determinism(arith):
    x, y = arith.get_batch("train", 7, 8, 32, seed=3)
    assert x.dtype == torch.long and y.dtype == torch.long and x.shape == y.shape == (8, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])
    stream = torch.from_numpy(arith.train_ids.astype(np.int64))
    starts = arith.batch_indices("train", 7, 8, 32, seed=3)
    assert len(set(starts.tolist())) == 8 and starts.max() <= len(stream) - 33
    for s, row_x, row_y in zip(starts, x, y, strict=True):  # windows of the stream, y one step ahead
        assert torch.equal(stream[s:s + 32], row_x) and torch.equal(stream[s + 1:s + 33], row_y)
    x2, y2 = arith.get_batch("train", 7, 8, 32, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, arith.get_batch("train", 8, 8, 32, seed=3)[0])
    assert not torch.equal(x, arith.get_batch("train", 7, 8, 32, seed=4)[0])
    assert not torch.equal(x, arith.get_batch("val", 7, 8, 32, seed=3)[0])


@given(step=st.integers(0, 10_000), seed=st.integers(0, 2**32), world=st.sampled_from([1, 2, 4]))
@settings(max_examples=25, deadline=None)
def test_rank_slices_concatenate_to_the_global_batch(arith, senti, step, seed, world):
    B = 8
    whole = arith.get_batch("train", step, B, 16, seed=seed)
    parts = [arith.get_batch("train", step, B, 16, seed=seed, rank=r, world=world) for r in range(world)]
    for i in range(2):
        assert torch.equal(torch.cat([p[i] for p in parts]), whole[i])
    whole = senti.get_batch("train", step, B, 48, seed=seed)
    parts = [senti.get_batch("train", step, B, 48, seed=seed, rank=r, world=world) for r in range(world)]
    for i in range(3):
        assert torch.equal(torch.cat([p[i] for p in parts]), whole[i])


def test_batches_do_not_depend_on_history(senti):
    """A run resumed at step k draws what the uninterrupted run drew (no hidden sampler state)."""
    straight = [senti.get_batch("train", s, 16, 48, seed=2) for s in range(30)]
    fresh = load_dataset(DataInput(sample="sentiment", task="classify"), context=48)
    resumed = [fresh.get_batch("train", s, 16, 48, seed=2) for s in range(20, 30)]
    for a, b in zip(straight[20:], resumed, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_classify_epochs_cover_every_row_once(senti):
    n, B = len(senti.train_x), 100
    seen = np.concatenate([senti.batch_indices("train", s, B, 48, seed=0) for s in range(n // B)])
    assert sorted(seen.tolist()) == list(range(n))  # 5400 rows = 54 steps = exactly one epoch
    nxt = np.concatenate([senti.batch_indices("train", s, B, 48, seed=0) for s in range(n // B, 2 * n // B)])
    assert sorted(nxt.tolist()) == list(range(n)) and not np.array_equal(seen, nxt)


def test_classify_padding_and_mask(senti):
    x, mask, y = senti.get_batch("train", 0, 32, 48, seed=0)
    idx = senti.batch_indices("train", 0, 32, 48, seed=0)
    assert x.dtype == torch.long and mask.dtype == torch.bool and y.dtype == torch.long
    lens = [min(len(senti.train_x[i]), 48) for i in idx]
    assert x.shape == mask.shape == (32, max(lens)) and y.shape == (32,)
    assert mask.sum(1).tolist() == lens and bool(mask[:, 0].all())
    assert bool((x[~mask] == senti.tokenizer.pad_id).all())
    for j, i in enumerate(idx):
        assert x[j, : lens[j]].tolist() == senti.train_x[i][: lens[j]].tolist()
        assert int(y[j]) == int(senti.train_y[i])
    # a short context truncates the batch width
    x, mask, _ = senti.get_batch("train", 0, 32, 5, seed=0)
    assert x.shape == (32, 5) and bool(mask.all())


def test_eval_batches(arith, senti):
    a = list(arith.eval_batches("val", 8, 32, 3, seed=0))
    b = list(arith.eval_batches("val", 8, 32, 3, seed=0))
    assert len(a) == 3 and all(torch.equal(u[0], v[0]) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], arith.get_batch("val", 0, 8, 32, seed=0)[0])  # apart from training's draws
    assert torch.equal(a[0][1][:, :-1], a[0][0][:, 1:])
    assert len(list(arith.eval_batches("val", 8, 32))) >= 1
    rows = list(senti.eval_batches("val", 64, 48))
    assert sum(len(r[2]) for r in rows) == len(senti.val_x) == 600  # the whole validation set, in order
    assert torch.equal(torch.cat([r[2] for r in rows]), torch.from_numpy(senti.val_y))
    halves = [list(senti.eval_batches("val", 64, 48, rank=r, world=2)) for r in range(2)]
    assert sum(len(r[2]) for h in halves for r in h) == 600
    assert len(list(senti.eval_batches("val", 64, 48, n_batches=2))) == 2
    # ranks split every eval batch, even when the batch size does not divide (array_split shares)
    whole = list(arith.eval_batches("val", 5, 16, 2, seed=1))
    shares = [list(arith.eval_batches("val", 5, 16, 2, seed=1, rank=r, world=2)) for r in range(2)]
    for i in range(2):
        assert [len(s[i][0]) for s in shares] == [3, 2]
        assert torch.equal(torch.cat([s[i][0] for s in shares]), whole[i][0])
