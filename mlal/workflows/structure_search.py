"""Crystal structure search with an ensemble and active learning (after Hessmann et al.).

Random cells of a given composition (:func:`random_search_cells`, as in ab initio random structure
searching: random lattice, random positions kept apart by ``min_distance``) are relaxed with the
model under active learning (:class:`mlal.workflows.relaxations.ActiveRelaxations`): a relaxation
that leaves the training data (γ > ``gamma_break``) stops, the most informative configurations
are labelled by the oracle, the ensemble is retrained, and the relaxations start again. The
relaxed structures are then grouped into distinct minima (symmetry-equivalent ones are one), ranked
by the model's energy, and the ``n_check`` lowest are relaxed with the oracle itself, which says
whether the model's ranking holds. The work directory gets ``search.json``, ``search.png`` and
``minima.extxyz`` besides the relaxations' files.

Units: Å, Å³/atom for volumes, eV/atom for energies.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from .relaxations import ActiveRelaxations, RelaxSettings, relax


def random_search_cells(symbols: Sequence[str], n: int, volume_per_atom: float, min_distance: float,
                      seed: int = 0, max_tries: int = 1000) -> List[Atoms]:
    """``n`` random periodic cells holding the atoms ``symbols`` (e.g. ``["Si"] * 8``).

    The cell: three vectors of random lengths (1 ± 0.3, relative) at random angles (60–120°),
    scaled to ``volume_per_atom`` (Å³); the atoms: uniform random positions, each at least
    ``min_distance`` (Å) from every other and its images. ``info["name"]`` is ``"r<k>"``.
    """
    rng = np.random.default_rng(seed)
    out: List[Atoms] = []
    for k in range(n):
        for _ in range(max_tries):
            lengths = 1.0 + 0.3 * rng.uniform(-1, 1, 3)
            angles = rng.uniform(60.0, 120.0, 3)
            a = Atoms(list(symbols), cell=list(lengths) + list(angles), pbc=True)
            if a.get_volume() < 0.3 * np.prod(lengths):      # too flat a cell
                continue
            a.set_cell(a.cell * (volume_per_atom * len(a) / a.get_volume()) ** (1 / 3))
            if not _self_image_ok(a.cell.array, min_distance):
                continue
            pos: List[np.ndarray] = []
            for _ in range(len(a)):
                for _ in range(max_tries):
                    p = rng.uniform(0, 1, 3) @ a.cell.array
                    if not pos or find_mic(np.array(pos) - p, a.cell, pbc=True)[1].min() >= min_distance:
                        pos.append(p)
                        break
                else:
                    break
            if len(pos) == len(a):
                a.positions = np.array(pos)
                a.info["name"] = f"r{k}"
                out.append(a)
                break
        else:
            raise ValueError(f"no random cell of {len(symbols)} atoms at {volume_per_atom} Å³/atom keeps "
                             f"them {min_distance} Å apart in {max_tries} tries; lower min_distance")
    return out


def _self_image_ok(cell: np.ndarray, min_distance: float) -> bool:
    """An atom's own periodic images are at least ``min_distance`` away."""
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                       if (i, j, k) != (0, 0, 0)])
    return bool(np.linalg.norm(shifts @ cell, axis=1).min() >= min_distance)


def distinct_minima(structures: Dict[str, Atoms], energies: Dict[str, float], same_energy: float
                    ) -> List[Dict[str, Any]]:
    """Group relaxed ``structures`` (by name) into distinct minima, lowest ``energies`` (eV/atom) first.

    Two are one minimum when their energies differ by less than ``same_energy`` and ASE's
    :class:`SymmetryEquivalenceCheck` finds them equivalent (any rotation, translation, choice of
    cell). Each minimum: ``name`` (its lowest member), ``energy``, ``count``, ``members``,
    ``volume_per_atom``.
    """
    from ase.utils.structure_comparator import SymmetryEquivalenceCheck
    same = SymmetryEquivalenceCheck(to_primitive=True)
    minima: List[Dict[str, Any]] = []
    for n in sorted(structures, key=lambda k: energies[k]):
        e = energies[n]
        for m in minima:
            if abs(m["energy"] - e) < same_energy and same.compare(structures[m["name"]], structures[n]):
                m["count"] += 1
                m["members"].append(n)
                break
        else:
            a = structures[n]
            minima.append({"name": n, "energy": float(e), "count": 1, "members": [n],
                           "volume_per_atom": a.get_volume() / len(a)})
    return minima


