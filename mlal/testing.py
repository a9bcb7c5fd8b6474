"""Small, deterministic models and structures for tests and examples.

:func:`random_model` writes a valid, untrained ensemble whose normalisation
and active set are fitted on a few rattled crystals, so σ and γ are non-trivial.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.build import bulk

from .data.graph import to_graph
from .data.io import Labelled
from .deploy import export_model
from .nn.model import EnsembleModel
from .train.prepare import fit_feature_normalization, rebuild_active_set

_LATTICE = {"Mo": ("bcc", 3.16), "W": ("bcc", 3.17), "Li": ("bcc", 3.44), "Cu": ("fcc", 3.61),
            "Ni": ("fcc", 3.52), "Al": ("fcc", 4.05), "Au": ("fcc", 4.08), "Ag": ("fcc", 4.09),
            "Pt": ("fcc", 3.92), "Pd": ("fcc", 3.89), "Si": ("diamond", 5.43), "Ge": ("diamond", 5.66),
            "C": ("diamond", 3.57)}


def example_structures(species: Sequence[str], n: int = 6, seed: int = 0,
                       rattle: float = 0.08) -> List[Atoms]:
    """Rattled, randomly decorated, slightly strained supercells of the first element's lattice."""
    rng = np.random.default_rng(seed)
    kind, a = _LATTICE.get(species[0], ("fcc", 4.0))
    out = []
    for k in range(n):
        atoms = bulk(species[0], kind, a=a * (1 + 0.02 * rng.standard_normal()), cubic=True)
        atoms = atoms * (2, 2, 2) if len(atoms) < 8 else atoms * (1, 1, 2)
        atoms.set_chemical_symbols(rng.choice(list(species), size=len(atoms)).tolist())
        atoms.positions += rattle * rng.standard_normal(atoms.positions.shape)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.01 * rng.standard_normal((3, 3))),
                       scale_atoms=True)
        out.append(atoms)
    return out


def random_model(path: Union[str, Path], species: Sequence[str] = ("Mo",), cutoff: float = 5.0,
                 n_members: int = 3, dtype: str = "float64", seed: int = 0,
                 structures: Optional[Sequence[Atoms]] = None, **hyper) -> Path:
    """Write an untrained but valid ensemble to ``path`` and return the path."""
    model = EnsembleModel(list(species), cutoff=cutoff, n_members=n_members, seed=seed, **hyper).double()
    structs = list(structures) if structures is not None else example_structures(species, seed=seed)
    index = {s: k for k, s in enumerate(species)}
    graphs = [to_graph(Labelled(a, None, None, None, f"example:{k}"), index, cutoff)
              for k, a in enumerate(structs)]
    fit_feature_normalization(model, graphs)
    import torch
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        model.head_b2.copy_(0.1 * torch.randn(model.head_b2.shape, generator=gen, dtype=torch.float64))
        model.reference_energy.copy_(torch.linspace(-3.0, -5.0, len(species), dtype=torch.float64))
        model.energy_scale.fill_(0.5)
    rebuild_active_set(model, graphs)
    return export_model(model, path, dtype=dtype, provenance={"kind": "random test model", "seed": seed})
