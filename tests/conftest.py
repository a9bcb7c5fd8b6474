"""Shared fixtures: small, deterministic models written once per test session."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mo_model(tmp_path_factory):
    """Path of a 3-member, float64, single-element (Mo) model."""
    from mlal.testing import random_model
    return random_model(tmp_path_factory.mktemp("models") / "mo.pt", species=["Mo"], n_members=3)


@pytest.fixture(scope="session")
def alloy_model(tmp_path_factory):
    """Path of a 4-member, float64, three-element model (Cu, Ni, Au)."""
    from mlal.testing import random_model
    return random_model(tmp_path_factory.mktemp("models") / "cuniau.pt", species=["Cu", "Ni", "Au"],
                        n_members=4, seed=3)


@pytest.fixture(scope="session")
def alloy_rank4_model(tmp_path_factory):
    """Path of a 3-member, float64, three-element (Cu, Ni, Au) model with rank-4 moments (5 channel counts)
    and a second, residual shared layer."""
    from mlal.testing import random_model
    return random_model(tmp_path_factory.mktemp("models") / "cuniau_rank4.pt", species=["Cu", "Ni", "Au"],
                        n_members=3, seed=4, channels=(6, 4, 4, 3, 3), latent_layers=2)


@pytest.fixture(scope="session")
def alloy_r_min_model(tmp_path_factory):
    """Path of a 3-member, float64, three-element (Cu, Ni, Au) model whose radial functions span
    [2.2 Å, r_c]: the test structures have pairs on both sides of 2.2 Å."""
    from mlal.testing import random_model
    return random_model(tmp_path_factory.mktemp("models") / "cuniau_rmin.pt", species=["Cu", "Ni", "Au"],
                        n_members=3, seed=5, r_min=2.2)


@pytest.fixture(params=["rank3", "rank4", "r_min"])
def physics_model(request):
    """The three-element model with moments of rank 0..3, one with ranks 0..4 and two shared
    layers, and one with radial functions from r_min = 2.2 Å."""
    return request.getfixturevalue({"rank3": "alloy_model", "rank4": "alloy_rank4_model",
                                    "r_min": "alloy_r_min_model"}[request.param])


@pytest.fixture(scope="session")
def emt_cuau_start(tmp_path_factory):
    """For the workflows: six EMT-labelled, rattled 4-atom Cu-Au cells (also as an extxyz file), a
    3-member model trained on them for 30 epochs, and those training settings: ``(data, file, model, settings)``."""
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import write

    from mlal.train import TrainConfig, train
    rng = np.random.default_rng(0)
    data = []
    for _ in range(6):
        a = bulk("Cu", "fcc", a=3.9, cubic=True)
        a.set_chemical_symbols(rng.choice(["Cu", "Au"], size=len(a)).tolist())
        a.positions += 0.05 * rng.standard_normal(a.positions.shape)
        a.calc = EMT()
        a.get_potential_energy(), a.get_forces(), a.get_stress()
        data.append(a)
    d = tmp_path_factory.mktemp("workflow_start")
    write(d / "data.extxyz", data)
    # epoch-limited, not time-limited: the same model on any machine
    settings = dict(n_members=3, cutoff=5.0, max_time=120.0, epochs=30, valid_fraction=0.0)
    init = train(data, TrainConfig(**settings, species=["Cu", "Au"]), d / "init", progress=False)
    return data, d / "data.extxyz", init.model_path, settings
