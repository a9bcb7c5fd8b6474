"""``mlal phonons``: harmonic phonons of a crystal with a model, and the ensemble's spread."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="exported model.pt")
    p.add_argument("structure", metavar="STRUCTURE",
                   help="the (relaxed) crystal, any ase.io format; its first frame is used")
    p.add_argument("--supercell", type=int, nargs=3, metavar=("NA", "NB", "NC"),
                   help="repeats of the structure's cell (default: widths >= 2 x the model's cutoff)")
    p.add_argument("--displacement", type=float, default=0.01, help="finite displacement, Å (default 0.01)")
    p.add_argument("--path", default=None, help="special-point path of the primitive cell, e.g. GXWKGL "
                                                "(default: ASE's path for its lattice)")
    p.add_argument("--mesh", type=int, nargs=3, default=[16, 16, 16], metavar=("MA", "MB", "MC"),
                   help="q-point mesh for the DOS and the free energy (default 16 16 16)")
    p.add_argument("--plot", metavar="phonons.png", help="write the band structure (±σ of the members) and DOS")
    p.add_argument("--json", action="store_true", help="print a summary as one JSON object on the last line")


def run(args: argparse.Namespace) -> int:
    from ase.io import read

    from ase_calculators import MlalCalculator
    from ..deploy import ModelFormatError
    from ..workflows.phonons import phonons, plot_phonons
    try:
        atoms = read(args.structure, 0)
        calc = MlalCalculator(args.model, uncertainty=True)
        r = phonons(atoms, calc, supercell=args.supercell, displacement=args.displacement,
                    path=args.path, mesh=args.mesh)
    except (ModelFormatError, ValueError, OSError) as exc:
        print(f"mlal phonons: error: {exc}", file=sys.stderr)
        return 2
    s = r.summary()
    print(f"{atoms.get_chemical_formula()}: {s['n_atoms_primitive']} atoms in the primitive cell, "
          f"supercell {'x'.join(map(str, s['supercell']))}, {s['n_displacements']} displaced supercells")
    print(f"frequencies along {s['path']}: {s['frequency_min_thz']:.3f} to {s['frequency_max_thz']:.3f} THz"
          + ("  (imaginary modes: not a minimum, or the model is wrong here)" if s["imaginary"] else ""))
    if s["frequency_sigma_max_thz"] is not None:
        print(f"ensemble spread of the frequencies: up to {s['frequency_sigma_max_thz']:.3f} THz")
    if s["gamma_max"] is not None:
        where = "inside the training data" if s["gamma_max"] <= 1.0 else "an extrapolation"
        print(f"gamma_max over the displaced supercells: {s['gamma_max']:.3f} ({where})")
    print(f"largest residual force of the undisplaced supercell: {s['residual_force_max']:.2e} eV/Å"
          + ("  (relax the structure first)" if s["residual_force_max"] > 1e-3 else ""))
    print(f"harmonic free energy at 300 K: {s['free_energy_300K_ev_per_atom']:.5f} eV/atom")
    if args.plot:
        plot_phonons(r, args.plot, title=atoms.get_chemical_formula())
        print(f"band structure and DOS: {args.plot}")
    if args.json:
        print(json.dumps(s))
    return 0
