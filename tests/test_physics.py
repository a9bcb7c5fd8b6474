"""Physics of the exported model through the ASE calculator (float64).

Forces = -dE/dx, stress = strain derivative, invariances, extensivity, and
NVE energy conservation.
"""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from ase_calculators import MlalCalculator
from mlal.testing import example_structures


def _structures():
    """Triclinic periodic alloy, slab (partly periodic), and a free cluster."""
    tric = example_structures(["Cu", "Ni", "Au"], 1, seed=11)[0]
    tric.set_cell(tric.cell.array + np.array([[0, 0, 0], [1.1, 0, 0], [0.4, -0.7, 0]]), scale_atoms=False)
    slab = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    slab.symbols[[1, 5]] = "Ni"
    slab.center(vacuum=4.0, axis=2)
    slab.pbc = [True, True, False]
    slab.rattle(0.05, seed=2)
    cluster = Atoms("Cu4Ni2Au", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5],
                                            [2.4, 2.4, 0.1], [1.3, 1.2, 2.2], [-1.9, 1.4, 0.8]])
    return {"triclinic": tric, "slab": slab, "cluster": cluster}


@pytest.mark.parametrize("name", ["triclinic", "slab", "cluster"])
def test_forces_are_minus_energy_gradient(physics_model, name):
    atoms = _structures()[name]
    atoms.calc = MlalCalculator(physics_model, uncertainty=False)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 1e-3, "degenerate test: forces vanish"
    rng = np.random.default_rng(0)
    h = 1e-5
    for _ in range(6):
        i, c = int(rng.integers(len(atoms))), int(rng.integers(3))
        p = atoms.positions.copy()
        atoms.positions[i, c] = p[i, c] + h
        ep = atoms.get_potential_energy()
        atoms.positions[i, c] = p[i, c] - h
        em = atoms.get_potential_energy()
        atoms.positions = p
        fd = -(ep - em) / (2 * h)
        assert abs(fd - forces[i, c]) <= 1e-6 * max(1.0, abs(forces[i, c])), (i, c, fd, forces[i, c])


def test_stress_is_strain_derivative(physics_model):
    atoms = _structures()["triclinic"]
    atoms.calc = MlalCalculator(physics_model, uncertainty=False)
    stress = atoms.get_stress(voigt=False)
    assert np.abs(stress).max() > 1e-4
    cell0, pos0, vol = atoms.cell.array.copy(), atoms.positions.copy(), atoms.get_volume()
    h = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * h / 2
            eps[b, a] += sign * h / 2
            atoms.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=False)
            atoms.positions = pos0 @ (np.eye(3) + eps)
            energies.append(atoms.get_potential_energy())
        atoms.set_cell(cell0, scale_atoms=False)
        atoms.positions = pos0
        fd = (energies[0] - energies[1]) / (2 * h) / vol
        assert abs(fd - stress[a, b]) <= 1e-6 * max(1e-2, abs(stress[a, b])), (a, b, fd, stress[a, b])


def test_rotation_translation_permutation_invariance(physics_model):
    atoms = _structures()["triclinic"]
    calc = MlalCalculator(physics_model)
    atoms.calc = calc
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    sigma, gamma = calc.results["sigma"].copy(), calc.results["gamma"].copy()

    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    rot = atoms.copy()
    rot.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    rot.positions = atoms.positions @ q.T + np.array([0.3, -1.7, 2.2])
    rot.calc = MlalCalculator(physics_model)
    assert rot.get_potential_energy() == pytest.approx(e, rel=1e-12, abs=1e-10)
    np.testing.assert_allclose(rot.get_forces(), f @ q.T, atol=1e-10)
    np.testing.assert_allclose(rot.get_stress(voigt=False), q @ s @ q.T, atol=1e-10)
    np.testing.assert_allclose(rot.calc.results["sigma"], sigma, atol=1e-10)
    np.testing.assert_allclose(rot.calc.results["gamma"], gamma, rtol=1e-8, atol=1e-10)

    perm = rng.permutation(len(atoms))
    pa = atoms[perm]
    pa.calc = MlalCalculator(physics_model)
    assert pa.get_potential_energy() == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(pa.get_forces(), f[perm], atol=1e-10)
    np.testing.assert_allclose(pa.calc.results["gamma"], gamma[perm], rtol=1e-8, atol=1e-10)


