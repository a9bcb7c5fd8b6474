"""Alloy convex-hull screening with active learning (after Gubaev, Podryabinkin, Hart & Shapeev, 2019).

Every candidate (:func:`mlal.workflows.enumeration.enumerate_structures`) is relaxed with the
model, cell and positions together (``FrechetCellFilter`` + BFGS). A relaxation whose γ
passes ``gamma_break`` stops there; the configurations it met with γ above ``gamma_select``
are candidates for labelling. After each round the most informative of them (greedy
D-optimality, :func:`mlal.active.selection.select_d_optimal`) go to the oracle, the ensemble is
retrained from the last one (warm start) on all labels, and the stopped relaxations start
again. When a round ends with none stopped (or ``max_rounds`` is spent), the formation
energies give the lower convex hull, and the structures on it or within ``verify_within``
of it are relaxed with the oracle itself, which says whether the model's hull is the
oracle's.

The work directory keeps ``labels.extxyz`` (every label, written atomically before the training
that uses it), ``journal.jsonl``, ``state.json``, ``models/rNN/`` and, at the end, ``hull.json``
and ``hull.png``; a run started again with the same directory continues where it stopped (a
round whose labels are in goes on to its training; nothing is labelled twice). A relaxation
that collapses (overlapping atoms) counts as extrapolated while rounds remain, and at the end
keeps its structure out of the hull (``failed``).

Units: eV/atom for energies, Å, eV/Å for ``fmax``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .enumeration import energy_above_hull, formation_energies, lower_hull


@dataclass
class HullSettings:
    """``gamma_select``/``gamma_break``: γ_max at which a relaxation frame becomes a candidate /
    the relaxation stops; ``fmax`` (eV/Å) and ``max_steps`` of each relaxation; ``labels_per_round``
    oracle calls at most per round; ``verify_within`` (eV/atom above the model's hull) for the
    oracle's check; ``training``: TrainConfig settings of the retrainings."""

    gamma_select: float = 1.5
    gamma_break: float = 3.0
    fmax: float = 0.01
    max_steps: int = 300
    max_rounds: int = 8
    labels_per_round: int = 6
    verify_within: float = 0.010
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


class HullScreening:
    """One screening: ``candidates`` of elements ``elements`` (two), a first ``model`` trained on
    ``data`` (labelled structures; the retrainings use them and every new label), an ``oracle``
    (an ASE calculator or an mlal oracle spec, e.g. ``{"type": "emt"}``) and a ``workdir``."""

    def __init__(self, candidates: Sequence[Atoms], elements: Sequence[str], model: Union[str, Path],
                 data: Sequence, oracle, workdir: Union[str, Path], settings: Optional[HullSettings] = None):
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
        self.settings = settings or HullSettings()
        self.root = Path(workdir)
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        self.round = state.get("round", 0)
        self.stage = state.get("stage", "relax")     # "train": this round's labels are in, not yet trained on
        self.model_path = state.get("model_path", str(model))
        self.labels = self._read_labels()

    # ------------------------------------------------------------------ storage
    def _read_state(self) -> Dict[str, Any]:
        p = self.root / "state.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def _read_labels(self) -> List[Atoms]:
        from ..active.store import read_extxyz
        p = self.root / "labels.extxyz"
        return read_extxyz(p) if p.exists() else []

    def _log(self, event: str, **kw) -> None:
        with open(self.root / "journal.jsonl", "a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), "event": event, **kw}) + "\n")

    def _save(self) -> None:
        from ..active.store import atomic_write_extxyz, atomic_write_text
        atomic_write_extxyz(self.root / "labels.extxyz", self.labels)
        atomic_write_text(self.root / "state.json", json.dumps({"round": self.round, "stage": self.stage,
                                                                "model_path": self.model_path,
                                                                "n_labels": len(self.labels)}))

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
                a.info.update(source=key, config_type="hull_screening")
                self.labels.append(a)
        return len(self.labels) - n0

    def _retrain(self) -> None:
        from ..train import TrainConfig, train
        cfg = TrainConfig.from_dict(dict(self.settings.training, species=self.elements), where="training")
        out = self.root / "models" / f"r{self.round:02d}"
        res = train(self.data + self._labelled(), cfg, out, init=self.model_path, progress=False)
        self.model_path = str(res.model_path)
        self._log("model", round=self.round, model_path=self.model_path, n_labels=len(self.labels),
                  force_mae=res.metrics.get("force_mae"))

    def _labelled(self):
        from ..data.io import as_labelled
        return as_labelled(self.labels)

    def run(self, progress=print) -> Dict[str, Any]:
        """Rounds of relaxation and labelling, then the hull and the oracle's check; returns ``hull.json``'s content."""
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
                self.stage = "train"
                self._save()           # the labels are safe before the training starts
            self._retrain()
            self.round += 1
            self.stage = "relax"
            self._save()
        rel = self._relax_all(None)
        result = self._hull(rel)
        progress(f"hull: {', '.join(e['name'] + ' ' + e['formula'] for e in result['entries'] if e['on_hull'])}; "
                 f"oracle agrees: {result['oracle_agrees']}")
        return result

    # ------------------------------------------------------------------ the hull
    def _hull(self, rel: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
        from ..active.oracles import make_oracle
        # a structure whose relaxation collapsed (overlapping atoms) stays out of the hull
        names = [a.info["name"] for a in self.candidates if rel[a.info["name"]]["status"] != "failed"]
        failed = [a.info["name"] for a in self.candidates if rel[a.info["name"]]["status"] == "failed"]
        x = np.array([rel[n]["atoms"].get_chemical_symbols().count(self.elements[1]) / len(rel[n]["atoms"])
                      for n in names])
        e = np.array([rel[n]["energy"] for n in names])
        ef = formation_energies(x, e)
        above = energy_above_hull(x, ef)
        on = set(lower_hull(x, ef))
        entries = [{"name": n, "formula": rel[n]["atoms"].get_chemical_formula(), "x": float(x[k]),
                    "energy": float(e[k]), "formation_energy": float(ef[k]), "above_hull": float(above[k]),
                    "on_hull": k in on, "gamma_max": rel[n]["gamma_max"], "status": rel[n]["status"]}
                   for k, n in enumerate(names)]
        # the oracle's check: the end members and everything within verify_within of the hull
        check = [k for k in range(len(names)) if above[k] <= self.settings.verify_within or x[k] in (0.0, 1.0)]
        oracle = make_oracle(self.oracle)
        eo = {}
        for k in check:
            a = rel[names[k]]["atoms"].copy()
            r = relax(a, oracle, self.settings.fmax, self.settings.max_steps)
            eo[k] = r["energy"]
            self._log("oracle_relax", name=names[k], energy=r["energy"], status=r["status"])
        xs = np.array([x[k] for k in check])
        efo = formation_energies(xs, np.array([eo[k] for k in check]))
        on_o = {check[j] for j in lower_hull(xs, efo)}
        for j, k in enumerate(check):
            entries[k]["oracle_formation_energy"] = float(efo[j])
            entries[k]["oracle_on_hull"] = check[j] in on_o
        err = [abs(entries[k]["formation_energy"] - entries[k]["oracle_formation_energy"]) for k in check]
        result = {"elements": self.elements, "rounds": self.round, "n_labels": len(self.labels),
                  "model_path": self.model_path, "settings": asdict(self.settings), "entries": entries,
                  "verified": [names[k] for k in check], "failed": failed, "oracle_agrees": on == on_o,
                  "verified_formation_energy_mae": float(np.mean(err))}
        from ..active.store import atomic_write_text
        atomic_write_text(self.root / "hull.json", json.dumps(result, indent=1))
        plot_hull(result, str(self.root / "hull.png"))
        return result


def plot_hull(result: Dict[str, Any], filename: str) -> str:
    """Formation energy (meV/atom) against composition: the model's points and hull, the oracle's checks."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ent = result["entries"]
    x = np.array([e["x"] for e in ent])
    ef = 1000 * np.array([e["formation_energy"] for e in ent])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x, ef, s=14, color="tab:blue", label="model")
    h = sorted((e["x"], 1000 * e["formation_energy"]) for e in ent if e["on_hull"])
    ax.plot(*zip(*h), color="tab:blue", lw=1)
    ver = [e for e in ent if "oracle_formation_energy" in e]
    ax.scatter([e["x"] for e in ver], [1000 * e["oracle_formation_energy"] for e in ver], marker="x",
               color="k", label="oracle (checked)")
    ho = sorted((e["x"], 1000 * e["oracle_formation_energy"]) for e in ver if e["oracle_on_hull"])
    ax.plot(*zip(*ho), color="k", lw=0.8, ls="--")
    a, b = result["elements"]
    ax.set_xlabel(f"x in {a}(1-x){b}(x)")
    ax.set_ylabel("formation energy (meV/atom)")
    ax.set_title(f"{result['rounds']} rounds, {result['n_labels']} labels; oracle agrees: "
                 f"{result['oracle_agrees']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(filename, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return filename
