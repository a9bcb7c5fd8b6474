"""Phonons from a trained ensemble, against its reference, with the members' spread.

Trains a small mlal ensemble on EMT-labelled Cu cells (rattled, strained, 32 atoms),
then computes the phonon bands of fcc Cu with the model and with EMT itself through
the same phonopy workflow, and plots both: the model's band, its ±σ band from the
members, and EMT's bands as dashes.

    .venv/bin/python examples/phonons_cu_emt.py          # about two minutes on 2 cores
    TRAIN_TIME=300 .venv/bin/python examples/phonons_cu_emt.py

The same from the command line, for any model and crystal:

    mlal phonons runs/phonons_cu_emt/model.pt cu.xyz --plot phonons.png --json
"""
import os
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from ase_calculators import MlalCalculator
from mlal.data.io import as_labelled
from mlal.train import TrainConfig, train
from mlal.workflows.phonons import phonons, plot_phonons

torch.set_num_threads(1)
OUT = Path(os.environ.get("OUT", Path(__file__).resolve().parents[1] / "runs" / "phonons_cu_emt"))
rng = np.random.default_rng(0)

# 1. Reference data: 40 cells of 32 atoms, lattice strained by up to 2%, atoms rattled 0.02-0.15 Å.
cells = []
for k in range(40):
    a = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.uniform(-1, 1, (3, 3))), scale_atoms=True)
    a.positions += rng.uniform(0.02, 0.15) * rng.standard_normal(a.positions.shape)
    a.calc = EMT()
    a.get_potential_energy(), a.get_forces(), a.get_stress()
    cells.append(a)
result = train(as_labelled(cells), TrainConfig(n_members=4, cutoff=5.0, max_time=float(os.environ.get("TRAIN_TIME", 90)),
                                               seed=0), OUT, progress=False)

# 2. Phonons of the EMT lattice constant's crystal, with the model and with EMT.
cu = bulk("Cu", "fcc", a=3.6)
model = phonons(cu, MlalCalculator(result.model_path), supercell=(5, 5, 5))
ref = phonons(cu, EMT(), supercell=(5, 5, 5))
err = np.abs(model.frequencies - ref.frequencies)
inside = np.abs(model.frequencies - ref.frequencies) <= 2 * model.frequency_sigma
print(f"EMT bands: up to {ref.frequencies.max():.3f} THz; the model's: up to {model.frequencies.max():.3f} THz")
print(f"model - EMT: mean |error| {err.mean():.3f} THz, largest {err.max():.3f} THz; "
      f"members' sigma: mean {model.frequency_sigma.mean():.3f} THz, largest {model.frequency_sigma.max():.3f}; "
      f"{100 * inside.mean():.0f}% of the band points within 2 sigma")
print(f"gamma_max over the displaced supercells: {model.gamma_max:.3f}")
print(f"free energy at 300 K: model {model.free_energy(300)[0]:.5f}, EMT {ref.free_energy(300)[0]:.5f} eV/atom")
print("band structure:", plot_phonons(model, str(OUT / "phonons.png"), "Cu: mlal, EMT dashed", reference=ref))
