"""Choosing which preselected configurations go to the oracle.

- :func:`select_d_optimal` (default): greedy D-optimality. The configuration
  whose worst atom has the largest γ against the current active set is taken,
  the active set is updated with its atoms by MaxVol, γ of the others is
  recomputed, and so on. A near-duplicate of an already chosen configuration
  then has γ ≈ 1 and is not taken: one batch spans new directions of feature
  space instead of labelling the same event many times.
- :func:`select_by_sigma`: the configurations of largest force spread σ,
  skipping those within ``min_separation`` MD steps of one already taken.
- :func:`cut_cluster`: for large cells, a sphere (free cluster) or a periodic
  cube around the most extrapolative atom, so only a small cell goes to the
  oracle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from ase import Atoms

from ..data.neighbors import edge_vectors, neighbor_list
from ..deploy import DTYPES
from ..uncertainty.maxvol import extrapolation_grade, maxvol


@dataclass
class AtomFeatures:
    """Per-atom latent features and species of one configuration, and its γ per atom."""

    features: np.ndarray      # [n, r]
    species: np.ndarray       # [n]
    gamma: np.ndarray         # [n]


def species_index(model, atoms: Atoms) -> np.ndarray:
    index = {s: k for k, s in enumerate(model.species)}
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(index))
    if unknown:
        raise ValueError(f"element(s) {unknown} not in the model species {list(model.species)}")
    return np.array([index[s] for s in atoms.get_chemical_symbols()], dtype=np.int64)


@torch.no_grad()
def atom_features(model, atoms: Atoms) -> AtomFeatures:
    """Latent (γ) features of every atom of ``atoms`` under ``model`` (eager or TorchScript)."""
    species = species_index(model, atoms)
    ei, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, float(model.cutoff))
    vec = edge_vectors(atoms.positions, atoms.cell.array, ei, shifts)
    dtype = DTYPES.get(getattr(model, "dtype_name", "float64"), torch.float64)
    if hasattr(model, "feature_mean"):
        dtype = model.feature_mean.dtype
    h = model.latent(torch.from_numpy(species), torch.from_numpy(ei), torch.from_numpy(vec).to(dtype),
                     len(atoms))
    feats = h.double().numpy()
    G = model.gamma_matrix.double().numpy()
    gamma = np.abs(np.einsum("nr,nrk->nk", feats, G[species])).max(axis=1) if len(feats) else np.zeros(0)
    return AtomFeatures(feats, species, gamma)


def active_rows(model) -> Dict[int, np.ndarray]:
    """The model's active set rows per species index."""
    rows = model.active_rows.double().numpy()
    return {s: rows[s] for s in range(rows.shape[0])}


def select_d_optimal(model, configs: Sequence[Atoms], n_select: int, gamma_min: float = 1.0 + 1e-6,
                     features: Optional[Sequence[AtomFeatures]] = None) -> Tuple[List[int], List[float]]:
    """Greedy D-optimal batch: indices of the chosen configurations and their γ when chosen.

    Stops early when no remaining configuration has γ > ``gamma_min`` against
    the active set extended by those already chosen.
    """
    if n_select <= 0 or not configs:
        return [], []
    feats = list(features) if features is not None else [atom_features(model, a) for a in configs]
    A = active_rows(model)
    inv = {s: np.linalg.inv(A[s]) for s in A}
    remaining = list(range(len(configs)))
    chosen: List[int] = []
    grades: List[float] = []
    while remaining and len(chosen) < n_select:
        g = np.array([max((float(extrapolation_grade(feats[c].features[feats[c].species == s], inv[s]).max())
                           for s in np.unique(feats[c].species)), default=0.0) for c in remaining])
        k = int(np.argmax(g))
        if g[k] <= gamma_min:
            break
        c = remaining.pop(k)
        chosen.append(c)
        grades.append(float(g[k]))
        for s in np.unique(feats[c].species):
            s = int(s)
            cand = np.vstack([A[s], feats[c].features[feats[c].species == s]])
            idx = maxvol(cand)
            A[s] = cand[idx]
            inv[s] = np.linalg.inv(A[s])
    return chosen, grades


def select_by_sigma(sigmas: Sequence[float], n_select: int, steps: Optional[Sequence[int]] = None,
                    min_separation: int = 0, sigma_min: float = 0.0) -> List[int]:
    """Indices of the ``n_select`` largest σ above ``sigma_min``, at least ``min_separation`` steps apart."""
    order = np.argsort(-np.asarray(sigmas, dtype=float), kind="stable")
    chosen: List[int] = []
    for k in order:
        if len(chosen) >= n_select or sigmas[k] <= sigma_min:
            break
        if steps is not None and min_separation > 0 and any(
                abs(int(steps[k]) - int(steps[c])) < min_separation for c in chosen):
            continue
        chosen.append(int(k))
    return chosen


def cut_cluster(atoms: Atoms, center: int, radius: float, mode: str = "sphere",
                min_distance: float = 1.2) -> Atoms:
    """A small cell around atom ``center`` of a (large) configuration.

    ``mode="sphere"``: every atom (periodic images included) within ``radius`` Å,
    as a free cluster centred in a box with 5 Å of vacuum. ``mode="periodic"``:
    the atoms in a cube of edge ``2*radius`` centred on the atom, made periodic;
    atoms that come closer than ``min_distance`` Å to another across the new
    faces are dropped. The centre atom is index 0 of the result;
    ``info["cluster_center"]``, ``info["cluster_radius"]`` record the cut.
    """
    if mode not in ("sphere", "periodic"):
        raise ValueError(f"cluster mode must be 'sphere' or 'periodic', got {mode!r}")
    reach = radius * (np.sqrt(3.0) if mode == "periodic" else 1.0) + 1e-6
    ei, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, reach)
    sel = ei[0] == center
    vec = edge_vectors(atoms.positions, atoms.cell.array, ei[:, sel], shifts[sel])
    js = ei[1, sel]
    rel = np.vstack([np.zeros((1, 3)), vec])
    idx = np.concatenate([[center], js])
    if mode == "sphere":
        keep = np.linalg.norm(rel, axis=1) <= radius
        rel, idx = rel[keep], idx[keep]
        out = Atoms([atoms[i].symbol for i in idx], positions=rel)
        out.center(vacuum=5.0)
        out.pbc = False
    else:
        keep = np.all((rel >= -radius) & (rel < radius), axis=1)
        rel, idx = rel[keep], idx[keep]
        out = Atoms([atoms[i].symbol for i in idx], positions=rel + radius, cell=np.eye(3) * 2 * radius,
                    pbc=True)
        # Drop atoms that overlap their neighbours across the new periodic faces.
        while True:
            e2, s2 = neighbor_list(out.positions, out.cell.array, out.pbc, min_distance)
            if e2.shape[1] == 0:
                break
            counts = np.bincount(e2[0], minlength=len(out))
            counts[0] = -1                      # never drop the centre
            out = out[[k for k in range(len(out)) if k != int(np.argmax(counts))]]
    out.info["cluster_center"] = 0
    out.info["cluster_radius"] = float(radius)
    out.info["cluster_mode"] = mode
    return out
