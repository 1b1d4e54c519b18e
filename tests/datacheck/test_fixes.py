"""Safe fixes: the cleaned file has the right rows, in the right format; inputs are never touched."""

from __future__ import annotations

import gzip
import hashlib
import json

import pandas as pd
import pytest

from engine.datacheck.fixes import cleaned_test_path
from engine.datacheck.runner import CheckInput, run_checks
from engine.datacheck.samples import write_sample
from engine.errors import ValidationError

from .conftest import write_csv


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_fix_tickets_counts_and_inputs_unchanged(tmp_path):
    train = write_sample("support_tickets", tmp_path)
    test = write_sample("support_tickets_test", tmp_path)
    before = digest(train), digest(test)
    out = tmp_path / "clean.csv.gz"
    report = run_checks(CheckInput(path=train, test_path=test, fix_out=out))
    assert (digest(train), digest(test)) == before
    fx = report.fix
    acts = {a["id"]: a["count"] for a in fx["actions"]}
    assert acts["drop_duplicates"] == 12 and acts["drop_empty_text"] == 6 and acts["drop_leaked_test"] == 8
    assert fx["rows_in"] == 499 and fx["rows_out"] == 499 - 12 - 6
    assert fx["test_path"] == str(tmp_path / "clean.test.csv.gz") and fx["test_rows_out"] == 80
    cleaned = pd.read_csv(gzip.open(out), dtype=str, keep_default_na=False)
    assert len(cleaned) == fx["rows_out"] and not cleaned.duplicated().any() and (cleaned["text"].str.strip() != "").all()
    if "mask_pii" in acts:
        assert not cleaned["text"].str.contains("jane.doe").any()
    again = run_checks(CheckInput(path=out, checks=("duplicate_rows", "missing_values")))
    assert again.findings == []


def test_fix_jsonl_keeps_json_types(tmp_path):
    recs = [{"text": "hello there my friend", "n": 1, "ok": True}, {"text": "hello there my friend", "n": 1, "ok": True},
            {"text": "another line of text", "n": 2.5, "ok": None}]
    src = tmp_path / "d.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "clean.jsonl"
    report = run_checks(CheckInput(path=src, fix_out=out, checks=("duplicate_rows",)))
    assert report.fix["rows_out"] == 2
    assert [json.loads(line) for line in out.read_text().splitlines()] == [recs[0], recs[2]]


@pytest.mark.parametrize("ext", [".parquet", ".tsv", ".txt", ".json"])
def test_fix_other_formats(tmp_path, ext):
    src = write_csv(tmp_path / "d.csv", ["text", "k"], [["a b c d", "1"], ["a b c d", "1"], ["e f g h", "2"]])
    out = tmp_path / f"clean{ext}"
    report = run_checks(CheckInput(path=src, fix_out=out, checks=("duplicate_rows",)))
    assert report.fix["rows_out"] == 2 and out.exists()
    back = run_checks(CheckInput(path=out, checks=("duplicate_rows",)))
    assert back.rows == 2


def test_fix_refuses_to_overwrite_input(tmp_path):
    src = write_csv(tmp_path / "d.csv", ["a"], [["1"], ["1"]])
    with pytest.raises(ValidationError, match="overwrite an input"):
        run_checks(CheckInput(path=src, fix_out=src))
    assert src.read_text() == "a\n1\n1\n"


def test_where_the_cleaned_test_split_goes(tmp_path):
    assert cleaned_test_path(tmp_path / "clean.csv").name == "clean.test.csv"
    assert cleaned_test_path(tmp_path / "c.jsonl.gz").name == "c.test.jsonl.gz"
