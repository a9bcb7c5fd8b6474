"""Structure search: random cells, the relaxations with active learning, distinct minima, the oracle's check."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.neighborlist import neighbor_list

from mlal.workflows.structure_search import (SearchSettings, StructureSearch, distinct_minima,
                                             random_search_cells)


def test_random_structures_keep_volume_distance_and_seed():
    s = random_search_cells(["Cu", "Cu", "Au", "Au"], 8, volume_per_atom=14.0, min_distance=2.1, seed=3)
    assert len(s) == 8 and [a.info["name"] for a in s] == [f"r{k}" for k in range(8)]
    for a in s:
        assert a.get_volume() / len(a) == pytest.approx(14.0)
        assert a.get_chemical_formula() == "Au2Cu2" and all(a.pbc)
        assert len(neighbor_list("d", a, 2.1 - 1e-9)) == 0         # no pair (images included) closer
        angles = a.cell.cellpar()[3:]
        assert (angles >= 60 - 1e-6).all() and (angles <= 120 + 1e-6).all()
    again = random_search_cells(["Cu", "Cu", "Au", "Au"], 8, volume_per_atom=14.0, min_distance=2.1, seed=3)
    assert all(np.allclose(a.positions, b.positions) for a, b in zip(s, again))
    with pytest.raises(ValueError, match="min_distance"):
        random_search_cells(["Cu"] * 8, 1, volume_per_atom=2.0, min_distance=3.0, max_tries=50)


def test_distinct_minima_are_one_under_rotation_translation_and_another_cell():
    from ase.build import bulk
    fcc = bulk("Cu", "fcc", a=3.6, cubic=True)
    fcc.set_chemical_symbols(["Cu", "Au", "Cu", "Au"])                     # L1_0
    turned = fcc.copy()
    turned.rotate(37, "z", rotate_cell=True)
    turned.translate([0.3, -0.2, 0.1])
    turned.wrap()
    doubled = fcc.repeat((1, 2, 1))                                       # the same crystal, a larger cell
    other = fcc.copy()
    other.set_chemical_symbols(["Cu", "Cu", "Au", "Au"])                   # layered the other way: the same L1_0
    l11 = bulk("Cu", "fcc", a=3.6)
    l11 = l11.repeat((1, 1, 2))
    l11.set_chemical_symbols(["Cu", "Au"])                                 # L1_1: another ordering
    s = {"a": fcc, "b": turned, "c": doubled, "d": other, "e": l11}
    e = {"a": -1.0, "b": -1.0 + 1e-4, "c": -1.0 + 2e-4, "d": -1.0 + 3e-4, "e": -0.99}
    m = distinct_minima(s, e, same_energy=0.002)
    assert [(x["name"], x["count"]) for x in m] == [("a", 4), ("e", 1)]
    assert m[0]["members"] == ["a", "b", "c", "d"]
    m = distinct_minima(s, dict(e, b=-0.9), same_energy=0.002)         # equivalent but 0.1 eV/atom apart
    assert [x["name"] for x in m] == ["a", "e", "b"]


def test_structure_search_checks_the_lowest_minima_with_the_oracle(tmp_path,
                                                                                        emt_cuau_start):
    from ase.filters import FrechetCellFilter
    from ase.io import read
    from ase.optimize import BFGS
    data, _, model, cfg = emt_cuau_start
    cands = random_search_cells(["Cu", "Cu", "Au", "Au"], 3, volume_per_atom=14.0, min_distance=2.2, seed=1)
    settings = SearchSettings(training=cfg, labels_per_round=2, max_rounds=1, gamma_break=2.0, max_steps=150,
                              n_check=2)
    res = StructureSearch(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path,
                          settings).run(progress=print)
    minima = res["minima"]
    assert res["n_structures"] == 3 and sum(m["count"] for m in minima) == 3 - len(res["failed"])
    energies = [m["energy"] for m in minima]
    assert energies == sorted(energies)
    checked = [m for m in minima if "oracle_energy" in m]
    assert len(checked) == min(2, len(minima))
    assert res["oracle_lowest_checked"] == min(checked, key=lambda m: m["oracle_energy"])["name"]
    saved = read(tmp_path / "minima.extxyz", ":")
    assert len(saved) == len(minima)
    a = saved[0].copy()                              # the oracle's check is an EMT relaxation of that minimum
    a.calc = EMT()
    BFGS(FrechetCellFilter(a), logfile=None).run(fmax=settings.fmax, steps=settings.max_steps)
    assert a.get_potential_energy() / len(a) == pytest.approx(checked[0]["oracle_energy"], abs=2e-3)
    assert json.loads((tmp_path / "search.json").read_text())["model_lowest"] == minima[0]["name"]
    assert (tmp_path / "search.png").stat().st_size > 5000


def test_search_cli(tmp_path, emt_cuau_start):
    from mlal.cli import main
    _, data_file, model, _ = emt_cuau_start
    args = ["search", "--model", str(model), "--data", str(data_file), "--composition", "CuAu", "--structures", "2",
            "--volume", "14", "--min-distance", "2.2", "--rounds", "1", "--train-time", "2", "--check", "1",
            "--workdir", str(tmp_path / "w")]
    assert main(args + ["--json"]) == 0
    res = json.loads((tmp_path / "w" / "search.json").read_text())
    assert res["n_structures"] == 2 and len([m for m in res["minima"] if "oracle_energy" in m]) == 1
    assert main(args[:-2] + ["--workdir", str(tmp_path / "v"), "--composition", "CuAg"]) == 2   # Ag: not in the model
