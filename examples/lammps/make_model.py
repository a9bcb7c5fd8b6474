"""Write a small random (untrained) mlal model for trying the LAMMPS examples.

    python make_model.py [model.pt] [--species Mo] [--dtype float64|float32]

A random model gives valid energies, forces, gamma and sigma, but its physics is
meaningless: use a trained model (``mlal train`` / ``mlal deploy``) for real work.
"""
import argparse

from mlal.testing import random_model

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("path", nargs="?", default="model.pt")
p.add_argument("--species", nargs="+", default=["Mo"])
p.add_argument("--members", type=int, default=3)
p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
args = p.parse_args()
print(random_model(args.path, species=args.species, n_members=args.members, dtype=args.dtype))
