"""The evaluation report of a finished run: what a founder can trust about the model.

Classifiers (every number from scikit-learn, on the run's validation split or on ``--data``):

* accuracy, per-class precision / recall / F1 / support and their macro and weighted averages
  (``sklearn.metrics.precision_recall_fscore_support``);
* the confusion matrix (``sklearn.metrics.confusion_matrix``: row i = true label i, column j = predicted j);
* calibration: the reliability diagram of the top-class confidence (``sklearn.calibration.calibration_curve``
  over ``n_bins`` equal-width bins) and the expected calibration error, ECE = Σ_b (n_b / n)·|acc_b − conf_b|
  (Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3 / §2);
* the most confident mistakes with their texts;
* optional stratified k-fold cross-validation (``sklearn.model_selection.StratifiedKFold``) of macro-F1:
  each fold trains a *fresh* model of the run's architecture and optimiser settings on the other k−1 folds
  for a bounded number of steps (``cv_steps``, default min(run's steps, 200)), so the spread shows how much
  one split can mislead, at a bounded cost; the run's own weights are not used there.

Language models (on the validation stream or ``--data``): mean next-token loss over non-overlapping
context windows, perplexity exp(loss), bits per byte = Σ nats / (ln 2 · UTF-8 bytes of the scored text)
(tokenizer-independent, so byte, char and BPE runs compare; cf. Gao et al. 2020, The Pile, §5), the loss
by position bucket inside the window, and samples at fixed seeds.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ValidationError, require_number
from engine.store import resolve_run_dir

MAX_EVAL_ROWS = 20_000       # classifier rows scored (a larger --data file is cut, and the cut is reported)
MAX_LM_WINDOWS = 256         # LM windows scored (context tokens each)
SAMPLE_SEEDS = (0, 1, 2)
CV_MAX_STEPS = 200


@dataclass(frozen=True)
class EvaluateInput:
    run: str                      # a run folder or a registry name
    data: str | None = None       # evaluate on this file instead of the run's validation split
    folds: int = 0                # k-fold cross-validation of a classifier (0: none)
    cv_steps: int | None = None   # training steps per fold (default min(run's steps, 200))
    which: str = "best"           # checkpoint: best (falls back to latest) or latest
    n_bins: int = 10
    n_mistakes: int = 10
    n_buckets: int = 8
    sample_tokens: int = 100
    seed: int = 0
    include_predictions: bool = False  # classifiers: y_true, y_pred and probabilities per example (for checks)


@dataclass
class EvaluateResult:
    task: str
    run_dir: str
    checkpoint: str
    step: int
    source: str
    n_examples: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "metrics"}
        out.update(self.metrics)
        return json.loads(json.dumps(out, default=_json_default))


def _json_default(value: Any):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---- loading (the model: engine/lab/loader.py) ---------------------------------------------------------
def _data_input(train_cfg: dict, data: str | None):
    from engine.lab.data import DataInput

    if data is None:
        return DataInput(path=train_cfg.get("data"), sample=train_cfg.get("sample"), task=train_cfg.get("task", "lm"),
                         text_col=train_cfg.get("text_col"), label_col=train_cfg.get("label_col"),
                         tokenizer=train_cfg.get("tokenizer", "byte"), bpe_vocab=train_cfg.get("bpe_vocab", 4096),
                         val_fraction=train_cfg.get("val_fraction", 0.1), seed=train_cfg.get("seed", 0))
    return DataInput(path=data, task=train_cfg.get("task", "lm"), text_col=train_cfg.get("text_col"),
                     label_col=train_cfg.get("label_col"), tokenizer=train_cfg.get("tokenizer", "byte"))


# ---- classifiers -----------------------------------------------------------------------------------------
def classification_metrics(y_true, y_pred, proba, label_names: list[str], n_bins: int = 10) -> dict[str, Any]:
    """Accuracy, per-class and averaged precision/recall/F1, confusion matrix, reliability diagram and ECE
    of predictions ``y_pred`` (indices into ``label_names``) with class probabilities ``proba`` [n, k]."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    labels = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, name in enumerate(label_names)}
    averages = {}
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        averages[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    conf = proba.max(axis=1)
    correct = (y_pred == y_true).astype(np.int64)
    # the bins calibration_curve uses (uniform strategy): edges linspace(0, 1, n_bins + 1), searchsorted
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], conf)
    counts = np.bincount(ids, minlength=n_bins)
    if len(np.unique(correct)) > 1:
        prob_true, prob_pred = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform")
    else:  # all right or all wrong: calibration_curve needs both outcomes; the bin means are exact here
        nz = counts > 0
        prob_true = np.full(int(nz.sum()), float(correct[0]))
        prob_pred = np.bincount(ids, weights=conf, minlength=n_bins)[nz] / counts[nz]
    nonempty = np.flatnonzero(counts)
    bins = [{"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(counts[b]),
             "accuracy": float(prob_true[i]), "confidence": float(prob_pred[i])} for i, b in enumerate(nonempty)]
    ece = float(sum(counts[b] / len(conf) * abs(prob_true[i] - prob_pred[i]) for i, b in enumerate(nonempty)))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro": averages["macro"], "weighted": averages["weighted"], "per_class": per_class,
        "confusion_matrix": {"labels": list(label_names), "matrix": cm.tolist()},
        "ece": ece, "reliability": {"n_bins": n_bins, "bins": bins,
                                    "basis": "top-class confidence, equal-width bins (sklearn calibration_curve)"},
    }