def test_supercell_is_extensive(physics_model):
    atoms = _structures()["triclinic"]
    atoms.calc = MlalCalculator(physics_model)
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    big = atoms * (2, 1, 3)
    big.calc = MlalCalculator(physics_model)
    assert big.get_potential_energy() == pytest.approx(6 * e, rel=1e-11)
    np.testing.assert_allclose(big.get_forces()[: len(atoms)], f, atol=1e-10)
    np.testing.assert_allclose(big.get_stress(), s, atol=1e-11)
    np.testing.assert_allclose(big.calc.results["energy_sigma"], 6 * atoms.calc.results["energy_sigma"], rtol=1e-9)


def test_cutoff_is_smooth(mo_model):
    """Energy and force are continuous as a neighbour crosses the cutoff."""
    calc = MlalCalculator(mo_model, uncertainty=False)
    rc = calc.cutoff
    es, fs = [], []
    for d in (rc - 1e-4, rc - 1e-6, rc + 1e-6):
        dimer = Atoms("Mo2", positions=[[0, 0, 0], [d, 0, 0]])
        dimer.calc = calc
        es.append(dimer.get_potential_energy())
        fs.append(dimer.get_forces()[0, 0])
    assert abs(es[1] - es[2]) < 1e-12 and abs(fs[1] - fs[2]) < 1e-12
    assert abs(es[0] - es[2]) < 1e-9


def test_radial_range_start_is_smooth(alloy_r_min_model):
    """Forces stay continuous, and follow the energy, as a pair crosses r_min (the radial
    functions continue below it; a clamp there would make the forces jump)."""
    calc = MlalCalculator(alloy_r_min_model, uncertainty=False)
    fs, es = [], []
    for d in (2.2 - 1e-6, 2.2 + 1e-6, 2.2 - 1e-5, 2.2 + 1e-5):
        dimer = Atoms("CuNi", positions=[[0, 0, 0], [d, 0, 0]])
        dimer.calc = calc
        es.append(dimer.get_potential_energy())
        fs.append(dimer.get_forces()[1, 0])
    assert abs(fs[0]) > 1e-3, "degenerate test: no force at r_min"
    # a smooth force changes ten times as much over a ten times wider step; a jump does not
    assert abs(fs[3] - fs[2]) > 5 * abs(fs[1] - fs[0]) and abs(fs[1] - fs[0]) < 1e-3
    assert abs(-(es[3] - es[2]) / 2e-5 - (fs[0] + fs[1]) / 2) < 1e-6 * max(1.0, abs(fs[0]))


def test_below_r_min_energy_and_forces_stay_bounded(alloy_r_min_model):
    """Under r_min the radial argument saturates: a dimer pushed from 2.2 Å (r_min) to 0.6 Å
    changes its energy and force by the order of their range above r_min (7 and 0.5 times here),
    not by T_k's growth outside [-1, 1] (about 10⁹ eV at 0.6 Å before the saturation)."""
    calc = MlalCalculator(alloy_r_min_model, uncertainty=False)

    def energy_force(d: float):
        dimer = Atoms("CuNi", positions=[[0, 0, 0], [d, 0, 0]])
        dimer.calc = calc
        return dimer.get_potential_energy(), dimer.get_forces()[1, 0]

    above = np.array([energy_force(d) for d in np.linspace(2.2, 4.9, 28)])
    below = np.array([energy_force(d) for d in np.linspace(0.6, 2.2, 17)])
    e_span, f_max = np.ptp(above[:, 0]), np.abs(above[:, 1]).max()
    assert e_span > 1e-3 and f_max > 1e-2, "degenerate test: a flat model"
    assert np.abs(below[:, 0] - above[0, 0]).max() < 20 * e_span
    assert np.abs(below[:, 1]).max() < 20 * f_max


def test_nve_energy_conservation(mo_model):
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True) * (3, 3, 3)
    atoms.calc = MlalCalculator(mo_model, uncertainty=False)
    MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    e0 = atoms.get_total_energy()
    energies = []
    for _ in range(100):                                  # 1 ps
        dyn.run(10)
        energies.append(atoms.get_total_energy())
    drift = np.abs(np.array(energies) - e0).max() / len(atoms)
    assert atoms.get_temperature() > 100, "degenerate test: the cell froze"
    assert drift < 1e-3, f"energy drift {drift * 1e3:.3f} meV/atom"


def test_molecule_and_unknown_element(alloy_model):
    calc = MlalCalculator(alloy_model)
    h2o = molecule("H2O")
    h2o.calc = calc
    with pytest.raises(ValueError, match=r"H, O not in the model; the model knows Cu, Ni, Au"):
        h2o.get_potential_energy()
