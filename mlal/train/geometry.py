"""Training's cached geometry: the descriptor's parameter-free part, computed once per structure.

The moments are ``M = mix(W, Q)`` with ``Q_i = Σ_j R(r_ij) ⊗ a(û_ij)``: a fixed
radial basis ``R`` [S*B] times angular products ``a`` [A], summed per centre
(:meth:`~mlal.nn.model.EnsembleModel.basis_moments`). Only ``W`` and what follows
are learned, so for a training run ``Q`` and its derivatives are constants. With
``G = ∂E/∂Q_i`` from autograd over the per-atom network alone, the edge gradient
is exact and linear in ``G``::

    ∂E/∂r_ij = û_ij Σ_b R'_b(r_ij) Σ_a G_i[b, a] a_a(û_ij) + Σ_a (Σ_b G_i[b, a] R_b(r_ij)) ∂a_a/∂r_ij

so a training step (which differentiates the forces once more) never revisits
the per-edge basis: at the edge level it costs a few batched products instead of
the basis's forward, backward and double backward. :func:`predict_cached`
returns what :func:`~mlal.train.predict.predict` returns, to round-off (tested
in float64). Measured on mlearn Ni (4 structures, 428 atoms, 20,900 edges per
step, float32, one core): 120-125 ms per step against 137-150 ms. Memory: about
100 numbers per edge (:func:`cache_bytes`; Ni: 585 MB in float32), built in
about 0.04 s per 100-atom structure; above ``CACHE_LIMIT_BYTES`` training
falls back to autograd through the basis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch.func import jvp

from ..data.graph import Batch, Graph, collate
from ..deploy.host import forces_from_edges, stress_from_edges
from ..nn.model import EnsembleModel, pad_edges, padded_slots
from .predict import structure_energies


@dataclass
class EdgeGeometry:
    """One structure's constants: ``q`` [n, S*B, A]; per edge ``radial``, ``dradial`` [E, B],
    ``angular`` [E, A], ``dangular`` [E, A, 3] (∂a/∂r), ``unit`` [E, 3] (û)."""

    q: torch.Tensor
    radial: torch.Tensor
    dradial: torch.Tensor
    angular: torch.Tensor
    dangular: torch.Tensor
    unit: torch.Tensor

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in
                   (self.q, self.radial, self.dradial, self.angular, self.dangular, self.unit))


CACHE_LIMIT_BYTES = 4 * 2 ** 30      # above this, training falls back to autograd through the basis


def cache_bytes(model: EnsembleModel, graphs: Sequence[Graph], dtype: torch.dtype = torch.float32) -> int:
    """What :func:`cached_geometry` would hold for ``graphs``, in bytes."""
    A, B, SB = model.n_angular, model.n_basis, model.n_species * model.n_basis
    edges = sum(g.edge_index.shape[1] for g in graphs)
    atoms = sum(g.n_atoms for g in graphs)
    return (edges * (2 * B + 4 * A + 3) + atoms * SB * A) * torch.finfo(dtype).bits // 8


def cached_geometry(model: EnsembleModel, graphs: Sequence[Graph],
                    dtype: torch.dtype = torch.float32) -> Optional[List[EdgeGeometry]]:
    """Every structure's :class:`EdgeGeometry`, or None when it would exceed ``CACHE_LIMIT_BYTES``."""
    if cache_bytes(model, graphs, dtype) > CACHE_LIMIT_BYTES:
        return None
    return [edge_geometry(model, g, dtype) for g in graphs]


