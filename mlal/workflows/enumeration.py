"""Derivative superstructures of a parent lattice, and the lower convex hull of a binary alloy.

Superstructures as in Hart & Forcade (2008): every supercell of the one-atom parent cell with
``n`` sites is a Hermite-normal-form matrix ``H`` of determinant ``n``; every labelling of its
sites with two elements is a candidate; a labelling with a smaller period, or one equivalent to
an earlier one by the parent lattice's symmetry, is dropped. Candidates are bucketed by a
fingerprint (size, composition and space group, from spglib: equal for equivalent structures)
and compared by ASE's :class:`SymmetryEquivalenceCheck` within a bucket only.

Units: lattice constants in Å, energies in eV/atom.
"""
from __future__ import annotations

import itertools
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.build import bulk, make_supercell

LATTICES = ("fcc", "bcc", "sc")


def hnf_matrices(n: int) -> Iterator[np.ndarray]:
    """Lower-triangular Hermite normal forms of determinant ``n`` (Hart & Forcade's convention:
    columns are the supercell vectors in units of the parent's)."""
    for a in range(1, n + 1):
        if n % a:
            continue
        for c in range(1, n // a + 1):
            if (n // a) % c:
                continue
            f = n // (a * c)
            for b in range(c):
                for d in range(f):
                    for e in range(f):
                        yield np.array([[a, 0, 0], [b, c, 0], [d, e, f]])


def _spglib(name: str, atoms: Atoms, symprec: float):
    import warnings

    import spglib
    with warnings.catch_warnings():     # spglib 2.x: a deprecation notice about its error handling
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(spglib, name)((atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers),
                                     symprec=symprec)


def _fingerprint(atoms: Atoms, symprec: float) -> Tuple:
    return len(atoms), tuple(sorted(atoms.numbers)), _spglib("get_symmetry_dataset", atoms, symprec).number


def _primitive_size(atoms: Atoms, symprec: float) -> int:
    return len(_spglib("find_primitive", atoms, symprec)[2])


def enumerate_structures(lattice: str, elements: Sequence[str], max_atoms: int,
                         a: float = 1.0, symprec: float = 1e-4) -> List[Atoms]:
    """The symmetry-distinct binary superstructures of ``lattice`` with 1 to ``max_atoms`` atoms.

    ``a``: the parent's cubic lattice constant (Å); the cells are ideal (unrelaxed). Each
    structure's ``info`` holds ``name`` (``"n<atoms>-<k>"``), ``hnf`` and the fraction ``x`` of
    ``elements[1]``. The two pure elements come first.
    """
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {LATTICES}, got {lattice!r}")
    if len(elements) != 2 or elements[0] == elements[1]:
        raise ValueError(f"elements must be two different symbols, got {list(elements)}")
    if max_atoms < 1:
        raise ValueError(f"max_atoms must be >= 1, got {max_atoms}")
    from ase.utils.structure_comparator import SymmetryEquivalenceCheck
    same = SymmetryEquivalenceCheck(to_primitive=True)
    parent = bulk("Cu", lattice, a=a)
    found: List[Atoms] = []
    buckets: Dict[Tuple, List[Atoms]] = {}
    for n in range(1, max_atoms + 1):
        count = 0
        for h in hnf_matrices(n):
            cell = make_supercell(parent, h.T)            # rows: the supercell vectors
            for labels in itertools.product((0, 1), repeat=n):
                if n > 1 and len(set(labels)) == 1:
                    continue
                s = cell.copy()
                s.set_chemical_symbols([elements[k] for k in labels])
                if _primitive_size(s, symprec) != n:
                    continue                               # a smaller period: found at a smaller n
                key = _fingerprint(s, symprec)
                if any(same.compare(s, t) for t in buckets.get(key, ())):
                    continue
                buckets.setdefault(key, []).append(s)
                count += 1
                s.info.update(name=f"n{n}-{count}", hnf=h.tolist(), x=sum(labels) / n)
                found.append(s)
    return found


def lower_hull(x: Sequence[float], e: Sequence[float]) -> List[int]:
    """Indices of the points on the lower convex hull of ``(x, e)``, by increasing ``x``
    (Andrew's monotone chain; collinear points in between are not vertices). At equal ``x``
    only the lowest point can be on it."""
    pts = sorted(range(len(x)), key=lambda k: (x[k], e[k]))
    hull: List[int] = []
    for k in pts:
        if hull and x[hull[-1]] == x[k]:
            continue
        while len(hull) >= 2:
            i, j = hull[-2], hull[-1]
            cross = (x[j] - x[i]) * (e[k] - e[i]) - (e[j] - e[i]) * (x[k] - x[i])
            if cross <= 0:            # j is above (or on) the segment i-k
                hull.pop()
            else:
                break
        hull.append(k)
    return hull


def energy_above_hull(x: Sequence[float], e: Sequence[float]) -> np.ndarray:
    """Each point's height above the lower convex hull of all of them (same units as ``e``)."""
    x, e = np.asarray(x, dtype=float), np.asarray(e, dtype=float)
    h = lower_hull(x, e)
    return e - np.interp(x, x[h], e[h])


def formation_energies(x: Sequence[float], e: Sequence[float]) -> np.ndarray:
    """Formation energy per atom against the pure end members (the lowest ``e`` at ``x`` = 0 and 1)."""
    x, e = np.asarray(x, dtype=float), np.asarray(e, dtype=float)
    if not (x == 0).any() or not (x == 1).any():
        raise ValueError("formation energies need both pure elements (x = 0 and x = 1)")
    e0, e1 = e[x == 0].min(), e[x == 1].min()
    return e - ((1 - x) * e0 + x * e1)
