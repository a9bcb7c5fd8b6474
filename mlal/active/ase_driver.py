"""The ASE twin of :class:`~mlal.active.lammps_driver.LammpsDriver`: ASE MD or optimizers.

The user script (``ase.script`` in the campaign file) defines two functions::

    def make_atoms():                 # the starting Atoms (velocities set for MD)
        ...                           # (with ase.passes > 1: make_atoms(pass_index),
                                      #  other velocities for each pass 0, 1, ...)
    def make_dynamics(atoms):         # an ASE MolecularDynamics or Optimizer on atoms
        ...                           # (atoms.calc is already the mlal calculator)

The driver gives the atoms an :class:`~ase_calculators.MlalCalculator` with
``gamma_break`` (and ``sigma_break``): the calculator raises
:class:`~ase_calculators.mlal.ExtrapolationError` as soon as a force call
extrapolates. The driver then keeps that configuration as the candidate that
caused the break, puts the atoms back to the last *completed* step (positions,
momenta, cell, step counter) and returns; after retraining,
:meth:`AseDriver.set_model` swaps the calculator and :meth:`advance` goes on from
that very step. Every ``check_every`` completed steps, configurations with
γ > ``gamma_select`` are kept as candidates too.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from ase import Atoms

from .lammps_driver import DriverError, Pause


def load_script(path):
    """Import the user's script as a module and check it defines the two functions."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"mlal_ase_script_{abs(hash(str(path)))}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in ("make_atoms", "make_dynamics"):
        if not callable(getattr(mod, name, None)):
            raise DriverError(f"{path}: the ASE script must define {name}() (see mlal.active.ase_driver)")
    return mod


