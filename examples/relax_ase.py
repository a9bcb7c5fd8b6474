"""Relax a Mo vacancy with an mlal model through ASE, watching σ and γ.

    .venv/bin/python examples/relax_ase.py [MODEL]

MODEL defaults to benchmarks/models/Mo/model.pt (from benchmarks/mlearn.py),
then runs/example_python/model.pt (from examples/train_python.py); if neither
exists a small model is trained on examples/data first (about a minute).
"""
import sys
from pathlib import Path

import warnings

import numpy as np
import torch
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ase_calculators.mlal import MlalCalculator  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="logm result may be inaccurate")
ROOT = Path(__file__).resolve().parents[1]


def find_model() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    for p in (ROOT / "benchmarks/models/Mo/model.pt", ROOT / "runs/example_python/model.pt"):
        if p.is_file():
            return p
    from mlal.data.io import read_structures
    from mlal.train import TrainConfig, train
    print("no trained Mo model found: training a small one on examples/data ...")
    res = train(read_structures(ROOT / "examples/data/Mo_mlearn_subset.xyz"),
                TrainConfig(n_members=3, epochs=10), ROOT / "runs/example_relax", progress=False)
    return res.model_path


model = find_model()
atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((3, 3, 3))
del atoms[0]                                   # a vacancy
atoms.rattle(0.02, seed=0)
atoms.calc = MlalCalculator(model)              # uncertainty on: results carry sigma and gamma
e0 = atoms.get_potential_energy()
print(f"model {model}: {len(atoms)} atoms, E = {e0:.4f} eV, gamma_max = {atoms.calc.results['gamma_max']:.3f}")

opt = BFGS(FrechetCellFilter(atoms), logfile=None)
for step, _ in enumerate(opt.irun(fmax=0.01, steps=200)):
    if step % 10 == 0:
        r = atoms.calc.results
        print(f"step {step:3d}  E = {r['energy']:.5f} eV  fmax = {np.abs(r['forces']).max():.4f} eV/Å  "
              f"max sigma = {r['sigma'].max():.4f} eV/Å  gamma_max = {r['gamma_max']:.3f}")
r = atoms.calc.results
print(f"relaxed: E = {r['energy']:.5f} eV ({r['energy'] - e0:+.4f}), volume {atoms.get_volume():.2f} Å^3, "
      f"stress {np.round(r['stress'] * 160.2177, 3)} GPa, gamma_max = {r['gamma_max']:.3f}")
