"""Fitting an :class:`~mlal.nn.model.EnsembleModel` to energies, forces and stresses.

Recipe (see :class:`~mlal.train.config.TrainConfig` for every knob):

1. structures -> graphs; random train/validation split from the seed;
2. per-element reference energies by least squares, descriptor normalisation
   (skipped on warm start, so a continued model keeps its meaning);
3. Adam on ``w_E·MSE(E/atom) + w_F·MSE(F) + w_S·MSE(σ in GPa)`` averaged
   over the members (energies of every member; forces and stress of the
   ensemble mean and one rotating member, or of all members, see
   ``force_members``); labels a structure lacks (say stress on Cu) are
   simply left out of the mean;
4. learning-rate schedule (cosine with warm-up, plateau or constant), an
   exponential moving average of the weights, early stopping on the
   validation loss of the ensemble mean; the best (EMA) weights are kept;
5. ``DIR/checkpoint.pt`` is written atomically after every epoch (resumable),
   with ``DIR/log.csv`` and ``DIR/learning_curve.png``;
6. the MaxVol active set is rebuilt on all training atoms and ``DIR/model.pt``
   is exported with provenance (data hashes, config, metrics).
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers

from ..data.graph import Batch, Graph, collate, to_graph
from ..data.io import Labelled, _labels, check_structure, file_hash
from ..deploy import DTYPES, export_model
from ..deploy.host import forces_from_edges
from ..nn.model import EnsembleModel
from .config import TrainConfig
from .predict import predict
from .prepare import fit_feature_normalization, fit_reference_energies, rebuild_active_set

GPA = 160.21766208           # eV/Å³ -> GPa
CHECKPOINT_FORMAT = "mlal-checkpoint"
CHECKPOINT_VERSION = 1
_HEADS = ("head_w1", "head_b1", "head_w2", "head_b2")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` is the eager ensemble (float64, best weights, active set rebuilt);
    ``metrics`` holds validation (or, without a validation set, training)
    errors of the ensemble mean: ``energy_mae``/``energy_rmse`` (meV/atom),
    ``force_mae``/``force_rmse`` (eV/Å), ``stress_mae``/``stress_rmse`` (GPa),
    plus ``epochs``, ``best_epoch``, ``seconds`` and ``stopped`` (why it ended).
    """

    model: EnsembleModel
    model_path: Path
    checkpoint: Path
    metrics: Dict[str, Any]


# ---------------------------------------------------------------------- data
def as_labelled(structures: Sequence[Union[Labelled, Atoms]]) -> List[Labelled]:
    """Accept :class:`Labelled` items or labelled ``ase.Atoms`` (calculator results or info/arrays)."""
    out: List[Labelled] = []
    for k, s in enumerate(structures):
        if isinstance(s, Labelled):
            out.append(s)
        elif isinstance(s, Atoms):
            energy, forces, stress = _labels(s)
            item = Labelled(atoms=s, energy=None if energy is None else float(energy),
                            forces=None if forces is None else np.array(forces, dtype=float),
                            stress=stress, source=str(s.info.get("source", f"atoms:{k}")),
                            config_type=str(s.info.get("config_type", "")))
            check_structure(item)
            out.append(item)
        else:
            raise TypeError(f"structure {k}: expected mlal Labelled or ase.Atoms, got {type(s).__name__}")
    return out


def infer_species(items: Sequence[Labelled]) -> List[str]:
    """Elements present in the data, ordered by atomic number."""
    symbols = set()
    for it in items:
        symbols.update(it.atoms.get_chemical_symbols())
    return sorted(symbols, key=lambda s: atomic_numbers.get(s, 0))


def data_provenance(items: Sequence[Labelled]) -> Dict[str, Any]:
    """SHA-256 of every data file the structures came from, and counts."""
    files: Dict[str, int] = {}
    for it in items:
        path = it.source.rsplit(":", 1)[0] if ":" in it.source else it.source
        files[path] = files.get(path, 0) + 1
    hashes = {}
    for path, count in files.items():
        hashes[path] = {"frames": count, "sha256": file_hash(path) if os.path.isfile(path) else None}
    return {"files": hashes, "n_structures": len(items), "n_atoms": int(sum(len(it.atoms) for it in items))}


