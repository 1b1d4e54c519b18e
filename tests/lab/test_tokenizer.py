"""Tokenizers of the model lab: round trips, special ids, JSON save/load, bad files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ValidationError
from engine.lab.tokenizer import (
    TOKENIZER_KINDS,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
)

TRAIN = [
    "The quick brown fox jumps over the lazy dog. ",
    "Thé quïck bröwn fox — 狐狸 jumps; 12+7=19\n\n\tindented line\n",
    "émoji 😀 and more émoji 😀😀, the fox again and again and again. ",
] * 20


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return build_tokenizer("bpe", TRAIN, vocab_size=400)


def test_kinds():
    assert TOKENIZER_KINDS == ("byte", "char", "bpe")


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_byte_round_trips_any_unicode(text):
    tok = build_tokenizer("byte")
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < 256 for i in ids)
    assert tok.encode_array(text).tolist() == ids


def test_byte_layout_and_decode_replaces_invalid():
    tok = ByteTokenizer()
    assert (tok.vocab_size, tok.eos_id, tok.pad_id) == (258, 256, 257)
    assert tok.encode("é") == [0xC3, 0xA9]
    assert tok.decode([0xC3]) == "\ufffd"  # a model's broken UTF-8 decodes with errors='replace'
    assert tok.decode([104, 256, 105, 257]) == "hi"  # specials are dropped


@given(st.text(alphabet=st.sampled_from(sorted(set("".join(TRAIN)))), max_size=200))
@settings(max_examples=100, deadline=None)
def test_char_round_trips_seen_chars(text):
    tok = build_tokenizer("char", TRAIN)
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode_array(text).tolist() == tok.encode(text)


def test_char_layout_unknown_and_specials():
    tok = build_tokenizer("char", ["bca", "ab"])
    assert isinstance(tok, CharTokenizer)
    assert tok.chars == ["a", "b", "c"]
    assert (tok.unk_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (3, 4, 5, 6)
    assert tok.encode("cab") == [2, 0, 1]
    assert tok.encode("aZ") == [0, 3]
    assert tok.encode_array("aZ😀").tolist() == [0, 3, 3]
    assert tok.decode([0, 3, 4, 5, 1]) == "a\ufffdb"


def test_bpe_round_trip_and_compresses(bpe):
    for text in TRAIN[:3] + ["unseen wörds ✓ and \x00 control \r\n chars 🦊"]:
        assert bpe.decode(bpe.encode(text)) == text
    sample = TRAIN[0] * 3
    assert len(bpe.encode(sample)) < len(sample.encode()) / 2  # merges were learned
    assert bpe.vocab_size <= 400
    assert bpe.encode_batch(TRAIN[:2]) == [bpe.encode(TRAIN[0]), bpe.encode(TRAIN[1])]


def test_bpe_training_is_deterministic(bpe):
    again = build_tokenizer("bpe", TRAIN, vocab_size=400)
    assert again.fingerprint() == bpe.fingerprint()


def test_bpe_on_tiny_data_still_works():
    tok = build_tokenizer("bpe", ["hi"], vocab_size=4096)
    assert tok.vocab_size == 258  # 256 byte symbols + <pad> + <eos>, no merge reached min_frequency 2
    assert tok.decode(tok.encode("hello 😀")) == "hello 😀"


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_special_ids_in_range_and_distinct(kind, bpe):
    tok = bpe if kind == "bpe" else build_tokenizer(kind, TRAIN)
    assert 0 <= tok.pad_id < tok.vocab_size
    assert 0 <= tok.eos_id < tok.vocab_size
    assert tok.pad_id != tok.eos_id
    assert tok.kind == kind
    ids = tok.encode("".join(TRAIN[:3]))
    assert max(ids) < tok.vocab_size and min(ids) >= 0
    assert tok.eos_id not in ids and tok.pad_id not in ids  # text never encodes to a special


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_save_load_equal(kind, bpe, tmp_path):
    tok = bpe if kind == "bpe" else build_tokenizer(kind, TRAIN)
    path = tmp_path / "sub" / "tokenizer.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))  # JSON, not pickle
    assert data["kind"] == kind
    loaded = load_tokenizer(path)
    assert loaded == tok
    assert loaded.fingerprint() == tok.fingerprint()
    assert type(loaded) is type(tok)
    text = "".join(TRAIN[:3])
    assert loaded.encode(text) == tok.encode(text)
    assert (loaded.vocab_size, loaded.pad_id, loaded.eos_id) == (tok.vocab_size, tok.pad_id, tok.eos_id)


def test_different_tokenizers_are_not_equal(bpe):
    assert build_tokenizer("char", ["ab"]) != build_tokenizer("char", ["abc"])
    assert build_tokenizer("byte") != bpe


@pytest.mark.parametrize("kind, texts, match", [
    ("char", None, "give texts"),
    ("bpe", None, "give texts"),
    ("char", ["", ""], "training split is empty"),
    ("bpe", ["", "   "], "training split is empty"),
    ("wordpiece", ["x"], "unknown tokenizer 'wordpiece'"),
])
def test_build_errors(kind, texts, match):
    with pytest.raises(ValidationError, match=match):
        build_tokenizer(kind, texts)


@pytest.mark.parametrize("size", [10, 259, 0, 2.5, "big"])
def test_bpe_vocab_size_checked(size):
    with pytest.raises(ValidationError, match="bpe vocab size"):
        build_tokenizer("bpe", TRAIN, vocab_size=size)


@pytest.mark.parametrize("content, match", [
    (b"\x80\x81 not utf8", "not valid JSON"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a Preflight tokenizer"),
    (b'{"format": "preflight-tokenizer", "version": 9, "kind": "byte"}', "version 9"),
    (b'{"format": "preflight-tokenizer", "version": 1, "kind": "sentencepiece"}', "unknown tokenizer kind"),
    (b'{"format": "preflight-tokenizer", "version": 1, "kind": "char"}', "no 'chars'"),
    (b'{"format": "preflight-tokenizer", "version": 1, "kind": "bpe", "tokenizers": {"model": 3}}', "malformed"),
    (b'{"format": "preflight-tokenizer", "version": 1, "kind": "byte", "vocab_size": 300, "pad_id": 257,'
     b' "eos_id": 256}', "inconsistent"),
])
def test_load_bad_files(tmp_path, content, match):
    path = tmp_path / "tok.json"
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=match):
        load_tokenizer(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="no tokenizer file"):
        load_tokenizer(tmp_path / "nope.json")
