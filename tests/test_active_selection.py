"""D-optimal batch selection, σ selection, cluster cutting, and the labelling executor's
failure handling (exception, NaN, non-converged, timeout, crashed worker)."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

from mlal.active.labelling import Labeller, label_one
from mlal.active.selection import atom_features, cut_cluster, select_by_sigma, select_d_optimal


@pytest.fixture(scope="module")
def cu_model(tmp_path_factory):
    from mlal.deploy import load_model
    from mlal.testing import random_model
    return load_model(random_model(tmp_path_factory.mktemp("sel") / "cu.pt", species=["Cu"], n_members=2))


def _configs():
    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        a = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
        a.positions += (0.05 + 0.15 * k) * rng.standard_normal(a.positions.shape)
        out.append(a)
    return out


def test_d_optimal_skips_duplicates(cu_model):
    cands = _configs()
    g = [atom_features(cu_model, a).gamma.max() for a in cands]
    first = int(np.argmax(g))
    cands.append(cands[first].copy())                  # an exact duplicate of the most extrapolative one
    chosen, grades = select_d_optimal(cu_model, cands, n_select=5)
    assert chosen[0] in (first, 4) and grades[0] == pytest.approx(max(g))
    assert not ({first, 4} <= set(chosen))             # the duplicate adds nothing once its twin is in
    assert all(gr > 1.0 for gr in grades)


def test_select_by_sigma_separation():
    assert select_by_sigma([0.1, 0.5, 0.45, 0.3], 2) == [1, 2]
    assert select_by_sigma([0.1, 0.5, 0.45, 0.3], 2, steps=[0, 10, 12, 40], min_separation=5) == [1, 3]
    assert select_by_sigma([0.1, 0.2], 3, sigma_min=0.15) == [1]


@pytest.mark.parametrize("mode", ["sphere", "periodic"])
def test_cut_cluster(mode):
    big = bulk("Cu", "fcc", a=3.61, cubic=True) * (5, 5, 5)
    c = cut_cluster(big, 17, radius=4.0, mode=mode)
    assert 10 < len(c) < 200
    assert c.info["cluster_mode"] == mode
    if mode == "sphere":
        assert not c.pbc.any()
        d = np.linalg.norm(c.positions - c.positions[0], axis=1)
        assert d.max() <= 4.0 + 1e-9
    else:
        assert c.pbc.all()
        assert np.min(c.get_all_distances(mic=True)[np.triu_indices(len(c), 1)]) > 1.2


class Bad(Calculator):
    implemented_properties = ["energy", "forces"]

    def __init__(self, mode="raise", **kw):
        super().__init__(**kw)
        self.mode = mode

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        n = len(self.atoms)
        if self.mode == "raise":
            raise RuntimeError("segfault-ish")
        if self.mode == "sleep":
            time.sleep(5)
        if self.mode == "exit":
            os._exit(3)
        f = np.zeros((n, 3))
        if self.mode == "nan":
            f[0, 0] = np.nan
        self.results = {"energy": 1.0, "forces": f}
        if self.mode == "unconverged":
            self.results["converged"] = False
        if self.mode == "huge":
            self.results["forces"] = f + 1e4


def bad(mode):
    return Bad(mode)


ATOMS = bulk("Cu", "fcc", a=3.61)


@pytest.mark.parametrize("mode, msg", [("raise", "oracle raised RuntimeError: segfault-ish"),
                                       ("nan", "NaN"), ("unconverged", "non-converged"),
                                       ("huge", "max_force"), ("sleep", "timeout")])
def test_label_one_failures(mode, msg):
    r = label_one("k", ATOMS, {"type": "python", "factory": "test_active_selection:bad",
                               "kwargs": {"mode": mode}}, timeout=0.5, max_force=100.0)
    assert not r.ok and msg in r.error and r.energy is None and r.forces is None


def test_label_one_ok_emt():
    r = label_one("k", ATOMS, EMT())
    assert r.ok and np.isfinite(r.energy) and r.forces.shape == (1, 3) and r.stress.shape == (6,)


def test_crashed_worker_is_recorded_and_pool_replaced():
    spec_exit = {"type": "python", "factory": "test_active_selection:bad", "kwargs": {"mode": "exit"}}
    lab = Labeller(spec_exit, executor_kind="process", workers=1)
    seen = []
    res = lab.label([("a", ATOMS), ("b", ATOMS)], seen.append)
    assert [r.ok for r in res] == [False, False] and len(seen) == 2
    assert all("worker failed" in r.error and "__main__" in r.error for r in res)   # says what to check
    lab.spec = {"type": "emt"}
    res = lab.label([("c", ATOMS)])                  # a fresh pool answers again
    assert res[0].ok
    lab.close()
