"""Training's cached geometry gives the autograd path's predictions, loss and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import fcc111

from mlal.data.graph import collate, to_graph
from mlal.data.io import Labelled
from mlal.data.neighbors import edge_vectors
from mlal.nn.model import EnsembleModel
from mlal.testing import example_structures
from mlal.train import TrainConfig
from mlal.train import geometry as geometry_module
from mlal.train.geometry import cached_geometry, edge_geometry, predict_cached
from mlal.train.loss import batch_loss
from mlal.train.parallel import GradientStep
from mlal.train.predict import predict
from mlal.train.prepare import fit_feature_normalization

torch.set_num_threads(1)
SPECIES = ["Cu", "Ni", "Au"]


def _graphs(cutoff=4.5):
    """Bulk cells of three elements, a slab (periodic in 2D) and a free cluster, with fake labels."""
    rng = np.random.default_rng(0)
    atoms = example_structures(SPECIES, n=3, seed=1)
    slab = fcc111("Cu", (2, 2, 3), vacuum=4.0)
    slab.symbols[[1, 5]] = "Ni"
    slab.positions += 0.05 * rng.standard_normal(slab.positions.shape)
    cluster = slab.copy()
    cluster.pbc = False
    atoms += [slab, cluster]
    out = []
    for k, a in enumerate(atoms):
        stress = 0.01 * rng.standard_normal(6) if a.pbc.all() else None
        item = Labelled(a, float(-3.5 * len(a) + rng.standard_normal()), 0.3 * rng.standard_normal((len(a), 3)),
                        stress, f"fake:{k}")
        out.append(to_graph(item, {s: i for i, s in enumerate(SPECIES)}, cutoff))
    return out


@pytest.fixture(scope="module", params=[((6, 3, 3, 2), 0.0), ((6, 3, 3, 2, 2), 0.0), ((6, 3, 3, 2), 2.5)],
                ids=["rank3", "rank4", "r_min"])
def model_and_graphs(request):
    """``r_min`` 2.5 Å: some pairs lie under it, where the radial argument saturates."""
    channels, r_min = request.param
    graphs = _graphs()
    if r_min:
        shortest = min(float(np.linalg.norm(edge_vectors(g.positions, g.cell, g.edge_index, g.shifts), axis=1).min())
                       for g in graphs)
        assert shortest < r_min - 0.05, "degenerate test: no pair under r_min"
    model = EnsembleModel(SPECIES, cutoff=4.5, n_members=3, n_basis=6, channels=channels, latent=12,
                          hidden=10, seed=3, r_min=r_min).double()
    fit_feature_normalization(model, graphs)
    with torch.no_grad():
        model.energy_scale.fill_(0.7)
        model.radial_weight.add_(0.3 * torch.randn(model.radial_weight.shape, dtype=torch.float64))
    return model, graphs


@pytest.mark.parametrize("members", [True, False, 1])
def test_cached_prediction_equals_autograd(model_and_graphs, members):
    model, graphs = model_and_graphs
    batch = collate(graphs)
    geo = [edge_geometry(model, g, torch.float64) for g in graphs]
    ref = predict(model, batch, create_graph=True, stress=True, members=members)
    got = predict_cached(model, batch, geo, stress=True, members=members)
    for key in ("energy", "member_energy", "forces", "stress"):
        scale = float(ref[key].detach().abs().max())
        assert scale > 0
        assert torch.allclose(got[key], ref[key], rtol=0, atol=1e-12 * scale), key


@pytest.mark.parametrize("member", [None, 2])
def test_cached_loss_gradient_equals_autograd(model_and_graphs, member):
    """The training step differentiates the forces once more: those parameter gradients agree too."""
    model, graphs = model_and_graphs
    cfg = TrainConfig(energy_weight=10.0, stress_weight=0.5)
    params = list(model.parameters())
    batch = collate(graphs)
    geo = [edge_geometry(model, g, torch.float64) for g in graphs]
    loss_ref, _ = batch_loss(model, batch, cfg, None, member)
    loss_got, _ = batch_loss(model, batch, cfg, None, member, geometry=geo)
    assert float(loss_got) == pytest.approx(float(loss_ref), rel=1e-12)
    g_ref = torch.autograd.grad(loss_ref, params, allow_unused=True)
    g_got = torch.autograd.grad(loss_got, params, allow_unused=True)
    for name, a, b in zip([n for n, _ in model.named_parameters()], g_got, g_ref):
        assert (a is None) == (b is None), name
        if b is not None:
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max())), name


def test_gradient_step_falls_back_to_autograd_above_the_memory_limit(model_and_graphs, monkeypatch):
    model, graphs = model_and_graphs
    cfg = TrainConfig(processes=1, batch_size=len(graphs))
    assert geometry_module.cache_bytes(model, graphs, torch.float64) == sum(
        g.nbytes() for g in cached_geometry(model, graphs, torch.float64))
    cached = GradientStep(model, graphs, cfg, torch.float64)
    assert cached.geometry is not None
    loss = cached(list(range(len(graphs))), None, 1)
    grads = [p.grad.clone() for p in model.parameters()]
    monkeypatch.setattr(geometry_module, "CACHE_LIMIT_BYTES", 0)
    plain = GradientStep(model, graphs, cfg, torch.float64)
    assert plain.geometry is None
    assert plain(list(range(len(graphs))), None, 1) == pytest.approx(loss, rel=1e-12)
    for p, g in zip(model.parameters(), grads):
        assert torch.allclose(p.grad, g, rtol=1e-9, atol=1e-14)


def test_unsorted_edges_are_refused(model_and_graphs):
    model, graphs = model_and_graphs
    g = graphs[0]
    order = np.random.default_rng(0).permutation(g.edge_index.shape[1])
    shuffled = type(g)(**{**g.__dict__, "edge_index": g.edge_index[:, order], "shifts": g.shifts[order]})
    with pytest.raises(ValueError, match="sorted"):
        edge_geometry(model, shuffled)
