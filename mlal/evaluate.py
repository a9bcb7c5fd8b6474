"""Errors of an exported (or eager) model on labelled data, and parity plots.

Units: energy errors in meV/atom, force errors in eV/Å (per Cartesian
component), stress errors in GPa (per Voigt component). Each label is scored
only on the structures that have it (Cu/Ni mlearn data: no stress).
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .data.graph import Graph, collate, to_graph
from .data.io import Labelled
from .deploy import DTYPES, load_model
from .deploy.host import force_sigma, forces_from_edges, stress_from_edges
from .train.loss import GPA


def _module(model):
    if isinstance(model, (str, Path)):
        return load_model(model)
    return model


def predict_structures(model, structures: Sequence[Labelled], batch_size: int = 16,
                       uncertainty: bool = False) -> Dict[str, Any]:
    """Ensemble-mean predictions and labels, structure by structure.

    Returns arrays: ``energy``/``energy_ref`` per atom (eV/atom, NaN when unlabelled),
    ``forces``/``forces_ref`` ``[N_atoms, 3]``, ``stress``/``stress_ref`` ``[G, 6]`` (GPa),
    ``n_atoms`` and ``config_type`` ``[G]``; with ``uncertainty`` also ``sigma`` ``[N_atoms]`` (eV/Å,
    the ensemble spread of each atom's force, as the ASE calculator reports it).
    """
    from .data.io import as_labelled
    module = _module(model)
    items = as_labelled(structures)
    index = {s: k for k, s in enumerate(module.species)}
    graphs = [to_graph(it, index, float(module.cutoff)) for it in items]
    return predict_graphs(module, graphs, [it.config_type for it in items], batch_size, uncertainty)


def predict_graphs(model, graphs: Sequence[Graph], config_types: Optional[Sequence[str]] = None,
                   batch_size: int = 16, uncertainty: bool = False) -> Dict[str, Any]:
    """:func:`predict_structures` of graphs already built with the model's species and cutoff
    (``config_type`` empty where ``config_types`` is not given)."""
    module = _module(model)
    dtype = DTYPES.get(getattr(module, "dtype_name", "float64"), torch.float64)
    e_pred, e_ref, f_pred, f_ref, s_pred, s_ref, n_at, sig = [], [], [], [], [], [], [], []
    for start in range(0, len(graphs), batch_size):
        b = collate(graphs[start:start + batch_size], dtype=dtype)
        n = int(b.species.shape[0])
        out = module(b.species, b.edge_index, b.edge_vec, n, uncertainty)
        if uncertainty:
            fk = forces_from_edges(out["member_edge_grad"].double(), b.edge_index, n)    # [K, n, 3]
            sig.append(force_sigma(fk).numpy())
        ae = out["atom_energy"].double()
        g = out["edge_grad"].double()
        G = b.n_graphs
        energy = torch.zeros(G, dtype=torch.float64).index_add_(0, b.graph_of_atom, ae)
        forces = forces_from_edges(g, b.edge_index, n)
        vol = b.volume.double()
        stress = stress_from_edges(g, b.edge_vec.double(), b.graph_of_edge, vol)
        stress[vol <= 0] = float("nan")
        na = b.n_atoms.double()
        e_pred.append((energy / na).numpy()); e_ref.append((b.energy.double() / na).numpy())
        f_pred.append(forces.detach().numpy()); f_ref.append(b.forces.double().numpy())
        s_pred.append(stress.detach().numpy() * GPA); s_ref.append(b.stress.double().numpy() * GPA)
        n_at.append(b.n_atoms.numpy())
    cat = np.concatenate
    out = {"energy": cat(e_pred), "energy_ref": cat(e_ref), "forces": cat(f_pred), "forces_ref": cat(f_ref),
           "stress": cat(s_pred), "stress_ref": cat(s_ref), "n_atoms": cat(n_at)}
    if uncertainty:
        out["sigma"] = cat(sig)
    out["config_type"] = np.array(list(config_types) if config_types is not None else [""] * len(graphs),
                                  dtype=object)
    return out


def _mae_rmse(pred: np.ndarray, ref: np.ndarray, scale: float = 1.0):
    ok = np.isfinite(ref) & np.isfinite(pred)
    if not ok.any():
        return None, None
    d = (pred[ok] - ref[ok]) * scale
    return float(np.abs(d).mean()), float(math.sqrt((d * d).mean()))


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


SHEAR = ("yz", "xz", "xy")      # ASE's Voigt order of the shear components


def _shear_maes(pred: np.ndarray, ref: np.ndarray) -> Dict[str, Any]:
    maes = {perm: float(np.abs(pred - ref[:, list(perm)]).mean()) for perm in itertools.permutations(range(3))}
    best = min(maes, key=maes.get)
    as_is = maes[(0, 1, 2)]
    size = float(np.abs(ref).mean())
    # the other order must explain the labels (error under half their size), not only fit a poor
    # model less badly: a barely trained model on small thermal shears can prefer any order
    return {"shear_mae": as_is, "best_order": " ".join(SHEAR[k] for k in best), "best_shear_mae": maes[best],
            "label_shear_mean": size,
            "suspect": (best != (0, 1, 2) and maes[best] < 0.5 * as_is and as_is - maes[best] > 0.05
                        and maes[best] < 0.5 * size)}


def shear_order_check(p: Dict[str, Any], min_structures: int = 3) -> Optional[Dict[str, Any]]:
    """Do the stress labels' shear components sit in other slots than ASE's ``yz xz xy``?

    A model's stress is the strain derivative of its energy, so its shear
    components are in the right slots even when some labels are not (VASP prints
    ``XY YZ ZX``; a converter that reads that as ``xy xz yz`` swaps yz and xz,
    as in parts of the mlearn data). The labels are read in every order of their three
    shear slots; ``suspect`` when another order fits the model at less than half
    the MAE of ASE's (and by more than 0.05 GPa), and at less than half the labels'
    mean shear (``label_shear_mean``, GPa). ``None`` with fewer than
    ``min_structures`` labelled structures.
    Returns ``shear_mae`` (GPa, as labelled), ``best_order`` (which label slot holds yz, xz, xy),
    ``best_shear_mae``, ``label_shear_mean`` and ``suspect``; where ``p`` has ``config_type`` per structure, also
    the same per type (``groups``, types with ``min_structures`` or more) and
    ``suspect_groups``: data gathered from several sources may be wrong in one of them only.
    """
    ok = np.isfinite(p["stress_ref"]).all(axis=1) & np.isfinite(p["stress"]).all(axis=1)
    if ok.sum() < min_structures:
        return None
    out = _shear_maes(p["stress"][ok, 3:], p["stress_ref"][ok, 3:])
    types = p.get("config_type")
    if types is not None and len(set(types)) > 1:
        types = np.asarray(types)
        out["groups"] = {str(g): _shear_maes(p["stress"][sel, 3:], p["stress_ref"][sel, 3:])
                         for g in sorted(set(types[ok])) for sel in [ok & (types == g)]
                         if sel.sum() >= min_structures}
        out["suspect_groups"] = [g for g, c in out["groups"].items() if c["suspect"]]
    return out


def shear_order_warning(check: Optional[Dict[str, Any]]) -> Optional[str]:
    """The message for a :func:`shear_order_check` that is ``suspect`` (or has suspect groups), else ``None``."""
    if not check:
        return None
    hint = "check how the stress was converted (VASP prints XX YY ZZ XY YZ ZX)"
    if check["suspect"]:
        return (f"the stress labels' shear components fit this model far better read as "
                f"'{check['best_order']}' than in ASE's order 'yz xz xy' (MAE {check['best_shear_mae']:.3g} "
                f"against {check['shear_mae']:.3g} GPa): {hint}")
    bad = check.get("suspect_groups")
    if not bad:
        return None
    parts = [f"{g} read as '{check['groups'][g]['best_order']}' (MAE {check['groups'][g]['best_shear_mae']:.3g} "
             f"against {check['groups'][g]['shear_mae']:.3g} GPa)" for g in bad]
    return (f"in config_type {', '.join(bad)} the stress labels' shear components fit this model far better "
            f"in another order than ASE's 'yz xz xy': {'; '.join(parts)}: {hint}")


def metrics_from_predictions(p: Dict[str, Any]) -> Dict[str, Any]:
    """MAE/RMSE per label kind (``None`` where nothing is labelled).

    With per-atom ``sigma`` in ``p``: ``sigma_mean`` (eV/Å) and
    ``sigma_error_spearman``, the rank correlation between an atom's σ and
    the norm of its force error (does σ point at the worst atoms?). With stress
    labels: ``stress_shear_order`` (:func:`shear_order_check`).
    """
    out: Dict[str, Any] = {}
    out["energy_mae"], out["energy_rmse"] = _mae_rmse(p["energy"], p["energy_ref"], 1000.0)
    out["force_mae"], out["force_rmse"] = _mae_rmse(p["forces"], p["forces_ref"])
    out["stress_mae"], out["stress_rmse"] = _mae_rmse(p["stress"], p["stress_ref"])
    out["stress_shear_order"] = shear_order_check(p)
    if "sigma" in p:
        err = np.linalg.norm(p["forces"] - p["forces_ref"], axis=1)
        ok = np.isfinite(err)
        out["sigma_mean"] = float(p["sigma"][ok].mean()) if ok.any() else None
        out["sigma_error_spearman"] = _spearman(p["sigma"][ok], err[ok]) if ok.sum() > 2 else None
    out["n_structures"] = int(len(p["n_atoms"]))
    out["n_atoms"] = int(np.sum(p["n_atoms"]))
    return out


def evaluate(model, structures: Sequence[Labelled], batch_size: int = 16,
             plot: Optional[Union[str, Path]] = None, uncertainty: bool = False) -> Dict[str, Any]:
    """Energy/force/stress MAE and RMSE of ``model`` (path, TorchScript or eager) on ``structures``
    (with ``uncertainty``: also how σ ranks the force errors, see :func:`metrics_from_predictions`)."""
    p = predict_structures(model, structures, batch_size=batch_size, uncertainty=uncertainty)
    m = metrics_from_predictions(p)
    if plot is not None:
        parity_plot(p, plot, m)
    return m


def parity_plot(p: Dict[str, Any], path: Union[str, Path], m: Optional[Dict[str, Any]] = None) -> Path:
    """Predicted-versus-reference scatter for energies, forces and (if labelled) stresses."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = m or metrics_from_predictions(p)
    panels = [("energy", p["energy_ref"], p["energy"], "eV/atom", "energy_mae", "meV/atom"),
              ("forces", p["forces_ref"].ravel(), p["forces"].ravel(), "eV/Å", "force_mae", "eV/Å")]
    if np.isfinite(p["stress_ref"]).any():
        panels.append(("stress", p["stress_ref"].ravel(), p["stress"].ravel(), "GPa", "stress_mae", "GPa"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    for ax, (name, ref, pred, unit, key, munit) in zip(np.atleast_1d(axes), panels):
        ok = np.isfinite(ref) & np.isfinite(pred)
        ax.scatter(ref[ok], pred[ok], s=3, alpha=0.5)
        if ok.any():
            lo, hi = float(min(ref[ok].min(), pred[ok].min())), float(max(ref[ok].max(), pred[ok].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {name} ({unit})")
        ax.set_ylabel(f"predicted {name} ({unit})")
        mae = m.get(key)
        ax.set_title(f"{name}: MAE {mae:.3g} {munit}" if mae is not None else name)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_metrics(m: Dict[str, Any]) -> List[str]:
    """Human-readable lines."""
    lines = [f"structures: {m['n_structures']}   atoms: {m['n_atoms']}"]
    for key, label, unit in (("energy", "energy", "meV/atom"), ("force", "force ", "eV/Å"),
                             ("stress", "stress", "GPa")):
        if m.get(f"{key}_mae") is None:
            lines.append(f"{label}: not labelled")
        else:
            lines.append(f"{label}: MAE {m[f'{key}_mae']:.4g}  RMSE {m[f'{key}_rmse']:.4g} {unit}")
    warning = shear_order_warning(m.get("stress_shear_order"))
    if warning:
        lines.append(f"WARNING: {warning}")
    if m.get("sigma_error_spearman") is not None:
        lines.append(f"sigma : mean {m['sigma_mean']:.4g} eV/Å, rank correlation with |force error| "
                     f"{m['sigma_error_spearman']:.3f}")
    return lines
