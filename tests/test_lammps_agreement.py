"""pair_style mlal agrees with the ASE calculator (float64) on every quantity.

Energy ≤1e-10 relative, forces ≤1e-8 eV/Å, stress/virial ≤1e-8 relative,
per-atom energies, σ, γ and energy σ likewise; on orthogonal, triclinic,
non-periodic (cluster, slab) and three-element cells with two LAMMPS types on
one element (moments up to rank 3, and up to rank 4); newton_pair on and off.
"""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bcc100, bulk

from mlal.integrations.lammps import lammps_single_point, require_plugin, to_lammps_orientation
from mlal.testing import random_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    require_plugin()
    d = tmp_path_factory.mktemp("lmp_models")
    return {"mo": random_model(d / "mo.pt", species=["Mo"], n_members=3),
            "alloy": random_model(d / "cuniau.pt", species=["Cu", "Ni", "Au"], n_members=4, seed=3),
            "alloy_rank4": random_model(d / "cuniau_rank4.pt", species=["Cu", "Ni", "Au"], n_members=3, seed=4,
                                        channels=(6, 4, 4, 3, 3))}


def _rattle(atoms, amp, seed):
    rng = np.random.default_rng(seed)
    atoms.positions += amp * rng.standard_normal(atoms.positions.shape)
    return atoms


def mo_cubic():
    atoms = _rattle(bulk("Mo", "bcc", a=3.16, cubic=True) * (3, 3, 3), 0.1, 1)
    atoms.wrap()
    return atoms, None, ["Mo"]


def mo_triclinic():
    atoms = bulk("Mo", "bcc", a=3.16) * (4, 4, 4)    # primitive bcc: a strongly tilted cell
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.array([[0.02, 0.03, -0.01],
                                                              [0.0, -0.01, 0.02],
                                                              [0.01, 0.0, 0.015]])), scale_atoms=True)
    atoms = to_lammps_orientation(_rattle(atoms, 0.1, 2))
    atoms.wrap()
    return atoms, None, ["Mo"]


def mo_cluster():
    base = bulk("Mo", "bcc", a=3.16, cubic=True) * (4, 4, 4)
    centre = base.positions.mean(axis=0)
    keep = np.linalg.norm(base.positions - centre, axis=1) < 5.5
    atoms = Atoms("Mo" * int(keep.sum()), positions=base.positions[keep] - centre + 15.0,
                  cell=[30.0, 30.0, 30.0], pbc=False)
    return _rattle(atoms, 0.1, 3), None, ["Mo"]


def mo_slab():
    atoms = bcc100("Mo", size=(3, 3, 5), a=3.16, vacuum=6.0)
    atoms.pbc = (True, True, False)
    atoms = _rattle(atoms, 0.08, 4)
    atoms.wrap()
    return atoms, None, ["Mo"]


def alloy_triclinic():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True) * (3, 3, 2)
    rng = np.random.default_rng(5)
    atoms.set_chemical_symbols(rng.choice(["Cu", "Ni", "Au"], size=len(atoms)).tolist())
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.array([[0.0, 0.04, 0.0], [0.0, 0.0, 0.03],
                                                              [0.0, 0.0, 0.0]])), scale_atoms=True)
    atoms = to_lammps_orientation(_rattle(atoms, 0.08, 6))
    atoms.wrap()
    # four LAMMPS types; types 1 and 4 are both Cu
    elements = ["Cu", "Ni", "Au", "Cu"]
    types = [elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
    cu = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "Cu"]
    for k in cu[::2]:
        types[k] = 4
    return atoms, types, elements


CASES = {"mo_cubic": ("mo", mo_cubic), "mo_triclinic": ("mo", mo_triclinic),
         "mo_cluster": ("mo", mo_cluster), "mo_slab": ("mo", mo_slab),
         "alloy_triclinic": ("alloy", alloy_triclinic), "alloy_rank4_triclinic": ("alloy_rank4", alloy_triclinic)}


def _reference(atoms, model):
    from ase_calculators.mlal import MlalCalculator
    atoms = atoms.copy()
    atoms.calc = MlalCalculator(str(model), uncertainty=True)
    atoms.get_potential_energy()
    return atoms.calc.results


def _close(a, b, tol, what, rel=True):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(np.abs(b).max(), 1e-300) if rel else 1.0
    err = np.abs(a - b).max() / scale
    assert err <= tol, f"{what}: {'relative ' if rel else ''}error {err:.3g} > {tol}"


@pytest.mark.parametrize("newton", [True, False], ids=["newton_on", "newton_off"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_ase(models, tmp_path, case, newton):
    key, build = CASES[case]
    atoms, types, elements = build()
    ref = _reference(atoms, models[key])
    got = lammps_single_point(atoms, models[key], elements, types=types, newton=newton, workdir=tmp_path)
    _close(got["energy"], ref["energy"], 1e-10, "energy")
    _close(got["energies"], ref["energies"], 1e-10, "per-atom energy", rel=False)
    _close(got["forces"], ref["forces"], 1e-8, "forces (eV/Å)", rel=False)
    _close(got["gamma"], ref["gamma"], 1e-8, "gamma")
    _close(got["sigma"], ref["sigma"], 1e-8, "sigma")
    _close(got["energies_sigma"], ref["energies_sigma"], 1e-8, "per-atom energy sigma")
    _close(got["energy_sigma"], ref["energy_sigma"], 1e-8, "energy sigma")
    # the global virial and the sum of per-atom virials are the same tensor
    _close(got["atom_virial"], got["virial"], 1e-9, "sum of per-atom virials vs global virial")
    if atoms.pbc.all():
        _close(got["stress"], ref["stress"], 1e-8, "stress")
    if not atoms.pbc.any():
        # isolated cluster: W = Σ_i x_i ⊗ F_i exactly
        w = np.einsum("ia,ib->ab", atoms.positions, ref["forces"])
        _close(got["virial"], 0.5 * (w + w.T), 1e-8, "cluster virial")
    assert ref["gamma_max"] > 0 and np.ptp(ref["sigma"]) > 0    # the comparison means something


def test_uncertainty_off_same_forces(models, tmp_path):
    atoms, types, elements = alloy_triclinic()
    on = lammps_single_point(atoms, models["alloy"], elements, types=types, workdir=tmp_path)
    off = lammps_single_point(atoms, models["alloy"], elements, types=types, uncertainty=False,
                              workdir=tmp_path)
    assert abs(on["energy"] - off["energy"]) <= 1e-12 * abs(on["energy"])
    assert np.abs(on["forces"] - off["forces"]).max() <= 1e-12
    assert "gamma" not in off


def test_float32_model(tmp_path):
    """A float32 export runs in LAMMPS and agrees with ASE to float32 round-off."""
    require_plugin()
    model = random_model(tmp_path / "mo32.pt", species=["Mo"], n_members=3, dtype="float32")
    atoms, types, elements = mo_triclinic()
    ref = _reference(atoms, model)
    got = lammps_single_point(atoms, model, elements, workdir=tmp_path)
    _close(got["energy"], ref["energy"], 1e-6, "energy")
    _close(got["forces"], ref["forces"], 1e-4, "forces (eV/Å)", rel=False)
    _close(got["stress"], ref["stress"], 1e-4, "stress")
    _close(got["gamma"], ref["gamma"], 1e-4, "gamma")
    _close(got["sigma"], ref["sigma"], 1e-4, "sigma")
