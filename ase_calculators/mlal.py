"""ASE calculator for an exported mlal ensemble (one TorchScript file).

``results`` holds the standard ``energy``, ``free_energy``, ``energies``,
``forces`` (eV/Å) and, for fully periodic cells, ``stress`` (eV/Å³, ASE sign,
Voigt order). With ``uncertainty=True`` (default) it also holds:

- ``sigma``: per-atom ensemble spread of the force (eV/Å),
- ``energy_sigma``: ensemble spread of the total energy (eV),
- ``energies_sigma``: per-atom energy spread (eV),
- ``gamma``: per-atom D-optimality extrapolation grade, and ``gamma_max``,
- ``member_forces``: every member's forces, ``[K, n_atoms, 3]`` (eV/Å; their mean is ``forces``).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from mlal.data.neighbors import edge_vectors, neighbor_list
from mlal.deploy import DTYPES, load_model
from mlal.deploy.host import energy_sigma, force_sigma, forces_from_edges, virial_from_edges
from mlal.deploy.runtime import tune_malloc


class ExtrapolationError(RuntimeError):
    """Raised when ``gamma_max`` exceeds the calculator's ``gamma_break``."""

    def __init__(self, message: str, gamma_max: float, sigma_max: float):
        super().__init__(message)
        self.gamma_max = gamma_max
        self.sigma_max = sigma_max


class MlalCalculator(Calculator):
    """Energy, forces, stress, σ and γ from an mlal model file.

    Args:
        model: path of an exported ``model.pt`` (or an already loaded module).
        uncertainty: also compute ``sigma``, ``energy_sigma`` and ``gamma`` (costs
            K extra backward passes; switch off for the fastest MD).
        min_distance: atoms closer than this (Å) are rejected as overlapping.
        gamma_break, sigma_break: if set, raise :class:`ExtrapolationError` after a
            calculation whose ``gamma_max`` (or max σ, eV/Å) exceeds it; the
            results of that calculation are kept on the calculator.
    """

    implemented_properties: List[str] = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model: Union[str, Path, torch.jit.ScriptModule], uncertainty: bool = True,
                 min_distance: float = 0.5, gamma_break: Optional[float] = None,
                 sigma_break: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        tune_malloc()
        self.model = load_model(model) if isinstance(model, (str, Path)) else model
        self.model_path = str(model) if isinstance(model, (str, Path)) else None
        self.species: List[str] = list(self.model.species)
        self.cutoff = float(self.model.cutoff)
        self.dtype = DTYPES[self.model.dtype_name]
        self.uncertainty = uncertainty
        self.min_distance = min_distance
        self.gamma_break = gamma_break
        self.sigma_break = sigma_break
        self._index = {s: k for k, s in enumerate(self.species)}

    def species_indices(self, symbols: List[str]) -> np.ndarray:
        """Model species index of each symbol; unknown elements raise ``ValueError``."""
        unknown = sorted(set(symbols) - set(self._index))
        if unknown:
            raise ValueError(f"element(s) {', '.join(unknown)} not in the model; "
                             f"the model knows {', '.join(self.species)}")
        return np.array([self._index[s] for s in symbols], dtype=np.int64)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        species = self.species_indices(atoms.get_chemical_symbols())
        pos = atoms.get_positions()
        cell = atoms.cell.array
        edge_index, shifts = neighbor_list(pos, cell, atoms.pbc, self.cutoff)
        vec = edge_vectors(pos, cell, edge_index, shifts)
        if len(vec):
            d = np.sqrt((vec * vec).sum(axis=1))
            k = int(np.argmin(d))
            if d[k] < self.min_distance:
                raise ValueError(f"atoms {edge_index[0, k]} and {edge_index[1, k]} are {d[k]:.3f} Å apart, "
                                 f"closer than min_distance={self.min_distance} Å (overlapping atoms)")
        ei = torch.from_numpy(edge_index)
        ev = torch.from_numpy(vec).to(self.dtype)
        out = self.model(torch.from_numpy(species), ei, ev, n, self.uncertainty)
        forces = forces_from_edges(out["edge_grad"], ei, n)
        energies = out["atom_energy"].double().numpy()
        self.results["energies"] = energies
        self.results["energy"] = self.results["free_energy"] = float(energies.sum())
        self.results["forces"] = forces.double().numpy()
        if atoms.pbc.all() and atoms.cell.rank == 3:
            virial = virial_from_edges(out["edge_grad"], ev).double().numpy()
            stress = -0.5 * (virial + virial.T) / atoms.get_volume()
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
        if self.uncertainty:
            member_forces = forces_from_edges(out["member_edge_grad"], ei, n)
            sigma = force_sigma(member_forces).double().numpy()
            e_sigma, atom_e_sigma = energy_sigma(out["member_atom_energy"])
            gamma = out["gamma"].double().numpy()
            self.results["sigma"] = sigma
            self.results["energy_sigma"] = float(e_sigma)
            self.results["energies_sigma"] = atom_e_sigma.double().numpy()
            self.results["gamma"] = gamma
            self.results["gamma_max"] = float(gamma.max()) if n else 0.0
            self.results["member_forces"] = member_forces.double().numpy()     # [K, n, 3]
            self._check_break()

    def _check_break(self) -> None:
        gmax = self.results["gamma_max"]
        smax = float(self.results["sigma"].max()) if len(self.results["sigma"]) else 0.0
        if self.gamma_break is not None and gmax > self.gamma_break:
            raise ExtrapolationError(f"gamma_max={gmax:.3g} > gamma_break={self.gamma_break}", gmax, smax)
        if self.sigma_break is not None and smax > self.sigma_break:
            raise ExtrapolationError(f"max sigma={smax:.3g} eV/Å > sigma_break={self.sigma_break}", gmax, smax)
