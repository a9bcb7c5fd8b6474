"""On-lattice sampling: replica exchange against exact enumeration, the relaxed-energy labels, the loop."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.neighborlist import neighbor_list
from ase.units import kB

from mlal.workflows.lattice_mc import LatticeEnergy, LatticeSampling, LatticeSettings, replica_exchange


def test_replica_exchange_samples_the_canonical_ensemble_of_an_exactly_solvable_lattice():
    """Four Au and four Cu on 8 fcc sites with an unlike-neighbour pair energy: ⟨E⟩ and C of the
    70 arrangements, summed exactly, against the sampler's at four temperatures."""
    lattice = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
    i, j = neighbor_list("ij", lattice, 3.6 / np.sqrt(2) + 0.1)

    def energy(symbols):
        au = np.array([s == "Au" for s in symbols])
        return 0.02 * 0.5 * np.sum(au[i] != au[j])       # eV per unlike nearest-neighbour pair

    exact = np.array([energy(["Au" if k in c else "Cu" for k in range(8)])
                      for c in itertools.combinations(range(8), 4)])
    t = np.array([200.0, 500.0, 1000.0, 3000.0])
    res = replica_exchange(energy, ["Cu"] * 4 + ["Au"] * 4, t, sweeps=4000, seed=1)
    for k, temp in enumerate(t):
        w = np.exp(-(exact - exact.min()) / (kB * temp))
        mean = (w * exact).sum() / w.sum()
        var = (w * exact ** 2).sum() / w.sum() - mean ** 2
        assert res.mean_energy(0.1)[k] == pytest.approx(mean, abs=0.006)
        assert res.heat_capacity(0.1)[k] == pytest.approx(var / (kB * temp) ** 2, abs=0.25)
    assert res.lowest_energy == pytest.approx(exact.min())
    assert sorted(res.lowest) == sorted(["Cu"] * 4 + ["Au"] * 4)              # composition kept
    assert all(sorted(c) == sorted(res.lowest) for samples in res.samples for c in samples)
    assert (res.exchange > 0.3).all() and res.acceptance[-1] > res.acceptance[1]
    with pytest.raises(ValueError, match="one element"):
        replica_exchange(energy, ["Cu"] * 8, t, sweeps=1)


def test_lattice_sampling_labels_relaxed_energies_of_ideal_cells_and_resumes(tmp_path, emt_cuau_start):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    data, _, model, cfg = emt_cuau_start
    lattice = bulk("Cu", "fcc", a=3.85, cubic=True).repeat((1, 1, 2))
    lattice.set_chemical_symbols(["Cu", "Au"] * 4)
    settings = LatticeSettings(temperatures=[300.0, 1500.0], sweeps=60, labels_per_round=3, max_rounds=2,
                               tolerance=1e-6, training=cfg)
    lines = []
    res = LatticeSampling(lattice, model, data, {"type": "emt"}, tmp_path, settings).run(progress=lines.append)
    assert res["rounds"] == 2 and res["n_labels"] == 6 and len(res["errors"]) == 2 and not res["converged"]
    from mlal.active.store import read_extxyz
    labels = read_extxyz(tmp_path / "labels.extxyz")
    assert len(labels) == 6
    for a in labels[:2]:
        # an ideal-lattice cell (the starting sites), labelled with EMT's energy after relaxing it
        assert np.allclose(a.positions, lattice.positions) and sorted(a.get_chemical_symbols()) == sorted(
            lattice.get_chemical_symbols())
        r = a.copy()
        r.calc = EMT()
        BFGS(FrechetCellFilter(r), logfile=None).run(fmax=settings.fmax, steps=settings.max_steps)
        assert a.get_potential_energy() == pytest.approx(r.get_potential_energy(), abs=5e-3 * len(a))
        ideal = a.copy()
        ideal.calc = EMT()
        assert a.get_potential_energy() <= ideal.get_potential_energy() + 1e-9         # relaxed below ideal
    # the round's error is the model's (before training on them) against those labels
    first = LatticeEnergy(model, lattice)
    err = np.mean([abs(first(a.get_chemical_symbols()) - a.get_potential_energy()) / len(a) for a in labels[:3]])
    assert res["errors"][0]["mae"] == pytest.approx(err, rel=1e-9)
    out = json.loads((tmp_path / "lattice.json").read_text())
    assert len(out["mean_energy_per_atom"]) == 2 and len(out["heat_capacity_kB_per_atom"]) == 2
    assert (tmp_path / "lattice.png").stat().st_size > 5000
    again = LatticeSampling(lattice, model, data, {"type": "emt"}, tmp_path, settings).run(progress=lines.append)
    assert again["n_labels"] == 6 and again["model_path"] == res["model_path"]          # resumed: nothing new


def test_lattice_cli(tmp_path, emt_cuau_start):
    from mlal.cli import main
    _, data_file, model, _ = emt_cuau_start
    lattice = bulk("Cu", "fcc", a=3.85, cubic=True)
    lattice.set_chemical_symbols(["Cu", "Au", "Cu", "Au"])
    lattice.write(tmp_path / "ideal.xyz")
    args = ["lattice", "--structure", str(tmp_path / "ideal.xyz"), "--model", str(model), "--data", str(data_file),
            "--temperatures", "500", "1500", "--sweeps", "20", "--rounds", "1", "--labels-per-round", "2",
            "--train-time", "2", "--workdir", str(tmp_path / "w")]
    assert main(args + ["--json"]) == 0
    out = json.loads((tmp_path / "w" / "lattice.json").read_text())
    assert out["n_labels"] == 2 and len(out["temperatures"]) == 2
    assert main(args[:-2] + ["--workdir", str(tmp_path / "v"), "--temperatures", "-5"]) == 2
