"""Tabular checks: a dataset with a known number of planted problems, and a clean one with none."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from engine.datacheck.runner import CheckInput, run_checks
from engine.errors import ValidationError

from .conftest import by_id, check, write_csv

TABULAR = ("missing_values", "duplicate_rows", "constant_column", "mixed_types", "outliers", "schema")


def clean_rows(n=300, seed=1):
    rng = random.Random(seed)
    return [[f"u{i}", str(rng.randint(18, 80)), f"{rng.uniform(1000, 5000):.2f}", rng.choice(["FR", "DE", "IT"]),
             f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", rng.choice(["true", "false"])] for i in range(n)]


HEADER = ["user", "age", "spend", "country", "joined", "active"]


@pytest.mark.parametrize("chunk_rows", [1000, 37])
def test_clean_table_has_no_findings(tmp_path, chunk_rows):
    path = write_csv(tmp_path / "clean.csv", HEADER, clean_rows())
    report = check(path, chunk_rows=chunk_rows, checks=TABULAR)
    assert [f.id for f in report.findings] == ["schema"]           # the info finding only
    assert report.score == 100
    types = {c["name"]: c["type"] for c in report.findings[0].details["columns"]}
    assert types == {"user": "string", "age": "int", "spend": "float", "country": "string", "joined": "date",
                     "active": "bool"}


def test_missing_values_counts_cells(tmp_path):
    rows = clean_rows()
    for i in (3, 50, 51, 200):
        rows[i][2] = ["", "NA", "null", " "][i % 4]
    rows[7][3] = "N/A"
    path = write_csv(tmp_path / "m.csv", HEADER, rows)
    (f,) = by_id(check(path, chunk_rows=40, checks=("missing_values",)), "missing_values")
    assert f.count == 5 and f.rows == [3, 7, 50, 51, 200] and f.rows_total == 5
    assert f.details["per_column"]["spend"]["missing"] == 4 and f.details["per_column"]["country"]["missing"] == 1
    assert f.severity == "low"


def test_duplicate_rows_across_chunks(tmp_path):
    rows = clean_rows(200)
    rows += [list(rows[5]), list(rows[150]), list(rows[5])]          # 3 repeats (one of them twice)
    path = write_csv(tmp_path / "d.csv", HEADER, rows)
    (f,) = by_id(check(path, chunk_rows=64, checks=("duplicate_rows",)), "duplicate_rows")
    assert f.count == 3 and f.rows == [200, 201, 202]
    assert [e["same_as_row"] for e in f.examples] == [5, 150, 5]
    assert f.examples[0]["user"] == "u5" and f.safe_fix == "drop_duplicates"


def test_constant_and_empty_columns(tmp_path):
    rows = [r + ["web", "", " Yes" if i % 2 else "yes"] for i, r in enumerate(clean_rows(50))]
    path = write_csv(tmp_path / "c.csv", HEADER + ["source", "notes", "consent"], rows)
    found = by_id(check(path, chunk_rows=16, checks=("constant_column",)), "constant_column")
    assert sorted(f.column for f in found) == ["consent", "notes", "source"]
    assert next(f for f in found if f.column == "notes").details["empty"] is True
    # one value plus gaps is informative, not constant
    rows = [r + ["x" if i % 3 else ""] for i, r in enumerate(clean_rows(30))]
    path = write_csv(tmp_path / "c2.csv", HEADER + ["flag"], rows)
    assert by_id(check(path, checks=("constant_column",)), "constant_column") == []


def test_mixed_types_reports_minority_values(tmp_path):
    rows = clean_rows()
    for i, v in ((10, "unknown"), (99, "n/a?"), (250, "thirty")):
        rows[i][1] = v
    rows[20][4] = "someday"
    path = write_csv(tmp_path / "x.csv", HEADER, rows)
    found = {f.column: f for f in by_id(check(path, chunk_rows=50, checks=("mixed_types",)), "mixed_types")}
    assert set(found) == {"age", "joined"}
    assert found["age"].count == 3 and found["age"].rows == [10, 99, 250]
    assert {e["age"] for e in found["age"].examples} == {"unknown", "n/a?", "thirty"}
    assert found["joined"].count == 1 and found["joined"].rows == [20]


def test_outliers_robust_z(tmp_path):
    rows = clean_rows(500)
    for i, v in ((17, "250000"), (333, "-90000"), (499, "1e7")):
        rows[i][2] = v
    path = write_csv(tmp_path / "o.csv", HEADER, rows)
    (f,) = by_id(check(path, chunk_rows=100, checks=("outliers",)), "outliers")
    assert f.column == "spend" and f.count == 3 and f.rows == [17, 333, 499]
    assert f.examples[0]["spend"] == 1e7 and f.examples[0]["modified_z"] > 3.5
    assert f.details["low"] < 1000 and f.details["high"] > 5000


def test_outliers_sampled_second_pass_matches(tmp_path, monkeypatch):
    import engine.datacheck.checks.outliers as mod

    rows = clean_rows(500)
    for i in (17, 333):
        rows[i][2] = "999999"
    path = write_csv(tmp_path / "o.csv", HEADER, rows)
    monkeypatch.setattr(mod, "BUDGET_VALUES", 100)               # force the sample + second-pass path
    (f,) = by_id(check(path, chunk_rows=100, checks=("outliers",)), "outliers")
    assert f.count == 2 and f.rows == [17, 333] and f.details["sampled"] is True


def test_outliers_skip_codes_and_flags(tmp_path):
    rows = [[str(i), str(i % 3), "0" if i % 50 else "1"] for i in range(400)]
    path = write_csv(tmp_path / "codes.csv", ["id", "code", "flag"], rows)
    assert by_id(check(path, checks=("outliers",)), "outliers") == []


def test_schema_save_and_validate(tmp_path):
    path = write_csv(tmp_path / "s.csv", HEADER, clean_rows())
    schema = tmp_path / "schema.json"
    report = check(path, checks=("schema",), save_schema=schema)
    assert report.schema_saved == str(schema)
    saved = json.loads(schema.read_text())
    assert [c["name"] for c in saved["columns"]] == HEADER
    # a later file: 'active' dropped, 'extra' added, ages now text, spend has gaps
    rows = clean_rows(100, seed=2)
    for r in rows[:7]:
        r[1] = "old"
    rows[8][2] = ""
    later = write_csv(tmp_path / "later.csv", ["user", "age", "spend", "country", "joined", "extra"],
                      [r[:5] + ["z"] for r in rows])
    found = by_id(check(later, checks=("schema",), schema_path=schema), "schema")
    titles = " | ".join(f.title for f in found)
    assert any(f.severity == "high" and f.details.get("missing_columns") == ["active"] for f in found), titles
    assert any(f.details.get("extra_columns") == ["extra"] for f in found), titles
    age = next(f for f in found if f.column == "age")
    assert age.count == 7 and age.rows == list(range(7))
    spend = next(f for f in found if f.column == "spend")
    assert spend.count == 1
    # the unchanged file validates clean
    assert [f.severity for f in by_id(check(path, checks=("schema",), schema_path=schema), "schema")] == ["info"]


def test_bad_schema_file(tmp_path):
    path = write_csv(tmp_path / "s.csv", HEADER, clean_rows(10))
    bad = tmp_path / "bad.json"
    bad.write_text('{"columns": 3}')
    with pytest.raises(ValidationError, match="not a Preflight schema"):
        run_checks(CheckInput(path=path, schema_path=bad))


def test_parquet_native_types(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, 400)
    x[[5, 77]] = [500.0, -400.0]
    pq.write_table(pa.table({"x": x, "k": rng.integers(0, 3, 400), "s": ["a"] * 400}), tmp_path / "p.parquet")
    report = check(tmp_path / "p.parquet", checks=TABULAR)
    (o,) = by_id(report, "outliers")
    assert o.rows == [5, 77]
    assert [f.column for f in by_id(report, "constant_column")] == ["s"]
    assert by_id(report, "mixed_types") == []