# ---------------------------------------------------------------------- model
def build_model(cfg: TrainConfig, species: List[str]) -> EnsembleModel:
    """A fresh ensemble for ``cfg`` with one seed-driven head initialisation per member."""
    model = EnsembleModel(list(species), cutoff=cfg.cutoff, n_members=cfg.n_members, n_basis=cfg.n_basis,
                          channels=tuple(cfg.channels), latent=cfg.latent, hidden=cfg.hidden, seed=cfg.seed)
    H, Hd = model.latent_dim, model.hidden_dim
    with torch.no_grad():
        for k in range(model.n_members):
            gen = torch.Generator().manual_seed(1_000_003 * (cfg.seed + 1) + k)
            model.head_w1[k].copy_(torch.randn(H, Hd, generator=gen) / math.sqrt(H))
            model.head_w2[k].copy_(torch.randn(Hd, 1, generator=gen) / math.sqrt(Hd))
            model.head_b1[k].zero_()
            model.head_b2[k].zero_()
    return model


def model_from_init(init: Union[str, Path, EnsembleModel]) -> EnsembleModel:
    """Eager float64 copy of a warm-start source: a model, a checkpoint or an exported ``model.pt``."""
    if isinstance(init, EnsembleModel):
        return copy.deepcopy(init).double()
    path = Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"init: no such checkpoint or model file: {path}")
    if not _is_torchscript(path):
        model, _, _ = load_checkpoint(path)
        return model
    from ..deploy import load_model, model_metadata
    module = load_model(path)
    hp = dict(model_metadata(module)["hyperparameters"])
    return _model_from_state(hp, module.state_dict())


def _is_torchscript(path: Path) -> bool:
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def _model_from_state(hp: Dict[str, Any], state_dict: Dict[str, torch.Tensor]) -> EnsembleModel:
    model = EnsembleModel(hp["species"], cutoff=hp["cutoff"], n_members=hp["n_members"], n_basis=hp["n_basis"],
                          channels=tuple(hp["channels"]), latent=hp["latent"], hidden=hp["hidden"],
                          seed=hp.get("seed", 0)).double()
    wanted = model.state_dict().keys()     # files may also hold index constants (TorchScript keeps all buffers)
    model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state_dict.items()
                           if k in wanted})
    return model


