"""Fitting an :class:`~mlal.nn.model.EnsembleModel` to energies, forces and stresses.

Recipe (see :class:`~mlal.train.config.TrainConfig` for every knob):

1. structures -> graphs; random train/validation split from the seed;
2. per-element reference energies by least squares, descriptor normalisation
   (skipped on warm start, so a continued model keeps its meaning);
3. Adam on ``w_E·MSE(E/atom) + w_F·MSE(F) + w_S·MSE(σ in GPa)`` averaged
   over the members (energies of every member; forces and stress of the
   ensemble mean and one rotating member, or of all members, see
   ``force_members``); labels a structure lacks (say stress on Cu) are
   simply left out of the mean; each batch is split over ``processes``
   (:mod:`mlal.train.parallel`, one per CPU core by default);
4. learning-rate schedule (cosine with warm-up, plateau or constant; :mod:`mlal.train.schedule`), an
   exponential moving average of the weights, early stopping on the
   validation loss of the ensemble mean; the best (EMA) weights are kept;
   a final stage raises the energy weight over the last ``final_fraction``
   of the run (``final_energy_weight``) and judges by that weight;
5. ``DIR/checkpoint.pt`` is written atomically after every epoch (resumable),
   with ``DIR/log.csv`` and ``DIR/learning_curve.png``;
6. the MaxVol active set is rebuilt on all training atoms and ``DIR/model.pt``
   is exported with provenance (data hashes, config, metrics).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ase import Atoms

from ..data.graph import Graph, to_graph
from ..data.io import Labelled, as_labelled, data_provenance, infer_species
from ..deploy import DTYPES, export_model
from ..nn.model import EnsembleModel
from .checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, atomic_save, build_model, load_checkpoint,
                         model_from_init, model_from_state)
from .config import TrainConfig
from .history import plot_learning_curve, write_log
from .loss import errors, validation_score
from .parallel import GradientStep
from .prepare import (auto_cutoff, auto_r_min, fit_feature_normalization, fit_reference_energies,
                      rebuild_active_set)
from . import schedule


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``model`` is the eager ensemble (float64, best weights, active set rebuilt);
    ``metrics`` holds validation (or, without a validation set, training)
    errors of the ensemble mean: ``energy_mae``/``energy_rmse`` (meV/atom),
    ``force_mae``/``force_rmse`` (eV/Å), ``stress_mae``/``stress_rmse`` (GPa),
    plus ``epochs``, ``best_epoch``, ``seconds``, ``stopped`` (why it ended) and
    ``stress_shear_order`` (:func:`mlal.evaluate.shear_order_check` on the stress-labelled
    training structures; ``None`` with fewer than 10).
    """

    model: EnsembleModel
    model_path: Path
    checkpoint: Path
    metrics: Dict[str, Any]


# ---------------------------------------------------------------------- helpers
@torch.no_grad()
def _no_grad_copy(model: EnsembleModel) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _split(n: int, cfg: TrainConfig) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, 7919])
    order = rng.permutation(n)
    n_valid = int(round(cfg.valid_fraction * n))
    if n - n_valid < 1 or n < 4:
        n_valid = 0
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def _structure_weights(types: Sequence[str], K: int, cfg: TrainConfig) -> Optional[np.ndarray]:
    """Loss weights ``[K + 1, n_train]`` of the training structures (``types``: their
    config_type) for each member and, last, the ensemble mean: bootstrap counts (members
    only) times ``cfg.config_type_weights``; None when all are 1."""
    n_train = len(types)
    w = np.ones((K + 1, n_train))
    if cfg.bootstrap:
        rng = np.random.default_rng([cfg.seed, 104729])
        w[:K] = 0.0
        for k in range(K):
            np.add.at(w[k], rng.integers(0, n_train, n_train), 1.0)
    if cfg.config_type_weights:
        w *= np.array([cfg.type_weight(t) for t in types])[None, :]
    return None if bool((w == 1.0).all()) else w


