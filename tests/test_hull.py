"""Convex-hull screening: superstructure enumeration, the hull geometry, the active-learning loop with EMT."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.utils.structure_comparator import SymmetryEquivalenceCheck

from mlal.workflows.enumeration import (energy_above_hull, enumerate_structures, formation_energies,
                                        hnf_matrices, lower_hull)


def test_hnf_matrices_count_every_sublattice():
    """Sublattices of index n of a 3D lattice: 1, 7, 13, 35 (σ-sums, OEIS A001001)."""
    assert [len(list(hnf_matrices(n))) for n in (1, 2, 3, 4)] == [1, 7, 13, 35]
    assert all(round(abs(np.linalg.det(h))) == 4 for h in hnf_matrices(4))


def test_fcc_superstructures_up_to_four_atoms():
    s = enumerate_structures("fcc", ["Cu", "Au"], 4, a=3.8)
    by_size = Counter(len(a) for a in s)
    assert [by_size[n] for n in (1, 2, 3, 4)] == [2, 2, 6, 19]        # 29 in all
    # one minority atom per cell: one structure per symmetry-distinct superlattice of fcc
    # (1, 2, 3, 7 for n = 1..4, OEIS A159842): L1_0 and L1_1 at n = 2
    minority = Counter(len(a) for a in s if a.get_chemical_symbols().count("Au") == 1 and len(a) > 1)
    assert [minority[n] for n in (2, 3, 4)] == [2, 3, 7]
    assert s[0].get_chemical_formula() == "Cu" and s[1].get_chemical_formula() == "Au"
    assert len({a.info["name"] for a in s}) == len(s)
    same = SymmetryEquivalenceCheck(to_primitive=True)
    for i in range(len(s)):                  # no two equivalent (pairs of one size and composition)
        for j in range(i + 1, len(s)):
            if len(s[i]) == len(s[j]) and s[i].info["x"] == s[j].info["x"]:
                assert not same.compare(s[i], s[j]), (s[i].info["name"], s[j].info["name"])
        d = s[i].get_all_distances(mic=True)
        assert np.min(d[d > 0], initial=3.8 / np.sqrt(2)) == pytest.approx(3.8 / np.sqrt(2))   # fcc sites
    with pytest.raises(ValueError, match="lattice"):
        enumerate_structures("hcp", ["Cu", "Au"], 2)


def test_lower_hull_and_formation_energies():
    x = [0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 0.6]
    e = [-3.0, -3.3, -3.6, -3.5, -3.4, -4.0, -3.9, -3.8]
    ef = formation_energies(x, e)      # against -3.0 (x=0) and -4.0 (x=1, the lower of the two)
    assert ef == pytest.approx([0.0, -0.05, -0.1, 0.0, 0.35, 0.0, 0.1, -0.2])
    hull = lower_hull(x, ef)
    assert hull == [0, 7, 5]          # (0.5, -0.1) lies above the segment (0, 0)-(0.6, -0.2)
    above = energy_above_hull(x, ef)
    assert above[hull] == pytest.approx(0.0) and (above >= -1e-12).all()
    assert above[2] == pytest.approx(-0.1 - 0.5 / 0.6 * -0.2)
    assert lower_hull([0, 0.5, 1], [0, 0, 0]) == [0, 2]      # collinear: not a vertex
    with pytest.raises(ValueError, match="pure"):
        formation_energies([0.0, 0.5], [1.0, 2.0])


def test_hull_screening_labels_retrains_resumes_and_checks_with_the_oracle(tmp_path, emt_cuau_start):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    from mlal.workflows.hull import HullScreening, HullSettings
    data, _, model, cfg = emt_cuau_start
    cands = enumerate_structures("fcc", ["Cu", "Au"], 2, a=3.9)
    settings = HullSettings(training=cfg, labels_per_round=3, max_rounds=2, gamma_break=2.0, max_steps=100,
                            max_checks=0)
    lines = []
    res = HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path / "hull",
                        settings).run(progress=lines.append)
    journal = [json.loads(s) for s in open(tmp_path / "hull" / "journal.jsonl")]
    calls = [j for j in journal if j["event"] == "oracle_call"]
    assert res["rounds"] == 2 and 1 <= len(calls) <= 6 and res["n_labels"] == sum(c["ok"] for c in calls)
    from mlal.active.store import read_extxyz
    labels = read_extxyz(tmp_path / "hull" / "labels.extxyz")
    assert len(labels) == res["n_labels"]
    for a in labels:                         # the labels are EMT's, of the configurations stored
        ref = a.copy()
        ref.calc = EMT()
        assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-9)
    assert [e["name"] for e in res["entries"]] == [a.info["name"] for a in cands] and res["failed"] == []
    ends = {e["formula"]: e for e in res["entries"] if e["x"] in (0.0, 1.0)}
    assert set(ends) == {"Cu", "Au"} and all(e["on_hull"] and e["oracle_on_hull"] for e in ends.values())
    checked = [e for e in res["entries"] if "oracle_formation_energy" in e]
    assert [e["name"] for e in checked] == res["verified"] and len(checked) >= 2
    assert res["verified_formation_energy_mae"] == pytest.approx(
        np.mean([abs(e["formation_energy"] - e["oracle_formation_energy"]) for e in checked]))
    # the oracle's end members: EMT relaxations of the ideal crystals
    emt = {}
    for el in ("Cu", "Au"):
        a = bulk(el, "fcc", a=3.9)
        a.calc = EMT()
        BFGS(FrechetCellFilter(a), logfile=None).run(fmax=0.005, steps=200)
        emt[el] = a.get_potential_energy() / len(a)
    assert (tmp_path / "hull" / "hull.png").stat().st_size > 5000
    # a second run with the same directory resumes after the last round: no label, no training again
    again = HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path / "hull",
                          settings).run(progress=lines.append)
    assert again["n_labels"] == res["n_labels"] and again["model_path"] == res["model_path"]
    journal2 = [json.loads(s) for s in open(tmp_path / "hull" / "journal.jsonl")]
    assert sum(j["event"] == "oracle_call" for j in journal2) == len(calls)
    relaxed = [j for j in journal2 if j["event"] == "oracle_relax" and j["name"] in ("n1-1", "n1-2")]
    assert sorted(round(j["energy"], 4) for j in relaxed[-2:]) == sorted(round(v, 4) for v in emt.values())


def test_hull_cli(tmp_path, emt_cuau_start):
    from mlal.cli import main
    _, data_file, model, _ = emt_cuau_start
    args = ["hull", "--model", str(model), "--data", str(data_file), "--elements", "Cu", "Au", "--a", "3.9",
            "--max-atoms", "1", "--rounds", "1", "--train-time", "2", "--workdir", str(tmp_path / "w")]
    assert main(args + ["--json"]) == 0
    res = json.loads((tmp_path / "w" / "hull.json").read_text())
    assert [e["formula"] for e in res["entries"]] == ["Cu", "Au"] and res["oracle_agrees"]
    assert main(args[:-2] + ["--workdir", str(tmp_path / "v"), "--oracle", "[1, 2]"]) == 2
    assert main(args[:-2] + ["--workdir", str(tmp_path / "v"), "--elements", "Cu", "Cu"]) == 2


def test_hull_screening_killed_in_training_keeps_its_labels_and_does_not_label_again(tmp_path, emt_cuau_start,
                                                                                     monkeypatch):
    from mlal.workflows.hull import HullScreening, HullSettings
    data, _, model, cfg = emt_cuau_start
    cands = enumerate_structures("fcc", ["Cu", "Au"], 2, a=3.9)
    settings = HullSettings(training=cfg, labels_per_round=2, max_rounds=1, gamma_break=1.2, max_steps=50,
                            max_checks=0)

    def killed(self):
        raise KeyboardInterrupt("killed while training")
    monkeypatch.setattr(HullScreening, "_retrain", killed)
    with pytest.raises(KeyboardInterrupt):
        HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path, settings).run(progress=print)
    state = json.loads((tmp_path / "state.json").read_text())
    calls = [json.loads(s) for s in open(tmp_path / "journal.jsonl") if '"oracle_call"' in s]
    assert state["stage"] == "train" and state["round"] == 0 and state["n_labels"] == len(calls) >= 1
    monkeypatch.undo()
    res = HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path, settings).run(progress=print)
    again = [json.loads(s) for s in open(tmp_path / "journal.jsonl") if '"oracle_call"' in s]
    assert len(again) == len(calls) and res["n_labels"] == len(calls) and res["rounds"] == 1
    assert "/models/r00/" in res["model_path"]


def test_hull_check_that_disagrees_labels_the_oracle_relaxations_and_starts_again(tmp_path, emt_cuau_start,
                                                                                  monkeypatch):
    from mlal.active.store import read_extxyz
    from mlal.workflows.hull import HullScreening, HullSettings
    data, _, model, cfg = emt_cuau_start
    real, labels_seen = HullScreening._hull, []

    def first_disagrees(self, rel):
        out = real(self, rel)
        labels_seen.append(len(self.labels))
        if len(labels_seen) == 1:
            out["oracle_agrees"] = False
        return out
    monkeypatch.setattr(HullScreening, "_hull", first_disagrees)
    cands = enumerate_structures("fcc", ["Cu", "Au"], 1, a=3.9)            # the two end members
    settings = HullSettings(training=cfg, max_rounds=1, gamma_break=1e9, max_checks=1)
    res = HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path, settings).run(progress=print)
    # (round 0 may label too: the small model's relaxation of pure Au may extrapolate)
    assert len(labels_seen) == 2 and labels_seen[1] - labels_seen[0] == 2 == res["n_labels"] - labels_seen[0]
    journal = [json.loads(line) for line in open(tmp_path / "journal.jsonl")]
    k = next(i for i, j in enumerate(journal) if j["event"] == "check_labels")
    assert journal[k]["n"] == 2 and any(j["event"] == "model" for j in journal[k:])   # retrained on them
    assert res["model_path"] == next(j for j in journal[k:] if j["event"] == "model")["model_path"]
    checked = [a for a in read_extxyz(tmp_path / "labels.extxyz") if a.info["config_type"] == "hull_check"]
    assert len(checked) == 2
    for a in checked:                                                    # EMT's relaxed end members
        ref = a.copy()
        ref.calc = EMT()
        assert a.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-9)
        assert np.abs(a.get_forces()).max() < 0.05
    # started again, a screening whose checks are spent does not check once more (the count is in
    # state.json, saved with the labels), even if the oracle's hull still disagrees
    monkeypatch.setattr(HullScreening, "_hull", lambda self, rel: dict(real(self, rel), oracle_agrees=False))
    again = HullScreening(cands, ["Cu", "Au"], model, data, {"type": "emt"}, tmp_path, settings).run(progress=print)
    assert again["n_labels"] == res["n_labels"] and len(read_extxyz(tmp_path / "labels.extxyz")) == res["n_labels"]
    assert json.loads((tmp_path / "state.json").read_text())["checks"] == 1