class AseDriver:
    """ASE dynamics with an mlal model, pausing where it extrapolates (see the module docstring)."""

    def __init__(self, model_path, species, script, total_steps: int, check_every: int = 10,
                 gamma_select: float = 2.0, gamma_break: float = 5.0, sigma_select: Optional[float] = None,
                 sigma_break: Optional[float] = None, thermo_every: int = 100, model_version: int = 0,
                 comm=None, pass_index: int = 0, **_ignored):
        self.model_path = str(model_path)
        self.species = list(species)
        self.script = load_script(script)
        self.total_steps = int(total_steps)
        self.check_every = max(1, int(check_every))
        self.thermo_every = max(self.check_every, int(thermo_every) // self.check_every * self.check_every)
        self.gamma_select = float(gamma_select)
        self.gamma_break = float(gamma_break)
        self.sigma_select = sigma_select
        self.sigma_break = sigma_break
        self.model_version = model_version
        self.pass_index = int(pass_index)
        import inspect
        self._make_takes_pass = len(inspect.signature(self.script.make_atoms).parameters) > 0
        self.rank = 0
        self.skip_break_until = -1
        self.atoms: Optional[Atoms] = None
        self.dyn = None
        self.thermo_rows: List[Dict[str, Any]] = []
        self.timings = {"md_seconds": 0.0, "steps": 0}
        self._saved = None
        self._last = {"gamma_max": 0.0, "sigma_max": 0.0}

    # ------------------------------------------------------------------ set-up
    def _calculator(self):
        from ase_calculators import MlalCalculator
        return MlalCalculator(self.model_path, uncertainty=True, gamma_break=self.gamma_break,
                              sigma_break=self.sigma_break)

    def start(self, restart: Optional[str] = None) -> None:
        atoms = self.script.make_atoms(self.pass_index) if self._make_takes_pass else self.script.make_atoms()
        if not isinstance(atoms, Atoms):
            raise DriverError(f"make_atoms() must return ase.Atoms, got {type(atoms).__name__}")
        step = 0
        if restart:
            import ase.io
            saved = ase.io.read(restart, format="extxyz")
            if len(saved) != len(atoms):
                raise DriverError(f"restart {restart} has {len(saved)} atoms, make_atoms() gives {len(atoms)}")
            atoms.set_cell(saved.cell, scale_atoms=False)
            atoms.positions = saved.positions
            atoms.set_momenta(saved.arrays["momenta_saved"])
            step = int(saved.info["step"])
        atoms.calc = self._calculator()
        self.atoms = atoms
        self.dyn = self.script.make_dynamics(atoms)
        self.dyn.nsteps = step
        self.is_md = hasattr(self.dyn, "dt")
        self._save()

    def set_model(self, model_path, version: Optional[int] = None) -> None:
        self.model_path = str(model_path)
        if version is not None:
            self.model_version = version
        self.atoms.calc = self._calculator()
        # Optimizers cache the Optimizable of atoms; make sure they see the new calculator.
        if hasattr(self.dyn, "optimizable") and hasattr(self.dyn.optimizable, "atoms"):
            self.dyn.optimizable.atoms.calc = self.atoms.calc

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        return int(self.dyn.nsteps)

    def _save(self) -> None:
        a = self.atoms
        self._saved = (a.positions.copy(), a.get_momenta().copy(), a.cell.array.copy(), int(self.dyn.nsteps))

    def _restore(self) -> None:
        pos, mom, cell, n = self._saved
        self.atoms.set_cell(cell, scale_atoms=False)
        self.atoms.positions = pos
        self.atoms.set_momenta(mom)
        self.dyn.nsteps = n
        self.atoms.calc.results = {}

    def snapshot(self) -> Atoms:
        a = Atoms(self.atoms.get_chemical_symbols(), positions=self.atoms.positions, cell=self.atoms.cell,
                  pbc=self.atoms.pbc)
        a.info.update(step=self.step, gamma_max=self._last["gamma_max"], sigma_max=self._last["sigma_max"],
                      model_version=self.model_version)
        a.info["pass"] = self.pass_index
        return a

    def velocities(self) -> np.ndarray:
        return self.atoms.get_velocities()

    def write_restart(self, path) -> None:
        """Positions, momenta, cell and step of the last completed step (extxyz, atomic)."""
        from .store import atomic_write_extxyz
        pos, mom, cell, n = self._saved
        a = Atoms(self.atoms.get_chemical_symbols(), positions=pos, cell=cell, pbc=self.atoms.pbc)
        a.arrays["momenta_saved"] = mom
        a.info["step"] = n
        atomic_write_extxyz(Path(path), [a])

    # ------------------------------------------------------------------ running
    def _row(self) -> Dict[str, Any]:
        a = self.atoms
        r = a.calc.results
        ekin = a.get_kinetic_energy()
        dof = max(1, 3 * len(a) - 3)
        from ase import units
        t_fs = self.step * (self.dyn.dt / units.fs) if self.is_md else float(self.step)
        return {"step": self.step, "time": t_fs / 1000.0, "temp": 2 * ekin / (dof * units.kB),
                "pe": float(r.get("energy", np.nan)), "etotal": float(r.get("energy", np.nan)) + ekin,
                "vol": float(a.get_volume()) if a.pbc.all() else np.nan,
                "gamma_max": float(r.get("gamma_max", 0.0)),
                "sigma_max": float(np.max(r["sigma"])) if "sigma" in r and len(r["sigma"]) else 0.0,
                "model_version": self.model_version}

    def advance(self, until: Optional[int] = None, max_candidates: Optional[int] = None,
                progress=None) -> Pause:
        from ase_calculators.mlal import ExtrapolationError
        until = self.total_steps if until is None else min(int(until), self.total_steps)
        candidates: List[Atoms] = []
        t0, s0 = time.time(), self.step
        try:
            while self.step < until:
                calc = self.atoms.calc
                calc.gamma_break = self.gamma_break if self.step + 1 > self.skip_break_until else None
                calc.sigma_break = self.sigma_break if self.step + 1 > self.skip_break_until else None
                try:
                    if self.is_md:
                        self.dyn.run(1)
                    else:
                        self.dyn.run(fmax=getattr(self.script, "fmax", 0.01), steps=1)
                        # Optimizer.run(steps=1) counts from its own start; keep our counter explicit
                except ValueError as exc:
                    if "overlapping atoms" not in str(exc):
                        raise
                    if self.step + 1 <= self.skip_break_until:
                        raise DriverError(f"step {self.step + 1}: {exc}, even after retraining") from None
                    # the model pulled two atoms together within one step: treat it as a break
                    # at the last completed step, whose configuration is what gets labelled
                    self._restore()
                    cand = self.snapshot()
                    cand.info.update(overlap=str(exc))
                    candidates.append(cand)
                    self.thermo_rows.append({"step": self.step + 1, "gamma_max": 1e9, "sigma_max": 0.0,
                                             "model_version": self.model_version, "event": "break"})
                    return Pause("break", self.step, 1e9, 0.0, candidates)
                except ExtrapolationError as exc:
                    self._last = {"gamma_max": exc.gamma_max, "sigma_max": exc.sigma_max}
                    cand = Atoms(self.atoms.get_chemical_symbols(), positions=self.atoms.positions,
                                 cell=self.atoms.cell, pbc=self.atoms.pbc)
                    cand.info.update(step=self.step + 1, gamma_max=exc.gamma_max, sigma_max=exc.sigma_max,
                                     model_version=self.model_version)
                    cand.info["pass"] = self.pass_index
                    candidates.append(cand)
                    self._restore()
                    row = {"step": self.step + 1, "gamma_max": exc.gamma_max, "sigma_max": exc.sigma_max,
                           "model_version": self.model_version, "event": "break"}
                    self.thermo_rows.append(row)
                    return Pause("break", self.step, exc.gamma_max, exc.sigma_max, candidates)
                if not self.is_md and self.dyn.nsteps == self._saved[3]:
                    self.dyn.nsteps += 1          # some optimizers do not count a converged step
                self._save()
                if not self.is_md and self.dyn.converged(self.atoms.get_forces()):
                    self.total_steps = self.step
                if self.step % self.check_every and self.step < until:
                    continue
                row = self._row()
                self._last = {"gamma_max": row["gamma_max"], "sigma_max": row["sigma_max"]}
                if self.step % self.thermo_every == 0 or self.step >= self.total_steps:
                    self.thermo_rows.append(row)
                if progress is not None:
                    progress(row)
                g, s = row["gamma_max"], row["sigma_max"]
                if g > self.gamma_select or (self.sigma_select is not None and s > self.sigma_select):
                    candidates.append(self.snapshot())
                if max_candidates is not None and len(candidates) >= max_candidates:
                    return Pause("candidates", self.step, g, s, candidates)
            reason = "done" if self.step >= self.total_steps else "until"
            return Pause(reason, self.step, self._last["gamma_max"], self._last["sigma_max"], candidates)
        finally:
            self.timings["md_seconds"] += time.time() - t0
            self.timings["steps"] += self.step - s0

    def take_thermo(self) -> List[Dict[str, Any]]:
        """The trajectory rows since the last call, each with its ``pass``."""
        rows, self.thermo_rows = self.thermo_rows, []
        return [dict(r, **{"pass": self.pass_index}) for r in rows]

    def close(self) -> None:
        self.dyn = None
