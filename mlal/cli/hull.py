"""``mlal hull``: convex-hull screening of a binary alloy with active learning."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .workflow_args import add_active_relaxation_arguments
    p.add_argument("--elements", nargs=2, required=True, metavar=("A", "B"), help="the two elements")
    p.add_argument("--lattice", default="fcc", choices=("fcc", "bcc", "sc"), help="parent lattice (fcc)")
    p.add_argument("--a", type=float, required=True, help="parent lattice constant, Å (the cells are relaxed)")
    p.add_argument("--max-atoms", type=int, default=4, help="largest superstructure cell (default 4)")
    add_active_relaxation_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..data.io import DataError, read_structures
    from ..deploy import ModelFormatError
    from ..workflows.enumeration import enumerate_structures
    from ..workflows.hull import HullScreening, HullSettings
    from .workflow_args import oracle_spec, settings_kwargs
    try:
        oracle = oracle_spec(args.oracle)
        data = read_structures(args.data)
        cands = enumerate_structures(args.lattice, args.elements, args.max_atoms, a=args.a)
        print(f"{len(cands)} {args.lattice} superstructures of {'-'.join(args.elements)} "
              f"with up to {args.max_atoms} atoms", flush=True)
        settings = HullSettings(**settings_kwargs(args))
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
