"""Reading and checking ab initio data through ASE (extxyz, ASE db, OUTCAR, vasprun...).

Energies in eV, forces in eV/Å, stress in ASE's convention (eV/Å³, Voigt
``xx yy zz yz xz xy``, positive = tensile). Labels may be missing per structure
(say no stress on Cu); the loss then skips them. Any malformed entry raises
:class:`DataError` naming the file and the frame.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import ase.io
import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .neighbors import edge_vectors, neighbor_list


class DataError(ValueError):
    """A training file or frame is unusable; the message names file and frame."""


@dataclass
class Labelled:
    """One structure with its (possibly missing) labels."""

    atoms: Atoms
    energy: Optional[float]
    forces: Optional[np.ndarray]
    stress: Optional[np.ndarray]        # Voigt, eV/Å³
    source: str                          # "file:frame"
    config_type: str = ""


def _labels(atoms: Atoms):
    energy = forces = stress = None
    calc = atoms.calc
    if calc is not None:
        res = getattr(calc, "results", {})
        energy = res.get("energy", res.get("free_energy"))
        forces = res.get("forces")
        stress = res.get("stress")
    info, arrays = atoms.info, atoms.arrays
    if energy is None:
        for key in ("energy", "REF_energy", "dft_energy", "free_energy"):
            if key in info:
                energy = info[key]
                break
    if forces is None:
        for key in ("forces", "REF_forces", "dft_forces"):
            if key in arrays:
                forces = arrays[key]
                break
    if stress is None:
        for key in ("stress", "REF_stress", "dft_stress"):
            if key in info:
                stress = info[key]
                break
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3):
            stress = stress.flat[[0, 4, 8, 5, 2, 1]]
        stress = stress.reshape(-1)
    return energy, forces, stress


def check_structure(item: Labelled, min_distance: float = 0.5) -> None:
    """Raise :class:`DataError` for NaN labels, wrong shapes or overlapping atoms."""
    a, where = item.atoms, item.source
    n = len(a)
    if n == 0:
        raise DataError(f"{where}: structure has no atoms")
    if not np.all(np.isfinite(a.positions)):
        raise DataError(f"{where}: non-finite positions")
    if item.energy is not None and not np.isfinite(item.energy):
        raise DataError(f"{where}: energy is {item.energy}")
    if item.forces is not None:
        f = np.asarray(item.forces)
        if f.shape != (n, 3):
            raise DataError(f"{where}: forces have shape {f.shape}, expected ({n}, 3)")
        if not np.all(np.isfinite(f)):
            raise DataError(f"{where}: forces contain NaN/inf")
    if item.stress is not None:
        if item.stress.shape != (6,):
            raise DataError(f"{where}: stress has {item.stress.size} components, expected 6 (Voigt) or 3x3")
        if not np.all(np.isfinite(item.stress)):
            raise DataError(f"{where}: stress contains NaN/inf")
        if not a.pbc.all():
            raise DataError(f"{where}: stress given for a structure that is not periodic in 3D")
    if a.pbc.any() and a.cell.rank < int(a.pbc.sum()):
        raise DataError(f"{where}: periodic directions {a.pbc.tolist()} but the cell is degenerate")
    cutoff = max(min_distance, 1e-3)
    ei, shifts = neighbor_list(a.positions, a.cell.array, a.pbc, cutoff)
    if ei.shape[1]:
        d = np.linalg.norm(edge_vectors(a.positions, a.cell.array, ei, shifts), axis=1)
        k = int(np.argmin(d))
        raise DataError(f"{where}: atoms {ei[0, k]} and {ei[1, k]} are {d[k]:.3f} Å apart "
                        f"(< {min_distance} Å): overlapping atoms")


def read_structures(paths: Union[str, Path, Sequence[Union[str, Path]]], index: str = ":",
                    min_distance: float = 0.5) -> List[Labelled]:
    """Read and check every frame of every file; any format ``ase.io.read`` knows."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: List[Labelled] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such file")
        try:
            frames = ase.io.read(str(path), index=index)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read by ase.io ({type(exc).__name__}: {exc})") from None
        if isinstance(frames, Atoms):
            frames = [frames]
        for k, atoms in enumerate(frames):
            energy, forces, stress = _labels(atoms)
            item = Labelled(atoms=atoms, energy=None if energy is None else float(energy),
                            forces=None if forces is None else np.array(forces, dtype=float),
                            stress=stress, source=f"{path}:{k}",
                            config_type=str(atoms.info.get("config_type", "")))
            check_structure(item, min_distance)
            out.append(item)
    if not out:
        raise DataError(f"no structures in {', '.join(map(str, paths))}")
    return out


def file_hash(path: Union[str, Path]) -> str:
    """SHA-256 of a data file, for provenance."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def as_labelled(structures: Sequence[Union[Labelled, Atoms]]) -> List[Labelled]:
    """Accept :class:`Labelled` items or labelled ``ase.Atoms`` (calculator results or info/arrays)."""
    out: List[Labelled] = []
    for k, s in enumerate(structures):
        if isinstance(s, Labelled):
            out.append(s)
        elif isinstance(s, Atoms):
            energy, forces, stress = _labels(s)
            item = Labelled(atoms=s, energy=None if energy is None else float(energy),
                            forces=None if forces is None else np.array(forces, dtype=float),
                            stress=stress, source=str(s.info.get("source", f"atoms:{k}")),
                            config_type=str(s.info.get("config_type", "")))
            check_structure(item)
            out.append(item)
        else:
            raise TypeError(f"structure {k}: expected mlal Labelled or ase.Atoms, got {type(s).__name__}")
    return out


def infer_species(items: Sequence[Labelled]) -> List[str]:
    """Elements present in the data, ordered by atomic number."""
    symbols = set()
    for it in items:
        symbols.update(it.atoms.get_chemical_symbols())
    return sorted(symbols, key=lambda s: atomic_numbers.get(s, 0))


def data_provenance(items: Sequence[Labelled]) -> Dict[str, Any]:
    """SHA-256 of every data file the structures came from, and counts."""
    files: Dict[str, int] = {}
    for it in items:
        path = it.source.rsplit(":", 1)[0] if ":" in it.source else it.source
        files[path] = files.get(path, 0) + 1
    hashes = {}
    for path, count in files.items():
        hashes[path] = {"frames": count, "sha256": file_hash(path) if os.path.isfile(path) else None}
    return {"files": hashes, "n_structures": len(items), "n_atoms": int(sum(len(it.atoms) for it in items))}
