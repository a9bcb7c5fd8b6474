"""Relaxations with active learning: the engine of the convex-hull screening and the structure search.

Every structure is relaxed with the model, cell and positions together (``FrechetCellFilter`` +
BFGS). A relaxation whose γ passes ``gamma_break`` stops there; the configurations it met with γ
above ``gamma_select`` are candidates for labelling. After each round the most informative of
them (greedy D-optimality, :func:`mlal.active.selection.select_d_optimal`) go to the oracle, the
ensemble is retrained from the last one (warm start) on the starting data and every label, and
every relaxation starts again from its first structure with the new model, until a round ends
with none stopped or ``max_rounds`` is spent; then every structure is relaxed once more with the
last model, without a stop.

The work directory keeps ``labels.extxyz`` (every label, written atomically before the training
that uses it), ``journal.jsonl``, ``state.json`` and ``models/rNN/``; a run started again with the
same directory continues where it stopped (a round whose labels are in goes on to its training;
nothing is labelled twice). A relaxation that collapses (overlapping atoms) counts as
extrapolated while rounds remain, and at the end is reported ``failed``.

Units: eV/atom for energies, Å, eV/Å for ``fmax``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .rounds import Rounds


@dataclass
class RelaxSettings:
    """``gamma_select``/``gamma_break``: γ_max at which a relaxation frame becomes a candidate /
    the relaxation stops; ``fmax`` (eV/Å) and ``max_steps`` of each relaxation; ``labels_per_round``
    oracle calls at most per round; ``training``: TrainConfig settings of the retrainings."""

    gamma_select: float = 1.5
    gamma_break: float = 3.0
    fmax: float = 0.01
    max_steps: int = 300
    max_rounds: int = 8
    labels_per_round: int = 6
    training: Dict[str, Any] = field(default_factory=lambda: {"max_time": 60.0, "epochs": 300})


def relax(atoms: Atoms, calc, fmax: float, max_steps: int, gamma_select: Optional[float] = None,
          ) -> Dict[str, Any]:
    """Relax cell and positions of ``atoms`` (in place). Returns ``status`` ("converged",
    "max_steps" or "extrapolated": the calculator raised ``ExtrapolationError``), the energy per
    atom, γ_max of the last step (if the calculator gives it) and ``candidates``: copies of the
    frames whose γ_max passed ``gamma_select``, the breaking one last."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    from ase_calculators.mlal import ExtrapolationError
    atoms.calc = calc
    candidates: List[Atoms] = []

    def watch():
        g = calc.results.get("gamma_max") if hasattr(calc, "results") else None
        if gamma_select is not None and g is not None and g > gamma_select:
            candidates.append(atoms.copy())
            candidates[-1].info["gamma_max"] = float(g)

    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    opt.attach(watch)
    try:
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        status = "converged" if converged else "max_steps"
    except ExtrapolationError as exc:
        status = "extrapolated"
        candidates.append(atoms.copy())
        candidates[-1].info["gamma_max"] = float(exc.gamma_max)
    except ValueError as exc:         # the calculator refused the structure (overlapping atoms)
        if "overlapping" not in str(exc):
            raise
        status = "failed"
    out = {"status": status, "steps": int(opt.nsteps), "candidates": candidates[-20:]}
    if status in ("converged", "max_steps"):
        out["energy"] = float(atoms.get_potential_energy()) / len(atoms)
        out["gamma_max"] = (float(calc.results["gamma_max"]) if "gamma_max" in calc.results else None)
    return out


def warm_retrain(model_path: Union[str, Path], training: Dict[str, Any], items: Sequence,
                 out_dir: Union[str, Path]):
    """Train on ``items`` from the model at ``model_path`` (warm start, its species kept) with the
    TrainConfig settings ``training``, into ``out_dir``; returns the :class:`TrainResult`."""
    from ..deploy import load_model
    from ..train import TrainConfig, train
    species = list(load_model(model_path).species)
    cfg = TrainConfig.from_dict(dict(training, species=species), where="training")
    return train(items, cfg, out_dir, init=model_path, progress=False)


