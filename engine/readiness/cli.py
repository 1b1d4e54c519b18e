"""CLI of engine.readiness (registered by engine/cli.py). Heavy imports stay inside handlers.

    preflight readiness --json                                  # what this workspace has checked, trained, measured
    preflight readiness --profile company.toml --json           # runway, margin, break-even, P10/P50/P90, verdicts
    preflight readiness --profile company.toml --scenario slow-growth --json
    preflight readiness --profile company.toml --report readiness.html   # also .md and .json
"""

from __future__ import annotations

import argparse
import importlib

from engine.cliargs import whole


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    r = sub.add_parser("readiness", parents=[common],
                       help="startup readiness: runway, margin, break-even, uncertainty and verdicts per area")
    r.add_argument("--profile", metavar="FILE", help="a company profile (TOML or JSON, fields as on the readiness page)")
    r.add_argument("--scenario", metavar="NAME", help="a [scenarios.NAME] table of the profile file (default: the base)")
    r.add_argument("--report", metavar="OUT", help="also write the report: OUT.html, OUT.md or OUT.json")
    r.add_argument("--samples", type=whole("samples"), default=2000, metavar="N", help="Monte Carlo samples (default 2000)")
    r.set_defaults(handler=_readiness, human=_human)


def _readiness(args: argparse.Namespace) -> dict:
    from engine.errors import ValidationError

    if args.profile is None:
        if args.scenario or args.report:
            raise ValidationError("--scenario and --report need --profile FILE")
        return importlib.import_module("engine.readiness").readiness().to_dict()
    from engine.readiness.assess import assess
    from engine.readiness.profile import load_profile_file
    from engine.readiness.report import format_for, write_report

    if args.report:
        format_for(args.report)  # a bad suffix is refused before any work
    base, named = load_profile_file(args.profile)
    if args.scenario is None:
        profile, name = base, "base"
    elif args.scenario in named:
        profile, name = named[args.scenario], args.scenario
    else:
        allowed = ", ".join(["base", *named]) if named else "none in this file"
        raise ValidationError(f"no scenario {args.scenario[:40]!r} in {args.profile}; scenarios: {allowed}")
    if not (10 <= args.samples <= 200_000):
        raise ValidationError(f"samples must be between 10 and 200000, got {args.samples}")
    result = assess(profile, scenario=name, samples=args.samples, currency=getattr(args, "money", None)).to_dict()
    if args.report:
        result["report"] = str(write_report(result, args.report, getattr(args, "money", None)))
    return result


def _human(result: dict) -> str:
    if "areas" not in result:
        return importlib.import_module("engine.readiness").human(result)
    from engine.money import get_currency
    from engine.readiness.report import QUANTILE_LABELS, figures

    block = result.get("currency")
    cur = get_currency(block["code"], block["per_usd"]) if isinstance(block, dict) else None
    lines = [f"scenario     {result['scenario']}"]
    lines += [f"{label:<38} {text}" for label, text in figures(result, cur)]
    for key, (label, fmt) in QUANTILE_LABELS.items():
        q = (result.get("quantiles") or {}).get(key)
        if q:
            lines.append(f"{label:<38} P10 {fmt(q['p10'], cur)}  P50 {fmt(q['p50'], cur)}  P90 {fmt(q['p90'], cur)}")
    lines += [f"{a['id']:<9} {a['status']:<12} {a['reason']}" for a in result["areas"]]
    if result.get("report"):
        lines.append(f"report       {result['report']}")
    return "\n".join(lines)
