"""Differentiable per-member predictions on a batch (training and evaluation).

Forces and stress come from autograd of each member's energy with respect to
the edge vectors (``create_graph=True`` when training), then the same host
assembly as in deployment (:mod:`mlal.deploy.host`).
"""
from __future__ import annotations

from typing import Dict, List, Union

import torch

from ..data.graph import Batch
from ..deploy.host import forces_from_edges
from ..nn.model import EnsembleModel


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
    atom_e = model.member_energies(batch.species, h)                       # [K, N]
    G = batch.n_graphs
    energy = torch.zeros(atom_e.shape[0], G, dtype=atom_e.dtype).index_add_(1, batch.graph_of_atom, atom_e)
    if members is True:
        chosen = energy
    elif members is False:
        chosen = energy.mean(0, keepdim=True)
    else:
        chosen = torch.stack([energy.mean(0), energy[int(members)]])
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
        rg = edge_vec.unsqueeze(0).unsqueeze(3) * edge_grad.unsqueeze(2)   # [K', E, 3, 3]: r ⊗ g
        w = torch.zeros(edge_grad.shape[0], G, 3, 3, dtype=rg.dtype).index_add_(1, batch.graph_of_edge, rg)
        w = 0.5 * (w + w.transpose(2, 3))
        vol = torch.where(batch.volume > 0, batch.volume, torch.ones_like(batch.volume))
        s = w / vol.view(1, -1, 1, 1)
        out["stress"] = torch.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2],
                                     s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], dim=-1)
    return out
