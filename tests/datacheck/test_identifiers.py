"""Identifier columns (issue 11 item 6): recognised, left out of outliers, drift and constant checks,
still checked for duplicates and missing values."""

from __future__ import annotations

import random

import pandas as pd

from engine.datacheck.identifiers import id_like_name, identifier_columns

from .conftest import by_id, check, write_csv


def test_names_and_values_that_mean_identifier():
    assert all(id_like_name(n) for n in ("id", "ID", "review_id", "ticketId", "uuid", "order-id", "user id"))
    assert not any(id_like_name(n) for n in ("paid", "valid", "width", "Android", "age", "idea"))
    rng = random.Random(0)
    head = pd.DataFrame({
        "ref": [str(1000 + i) for i in range(100)],                                   # a counter
        "code": [f"T{rng.randint(10**6, 10**7)}" for _ in range(100)],              # codes
        "salary": [str(rng.randint(30_000, 90_000)) for _ in range(100)],            # distinct, scattered
        "price": [f"{rng.uniform(1, 100):.2f}" for _ in range(100)],
        "city": [rng.choice(["Lyon", "Porto", "Graz"]) for _ in range(100)],
    }).astype("str")
    assert identifier_columns(head) == ["ref", "code"]


def test_id_column_gets_no_outliers_but_duplicates_and_missing_still_count(tmp_path):
    rng = random.Random(1)
    rows = [[str(100_000 + i), f"{rng.uniform(1, 5):.1f}", rng.choice(["a", "b"])] for i in range(500)]
    rows += [[str(200_000 + i), f"{rng.uniform(1, 5):.1f}", rng.choice(["a", "b"])] for i in range(110)]
    rows[7][0] = ""                   # a missing id
    rows.append(list(rows[3]))        # an exact duplicate row
    path = write_csv(tmp_path / "reviews.csv", ["review_id", "stars", "group"], rows)
    report = check(path)
    assert "review_id" in report.id_columns
    assert not [f for f in by_id(report, "outliers") if f.column == "review_id"]
    assert by_id(report, "duplicate_rows")[0].count == 1
    assert by_id(report, "missing_values")[0].details["per_column"]["review_id"]["missing"] == 1


def test_scattered_unique_integers_are_still_measurements(tmp_path):
    rng = random.Random(2)
    rows = [[str(rng.randint(30_000, 90_000))] for _ in range(400)] + [["9000000"], ["8500000"]]
    path = write_csv(tmp_path / "pay.csv", ["salary"], rows)
    report = check(path)
    assert report.id_columns == []
    assert [f.column for f in by_id(report, "outliers")] == ["salary"]


def test_counter_column_does_not_drift_between_splits(tmp_path):
    rng = random.Random(3)
    train = write_csv(tmp_path / "train.csv", ["ref", "score"],
                      [[str(i), f"{rng.gauss(0, 1):.3f}"] for i in range(1, 601)])
    test = write_csv(tmp_path / "test.csv", ["ref", "score"],
                     [[str(i), f"{rng.gauss(0, 1):.3f}"] for i in range(601, 801)])
    report = check(train, test_path=test)
    assert "ref" in report.id_columns
    assert not [f for f in by_id(report, "drift") if f.column == "ref"]


def test_constant_check_leaves_identifiers_out(tmp_path):
    path = write_csv(tmp_path / "c.csv", ["batch_id", "x"], [["B1", str(i % 7)] for i in range(50)])
    report = check(path)
    assert not [f for f in by_id(report, "constant_column") if f.column == "batch_id"]


def test_distinct_years_in_order_are_a_measurement_not_an_identifier():
    head = pd.DataFrame({"year": [str(1950 + i) for i in range(60)], "row": [str(i) for i in range(60)]}, dtype="str")
    assert identifier_columns(head) == ["row"]
