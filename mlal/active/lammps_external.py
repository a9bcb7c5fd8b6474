"""The ``python`` backend of :class:`~mlal.active.lammps_driver.LammpsDriver`.

``pair_style zero`` + ``fix external pf/callback``: LAMMPS integrates, and every
step the callback hands the positions to :class:`~ase_calculators.MlalCalculator`
and returns its forces (eV/Å), energy (eV) and virial (eV); γ and σ are evaluated
every ``check_every`` steps. Serial only, and no plugin needed: it is what the
driver falls back to where ``pair_style mlal`` is not built.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
from ase import Atoms


class ExternalBackend:
    """Mixin for ``LammpsDriver``: the methods of its ``python`` backend.

    Uses the driver's ``lmp``, ``species``, ``model_path``, ``check_every``, ``_calc`` and
    ``_callback_error`` (both set in its ``__init__``), ``_box()``, ``_run_to()``, ``_measure()``,
    ``snapshot()`` and ``_end()``.
    """

    def _external_potential(self) -> None:
        from ase_calculators import MlalCalculator
        self._calc = MlalCalculator(self.model_path, uncertainty=True)
        self.cmd(f"pair_style zero {float(self._calc.cutoff)!r} nocoeff")
        self.cmd("pair_coeff * *")
        self.cmd("fix mlal_ext all external pf/callback 1 1")
        self.cmd("fix_modify mlal_ext energy yes virial yes")
        self.lmp.set_fix_external_callback("mlal_ext", self._callback, self)

    def _callback(self, caller, ntimestep, nlocal, tag, x, f):
        try:
            calc = self._calc
            types = np.asarray(self.lmp.numpy.extract_atom("type"))[:nlocal]
            lo, cell, pbc = self._box()
            symbols = [self.species[t - 1] for t in types]
            atoms = Atoms(symbols, positions=np.array(x[:nlocal]) - lo, cell=cell, pbc=pbc)
            check = ntimestep % self.check_every == 0
            calc.uncertainty = check
            calc.results = {}
            calc.calculate(atoms, ["energy", "forces"], ["positions"])
            r = calc.results
            f[:nlocal] = r["forces"]
            self.lmp.fix_external_set_energy_global("mlal_ext", float(r["energy"]))
            if "stress" in r:
                s = -np.asarray(r["stress"]) * atoms.get_volume()     # virial W (eV), Voigt xx yy zz yz xz xy
                self.lmp.fix_external_set_virial_global("mlal_ext", [s[0], s[1], s[2], s[5], s[4], s[3]])
            if check:
                self._last = {"step": int(ntimestep), "gamma_max": float(r["gamma_max"]),
                              "sigma_max": float(np.max(r["sigma"])) if len(r["sigma"]) else 0.0}
        except BaseException as exc:  # noqa: BLE001  (an exception must not vanish inside LAMMPS)
            self._callback_error = exc
            f[:nlocal] = 0.0

    def _advance_external(self, until: int, max_candidates: Optional[int], progress):
        """``LammpsDriver.advance`` for this backend: γ/σ checks every ``check_every`` steps."""
        from .lammps_driver import DriverError, Pause
        candidates: List[Atoms] = []
        while self.step < until:
            self._run_to(min(until, (self.step // self.check_every + 1) * self.check_every))
            if self._callback_error is not None:
                err, self._callback_error = self._callback_error, None
                raise DriverError(f"the mlal model failed at step {self.step}: "
                                  f"{type(err).__name__}: {err}") from err
            if self.step % self.check_every:
                continue
            row = self._measure()
            if self.step % self.thermo_every == 0 or row["gamma_max"] > self.gamma_break:
                self.thermo_rows.append(row)
            if progress is not None:
                progress(row)
            g, s = row["gamma_max"], row["sigma_max"]
            sel = g > self.gamma_select or (self.sigma_select is not None and s > self.sigma_select)
            brk = g > self.gamma_break or (self.sigma_break is not None and s > self.sigma_break)
            brk = brk and self.step > self.skip_break_until
            if sel or brk:
                candidates.append(self.snapshot())
            if brk:
                return Pause("break", self.step, g, s, candidates)
            if max_candidates is not None and len(candidates) >= max_candidates:
                return Pause("candidates", self.step, g, s, candidates)
        return self._end(candidates)
