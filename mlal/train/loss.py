"""The training loss and the validation errors of the ensemble mean.

Units: the loss is ``w_E·MSE(E/atom in eV) + w_F·MSE(F in eV/Å) + w_S·MSE(σ in GPa)``
(with ``force_huber_delta``, the force term's squares become twice Huber's function);
:func:`errors` reports energy in meV/atom, forces in eV/Å, stress in GPa.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.graph import Batch, Graph, collate
from ..nn.model import EnsembleModel
from .config import TrainConfig
from .geometry import EdgeGeometry, predict_cached
from .predict import predict

GPA = 160.21766208           # eV/Å³ -> GPa


def _loss_weights(b: Batch, K: int, weights: Optional[torch.Tensor], member: Optional[int],
                  dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-structure weights of every label: energy ``[K, G]``, force ``[K', N]``, stress ``[K', G]``."""
    e_mask = ~torch.isnan(b.energy)
    f_mask = ~torch.isnan(b.forces[:, 0])
    s_mask = ~torch.isnan(b.stress[:, 0]) & (b.volume > 0)
    w, mean_w = _split_weights(weights, K, b.n_graphs, dtype)
    wd = w if member is None else torch.stack([mean_w, w[member]])   # rows of p["forces"]
    return w * e_mask.to(dtype), wd[:, b.graph_of_atom] * f_mask.to(dtype), wd * s_mask.to(dtype)


def _split_weights(weights, K: int, G: int, dtype):
    """``(members' [K, G], ensemble mean's [G])`` of ``weights`` ``[K, G]`` (the mean's: 1) or
    ``[K + 1, G]`` (the mean's last)."""
    if weights is None:
        return torch.ones(K, G, dtype=dtype), torch.ones(G, dtype=dtype)
    weights = torch.as_tensor(weights).to(dtype)
    if weights.shape[0] == K + 1:
        return weights[:K], weights[K]
    return weights, torch.ones(G, dtype=dtype)


def loss_denominators(graphs: Sequence[Graph], K: int, weights: Optional[torch.Tensor] = None,
                      member: Optional[int] = None) -> Dict[str, float]:
    """How many (weighted) energy, force and stress labels each MSE of :func:`batch_loss` divides by.

    ``weights`` as in :func:`batch_loss`. For the batch of ``graphs``, or for a batch
    split in parts (:mod:`mlal.train.parallel`): with the whole batch's counts the
    parts' losses add up to the whole batch's loss.
    """
    w, mean_w = (t.numpy() for t in _split_weights(weights, K, len(graphs), torch.float64))
    wd = w if member is None else np.stack([mean_w, w[member]])
    has_e = np.array([g.energy is not None and g.energy == g.energy for g in graphs], dtype=float)
    n_f = np.array([g.n_atoms if g.forces is not None else 0 for g in graphs], dtype=float)
    has_s = np.array([g.stress is not None and g.volume > 0 for g in graphs], dtype=float)
    return {"e": float((w * has_e).sum()), "f": 3.0 * float((wd * n_f).sum()), "s": 6.0 * float((wd * has_s).sum())}


