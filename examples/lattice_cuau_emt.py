"""On-lattice sampling of CuAu with active learning (abICS-style), EMT as the oracle.

The model learns the relaxed energy of Cu/Au arrangements on an ideal 32-site fcc cell: its
labels are ideal cells with the energy EMT gives after relaxing them. A first model is trained
on 10 random arrangements; then rounds of replica-exchange Monte Carlo (6 temperatures, 100 to
2000 K) draw arrangements, EMT labels them, the model's error on them is measured before it is
retrained, until that error is under 0.5 meV/atom (``mlal.workflows.lattice_mc``; the relaxed
energies of the arrangements span about 20 meV/atom). The lowest
arrangement found is compared with L1_0 (EMT's CuAu ground state among the fcc orderings).

    .venv/bin/python examples/lattice_cuau_emt.py          # about 10 minutes on 2 cores
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.utils.structure_comparator import SymmetryEquivalenceCheck

from mlal.train import TrainConfig, train
from mlal.workflows.lattice_mc import LatticeSampling, LatticeSettings, relaxed_label

torch.set_num_threads(1)
OUT = Path(os.environ.get("OUT", Path(__file__).resolve().parents[1] / "runs" / "lattice_cuau_emt"))
t0 = time.time()
rng = np.random.default_rng(0)

lattice = bulk("Cu", "fcc", a=3.85, cubic=True).repeat((2, 2, 2))          # 32 sites, Cu16Au16
start = ["Cu", "Au"] * 16
rng.shuffle(start)
lattice.set_chemical_symbols(start)
settings = LatticeSettings(temperatures=[100, 200, 350, 600, 1000, 2000], sweeps=150,
                           labels_per_round=8, tolerance=0.0005, max_rounds=6,
                           training={"n_members": 4, "cutoff": 5.0, "max_time": 30.0, "epochs": 300,
                                     "valid_fraction": 0.0})

# 1. The first model: 10 random arrangements, labelled with EMT's relaxed energy.
data = []
for _ in range(10):
    s = list(start)
    rng.shuffle(s)
    data.append(relaxed_label(lattice, s, {"type": "emt"}, settings.fmax, settings.max_steps))
init = train(data, TrainConfig(**dict(settings.training, max_time=60.0), species=["Cu", "Au"]), OUT / "init",
             progress=False)

# 2. Active learning inside replica exchange.
res = LatticeSampling(lattice, init.model_path, data, {"type": "emt"}, OUT, settings).run()

# 3. Is the lowest arrangement L1_0?
l10 = bulk("Cu", "fcc", a=3.85, cubic=True)
l10.set_chemical_symbols(["Cu", "Cu", "Au", "Au"])
low = lattice.copy()
low.set_chemical_symbols(res["lowest"])
summary = {"rounds": res["rounds"], "oracle_calls": 10 + res["n_labels"], "converged": res["converged"],
           "errors_meV": [round(1000 * e["mae"], 2) for e in res["errors"]],
           "lowest_is_L1_0": bool(SymmetryEquivalenceCheck(to_primitive=True).compare(low, l10)),
           "lowest_energy_per_atom": res["lowest_energy_per_atom"],
           "heat_capacity_peak_K": res["temperatures"][int(np.argmax(res["heat_capacity_kB_per_atom"]))],
           "minutes": round((time.time() - t0) / 60, 1)}
for t, e, c in zip(res["temperatures"], res["mean_energy_per_atom"], res["heat_capacity_kB_per_atom"]):
    print(f"T {t:6.0f} K  <E> {1000 * e:8.2f} meV/atom  C {c:.3f} k_B/atom")
print(json.dumps(summary))
