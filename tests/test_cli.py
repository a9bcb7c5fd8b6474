"""`mlal train`, `mlal deploy` and `mlal eval` end to end on a tiny EMT data file."""
from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlal.cli import main
from mlal.deploy import load_model

torch.set_num_threads(1)

TINY_YAML = """\
cutoff: 4.0
n_basis: 5
channels: [4, 2, 2, 1]
latent: 8
hidden: 8
batch_size: 4
max_time: null
dtype: float64
"""


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    frames = []
    for k in range(10):
        a = bulk("Cu", "fcc", a=3.6 * (1 + 0.02 * rng.standard_normal()), cubic=True) * (2, 1, 1)
        a.positions += 0.1 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress()
        a.calc = SinglePointCalculator(a, energy=e, forces=f, stress=s)
        frames.append(a)
    path = tmp_path_factory.mktemp("data") / "cu.xyz"
    ase.io.write(str(path), frames, format="extxyz")
    return path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "train.yaml"
    path.write_text(TINY_YAML)
    return path


def test_train_deploy_eval_end_to_end(tmp_path, data_file, config_file, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", str(data_file), "--out", str(out), "--config", str(config_file),
               "--ensemble", "2", "--epochs", "3", "--seed", "1", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(printed[-1])
    assert summary["epochs"] == 3
    assert (out / "model.pt").is_file() and (out / "checkpoint.pt").is_file() and (out / "log.csv").is_file()
    m = load_model(out / "model.pt")
    assert m.n_members == 2 and m.dtype_name == "float64"
    meta = json.loads(m.metadata_json)
    assert meta["provenance"]["config"]["seed"] == 1
    assert list(meta["provenance"]["data"]["files"].values())[0]["sha256"]

    rc = main(["deploy", str(out / "checkpoint.pt"), "-o", str(tmp_path / "m32.pt"), "--dtype", "float32"])
    assert rc == 0
    assert load_model(tmp_path / "m32.pt").dtype_name == "float32"
    capsys.readouterr()

    plot = tmp_path / "parity.png"
    rc = main(["eval", str(tmp_path / "m32.pt"), str(data_file), "--json", "--plot", str(plot)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    res = json.loads(lines[-1])
    for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse", "stress_mae", "stress_rmse",
                "n_structures", "n_atoms"):
        assert key in res, key
    assert res["n_structures"] == 10 and res["n_atoms"] == 80
    assert 0 < res["force_mae"] <= res["force_rmse"]
    assert res["stress_mae"] is not None
    assert any("MAE" in line and "meV/atom" in line for line in lines)
    assert plot.stat().st_size > 1000

    # float64 model evaluates like float32 one, up to rounding
    rc = main(["eval", str(out / "model.pt"), str(data_file), "--json"])
    res64 = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res64["force_mae"] == pytest.approx(res["force_mae"], rel=1e-3)


def test_eval_without_stress_labels(tmp_path, data_file, config_file, capsys):
    frames = ase.io.read(str(data_file), ":")
    for a in frames:
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces())
    nostress = tmp_path / "nostress.xyz"
    ase.io.write(str(nostress), frames, format="extxyz")
    out = tmp_path / "run"
    assert main(["train", "--data", str(nostress), "--out", str(out), "--config", str(config_file),
                 "--ensemble", "1", "--epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "model.pt"), str(nostress), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    res = json.loads(lines[-1])
    assert res["stress_mae"] is None and res["stress_rmse"] is None and res["energy_mae"] is not None
    assert any("stress: not labelled" in line for line in lines)


def test_bad_config_key_is_named(tmp_path, data_file, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nforce_wieght: 3\n")
    rc = main(["train", "--data", str(data_file), "--out", str(tmp_path / "x"), "--config", str(bad)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "force_wieght" in err and "force_weight" in err


def test_deploy_missing_checkpoint(tmp_path, capsys):
    assert main(["deploy", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_eval_uncertainty_sigma_is_the_calculators(tmp_path, data_file, config_file, capsys):
    """`mlal eval --uncertainty`: σ is the ASE calculator's per-atom σ; its rank correlation with the error."""
    from ase_calculators import MlalCalculator
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_file), "--out", str(out), "--config", str(config_file),
                 "--ensemble", "3", "--epochs", "2", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "model.pt"), str(data_file), "--uncertainty", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    res = json.loads(lines[-1])
    assert any(line.startswith("sigma :") for line in lines)
    sigma, err = [], []
    for a in ase.io.read(str(data_file), ":"):
        ref = a.get_forces()
        a.calc = MlalCalculator(str(out / "model.pt"))
        a.get_potential_energy()
        sigma.append(a.calc.results["sigma"])
        err.append(np.linalg.norm(a.calc.results["forces"] - ref, axis=1))
    sigma, err = np.concatenate(sigma), np.concatenate(err)
    assert sigma.min() > 0
    assert res["sigma_mean"] == pytest.approx(sigma.mean(), rel=1e-6)
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert res["sigma_error_spearman"] == pytest.approx(np.corrcoef(rank(sigma), rank(err))[0, 1], abs=1e-6)


def test_swapped_shear_stress_labels_are_flagged():
    """Sheared EMT Cu cells: labels with yz and xz exchanged (as a VASP 'XY YZ ZX' stress read as
    'xy xz yz' gives) are flagged against a physically right stress; the right labels are not."""
    from mlal.evaluate import format_metrics, metrics_from_predictions
    from mlal.train.loss import GPA
    rng = np.random.default_rng(3)
    stress = []
    for k in range(6):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        cell = a.cell[:].copy()
        i, j = [(1, 2), (0, 2), (1, 0)][k % 3]
        cell[i, j] = 0.05 * 3.6 * (1 + rng.random())
        a.set_cell(cell, scale_atoms=True)
        a.positions += 0.02 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        stress.append(a.get_stress() * GPA)
    stress = np.array(stress)
    p = {"energy": np.zeros(6), "energy_ref": np.zeros(6), "forces": np.zeros((24, 3)),
         "forces_ref": np.zeros((24, 3)), "stress": stress, "n_atoms": np.full(6, 4)}
    right = metrics_from_predictions(dict(p, stress_ref=stress + 0.01))["stress_shear_order"]
    assert not right["suspect"] and right["best_order"] == "yz xz xy"
    m = metrics_from_predictions(dict(p, stress_ref=stress[:, [0, 1, 2, 4, 3, 5]]))
    assert m["stress_shear_order"]["suspect"] and m["stress_shear_order"]["best_order"] == "xz yz xy"
    assert m["stress_shear_order"]["best_shear_mae"] == pytest.approx(0.0, abs=1e-12)
    assert any(line.startswith("WARNING") and "'xz yz xy'" in line for line in format_metrics(m))
    assert not any(line.startswith("WARNING") for line in format_metrics(metrics_from_predictions(
        dict(p, stress_ref=stress))))


def test_swapped_shear_stress_in_one_config_type_is_flagged_for_that_type():
    """Data from two sources, one with yz/xz exchanged: the swapped type is named even when the
    large, right shears of the other type keep the whole set's best order at ASE's."""
    from mlal.evaluate import format_metrics, metrics_from_predictions
    rng = np.random.default_rng(4)
    stress = rng.normal(0.0, 1.0, (12, 6))
    stress[:6, 3:] *= 10.0                                   # "Elastic": large shears, right slots
    ref = stress + 0.01
    ref[6:] = stress[6:][:, [0, 1, 2, 4, 3, 5]]              # "AIMD-NVT": swapped
    p = {"energy": np.zeros(12), "energy_ref": np.zeros(12), "forces": np.zeros((12, 3)),
         "forces_ref": np.zeros((12, 3)), "stress": stress, "stress_ref": ref, "n_atoms": np.ones(12),
         "config_type": np.array(["Elastic"] * 6 + ["AIMD-NVT"] * 6, dtype=object)}
    check = metrics_from_predictions(p)["stress_shear_order"]
    assert not check["suspect"] and check["suspect_groups"] == ["AIMD-NVT"]
    assert check["groups"]["AIMD-NVT"]["best_order"] == "xz yz xy" and not check["groups"]["Elastic"]["suspect"]
    warning = [line for line in format_metrics(metrics_from_predictions(p)) if line.startswith("WARNING")]
    assert len(warning) == 1 and "AIMD-NVT read as 'xz yz xy'" in warning[0] and "Elastic" not in warning[0]
    p["stress_ref"] = stress + 0.01
    assert metrics_from_predictions(p)["stress_shear_order"]["suspect_groups"] == []
