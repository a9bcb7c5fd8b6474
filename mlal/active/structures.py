"""Starting and validation structures: random small cells, files, oracle-driven MD frames."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

_CUBIC_OK = {"fcc", "bcc", "diamond", "sc"}


def random_structures(species: Sequence[str], n: int = 8, lattice: Optional[str] = None,
                      a: Optional[float] = None, supercell: Sequence[int] = (1, 1, 1), rattle: float = 0.1,
                      strain: float = 0.03, vacancies: int = 0, seed: int = 0,
                      choose: Optional[Sequence[str]] = None,
                      composition: Optional[Dict[str, float]] = None) -> List[Atoms]:
    """``n`` rattled, strained (and, for alloys, randomly decorated) crystal cells.

    Alloys: each cell draws its own fractions of the ``choose`` species (all by
    default) from a flat Dirichlet distribution, or, with ``composition`` (e.g.
    ``{"Cu": 0.5, "Ni": 0.5}``), gets those fractions (rounded to whole atoms) on
    randomly chosen sites. The lattice defaults to the reference state of the first element. Rattle σ
    grows from ``rattle/2`` to ``rattle`` (Å) over the set; ``strain`` is the std of
    the random symmetric strain; ``vacancies`` atoms are removed at random.
    """
    rng = np.random.default_rng(seed)
    el = species[0]
    ref = reference_states[atomic_numbers[el]] or {}
    lattice = lattice or ref.get("symmetry", "fcc")
    if a is None:
        a = ref.get("a")
    if a is None:
        raise ValueError(f"no lattice constant known for {el}; give random.a")
    pool = list(choose) if choose else list(species)
    out = []
    for k in range(n):
        atoms = bulk(el, lattice, a=a, cubic=lattice in _CUBIC_OK) * tuple(int(x) for x in supercell)
        if composition:
            atoms.set_chemical_symbols(_decorate(composition, len(atoms), rng))
        elif len(pool) > 1:
            frac = rng.dirichlet(np.ones(len(pool)))
            atoms.set_chemical_symbols(rng.choice(pool, size=len(atoms), p=frac).tolist())
        if vacancies:
            keep = np.sort(rng.choice(len(atoms), size=max(1, len(atoms) - vacancies), replace=False))
            atoms = atoms[keep]
        eps = strain * rng.standard_normal((3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
        sigma = rattle * (0.5 + 0.5 * k / max(1, n - 1))
        atoms.positions += sigma * rng.standard_normal(atoms.positions.shape)
        atoms.wrap()
        atoms.info["config_type"] = "random"
        out.append(atoms)
    return out


def _decorate(composition: Dict[str, float], n: int, rng: np.random.Generator) -> List[str]:
    """``n`` symbols in the given fractions (largest remainders get the rounding), shuffled."""
    names = list(composition)
    w = np.array([float(composition[k]) for k in names])
    exact = w / w.sum() * n
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts))[:n - counts.sum()]:
        counts[k] += 1
    symbols = [s for s, c in zip(names, counts) for _ in range(c)]
    return [symbols[i] for i in rng.permutation(n)]


def read_frames(paths: Sequence[str]) -> List[Atoms]:
    """All frames of the files (labels, if any, stay attached as calculators/info)."""
    out: List[Atoms] = []
    for p in paths:
        frames = ase.io.read(p, index=":")
        out.extend(frames if isinstance(frames, list) else [frames])
    return out


def existing_labels(atoms: Atoms):
    """``(energy, forces, stress)`` already present in a read frame, or ``None``."""
    from ..data.io import _labels
    e, f, s = _labels(atoms)
    if e is None or f is None:
        return None
    return float(e), np.asarray(f, dtype=float), (None if s is None else np.asarray(s, dtype=float))


def structures_from(section: Dict[str, Any], species: Sequence[str], seed: int) -> List[Atoms]:
    """Frames from a config section with ``structures`` (files) and/or ``random``."""
    frames: List[Atoms] = []
    if section.get("structures"):
        frames += read_frames(section["structures"])
    r = section.get("random")
    if r:
        kw = dict(r)
        choose = kw.pop("species", None)
        kw["seed"] = kw.get("seed", 0) + seed
        frames += random_structures(species, choose=choose, **kw)
    return frames


def oracle_md_frames(system: str, dynamics: str, steps: int, every: int, oracle: Dict[str, Any],
                     species: Sequence[str], seed: int = 12345,
                     potential: Optional[Dict[str, Any]] = None) -> List[Atoms]:
    """Frames, labelled by a LAMMPS oracle, of an MD of the campaign's protocol.

    The same ``system``/``dynamics`` commands as the campaign, except the
    ``velocity ... create T SEED`` seed, which is replaced by ``seed`` so the
    trajectory is independent. The MD is driven by the oracle potential itself,
    or by ``potential`` (``{"pair_style": "mlal", "pair_coeff": "* * model.pt Si"}``:
    a model's own trajectory, for the error where the model takes the atoms).
    Each frame carries the oracle's energy (eV), forces (eV/Å) and stress (eV/Å³)
    as a SinglePointCalculator. If a driving ``potential`` fails (lost atoms, a
    model error), the frames up to the failure are returned and the last one has
    ``info["md_failed"]`` (the error text).
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    from .lammps_driver import _split, with_velocity_seed
    from .oracles import LammpsCalculator, _new_lammps

    calc = LammpsCalculator(oracle["pair_style"], oracle["pair_coeff"], oracle.get("species", species))
    drive = potential or oracle
    lmp = _new_lammps()
    try:
        lmp.command("atom_modify map array")
        for c in with_velocity_seed(_split(system), seed=seed):
            lmp.command(c)
        lmp.command(f"pair_style {drive['pair_style']}")
        pcs = [drive["pair_coeff"]] if isinstance(drive["pair_coeff"], str) else drive["pair_coeff"]
        for pc in pcs:
            lmp.command(f"pair_coeff {calc._resolve(pc)}")
        for c in _split(dynamics):
            lmp.command(c)
        lmp.command("thermo_style custom step pe pxx pyy pzz pyz pxz pxy")
        lmp.command("thermo_modify norm no")
        frames: List[Atoms] = []
        n = int(lmp.get_natoms())
        from ase import units
        for s in range(every, steps + 1, every):
            try:
                lmp.command(f"run {s} upto start 0 stop {steps} post no")
            except Exception as exc:  # noqa: BLE001 (only a driving model can fail here)
                if potential is None:
                    raise
                if frames:
                    frames[-1].info["md_failed"] = f"step {s - every}..{s}: {exc}"
                return frames
            x = np.array(lmp.gather_atoms("x", 1, 3)).reshape(n, 3)
            t = np.array(lmp.gather_atoms("type", 0, 1))
            boxlo, boxhi, xy, yz, xz, per, _ = lmp.extract_box()
            L = np.array(boxhi) - np.array(boxlo)
            cell = np.array([[L[0], 0, 0], [xy, L[1], 0], [xz, yz, L[2]]])
            atoms = Atoms([species[k - 1] for k in t], positions=x - np.array(boxlo), cell=cell, pbc=per)
            if potential is None:
                f = np.array(lmp.gather_atoms("f", 1, 3)).reshape(n, 3)
                p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
                atoms.calc = SinglePointCalculator(atoms, energy=float(lmp.get_thermo("pe")), forces=f,
                                                   stress=-p * 1e-4 * units.GPa)
            else:
                ref = atoms.copy()
                ref.calc = calc
                atoms.calc = SinglePointCalculator(atoms, energy=ref.get_potential_energy(),
                                                   forces=ref.get_forces(),
                                                   stress=ref.get_stress() if all(per) else None)
            atoms.info["step"] = s
            atoms.info["config_type"] = "oracle_md" if potential is None else "model_md"
            frames.append(atoms)
        return frames
    finally:
        lmp.close()
