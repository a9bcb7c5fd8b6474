"""The mlearn benchmark's bookkeeping: structure groups and the stratified split."""
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, fcc100, fcc111

from mlal.data.io import Labelled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mlearn import DATA, stratified_folds, structure_group  # noqa: E402


def _item(atoms, config_type=""):
    return Labelled(atoms, -1.0 * len(atoms), np.zeros((len(atoms), 3)), None, "t", config_type=config_type)


def test_structure_group_finds_slabs_only_where_the_file_names_no_type():
    slab = fcc100("Ni", (1, 1, 6), vacuum=6.0, periodic=True)        # the mlearn Ni (100) slab's shape
    hexagonal = fcc111("Cu", (2, 2, 4), vacuum=3.0, periodic=True)    # 6 Å of vacuum along c
    assert structure_group(_item(slab)) == "Surface"
    assert structure_group(_item(hexagonal)) == "Surface"
    assert structure_group(_item(bulk("Ni", "fcc", 3.52, cubic=True).repeat(3))) == "Bulk"
    thin_gap = fcc100("Ni", (1, 1, 6), vacuum=1.5, periodic=True)     # 3 Å between images: bulk-like
    assert structure_group(_item(thin_gap)) == "Bulk"
    assert structure_group(_item(slab, "Elastic")) == "Elastic"