@torch.no_grad()
def edge_geometry(model: EnsembleModel, graph: Graph, dtype: torch.dtype = torch.float32) -> EdgeGeometry:
    """The cached constants of ``graph`` for ``model``'s cutoff and basis (computed in float64)."""
    centre = graph.edge_index[0]
    if len(centre) > 1 and bool((centre[1:] < centre[:-1]).any()):
        raise ValueError("edge_geometry: edges must be sorted by centre atom, as neighbor_list gives them")
    b = collate([graph], dtype=torch.float64)
    vec = b.edge_vec
    d = torch.sqrt((vec * vec).sum(1))
    unit = vec / d.unsqueeze(1)
    radial, dradial = jvp(model.radial_basis, (d,), (torch.ones_like(d),))
    angular_of_vec = lambda v: model.angular_basis(v / torch.sqrt((v * v).sum(1, keepdim=True)))  # noqa: E731
    angular = model.angular_basis(unit)
    dang = [jvp(angular_of_vec, (vec,), (torch.zeros_like(vec).index_fill_(1, torch.tensor([x]), 1.0),))[1]
            for x in range(3)]
    nbr = b.species.index_select(0, b.edge_index[1])
    q = model.moments_from_basis(model.species_blocks(nbr, radial), angular, b.edge_index[0], graph.n_atoms)
    t = lambda x: x.to(dtype).contiguous()  # noqa: E731
    return EdgeGeometry(q=t(q), radial=t(radial), dradial=t(dradial), angular=t(angular),
                        dangular=t(torch.stack(dang, dim=2)), unit=t(unit))


def predict_cached(model: EnsembleModel, batch: Batch, geometry: Sequence[EdgeGeometry],
                   stress: bool = True, members: Union[bool, int] = True) -> Dict[str, torch.Tensor]:
    """:func:`~mlal.train.predict.predict` with ``create_graph=True``, from the structures' cached geometry.

    ``geometry[k]`` belongs to the ``k``-th structure of ``batch`` (same model, same
    dtype as ``batch``); edges are sorted by centre, as the neighbour lists give them.
    """
    n = int(batch.species.shape[0])
    q = torch.cat([g.q for g in geometry]).requires_grad_(True)                   # [n, SB, A], a leaf
    h = model.latent_from_moments(batch.species, model.mix(batch.species, q))
    energy, chosen = structure_energies(model, batch, h, members)
    dq = torch.stack([torch.autograd.grad(chosen[k].sum(), q, create_graph=True, retain_graph=True)[0]
                      for k in range(chosen.shape[0])], dim=1)                    # [n, K', SB, A]
    edge_grad = _edge_gradient(model, batch, geometry, dq)                          # [K', E, 3]
    out = {"energy": chosen, "member_energy": energy,
           "forces": forces_from_edges(edge_grad, batch.edge_index, n), "latent": h}
    if stress:
        out["stress"] = stress_from_edges(edge_grad, batch.edge_vec, batch.graph_of_edge, batch.volume)
    return out


def _edge_gradient(model: EnsembleModel, batch: Batch, geometry: Sequence[EdgeGeometry],
                   dq: torch.Tensor) -> torch.Tensor:
    """``∂E_k/∂r_ij`` ``[K', E, 3]`` from ``dq = ∂E_k/∂Q`` ``[n, K', S*B, A]`` (module docstring)."""
    n, Kp, SB, A = dq.shape
    centre = batch.edge_index[0]
    flat, n_max = padded_slots(centre, n)
    nbr = batch.species.index_select(0, batch.edge_index[1])
    radial = model.species_blocks(nbr, torch.cat([g.radial for g in geometry]))      # [E, SB]
    dradial = model.species_blocks(nbr, torch.cat([g.dradial for g in geometry]))
    angular = torch.cat([g.angular for g in geometry])                                # [E, A]
    pad = lambda x: pad_edges(x, flat, n, n_max)  # noqa: E731
    # per centre: Σ_b R_b G[b, a] and Σ_a G[b, a] a_a, for every edge slot and every target k
    p_r = torch.bmm(pad(radial), dq.permute(0, 2, 1, 3).reshape(n, SB, Kp * A))      # [n, n_max, K'A]
    p_a = torch.bmm(pad(angular), dq.permute(0, 3, 1, 2).reshape(n, A, Kp * SB))     # [n, n_max, K'SB]
    p_r = p_r.view(n * n_max, Kp, A).index_select(0, flat)                           # [E, K', A]
    p_a = p_a.view(n * n_max, Kp, SB).index_select(0, flat)                          # [E, K', SB]
    along = (p_a * dradial.unsqueeze(1)).sum(2)                                      # [E, K']
    dang = torch.cat([g.dangular for g in geometry])                                 # [E, A, 3]
    across = torch.bmm(p_r, dang)                                                    # [E, K', 3]
    unit = torch.cat([g.unit for g in geometry])
    return (along.unsqueeze(2) * unit.unsqueeze(1) + across).transpose(0, 1)