def _predict(model, ds, batch: int = 64):
    import torch

    logits = []
    with torch.no_grad():
        for x, mask, _ in ds.eval_batches("val", batch, ds.context):
            logits.append(model(x, mask).float())
    proba = torch.softmax(torch.cat(logits), dim=-1).numpy()
    return proba.argmax(axis=1), proba


def cv_splits(labels, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train, test) index pairs (``StratifiedKFold(shuffle=True, random_state=seed)``);
    a ValidationError when a label has fewer than k rows."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    k = int(require_number("folds", k, low=2, high=50, integer=True))
    values, counts = np.unique(labels, return_counts=True)
    if counts.min() < k:
        raise ValidationError(f"--folds {k}: label {values[counts.argmin()]!r} has only {counts.min()} rows; "
                              f"stratified k-fold needs at least k rows per label (use --folds {max(2, counts.min())} "
                              f"or fewer)" if counts.min() >= 2 else
                              f"--folds {k}: label {values[counts.argmin()]!r} has a single row; cross-validation "
                              f"needs at least 2 rows per label")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(seed))
    return [(tr, te) for tr, te in skf.split(np.zeros(len(labels)), labels)]


def _train_fold(mcfg, xs: list, ys: np.ndarray, train_cfg: dict, resolved: dict, steps: int, seed: int, pad_id: int):
    """A fresh model of the run's architecture trained ``steps`` AdamW steps (the run's lr, warmup share,
    weight decay, batch size and schedule) on rows ``xs``/``ys``; returns it in eval mode."""
    import torch
    import torch.nn.functional as F

    from engine.lab.model import Transformer, configure_optimizer
    from engine.lab.trainer import lr_at

    torch.manual_seed(seed)
    model = Transformer(mcfg)
    lr = float(resolved.get("lr") or train_cfg.get("lr") or 1e-3)
    opt = configure_optimizer(model, lr, float(train_cfg.get("weight_decay", 0.1)),
                              tuple(train_cfg.get("betas") or (0.9, 0.95)), "cpu")
    batch = int(resolved.get("batch_size") or train_cfg.get("batch_size") or 32)
    full_steps = int(resolved.get("max_steps") or steps)
    warmup = max(0, round(int(resolved.get("warmup_steps") or 0) * steps / max(1, full_steps)))
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, lr=lr, warmup=warmup, max_steps=steps,
                            min_lr_ratio=float(train_cfg.get("min_lr_ratio", 0.1)))
        rows = rng.integers(0, len(xs), size=min(batch, len(xs)))
        T = max(1, max(len(xs[i]) for i in rows))
        x = np.full((len(rows), T), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=bool)
        for j, i in enumerate(rows):
            x[j, : len(xs[i])] = xs[i]
            mask[j, : len(xs[i])] = True
        loss = F.cross_entropy(model(torch.from_numpy(x), torch.from_numpy(mask)).float(),
                               torch.from_numpy(np.asarray(ys, dtype=np.int64)[rows]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(train_cfg.get("grad_clip", 1.0)) or 1e9)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return model


def _evaluate_classifier(inp: EvaluateInput, model, mcfg, tok, config: dict) -> tuple[dict, str, int]:
    from engine.lab.data import Dataset, _encode_rows, _load_raw, load_dataset

    train_cfg = config.get("train") or {}
    names = list((config.get("data") or {}).get("label_names") or [])
    if len(names) != mcfg.n_classes:
        raise ValidationError(f"run {inp.run}: config.json lists {len(names)} labels but the model has "
                              f"{mcfg.n_classes} classes")
    di = _data_input(train_cfg, inp.data)
    context = mcfg.context
    if inp.data is None:
        ds = load_dataset(di, context, tokenizer=tok)
        if list(ds.label_names) != names:
            raise ValidationError(f"the run's data now has labels {ds.label_names}, the run was trained on {names}; "
                                  f"the data changed since training")
        source = "the run's validation split"
        all_x = list(ds.train_x) + list(ds.val_x)
        all_y = np.concatenate([ds.train_y, ds.val_y])
    else:
        raw = _load_raw(di)
        labels = raw.labels or []
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise ValidationError(f"{Path(inp.data).name}: labels {unknown[:5]} are not among the run's labels "
                                  f"{names}; the label sets differ, so the model cannot be scored on this file")
        if not labels:
            raise ValidationError(f"{Path(inp.data).name} has no labelled rows")
        keep = min(len(labels), MAX_EVAL_ROWS)
        rows, _ = _encode_rows(tok, raw.texts[:keep], context)
        index = {n: i for i, n in enumerate(names)}
        y = np.array([index[v] for v in labels[:keep]], dtype=np.int64)
        ds = Dataset(task="classify", tokenizer=tok, context=context, data_input=di, source=raw.source,
                     train_x=[], train_y=np.zeros(0, dtype=np.int64), val_x=rows, val_y=y, label_names=names)
        source = f"{Path(inp.data).name} (all {keep} labelled rows" + (f" of {len(labels)})" if keep < len(labels) else ")")
        all_x, all_y = rows, y
    y_pred, proba = _predict(model, ds)
    y_true = np.asarray(ds.val_y, dtype=np.int64)
    out = classification_metrics(y_true, y_pred, proba, names, inp.n_bins)
    texts = _val_texts(ds, tok)
    wrong = np.flatnonzero(y_pred != y_true)
    order = wrong[np.argsort(-proba[wrong, y_pred[wrong]], kind="stable")][: inp.n_mistakes]
    out["confident_mistakes"] = [{"text": texts[i], "true": names[y_true[i]], "predicted": names[y_pred[i]],
                                  "confidence": float(proba[i, y_pred[i]])} for i in order]
    if inp.include_predictions:
        out["predictions"] = {"y_true": y_true.tolist(), "y_pred": y_pred.tolist(), "proba": proba.tolist()}
    if inp.folds:
        out["cv"] = _cross_validate(inp, mcfg, tok, config, all_x, all_y, names)
    return out, source, len(y_true)


def _val_texts(ds, tok) -> list[str]:
    return [tok.decode([int(t) for t in row]) for row in ds.val_x]


def _cross_validate(inp: EvaluateInput, mcfg, tok, config: dict, xs: list, ys: np.ndarray, names: list[str]) -> dict:
    import torch

    train_cfg, resolved = config.get("train") or {}, config.get("resolved") or {}
    steps = inp.cv_steps or min(int(resolved.get("max_steps") or CV_MAX_STEPS), CV_MAX_STEPS)
    steps = int(require_number("cv-steps", steps, low=1, high=100_000, integer=True))
    folds = []
    from sklearn.metrics import f1_score

    for i, (tr, te) in enumerate(cv_splits(ys, inp.folds, inp.seed)):
        model = _train_fold(mcfg, [xs[j] for j in tr], ys[tr], train_cfg, resolved, steps, inp.seed + i, tok.pad_id)
        from engine.lab.data import Dataset

        ds = Dataset(task="classify", tokenizer=tok, context=mcfg.context, data_input=None, source={},
                     train_x=[], train_y=np.zeros(0, dtype=np.int64), val_x=[xs[j] for j in te], val_y=ys[te],
                     label_names=names)
        with torch.no_grad():
            pred, _ = _predict(model, ds)
        f1 = float(f1_score(ys[te], pred, labels=list(range(len(names))), average="macro", zero_division=0))
        folds.append({"fold": i, "n_train": int(len(tr)), "n_test": int(len(te)), "macro_f1": f1,
                      "test_label_counts": {names[c]: int(n) for c, n in enumerate(np.bincount(ys[te], minlength=len(names)))}})
    scores = np.array([f["macro_f1"] for f in folds])
    return {"k": int(inp.folds), "metric": "macro_f1", "mean": float(scores.mean()), "std": float(scores.std(ddof=1)),
            "folds": folds, "steps_per_fold": steps, "rows": int(len(ys)),
            "basis": (f"StratifiedKFold(k={inp.folds}, shuffle, seed {inp.seed}) over all labelled rows (train + "
                      f"validation); each fold trains a fresh model with the run's architecture and optimiser for "
                      f"{steps} steps (bounded; the run itself may have trained longer), std is the sample std (ddof 1)")}


# ---- language models -------------------------------------------------------------------------------------
def _evaluate_lm(inp: EvaluateInput, model, mcfg, tok, config: dict) -> tuple[dict, str, int]:
    import torch
    import torch.nn.functional as F

    from engine.lab.data import _encode_docs, _load_raw, load_dataset

    train_cfg = config.get("train") or {}
    di = _data_input(train_cfg, inp.data)
    T = mcfg.context
    if inp.data is None:
        ids = load_dataset(di, T, tokenizer=tok).val_ids
        source = "the run's validation split"
    else:
        ids = _encode_docs(tok, _load_raw(di).texts)
        source = Path(inp.data).name
    ids = np.asarray(ids, dtype=np.int64)
    n_windows = min(MAX_LM_WINDOWS, (len(ids) - 1) // T)
    if n_windows < 1:
        raise ValidationError(f"{source} has {len(ids)} tokens, fewer than the model's context + 1 = {T + 1}")
    x = torch.from_numpy(ids[: n_windows * T].reshape(n_windows, T))
    y = torch.from_numpy(ids[1: n_windows * T + 1].reshape(n_windows, T))
    losses = []
    with torch.no_grad():
        for i in range(0, n_windows, 16):
            logits = model(x[i:i + 16]).float()
            losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + 16].reshape(-1),
                                          reduction="none").reshape(-1, T))
    loss = torch.cat(losses).double()  # [windows, T] nats per target token
    total_nats = float(loss.sum())
    n_tokens = int(loss.numel())
    scored_text = tok.decode(ids[1: n_windows * T + 1].tolist())
    n_bytes = len(scored_text.encode("utf-8"))
    val_loss = total_nats / n_tokens
    edges = np.linspace(0, T, min(inp.n_buckets, T) + 1).round().astype(int)
    by_pos = [{"start": int(a), "end": int(b), "loss": float(loss[:, a:b].mean())}
              for a, b in zip(edges[:-1], edges[1:]) if b > a]
    samples = []
    for seed in SAMPLE_SEEDS:
        gen = torch.Generator().manual_seed(seed)
        out = model.generate(torch.tensor([[tok.eos_id]]), inp.sample_tokens, temperature=0.8, top_k=40, generator=gen)
        samples.append({"seed": seed, "text": tok.decode([i for i in out[0, 1:].tolist() if i != tok.pad_id])})
    metrics = {
        "val_loss": val_loss, "perplexity": math.exp(min(val_loss, 700.0)),
        "bits_per_byte": total_nats / (math.log(2) * n_bytes) if n_bytes else None,
        "tokens_scored": n_tokens, "bytes_scored": n_bytes, "bytes_per_token": n_bytes / n_tokens,
        "by_position": by_pos, "samples": samples,
        "basis": (f"{n_windows} non-overlapping windows of {T} tokens from the start of the stream; bits per byte = "
                  f"total nats / (ln 2 × UTF-8 bytes of the scored text, specials dropped); samples: temperature "
                  f"0.8, top-k 40, seeds {list(SAMPLE_SEEDS)}"),
    }
    return metrics, source, n_tokens


