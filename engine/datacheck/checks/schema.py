"""schema: the inferred type of every column (an info finding), saved to JSON on request, and a
validation of this file against a saved schema: missing columns (high), new columns (low), type
changes and unexpected missing values (medium). With a test split, columns that differ from train.

A saved schema is ``{"preflight_schema": 1, "source": ..., "rows": n, "columns": [{"name", "type",
"nullable"}]}``, types int, float, bool, date, string (see values.TYPES); a column whose present
values are not at least half one type is ``string``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.datacheck import values
from engine.datacheck.text_utils import agree, plural
from engine.datacheck.base import MAX_EXAMPLES, MAX_ROWS, Check, Context, Finding
from engine.errors import ValidationError

SCHEMA_VERSION = 1
_COMPATIBLE = {"int": {"int"}, "float": {"int", "float"}, "bool": {"bool"}, "date": {"date"}}


def _native_type(dtype: str) -> str:
    kind = np.dtype(dtype).kind if not dtype.startswith(("datetime64[", "str", "string")) else "M"
    if dtype.startswith(("str", "string")):
        return "string"
    return {"i": "int", "u": "int", "f": "float", "b": "bool", "M": "date"}.get(kind, "string")


def infer_schema(prof: values.TypeProfile, source: str = "") -> dict[str, Any]:
    cols = []
    for col, counts in prof.counts.items():
        if col in prof.native:
            try:
                kind = _native_type(prof.native[col])
            except TypeError:
                kind = "string"
        else:
            kind, share = prof.dominant(col)
            if kind == "empty" or share < 0.5:
                kind = "string"
        cols.append({"name": col, "type": kind, "nullable": bool(counts[-1] > 0), "missing": int(counts[-1])})
    return {"preflight_schema": SCHEMA_VERSION, "source": source, "rows": prof.rows_seen, "columns": cols}


def save_schema(schema: dict[str, Any], path: str | Path) -> Path:
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def load_schema(path: str | Path) -> dict[str, Any]:
    """A saved schema, validated (a ValidationError names what is wrong with the file)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"schema file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"schema file {p.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("preflight_schema") != SCHEMA_VERSION or not isinstance(data.get("columns"), list):
        raise ValidationError(f"{p.name} is not a Preflight schema (expected 'preflight_schema': 1 and a 'columns' list)")
    for c in data["columns"]:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or c.get("type") not in values.TYPES:
            raise ValidationError(f"{p.name}: each column needs a 'name' and a 'type' in {', '.join(values.TYPES)}; got {str(c)[:80]}")
    return data


class Schema(Check):
    id = "schema"
    title = "Inferred column types; validation against a saved schema"

    def update(self, chunk: pd.DataFrame, ctx: Context) -> None:
        values.type_profile(ctx).observe(chunk)

    def finish(self, ctx: Context) -> list[Finding]:
        prof = values.type_profile(ctx)
        schema = infer_schema(prof, ctx.options.get("source", ""))
        ctx.shared["schema"] = schema
        kinds = pd.Series([c["type"] for c in schema["columns"]]).value_counts()
        summary = ", ".join(f"{n} {k}" for k, n in kinds.items())
        out = [Finding(
            id=self.id, severity="info", count=len(schema["columns"]),
            title=f"Inferred schema: {plural(len(schema['columns']), 'column')} ({summary})",
            fix="Save it (--save-schema schema.json) and validate later files against it (--schema schema.json)",
            split=ctx.split, details={"columns": schema["columns"]},
        )]
        saved = ctx.options.get("schema")
        if saved:
            out += self._validate(saved, schema, prof, ctx)
        test_cols = ctx.options.get("test_columns")
        if test_cols is not None:
            missing = [c for c in ctx.columns if c not in test_cols]
            extra = [c for c in test_cols if c not in ctx.columns]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"lacks {', '.join(repr(c) for c in missing[:10])}")
                if extra:
                    parts.append(f"adds {', '.join(repr(c) for c in extra[:10])}")
                out.append(Finding(
                    id=self.id, severity="high" if missing else "low", count=len(missing) + len(extra),
                    title=f"The test file's columns differ from train: it {' and '.join(parts)}",
                    fix="Give both splits the same columns (same names, same order)", split="test",
                    details={"missing_in_test": missing, "extra_in_test": extra, "share": 1.0},
                ))
        return out

    def _validate(self, saved: dict, schema: dict, prof: values.TypeProfile, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        now = {c["name"]: c for c in schema["columns"]}
        want = {c["name"]: c for c in saved["columns"]}
        missing = [n for n in want if n not in now]
        extra = [n for n in now if n not in want]
        if missing:
            out.append(Finding(
                id=self.id, severity="high", count=len(missing),
                title=f"{plural(len(missing), 'column')} of the saved schema {agree(len(missing), 'is', 'are')} missing: {', '.join(repr(c) for c in missing[:10])}",
                fix="Restore the columns, or save a new schema if the change is intended",
                split=ctx.split, details={"missing_columns": missing, "share": 1.0},
            ))
        if extra:
            out.append(Finding(
                id=self.id, severity="low", count=len(extra),
                title=f"{plural(len(extra), 'column')} {agree(len(extra), 'is', 'are')} not in the saved schema: {', '.join(repr(c) for c in extra[:10])}",
                fix="Drop them, or save a new schema if they are intended",
                split=ctx.split, details={"extra_columns": extra, "share": len(extra) / max(1, len(now))},
            ))
        rows = max(1, prof.rows_seen)
        for name, spec in want.items():
            if name not in now:
                continue
            kind = spec["type"]
            bad = ([t for t, tname in enumerate(values.TYPES) if tname not in _COMPATIBLE[kind] and prof.counts[name][t]]
                   if kind in _COMPATIBLE and name not in prof.native else [])
            if kind in _COMPATIBLE and name in prof.native and now[name]["type"] not in _COMPATIBLE[kind]:
                out.append(Finding(
                    id=self.id, severity="medium", count=rows,
                    title=f"Column {name!r} was {kind} in the saved schema and is now {now[name]['type']}",
                    fix=f"Store {name!r} as {kind} again, or save a new schema", column=name, split=ctx.split,
                    details={"expected": kind, "found": now[name]["type"], "share": 1.0},
                ))
            elif bad:
                count = int(sum(prof.counts[name][t] for t in bad))
                rows_bad = np.sort(np.concatenate([prof.type_rows(name, t) for t in bad]))[:MAX_ROWS]
                ex = [{"row": r, name: values.show(v), "type": values.TYPES[t]}
                      for t in bad for r, v in prof.examples.get((name, t), [])]
                out.append(Finding(
                    id=self.id, severity="medium", count=count,
                    title=(f"{plural(count, 'value')} of {name!r} {agree(count, 'does', 'do')} not fit its saved type {kind} "
                           f"(the column now reads as {now[name]['type']})"),
                    fix=f"Correct the values of {name!r} so they parse as {kind}, or save a new schema",
                    column=name, split=ctx.split, rows=rows_bad.tolist(), rows_total=count,
                    examples=sorted(ex, key=lambda e: e["row"])[:MAX_EXAMPLES],
                    details={"expected": kind, "found": now[name]["type"], "share": count / rows},
                ))
            elif spec.get("nullable") is False and now[name]["missing"]:
                n = now[name]["missing"]
                out.append(Finding(
                    id=self.id, severity="medium", count=n,
                    title=f"Column {name!r} has {plural(n, 'missing value')}; the saved schema has none",
                    fix=f"Fill or drop the rows with an empty {name!r}",
                    column=name, split=ctx.split, details={"share": n / rows},
                ))
        return out