def test_stratified_folds_spread_every_group_over_the_folds():
    items = [_item(bulk("Cu", "fcc", 3.6), t) for t in ["a"] * 10 + ["b"] * 5]
    fold = stratified_folds(items, 5, seed=0)
    for t in ("a", "b"):
        counts = np.bincount(fold[[k for k, it in enumerate(items) if it.config_type == t]], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_group_errors_keep_the_sign_of_each_structure_error():
    from mlearn import group_errors
    cells = [bulk("Mo", "bcc", 3.16, cubic=True), bulk("Mo", "bcc", 3.16, cubic=True).repeat(2)]
    items = [_item(cells[0], "Elastic"), _item(cells[1], "AIMD-NVT")]
    f_ref = np.zeros((18, 3))
    f_pred = f_ref.copy()
    f_pred[2:] = 0.3                                                   # the 16-atom cell's forces off by 0.3
    p = {"energy": np.array([-10.001, -10.020]), "energy_ref": np.array([-10.0, -10.0]),
         "forces": f_pred, "forces_ref": f_ref, "n_atoms": np.array([2, 16])}
    out = group_errors(p, items)
    assert out["worst"]["group"] == "AIMD-NVT"
    assert out["worst"]["energy_error"] == pytest.approx(20.0)                 # |error|, meV/atom
    assert out["worst"]["predicted_minus_reference"] == pytest.approx(-20.0)   # too low
    assert out["worst"]["test_mae_without"] == pytest.approx(1.0)
    assert [s["energy_error"] for s in out["structures"]] == pytest.approx([-1.0, -20.0])
    assert [s["force_mae"] for s in out["structures"]] == pytest.approx([0.0, 0.3])
    assert out["groups"]["AIMD-NVT"] == {"n": 1, "energy_mae": pytest.approx(20.0), "force_mae": pytest.approx(0.3)}


def test_energy_bins_split_by_energy_above_the_lowest():
    from mlearn import energy_bins
    p = {"energy": np.array([-10.001, -9.30, -8.95, -8.99]), "energy_ref": np.array([-10.0, -9.3, -9.0, -9.0]),
         "forces": np.r_[np.zeros((2, 3)), np.full((3, 3), 0.1), np.full((4, 3), 0.5), np.ones((1, 3))],
         "forces_ref": np.zeros((10, 3)), "n_atoms": np.array([2, 3, 4, 1])}
    out = energy_bins(p, lowest=-10.0)
    assert set(out) == {"< 0.4", "0.4-1.0", ">= 1.0"}
    assert out["< 0.4"] == {"n": 1, "energy_mae": pytest.approx(1.0), "force_mae": pytest.approx(0.0)}
    assert out["0.4-1.0"] == {"n": 1, "energy_mae": pytest.approx(0.0), "force_mae": pytest.approx(0.1)}
    # the two structures exactly 1.0 eV/atom up: per-atom force MAE over their 5 atoms
    assert out[">= 1.0"] == {"n": 2, "energy_mae": pytest.approx(30.0), "force_mae": pytest.approx((4 * 0.5 + 1) / 5)}
    assert set(energy_bins({k: v[:1] if k != "forces" and k != "forces_ref" else v[:2] for k, v in p.items()},
                           lowest=-10.0)) == {"< 0.4"}


def test_model_average_cancels_opposite_errors_and_scores_the_hot_structures_apart():
    from model_average import averaged, errors
    ref = {"energy_ref": np.array([-10.0, -9.0]), "forces_ref": np.zeros((3, 3)), "n_atoms": np.array([1, 2])}
    up = dict(ref, energy=np.array([-9.999, -8.990]), forces=np.full((3, 3), 0.2), stress=None)
    down = dict(ref, energy=np.array([-10.001, -9.010]), forces=np.full((3, 3), -0.2), stress=None)
    hot = np.array([False, True])
    alone = errors(up, hot)
    assert alone["energy_mae"] == pytest.approx(5.5) and alone["force_mae"] == pytest.approx(0.2)
    assert alone["hot_energy_mae"] == pytest.approx(10.0) and alone["hot_force_mae"] == pytest.approx(0.2)
    both = errors(averaged([up, down, up], [0, 1]), hot)
    assert both["energy_mae"] == pytest.approx(0.0, abs=1e-9) and both["force_mae"] == pytest.approx(0.0)
    assert "hot_force_mae" not in errors(up, np.array([False, False]))


def test_surface_fit_counts_the_broken_bonds_of_each_facet():
    from surface_fit import NN_SHELL, coordination, nearest
    r = NN_SHELL * float(np.median(nearest(bulk("Ni", "fcc", 3.52, cubic=True))))
    assert sorted(set(coordination(fcc100("Ni", (1, 1, 6), vacuum=6.0, periodic=True), r))) == [8, 12]
    assert sorted(set(coordination(fcc111("Ni", (2, 2, 6), vacuum=6.0, periodic=True), r))) == [9, 12]
    assert set(coordination(bulk("Ni", "fcc", 3.52, cubic=True).repeat(2), r)) == {12}


def test_stress_correction_swaps_yz_and_xz_only_in_the_listed_groups():
    from mlearn import correct_stress
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    items = [Labelled(bulk("Si", "diamond", 5.43), -10.0, np.zeros((2, 3)), s, "t", config_type=t)
             for t in ("AIMD-NVT", "Elastic")]
    fixed = correct_stress("Si", items)
    assert fixed[0].stress.tolist() == [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]
    assert fixed[1].stress.tolist() == s.tolist()
    assert [it.stress.tolist() for it in correct_stress("Si", items, "as-is")] == [s.tolist()] * 2
    assert [it.stress for it in correct_stress("Si", items, "none")] == [None, None]
    assert correct_stress("Mo", items[1:])[0].stress.tolist() == [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]   # Mo: every group
    assert items[0].stress.tolist() == s.tolist()                      # the input is left alone


def test_sheared_slot_follows_the_tilted_cell_vector():
    from stress_orientation import sheared_slot
    cell = np.diag([9.5, 9.5, 9.5])
    b_to_z = cell.copy()
    b_to_z[1, 2] = 0.95
    a_to_z = cell.copy()
    a_to_z[0, 2] = 0.95
    b_to_x = cell.copy()
    b_to_x[1, 0] = 0.38
    assert [sheared_slot(c) for c in (b_to_z, a_to_z, b_to_x, cell)] == [3, 4, 5, None]


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/mlearn")
def test_the_stress_correction_table_agrees_with_geometry_and_with_snap():
    """Every group that the geometry of sheared Elastic cells or Zuo's SNAP (its stress is the
    strain derivative of its energy) shows to be swapped is in ``STRESS_YZ_XZ_SWAPPED``, and no
    group they show to be right is; after the correction the labels are closer to SNAP's stress."""
    from mlal.data.io import read_structures
    from mlearn import STRESS_YZ_XZ_SWAPPED, correct_stress
    from stress_orientation import geometry_votes, shear_comparison, snap_shear_stress
    for el in ("Li", "Mo", "Si", "Ge"):
        items = read_structures(DATA / el / "train.xyz")
        table = STRESS_YZ_XZ_SWAPPED.get(el, set())
        listed = {g for g in {it.config_type for it in items} if "*" in table or g in table}
        for g, v in geometry_votes(items).items():
            assert v["other"] == 0
            assert (g in listed) == (v["swapped"] > 0) and min(v["as_is"], v["swapped"]) == 0, (el, g, v)
        ref = snap_shear_stress(el, items)
        snap = shear_comparison(items, ref)
        for g, a in snap.items():
            if a["verdict"] != "undecided":
                assert (g in listed) == (a["verdict"] == "swapped"), (el, g, a)
        fixed = shear_comparison(correct_stress(el, items), ref)
        for g, a in fixed.items():
            if snap[g]["verdict"] != "undecided":
                assert a["as_is"] < 0.7 * a["swapped"], (el, g, a)


def test_otf_efficiency_ratio_from_a_power_law_learning_curve():
    from otf_efficiency import efficiency_ratio, fitted_ratio, power_law
    rng = np.random.default_rng(1)
    budgets = np.array([8, 16, 32, 64, 128, 256] * 2, dtype=float)
    exact = 0.2 * budgets ** -0.4
    a, b, resid = power_law(list(zip(budgets, exact)))
    assert np.isclose(b, -0.4) and np.isclose(np.exp(a), 0.2) and resid < 1e-12
    # an OTF model with 20 calls at the error uniform sampling reaches at 100 frames: 5x
    best = 0.2 * 100.0 ** -0.4
    r, lo, hi = fitted_ratio(list(zip(budgets, exact)), best, 20)
    assert np.isclose(r, 5.0) and np.isclose(lo, 5.0) and np.isclose(hi, 5.0)
    noisy = exact * np.exp(rng.normal(0, 0.1, len(budgets)))
    r, lo, hi = fitted_ratio(list(zip(budgets, noisy)), best, 20)
    assert lo < r < hi and 3 < r < 8
    # a curve that does not fall never reaches the OTF error
    assert np.isnan(fitted_ratio([(8, 0.1), (16, 0.1), (32, 0.2)], 0.05, 10)[0])
    # the bracketing interpolation: exact on a power law, bounded outside the sweep
    curve = [(float(B), 0.2 * B ** -0.4) for B in (8, 16, 32, 64, 128, 256)]
    assert efficiency_ratio(curve, best, 20) == (pytest.approx(5.0), "~")
    assert efficiency_ratio(curve, 1.0, 20) == (8 / 20, "<=")
    assert efficiency_ratio(curve, 1e-3, 20) == (256 / 20, ">")
    assert efficiency_ratio([], 0.05, 20) == (None, "")   # every uniform own MD failed


def test_otf_efficiency_json_line_is_strict_json():
    import json
    from otf_efficiency import json_safe, power_law
    a, b, resid = power_law([])                           # no uniform point left to fit
    out = json_safe({"fit": {"a": a, "b": np.float64(b)}, "rows": [(8, float("inf"), 0.1)], "n": 3})
    assert out == {"fit": {"a": None, "b": None}, "rows": [[8, None, 0.1]], "n": 3}
    json.loads(json.dumps(out, allow_nan=False))


def test_otf_efficiency_set_reaches_every_campaign_key_and_names_a_wrong_one():
    """``--set`` sets keys the demo file leaves at their defaults (``selection.sigma_select``, a
    TrainConfig setting of ``retraining``) and rejects unknown ones."""
    import yaml
    from otf_efficiency import set_dotted
    from mlal.cli.demo import DEMO_YAML
    cfg = yaml.safe_load(DEMO_YAML)
    for item in ("selection.sigma_select=0.12", "selection.sigma_break=0.3", "retraining.warm_start=false",
                 "final_training.config_type_weights={random: 2}", "selection.gamma_break=3"):
        set_dotted(cfg, item)
    assert cfg["selection"]["sigma_select"] == 0.12 and cfg["retraining"]["warm_start"] is False
    assert cfg["final_training"]["config_type_weights"] == {"random": 2} and cfg["selection"]["gamma_break"] == 3
    for bad in ("selection.sigma_selct=1", "retraining.learning_rate=1", "lammps.sytem=x", "nosection.x=1"):
        with pytest.raises(SystemExit, match=bad.split("=")[0].split(".")[0]):
            set_dotted(cfg, bad)


def _cv_file(path, element, folds, energies, config=None, split=None, stress=None):
    import json
    runs = [{"fold": f, "energy_mae": e, "force_mae": 0.01 * e, "stress_mae": None, "epochs": 100}
            for f, e in zip(folds, energies)]
    result = {"element": element, "config": config or {}, "runs": runs}
    if split is not None:
        result["split"] = split
    if stress is not None:
        result["stress"] = stress
    path.write_text(json.dumps({"benchmark": "mlearn", "results": [result]}))
    return str(path)


def test_mlearn_cv_gathers_folds_from_several_files_and_rejects_what_is_not_the_default_cv(tmp_path):
    from mlearn_cv import gather, summarise
    from mlal.train import TrainConfig
    defaults = TrainConfig().to_dict()
    a = _cv_file(tmp_path / "a.json", "Ni", [0, 1], [0.3, 0.5])
    b = _cv_file(tmp_path / "b.json", "Ni", [3], [0.7], config={"processes": 1, "max_time": defaults["max_time"]},
                 split={"folds": 10, "seed": 0, "holdout": None})
    table = gather([a, b], defaults)
    s = summarise("Ni", table["Ni"], 10)
    assert s["folds"] == [0, 1, 3] and s["missing"] == [2, 4, 5, 6, 7, 8, 9]
    assert s["energy_mae"] == pytest.approx(0.5) and s["force_mae"] == pytest.approx(0.005)
    assert s["meets_energy"] is False and s["meets_force"] is True and s["folds_meeting_energy"] == 1
    assert table["Ni"][3]["source"] == b
    with pytest.raises(SystemExit, match="fold 1 is in both"):
        gather([a, _cv_file(tmp_path / "c.json", "Ni", [1], [0.4])], defaults)
    with pytest.raises(SystemExit, match="max_time=60"):
        gather([_cv_file(tmp_path / "d.json", "Ni", [2], [0.4], config={"max_time": 60.0})], defaults)
    other_split = _cv_file(tmp_path / "e.json", "Ni", [2], [0.4], split={"folds": None, "seed": 0, "holdout": 0.2})
    with pytest.raises(SystemExit, match="split into 5 folds"):
        gather([other_split], defaults)
    with pytest.raises(SystemExit, match="as-is"):
        gather([_cv_file(tmp_path / "f.json", "Ni", [2], [0.4], stress="as-is")], defaults)
    assert gather([f"{a}#0"], defaults)["Ni"][0]["source"] == f"{a}#0"
    with pytest.raises(SystemExit, match="no result #1"):
        gather([f"{a}#1"], defaults)
    # a cross-validation of changed settings: exactly those changes, and a file that predates
    # the setting counts as trained at its default
    changed = _cv_file(tmp_path / "g.json", "Ni", [4], [0.3], config={"r_min": 1.5})
    assert list(gather([changed], defaults, overrides={"r_min": 1.5})["Ni"]) == [4]
    with pytest.raises(SystemExit, match="r_min=1.5"):
        gather([changed], defaults)
    with pytest.raises(SystemExit, match=r"r_min=0.0 \(expected 1.5\)"):
        gather([a], defaults, overrides={"r_min": 1.5})
    # an option tried and dropped since: its runs are not default runs
    dropped = _cv_file(tmp_path / "h.json", "Ni", [5], [0.3], config={"final_from_best": True})
    with pytest.raises(SystemExit, match="final_from_best=True .*unknown to this version"):
        gather([dropped], defaults)