def batch_loss(model: EnsembleModel, b: Batch, cfg: TrainConfig,
               weights: Optional[torch.Tensor] = None,
               member: Optional[int] = None,
               denominators: Optional[Dict[str, float]] = None,
               geometry: Optional[Sequence[EdgeGeometry]] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted MSE loss averaged over members.

    ``weights`` (None: all 1) are per-structure weights of each member's labels,
    ``[K, G]``, or ``[K + 1, G]`` with the ensemble mean's last (``[K, G]``: the
    mean's are 1): bootstrap counts times ``config_type_weights``.

    Energies are fitted for every member (they cost no extra backward pass).
    Forces and stress: with ``member=None`` every member's (K backward passes
    through the descriptor); with ``member=j`` the ensemble mean's and member
    ``j``'s, half each (two passes: the trainer rotates ``j`` over the steps).
    ``denominators`` (:func:`loss_denominators` of a whole batch) make this the
    share of that batch's loss when ``b`` is a part of it. ``geometry`` (the
    batch's structures' cached geometry, :mod:`mlal.train.geometry`) gives the
    same loss faster.
    """
    K = model.n_members
    dtype = b.edge_vec.dtype
    we, wf, ws = _loss_weights(b, K, weights, member, dtype)
    if denominators is None:
        den = {"e": float(we.sum()), "f": 3.0 * float(wf.sum()), "s": 6.0 * float(ws.sum())}
    else:
        den = denominators
    want_stress = cfg.stress_weight > 0 and bool((ws > 0).any())
    chosen = True if member is None else member
    if geometry is not None:
        p = predict_cached(model, b, geometry, stress=want_stress, members=chosen)
    else:
        p = predict(model, b, create_graph=True, stress=want_stress, members=chosen)
    n = b.n_atoms.to(dtype)
    loss = torch.zeros((), dtype=dtype)
    parts: Dict[str, float] = {}
    if cfg.energy_weight > 0 and bool((we > 0).any()):
        de = (p["member_energy"] - torch.nan_to_num(b.energy)) / n
        le = (we * de * de).sum() / max(den["e"], 1.0)
        loss = loss + cfg.energy_weight * le
        parts["e"] = float(le.detach())
    if cfg.force_weight > 0 and bool((wf > 0).any()):
        df = p["forces"] - torch.nan_to_num(b.forces)
        lf = (wf * squared_or_huber(df, cfg.force_huber_delta).sum(2)).sum() / max(den["f"], 3.0)
        loss = loss + cfg.force_weight * lf
        parts["f"] = float(lf.detach())
    if want_stress:
        ds = (p["stress"] - torch.nan_to_num(b.stress)) * GPA
        ls = (ws * (ds * ds).sum(2)).sum() / max(den["s"], 6.0)
        loss = loss + cfg.stress_weight * ls
        parts["s"] = float(ls.detach())
    return loss, parts


def squared_or_huber(x: torch.Tensor, delta: Optional[float]) -> torch.Tensor:
    """``x²`` elementwise, or twice the Huber function of ``x`` with ``delta`` (same units as ``x``):
    ``x²`` for ``|x| ≤ delta`` and ``2·delta·|x| − delta²`` beyond, so small residuals weigh
    as in the MSE and large ones only linearly (their gradient is capped at ``2·delta``)."""
    if delta is None:
        return x * x
    a = x.abs()
    return torch.where(a <= delta, x * x, 2.0 * delta * a - delta * delta)


def errors(model, graphs: Sequence[Graph], batch_size: int = 16,
           dtype: torch.dtype = torch.float64) -> Dict[str, float]:
    """Errors of the ensemble-mean prediction of an eager model on labelled graphs.

    Energy in meV/atom, forces in eV/Å (per component), stress in GPa (per
    Voigt component); NaN where the data has no such label.
    """
    acc = {"e_abs": 0.0, "e_sq": 0.0, "e_n": 0, "f_abs": 0.0, "f_sq": 0.0, "f_n": 0,
           "s_abs": 0.0, "s_sq": 0.0, "s_n": 0, "atoms": 0}
    for start in range(0, len(graphs), batch_size):
        b = collate(graphs[start:start + batch_size], dtype=dtype)
        s_mask = ~torch.isnan(b.stress[:, 0]) & (b.volume > 0)
        with torch.enable_grad():
            p = predict(model, b, create_graph=False, stress=bool(s_mask.any()), members=False)
        acc["atoms"] += int(b.species.shape[0])
        e_mask = ~torch.isnan(b.energy)
        if bool(e_mask.any()):
            de = ((p["energy"][0] - b.energy) / b.n_atoms.to(dtype))[e_mask].detach().double()
            acc["e_abs"] += float(de.abs().sum()); acc["e_sq"] += float((de * de).sum()); acc["e_n"] += int(de.numel())
        f_mask = ~torch.isnan(b.forces[:, 0])
        if bool(f_mask.any()):
            df = (p["forces"][0] - b.forces)[f_mask].detach().double()
            acc["f_abs"] += float(df.abs().sum()); acc["f_sq"] += float((df * df).sum()); acc["f_n"] += int(df.numel())
        if bool(s_mask.any()):
            ds = ((p["stress"][0] - b.stress)[s_mask] * GPA).detach().double()
            acc["s_abs"] += float(ds.abs().sum()); acc["s_sq"] += float((ds * ds).sum()); acc["s_n"] += int(ds.numel())
    return summarize(acc)


def summarize(acc: Dict[str, float]) -> Dict[str, float]:
    nan = float("nan")
    out: Dict[str, float] = {}
    for key, scale in (("energy", 1000.0), ("force", 1.0), ("stress", 1.0)):
        k = key[0]
        cnt = acc[f"{k}_n"]
        out[f"{key}_mae"] = acc[f"{k}_abs"] / cnt * scale if cnt else nan
        out[f"{key}_rmse"] = math.sqrt(acc[f"{k}_sq"] / cnt) * scale if cnt else nan
    out["n_atoms"] = int(acc["atoms"])
    return out


def validation_score(m: Dict[str, float], cfg: TrainConfig) -> float:
    """The early-stopping and best-weights criterion, from the ensemble mean's validation errors.

    ``w_E·MAE(E/atom)² + w_F·MAE(F)² + w_S·MAE(σ in GPa)²`` (labels present
    only): the loss's weights and units, but mean absolute errors, so that one
    structure the model cannot fit in a small validation set does not decide
    which epoch is kept (with squared errors, a lucky early epoch on such a set
    outscored every later one).
    """
    score = 0.0
    for key, w, scale in (("energy", cfg.energy_weight, 1e-3), ("force", cfg.force_weight, 1.0),
                          ("stress", cfg.stress_weight, 1.0)):
        v = m.get(f"{key}_mae", float("nan"))
        if w > 0 and v == v:
            score += w * (v * scale) ** 2
    return score
