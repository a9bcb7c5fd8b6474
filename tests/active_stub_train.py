"""A small, real stand-in for ``mlal.train`` (same API), used by the active-learning
tests only while the real trainer is not in the tree (or to keep tests fast).

``install()`` puts ``TrainConfig``, ``TrainResult`` and ``train`` into
``mlal.train`` when they are missing.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from mlal.data.graph import collate, to_graph
from mlal.deploy import export_model
from mlal.nn.model import EnsembleModel
from mlal.train.predict import predict
from mlal.train.prepare import fit_feature_normalization, fit_reference_energies, rebuild_active_set


@dataclass
class TrainConfig:
    species: List[str] = field(default_factory=list)
    cutoff: float = 5.0
    n_members: int = 4
    epochs: int = 100
    max_time: Optional[float] = None
    batch_size: int = 8
    lr: float = 5e-3
    energy_weight: float = 1.0
    force_weight: float = 10.0
    stress_weight: float = 0.0
    seed: int = 0
    latent: int = 32
    hidden: int = 32

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)


@dataclass
class TrainResult:
    model: Any
    model_path: Path
    checkpoint: Path
    metrics: Dict[str, Any]


def train(structures: Sequence, cfg: TrainConfig, out_dir, init=None, progress: bool = True) -> TrainResult:
    torch.manual_seed(cfg.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = {s: k for k, s in enumerate(cfg.species)}
    graphs = [to_graph(s, index, cfg.cutoff) for s in structures]
    model = EnsembleModel(list(cfg.species), cutoff=cfg.cutoff, n_members=cfg.n_members, seed=cfg.seed,
                          latent=cfg.latent, hidden=cfg.hidden).double()
    if init is not None:
        model.load_state_dict(torch.load(init)["state_dict"])
    else:
        fit_reference_energies(model, graphs)
        fit_feature_normalization(model, graphs)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    loss = torch.zeros(())
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(graphs))
        for start in range(0, len(order), cfg.batch_size):
            b = collate([graphs[k] for k in order[start:start + cfg.batch_size]])
            p = predict(model, b, create_graph=True, stress=False)
            n = b.n_atoms.double()
            le = (((p["energy"] - b.energy) / n) ** 2).mean()
            lf = ((p["forces"] - b.forces) ** 2).mean()
            loss = cfg.energy_weight * le + cfg.force_weight * lf
            opt.zero_grad()
            loss.backward()
            opt.step()
        if cfg.max_time is not None and time.time() - t0 > cfg.max_time:
            break
    rebuild_active_set(model, graphs)
    ckpt = out / "checkpoint.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    path = export_model(model, out / "model.pt")
    return TrainResult(model, path, ckpt, {"loss": float(loss), "epochs": epoch + 1,
                                           "seconds": time.time() - t0})


def install(force: bool = False) -> bool:
    """Put the stub into ``mlal.train`` if the real trainer is missing (or ``force``)."""
    import mlal.train as mt
    if force or not hasattr(mt, "train"):
        mt.TrainConfig, mt.TrainResult, mt.train = TrainConfig, TrainResult, train
        return True
    return False
