"""Statistics fitted before training, and the active set rebuilt after it.

- per-element reference energies by least squares (eV/atom),
- the energy scale of the network output (eV),
- the descriptor normalisation (mean/std of each invariant),
- the MaxVol active set per element on the latent features (γ);
- the cutoff, when it is ``"auto"`` (from the atomic density of the data);
- r_min, when it is ``"auto"`` (from the data's shortest distance).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch

from ..data.graph import Graph, collate
from ..data.io import Labelled
from ..data.neighbors import edge_vectors, neighbor_list
from ..nn.model import EnsembleModel
from ..uncertainty.maxvol import ActiveSet, build_active_sets, gamma_matrices


AUTO_NEIGHBOURS = 45.0        # mean neighbours inside the automatic cutoff sphere
AUTO_PROBE = 6.0              # Å, the sphere the density is counted in
AUTO_R_MIN_MARGIN = 0.3       # Å under the data's shortest distance (r_min "auto")


def auto_cutoff(items: Sequence[Labelled], neighbours: float = AUTO_NEIGHBOURS,
                limits: tuple = (4.0, 6.0)) -> float:
    """Cutoff (Å) whose sphere holds about ``neighbours`` atoms at the data's density.

    The density is the median, over all atoms, of the neighbour count within
    6 Å divided by the sphere's volume (atoms next to vacuum do not move a
    median of bulk-like data); the radius is rounded to 0.5 Å and kept within
    ``limits`` (the upper one bounds the cost: edges grow as r³). On the mlearn
    sets this gives Li, Si, Ge 6.0; Mo 5.5; Cu, Ni 5.0 Å (unrounded 5.8, 6.1,
    6.6; 5.5; 5.0, 5.0): the neighbour shells that a fixed 5 Å left out of
    low-density Li, Si and Ge count, without the cost of 6 Å for dense Cu and Ni.
    """
    counts = []
    for it in items:
        a = it.atoms
        ei, _ = neighbor_list(a.positions, a.cell.array, a.pbc, AUTO_PROBE)
        counts.append(np.bincount(ei[0], minlength=len(a)))
    n = float(np.median(np.concatenate(counts))) if counts else 0.0
    if n <= 0.0:
        return float(limits[1])
    r = AUTO_PROBE * (neighbours / n) ** (1.0 / 3.0)
    return float(min(max(round(2.0 * r) / 2.0, limits[0]), limits[1]))


def auto_r_min(items: Sequence[Labelled], cutoff: float, margin: float = AUTO_R_MIN_MARGIN) -> float:
    """Start (Å) of the radial functions' range: ``margin`` under the data's shortest distance.

    Rounded to 0.1 Å, at least 0 and at most 0.9 ``cutoff`` (0 when no two atoms
    are within ``cutoff``). The Chebyshev functions then spend their resolution where
    the neighbours are: on the mlearn sets (shortest distances Ni 1.80, Cu 1.83,
    Si 1.83, Mo 1.88, Li 2.00, Ge 2.07 Å) this gives 1.5 Å for Ni, Cu and Si,
    1.6 for Mo, 1.7 for Li and 1.8 for Ge. Below r_min the functions flatten smoothly
    (:mod:`mlal.nn.radial`): the model knows nothing at a distance shorter than any in the data.
    """
    shortest = np.inf
    for it in items:
        a = it.atoms
        ei, shifts = neighbor_list(a.positions, a.cell.array, a.pbc, cutoff)
        if ei.shape[1]:
            d = np.linalg.norm(edge_vectors(a.positions, a.cell.array, ei, shifts), axis=1)
            shortest = min(shortest, float(d.min()))
    if not np.isfinite(shortest):
        return 0.0
    r = round(10.0 * (shortest - margin)) / 10.0
    return float(min(max(r, 0.0), 0.9 * cutoff))


def fit_reference_energies(model: EnsembleModel, graphs: Sequence[Graph]) -> np.ndarray:
    """Least-squares e0 per element from labelled energies; sets ``model.reference_energy``.

    Also sets ``energy_scale`` to the RMS force (eV/Å ~ eV per atom of variation),
    or the per-atom energy residual spread when no forces are labelled.
    """
    S = model.n_species
    rows, e = [], []
    for g in graphs:
        if g.energy is not None:
            rows.append(np.bincount(g.species, minlength=S))
            e.append(g.energy)
    if not rows:
        raise ValueError("no labelled energies: cannot fit reference energies")
    X = np.array(rows, dtype=float)
    y = np.array(e)
    # A ridge term keeps e0 defined for elements that only appear in fixed ratios.
    lam = 1e-8 * max(1.0, float((X ** 2).sum()))
    e0 = np.linalg.solve(X.T @ X + lam * np.eye(S), X.T @ y)
    resid = (y - X @ e0) / X.sum(1)
    forces = [g.forces for g in graphs if g.forces is not None]
    if forces:
        scale = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
    else:
        scale = float(np.std(resid))
    scale = max(scale, 1e-2)
    with torch.no_grad():
        model.reference_energy.copy_(torch.as_tensor(e0, dtype=model.reference_energy.dtype))
        model.energy_scale.fill_(scale)
    return e0


@torch.no_grad()
def fit_feature_normalization(model: EnsembleModel, graphs: Sequence[Graph], max_atoms: int = 20000,
                              seed: int = 0) -> None:
    """Set ``feature_mean``/``feature_std`` from (a sample of) the training atoms."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(graphs))
    chosen: List[Graph] = []
    total = 0
    for k in order:
        chosen.append(graphs[k])
        total += graphs[k].n_atoms
        if total >= max_atoms:
            break
    dtype = model.feature_mean.dtype
    feats = []
    for start in range(0, len(chosen), 32):
        b = collate(chosen[start:start + 32], dtype=dtype)
        n = int(b.species.shape[0])
        feats.append(model.invariants(model.moments(b.species, b.edge_index, b.edge_vec, n)))
    f = torch.cat(feats)
    model.feature_mean.copy_(f.mean(0))
    model.feature_std.copy_(f.std(0).clamp_min(1e-6 * float(f.std(0).max()) + 1e-12))


@torch.no_grad()
def latent_features(model: EnsembleModel, graphs: Sequence[Graph], batch_size: int = 32) -> np.ndarray:
    """Latent (γ) features of every atom of ``graphs``, ``[N, latent]`` float64."""
    out = []
    for start in range(0, len(graphs), batch_size):
        b = collate(graphs[start:start + batch_size], dtype=model.feature_mean.dtype)
        out.append(model.latent(b.species, b.edge_index, b.edge_vec, int(b.species.shape[0])).double())
    return torch.cat(out).numpy() if out else np.zeros((0, model.latent_dim))


def rebuild_active_set(model: EnsembleModel, graphs: Sequence[Graph]) -> Dict[int, ActiveSet]:
    """MaxVol active set per element on the training atoms; stored in the model's buffers."""
    feats = latent_features(model, graphs)
    species = np.concatenate([g.species for g in graphs]) if graphs else np.zeros(0, dtype=np.int64)
    sets = build_active_sets(feats, species, model.n_species)
    G = gamma_matrices(sets, model.n_species, model.latent_dim)
    rows = np.stack([sets[s].rows for s in range(model.n_species)])
    model.gamma_matrix.copy_(torch.as_tensor(G, dtype=model.gamma_matrix.dtype))
    model.active_rows.copy_(torch.as_tensor(rows, dtype=model.active_rows.dtype))
    return sets
