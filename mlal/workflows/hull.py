"""Alloy convex-hull screening with active learning (after Gubaev, Podryabinkin, Hart & Shapeev, 2019).

The candidates (:func:`mlal.workflows.enumeration.enumerate_structures`) are relaxed with active
learning (:class:`mlal.workflows.relaxations.ActiveRelaxations`: relaxations stop on γ, the most
informative configurations are labelled, the ensemble retrained, until none stops). Their
formation energies give the lower convex hull, and the structures on it or within
``verify_within`` of it (and the end members) are relaxed with the oracle itself, which says
whether the model's hull is the oracle's. When it is not, those relaxed structures join the
labels and it all starts again, ``max_checks`` times at most. The work directory gets
``hull.json`` and ``hull.png`` besides the relaxations' files; a structure whose last relaxation
collapsed stays out (``failed``).

Units: eV/atom for energies, Å.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Union

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from .enumeration import energy_above_hull, formation_energies, lower_hull
from .relaxations import ActiveRelaxations, RelaxSettings, relax


@dataclass
class HullSettings(RelaxSettings):
    """:class:`RelaxSettings`, ``verify_within`` (eV/atom above the model's hull): which structures
    the oracle relaxes to check the hull, and ``max_checks``: how many times a check that
    disagrees sends the oracle's relaxed structures to the labels and starts again."""

    verify_within: float = 0.010
    max_checks: int = 2


class HullScreening(ActiveRelaxations):
    """A screening of two-element ``candidates``: see :class:`ActiveRelaxations` for the arguments."""

    def _open(self, workdir: Union[str, Path], model: Union[str, Path]) -> Dict[str, Any]:
        state = super()._open(workdir, model)
        self.checks: int = state.get("checks", 0)  # checks that disagreed and sent labels
        return state

    def _state(self) -> Dict[str, Any]:
        return {**super()._state(), "checks": self.checks}

    def run(self, progress: Callable[[str], None] = print) -> Dict[str, Any]:
        """Rounds of relaxation and labelling, then the hull and the oracle's check; returns ``hull.json``'s content."""
        if len(self.elements) != 2:
            raise ValueError(f"a binary hull needs two elements, got {self.elements}")
        while True:
            result = self._hull(self.relax_rounds(progress))
            hull = ', '.join(e['name'] + ' ' + e['formula'] for e in result['entries'] if e['on_hull'])
            progress(f"hull: {hull}; oracle agrees: {result['oracle_agrees']}")
            if result["oracle_agrees"] or self.checks >= self.settings.max_checks:
                return result
            # the oracle's relaxed structures (their final frames, labelled) join the labels; the
            # count of checks is saved with them, so a resumed screening does not check again
            self.checks += 1
            self.labels += self._checked
            self._labels_in()
            self._log("check_labels", round=self.round, n=len(self._checked))
            progress(f"check {self.checks}: the oracle's hull differs; its {len(self._checked)} relaxed structures "
                     f"became labels, and the relaxations start again")
            self._retrain()
            self._next_round()

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
        self._checked = []
        for k in check:
            a = rel[names[k]]["atoms"].copy()
            r = relax(a, oracle, self.settings.fmax, self.settings.max_steps)
            eo[k] = r["energy"]
            self._log("oracle_relax", name=names[k], energy=r["energy"], status=r["status"])
            lab = a.copy()
            lab.calc = SinglePointCalculator(lab, energy=a.get_potential_energy(), forces=a.get_forces(),
                                             stress=a.get_stress())
            lab.info.update(source=f"check:{names[k]}", config_type="hull_check")
            self._checked.append(lab)
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
