"""On-lattice configurational sampling with active learning (after Kasamatsu et al., abICS).

The model maps a configuration on the *ideal* lattice (which element sits on which site) to
the energy of that configuration *after relaxation*: it is trained on ideal-lattice cells
labelled with the oracle's relaxed energy (energy only; no forces). Replica-exchange Monte
Carlo (:func:`replica_exchange`: swaps of two sites of different elements at fixed
composition, Metropolis; exchanges between neighbouring temperatures) samples the
configurations with it. Each round of :class:`LatticeSampling` draws configurations from every
temperature's samples, has the oracle relax them, scores the model's prediction against those
relaxed energies (the round's error, before it trains on them), and retrains on all labels;
it stops when that error is below ``tolerance``. ``lattice.json`` holds each round's error and
the last round's ⟨E⟩(T), heat capacity and lowest configuration; ``lattice.png`` plots them.

Units: K, eV (energies per cell unless said per atom), k_B in eV/K.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import kB

from .relaxations import relax, warm_retrain
from .rounds import Rounds


class LatticeEnergy:
    """The model's energy (eV per cell) of element arrangements on the ideal ``lattice`` (an Atoms)."""

    def __init__(self, model: Union[str, Path], lattice: Atoms):
        from ase_calculators import MlalCalculator
        self.calc = MlalCalculator(model, uncertainty=False)
        self.lattice = lattice.copy()

    def __call__(self, symbols: Sequence[str]) -> float:
        a = self.lattice.copy()
        a.set_chemical_symbols(list(symbols))
        a.calc = self.calc
        return float(a.get_potential_energy())


@dataclass
class ReplicaResult:
    """Per temperature (in the order given): ``energies`` ``[T, samples]`` (eV per cell) of the
    configurations held at that temperature after each sweep, ``samples`` (every ``sample_every``
    sweeps, symbols per site), the swap ``acceptance`` and the ``exchange`` rate with the next one;
    and the lowest configuration met and its energy."""

    temperatures: np.ndarray
    energies: np.ndarray
    samples: List[List[List[str]]]
    acceptance: np.ndarray
    exchange: np.ndarray
    lowest: List[str]
    lowest_energy: float

    def mean_energy(self, discard: float = 0.5) -> np.ndarray:
        """⟨E⟩ per temperature over the sweeps after the first ``discard`` fraction (eV per cell)."""
        return self.energies[:, int(discard * self.energies.shape[1]):].mean(axis=1)

    def heat_capacity(self, discard: float = 0.5) -> np.ndarray:
        """C = var(E) / (k_B T²) per temperature (units of k_B per cell)."""
        e = self.energies[:, int(discard * self.energies.shape[1]):]
        return e.var(axis=1) / (kB * self.temperatures) ** 2


def replica_exchange(energy: Callable[[Sequence[str]], float], symbols: Sequence[str],
                     temperatures: Sequence[float], sweeps: int, seed: int = 0, sample_every: int = 10,
                     fixed: Optional[Sequence[int]] = None) -> ReplicaResult:
    """Canonical replica-exchange Monte Carlo of the arrangement ``symbols`` (fixed composition).

    Each sweep makes as many swap attempts per replica as there are free sites (two random sites
    holding different elements exchange them; Metropolis at the replica's temperature), then
    tries to exchange the configurations of neighbouring temperatures (even pairs on even sweeps,
    odd on odd), accepted with ``min(1, exp((1/kT_i − 1/kT_j)(E_i − E_j)))``. ``fixed``: sites never
    moved. Every replica starts from ``symbols``.
    """
    rng = np.random.default_rng(seed)
    t = np.asarray(temperatures, dtype=float)
    if len(t) == 0 or (t <= 0).any():
        raise ValueError(f"temperatures must be positive (K), got {list(temperatures)}")
    free = np.array([k for k in range(len(symbols)) if fixed is None or k not in set(fixed)])
    if len(set(symbols[k] for k in free)) < 2:
        raise ValueError("the free sites hold one element only: nothing to sample")
    beta = 1.0 / (kB * t)
    conf = [np.array(symbols, dtype=object) for _ in t]
    e = np.array([energy(list(c)) for c in conf])
    lowest, lowest_e = list(conf[0]), float(e[0])
    energies = np.zeros((len(t), sweeps))
    samples: List[List[List[str]]] = [[] for _ in t]
    accepted = np.zeros(len(t))
    exch = np.zeros(max(len(t) - 1, 1))
    tried = np.zeros(max(len(t) - 1, 1))
    for sweep in range(sweeps):
        for r in range(len(t)):
            for _ in range(len(free)):
                i, j = rng.choice(free, 2, replace=False)
                if conf[r][i] == conf[r][j]:
                    continue
                c = conf[r].copy()
                c[i], c[j] = c[j], c[i]
                en = energy(list(c))
                if en <= e[r] or rng.random() < np.exp(-beta[r] * (en - e[r])):
                    conf[r], e[r] = c, en
                    accepted[r] += 1
                    if en < lowest_e:
                        lowest, lowest_e = list(c), float(en)
        for r in range(sweep % 2, len(t) - 1, 2):
            tried[r] += 1
            if rng.random() < np.exp(min(0.0, (beta[r] - beta[r + 1]) * (e[r] - e[r + 1]))):
                conf[r], conf[r + 1] = conf[r + 1], conf[r]
                e[r], e[r + 1] = e[r + 1], e[r]
                exch[r] += 1
        energies[:, sweep] = e
        if (sweep + 1) % sample_every == 0:
            for r in range(len(t)):
                samples[r].append(list(conf[r]))
    return ReplicaResult(t, energies, samples, accepted / (sweeps * len(free)),
                         exch / np.maximum(tried, 1), lowest, lowest_e)


