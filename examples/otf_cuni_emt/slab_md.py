"""ASE dynamics for slab_ase.yaml: a 48-atom Cu-Ni fcc(111) slab, Langevin at 800 K."""
import numpy as np
from ase import units
from ase.build import fcc111
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution


def make_atoms():
    a = fcc111("Cu", size=(3, 4, 4), a=3.56, vacuum=6.0, periodic=True)
    rng = np.random.default_rng(3)
    a.set_chemical_symbols(rng.choice(["Cu", "Ni"], size=len(a)).tolist())
    MaxwellBoltzmannDistribution(a, temperature_K=800, rng=rng)
    return a


def make_dynamics(atoms):
    return Langevin(atoms, 2 * units.fs, temperature_K=800, friction=0.02, rng=np.random.default_rng(4))