@dataclass
class SearchSettings(RelaxSettings):
    """:class:`RelaxSettings` and ``n_check``: how many of the lowest distinct minima the oracle
    relaxes; ``same_energy`` (eV/atom): minima closer than that are compared for symmetry."""

    n_check: int = 3
    same_energy: float = 0.002


class StructureSearch(ActiveRelaxations):
    """A search over ``candidates`` (e.g. :func:`random_search_cells`): see :class:`ActiveRelaxations`."""

    settings: SearchSettings

    def run(self, progress: Callable[[str], None] = print) -> Dict[str, Any]:
        """Relaxations with active learning, distinct minima, the oracle's check; returns ``search.json``'s content."""
        from ..active.oracles import make_oracle
        from ..active.store import atomic_write_extxyz, atomic_write_text
        s = self.settings if isinstance(self.settings, SearchSettings) else SearchSettings(**asdict(self.settings))
        rel = self.relax_rounds(progress)
        ok = [n for n, r in rel.items() if r["status"] != "failed"]
        minima = distinct_minima({n: rel[n]["atoms"] for n in ok}, {n: rel[n]["energy"] for n in ok},
                                 s.same_energy)
        for m in minima:
            m.update(gamma_max=rel[m["name"]]["gamma_max"], status=rel[m["name"]]["status"])
        oracle = make_oracle(self.oracle)
        for m in minima[:s.n_check]:
            a = rel[m["name"]]["atoms"].copy()
            r = relax(a, oracle, s.fmax, s.max_steps)
            m.update(oracle_energy=r["energy"], oracle_volume_per_atom=a.get_volume() / len(a),
                     oracle_status=r["status"])
            self._log("oracle_relax", name=m["name"], energy=r["energy"], status=r["status"])
        checked = [m for m in minima if "oracle_energy" in m]
        best_oracle: Optional[str] = min(checked, key=lambda m: m["oracle_energy"])["name"] if checked else None
        result = {"elements": self.elements, "rounds": self.round, "n_labels": len(self.labels),
                  "model_path": self.model_path, "settings": asdict(s), "n_structures": len(rel),
                  "failed": [n for n, r in rel.items() if r["status"] == "failed"], "minima": minima,
                  "model_lowest": minima[0]["name"] if minima else None, "oracle_lowest_checked": best_oracle,
                  "lowest_agrees": bool(minima) and best_oracle == minima[0]["name"]}
        atomic_write_text(self.root / "search.json", json.dumps(result, indent=1))
        atomic_write_extxyz(self.root / "minima.extxyz", [rel[m["name"]]["atoms"] for m in minima])
        plot_search(result, str(self.root / "search.png"))
        progress(f"{len(minima)} distinct minima of {len(rel)} relaxations; the lowest by the model: "
                 f"{result['model_lowest']}, by the oracle (of {len(checked)} checked): {best_oracle}")
        return result


def plot_search(result: Dict[str, Any], filename: str) -> str:
    """Energies of the distinct minima by rank (meV/atom above the lowest): the model's and the oracle's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    m = result["minima"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if m:
        e0 = m[0]["energy"]
        ax.plot(range(len(m)), [1000 * (x["energy"] - e0) for x in m], "o", color="tab:blue", label="model")
        ck = [(k, x["oracle_energy"]) for k, x in enumerate(m) if "oracle_energy" in x]
        if ck:
            o0 = min(e for _, e in ck)
            ax.plot([k for k, _ in ck], [1000 * (e - o0) for _, e in ck], "x", color="k", label="oracle (checked)")
    ax.set_xlabel("distinct minimum, by the model's energy")
    ax.set_ylabel("energy above the lowest (meV/atom)")
    ax.set_title(f"{result['n_structures']} relaxations, {result['rounds']} rounds, {result['n_labels']} labels",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(filename, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return filename
