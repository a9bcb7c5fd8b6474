"""``mlal search``: crystal structure search with an ensemble and active learning."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .workflow_args import add_active_relaxation_arguments
    p.add_argument("--composition", required=True, help="atoms per cell as a formula, e.g. Si8 or Cu2Au2")
    p.add_argument("--structures", type=int, default=20, help="random starting cells (default 20)")
    p.add_argument("--volume", type=float, required=True, help="starting volume, Å³ per atom (the cells relax)")
    p.add_argument("--min-distance", type=float, required=True, help="closest approach in a starting cell, Å")
    p.add_argument("--check", type=int, default=3, help="how many of the lowest minima the oracle relaxes")
    p.add_argument("--seed", type=int, default=0)
    add_active_relaxation_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ase.formula import Formula

    from ..data.io import DataError, read_structures
    from ..deploy import ModelFormatError
    from ..workflows.structure_search import SearchSettings, StructureSearch, random_search_cells
    from .workflow_args import oracle_spec, settings_kwargs
    try:
        oracle = oracle_spec(args.oracle)
        symbols = list(Formula(args.composition))
        if not symbols:
            raise ValueError(f"--composition: no atoms in {args.composition!r}")
        data = read_structures(args.data)
        cands = random_search_cells(symbols, args.structures, args.volume, args.min_distance, seed=args.seed)
        elements = sorted(set(symbols))
        settings = SearchSettings(n_check=args.check, **settings_kwargs(args))
        res = StructureSearch(cands, elements, args.model, data, oracle, args.workdir, settings).run(
            progress=lambda s: print(s, flush=True))
    except (DataError, ModelFormatError, ValueError, OSError) as exc:
        print(f"mlal search: error: {exc}", file=sys.stderr)
        return 2
    for m in res["minima"][:10]:
        o = m.get("oracle_energy")
        print(f"  {m['name']:5s} x{m['count']:<3d} {m['energy']:10.4f} eV/atom  {m['volume_per_atom']:6.2f} Å³/atom"
              + (f"  oracle {o:10.4f}" if o is not None else ""))
    print(f"{res['rounds']} rounds, {res['n_labels']} labels; lowest by the model {res['model_lowest']}, by the "
          f"oracle (checked) {res['oracle_lowest_checked']}; {args.workdir}/search.png")
    if args.json:
        print(json.dumps({k: res[k] for k in ("elements", "rounds", "n_labels", "n_structures", "model_lowest",
                                               "oracle_lowest_checked", "lowest_agrees")}))
    return 0