def load_checkpoint(path: Union[str, Path]) -> Tuple[EnsembleModel, TrainConfig, Dict[str, Any]]:
    """``(model, config, state)`` from ``DIR/checkpoint.pt``; the model holds the best weights (float64)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an mlal training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {state.get('version')}, this mlal reads {CHECKPOINT_VERSION}")
    cfg = TrainConfig.from_dict(state["config"], where=str(path))
    model = _model_from_state(state["hyperparameters"], state["best_state"])
    return model, cfg, state


# ---------------------------------------------------------------------- loss
def batch_loss(model: EnsembleModel, b: Batch, cfg: TrainConfig,
               weights: Optional[torch.Tensor] = None,
               member: Optional[int] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted MSE loss averaged over members. ``weights`` [K, G] are bootstrap counts (None: all 1).

    Energies are fitted for every member (they cost no extra backward pass).
    Forces and stress: with ``member=None`` every member's (K backward passes
    through the descriptor); with ``member=j`` the ensemble mean's and member
    ``j``'s, half each (two passes: the trainer rotates ``j`` over the steps).
    """
    e_mask = ~torch.isnan(b.energy)
    f_mask = ~torch.isnan(b.forces[:, 0])
    s_mask = ~torch.isnan(b.stress[:, 0]) & (b.volume > 0)
    want_stress = cfg.stress_weight > 0 and bool(s_mask.any())
    p = predict(model, b, create_graph=True, stress=want_stress, members=True if member is None else member)
    K = p["member_energy"].shape[0]
    dtype = p["member_energy"].dtype
    w = torch.ones(K, b.n_graphs, dtype=dtype) if weights is None else weights.to(dtype)
    wd = w if member is None else torch.stack([torch.ones_like(w[0]), w[member]])   # rows of p["forces"]
    n = b.n_atoms.to(dtype)
    loss = torch.zeros((), dtype=dtype)
    parts: Dict[str, float] = {}
    if cfg.energy_weight > 0 and bool(e_mask.any()):
        de = (p["member_energy"] - torch.nan_to_num(b.energy)) / n
        we = w * e_mask.to(dtype)
        le = (we * de * de).sum() / we.sum().clamp_min(1.0)
        loss = loss + cfg.energy_weight * le
        parts["e"] = float(le.detach())
    if cfg.force_weight > 0 and bool(f_mask.any()):
        df = p["forces"] - torch.nan_to_num(b.forces)
        wf = wd[:, b.graph_of_atom] * f_mask.to(dtype)
        lf = (wf * (df * df).sum(2)).sum() / (3.0 * wf.sum().clamp_min(1.0))
        loss = loss + cfg.force_weight * lf
        parts["f"] = float(lf.detach())
    if want_stress:
        ds = (p["stress"] - torch.nan_to_num(b.stress)) * GPA
        ws = wd * s_mask.to(dtype)
        ls = (ws * (ds * ds).sum(2)).sum() / (6.0 * ws.sum().clamp_min(1.0))
        loss = loss + cfg.stress_weight * ls
        parts["s"] = float(ls.detach())
    return loss, parts


@torch.no_grad()
def _no_grad_copy(model: EnsembleModel) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def errors(model, graphs: Sequence[Graph], batch_size: int = 16,
           dtype: torch.dtype = torch.float64) -> Dict[str, float]:
    """Errors of the ensemble-mean prediction of an eager model on labelled graphs.

    Energy in meV/atom, forces in eV/Å (per component), stress in GPa (per
    Voigt component); NaN where the data has no such label. Also ``loss_*``
    mean squared errors in the loss units.
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
        out[f"loss_{key}"] = acc[f"{k}_sq"] / cnt if cnt else nan
    out["n_atoms"] = int(acc["atoms"])
    return out


def validation_score(m: Dict[str, float], cfg: TrainConfig) -> float:
    """The early-stopping criterion: the loss of the ensemble mean (labels present only)."""
    score = 0.0
    for key, w in (("energy", cfg.energy_weight), ("force", cfg.force_weight), ("stress", cfg.stress_weight)):
        v = m.get(f"loss_{key}", float("nan"))
        if w > 0 and v == v:
            score += w * v
    return score


# ---------------------------------------------------------------------- helpers
def _split(n: int, cfg: TrainConfig) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, 7919])
    order = rng.permutation(n)
    n_valid = int(round(cfg.valid_fraction * n))
    if n - n_valid < 1 or n < 4:
        n_valid = 0
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _bootstrap_weights(n_train: int, K: int, cfg: TrainConfig) -> Optional[np.ndarray]:
    if not cfg.bootstrap:
        return None
    rng = np.random.default_rng([cfg.seed, 104729])
    w = np.zeros((K, n_train))
    for k in range(K):
        np.add.at(w[k], rng.integers(0, n_train, n_train), 1.0)
    return w


def _lr_factor(cfg: TrainConfig, epoch: int, elapsed: float) -> float:
    """Cosine factor at the start of ``epoch`` (0-based); with ``max_time`` also annealed by wall time."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    progress = (epoch - cfg.warmup_epochs) / span
    if cfg.max_time:
        # quantised so that short runs (far from the time limit) stay bit-reproducible
        progress = max(progress, math.floor(100.0 * elapsed / cfg.max_time) / 100.0)
    progress = min(progress, 1.0)
    lo = cfg.lr_min_factor
    return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)


