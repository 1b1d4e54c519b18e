"""Label and split checks: planted problems with known counts, clean data with none."""

from __future__ import annotations

import random

import pytest

from .conftest import by_id, check, write_csv

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basil cedar dune ember fjord "
         "garnet harbor iris jasper kestrel lotus maple nectar onyx pearl quartz raven saffron thistle").split()


def texts(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(14)) + f" {rng.randint(0, 10**9)}" for _ in range(n)]


def labelled(n, seed, labels=("pos", "neg", "neu")):
    rng = random.Random(seed + 1)
    return [[t, rng.choice(labels), f"{rng.uniform(0, 1):.3f}"] for t in texts(n, seed)]


H = ["text", "label", "score"]
LABEL_CHECKS = ("label_imbalance", "conflicting_labels", "train_test_leakage", "drift")


def test_clean_split_has_no_label_or_split_findings(tmp_path):
    train = write_csv(tmp_path / "train.csv", H, labelled(400, 1))
    test = write_csv(tmp_path / "test.csv", H, labelled(150, 2))
    report = check(train, test_path=test, chunk_rows=64, checks=LABEL_CHECKS)
    assert report.findings == []
    assert report.text_col == "text" and report.label_col == "label" and report.test_rows == 150


def test_label_imbalance_counts_rare_rows(tmp_path):
    rows = labelled(300, 3, labels=("a", "b"))
    for i in (10, 20, 30, 40):
        rows[i][1] = "rare"
    path = write_csv(tmp_path / "imb.csv", H, rows)
    (f,) = by_id(check(path, chunk_rows=50, checks=("label_imbalance",)), "label_imbalance")
    assert f.count == 4 and f.rows == [10, 20, 30, 40] and f.severity == "medium"
    assert f.details["under_represented"] == ["rare"]
    single = write_csv(tmp_path / "one.csv", H, [[t, "x", "1"] for t in texts(20, 4)])
    (g,) = by_id(check(single, label_col="label", checks=("label_imbalance",)), "label_imbalance")
    assert g.severity == "high" and "single class" in g.title


def test_conflicting_labels_counts_rows_involved(tmp_path):
    rows = labelled(200, 5, labels=("a", "b"))
    rows.append(["  " + rows[7][0].upper() + " ", "b" if rows[7][1] == "a" else "a", "0.5"])   # same input, other label
    rows.append([rows[9][0], rows[9][1], "0.1"])                                             # same input, same label
    path = write_csv(tmp_path / "conf.csv", H, rows)
    (f,) = by_id(check(path, chunk_rows=64, checks=("conflicting_labels",)), "conflicting_labels")
    assert f.count == 2 and f.rows == [7, 200]
    assert f.examples[0]["same_input_as_row"] == 7


def test_leakage_exact_and_near(tmp_path):
    train_rows = labelled(300, 6)
    test_rows = labelled(100, 7)
    test_rows[3][0] = train_rows[10][0].upper()                       # exact after normalization
    test_rows[40][0] = train_rows[20][0]                              # exact
    words = train_rows[30][0].split()
    words[5] = "zzzz"
    test_rows[77][0] = " ".join(words)                                 # near: one word of 15 changed
    train = write_csv(tmp_path / "train.csv", H, train_rows)
    test = write_csv(tmp_path / "test.csv", H, test_rows)
    (f,) = by_id(check(train, test_path=test, chunk_rows=70, checks=("train_test_leakage",)), "train_test_leakage")
    assert f.split == "test" and f.count == 3 and f.rows == [3, 40, 77]
    assert f.details["exact"] == 2 and f.details["near"] == 1
    near = next(e for e in f.examples if e["match"] == "near")
    assert near["row"] == 77 and near["train_row"] == 30 and near["jaccard"] >= 0.8
    assert f.severity == "high"


def test_leakage_tabular_uses_all_columns_but_label(tmp_path):
    train_rows = [[str(i), str(i * 3 % 17), f"c{i % 5}", str(i % 2)] for i in range(100)]
    test_rows = [[str(i), str(i * 3 % 17), f"c{i % 5}", str(1 - i % 2)] for i in range(95, 120)]  # 5 leaked
    train = write_csv(tmp_path / "a.csv", ["id", "x", "cat", "target"], train_rows)
    test = write_csv(tmp_path / "b.csv", ["id", "x", "cat", "target"], test_rows)
    report = check(train, test_path=test, checks=("train_test_leakage",))
    assert report.text_col is None and report.label_col == "target"
    (f,) = by_id(report, "train_test_leakage")
    assert f.count == 5 and f.rows == [0, 1, 2, 3, 4] and f.severity == "critical"


def test_drift_numeric_categorical_and_length(tmp_path):
    rng = random.Random(8)
    train_rows = [[t, rng.choice("ab"), f"{rng.gauss(0, 1):.3f}", rng.choice(["x", "y"])] for t in texts(500, 8)]
    test_rows = [[t + " " + t, rng.choice("ab"), f"{rng.gauss(2, 1):.3f}", rng.choice(["x", "y", "y", "y", "y"])]
                 for t in texts(300, 9)]
    train = write_csv(tmp_path / "train.csv", ["text", "label", "amount", "region"], train_rows)
    test = write_csv(tmp_path / "test.csv", ["text", "label", "amount", "region"], test_rows)
    found = {f.column: f for f in by_id(check(train, test_path=test, chunk_rows=128, checks=("drift",)), "drift")}
    assert set(found) == {"amount", "region", "text"}
    assert found["amount"].details["ks"] > 0.5 and found["amount"].severity == "medium"
    assert found["region"].details["psi"] > 0.1
    assert found["text"].details["text_length"] is True


@pytest.mark.parametrize("cid", LABEL_CHECKS)
def test_skipped_without_what_they_need(tmp_path, cid):
    path = write_csv(tmp_path / "t.csv", ["a", "b"], [["1", "2"], ["3", "4"]])
    report = check(path, checks=(cid,))
    (row,) = report.checks_run
    assert row["status"] == "skipped" and ("--label" in row["reason"] or "--test" in row["reason"])
