"""Structures as edge graphs, and batches of them, in the model's input form.

A batch concatenates graphs: atom indices are offset, and ``edge_vec`` is
built in torch from positions so that training can differentiate through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from .io import Labelled
from .neighbors import edge_vectors, neighbor_list


@dataclass
class Graph:
    """One structure: species indices, geometry, full edge list and labels."""

    species: np.ndarray          # [n] int64
    positions: np.ndarray        # [n, 3] Å
    cell: np.ndarray             # [3, 3] Å
    edge_index: np.ndarray       # [2, E]
    shifts: np.ndarray           # [E, 3] int
    volume: float                # Å³, 0 when not periodic in 3D
    energy: Optional[float]
    forces: Optional[np.ndarray]
    stress: Optional[np.ndarray]  # Voigt eV/Å³

    @property
    def n_atoms(self) -> int:
        return len(self.species)


def to_graph(item: Labelled, species_index: Dict[str, int], cutoff: float) -> Graph:
    """Neighbour list and labels of one structure (unknown elements raise ``ValueError``)."""
    a = item.atoms
    symbols = a.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(species_index))
    if unknown:
        raise ValueError(f"{item.source}: element(s) {', '.join(unknown)} not in the model species "
                         f"{', '.join(species_index)}")
    ei, shifts = neighbor_list(a.positions, a.cell.array, a.pbc, cutoff)
    vol = float(a.get_volume()) if a.pbc.all() and a.cell.rank == 3 else 0.0
    return Graph(species=np.array([species_index[s] for s in symbols], dtype=np.int64),
                 positions=np.array(a.positions, dtype=float), cell=np.array(a.cell.array, dtype=float),
                 edge_index=ei, shifts=shifts, volume=vol, energy=item.energy, forces=item.forces,
                 stress=item.stress)


@dataclass
class Batch:
    """Several graphs concatenated; tensors ready for :class:`~mlal.nn.model.EnsembleModel`."""

    species: torch.Tensor        # [N]
    edge_index: torch.Tensor     # [2, E]
    edge_vec: torch.Tensor       # [E, 3]
    graph_of_atom: torch.Tensor  # [N]
    graph_of_edge: torch.Tensor  # [E]
    n_atoms: torch.Tensor        # [G]
    volume: torch.Tensor         # [G]
    energy: torch.Tensor         # [G] (NaN where missing)
    forces: torch.Tensor         # [N, 3] (NaN where missing)
    stress: torch.Tensor         # [G, 6] (NaN where missing)

    @property
    def n_graphs(self) -> int:
        return int(self.n_atoms.shape[0])


def collate(graphs: Sequence[Graph], dtype: torch.dtype = torch.float64) -> Batch:
    """Concatenate graphs into one :class:`Batch`."""
    offsets = np.cumsum([0] + [g.n_atoms for g in graphs])[:-1]
    species = np.concatenate([g.species for g in graphs])
    ei = np.concatenate([g.edge_index + o for g, o in zip(graphs, offsets)], axis=1)
    vec = np.concatenate([edge_vectors(g.positions, g.cell, g.edge_index, g.shifts) for g in graphs], axis=0)
    goa = np.concatenate([np.full(g.n_atoms, k) for k, g in enumerate(graphs)])
    goe = np.concatenate([np.full(g.edge_index.shape[1], k) for k, g in enumerate(graphs)])
    nan3 = lambda n: np.full((n, 3), np.nan)  # noqa: E731
    forces = np.concatenate([g.forces if g.forces is not None else nan3(g.n_atoms) for g in graphs])
    energy = np.array([g.energy if g.energy is not None else np.nan for g in graphs])
    stress = np.stack([g.stress if g.stress is not None else np.full(6, np.nan) for g in graphs])
    t = lambda x: torch.as_tensor(x, dtype=dtype)  # noqa: E731
    return Batch(species=torch.as_tensor(species), edge_index=torch.as_tensor(ei),
                 edge_vec=t(vec.reshape(-1, 3)), graph_of_atom=torch.as_tensor(goa),
                 graph_of_edge=torch.as_tensor(goe),
                 n_atoms=torch.as_tensor([g.n_atoms for g in graphs]), volume=t([g.volume for g in graphs]),
                 energy=t(energy), forces=t(forces), stress=t(stress))
