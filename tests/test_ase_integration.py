"""The calculator inside ASE workflows: optimizers with cell filters, and ase.db."""
from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.db import connect
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from ase_calculators import ExtrapolationError, MlalCalculator


def test_relax_with_cell_filter(mo_model):
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True) * (2, 2, 2)
    atoms.rattle(0.03, seed=1)
    atoms.calc = MlalCalculator(mo_model, uncertainty=False)
    e0 = atoms.get_potential_energy()
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=1e-3, steps=300)
    assert atoms.get_potential_energy() < e0
    assert np.abs(atoms.get_forces()).max() < 1e-3
    assert np.abs(atoms.get_stress()).max() * atoms.get_volume() < 2e-3 * 3 * len(atoms)


def test_results_go_into_ase_db(mo_model, tmp_path):
    atoms = bulk("Mo", "bcc", a=3.2, cubic=True) * (2, 2, 2)
    atoms.calc = MlalCalculator(mo_model)
    atoms.get_potential_energy()
    gmax = atoms.calc.results["gamma_max"]
    with connect(tmp_path / "r.db") as db:
        db.write(atoms, gamma_max=gmax)
    row = next(connect(tmp_path / "r.db").select())
    assert row.energy == atoms.get_potential_energy()
    np.testing.assert_allclose(row.forces, atoms.get_forces())
    assert row.gamma_max == gmax


def test_gamma_break_raises(mo_model):
    atoms = bulk("Mo", "bcc", a=3.16 * 0.8, cubic=True) * (2, 2, 2)
    atoms.calc = MlalCalculator(mo_model, gamma_break=3.0)
    try:
        atoms.get_potential_energy()
    except ExtrapolationError as exc:
        assert exc.gamma_max > 3.0
        assert atoms.calc.results["gamma_max"] == exc.gamma_max
    else:
        raise AssertionError("no ExtrapolationError for a 20% compressed cell")
