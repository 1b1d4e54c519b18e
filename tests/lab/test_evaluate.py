"""The evaluation report: every number equals scikit-learn's on the same predictions, k-fold folds are
stratified and disjoint, LM figures are consistent, and bad input gets one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from engine.errors import ValidationError
from engine.lab.evaluate import EvaluateInput, classification_metrics, cv_splits, evaluate
from engine.lab.trainer import TrainConfig, train

TINY = dict(preset="tiny", n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, d_ff=64, device="cpu", threads=1,
            sample_tokens=0, eval_batches=2)
LABELS = ["bad", "good", "meh"]


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    words = {"good": "great lovely fine", "bad": "awful poor broken", "meh": "okay average plain"}
    for i in range(90):
        label = LABELS[i % 3]
        rows.append(f"{' '.join(rng.choice(words[label].split(), 3))} item {i},{label}")
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def classifier(csv_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cls"
    train(TrainConfig(**TINY, data=str(csv_file), task="classify", tokenizer="byte", context=48, batch_size=16,
                      max_steps=6, eval_every=3, lr=3e-3, val_fraction=0.3, out=str(out)))
    return out


def test_metrics_equal_sklearn_on_random_predictions():
    rng = np.random.default_rng(1)
    n, k = 400, 4
    logits = rng.normal(size=(n, k))
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y_pred = proba.argmax(1)
    y_true = np.where(rng.random(n) < 0.6, y_pred, rng.integers(0, k, n))
    names = [f"c{i}" for i in range(k)]
    m = classification_metrics(y_true, y_pred, proba, names, n_bins=10)
    assert m["accuracy"] == accuracy_score(y_true, y_pred)
    assert m["macro_f1"] == f1_score(y_true, y_pred, average="macro")
    assert m["weighted_f1"] == f1_score(y_true, y_pred, average="weighted")
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred)
    for i, name in enumerate(names):
        assert m["per_class"][name] == {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}
    cm = confusion_matrix(y_true, y_pred)
    assert m["confusion_matrix"]["matrix"] == cm.tolist()
    # orientation: row i is the true label, column j the prediction
    assert m["confusion_matrix"]["matrix"][y_true[0]][y_pred[0]] >= 1
    assert sum(m["confusion_matrix"]["matrix"][2]) == int((y_true == 2).sum())
    # ECE (Guo et al. 2017 eq. 3) computed independently, by a plain loop over equal-width bins
    conf = proba.max(1)
    correct = y_pred == y_true
    ece = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        sel = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    assert m["ece"] == pytest.approx(ece, abs=1e-12)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=10)
    assert [b["accuracy"] for b in m["reliability"]["bins"]] == pytest.approx(prob_true.tolist())
    assert [b["confidence"] for b in m["reliability"]["bins"]] == pytest.approx(prob_pred.tolist())
    assert sum(b["count"] for b in m["reliability"]["bins"]) == n


def test_classifier_report_matches_sklearn_and_cv_folds(classifier):
    d = evaluate(EvaluateInput(run=str(classifier), folds=3, cv_steps=2, include_predictions=True)).to_dict()
    assert d["task"] == "classify" and d["confusion_matrix"]["labels"] == LABELS
    pr = d["predictions"]
    y, yp = np.array(pr["y_true"]), np.array(pr["y_pred"])
    assert len(y) == d["n_examples"] == 27  # round(0.3 × 30) per label
    assert d["accuracy"] == accuracy_score(y, yp)
    assert d["macro_f1"] == f1_score(y, yp, average="macro", labels=[0, 1, 2], zero_division=0)
    assert d["weighted_f1"] == f1_score(y, yp, average="weighted", labels=[0, 1, 2], zero_division=0)
    assert d["confusion_matrix"]["matrix"] == confusion_matrix(y, yp, labels=[0, 1, 2]).tolist()
    p, r, f, s = precision_recall_fscore_support(y, yp, labels=[0, 1, 2], zero_division=0)
    assert [d["per_class"][n]["f1"] for n in LABELS] == f.tolist()
    assert [d["per_class"][n]["support"] for n in LABELS] == s.tolist()
    assert 0.0 <= d["ece"] <= 1.0
    for mis in d["confident_mistakes"]:
        assert mis["true"] != mis["predicted"] and "item" in mis["text"]
    confs = [m["confidence"] for m in d["confident_mistakes"]]
    assert confs == sorted(confs, reverse=True)
    cv = d["cv"]
    assert cv["k"] == 3 and len(cv["folds"]) == 3 and cv["steps_per_fold"] == 2
    scores = [f["macro_f1"] for f in cv["folds"]]
    assert cv["mean"] == pytest.approx(np.mean(scores)) and cv["std"] == pytest.approx(np.std(scores, ddof=1))
    for fold in cv["folds"]:
        assert fold["n_test"] == 30 and fold["test_label_counts"] == {n: 10 for n in LABELS}


def test_kfold_is_stratified_and_disjoint():
    labels = np.array(["a"] * 50 + ["b"] * 20 + ["c"] * 7)
    splits = cv_splits(labels, 5, seed=3)
    tests = [set(te.tolist()) for _, te in splits]
    assert set().union(*tests) == set(range(len(labels)))
    assert sum(len(t) for t in tests) == len(labels)  # disjoint
    for tr, te in splits:
        assert not set(tr.tolist()) & set(te.tolist())
        for lab, n in (("a", 50), ("b", 20), ("c", 7)):
            assert abs((labels[te] == lab).sum() - n / 5) <= 1  # stratified
    with pytest.raises(ValidationError, match="only 7 rows"):
        cv_splits(labels, 8)


def test_lm_report_is_consistent(tmp_path):
    out = tmp_path / "lm"
    train(TrainConfig(**TINY, sample="arithmetic", context=16, batch_size=4, max_steps=4, eval_every=2, out=str(out)))
    a = evaluate(EvaluateInput(run=str(out), sample_tokens=12)).to_dict()
    b = evaluate(EvaluateInput(run=str(out), sample_tokens=12)).to_dict()
    assert a["task"] == "lm" and a["perplexity"] == pytest.approx(math.exp(a["val_loss"]))
    assert a["bits_per_byte"] == pytest.approx(a["val_loss"] * a["tokens_scored"] / (math.log(2) * a["bytes_scored"]))
    assert a["by_position"][0]["start"] == 0 and a["by_position"][-1]["end"] == 16
    assert np.mean([p["loss"] for p in a["by_position"]]) == pytest.approx(a["val_loss"])  # equal-width buckets
    assert [s["text"] for s in a["samples"]] == [s["text"] for s in b["samples"]]  # fixed seeds
    with pytest.raises(ValidationError, match="for classifiers"):
        evaluate(EvaluateInput(run=str(out), folds=3))


def test_bad_input(classifier, csv_file, tmp_path):
    empty = tmp_path / "never"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(ValidationError, match="no checkpoint"):
        evaluate(EvaluateInput(run=str(empty)))
    with pytest.raises(ValidationError, match="no such run"):
        evaluate(EvaluateInput(run=str(tmp_path / "missing")))
    other = tmp_path / "other.csv"
    other.write_text("text,label\nfine thing,good\nstrange,unknown\nbad one,bad\n")
    with pytest.raises(ValidationError, match="label sets differ"):
        evaluate(EvaluateInput(run=str(classifier), data=str(other)))
    with pytest.raises(ValidationError, match="not cross-validation"):
        evaluate(EvaluateInput(run=str(classifier), folds=1))
    ok = evaluate(EvaluateInput(run=str(classifier), data=str(csv_file))).to_dict()
    assert ok["n_examples"] == 90 and "reviews.csv" in ok["source"]


def test_saved_report_reaches_the_readiness_overview(classifier, monkeypatch):
    from engine.lab.evaluate import read_report, save_report
    from engine.artifacts import latest_training_run
    from engine.store import Registry

    res = evaluate(EvaluateInput(run=str(classifier)))
    save_report(res)
    assert read_report(classifier)["macro_f1"] == res.to_dict()["macro_f1"]
    Registry().create_run("cls", {}, classifier, status="finished")
    ev = latest_training_run()["evaluation"]
    assert ev["task"] == "classify" and ev["macro_f1"] == res.to_dict()["macro_f1"] and ev["ece"] >= 0


def test_background_evaluation_status_reads_the_runner_record(tmp_path):
    """A dead evaluation worker whose report predates it failed (its log's last line says why); a report
    written since it started is its result."""
    import json
    import os
    import time

    from engine import jobs
    from engine.lab.evaluate import JOB, LOG, REPORT, evaluation_status

    assert evaluation_status(tmp_path)["status"] == "none"
    (tmp_path / REPORT).write_text(json.dumps({"task": "lm", "val_loss": 1.0}))
    os.utime(tmp_path / REPORT, (time.time() - 3600, time.time() - 3600))  # an earlier evaluation's report
    # a gone worker: this test's pid with another start time (a recycled pid is not the worker)
    jobs.write_atomic(tmp_path / JOB, json.dumps({"pid": os.getpid(), "pid_started": 1.0, "started": time.time()}))
    (tmp_path / LOG).write_text("Traceback ...\npreflight: error: run x has no validation data\n")
    s = evaluation_status(tmp_path)
    assert s == {"status": "failed", "result": None, "error": "run x has no validation data"}
    (tmp_path / REPORT).write_text(json.dumps({"task": "lm", "val_loss": 0.5}))  # written by this worker
    assert evaluation_status(tmp_path) == {"status": "done", "result": {"task": "lm", "val_loss": 0.5}, "error": None}
