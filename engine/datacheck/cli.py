"""CLI commands of engine.datacheck (registered by engine/cli.py). Heavy imports stay inside handlers.

``preflight check PATH [--sheet NAME] [--test PATH] [--text COL] [--label COL] [--fix OUT] [--html OUT]
[--save-schema OUT] [--schema PATH] [--near-dup-threshold X] [--max-mb N] [--checks ID,ID]
[--engine local|dask [--workers N] [--scheduler tcp://HOST:PORT] [--worker-memory 2GiB]] [--json]``
(PATH: a file, a folder of shards or a glob) prints the report: score, rows, columns, tokens, findings (see engine.datacheck.runner).
"""

from __future__ import annotations

import argparse


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"near-dup-threshold must be a number in (0, 1], got {text!r}") from None
    if not (0 < value <= 1):
        raise argparse.ArgumentTypeError(f"near-dup-threshold must be in (0, 1], got {text!r}")
    return value


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"max-mb must be a number of megabytes, got {text!r}") from None
    if not (value > 0) or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"max-mb must be > 0, got {text!r}")
    if value * 1e6 < 1:
        raise argparse.ArgumentTypeError(f"max-mb must be at least 0.000001 (one byte), got {text!r}")
    return value


def _ids(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's commands to the top-level parser."""
    p = sub.add_parser("check", parents=[common], help="data checks: is this dataset ready to train on?")
    p.add_argument("path", metavar="PATH",
                   help="CSV, TSV, JSONL, JSON, Parquet, text or Excel (.xlsx/.xls/.ods) file, gzip allowed, or a folder "
                        "or glob of shards (read in file-name order); "
                        "non-UTF-8 text (cp1252, latin-1...) is detected and reported")
    p.add_argument("--sheet", metavar="NAME", help="the workbook sheet to check (default: the first)")
    p.add_argument("--test", metavar="PATH", help="the test/validation split (leakage, drift)")
    p.add_argument("--text", metavar="COL", help="the text column (default: inferred)")
    p.add_argument("--label", metavar="COL", help="the label column (default: inferred)")
    p.add_argument("--fix", metavar="OUT", help="write a cleaned copy here (safe fixes only; test: <stem>.test<ext>)")
    p.add_argument("--html", metavar="OUT", help="also write a standalone HTML report")
    p.add_argument("--save-schema", metavar="OUT", help="save the inferred schema as JSON")
    p.add_argument("--schema", metavar="PATH", help="validate against a saved schema")
    p.add_argument("--near-dup-threshold", type=_ratio, default=0.8, metavar="X", help="Jaccard similarity (default 0.8)")
    p.add_argument("--max-mb", type=_megabytes, metavar="N", help="refuse files larger than N MB (default: no limit)")
    p.add_argument("--checks", type=_ids, metavar="IDS", help="comma-separated check ids to run (default: all)")
    p.add_argument("--engine", default="local", metavar="NAME",
                   help="local (this process, default) or dask (a local cluster, or --scheduler)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="dask: local worker processes (default 2)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask: connect to tcp://HOST:PORT instead of a local cluster")
    p.add_argument("--worker-memory", default="2GiB", metavar="SIZE", help="dask: memory limit per local worker")
    p.set_defaults(handler=_check, human=_human)


def _check(args: argparse.Namespace) -> dict:
    from engine.datacheck.runner import CheckInput, run_checks

    inp = CheckInput(
        path=args.path, test_path=args.test, text_col=args.text, label_col=args.label,
        near_dup_threshold=args.near_dup_threshold,
        max_bytes=int(args.max_mb * 1e6) if args.max_mb is not None else None,
        schema_path=args.schema, save_schema=args.save_schema, fix_out=args.fix, checks=args.checks,
        sheet=args.sheet, engine=args.engine, workers=args.workers, scheduler=args.scheduler,
        worker_memory=args.worker_memory,
    )
    report = run_checks(inp)
    out = report.to_dict()
    if args.html:
        from engine.datacheck.report_html import write_html

        out["html"] = str(write_html(report, args.html, currency=getattr(args, "money", None)))
    return out


def _human(r: dict) -> str:
    from engine.datacheck.text_utils import plural

    lines = [f"{r['file']}: readiness {r['score']}/100 ({plural(r['rows'], 'row')} x {plural(r['columns'], 'column')}"
             + (f", test {plural(r['test_rows'], 'row')}" if r.get("test_rows") is not None else "") + ")"]
    if r.get("sheet"):
        lines.append(f"sheet: {r['sheet']} (of {', '.join(r.get('sheets') or [r['sheet']])})")
    if r.get("encoding") and r["encoding"] != "UTF-8":
        lines.append(f"encoding: {r['encoding']} (not UTF-8; read as {r['encoding']})")
    if r.get("text_col") or r.get("label_col"):
        lines.append(f"text column: {r.get('text_col')}, label column: {r.get('label_col')}")
    if r.get("tokens"):
        lines.append(f"tokens: {r['tokens'].get('total'):,} ({r['tokens'].get('tokenizer')})")
    if r.get("estimate"):
        lines.append(r["estimate"]["sentence"])
        if r["estimate"].get("finetune"):
            lines.append(r["estimate"]["finetune"]["sentence"])
    for f in r["findings"]:
        where = f" [{f['column']}]" if f.get("column") else ""
        split = " (test)" if f.get("split") == "test" else ""
        lines.append(f"  {f['severity'].upper():8} {f['id']}{where}{split}: {f['title']}")
        if f["severity"] != "info":
            lines.append(f"           fix: {f['fix']}")
    for c in r["checks_run"]:
        if c["status"] in ("skipped", "error"):
            lines.append(f"  {c['status']}: {c['id']} ({c['reason']})")
    if r.get("fix"):
        lines.append(f"cleaned file: {r['fix']['path']} ({r['fix']['rows_out']:,} of {plural(r['fix']['rows_in'], 'row')} kept)")
    if r.get("html"):
        lines.append(f"HTML report: {r['html']}")
    if r.get("schema_saved"):
        lines.append(f"schema saved: {r['schema_saved']}")
    return "\n".join(lines)