def relaxed_label(lattice: Atoms, symbols: Sequence[str], oracle, fmax: float = 0.02,
                  max_steps: int = 300) -> Atoms:
    """The ideal ``lattice`` with ``symbols``, labelled with the ``oracle``'s energy (eV) after relaxing
    it (positions and cell, ``fmax`` eV/Å); ``info['relaxed_status']`` says how the relaxation ended."""
    from ..active.oracles import make_oracle
    ideal = lattice.copy()
    ideal.set_chemical_symbols(list(symbols))
    r = relax(ideal.copy(), make_oracle(oracle), fmax, max_steps)
    if not np.isfinite(r["energy"]):
        raise ValueError("the oracle gave a non-finite relaxed energy")
    ideal.calc = SinglePointCalculator(ideal, energy=r["energy"] * len(ideal))
    ideal.info.update(relaxed_status=r["status"], config_type="lattice_relaxed")
    return ideal


@dataclass
class LatticeSettings:
    """``temperatures`` (K) of the replicas, ``sweeps`` per round, ``labels_per_round`` oracle
    calls (spread over the temperatures), ``tolerance`` (eV/atom: the round's prediction error that
    ends the learning; keep it small against the span of the arrangements' energies, which for an
    alloy on one lattice may be only tens of meV/atom), ``max_rounds``; ``fmax``/``max_steps`` of
    the oracle's relaxations; ``training``: TrainConfig settings of the retrainings (energy-only
    labels)."""

    temperatures: List[float] = field(default_factory=lambda: [300.0, 600.0, 1000.0, 1500.0])
    sweeps: int = 200
    labels_per_round: int = 8
    tolerance: float = 0.0005
    max_rounds: int = 6
    fmax: float = 0.02
    max_steps: int = 300
    seed: int = 0
    training: Dict[str, Any] = field(default_factory=lambda: {"max_time": 60.0, "epochs": 300})


