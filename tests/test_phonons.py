"""Phonons through phonopy: against ASE's own finite-difference phonons, units, the members' spread, the CLI."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from ase_calculators import MlalCalculator
from mlal.workflows.phonons import THZ_TO_EV, auto_supercell, phonons, plot_phonons


def test_phonons_match_ase_finite_differences_and_phonopy_thermodynamics(tmp_path):
    """Cu with EMT: the bands equal ASE's independent implementation (a 6x6x6 supercell, where both
    have converged to 0.005 THz against an 8x8x8 one), the acoustic modes vanish at Γ, and the free
    energy equals phonopy's own (kJ/mol per 1-atom cell)."""
    from ase.phonons import Phonons
    atoms = bulk("Cu", "fcc", a=3.6)
    r = phonons(atoms, EMT(), supercell=(6, 6, 6), mesh=(12, 12, 12))
    ref = Phonons(atoms, EMT(), supercell=(6, 6, 6), delta=0.01, name=str(tmp_path / "ph"))
    ref.run()
    ref.read(acoustic=True)
    want = np.sort(ref.band_structure(atoms.cell.bandpath(npoints=200).kpts), axis=1) / THZ_TO_EV
    assert r.frequencies.shape == want.shape == (200, 3)
    assert np.abs(r.frequencies - want).max() < 0.01                       # THz, of 8 THz
    assert 7.0 < r.frequencies.max() < 9.0
    assert np.abs(r.frequencies[0]).max() < 1e-3                           # Γ, acoustic
    assert r.frequency_sigma is None and r.gamma_max is None               # EMT: no ensemble
    assert r.residual_force_max < 1e-10 and r.n_displacements == 2
    r.phonopy.run_thermal_properties(temperatures=[300.0, 1000.0], exclude_gamma_acoustic=True)
    kj_mol = r.phonopy.thermal_properties.free_energy
    assert r.free_energy([300.0, 1000.0]) == pytest.approx(np.asarray(kj_mol) * 0.01036427, rel=1e-5)
    assert r.free_energy(1000.0)[0] < r.free_energy(300.0)[0] < r.free_energy(0.0)[0]
    assert r.free_energy(0.0)[0] == pytest.approx(0.5 * (r.mesh_frequencies[r.mesh_frequencies > 1e-3]
                                                         * THZ_TO_EV * r.mesh_weights[:, None].repeat(3, 1)
                                                         [r.mesh_frequencies > 1e-3]).sum()
                                                  / r.mesh_weights.sum(), rel=1e-12)   # zero-point energy
    plot_phonons(r, str(tmp_path / "cu.png"), "Cu EMT", reference=r)
    assert (tmp_path / "cu.png").stat().st_size > 10_000


def test_phonons_with_an_ensemble_give_each_frequency_the_members_spread(mo_model):
    calc = MlalCalculator(mo_model)
    atoms = bulk("Mo", "bcc", a=3.16)
    atoms.calc = calc
    atoms.get_forces()
    members = calc.results["member_forces"]
    assert members.shape == (3, 1, 3)
    rattled = bulk("Mo", "bcc", a=3.16, cubic=True) * (2, 2, 2)
    rattled.rattle(0.05, seed=1)
    rattled.calc = calc
    f = rattled.get_forces()
    assert np.allclose(calc.results["member_forces"].mean(axis=0), f, rtol=0, atol=1e-12)

    r = phonons(atoms, calc, supercell=(3, 3, 3), npoints=60, mesh=(6, 6, 6))
    assert r.member_frequencies.shape == (3, 60, 3)
    assert np.allclose(r.frequency_sigma, r.member_frequencies.std(axis=0))
    assert r.frequency_sigma.max() > 0.01                 # untrained members disagree
    # force constants are linear in the forces: the ensemble mean's are the members' mean,
    # so at every q the mean model's squared frequencies are the members' mean (same eigenvectors
    # only at high symmetry; the trace of the dynamical matrix always)
    def signed_sq(nu):
        return np.sign(nu) * nu * nu
    assert np.allclose(signed_sq(r.frequencies).sum(1), signed_sq(r.member_frequencies).sum(2).mean(0),
                       rtol=1e-6, atol=1e-6)
    assert r.gamma_max is not None and r.gamma_max > 0 and r.sigma_max > 0
    json.dumps(r.summary())
    assert auto_supercell(atoms, 2 * calc.cutoff) == [5, 5, 5]   # bcc primitive: widths a/√2 = 2.23 Å, 10 Å wanted
    assert auto_supercell(atoms, 8.9) == [4, 4, 4]


def test_phonons_cli(mo_model, tmp_path):
    from mlal.cli import main
    bulk("Mo", "bcc", a=3.16).write(tmp_path / "mo.xyz")
    png = tmp_path / "mo.png"
    out = os.popen(f"cd {tmp_path} && {os.sys.executable} -m mlal.cli phonons {mo_model} mo.xyz "
                   f"--supercell 3 3 3 --mesh 4 4 4 --plot {png} --json").read()
    s = json.loads(out.strip().splitlines()[-1])
    assert s["supercell"] == [3, 3, 3] and s["n_bands"] == 3 and s["gamma_max"] > 0
    assert png.stat().st_size > 10_000
    assert main(["phonons", str(mo_model), str(tmp_path / "missing.xyz")]) == 2
    bulk("Cu", "fcc", a=3.6).write(tmp_path / "cu.xyz")
    assert main(["phonons", str(mo_model), str(tmp_path / "cu.xyz")]) == 2   # Cu not in the model
