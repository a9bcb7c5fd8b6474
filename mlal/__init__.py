"""mlal: machine-learning interatomic potentials with active learning.

Rooms: ``mlal.data`` (reading and checking ab initio data, neighbour lists),
``mlal.nn`` (descriptor and ensemble model), ``mlal.train`` (fitting),
``mlal.uncertainty`` (MaxVol active sets, gamma), ``mlal.deploy`` (one-file
TorchScript export and loading), ``mlal.integrations`` (LAMMPS), ``mlal.active``
(learning on the fly), ``mlal.cli`` (the ``mlal`` command).

Units everywhere inside: eV, Å, eV/Å, eV/Å³. GPa appears only in printed output.
"""
__version__ = "0.1.0"
