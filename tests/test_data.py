"""Reading training data: formats, missing labels, and errors that name file and frame."""
from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlal.data.io import DataError, read_structures

MLEARN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlearn"


def _frames(n=3):
    out = []
    for k in range(n):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=k)
        a.calc = EMT()
        a.get_potential_energy()
        a.get_stress()
        out.append(a)
    return out


def test_extxyz_and_db_roundtrip(tmp_path):
    frames = _frames()
    ase.io.write(tmp_path / "d.extxyz", frames)
    ase.io.write(tmp_path / "d.db", frames)
    for name in ("d.extxyz", "d.db"):
        items = read_structures(tmp_path / name)
        assert len(items) == 3
        np.testing.assert_allclose(items[1].forces, frames[1].get_forces(), atol=1e-10)
        np.testing.assert_allclose(items[2].stress, frames[2].get_stress(), atol=1e-10)
        assert items[0].energy == pytest.approx(frames[0].get_potential_energy())


def test_missing_labels_are_none(tmp_path):
    a = bulk("Cu", "fcc", a=3.6, cubic=True)
    a.calc = SinglePointCalculator(a, energy=-1.0, forces=np.zeros((4, 3)))
    ase.io.write(tmp_path / "nostress.extxyz", [a])
    item = read_structures(tmp_path / "nostress.extxyz")[0]
    assert item.stress is None and item.energy == -1.0


@pytest.mark.parametrize("problem,match", [
    ("nan_energy", r"bad\.extxyz:1: energy is nan"),
    ("nan_force", r"bad\.extxyz:1: forces contain NaN"),
    ("overlap", r"bad\.extxyz:1: atoms 0 and 1 are 0\.100 Å apart"),
])
def test_bad_frames_name_file_and_frame(tmp_path, problem, match):
    frames = _frames(2)
    a = frames[1]
    e, f = a.get_potential_energy(), a.get_forces().copy()
    if problem == "nan_energy":
        e = float("nan")
    elif problem == "nan_force":
        f[2, 1] = np.nan
    else:
        a.positions[1] = a.positions[0] + [0.1, 0, 0]
    a.calc = SinglePointCalculator(a, energy=e, forces=f)
    ase.io.write(tmp_path / "bad.extxyz", frames)
    with pytest.raises(DataError, match=match):
        read_structures(tmp_path / "bad.extxyz")


def test_inconsistent_lengths_and_malformed_file(tmp_path):
    bad = tmp_path / "short.extxyz"
    bad.write_text("2\nProperties=species:S:1:pos:R:3 pbc=\"F F F\"\nCu 0 0 0\n")
    with pytest.raises(DataError, match="short.extxyz"):
        read_structures(bad)
    with pytest.raises(DataError, match="no such file"):
        read_structures(tmp_path / "missing.xyz")


@pytest.mark.skipif(not MLEARN.exists(), reason="mlearn data not present")
def test_reads_mlearn_cu_without_stress():
    items = read_structures(MLEARN / "Cu" / "train.xyz", index=":5")
    assert all(i.stress is None and i.forces is not None for i in items)
    mo = read_structures(MLEARN / "Mo" / "train.xyz", index=":40")
    assert all(i.stress is not None and i.stress.shape == (6,) for i in mo)
    assert {i.config_type for i in mo} <= {"AIMD-NVT", "Elastic", "Surface", "Vacancy"}
    assert "" not in {i.config_type for i in mo}
