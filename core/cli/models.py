"""`deblur models`: the catalog of models, their weights and what they were trained on."""

from __future__ import annotations

import argparse
import json

from core.models.registry import card_summary, list_entries, read_card


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models",
                       description="List the models, their weights file and what they were trained on.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def catalog() -> list[dict]:
    """One dict per model: name, kind, weights, trained_on, summary, parameters."""
    rows = []
    for e in list_entries():
        card = read_card(e.default_weights) if e.has_weights() else {}
        rows.append({
            "name": e.name,
            "kind": e.kind,
            "weights": str(e.default_weights) if e.has_weights() else None,
            "trained_on": card.get("training", {}).get("data"),
            "summary": card_summary(e),
            "parameters": {k: {"default": p.default, "help": p.help} for k, p in e.params.items()},
            "card": card or None,
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = catalog()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        weights = r["weights"] or ("none needed" if r["kind"] == "classical" else "not shipped")
        print(f"{r['name']}  ({r['kind']})")
        print(f"  {r['summary']}")
        print(f"  weights: {weights}")
        if r["parameters"]:
            opts = ", ".join(f"{k}={v['default']}" for k, v in r["parameters"].items())
            print(f"  settings: {opts}")
    return 0
