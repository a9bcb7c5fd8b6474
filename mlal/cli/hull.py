"""``mlal hull``: convex-hull screening of a binary alloy with active learning."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the starting model.pt")
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="the starting model's training data (any ase.io format; repeat for several files)")
    p.add_argument("--elements", nargs=2, required=True, metavar=("A", "B"), help="the two elements")
    p.add_argument("--lattice", default="fcc", choices=("fcc", "bcc", "sc"), help="parent lattice (fcc)")
    p.add_argument("--a", type=float, required=True, help="parent lattice constant, Å (the cells are relaxed)")
    p.add_argument("--max-atoms", type=int, default=4, help="largest superstructure cell (default 4)")
    p.add_argument("--oracle", default="emt",
                   help="'emt', or an oracle spec as YAML, e.g. \"{type: lammps, pair_style: ..., pair_coeff: ...}\"")
    p.add_argument("--workdir", required=True, help="run directory (a second run with it resumes)")
    p.add_argument("--rounds", type=int, default=8, help="rounds of labelling at most")
    p.add_argument("--labels-per-round", type=int, default=6)
    p.add_argument("--gamma-break", type=float, default=3.0)
    p.add_argument("--train-time", type=float, default=60.0, help="seconds per retraining")
    p.add_argument("--json", action="store_true", help="print hull.json's summary as one JSON line")


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..data.io import DataError, read_structures
    from ..deploy import ModelFormatError
    from ..workflows.enumeration import enumerate_structures
    from ..workflows.hull import HullScreening, HullSettings
    try:
        oracle = {"type": "emt"} if args.oracle == "emt" else yaml.safe_load(args.oracle)
        if not isinstance(oracle, dict) or "type" not in oracle:
            raise ValueError(f"--oracle: expected 'emt' or a mapping with a 'type' key, got {args.oracle!r}")
        data = read_structures(args.data)
        cands = enumerate_structures(args.lattice, args.elements, args.max_atoms, a=args.a)
        print(f"{len(cands)} {args.lattice} superstructures of {'-'.join(args.elements)} "
              f"with up to {args.max_atoms} atoms", flush=True)
        settings = HullSettings(max_rounds=args.rounds, labels_per_round=args.labels_per_round,
                                gamma_break=args.gamma_break,
                                training={"max_time": args.train_time, "epochs": 300})
        res = HullScreening(cands, args.elements, args.model, data, oracle, args.workdir, settings).run(
            progress=lambda s: print(s, flush=True))
    except (DataError, ModelFormatError, ValueError, OSError) as exc:
        print(f"mlal hull: error: {exc}", file=sys.stderr)
        return 2
    for e in res["entries"]:
        if e["on_hull"] or "oracle_formation_energy" in e:
            o = e.get("oracle_formation_energy")
            print(f"  {e['name']:7s} {e['formula']:8s} x={e['x']:.3f}  {1000 * e['formation_energy']:8.1f} meV/atom"
                  + (f"  oracle {1000 * o:8.1f}" if o is not None else "") + ("  on the hull" if e["on_hull"] else ""))
    print(f"{res['rounds']} rounds, {res['n_labels']} labels; the oracle's hull "
          f"{'agrees' if res['oracle_agrees'] else 'differs'}; {args.workdir}/hull.png")
    if args.json:
        print(json.dumps({k: res[k] for k in ("elements", "rounds", "n_labels", "oracle_agrees",
                                               "verified_formation_energy_mae", "verified")}))
    return 0
