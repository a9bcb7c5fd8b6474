"""The mlearn benchmark's bookkeeping: structure groups and the stratified split."""
import sys
from pathlib import Path

import numpy as np
from ase.build import bulk, fcc100, fcc111

from mlal.data.io import Labelled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from mlearn import stratified_folds, structure_group  # noqa: E402


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
