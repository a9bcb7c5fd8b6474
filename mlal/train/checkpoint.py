"""Checkpoints and model construction: fresh ensembles, warm starts, ``DIR/checkpoint.pt`` and re-export.

A checkpoint is a ``torch.save`` dict (format ``mlal-checkpoint``, version 1)
with the config, the current and best weights, the optimiser and EMA state
and the training history: everything :func:`mlal.train.train` needs to resume.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from ..deploy import export_model
from ..nn.model import EnsembleModel
from .config import TrainConfig

CHECKPOINT_FORMAT = "mlal-checkpoint"
CHECKPOINT_VERSION = 1


def build_model(cfg: TrainConfig, species: List[str], cutoff: Optional[float] = None,
                r_min: Optional[float] = None) -> EnsembleModel:
    """A fresh ensemble for ``cfg`` with one seed-driven head initialisation per member.

    ``cutoff`` and ``r_min`` (Å) replace ``cfg``'s (needed when those are ``"auto"``).
    """
    if cutoff is None:
        if isinstance(cfg.cutoff, str):
            raise ValueError("cutoff 'auto' is resolved from the data: pass cutoff=")
        cutoff = cfg.cutoff
    if r_min is None:
        if isinstance(cfg.r_min, str):
            raise ValueError("r_min 'auto' is resolved from the data: pass r_min=")
        r_min = cfg.r_min
    model = EnsembleModel(list(species), cutoff=cutoff, n_members=cfg.n_members, n_basis=cfg.n_basis,
                          channels=tuple(cfg.channels), latent=cfg.latent, hidden=cfg.hidden, seed=cfg.seed,
                          latent_layers=cfg.latent_layers, r_min=r_min)
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
    return model_from_state(hp, module.state_dict())


def _is_torchscript(path: Path) -> bool:
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def model_from_state(hp: Dict[str, Any], state_dict: Dict[str, torch.Tensor]) -> EnsembleModel:
    """Eager float64 ensemble with hyperparameters ``hp`` and the weights of ``state_dict``."""
    model = EnsembleModel(hp["species"], cutoff=hp["cutoff"], n_members=hp["n_members"], n_basis=hp["n_basis"],
                          channels=tuple(hp["channels"]), latent=hp["latent"], hidden=hp["hidden"],
                          seed=hp.get("seed", 0), latent_layers=hp.get("latent_layers", 1),
                          r_min=hp.get("r_min", 0.0)).double()
    wanted = model.state_dict()     # files may also hold index constants (TorchScript keeps all buffers)
    state = {k: v.double() if v.is_floating_point() else v for k, v in state_dict.items() if k in wanted}
    # files from before latent_layers lack its (then empty) residual layers
    state.update({k: v for k, v in wanted.items() if k not in state and v.numel() == 0})
    model.load_state_dict(state)
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
    model = model_from_state(state["hyperparameters"], state["best_state"])
    return model, cfg, state


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)


def deploy_checkpoint(checkpoint: Union[str, Path], path: Union[str, Path], dtype: str = "float64") -> Path:
    """Export the best weights of a checkpoint (active set included) as ``model.pt``."""
    model, cfg, state = load_checkpoint(checkpoint)
    if not state.get("done", False):
        import warnings
        warnings.warn(f"{checkpoint}: training did not finish; the exported model has the best weights so far "
                      "but no active set (gamma is 0 everywhere until `train` completes)", stacklevel=2)
    return export_model(model, path, dtype=dtype, provenance=state.get("provenance", {"config": cfg.to_dict()}))
