"""Training settings: one dataclass, readable from YAML, every field with a working default.

Units: cutoff in Å, times in seconds, loss weights apply to mean squared errors of
the energy per atom (eV/atom)², the force components (eV/Å)² and the stress
components (GPa)².
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

LR_SCHEDULES = ("cosine", "plateau", "constant")
FORCE_MEMBERS = ("rotating", "all")
DTYPES = ("float64", "float32")


@dataclass
class TrainConfig:
    """Everything :func:`mlal.train.train` needs besides the data.

    Model: ``species`` (empty = inferred from the data, ordered by atomic
    number), ``cutoff`` (Å; ``"auto"``: from the data's atomic density,
    :func:`mlal.train.prepare.auto_cutoff`), ``n_members`` (K), ``n_basis``, ``r_min`` (Å;
    ``"auto"``: 0.3 Å under the data's shortest distance, :func:`mlal.train.prepare.auto_r_min`),
    ``channels``, ``latent``, ``hidden``, ``latent_layers`` (see :class:`mlal.nn.model.EnsembleModel`).

    Optimisation: Adam with ``lr``; ``lr_schedule`` ``"cosine"`` (over
    ``epochs``, down to ``lr * lr_min_factor``), ``"plateau"`` (multiply by
    ``lr_factor`` after ``lr_patience`` epochs without a better validation
    score) or ``"constant"``; ``ema_decay`` keeps an exponential moving
    average of the weights (validated, kept and exported; 0 disables);
    early stopping after ``patience`` epochs without improvement (with a final
    stage, only within it: the first stage's score barely weighs the energy); ``max_time``
    (s) stops and keeps the best weights. ``processes`` split each batch's
    structures over that many processes (0: one per CPU core, at most
    ``batch_size``; :mod:`mlal.train.parallel`).

    Structure weights: ``config_type_weights`` (``{config_type: weight}``, as in MACE;
    types not named weigh 1) multiply every label of a training structure of that
    ``config_type`` (``atoms.info["config_type"]``) in the loss: its energy, forces and
    stress. Weight 0 leaves a type out of training altogether: also out of the fit of the
    reference energies and of the γ active set. Validation errors and the early-stopping
    score stay unweighted.

    Ensemble: each member's head has its own seed-driven initialisation; with
    ``bootstrap`` each member also sees its own bootstrap resample of the
    training structures (the shared trunk sees all of them). Every member's
    energy is fitted at every step; forces and stress cost one backward pass
    through the descriptor per differentiated energy, so ``force_members``
    ``"rotating"`` (default) fits the ensemble mean's and one member's
    (rotating with the step) and ``"all"`` fits all K members' at every step
    (about K/2 times slower per step).

    Loss weights: ``energy_weight`` 30 on (eV/atom)² against ``force_weight`` 1 on
    (eV/Å)². Measured on mlearn Cu (5 members, 10 min, one core, the 10% hold-out):
    1000 gave 1.11 meV/atom and 0.041 eV/Å, 100 gave 0.45 and 0.019, 30 gave 0.48
    and 0.016, 10 gave 0.55 and 0.013: a heavy energy term (noisy per-structure
    gradients) slows the force fit and, within the time budget, the energy fit too.
    ``final_energy_weight`` (default 1000; None: off) is a second stage, as in MACE: over the
    last ``final_fraction`` of the run (by the cosine schedule's progress: epochs
    or ``max_time``, whichever is further) the energy weight rises geometrically
    to it within the stage's first half, and the best weights are chosen by the
    validation score with that weight (the first stage's best, re-scored, stays
    unless the stage beats it).
    ``force_huber_delta`` (eV/Å; None: plain squares) makes the force term a Huber
    loss: a force component's residual beyond it counts linearly, not squared, so
    the few high-force frames (hot MD, Mo's 1 eV/atom AIMD frames with |F| up to
    14 eV/Å) no longer make nearly all of the force gradient.
    """

    species: List[str] = field(default_factory=list)
    cutoff: Union[float, str] = "auto"
    n_members: int = 5
    n_basis: int = 10
    r_min: Union[float, str] = 0.0
    channels: List[int] = field(default_factory=lambda: [16, 8, 8, 4])
    latent: int = 64
    hidden: int = 64
    latent_layers: int = 1
    epochs: int = 1000
    batch_size: int = 4
    lr: float = 3e-3
    lr_schedule: str = "cosine"
    lr_min_factor: float = 0.01
    lr_factor: float = 0.5
    lr_patience: int = 10
    warmup_epochs: int = 2
    ema_decay: float = 0.99
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    energy_weight: float = 30.0
    force_weight: float = 1.0
    force_huber_delta: Optional[float] = None
    stress_weight: float = 0.01
    final_energy_weight: Optional[float] = 1000.0
    final_fraction: float = 0.2
    valid_fraction: float = 0.1
    patience: int = 300
    bootstrap: bool = False
    config_type_weights: Dict[str, float] = field(default_factory=dict)
    force_members: str = "rotating"
    seed: int = 0
    max_time: Optional[float] = 900.0
    processes: int = 0
    dtype: str = "float32"
    export_dtype: str = "float64"

    def __post_init__(self) -> None:
        self.channels = [int(c) for c in self.channels]
        self.species = [str(s) for s in self.species]
        if not isinstance(self.cutoff, str):
            self.cutoff = float(self.cutoff)
        if not isinstance(self.r_min, str):
            self.r_min = float(self.r_min)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if len(self.channels) not in (4, 5) or min(self.channels) < 1:
            raise ValueError(f"channels must be 4 or 5 positive integers (moment ranks 0..3, or 0..4), "
                             f"got {self.channels}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.force_members not in FORCE_MEMBERS:
            raise ValueError(f"force_members must be one of {FORCE_MEMBERS}, got {self.force_members!r}")
        for name in ("dtype", "export_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name} must be one of {DTYPES}, got {getattr(self, name)!r}")
        if isinstance(self.cutoff, str) and self.cutoff != "auto":
            raise ValueError(f"cutoff must be a distance in Å or 'auto', got {self.cutoff!r}")
        if not isinstance(self.cutoff, str) and self.cutoff <= 0:
            raise ValueError(f"cutoff must be > 0 Å, got {self.cutoff}")
        if isinstance(self.r_min, str) and self.r_min != "auto":
            raise ValueError(f"r_min must be a distance in Å or 'auto', got {self.r_min!r}")
        if not isinstance(self.r_min, str) and (
                not self.r_min >= 0 or (not isinstance(self.cutoff, str) and self.r_min >= self.cutoff)):
            raise ValueError(f"r_min must be in [0, cutoff) Å, got {self.r_min}")
        if not isinstance(self.config_type_weights, dict):
            raise ValueError(f"config_type_weights must be a mapping of config_type to weight, "
                             f"got {self.config_type_weights!r}")
        for key, w in self.config_type_weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                raise ValueError(f"config_type_weights[{key!r}] must be a number >= 0, got {w!r}")
        if self.processes < 0:
            raise ValueError(f"processes must be >= 0 (0: one per CPU core), got {self.processes}")
        for name in ("n_members", "n_basis", "latent", "hidden", "latent_layers", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 < self.final_fraction < 1.0:
            raise ValueError(f"final_fraction must be in (0, 1), got {self.final_fraction}")
        if self.force_huber_delta is not None and not self.force_huber_delta > 0:
            raise ValueError(f"force_huber_delta must be > 0 eV/Å or None, got {self.force_huber_delta}")
        for name in ("energy_weight", "force_weight", "stress_weight", "final_energy_weight"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def type_weight(self, config_type: str) -> float:
        """The loss weight of a structure of ``config_type`` (``config_type_weights``; 1 if not named)."""
        return float(self.config_type_weights.get(config_type, 1.0))

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: Dict[str, Any], where: str = "config") -> "TrainConfig":
        """Build from a mapping; an unknown key raises ``ValueError`` naming it."""
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping of TrainConfig settings, got {type(d).__name__}")
        names = cls.field_names()
        for key in d:
            if key not in names:
                import difflib
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{where}: unknown training setting {key!r}{hint}; "
                                 f"valid settings: {', '.join(names)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> "TrainConfig":
        """Read a YAML file of settings (a flat mapping, or one under a ``train:`` key)."""
        path = Path(path)
        with open(path) as f:
            d = yaml.safe_load(f)
        if isinstance(d, dict) and set(d) == {"train"}:
            d = d["train"]
        return cls.from_dict(d, where=str(path))

    def to_yaml(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        with open(path, "w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)
        return path

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
