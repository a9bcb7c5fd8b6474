"""``mlal train``: fit an ensemble to one or more labelled data files."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="labelled structures (extxyz, ASE db, OUTCAR, ...); repeat for several files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder: model.pt, checkpoint.pt, log.csv")
    p.add_argument("--config", metavar="FILE.yaml", help="TrainConfig settings (YAML mapping)")
    p.add_argument("--ensemble", type=int, metavar="K", help="ensemble size (overrides the config)")
    p.add_argument("--epochs", type=int, metavar="N", help="maximum number of epochs (overrides the config)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (overrides the config)")
    p.add_argument("--max-time", type=float, metavar="SECONDS", help="wall-time limit (overrides the config)")
    p.add_argument("--init", metavar="MODEL", help="warm start from a checkpoint.pt or model.pt")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..data.io import DataError, read_structures
    from ..train import TrainConfig, train
    try:
        cfg = TrainConfig.from_yaml(args.config) if args.config else TrainConfig()
        changes = {}
        if args.ensemble is not None:
            changes["n_members"] = args.ensemble
        if args.epochs is not None:
            changes["epochs"] = args.epochs
        if args.seed is not None:
            changes["seed"] = args.seed
        if args.max_time is not None:
            changes["max_time"] = args.max_time
        if changes:
            cfg = cfg.replace(**changes)
        items = read_structures(args.data)
    except (ValueError, DataError, FileNotFoundError) as exc:
        print(f"mlal train: error: {exc}", file=sys.stderr)
        return 2
    print(f"mlal train: {len(items)} structures from {', '.join(args.data)}; "
          f"{cfg.n_members} members, up to {cfg.epochs} epochs -> {args.out}", file=sys.stderr)
    result = train(items, cfg, args.out, init=args.init, progress=not args.no_progress, resume=args.resume)
    m = result.metrics
    print(f"model: {result.model_path} (species {' '.join(result.model.species)}, cutoff "
          f"{result.model.cutoff:g} Å{' from the data density' if cfg.cutoff == 'auto' else ''}"
          f"{f', r_min {result.model.r_min:g} Å from the shortest distance' if cfg.r_min == 'auto' else ''})")
    print(f"checkpoint: {result.checkpoint}")
    print(f"{m['evaluated_on']} errors: energy MAE {m['energy_mae']:.4g} meV/atom, "
          f"force MAE {m['force_mae']:.4g} eV/Å, stress MAE {m['stress_mae']:.4g} GPa; "
          f"{m['epochs']} epochs ({m['stopped']}), {m['seconds']:.0f} s")
    print(json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in m.items()}))
    return 0