_LOG_FIELDS = ["epoch", "seconds", "lr", "train_loss", "valid_loss", "valid_energy_mae", "valid_force_mae",
               "valid_stress_mae", "best"]


def _write_log(out: Path, history: List[Dict[str, Any]]) -> None:
    tmp = out / "log.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, out / "log.csv")


def plot_learning_curve(history: List[Dict[str, Any]], path: Path) -> Optional[Path]:
    """Training/validation loss and validation errors versus epoch (PNG)."""
    if not history:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:   # plotting is a convenience, never a failure
        return None
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].semilogy(ep, [h["train_loss"] for h in history], label="train")
    axes[0].semilogy(ep, [h["valid_loss"] for h in history], label="valid")
    axes[0].set_xlabel("epoch"); axes[0].set_ylabel("loss"); axes[0].legend()
    axes[1].semilogy(ep, [h["valid_energy_mae"] for h in history])
    axes[1].set_xlabel("epoch"); axes[1].set_ylabel("valid energy MAE (meV/atom)")
    axes[2].semilogy(ep, [h["valid_force_mae"] for h in history])
    axes[2].set_xlabel("epoch"); axes[2].set_ylabel("valid force MAE (eV/Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- training
def train(structures: Sequence[Union[Labelled, Atoms]], cfg: TrainConfig, out_dir: Union[str, Path],
          init: Optional[Union[str, Path, EnsembleModel]] = None, progress: bool = True,
          resume: bool = False) -> TrainResult:
    """Train an ensemble and export it; see the module docstring for the recipe.

    Args:
        structures: labelled structures (:class:`~mlal.data.io.Labelled` or ``ase.Atoms``).
        cfg: settings; ``cfg.species`` empty means "the elements in the data".
        out_dir: ``DIR`` for ``checkpoint.pt``, ``model.pt``, ``log.csv``, ``learning_curve.png``.
        init: warm start from a model, checkpoint or exported model (same species and
            architecture; reference energies and normalisation are kept).
        progress: show a tqdm progress bar.
        resume: continue from ``DIR/checkpoint.pt`` if it exists (same data and settings).
    """
    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    items = as_labelled(structures)
    if not items:
        raise ValueError("no training structures")
    dtype = DTYPES[cfg.dtype]

    state: Optional[Dict[str, Any]] = None
    if resume and ckpt_path.is_file():
        _, _, state = load_checkpoint(ckpt_path)
    if state is not None:
        model = _model_from_state(state["hyperparameters"], state["model_state"])
        species = list(model.species)
    elif init is not None:
        model = model_from_init(init)
        species = list(model.species)
        if cfg.species and list(cfg.species) != species:
            raise ValueError(f"init model species {species} differ from the configured species {cfg.species}")
        missing = sorted(set(infer_species(items)) - set(species))
        if missing:
            raise ValueError(f"warm start: the data has element(s) {missing} the init model lacks {species}")
    else:
        species = list(cfg.species) or infer_species(items)
        model = build_model(cfg, species)
    index = {s: k for k, s in enumerate(species)}
    graphs = [to_graph(it, index, model.cutoff) for it in items]
    if state is not None and state["n_structures"] != len(graphs):
        raise ValueError(f"resume: checkpoint was trained on {state['n_structures']} structures, got {len(graphs)}")

    if state is not None:
        train_idx, valid_idx = np.asarray(state["train_idx"]), np.asarray(state["valid_idx"])
    else:
        train_idx, valid_idx = _split(len(graphs), cfg)
    train_g = [graphs[k] for k in train_idx]
    valid_g = [graphs[k] for k in valid_idx]
    if state is None and init is None:
        fit_reference_energies(model, train_g)
        fit_feature_normalization(model, train_g, seed=cfg.seed)
    model = model.to(dtype)
    K = model.n_members
    boot = _bootstrap_weights(len(train_g), K, cfg)

    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = [p.detach().clone() for p in params] if cfg.ema_decay > 0 else None
    history: List[Dict[str, Any]] = []
    epoch0, step, best_score, best_epoch, bad_epochs = 0, 0, float("inf"), -1, 0
    lr_scale, plateau_bad, plateau_best = 1.0, 0, float("inf")
    elapsed0 = 0.0
    best_state = _no_grad_copy(model)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema = [t.to(dtype) for t in state["ema"]]
        history = list(state["history"])
        epoch0, step = int(state["epoch"]), int(state["step"])
        best_score, best_epoch, bad_epochs = float(state["best_score"]), int(state["best_epoch"]), int(state["bad_epochs"])
        lr_scale, plateau_bad, plateau_best = (float(state["lr_scale"]), int(state["plateau_bad"]),
                                               float(state["plateau_best"]))
        elapsed0 = float(state["elapsed"])
        best_state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state["best_state"].items()}
    provenance = {"data": data_provenance(items), "config": cfg.to_dict(),
                  "init": None if init is None or isinstance(init, EnsembleModel) else str(init),
                  "warm_start": init is not None}

    def swap_in_ema():
        if ema is None:
            return None
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
        return saved

    def swap_back(saved):
        if saved is None:
            return
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.epochs, initial=min(epoch0, cfg.epochs), desc="train", unit="epoch",
                   dynamic_ncols=True)
    stopped = "epochs"
    epoch = epoch0
    while epoch < cfg.epochs:
        elapsed = elapsed0 + time.time() - t_start
        if cfg.max_time is not None and elapsed >= cfg.max_time:
            stopped = "max_time"
            break
        if bad_epochs >= cfg.patience:
            stopped = "early_stopping"
            break
        if cfg.lr_schedule == "cosine":
            lr = cfg.lr * _lr_factor(cfg, epoch, elapsed)
        elif cfg.lr_schedule == "plateau":
            lr = cfg.lr * lr_scale * (min(1.0, (epoch + 1) / (cfg.warmup_epochs + 1)) if cfg.warmup_epochs else 1.0)
        else:
            lr = cfg.lr
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = np.random.default_rng([cfg.seed, 31, epoch]).permutation(len(train_g))
        tot, nb = 0.0, 0
        timed_out = False
        for start in range(0, len(order), cfg.batch_size):
            sel = order[start:start + cfg.batch_size]
            b = collate([train_g[k] for k in sel], dtype=dtype)
            w = None if boot is None else torch.as_tensor(boot[:, sel])
            member = None if cfg.force_members == "all" or K == 1 else step % K
            loss, _ = batch_loss(model, b, cfg, w, member)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip and cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            if ema is not None:
                d = min(cfg.ema_decay, (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for e, p in zip(ema, params):
                        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
            tot += float(loss.detach())
            nb += 1
            if cfg.max_time is not None and elapsed0 + time.time() - t_start >= cfg.max_time:
                timed_out = True
                break
        train_loss = tot / max(nb, 1)
        saved = swap_in_ema()
        model.eval()
        if valid_g:
            vm = errors(model, valid_g, dtype=dtype)
            score = validation_score(vm, cfg)
        else:
            vm = {"energy_mae": float("nan"), "force_mae": float("nan"), "stress_mae": float("nan")}
            score = train_loss
        improved = score < best_score
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            best_state = _no_grad_copy(model)
        else:
            bad_epochs += 1
        swap_back(saved)
        if cfg.lr_schedule == "plateau":
            if score < plateau_best * (1 - 1e-4):
                plateau_best, plateau_bad = score, 0
            else:
                plateau_bad += 1
                if plateau_bad > cfg.lr_patience:
                    lr_scale *= cfg.lr_factor
                    plateau_bad = 0
        epoch += 1
        row = {"epoch": epoch, "seconds": elapsed0 + time.time() - t_start, "lr": lr, "train_loss": train_loss,
               "valid_loss": score, "valid_energy_mae": vm["energy_mae"], "valid_force_mae": vm["force_mae"],
               "valid_stress_mae": vm["stress_mae"], "best": int(improved)}
        history.append(row)
        _atomic_save({
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "done": False,
            "config": cfg.to_dict(), "hyperparameters": model.hyperparameters, "species": species,
            "model_state": _no_grad_copy(model), "best_state": best_state, "optimizer": opt.state_dict(),
            "ema": None if ema is None else [e.clone() for e in ema],
            "epoch": epoch, "step": step, "best_score": best_score, "best_epoch": best_epoch,
            "bad_epochs": bad_epochs, "lr_scale": lr_scale, "plateau_bad": plateau_bad,
            "plateau_best": plateau_best, "elapsed": row["seconds"], "history": history,
            "n_structures": len(graphs), "train_idx": train_idx.tolist(), "valid_idx": valid_idx.tolist(),
            "provenance": provenance,
        }, ckpt_path)
        _write_log(out, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss={train_loss:.3g} vE={vm['energy_mae']:.3g}meV/at "
                                f"vF={vm['force_mae']:.3g}eV/Å")
        if timed_out:
            stopped = "max_time"
            break
    if bar is not None:
        bar.close()

    # best weights, in float64, active set on every training atom
    raw_state = _no_grad_copy(model)       # where the optimiser is (for resuming)
    best = copy.deepcopy(model).double()
    best.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in best_state.items()})
    best.eval()
    rebuild_active_set(best, graphs)
    metrics: Dict[str, Any] = {}
    if valid_g:
        vm = errors(best, valid_g)
        metrics.update({k: v for k, v in vm.items() if not k.startswith("loss_")})
        metrics["evaluated_on"] = "valid"
    else:
        tm = errors(best, train_g)
        metrics.update({k: v for k, v in tm.items() if not k.startswith("loss_")})
        metrics["evaluated_on"] = "train"
    seconds = elapsed0 + time.time() - t_start
    metrics.update({"epochs": epoch, "best_epoch": best_epoch + 1, "seconds": seconds, "stopped": stopped,
                    "n_train": len(train_g), "n_valid": len(valid_g)})
    provenance["metrics"] = {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}
    final_state = _no_grad_copy(best)
    _atomic_save({
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "done": True,
        "config": cfg.to_dict(), "hyperparameters": best.hyperparameters, "species": species,
        "model_state": raw_state,
        "best_state": final_state, "optimizer": opt.state_dict(),
        "ema": None if ema is None else [e.clone() for e in ema],
        "epoch": epoch, "step": step, "best_score": best_score, "best_epoch": best_epoch,
        "bad_epochs": bad_epochs, "lr_scale": lr_scale, "plateau_bad": plateau_bad, "plateau_best": plateau_best,
        "elapsed": seconds, "history": history, "n_structures": len(graphs),
        "train_idx": train_idx.tolist(), "valid_idx": valid_idx.tolist(), "provenance": provenance,
        "metrics": metrics,
    }, ckpt_path)
    _write_log(out, history)
    plot_learning_curve(history, out / "learning_curve.png")
    model_path = export_model(best, out / "model.pt", dtype=cfg.export_dtype, provenance=provenance)
    with open(out / "metrics.json", "w") as f:
        json.dump(provenance["metrics"], f, indent=1)
    return TrainResult(model=best, model_path=model_path, checkpoint=ckpt_path, metrics=metrics)


def deploy_checkpoint(checkpoint: Union[str, Path], path: Union[str, Path], dtype: str = "float64") -> Path:
    """Export the best weights of a checkpoint (active set included) as ``model.pt``."""
    model, cfg, state = load_checkpoint(checkpoint)
    if not state.get("done", False):
        import warnings
        warnings.warn(f"{checkpoint}: training did not finish; the exported model has the best weights so far "
                      "but no active set (gamma is 0 everywhere until `train` completes)", stacklevel=2)
    return export_model(model, path, dtype=dtype, provenance=state.get("provenance", {"config": cfg.to_dict()}))
