"""``mlal lattice``: on-lattice sampling (replica-exchange MC) of an alloy with active learning."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--structure", required=True,
                   help="the ideal cell, any ase.io format: its sites, and its elements as the starting arrangement")
    p.add_argument("--model", required=True, help="the starting model.pt (relaxed energies of ideal cells)")
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="the starting model's training data (repeat for several files)")
    p.add_argument("--oracle", default="emt", help="'emt', or an oracle spec as YAML")
    p.add_argument("--workdir", required=True, help="run directory (a second run with it resumes)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 1000.0, 1500.0], help="K")
    p.add_argument("--sweeps", type=int, default=200, help="Monte Carlo sweeps per round")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--labels-per-round", type=int, default=8)
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="meV/atom: the error on new labels that ends it (small against the energies' span)")
    p.add_argument("--train-time", type=float, default=60.0, help="seconds per retraining")
    p.add_argument("--json", action="store_true", help="print a summary as one JSON line")


def run(args: argparse.Namespace) -> int:
    from ase.io import read

    from ..data.io import DataError, read_structures
    from ..deploy import ModelFormatError
    from ..workflows.lattice_mc import LatticeSampling, LatticeSettings
    from .workflow_args import oracle_spec
    try:
        lattice = read(args.structure, 0)
        data = [it.atoms for it in read_structures(args.data)]
        settings = LatticeSettings(temperatures=args.temperatures, sweeps=args.sweeps, max_rounds=args.rounds,
                                   labels_per_round=args.labels_per_round, tolerance=args.tolerance / 1000.0,
                                   training={"max_time": args.train_time, "epochs": 300})
        res = LatticeSampling(lattice, args.model, data, oracle_spec(args.oracle), args.workdir, settings).run(
            progress=lambda s: print(s, flush=True))
    except (DataError, ModelFormatError, ValueError, OSError) as exc:
        print(f"mlal lattice: error: {exc}", file=sys.stderr)
        return 2
    for t, e, c in zip(res["temperatures"], res["mean_energy_per_atom"], res["heat_capacity_kB_per_atom"]):
        print(f"  T {t:7.1f} K   <E> {1000 * e:9.2f} meV/atom   C {c:6.3f} k_B/atom")
    print(f"{res['rounds']} rounds, {res['n_labels']} labels, converged: {res['converged']}; "
          f"{args.workdir}/lattice.png, lowest arrangement in {args.workdir}/lowest.extxyz")
    if args.json:
        print(json.dumps({k: res[k] for k in ("rounds", "n_labels", "converged", "errors", "temperatures",
                                               "mean_energy_per_atom", "lowest_energy_per_atom")}))
    return 0
