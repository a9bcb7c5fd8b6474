"""Harmonic phonons through phonopy, with any ASE calculator, and the ensemble's spread with mlal.

Finite displacements (phonopy's symmetry-reduced set) of a supercell give the force constants
(central differences: each displacement also its opposite); from them the band structure along
ASE's special-point path of the primitive cell, the density of states on a mesh, and the
harmonic free energy. With :class:`ase_calculators.MlalCalculator` (``uncertainty=True``) every
member's forces give its own force constants, so each frequency gets the members' standard
deviation, and the largest γ over the displaced supercells says whether the crystal is inside
the training data (γ ≤ 1) or an extrapolation.

Units: displacements and lengths in Å, forces in eV/Å, frequencies in THz (phonopy's),
temperatures in K, free energies in eV/atom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.units import kB

THZ_TO_EV = 4.135667696e-3       # h · 1 THz in eV


@dataclass
class PhononResult:
    """Phonons of one crystal. ``frequencies`` ``[n_q, n_bands]`` (THz, negative = imaginary) along
    ``path`` (ASE's special points of ``primitive``), ``frequency_sigma`` the members' standard
    deviation there (None without per-member forces); ``dos_frequencies``/``dos`` on the mesh
    (states per THz per primitive cell); ``mesh_frequencies`` ``[n_mesh, n_bands]`` and their
    ``mesh_weights`` for thermodynamics."""

    primitive: Atoms
    supercell_matrix: np.ndarray
    path: str
    distances: np.ndarray
    special_distances: np.ndarray
    special_labels: List[str]
    frequencies: np.ndarray
    frequency_sigma: Optional[np.ndarray]
    dos_frequencies: np.ndarray
    dos: np.ndarray
    mesh_frequencies: np.ndarray
    mesh_weights: np.ndarray
    n_displacements: int
    residual_force_max: float           # eV/Å, largest force in the undisplaced supercell
    gamma_max: Optional[float] = None   # largest γ over every supercell evaluated
    sigma_max: Optional[float] = None   # largest force σ (eV/Å) over them
    member_frequencies: Optional[np.ndarray] = field(default=None, repr=False)   # [K, n_q, n_bands]
    phonopy: object = field(default=None, repr=False)

    def free_energy(self, temperatures: Union[float, Sequence[float]]) -> np.ndarray:
        """Harmonic Helmholtz free energy (eV/atom, zero-point energy included) at ``temperatures`` (K).

        ``Σ_qν [hν/2 + k_B T ln(1 − exp(−hν / k_B T))]`` over the mesh (weighted, per primitive cell),
        over the atoms of the primitive cell; modes at or below 1e-3 THz (the acoustic ones at Γ) and
        imaginary ones are left out.
        """
        t = np.atleast_1d(np.asarray(temperatures, dtype=float))
        e = self.mesh_frequencies * THZ_TO_EV
        keep = self.mesh_frequencies > 1e-3
        w = np.broadcast_to(self.mesh_weights[:, None], e.shape)[keep] / self.mesh_weights.sum()
        e = e[keep]
        out = []
        for temp in t:
            f = 0.5 * e
            if temp > 0:
                f = f + kB * temp * np.log(-np.expm1(-e / (kB * temp)))
            out.append(float((w * f).sum()) / len(self.primitive))
        return np.asarray(out)

    def summary(self) -> Dict[str, object]:
        """A JSON-ready digest: the extremes of the band structure, the spread and γ."""
        fmin = float(self.frequencies.min())
        return {"path": self.path, "n_q": int(len(self.distances)), "n_bands": int(self.frequencies.shape[1]),
                "frequency_min_thz": fmin, "frequency_max_thz": float(self.frequencies.max()),
                "imaginary": bool(fmin < -0.05),
                "frequency_sigma_max_thz": (None if self.frequency_sigma is None
                                            else float(self.frequency_sigma.max())),
                "gamma_max": self.gamma_max, "sigma_max": self.sigma_max,
                "n_displacements": self.n_displacements, "residual_force_max": self.residual_force_max,
                "supercell": np.diag(self.supercell_matrix).astype(int).tolist(),
                "n_atoms_primitive": len(self.primitive),
                "free_energy_300K_ev_per_atom": float(self.free_energy(300.0)[0])}


def auto_supercell(atoms: Atoms, min_width: float) -> List[int]:
    """The smallest repeats of ``atoms.cell`` whose perpendicular widths are all ≥ ``min_width`` Å."""
    cell = atoms.cell.array
    vol = abs(np.linalg.det(cell))
    widths = [vol / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    return [max(1, int(np.ceil(min_width / w - 1e-9))) for w in widths]


def _to_ase(cell) -> Atoms:
    return Atoms(symbols=list(cell.symbols), cell=np.asarray(cell.cell), pbc=True,
                 scaled_positions=np.asarray(cell.scaled_positions))


def phonons(atoms: Atoms, calc, supercell: Optional[Sequence[int]] = None, displacement: float = 0.01,
            npoints: int = 200, mesh: Sequence[int] = (16, 16, 16), path: Optional[str] = None,
            symprec: float = 1e-5, progress=None) -> PhononResult:
    """Phonons of the crystal ``atoms`` (should be relaxed) with the ASE calculator ``calc``.

    ``supercell``: repeats of ``atoms.cell`` (default: widths ≥ 2 × the model's cutoff for an mlal
    calculator, whose force constants reach that far, else ≥ 10 Å). ``displacement`` in Å. The
    forces of the undisplaced supercell are subtracted from each displaced one, so a residual
    force of an imperfectly relaxed cell does not enter the force constants. ``path``: ASE
    special-point string of the primitive cell (default: ASE's path for its lattice).
    ``progress``: an optional callable ``(done, total)``.
    """
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    if not all(atoms.pbc):
        raise ValueError("phonons need a crystal periodic in all three directions")
    if supercell is None:
        cutoff = getattr(calc, "cutoff", None)
        supercell = auto_supercell(atoms, 2.0 * float(cutoff) if cutoff else 10.0)
    if len(supercell) != 3 or min(int(n) for n in supercell) < 1:
        raise ValueError(f"supercell must be three positive integers, got {supercell}")
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())
    matrix = np.diag([int(n) for n in supercell])
    ph = Phonopy(unit, supercell_matrix=matrix, primitive_matrix="auto", symprec=symprec)
    ph.generate_displacements(distance=displacement, is_plusminus=True)   # central differences
    cells = [ph.supercell] + list(ph.supercells_with_displacements)

    forces, members, gammas, sigmas = [], [], [], []
    for k, cell in enumerate(cells):
        a = _to_ase(cell)
        a.calc = calc
        forces.append(np.asarray(a.get_forces(), dtype=float))
        res = getattr(calc, "results", {})
        if "member_forces" in res:
            members.append(np.asarray(res["member_forces"], dtype=float))
        if "gamma_max" in res:
            gammas.append(float(res["gamma_max"]))
            sigmas.append(float(np.max(res["sigma"])) if len(res["sigma"]) else 0.0)
        if progress is not None:
            progress(k + 1, len(cells))
    if any(not np.isfinite(f).all() for f in forces):
        raise ValueError("the calculator returned non-finite forces for a displaced supercell")
    residual = float(np.abs(forces[0]).max())

    prim = _to_ase(ph.primitive)
    bandpath = prim.cell.bandpath(path, npoints=npoints)
    qpoints = bandpath.kpts
    x, sx, labels = bandpath.get_linear_kpoint_axis()

    def solve(sets: Sequence[np.ndarray]):
        ph.forces = np.array([f - sets[0] for f in sets[1:]])
        ph.produce_force_constants()
        ph.symmetrize_force_constants()
        ph.run_qpoints(qpoints)
        return np.array(ph.qpoints.frequencies)

    member_freqs = None
    if len(members) == len(cells) and members:
        K = members[0].shape[0]
        member_freqs = np.stack([solve([m[k] for m in members]) for k in range(K)])
    freqs = solve(forces)        # last: ph keeps the ensemble mean's force constants
    ph.run_mesh(list(mesh), with_eigenvectors=False, is_gamma_center=True)
    ph.run_total_dos()
    return PhononResult(
        primitive=prim, supercell_matrix=matrix, path=bandpath.path, distances=x, special_distances=sx,
        special_labels=list(labels), frequencies=freqs,
        frequency_sigma=None if member_freqs is None else member_freqs.std(axis=0),
        dos_frequencies=np.asarray(ph.total_dos.frequency_points), dos=np.asarray(ph.total_dos.dos),
        mesh_frequencies=np.asarray(ph.mesh.frequencies), mesh_weights=np.asarray(ph.mesh.weights, dtype=float),
        n_displacements=len(cells) - 1, residual_force_max=residual,
        gamma_max=max(gammas) if gammas else None, sigma_max=max(sigmas) if sigmas else None,
        member_frequencies=member_freqs, phonopy=ph)


def plot_phonons(result: PhononResult, filename: str, title: str = "",
                 reference: Optional[PhononResult] = None) -> str:
    """Band structure (with the members' ±σ band when known) and DOS side by side, as a PNG;
    ``reference`` (the same crystal and path, e.g. from the reference calculator) dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, axd) = plt.subplots(1, 2, figsize=(8, 4.5), sharey=True,
                                  gridspec_kw={"width_ratios": [3, 1], "wspace": 0.05})
    x, f = result.distances, result.frequencies
    cuts = [0] + [k + 1 for k in range(len(x) - 1) if x[k + 1] == x[k]] + [len(x)]   # path breaks (",")
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        xs = x[lo:hi]
        for b in range(f.shape[1]):
            if result.frequency_sigma is not None:
                s = result.frequency_sigma[lo:hi, b]
                ax.fill_between(xs, f[lo:hi, b] - s, f[lo:hi, b] + s, color="tab:orange", alpha=0.3, lw=0)
            ax.plot(xs, f[lo:hi, b], color="tab:blue", lw=1)
            if reference is not None:
                ax.plot(xs, reference.frequencies[lo:hi, b], color="k", lw=0.8, ls="--")
    for d in result.special_distances:
        ax.axvline(d, color="0.7", lw=0.5)
    ax.axhline(0, color="0.5", lw=0.5)
    ticks: List[float] = []
    names: List[str] = []
    for d, s in zip(result.special_distances, result.special_labels):
        s = "Γ" if s == "G" else s
        if ticks and abs(d - ticks[-1]) < 1e-9:     # a path break: "U|K"
            names[-1] += "|" + s
        else:
            ticks.append(d)
            names.append(s)
    ax.set_xticks(ticks)
    ax.set_xticklabels(names)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("frequency (THz)")
    extra = ""
    if result.gamma_max is not None:
        extra = f"  γ_max {result.gamma_max:.2f}"
    if result.frequency_sigma is not None:
        extra += f"  (band: ±σ of {result.member_frequencies.shape[0]} members)"
    ax.set_title((title + extra).strip(), fontsize=9)
    axd.plot(result.dos, result.dos_frequencies, color="tab:blue", lw=1)
    if reference is not None:
        axd.plot(reference.dos, reference.dos_frequencies, color="k", lw=0.8, ls="--")
    axd.set_xlabel("DOS (1/THz)")
    axd.set_xlim(left=0)
    fig.savefig(filename, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return filename
