"""``mlal deploy``: export a training checkpoint as one TorchScript model file."""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="DIR/checkpoint.pt written by `mlal train` (or DIR)")
    p.add_argument("-o", "--output", required=True, metavar="model.pt", help="output model file")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="precision of the exported model (float32: faster MD)")


def run(args: argparse.Namespace) -> int:
    from ..train import deploy_checkpoint
    try:
        path = deploy_checkpoint(args.checkpoint, args.output, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as exc:
        print(f"mlal deploy: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.dtype})")
    return 0
