"""``preflight apis``: the API offers (engine/catalog/apis.toml), plus the user's own from ``--api-file``.

    preflight apis --json
    preflight apis --api-file our-prices.toml --json     # a negotiated price replaces the catalog row

``estimate breakeven`` (engine/cli.py) takes the same ``--api-file`` through :func:`api_file_arg`.
"""

from __future__ import annotations

import argparse


def api_file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-file", metavar="PATH",
                        help="your own API prices: TOML [[offer]] tables, a JSON list or CSV with id ('provider/"
                             "model'), currency, input_per_million, output_per_million (optional: "
                             "cached_input_per_million, context, open_model, source, date); a row with a "
                             "catalog id replaces that offer")


def extra_offers(args: argparse.Namespace) -> tuple:
    from engine.estimate.apis import load_api_file

    return tuple(load_api_file(args.api_file)) if getattr(args, "api_file", None) else ()


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("apis", parents=[common], help="list the API offers: price per million tokens, context, open model")
    api_file_arg(p)
    p.set_defaults(handler=_apis, human=_human)


def _apis(args: argparse.Namespace) -> dict:
    from engine import catalog
    from engine.estimate.apis import offer_rows

    rate = args.money if getattr(args, "exchange_rate", None) is not None else None
    data = catalog.api_file()
    return {"offers": offer_rows(extra_offers(args), rate), "version": data["version"], "taken": data["taken"]}


def _human(result: dict) -> str:
    lines = []
    for o in result["offers"]:
        cached = "" if o["cached_input_per_million"] is None else f" (cached {o['cached_input_per_million']:g})"
        ctx = f"{o['context'] // 1024}K" if o.get("context") else "–"
        lines.append(f"{o['id']:<40} {o['currency']} {o['input_per_million']:>6g} in{cached} / "
                     f"{o['output_per_million']:g} out per M  ctx {ctx:>6}  {o.get('open_model') or ''}"
                     + ("  (yours)" if o["custom"] else ""))
    lines.append(f"prices taken {result['taken']} (catalog {result['version']}); each row's source and date: --json")
    return "\n".join(lines)