class ActiveRelaxations(Rounds):
    """Relax ``candidates`` (structures of ``elements``) with a first ``model`` trained on
    ``data`` (labelled structures; the retrainings use them and every new label), an ``oracle``
    (an ASE calculator or an mlal oracle spec, e.g. ``{"type": "emt"}``) and a ``workdir``."""

    def __init__(self, candidates: Sequence[Atoms], elements: Sequence[str], model: Union[str, Path],
                 data: Sequence, oracle, workdir: Union[str, Path], settings: Optional[RelaxSettings] = None):
        from ..data.io import as_labelled
        self.candidates = [a.copy() for a in candidates]
        for k, a in enumerate(self.candidates):
            a.info.setdefault("name", f"s{k}")
        names = [a.info["name"] for a in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidate names (info['name']) must be unique")
        self.elements = list(elements)
        self.data = as_labelled(data)
        self.oracle = oracle
        self.settings = settings or RelaxSettings()
        self._open(workdir, model)

    # ------------------------------------------------------------------ the loop
    def _calc(self, gamma_break: Optional[float]):
        from ase_calculators import MlalCalculator
        return MlalCalculator(self.model_path, gamma_break=gamma_break)

    def _relax_all(self, gamma_break: Optional[float]) -> Dict[str, Dict[str, Any]]:
        s = self.settings
        calc = self._calc(gamma_break)
        out = {}
        for a in self.candidates:
            work = a.copy()
            r = relax(work, calc, s.fmax, s.max_steps, s.gamma_select)
            r["atoms"] = work
            out[a.info["name"]] = r
        return out

    def _label(self, candidates: List[Atoms]) -> int:
        """Label the D-optimal batch of ``candidates``; returns how many labels it added."""
        from ..active.labelling import Labeller
        from ..active.selection import select_d_optimal
        from ..deploy import load_model
        s = self.settings
        n0 = len(self.labels)
        model = load_model(self.model_path)
        chosen, grades = select_d_optimal(model, candidates, s.labels_per_round)
        if not chosen:            # none beyond the active set: the most extrapolative one
            chosen = [int(np.argmax([c.info.get("gamma_max", 0.0) for c in candidates]))]
        items = [(f"r{self.round}:{k}:{candidates[k].info.get('name', '')}", candidates[k]) for k in chosen]
        results = Labeller(self.oracle, executor_kind="serial").label(items)
        for (key, atoms), res in zip(items, results):
            self._log("oracle_call", round=self.round, key=key, ok=res.ok, error=res.error,
                      seconds=round(res.seconds, 3))
            if res.ok:
                a = atoms.copy()
                a.calc = SinglePointCalculator(a, energy=res.energy, forces=res.forces, stress=res.stress)
                a.info.update(source=key, config_type="active_relaxation")
                self.labels.append(a)
        return len(self.labels) - n0

    def _retrain(self) -> None:
        out = self.root / "models" / f"r{self.round:02d}"
        res = warm_retrain(self.model_path, self.settings.training, self.data + self._labelled(), out)
        self.model_path = str(res.model_path)
        self._log("model", round=self.round, model_path=self.model_path, n_labels=len(self.labels),
                  force_mae=res.metrics.get("force_mae"))

    def _labelled(self):
        from ..data.io import as_labelled
        return as_labelled(self.labels)

    def relax_rounds(self, progress: Callable[[str], None] = print) -> Dict[str, Dict[str, Any]]:
        """The rounds of relaxation, labelling and retraining, then the final relaxation of every
        structure with the last model: ``{name: relax(...)'s result, with "atoms"}``."""
        s = self.settings
        while self.round < s.max_rounds:
            if self.stage == "relax":
                rel = self._relax_all(s.gamma_break)
                stopped = [n for n, r in rel.items() if r["status"] in ("extrapolated", "failed")]
                progress(f"round {self.round}: {len(stopped)} of {len(rel)} relaxations extrapolated "
                         f"({len(self.labels)} labels so far)")
                self._log("round", round=self.round, stopped=stopped)
                cands = [c for n in stopped for c in rel[n]["candidates"]]
                for n in stopped:
                    for c in rel[n]["candidates"]:
                        c.info["name"] = n
                if not cands:
                    break
                if self._label(cands) == 0:
                    self._log("stop", round=self.round, reason="the oracle failed on every configuration")
                    progress(f"round {self.round}: the oracle failed on every configuration; stopping")
                    break
                self._labels_in()
            self._retrain()
            self._next_round()
        return self._relax_all(None)
