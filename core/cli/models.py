"""`deblur models`: the models, in plain words first (what each is good for, what it may do
wrong, how it did on test images, what it was trained on), the technical record with --details."""

from __future__ import annotations

import argparse
import json

from core.cli import HelpFormatter
from core.models.plain import kind_words, plain_lines, technical_lines
from core.models.registry import list_entries, read_card


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the available models",
                       description="List the models: what each is good for, what it may do "
                                   "wrong, how it did on test images, what it was trained on.",
                       formatter_class=HelpFormatter)
    p.add_argument("--details", action="store_true",
                   help="also the technical record: training, validation, architecture, losses")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def catalog() -> list[dict]:
    """One dict per model: name, display name, kind, weights, plain lines, details, settings."""
    rows = []
    for e in list_entries():
        card = read_card(e.default_weights) if e.has_weights() else {}
        rows.append({
            "name": e.name,
            "display_name": e.display_name,
            "kind": e.kind,
            "weights": str(e.default_weights) if e.has_weights() else None,
            "trained_on": card.get("training", {}).get("data"),
            "about": plain_lines(e, card),
            "details": technical_lines(card),
            "parameters": {k: {"default": p.default, "help": p.help} for k, p in e.params.items()},
            "card": card or None,
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = catalog()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    entries = {e.name: e for e in list_entries()}
    for r in rows:
        print(f"{r['display_name']}  (--model {r['name']}; {kind_words(entries[r['name']])})")
        for line in r["about"]:
            print(f"  {line}")
        if r["parameters"]:
            opts = ", ".join(f"{k}={v['default']}" for k, v in r["parameters"].items())
            print(f"  Settings: {opts}")
        if args.details:
            weights = r["weights"] or ("none needed" if r["kind"] == "classical" else "not shipped")
            print(f"  Weights: {weights}")
            for line in r["details"]:
                print(f"  {line}")
        print()
    return 0