class LatticeSampling(Rounds):
    """Active learning of the relaxed-energy model inside replica-exchange MC.

    ``lattice``: the ideal cell (its symbols: the starting arrangement, which fixes the
    composition); ``model``: a first model; ``data``: the labels it was trained on (ideal cells with
    relaxed energies; see :meth:`label`); ``oracle``: ASE calculator or mlal oracle spec.
    """

    first_stage = "sample"

    def __init__(self, lattice: Atoms, model: Union[str, Path], data: Sequence[Atoms], oracle,
                 workdir: Union[str, Path], settings: Optional[LatticeSettings] = None):
        self.lattice = lattice.copy()
        self.data = [a.copy() for a in data]
        self.oracle = oracle
        self.settings = settings or LatticeSettings()
        state = self._open(workdir, model)
        self.errors: List[Dict[str, Any]] = state.get("errors", [])

    def label(self, symbols: Sequence[str]) -> Atoms:
        """:func:`relaxed_label` of ``symbols`` on this lattice with this oracle and settings."""
        return relaxed_label(self.lattice, symbols, self.oracle, self.settings.fmax, self.settings.max_steps)

    def _state(self) -> Dict[str, Any]:
        return {**super()._state(), "errors": self.errors}

    def run(self, progress: Callable[[str], None] = print) -> Dict[str, Any]:
        """Rounds of sampling, labelling and retraining; returns ``lattice.json``'s content."""
        s = self.settings
        rng = np.random.default_rng(s.seed + 7919 * self.round)
        mc = None
        while self.round < s.max_rounds and self.stage != "done":
            if self.stage == "sample":
                t0 = time.time()
                model_e = LatticeEnergy(self.model_path, self.lattice)
                mc = replica_exchange(model_e, self.lattice.get_chemical_symbols(), s.temperatures, s.sweeps,
                                      seed=s.seed + self.round)
                pool = [c for r in range(len(s.temperatures)) for c in mc.samples[r][len(mc.samples[r]) // 2:]]
                pick = rng.choice(len(pool), min(s.labels_per_round, len(pool)), replace=False)
                new = [self.label(pool[k]) for k in pick]
                err = [abs(model_e(a.get_chemical_symbols()) - a.get_potential_energy()) / len(a) for a in new]
                self.errors.append({"round": self.round, "mae": float(np.mean(err)), "max": float(np.max(err)),
                                    "n": len(new), "seconds": round(time.time() - t0, 1)})
                progress(f"round {self.round}: the model's error on {len(new)} new relaxed energies "
                         f"{1000 * np.mean(err):.2f} meV/atom (max {1000 * np.max(err):.2f})")
                self.labels += new
                self.stage = "done" if np.mean(err) < s.tolerance else "train"
                self._save()           # the labels are safe before the training starts
                if self.stage == "done":
                    break
            res = warm_retrain(self.model_path, s.training, self.data + self.labels,
                               self.root / "models" / f"r{self.round:02d}")
            self.model_path = str(res.model_path)
            self._next_round()
        if mc is None or not self.errors or self.errors[-1]["mae"] >= s.tolerance:   # sample with the last model
            mc = replica_exchange(LatticeEnergy(self.model_path, self.lattice), self.lattice.get_chemical_symbols(),
                                  s.temperatures, s.sweeps, seed=s.seed + self.round)
        n = len(self.lattice)
        result = {"rounds": self.round, "n_labels": len(self.labels), "model_path": self.model_path,
                  "errors": self.errors, "converged": bool(self.errors) and self.errors[-1]["mae"] < s.tolerance,
                  "temperatures": mc.temperatures.tolist(),
                  "mean_energy_per_atom": (mc.mean_energy() / n).tolist(),
                  "heat_capacity_kB_per_atom": (mc.heat_capacity() / n).tolist(),
                  "acceptance": mc.acceptance.tolist(), "exchange": mc.exchange.tolist(),
                  "lowest_energy_per_atom": mc.lowest_energy / n, "lowest": mc.lowest,
                  "settings": asdict(s)}
        from ..active.store import atomic_write_extxyz, atomic_write_text
        atomic_write_text(self.root / "lattice.json", json.dumps(result, indent=1))
        low = self.lattice.copy()
        low.set_chemical_symbols(mc.lowest)
        atomic_write_extxyz(self.root / "lowest.extxyz", [low])
        plot_lattice(result, str(self.root / "lattice.png"))
        return result


def plot_lattice(result: Dict[str, Any], filename: str) -> str:
    """The model's error per round, and ⟨E⟩(T) and C(T) of the last sampling."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    r = [e["round"] for e in result["errors"]]
    a1.plot(r, [1000 * e["mae"] for e in result["errors"]], "o-", label="MAE")
    a1.plot(r, [1000 * e["max"] for e in result["errors"]], "x--", label="max")
    a1.axhline(1000 * result["settings"]["tolerance"], color="0.5", lw=0.8)
    a1.set_xlabel("round")
    a1.set_ylabel("error on new relaxed energies (meV/atom)")
    a1.legend(fontsize=8)
    t = result["temperatures"]
    a2.plot(t, [1000 * e for e in result["mean_energy_per_atom"]], "o-", color="tab:blue")
    a2.set_xlabel("T (K)")
    a2.set_ylabel("⟨E⟩ (meV/atom)", color="tab:blue")
    a3 = a2.twinx()
    a3.plot(t, result["heat_capacity_kB_per_atom"], "s--", color="tab:red")
    a3.set_ylabel("C (k_B/atom)", color="tab:red")
    fig.tight_layout()
    fig.savefig(filename, dpi=120)
    plt.close(fig)
    return filename
