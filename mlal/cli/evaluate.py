"""``mlal eval``: energy/force/stress errors of a model on labelled data."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="exported model.pt")
    p.add_argument("data", nargs="+", metavar="DATA", help="labelled structures (any ase.io format)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object on the last line")
    p.add_argument("--plot", metavar="parity.png", help="write a parity plot")
    p.add_argument("--batch-size", type=int, default=16, help="structures per model call")
    p.add_argument("--uncertainty", action="store_true",
                   help="also report how the ensemble spread σ ranks the force errors (sigma_error_spearman)")


def run(args: argparse.Namespace) -> int:
    from ..data.io import DataError, read_structures
    from ..deploy import ModelFormatError
    from ..evaluate import evaluate, format_metrics
    try:
        items = read_structures(args.data)
        m = evaluate(args.model, items, batch_size=args.batch_size, plot=args.plot,
                     uncertainty=args.uncertainty)
    except (DataError, ModelFormatError, ValueError) as exc:
        print(f"mlal eval: error: {exc}", file=sys.stderr)
        return 2
    for line in format_metrics(m):
        print(line)
    if args.plot:
        print(f"parity plot: {args.plot}")
    if args.json:
        print(json.dumps(m))
    return 0
