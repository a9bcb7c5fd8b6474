"""MaxVol active sets and the D-optimality extrapolation grade γ.

For one element, stack the per-atom feature vectors b_i (rows, dimension r) of
the training atoms. The active set is the r rows A of maximal |det A| (found by
the MaxVol algorithm), and ``γ_i = max_k |(b_i A⁻¹)_k|``. By construction every
training atom has γ ≤ 1 (up to the swap tolerance); γ > 1 means the atom's
environment lies outside what the training set spans (extrapolation), as in
MTP/ACE active learning.

Rank-deficient data (few atoms, or a perfect crystal where every atom looks the
same) is handled by adding r pseudo-rows ``λ e_k`` to the candidates: they fill
only the directions real atoms cannot span, and a new atom then gets γ ≥ 1 as
soon as its feature has a component larger than λ along such a direction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import scipy.linalg


def maxvol(B: np.ndarray, tol: float = 1.0 + 1e-6, max_iter: int = 10000) -> np.ndarray:
    """Indices of ``r`` rows of ``B`` ``[n, r]`` (n ≥ r) with locally maximal |det|.

    After return, every row of ``B @ inv(B[idx])`` has entries ≤ ``tol`` in modulus.
    """
    n, r = B.shape
    if n < r:
        raise ValueError(f"maxvol needs at least as many rows as columns, got {B.shape}")
    _, _, piv = scipy.linalg.qr(B.T, pivoting=True, mode="economic")
    idx = np.array(piv[:r])
    C = np.linalg.solve(B[idx].T, B.T).T            # C = B A^-1
    for _ in range(max_iter):
        i, j = np.unravel_index(np.argmax(np.abs(C)), C.shape)
        if abs(C[i, j]) <= tol:
            break
        # Replace active row j by row i; rank-1 update of C = B A^-1.
        cj = C[:, j].copy()
        ci = C[i, :].copy()
        ci[j] -= 1.0
        C -= np.outer(cj, ci) / cj[i]
        idx[j] = i
    return idx


def extrapolation_grade(features: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """γ per row of ``features`` ``[n, r]`` given ``A⁻¹`` ``[r, r]``."""
    return np.abs(features @ inverse).max(axis=1)


@dataclass
class ActiveSet:
    """Active set of one element: its rows ``A`` ``[r, r]`` and ``A⁻¹``.

    ``sources`` tells, per row, which candidate it is (index into the rows given
    to :func:`build_active_sets`), or -1 for a pseudo-row ``λ e_k``.
    """

    rows: np.ndarray
    inverse: np.ndarray
    sources: np.ndarray
    ridge: float


def build_active_sets(features: np.ndarray, species: np.ndarray, n_species: int,
                      ridge: float = 0.05) -> Dict[int, ActiveSet]:
    """One MaxVol active set per species index from per-atom ``features`` ``[n, r]``.

    ``ridge`` sets λ relative to the RMS feature value of that element. Species
    absent from the data get the pure pseudo-row set (every real atom
    extrapolates unless its features are tiny).
    """
    features = np.asarray(features, dtype=np.float64)
    r = features.shape[1]
    out: Dict[int, ActiveSet] = {}
    for s in range(n_species):
        rows = np.flatnonzero(species == s)
        B = features[rows]
        scale = float(np.sqrt(np.mean(B * B))) if len(rows) else 1.0
        lam = ridge * (scale if scale > 0 else 1.0)
        cand = np.vstack([B, lam * np.eye(r)])
        idx = maxvol(cand)
        A = cand[idx]
        src = np.array([rows[k] if k < len(rows) else -1 for k in idx], dtype=np.int64)
        out[s] = ActiveSet(rows=A, inverse=np.linalg.inv(A), sources=src, ridge=lam)
    return out


def gamma_matrices(active_sets: Dict[int, ActiveSet], n_species: int, dim: int) -> np.ndarray:
    """Stack ``A⁻¹`` per species into ``[S, r, r]`` (the model's ``gamma_matrix``)."""
    G = np.zeros((n_species, dim, dim))
    for s, a in active_sets.items():
        G[s] = a.inverse
    return G


def selection_candidates(features: np.ndarray, active: ActiveSet) -> Tuple[np.ndarray, List[int]]:
    """γ of candidate rows against an active set, and the rows MaxVol would swap in."""
    g = extrapolation_grade(features, active.inverse)
    cand = np.vstack([active.rows, features])
    idx = maxvol(cand)
    new = sorted(int(k - len(active.rows)) for k in idx if k >= len(active.rows))
    return g, new