def _check_stress_labels(model: EnsembleModel, items: Sequence[Labelled], graphs: Sequence[Graph],
                         n_max: int = 200):
    """:func:`mlal.evaluate.shear_order_check` of the trained model on (up to ``n_max`` of) the
    structures with stress labels, at least 10 of them (per ``config_type``: 5); warns when their
    shear slots look permuted, in all of them or in one type. ``graphs``: the items' graphs."""
    from ..evaluate import predict_graphs, shear_order_check, shear_order_warning
    labelled = [k for k, it in enumerate(items) if it.stress is not None and np.isfinite(it.stress).all()]
    if len(labelled) < 10:
        return None
    pick = [labelled[k] for k in
            np.unique(np.linspace(0, len(labelled) - 1, min(n_max, len(labelled))).round().astype(int))]
    p = predict_graphs(model, [graphs[k] for k in pick], [items[k].config_type for k in pick])
    check = shear_order_check(p, min_structures=5)
    warning = shear_order_warning(check)
    if warning:
        import warnings
        warnings.warn(f"training data: {warning}", stacklevel=3)
    return check


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
        model = model_from_state(state["hyperparameters"], state["model_state"])
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
        cutoff = auto_cutoff(items) if cfg.cutoff == "auto" else cfg.cutoff
        model = build_model(cfg, species, cutoff=cutoff,
                            r_min=auto_r_min(items, cutoff) if cfg.r_min == "auto" else cfg.r_min)
    index = {s: k for k, s in enumerate(species)}
    graphs = [to_graph(it, index, model.cutoff) for it in items]
    trained = [cfg.type_weight(it.config_type) > 0 for it in items]   # weight 0: left out
    if state is not None and state["n_structures"] != len(graphs):
        raise ValueError(f"resume: checkpoint was trained on {state['n_structures']} structures, got {len(graphs)}")

    if state is not None:
        train_idx, valid_idx = np.asarray(state["train_idx"]), np.asarray(state["valid_idx"])
    else:
        train_idx, valid_idx = _split(len(graphs), cfg)
    train_g = [graphs[k] for k in train_idx]
    if not any(trained[k] for k in train_idx):
        raise ValueError(f"config_type_weights {cfg.config_type_weights} weigh every training structure 0")
    valid_g = [graphs[k] for k in valid_idx]
    if state is None and init is None:
        fit_reference_energies(model, [g for g, k in zip(train_g, train_idx) if trained[k]] or train_g)
        fit_feature_normalization(model, train_g, seed=cfg.seed)
    model = model.to(dtype)
    K = model.n_members
    struct_w = _structure_weights([items[k].config_type for k in train_idx], K, cfg)

    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = [p.detach().clone() for p in params] if cfg.ema_decay > 0 else None
    grad_step = GradientStep(model, train_g, cfg, dtype)
    history: List[Dict[str, Any]] = []
    epoch0, step, best_score, best_epoch, bad_epochs = 0, 0, float("inf"), -1, 0
    stage_cfg = cfg                         # the final stage's energy weight, once it starts
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
        if state.get("final_stage"):
            stage_cfg = cfg.replace(energy_weight=cfg.final_energy_weight)
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

    def save_checkpoint(done: bool, model_state, best_weights, elapsed: float, **extra) -> None:
        atomic_save({
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "done": done,
            "config": cfg.to_dict(), "hyperparameters": model.hyperparameters, "species": species,
            "model_state": model_state, "best_state": best_weights, "optimizer": opt.state_dict(),
            "ema": None if ema is None else [e.clone() for e in ema],
            "epoch": epoch, "step": step, "best_score": best_score, "best_epoch": best_epoch,
            "bad_epochs": bad_epochs, "lr_scale": lr_scale, "plateau_bad": plateau_bad,
            "plateau_best": plateau_best, "elapsed": elapsed, "history": history,
            "n_structures": len(graphs), "train_idx": train_idx.tolist(), "valid_idx": valid_idx.tolist(),
            "final_stage": stage_cfg is not cfg, "provenance": provenance, **extra,
        }, ckpt_path)

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
        # early stopping waits for the final stage: the first stage's score barely sees the energy,
        # so its patience ran out on mlearn Mo at 77% of the run (forces overfitting while the
        # validation energy still fell, 4.2 -> 2.7 meV/atom) and the stage never came
        final_pending = cfg.final_energy_weight is not None and stage_cfg is cfg
        if bad_epochs >= cfg.patience and not final_pending:
            stopped = "early_stopping"
            break
        energy_weight, final_now = schedule.energy_weight(cfg, schedule.run_progress(cfg, epoch, elapsed))
        if final_now and stage_cfg is cfg:
            # final stage: a new criterion (with the final energy weight); the best epoch so far is
            # re-scored by it, so the stage keeps its weights only if they are better by that measure
            stage_cfg = cfg.replace(energy_weight=cfg.final_energy_weight)
            rows = [r for r in history if r["epoch"] == best_epoch + 1]
            best_score = (validation_score({k: rows[0][f"valid_{k}"] for k in
                                            ("energy_mae", "force_mae", "stress_mae")}, stage_cfg)
                          if valid_g and rows else float("inf"))
            bad_epochs, plateau_best = 0, float("inf")
        if cfg.lr_schedule == "cosine":
            lr = cfg.lr * schedule.lr_factor(cfg, epoch, elapsed)
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
            w = None if struct_w is None else torch.as_tensor(struct_w[:, sel])
            member = None if cfg.force_members == "all" or K == 1 else step % K
            loss = grad_step(sel, w, member, energy_weight)
            if cfg.grad_clip and cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            if ema is not None:
                d = min(cfg.ema_decay, (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for e, p in zip(ema, params):
                        e.mul_(d).add_(p.detach(), alpha=1.0 - d)
            tot += loss
            nb += 1
            if cfg.max_time is not None and elapsed0 + time.time() - t_start >= cfg.max_time:
                timed_out = True
                break
        train_loss = tot / max(nb, 1)
        saved = swap_in_ema()
        model.eval()
        if valid_g:
            vm = errors(model, valid_g, dtype=dtype)
            score = validation_score(vm, stage_cfg)
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
               "valid_stress_mae": vm["stress_mae"], "best": int(improved), "energy_weight": energy_weight}
        history.append(row)
        save_checkpoint(False, _no_grad_copy(model), best_state, row["seconds"])
        write_log(out, history)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss={train_loss:.3g} vE={vm['energy_mae']:.3g}meV/at "
                                f"vF={vm['force_mae']:.3g}eV/Å")
        if timed_out:
            stopped = "max_time"
            break
    grad_step.close()
    if bar is not None:
        bar.close()

    # best weights, in float64, active set on every training atom
    raw_state = _no_grad_copy(model)       # where the optimiser is (for resuming)
    best = copy.deepcopy(model).double()
    best.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in best_state.items()})
    best.eval()
    rebuild_active_set(best, [g for g, t in zip(graphs, trained) if t] or graphs)
    metrics: Dict[str, Any] = {}
    if valid_g:
        vm = errors(best, valid_g)
        metrics.update(vm)
        metrics["evaluated_on"] = "valid"
    else:
        tm = errors(best, train_g)
        metrics.update(tm)
        metrics["evaluated_on"] = "train"
    metrics["stress_shear_order"] = _check_stress_labels(best, items, graphs)
    seconds = elapsed0 + time.time() - t_start
    metrics.update({"epochs": epoch, "best_epoch": best_epoch + 1, "seconds": seconds, "stopped": stopped,
                    "n_train": len(train_g), "n_valid": len(valid_g)})
    provenance["metrics"] = {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}
    final_state = _no_grad_copy(best)
    save_checkpoint(True, raw_state, final_state, seconds, metrics=metrics)
    write_log(out, history)
    plot_learning_curve(history, out / "learning_curve.png")
    model_path = export_model(best, out / "model.pt", dtype=cfg.export_dtype, provenance=provenance)
    with open(out / "metrics.json", "w") as f:
        json.dump(provenance["metrics"], f, indent=1)
    return TrainResult(model=best, model_path=model_path, checkpoint=ckpt_path, metrics=metrics)


