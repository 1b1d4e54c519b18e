"""Run every data check over a file (and an optional test split) in chunks; score and report.

The readiness score starts at 100 and loses, per finding, ``weight[severity] × fraction``, where
``fraction = 0.25 + 0.75 · min(1, share / 0.10)``: a problem touching any row costs a quarter of its
weight and one touching 10% or more of the rows (``share``, the finding's ``details["share"]`` or
``rows_total / rows``) costs all of it. The findings of one check together cost at most the weight of
their worst severity, so ten low-severity outlier columns weigh like one. Any critical finding caps
the score at 40 (not ready to train). The weights travel with the report (``weights``) and every
finding's ``penalty`` shows its part.

The link to the cost estimator follows Chinchilla's rule of thumb that a compute-optimal model sees
about 20 tokens per parameter (Hoffmann et al. 2022, Table 3): N = D / 20, costed by
:func:`engine.estimate.training.estimate_training` on an H100 SXM at its typical MFU. Beside it,
``estimate["finetune"]`` prices fine-tuning an open model on the same tokens (QLoRA of Llama 3 8B on the
cheapest GPU type that holds it: :func:`engine.estimate.finetune_link.finetune_for_tokens`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.datacheck import values
from engine.datacheck.base import SEVERITIES, SEVERITY_RANK, Check, Context, Finding
from engine.datacheck.checks import CHECKS
from engine.datacheck.identifiers import identifier_columns
from engine.datacheck.infer import resolve_columns
from engine.tabular import DEFAULT_CHUNK_ROWS, Dataset, encoding_label, open_dataset
from engine.errors import ValidationError, require_choice, require_number

SEVERITY_WEIGHTS = {"critical": 40.0, "high": 20.0, "medium": 10.0, "low": 4.0, "info": 0.0}
MIN_FRACTION = 0.25
FULL_AT_SHARE = 0.10
CRITICAL_CAP = 40
TOKENS_PER_PARAM = 20.0
ESTIMATE_GPU = "h100-sxm"
_SKIP_REASON = {"text": "no text column (give --text)", "label": "no label column (give --label)",
                "test": "no test file (give --test)"}

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CheckInput:
    """What to check: a file, optionally a test split, the text and label columns (inferred if None)."""

    path: str | Path
    test_path: str | Path | None = None
    text_col: str | None = None
    label_col: str | None = None
    near_dup_threshold: float = 0.8
    max_bytes: int | None = None
    schema_path: str | Path | None = None      # validate against this saved schema
    save_schema: str | Path | None = None      # write the inferred schema here
    fix_out: str | Path | None = None          # write the cleaned file here (test: <stem>.test<ext>)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    checks: tuple[str, ...] | None = None      # ids to run; None = all
    sheet: str | None = None                   # a workbook's sheet (default: the first); train file only
    engine: str = "local"                      # "local" (this process) or "dask" (engine.datacheck.distributed)
    workers: int = 2                           # dask: worker processes of the local cluster
    scheduler: str | None = None               # dask: tcp://HOST:PORT of a running scheduler
    worker_memory: str = "2GiB"                # dask: memory limit of each local worker


@dataclass
class CheckReport:
    score: int
    rows: int
    columns: int
    tokens: dict[str, Any] | None
    findings: list[Finding]
    column_names: list[str]
    test_rows: int | None
    text_col: str | None
    label_col: str | None
    format: str
    file: str
    test_file: str | None
    checks_run: list[dict[str, Any]]
    weights: dict[str, Any]
    charts: dict[str, Any]
    elapsed_s: float
    estimate: dict[str, Any] | None
    fix: dict[str, Any] | None = None
    encoding: str = "UTF-8"                    # the training file's text encoding as read
    sheet: str | None = None                   # workbooks: the sheet checked ...
    sheets: list[str] = field(default_factory=list)  # ... of these
    schema_saved: str | None = None
    penalties: list[dict[str, Any]] = field(default_factory=list)
    id_columns: list[str] = field(default_factory=list)   # identifiers: no outliers, drift or constant check
    engine: dict[str, Any] | None = None       # {name, scheduler, workers, partitions}

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "findings"}
        out["findings"] = [f.to_dict() for f in self.findings]
        return jsonable(out)


def jsonable(obj: Any) -> Any:
    """Plain JSON types only, no NaN or infinity (they become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ---- scoring -----------------------------------------------------------------------------------------

def finding_share(f: Finding, rows: int, test_rows: int | None) -> float:
    share = f.details.get("share") if isinstance(f.details, dict) else None
    if not isinstance(share, (int, float)) or not math.isfinite(share):
        n = (test_rows or 0) if f.split == "test" else rows
        share = (f.rows_total or f.count) / max(1, n)
    return min(1.0, max(0.0, float(share)))


def score_findings(findings: list[Finding], rows: int, test_rows: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(score 0-100, the penalty of each finding) by the formula in the module docstring."""
    by_check: dict[str, list[tuple[Finding, float]]] = {}
    for f in findings:
        fraction = MIN_FRACTION + (1 - MIN_FRACTION) * min(1.0, finding_share(f, rows, test_rows) / FULL_AT_SHARE)
        by_check.setdefault(f.id, []).append((f, SEVERITY_WEIGHTS[f.severity] * fraction))
    penalties = []
    total = 0.0
    for cid, items in by_check.items():
        cap = max(SEVERITY_WEIGHTS[f.severity] for f, _ in items)
        raw = sum(p for _, p in items)
        scale = cap / raw if raw > cap else 1.0
        for f, p in items:
            penalties.append({"id": cid, "column": f.column, "split": f.split, "severity": f.severity,
                              "penalty": round(p * scale, 2)})
        total += raw * scale
    score = max(0.0, 100.0 - total)
    if any(f.severity == "critical" for f in findings):
        score = min(score, CRITICAL_CAP)
    return int(round(score)), penalties


def weights_doc() -> dict[str, Any]:
    return {
        "severity": SEVERITY_WEIGHTS, "min_fraction": MIN_FRACTION, "full_at_share": FULL_AT_SHARE,
        "critical_cap": CRITICAL_CAP,
        "formula": ("score = 100 - sum(weight[severity] * (0.25 + 0.75 * min(1, share / 0.10))), the findings of "
                    "one check costing at most the weight of their worst severity; any critical finding caps the "
                    "score at 40"),
    }


# ---- the estimator link -----------------------------------------------------------------------------

def estimate_for_tokens(tokens: float | None) -> dict[str, Any] | None:
    """What a compute-optimal model trained on ``tokens`` costs (None when there is no count)."""
    if not tokens or tokens <= 0:
        return None
    from engine.estimate.training import TrainingInput, estimate_training

    params = max(1.0, tokens / TOKENS_PER_PARAM)
    try:
        est = estimate_training(TrainingInput(tokens=float(tokens), gpu=ESTIMATE_GPU, params=params))
    except ValidationError:
        return None
    out = {"tokens": float(tokens), "params": params, "tokens_per_param": TOKENS_PER_PARAM, "gpu": est.gpu,
           "flops": est.flops_total, "gpu_hours": est.gpu_hours, "cost_usd": est.cost_usd, "mfu": est.mfu}
    out["sentence"] = estimate_sentence(out)
    out["source"] = "Hoffmann et al. 2022 (Chinchilla), ~20 tokens per parameter; engine.estimate.training"
    # Beside it, what founders usually do instead: fine-tune an open model (QLoRA of a mid-size preset).
    from engine.estimate.finetune_link import finetune_for_tokens

    out["finetune"] = finetune_for_tokens(tokens)
    return out


def estimate_sentence(estimate: dict[str, Any], currency: Any = None) -> str:
    """The estimator link as one sentence, its cost in ``currency`` (an ``engine.money.Currency``;
    default USD). Rebuilt from the stored figures, so a saved report reads in any currency."""
    from engine.money import get_currency

    cur = currency or get_currency()
    cost = cur.from_usd(estimate["cost_usd"])
    s = cur.symbol
    shown_cost = f"under {s}0.01" if cost < 0.01 else f"about {s}{cost:,.2f}" if cost < 100 else f"about {s}{cost:,.0f}"
    hours = estimate["gpu_hours"]
    shown_hours = ("under one GPU-second" if hours < 1 / 3600 else f"{hours * 3600:.2g} GPU-seconds" if hours < 1 / 60 else f"{hours * 60:.1f} GPU-minutes" if hours < 1
                   else f"{hours:,.1f} GPU-hours")
    return (f"Training a compute-optimal model on these {_si(estimate['tokens'])} tokens (about {_si(estimate['params'])} "
            f"parameters at Chinchilla's ~20 tokens per parameter) takes {estimate['flops']:.2g} FLOPs: {shown_hours} on an "
            f"H100 SXM, {shown_cost}.")


def _si(x: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


# ---- the run ----------------------------------------------------------------------------------------

def _validate(inp: CheckInput) -> tuple[str, ...] | None:
    require_number("near-dup threshold", inp.near_dup_threshold, low=0, low_inclusive=False, high=1)
    require_number("chunk rows", inp.chunk_rows, low=1, high=10_000_000, integer=True)
    if inp.max_bytes is not None:
        require_number("max bytes", inp.max_bytes, low=1, integer=False)
    if inp.checks is None:
        return None
    known = [c.id for c in CHECKS]
    if isinstance(inp.checks, str):
        raise ValidationError("checks must be a list of check ids, not one string")
    return tuple(require_choice("check", c, known) for c in inp.checks)


def _open(inp: CheckInput) -> tuple[Dataset, Dataset | None, Context]:
    """Open the file (and the test split), resolve the text and label columns, load a saved schema, and
    build the context every check sees."""
    train = open_dataset(inp.path, max_bytes=inp.max_bytes, sheet=inp.sheet)
    test = open_dataset(inp.test_path, max_bytes=inp.max_bytes) if inp.test_path is not None else None
    assert train.head is not None
    text_col, label_col = resolve_columns(train.head, train.format, inp.text_col, inp.label_col)
    if test is not None:
        for what, col in (("text", text_col), ("label", label_col)):
            if col is not None and col not in test.columns:
                raise ValidationError(f"the test file has no {what} column {col!r}; its columns: "
                                      + ", ".join(repr(c) for c in test.columns[:20]))
    saved_schema = None
    if inp.schema_path is not None:
        from engine.datacheck.checks.schema import load_schema

        saved_schema = load_schema(inp.schema_path)

    id_columns = identifier_columns(train.head, exclude=(text_col, label_col))
    ctx = Context(kind="text" if text_col else "tabular", columns=list(train.columns), text_col=text_col,
                  label_col=label_col, has_test=test is not None, id_columns=id_columns,
                  options={"near_dup_threshold": float(inp.near_dup_threshold), "source": train.name,
                           "encoding": train.encoding, "test_encoding": test.encoding if test is not None else None,
                           "schema": saved_schema, "format": train.format,
                           "test_columns": list(test.columns) if test is not None else None})
    return train, test, ctx


def _select_checks(ctx: Context, wanted: tuple[str, ...] | None,
                   test: Dataset | None) -> tuple[list[Check], dict[str, dict[str, Any]]]:
    """The checks that apply to this file, and a status row for every wanted check (skipped ones say why)."""
    status: dict[str, dict[str, Any]] = {}
    checks: list[Check] = []
    for cls in CHECKS:
        if wanted is not None and cls.id not in wanted:
            continue
        check = cls()
        status[cls.id] = {"id": cls.id, "title": cls.title, "status": "ok", "reason": None, "findings": 0}
        if not check.applies(ctx):
            missing = [n for n in cls.needs if not {"text": ctx.text_col, "label": ctx.label_col, "test": test}.get(n)]
            status[cls.id].update(status="skipped",
                                  reason="; ".join(_SKIP_REASON[n] for n in missing) or "does not apply to this file")
            continue
        checks.append(check)
    return checks, status


def _collect(checks: list[Check], ctx: Context, call: Callable, failed: set[int],
             status: dict[str, dict[str, Any]]) -> list[Finding]:
    """Every check's findings (a check that failed has none), worst first."""
    findings: list[Finding] = []
    for check in checks:
        got = call(check, "finish", ctx)
        if id(check) in failed:
            continue
        got = list(got or [])
        findings.extend(got)
        status[check.id]["findings"] = len(got)
        if any(f.severity != "info" for f in got):
            status[check.id]["status"] = "finding"
    findings.sort(key=lambda f: (SEVERITY_RANK[f.severity], -f.count, f.id, f.column or ""))
    return findings


def _save_schema(inp: CheckInput, ctx: Context) -> str | None:
    """Write the inferred schema where ``--save-schema`` asks (its path), or None."""
    if inp.save_schema is None:
        return None
    from engine.datacheck.checks.schema import save_schema

    if "schema" not in ctx.shared:
        raise ValidationError("--save-schema needs the schema check; do not leave it out of --checks")
    return str(save_schema(ctx.shared["schema"], inp.save_schema))


class _Stats:
    """What the runner itself gathers for the charts (pass 1, train)."""

    BINS = np.array([0, 1, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 1 << 62])

    def __init__(self) -> None:
        self.missing: dict[str, int] = {}
        self.labels: dict[str, int] = {}
        self.test_labels: dict[str, int] = {}
        self.lengths = np.zeros(len(self.BINS) - 1, np.int64)

    def update(self, chunk, ctx: Context) -> None:
        import pyarrow.compute as pc

        if ctx.split == "train":
            for col in chunk.columns:
                self.missing[col] = self.missing.get(col, 0) + int(values.missing_mask(chunk[col]).sum())
            if ctx.text_col is not None and ctx.text_col in chunk.columns:
                lens = pc.fill_null(pc.utf8_length(values.to_arrow_str(chunk[ctx.text_col])), 0).to_numpy(zero_copy_only=False)
                self.lengths += np.histogram(lens, bins=self.BINS)[0]
        if ctx.label_col is not None and ctx.label_col in chunk.columns:
            s = chunk[ctx.label_col]
            counts = s[~values.missing_mask(s)].astype("str").str.strip().value_counts()
            target = self.labels if ctx.split == "train" else self.test_labels
            if len(target) < 10_000:
                for k, v in counts.items():
                    target[k] = target.get(k, 0) + int(v)

    def merge(self, other: "_Stats") -> None:
        """Add another partition's figures (the Dask engine's combine step)."""
        for mine, theirs in ((self.missing, other.missing), (self.labels, other.labels),
                             (self.test_labels, other.test_labels)):
            for k, v in theirs.items():
                if k in mine or len(mine) < 10_000:
                    mine[k] = mine.get(k, 0) + v
        self.lengths += other.lengths

    def charts(self, ctx: Context) -> dict[str, Any]:
        def top(d: dict[str, int]) -> dict[str, int]:
            return dict(sorted(d.items(), key=lambda kv: -kv[1])[:30])

        out: dict[str, Any] = {"missing_by_column": self.missing}
        if ctx.label_col is not None:
            out["label_counts"] = top(self.labels)
            if ctx.has_test:
                out["test_label_counts"] = top(self.test_labels)
        if ctx.text_col is not None:
            edges = self.BINS.tolist()
            edges[-1] = None
            out["text_length_hist"] = {"edges": edges, "counts": self.lengths.tolist(), "unit": "characters"}
        return out


def stream_checks(train: Dataset, test: Dataset | None, ctx: Context, checks: list[Check], stats: _Stats | None,
                  tell: Progress, chunk_rows: int, call: Callable, failed: set[int],
                  span: tuple[float, float, float] = (0.0, 0.85, 0.93)) -> None:
    """Feed every chunk of train (then test) to the checks that want it, and train again to the
    two-pass checks; ``call(check, method, *args)`` runs one hook (a failing check is added to
    ``failed``). ``stats`` gathers the charts' figures on pass 1 (None: do not gather)."""
    lo0, span1, span2 = span
    test_size = test.size_bytes if test is not None else 0
    total_bytes = max(1, train.size_bytes + test_size)

    def feed(ds: Dataset, split: str, who: list[Check], lo: float, hi: float, gather: bool) -> int:
        ctx.split = split  # type: ignore[assignment]
        rows = 0
        for chunk in ds.chunks(chunk_rows):
            values.clear_cache()
            rows = int(chunk.index[-1]) + 1 if len(chunk) else rows
            if split == "train":
                ctx.rows = rows
            else:
                ctx.test_rows = rows
            if gather and stats is not None:
                stats.update(chunk, ctx)
            for check in who:
                call(check, "update", chunk, ctx)
            tell(lo + (hi - lo) * ds.fraction(), f"{split}: {rows:,} rows checked")
        values.clear_cache()
        return rows

    train_share = train.size_bytes / total_bytes
    mid = lo0 + (span1 - lo0) * train_share
    feed(train, "train", [c for c in checks if "train" in c.splits], lo0, mid, True)
    if test is not None:
        feed(test, "test", [c for c in checks if "test" in c.splits], mid, span1, True)
    ctx.split = "train"
    again = [c for c in checks if getattr(c, "passes", 1) >= 2 and id(c) not in failed]
    if again:
        for check in again:
            call(check, "start_pass", 2, ctx)
        feed(train, "train", again, span1, span2, False)
        ctx.split = "train"


def engine_spec(inp: CheckInput):
    """The engine a CheckInput asks for (validated): :class:`engine.datacheck.engine_spec.EngineSpec`."""
    from engine.datacheck.engine_spec import EngineSpec

    return EngineSpec.of(inp.engine, inp.workers, inp.scheduler, inp.worker_memory)


def run_checks(inp: CheckInput, progress: Progress | None = None) -> CheckReport:
    """Read the file(s) in chunks, run the checks, score them; see the module docstring."""
    started = time.perf_counter()
    wanted = _validate(inp)
    engine_spec(inp)  # an unknown engine or a bad scheduler address is refused before any reading
    tell = progress or (lambda fraction, message: None)
    tell(0.0, "opening the file")
    train, test, ctx = _open(inp)
    text_col, label_col, id_columns = ctx.text_col, ctx.label_col, ctx.id_columns
    checks, status = _select_checks(ctx, wanted, test)

    failed: set[int] = set()

    def call(check: Check, method: str, *args):
        if id(check) in failed:
            return None
        t = time.perf_counter()
        try:
            return getattr(check, method)(*args)
        except ValidationError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken check must not sink the report
            failed.add(id(check))
            status[check.id].update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        finally:
            status[check.id]["seconds"] = round(status[check.id].get("seconds", 0.0) + time.perf_counter() - t, 3)

    def fail(check: Check, reason: str) -> None:
        failed.add(id(check))
        status[check.id].update(status="error", reason=reason[:240])

    for check in checks:
        call(check, "start", ctx)

    stats = _Stats()
    if engine_spec(inp).name == "dask":
        from engine.datacheck.distributed import run_on_dask

        engine_block = run_on_dask(engine_spec(inp), train, test, ctx, checks, stats, tell, inp.chunk_rows,
                                   fail, stream_checks)
    else:
        stream_checks(train, test, ctx, checks, stats, tell, inp.chunk_rows, call, failed)
        engine_block = {"name": "local", "scheduler": None, "workers": 1,
                        "partitions": len(getattr(train, "shards", None) or [train])}
    tell(0.93, "summarizing")
    findings = _collect(checks, ctx, call, failed, status)
    score, penalties = score_findings(findings, ctx.rows, ctx.test_rows if test is not None else None)
    schema_saved = _save_schema(inp, ctx)
    fix = None
    if inp.fix_out is not None:
        from engine.datacheck.fixes import apply_fixes

        tell(0.95, "writing the cleaned file")
        fix = apply_fixes(train, test, ctx, findings, inp.fix_out, chunk_rows=inp.chunk_rows).to_dict()

    tokens = ctx.shared.get("tokens")
    tokens = dict(tokens) if isinstance(tokens, dict) else None
    estimate = estimate_for_tokens(tokens.get("total") if tokens else None)
    tell(1.0, "done")
    return CheckReport(
        score=score, rows=ctx.rows, columns=len(train.columns), tokens=tokens, findings=findings,
        column_names=list(train.columns), test_rows=ctx.test_rows if test is not None else None,
        text_col=text_col, label_col=label_col, format=train.format + (".gz" if train.compressed else ""),
        file=train.name, test_file=test.name if test is not None else None,
        checks_run=list(status.values()), weights=weights_doc(), charts=stats.charts(ctx),
        elapsed_s=round(time.perf_counter() - started, 3), estimate=estimate, fix=fix,
        schema_saved=schema_saved, penalties=penalties, id_columns=id_columns,
        encoding=encoding_label(train.encoding), sheet=train.sheet, sheets=list(train.sheets),
        engine=engine_block,
    )


RunStats = _Stats  # the charts' figures; the Dask engine gathers them per partition and merges them

__all__ = ["CheckInput", "RunStats", "stream_checks", "CheckReport", "run_checks", "score_findings", "estimate_for_tokens", "estimate_sentence",
           "SEVERITIES"]
