"""Langevin MD of bcc Mo with an mlal ensemble, printing σ (ensemble force spread) and γ (extrapolation).

    .venv/bin/python examples/md_ase_uncertainty.py [MODEL] [--steps N] [--temperature K]

The calculator raises ExtrapolationError once gamma_max exceeds --gamma-break:
that is the moment an active-learning loop would stop MD and label the structure.
MODEL defaults as in examples/relax_ase.py.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ase_calculators.mlal import ExtrapolationError, MlalCalculator  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

p = argparse.ArgumentParser()
p.add_argument("model", nargs="?")
p.add_argument("--steps", type=int, default=200)
p.add_argument("--temperature", type=float, default=1500.0)
p.add_argument("--gamma-break", type=float, default=10.0)
args = p.parse_args()

if args.model:
    model = Path(args.model)
else:
    sys.argv = sys.argv[:1]
    from relax_ase import find_model  # noqa: E402  (same search; trains a small model if needed)
    model = find_model()

atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((3, 3, 3))
atoms.calc = MlalCalculator(model, gamma_break=args.gamma_break)
MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng(0))
dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=args.temperature, friction=0.02,
               rng=np.random.default_rng(1))


def report():
    r = atoms.calc.results
    print(f"step {dyn.nsteps:4d}  T = {atoms.get_temperature():6.0f} K  E = {r['energy']:.4f} eV  "
          f"max sigma = {r['sigma'].max():.4f} eV/Å  energy sigma = {r['energy_sigma'] * 1000:.2f} meV  "
          f"gamma_max = {r['gamma_max']:.3f}")


dyn.attach(report, interval=20)
try:
    dyn.run(args.steps)
    print(f"finished {args.steps} steps without extrapolation beyond gamma = {args.gamma_break}")
except ExtrapolationError as exc:
    print(f"stopped at step {dyn.nsteps}: {exc} (sigma_max = {exc.sigma_max:.3f} eV/Å) -> label this structure")
