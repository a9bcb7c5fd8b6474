"""Host-side assembly of forces, virial and σ from the model's edge gradients.

This is the Python twin of the same few lines in ``pair_style mlal``; see
``docs/model_format.md``. Units: forces eV/Å, virial eV, stress eV/Å³.
"""
from __future__ import annotations

from typing import Tuple

import torch


def forces_from_edges(edge_grad: torch.Tensor, edge_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """``F_i += g_ij``, ``F_j -= g_ij`` over all edges; returns ``[n_atoms, 3]``.

    ``edge_grad`` may carry a leading member axis ``[K, E, 3]``; then the result is ``[K, n, 3]``.
    """
    i, j = edge_index[0], edge_index[1]
    shape = list(edge_grad.shape)
    shape[-2] = n_atoms
    f = torch.zeros(shape, dtype=edge_grad.dtype, device=edge_grad.device)
    dim = edge_grad.dim() - 2
    f = f.index_add(dim, i, edge_grad)
    return f.index_add(dim, j, -edge_grad)


def virial_from_edges(edge_grad: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
    """Virial ``W = -Σ r_ij ⊗ g_ij`` (eV), LAMMPS sign convention; ASE stress is ``-W/V``."""
    return -(edge_vec.unsqueeze(2) * edge_grad.unsqueeze(1)).sum(dim=0)


def stress_from_edges(edge_grad: torch.Tensor, edge_vec: torch.Tensor, graph_of_edge: torch.Tensor,
                      volume: torch.Tensor) -> torch.Tensor:
    """ASE-convention stress (eV/Å³), Voigt ``xx yy zz yz xz xy``, of each structure of a batch.

    ``σ = sym(Σ_edges r_ij ⊗ g_ij) / V`` over each structure's edges; ``edge_grad``
    may carry a leading member axis ``[K, E, 3]`` (result ``[K, G, 6]``, else
    ``[G, 6]``). Structures with ``volume <= 0`` (not periodic in 3D) divide by 1.
    """
    rg = edge_vec.unsqueeze(-1) * edge_grad.unsqueeze(-2)                    # [..., E, 3, 3]: r ⊗ g
    shape = list(rg.shape)
    shape[-3] = volume.shape[0]
    w = torch.zeros(shape, dtype=rg.dtype, device=rg.device).index_add_(rg.dim() - 3, graph_of_edge, rg)
    w = 0.5 * (w + w.transpose(-1, -2))
    s = w / torch.where(volume > 0, volume, torch.ones_like(volume)).view(-1, 1, 1)
    return torch.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], dim=-1)


def force_sigma(member_forces: torch.Tensor) -> torch.Tensor:
    """Per-atom ensemble spread ``sqrt(mean_k |F^k_i - F̄_i|²)`` (eV/Å) from ``[K, n, 3]``."""
    dev = member_forces - member_forces.mean(dim=0, keepdim=True)
    return torch.sqrt((dev * dev).sum(dim=2).mean(dim=0))


def energy_sigma(member_atom_energy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Population std over members of the total energy (eV) and of each atomic energy."""
    total = member_atom_energy.sum(dim=1)
    return total.std(unbiased=False), member_atom_energy.std(dim=0, unbiased=False)