def evaluate(inp: EvaluateInput) -> EvaluateResult:
    """The evaluation report of the run ``inp.run`` (see the module docstring)."""
    from engine.requires import require_torch

    require_torch("evaluating a run")
    if inp.which not in ("best", "latest"):
        raise ValidationError(f"which must be best or latest, got {inp.which!r}")
    folds = int(require_number("folds", inp.folds, low=0, high=50, integer=True))
    if folds == 1:
        raise ValidationError("--folds 1 is not cross-validation; give k >= 2 (or 0 for none)")
    for name in ("n_bins", "n_mistakes", "n_buckets"):
        require_number(name, getattr(inp, name), low=1, high=1000, integer=True)
    from engine.lab.loader import load_run

    loaded = load_run(inp.run, inp.which)
    run_dir, model, mcfg, tok, config = Path(loaded.source), loaded.model, loaded.config, loaded.tokenizer, loaded.run_config
    if tok is None or not config:
        raise ValidationError(f"{run_dir} is not a Preflight run folder (it needs config.json and tokenizer.json)")
    if mcfg.n_classes:
        metrics, source, n = _evaluate_classifier(inp, model, mcfg, tok, config)
        task = "classify"
    else:
        if folds:
            raise ValidationError("--folds is for classifiers; this run trained a language model")
        metrics, source, n = _evaluate_lm(inp, model, mcfg, tok, config)
        task = "lm"
    return EvaluateResult(task=task, run_dir=str(run_dir), checkpoint=loaded.checkpoint, step=loaded.step, source=source,
                          n_examples=n, metrics=metrics)


