"""Differentiable per-member predictions on a batch (training and evaluation).

Forces and stress come from autograd of each member's energy with respect to
the edge vectors (``create_graph=True`` when training), then the same host
assembly as in deployment (:mod:`mlal.deploy.host`).
"""
from __future__ import annotations

from typing import Dict, List, Tuple, Union

import torch

from ..data.graph import Batch
from ..deploy.host import forces_from_edges, stress_from_edges
from ..nn.model import EnsembleModel


def structure_energies(model: EnsembleModel, batch: Batch, h: torch.Tensor,
                       members: Union[bool, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Every member's energy per structure ``[K, G]`` (eV), and the ones to differentiate (see :func:`predict`)."""
    atom_e = model.member_energies(batch.species, h)                       # [K, N]
    energy = torch.zeros(atom_e.shape[0], batch.n_graphs, dtype=atom_e.dtype).index_add_(
        1, batch.graph_of_atom, atom_e)
    if members is True:
        return energy, energy
    if members is False:
        return energy, energy.mean(0, keepdim=True)
    return energy, torch.stack([energy.mean(0), energy[int(members)]])


def predict(model: EnsembleModel, batch: Batch, create_graph: bool = False,
            stress: bool = True, members: Union[bool, int] = True) -> Dict[str, torch.Tensor]:
    """Per-member ``energy`` ``[K, G]`` (eV), ``forces`` ``[K, N, 3]`` (eV/Å), ``stress`` ``[K, G, 6]`` (eV/Å³).

    Every backward pass goes through the shared descriptor, so ``members``
    chooses which energies are differentiated: ``True`` all K members (K
    passes); ``False`` the ensemble mean only (one pass; leading axis of
    size 1); a member index ``j`` the mean and member ``j`` (two passes;
    leading axis ``[mean, j]``). ``member_energy`` ``[K, G]`` is always there.
    """
    edge_vec = batch.edge_vec.detach().requires_grad_(True)
    n = int(batch.species.shape[0])
    h = model.latent(batch.species, batch.edge_index, edge_vec, n)
    energy, chosen = structure_energies(model, batch, h, members)
    targets = [chosen[k].sum() for k in range(chosen.shape[0])]
    grads: List[torch.Tensor] = []
    for k, t in enumerate(targets):
        g = torch.autograd.grad(t, edge_vec, create_graph=create_graph,
                                retain_graph=create_graph or k < len(targets) - 1)[0]
        grads.append(g)
    edge_grad = torch.stack(grads)                                          # [K', E, 3]
    out = {"energy": chosen, "member_energy": energy,
           "forces": forces_from_edges(edge_grad, batch.edge_index, n), "latent": h}
    if stress:
        out["stress"] = stress_from_edges(edge_grad, edge_vec, batch.graph_of_edge, batch.volume)
    return out
