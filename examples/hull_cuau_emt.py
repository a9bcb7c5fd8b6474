"""Convex-hull screening of Cu-Au with active learning, EMT as the oracle, checked against EMT itself.

A first model is trained on 10 random 4-atom Cu-Au cells labelled by EMT. Every fcc
superstructure with up to 4 atoms (29) is relaxed with it; relaxations that extrapolate
(γ > 3) stop, the most informative configurations go to EMT, the ensemble is retrained, and
so on (``mlal.workflows.hull``). The hull is then checked by relaxing its structures with
EMT. Finally all 29 are relaxed with EMT directly, for the true hull and the formation-energy
error of the model on every structure.

    .venv/bin/python examples/hull_cuau_emt.py          # about 10 minutes on 2 cores

The same screening from the command line:

    mlal hull --model M.pt --data start.extxyz --elements Cu Au --a 3.85 --max-atoms 4 --workdir runs/hull
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from mlal.train import TrainConfig, train
from mlal.workflows.enumeration import enumerate_structures, formation_energies, lower_hull
from mlal.workflows.hull import HullScreening, HullSettings, relax

torch.set_num_threads(1)
OUT = Path(os.environ.get("OUT", Path(__file__).resolve().parents[1] / "runs" / "hull_cuau_emt"))
rng = np.random.default_rng(0)
t0 = time.time()

# 1. The first model: 10 random 4-atom fcc Cu-Au cells, rattled, labelled by EMT.
data = []
for _ in range(10):
    a = bulk("Cu", "fcc", a=3.85, cubic=True)
    a.set_chemical_symbols(rng.choice(["Cu", "Au"], size=len(a)).tolist())
    a.positions += 0.05 * rng.standard_normal(a.positions.shape)
    a.calc = EMT()
    a.get_potential_energy(), a.get_forces(), a.get_stress()
    data.append(a)
training = {"n_members": 4, "cutoff": 5.0, "max_time": 60.0, "epochs": 300, "valid_fraction": 0.0}
init = train(data, TrainConfig(**training, species=["Cu", "Au"]), OUT / "init", progress=False)

# 2. The screening.
cands = enumerate_structures("fcc", ["Cu", "Au"], 4, a=3.85)
settings = HullSettings(training=dict(training, max_time=30.0), labels_per_round=6, max_rounds=8)
res = HullScreening(cands, ["Cu", "Au"], init.model_path, data, {"type": "emt"}, OUT / "screening",
                    settings).run()

# 3. The truth: every candidate relaxed with EMT.
x = np.array([c.info["x"] for c in cands])
e = np.array([relax(c.copy(), EMT(), 0.01, 300)["energy"] for c in cands])
ef_emt = formation_energies(x, e)
true_hull = {cands[k].info["name"] for k in lower_hull(x, ef_emt)}
model_hull = {en["name"] for en in res["entries"] if en["on_hull"]}
ef_model = np.array([en["formation_energy"] for en in res["entries"]])
summary = {"candidates": len(cands), "rounds": res["rounds"], "oracle_calls_training": res["n_labels"],
           "oracle_relaxations_check": len(res["verified"]), "model_hull": sorted(model_hull),
           "emt_hull": sorted(true_hull), "hull_found": model_hull == true_hull,
           "checked_hull_agrees": res["oracle_agrees"],
           "formation_energy_mae_meV": float(1000 * np.abs(ef_model - ef_emt).mean()),
           "formation_energy_max_error_meV": float(1000 * np.abs(ef_model - ef_emt).max()),
           "minutes": round((time.time() - t0) / 60, 1)}
for k, c in enumerate(cands):
    print(f"{c.info['name']:7s} {c.get_chemical_formula():8s} x={x[k]:.2f}  model {1000 * ef_model[k]:7.1f}"
          f"  EMT {1000 * ef_emt[k]:7.1f} meV/atom" + ("  EMT hull" if c.info["name"] in true_hull else ""))
print(json.dumps(summary))