# ---- for the page: evaluation in its own process ----------------------------------------------------------
REPORT = "evaluation.json"
LOG = "evaluation.log"
JOB = "evaluation.job.json"  # the background evaluation's record (engine/jobs.py)


def save_report(result: EvaluateResult) -> Path:
    """Write the report next to the run (``evaluation.json``, atomically); the page reads it from there."""
    from engine.access import require_write
    from engine.lab.checkpoint import atomic_write_text

    require_write("saving an evaluation report")
    path = Path(result.run_dir) / REPORT
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1))
    return path


def start_evaluation(run_dir: str | os.PathLike, folds: int = 0) -> str:
    """Start ``preflight evaluate --save`` for a run through the job runner (cross-validation can take
    minutes); its report lands in ``<run>/evaluation.json``, its errors in ``<run>/evaluation.log`` and its
    record in ``<run>/evaluation.job.json``. Returns the run folder, for :func:`evaluation_status`."""
    from engine import jobs as runner
    from engine.access import require_write

    require_write("evaluating a run (it saves a report)")
    run_dir = resolve_run_dir(str(run_dir))
    folds = int(require_number("folds", folds, low=0, high=50, integer=True))
    if folds == 1:
        raise ValidationError("k-fold needs k >= 2 (or 0 for none)")
    from engine.lab import checkpoint as ck

    if ck.latest_path(run_dir) is None:
        raise ValidationError(f"run {run_dir.name} has no checkpoint to evaluate yet")
    runner.start("engine", ["evaluate", "--run", str(run_dir), "--folds", str(folds), "--save", "--json"], run_dir,
                 log=LOG, stdout=runner.DISCARD, append=False, record=JOB)
    return str(run_dir)


def read_report(run_dir: str | os.PathLike) -> dict | None:
    path = Path(run_dir) / REPORT
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def evaluation_status(run_dir: str | os.PathLike) -> dict:
    """The background evaluation of a run now: {'status': running|done|failed, 'result': the report written
    since it started, 'error': the last line of its log}; 'status' is 'none' when no evaluation was started."""
    from engine import jobs as runner

    folder = Path(run_dir)
    rec = runner.read_record(folder, JOB)
    if rec is None:
        return {"status": "none", "result": None, "error": None}

    def fresh() -> dict | None:  # a report from an earlier evaluation is not this one's result
        try:
            if (folder / REPORT).stat().st_mtime < float(rec.get("started") or 0.0) - 1.0:
                return None
        except OSError:
            return None
        return read_report(folder)

    s = runner.status(folder, fresh, record=JOB, log=LOG, dead="the evaluation ended without a report")
    error = s.error.replace("preflight: error: ", "") if s.error else None
    return {"status": s.status, "result": s.result, "error": error}
