"""Neighbour lists for periodic, partly periodic and free structures (vesin, O(N)).

Edges are returned as a *full* list ``(i, j, shift)`` with
``r_ij = x_j - x_i + shift @ cell`` (Å), the form the exported model takes.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import vesin


def neighbor_list(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray,
                  cutoff: float) -> Tuple[np.ndarray, np.ndarray]:
    """Full neighbour list within ``cutoff`` (Å).

    Returns ``edge_index`` ``[2, E]`` int64 (centre, neighbour) and integer
    periodic ``shifts`` ``[E, 3]``. Works for any triclinic cell; directions
    without periodicity ignore the cell vector.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if not pbc.any():
        cell = np.zeros((3, 3))
    elif not pbc.all():
        # vesin wants a full-rank box: give non-periodic directions a dummy vector.
        cell = cell.copy()
        for d in range(3):
            if not pbc[d] and np.linalg.norm(cell[d]) == 0.0:
                cell[d, d] = 1.0
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts = nl.compute(points=positions, box=cell, periodic=pbc.tolist(), quantities="ijS")
    order = np.lexsort((j, i))
    edge_index = np.stack([i[order], j[order]]).astype(np.int64)
    return edge_index, np.asarray(shifts[order], dtype=np.int64)


def edge_vectors(positions: np.ndarray, cell: np.ndarray, edge_index: np.ndarray,
                 shifts: np.ndarray) -> np.ndarray:
    """``r_ij = x_j - x_i + shift @ cell`` for every edge, ``[E, 3]`` in Å."""
    return positions[edge_index[1]] - positions[edge_index[0]] + shifts @ np.asarray(cell).reshape(3, 3)
