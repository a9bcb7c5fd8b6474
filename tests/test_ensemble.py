"""Ensemble bookkeeping, TorchScript export and the extrapolation grade γ."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from ase_calculators import MlalCalculator
from mlal.data.graph import collate, to_graph
from mlal.data.io import Labelled
from mlal.deploy import export_model, load_model
from mlal.nn.members import select_members
from mlal.nn.model import EnsembleModel
from mlal.testing import example_structures
from mlal.train.prepare import fit_feature_normalization, rebuild_active_set


@pytest.fixture(scope="module")
def eager(tmp_path_factory):
    """An eager 4-member model for Cu/Ni with normalisation and active set fitted."""
    species = ["Cu", "Ni"]
    model = EnsembleModel(species, n_members=4, seed=7).double()
    structs = example_structures(species, 8, seed=1)
    graphs = [to_graph(Labelled(a, None, None, None, "t"), {"Cu": 0, "Ni": 1}, model.cutoff) for a in structs]
    fit_feature_normalization(model, graphs)
    with torch.no_grad():
        model.head_b2.normal_(0.0, 0.2)
    rebuild_active_set(model, graphs)
    path = export_model(model, tmp_path_factory.mktemp("m") / "model.pt")
    return model, path, structs


def _inputs(atoms, model):
    g = to_graph(Labelled(atoms, None, None, None, "x"), {s: k for k, s in enumerate(model.species)}, model.cutoff)
    b = collate([g])
    return b.species, b.edge_index, b.edge_vec, len(atoms)


def test_torchscript_equals_eager(eager):
    model, path, structs = eager
    scripted = load_model(path)
    atoms = example_structures(["Cu", "Ni"], 1, seed=99)[0]
    args = _inputs(atoms, model)
    a = model(*args, True)
    b = scripted(*args, True)
    assert set(a) == set(b) == {"atom_energy", "edge_grad", "member_atom_energy", "member_edge_grad", "gamma"}
    for k in a:
        scale = float(a[k].abs().max()) or 1.0
        assert float((a[k] - b[k]).abs().max()) <= 1e-10 * scale, k


def test_residual_latent_layers_export_reload_and_old_files(eager, tmp_path):
    """A model with two shared layers scripts and reloads exactly; a state without them still loads."""
    from mlal.train.checkpoint import model_from_init, model_from_state
    model, _, structs = eager
    deep = EnsembleModel(["Cu", "Ni"], n_members=4, seed=7, latent_layers=3).double()
    graphs = [to_graph(Labelled(a, None, None, None, "t"), {"Cu": 0, "Ni": 1}, deep.cutoff) for a in structs]
    fit_feature_normalization(deep, graphs)
    rebuild_active_set(deep, graphs)
    assert tuple(deep.deep_weight.shape) == (2, deep.latent_dim, deep.latent_dim)
    path = export_model(deep, tmp_path / "deep.pt")
    args = _inputs(example_structures(["Cu", "Ni"], 1, seed=99)[0], deep)
    a = deep(*args, True)
    for other in (load_model(path), model_from_init(path)):
        b = other(*args, True)
        for k in a:
            assert float((a[k] - b[k]).abs().max()) <= 1e-10 * (float(a[k].abs().max()) or 1.0), k
    shallow = model(*args, True)
    assert float((a["atom_energy"] - shallow["atom_energy"]).abs().max()) > 1e-6, "the residual layers change nothing"
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("deep_")}   # a file from before them
    hp = {k: v for k, v in model.hyperparameters.items() if k != "latent_layers"}
    again = model_from_state(hp, old)(*args, True)
    assert float((again["atom_energy"] - shallow["atom_energy"]).abs().max()) <= 1e-12
    with pytest.raises(ValueError, match="latent_layers"):
        EnsembleModel(["Cu"], latent_layers=0)


def test_mean_and_sigma_match_separate_members(eager, tmp_path):
    model, path, _ = eager
    atoms = example_structures(["Cu", "Ni"], 1, seed=42)[0]
    atoms.calc = MlalCalculator(path)
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    res = atoms.calc.results
    energies, forces = [], []
    for k in range(model.n_members):
        single = export_model(select_members(model, [k]), tmp_path / f"member{k}.pt")
        b = atoms.copy()
        b.calc = MlalCalculator(single)
        energies.append(b.get_potential_energy())
        forces.append(b.get_forces())
        assert b.calc.results["sigma"].max() == 0.0
    energies, forces = np.array(energies), np.array(forces)
    assert e == pytest.approx(energies.mean(), rel=1e-12)
    np.testing.assert_allclose(f, forces.mean(0), atol=1e-10)
    assert res["energy_sigma"] == pytest.approx(energies.std(), rel=1e-9)
    sigma = np.sqrt(((forces - forces.mean(0)) ** 2).sum(2).mean(0))
    np.testing.assert_allclose(res["sigma"], sigma, rtol=1e-8, atol=1e-12)
    assert sigma.max() > 1e-3, "degenerate test: members agree"


def test_gamma_at_most_one_on_active_set_atoms(eager):
    _, path, structs = eager
    calc = MlalCalculator(path)
    gmax = 0.0
    for atoms in structs:
        atoms.calc = calc
        atoms.get_potential_energy()
        gmax = max(gmax, calc.results["gamma_max"])
    assert gmax <= 1.0 + 1e-6
    assert gmax > 0.5, "degenerate test"


@pytest.mark.parametrize("kind", ["compressed", "amorphous"])
def test_gamma_large_for_foreign_environment(eager, kind):
    _, path, _ = eager
    if kind == "compressed":
        atoms = bulk("Cu", "fcc", a=3.61 * 0.8, cubic=True) * (2, 2, 2)
    else:
        rng = np.random.default_rng(3)
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
        box, placed = 7.22, []
        while len(placed) < len(atoms):     # random sequential addition, no pair closer than 1.9 Å
            p = rng.uniform(0, box, 3)
            d = np.array(placed).reshape(-1, 3) - p
            d -= box * np.round(d / box)
            if not len(placed) or np.sqrt((d ** 2).sum(1)).min() > 1.9:
                placed.append(p)
        atoms.positions = np.array(placed)
        assert (atoms.get_all_distances(mic=True) + 9 * np.eye(len(atoms))).min() > 1.9
    atoms.calc = MlalCalculator(path)
    atoms.get_potential_energy()
    assert atoms.calc.results["gamma_max"] > 5.0, atoms.calc.results["gamma_max"]


def test_export_float32_is_close(eager, tmp_path):
    model, path, structs = eager
    p32 = export_model(model, tmp_path / "m32.pt", dtype="float32")
    a64, a32 = structs[0].copy(), structs[0].copy()
    a64.calc, a32.calc = MlalCalculator(path), MlalCalculator(p32)
    assert a32.get_potential_energy() == pytest.approx(a64.get_potential_energy(), rel=1e-5)
    np.testing.assert_allclose(a32.get_forces(), a64.get_forces(), atol=1e-4)


def test_rank4_contraction_is_the_fourth_power_of_bond_cosines(tmp_path):
    """With one radial channel per rank, the last invariant is M4 :: M4 = Σ_jk R_j R_k (û_j·û_k)⁴
    (checks the rank-4 components and their multiplicities), and the export equals the eager model."""
    from mlal.nn.radial import chebyshev_basis
    model = EnsembleModel(["Cu"], cutoff=5.0, n_members=2, channels=(1, 1, 1, 1, 1), seed=3).double()
    rng = np.random.default_rng(0)
    vec = rng.uniform(-2.5, 2.5, size=(7, 3))
    vec = vec[np.linalg.norm(vec, axis=1) < 4.5]
    ev = torch.tensor(vec, dtype=torch.float64)
    ei = torch.stack([torch.zeros(len(vec), dtype=torch.long), torch.arange(1, len(vec) + 1)])
    species = torch.zeros(len(vec) + 1, dtype=torch.long)
    with torch.no_grad():
        feats = model.invariants(model.moments(species, ei, ev, 1))
        d = ev.norm(dim=1)
        radial = chebyshev_basis(d, model.cutoff, model.n_basis, model.r_min) @ model.radial_weight[0, :, -1]
    u = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    expected = float(np.einsum("j,k,jk->", radial.numpy(), radial.numpy(), (u @ u.T) ** 4))
    assert feats.shape[1] == model.n_features and abs(float(feats[0, -1]) - expected) <= 1e-12 * abs(expected)
    structs = example_structures(["Cu"], 3, seed=2)
    graphs = [to_graph(Labelled(a, None, None, None, "t"), {"Cu": 0}, model.cutoff) for a in structs]
    fit_feature_normalization(model, graphs)
    rebuild_active_set(model, graphs)
    scripted = load_model(export_model(model, tmp_path / "rank4.pt"))
    args = _inputs(structs[0], model)
    a, b = model(*args, True), scripted(*args, True)
    for k in a:
        assert float((a[k] - b[k]).abs().max()) <= 1e-10 * (float(a[k].abs().max()) or 1.0), k
