"""Crystal structure search for Si8 with active learning, Stillinger-Weber (LAMMPS) as the oracle.

A first model is trained on 5 rattled diamond cells labelled by SW. Twenty random 8-atom cells
(random lattice, atoms at least 2.1 Å apart, 20 Å³/atom) are relaxed with it under active
learning (``mlal.workflows.structure_search``): relaxations that extrapolate stop, the most
informative configurations go to SW, the ensemble is retrained, and the relaxations go on. The
distinct minima are ranked, and the three lowest are relaxed with SW itself. Finally every
random cell is relaxed with SW directly, to see whether the search found SW's lowest minimum
(diamond) and how far the model's energies are.

    .venv/bin/python examples/search_si_sw.py          # about 10 minutes on 2 cores

The same search from the command line:

    mlal search --model M.pt --data start.extxyz --composition Si8 --volume 20 --min-distance 2.1 \\
        --oracle "{type: lammps, pair_style: sw, pair_coeff: '* * Si.sw Si', species: [Si]}" --workdir runs/search
"""
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from mlal.active.oracles import make_oracle
from mlal.active.structures import random_structures
from mlal.train import TrainConfig, train
from mlal.workflows.relaxations import relax
from mlal.workflows.structure_search import SearchSettings, StructureSearch, random_search_cells

torch.set_num_threads(1)
OUT = Path(os.environ.get("OUT", Path(__file__).resolve().parents[1] / "runs" / "search_si_sw"))
SW = {"type": "lammps", "pair_style": "sw", "pair_coeff": "* * Si.sw Si", "species": ["Si"]}
t0 = time.time()

if __name__ == "__main__":
    # 1. The first model: 5 rattled, strained 8-atom diamond cells labelled by SW.
    data = random_structures(["Si"], n=5, lattice="diamond", a=5.431, rattle=0.15, seed=0)
    sw = make_oracle(SW)
    for a in data:
        a.calc = sw
        a.get_potential_energy(), a.get_forces(), a.get_stress()
    training = {"n_members": 4, "cutoff": 5.0, "max_time": 60.0, "epochs": 300, "valid_fraction": 0.0}
    init = train(data, TrainConfig(**training, species=["Si"]), OUT / "init", progress=False)

    # 2. The search.
    cands = random_search_cells(["Si"] * 8, 20, volume_per_atom=20.0, min_distance=2.1, seed=0)
    settings = SearchSettings(training=dict(training, max_time=30.0), labels_per_round=6, max_rounds=8, n_check=3)
    res = StructureSearch(cands, ["Si"], init.model_path, data, SW, OUT / "search", settings).run()

    # 3. The truth: every random cell relaxed with SW.
    e_sw = {c.info["name"]: relax(c.copy(), make_oracle(SW), 0.01, 500)["energy"] for c in cands}
    best_sw = min(e_sw.values())
    lowest = res["minima"][0]
    summary = {"structures": len(cands), "rounds": res["rounds"], "oracle_calls_training": res["n_labels"],
               "distinct_minima": len(res["minima"]), "model_lowest": lowest["name"],
               "model_lowest_oracle_energy": lowest.get("oracle_energy"), "sw_lowest_of_all": best_sw,
               "found_sw_lowest": lowest.get("oracle_energy") is not None
               and abs(lowest["oracle_energy"] - best_sw) < 2e-3,
               "lowest_agrees": res["lowest_agrees"], "minutes": round((time.time() - t0) / 60, 1)}
    for m in res["minima"][:8]:
        print(f"{m['name']:5s} x{m['count']}  model {m['energy']:.4f}  SW (checked) {m.get('oracle_energy')}")
    print(json.dumps(summary))
