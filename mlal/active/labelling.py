"""Labelling configurations with an oracle, in parallel, with failures recorded.

Oracle calls go through any :class:`concurrent.futures.Executor`: by default a
process pool (``spawn``: workers do not inherit the parent's LAMMPS/torch
state); on a cluster pass ``mpi4py.futures.MPIPoolExecutor()``.

A call fails (and is reported, never used) when the oracle raises, returns a
non-finite or missing energy/forces/stress, reports non-convergence, returns
forces above ``max_force`` (eV/Å), or runs longer than ``timeout`` seconds.
"""
from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import multiprocessing
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from ase import Atoms

from .oracles import make_oracle

# Calculators built inside a worker, reused across calls (LAMMPS instances, QE dirs).
_CACHE: Dict[str, Any] = {}


class OracleTimeout(Exception):
    """The oracle ran longer than the allowed time."""


class OracleFailure(Exception):
    """The oracle returned something unusable (NaN, non-converged, wrong shape)."""


@dataclass
class LabelResult:
    """Outcome of one oracle call: labels, or the reason it failed."""

    key: str
    ok: bool
    energy: Optional[float] = None
    forces: Optional[np.ndarray] = None
    stress: Optional[np.ndarray] = None
    error: str = ""
    seconds: float = 0.0
    info: Dict[str, Any] = field(default_factory=dict)


def _oracle_for(spec) -> Any:
    if isinstance(spec, dict):
        k = repr(sorted(spec.items()))
        if k not in _CACHE:
            _CACHE[k] = make_oracle(spec)
        return _CACHE[k]
    return make_oracle(spec)


def _alarm(signum, frame):
    raise OracleTimeout("oracle call timed out")


def check_labels(n_atoms: int, energy, forces, stress, max_force: Optional[float] = None,
                 converged: Optional[bool] = None):
    """Validate oracle output; returns ``(energy, forces, stress)`` or raises :class:`OracleFailure`."""
    if converged is False:
        raise OracleFailure("the oracle reports a non-converged calculation")
    if energy is None:
        raise OracleFailure("no energy returned")
    energy = float(energy)
    if not np.isfinite(energy):
        raise OracleFailure(f"energy is {energy}")
    if forces is None:
        raise OracleFailure("no forces returned")
    forces = np.array(forces, dtype=float)
    if forces.shape != (n_atoms, 3):
        raise OracleFailure(f"forces have shape {forces.shape}, expected ({n_atoms}, 3)")
    if not np.all(np.isfinite(forces)):
        raise OracleFailure("forces contain NaN/inf")
    if max_force is not None and np.abs(forces).max() > max_force:
        raise OracleFailure(f"max |force| {np.abs(forces).max():.3g} eV/Å > max_force={max_force}: unphysical")
    if stress is not None:
        stress = np.array(stress, dtype=float).reshape(-1)
        if stress.shape == (9,):
            stress = stress.reshape(3, 3).flat[[0, 4, 8, 5, 2, 1]]
        if stress.shape != (6,) or not np.all(np.isfinite(stress)):
            raise OracleFailure(f"stress is not 6 finite numbers: {stress}")
    return energy, forces, stress


def label_one(key: str, atoms: Atoms, spec, timeout: Optional[float] = None,
              max_force: Optional[float] = None) -> LabelResult:
    """Run the oracle on one configuration; never raises (the failure is in the result)."""
    t0 = time.time()
    use_alarm = (timeout is not None and timeout > 0 and hasattr(signal, "setitimer")
                 and threading.current_thread() is threading.main_thread())
    old = None
    try:
        if use_alarm:
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        calc = _oracle_for(spec)
        a = atoms.copy()
        a.calc = calc
        energy = a.get_potential_energy()
        forces = a.get_forces()
        stress = None
        if a.pbc.all() and "stress" in getattr(calc, "implemented_properties", ()):
            stress = a.get_stress(voigt=True)
        converged = getattr(calc, "converged", None)
        if converged is None and isinstance(getattr(calc, "results", None), dict):
            converged = calc.results.get("converged")
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        energy, forces, stress = check_labels(len(a), energy, forces, stress, max_force,
                                              None if converged is None else bool(converged))
        return LabelResult(key, True, energy, forces, stress, seconds=time.time() - t0)
    except OracleTimeout:
        return LabelResult(key, False, error=f"timeout after {timeout} s", seconds=time.time() - t0)
    except OracleFailure as exc:
        return LabelResult(key, False, error=f"invalid result: {exc}", seconds=time.time() - t0)
    except BaseException as exc:  # noqa: BLE001  (an oracle may raise anything, even SystemExit)
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return LabelResult(key, False, error=f"oracle raised {tb}", seconds=time.time() - t0)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if old is not None:
                signal.signal(signal.SIGALRM, old)


def _worker_init() -> None:
    """Worker set-up: one OpenMP thread, and no inherited MPI launcher variables (a worker
    spawned by an ``mpirun`` rank must initialise MPI as a singleton of its own)."""
    for k in list(os.environ):
        if k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_")):
            os.environ.pop(k, None)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_executor(kind: str = "process", workers: int = 1) -> cf.Executor:
    """``process`` (spawned pool), ``thread``, ``serial`` (in-process) or ``mpi`` (MPIPoolExecutor)."""
    if kind == "process":
        return cf.ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_worker_init)
    if kind == "thread":
        return cf.ThreadPoolExecutor(max_workers=max(1, workers))
    if kind == "serial":
        return SerialExecutor()
    if kind == "mpi":
        from mpi4py.futures import MPIPoolExecutor
        return MPIPoolExecutor(max_workers=workers or None)
    raise ValueError(f"executor must be process, thread, serial or mpi, got {kind!r}")


class SerialExecutor(cf.Executor):
    """Runs each call at submission, in this process (debugging, tiny oracles)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut


def _kill_pool(executor: cf.Executor) -> None:
    """Terminate the workers of a process pool whose calls hang (timeout the alarm missed)."""
    procs = getattr(executor, "_processes", None) or {}
    for p in list(procs.values()):
        try:
            p.kill()
        except Exception:  # noqa: BLE001
            pass
    executor.shutdown(wait=False, cancel_futures=True)


class Labeller:
    """Labels batches through an executor, calling ``on_result`` as each call finishes.

    Args:
        spec: oracle spec (dict) or ASE calculator.
        executor: an Executor, or ``None`` to create one of ``executor_kind``.
        timeout: seconds per call (enforced in the worker by SIGALRM, and by the
            parent, which kills a hung process pool and starts a new one).
        max_force: eV/Å above which a result counts as unphysical.
    """

    def __init__(self, spec, executor: Optional[cf.Executor] = None, executor_kind: str = "process",
                 workers: int = 1, timeout: Optional[float] = None, max_force: Optional[float] = None):
        self.spec = spec
        self.timeout = timeout
        self.max_force = max_force
        self._own = executor is None
        self.executor_kind = executor_kind
        self.workers = workers
        self.executor = executor

    def _exec(self) -> cf.Executor:
        if self.executor is None:
            self.executor = make_executor(self.executor_kind, self.workers)
        return self.executor

    def label(self, items: Sequence[tuple], on_result: Optional[Callable[[LabelResult], None]] = None
              ) -> List[LabelResult]:
        """Label ``items`` = ``[(key, atoms), ...]``; results in the order given."""
        if not items:
            return []
        ex = self._exec()
        futs = {ex.submit(label_one, key, atoms, self.spec, self.timeout, self.max_force): key
                for key, atoms in items}
        results: Dict[str, LabelResult] = {}
        grace = None if self.timeout is None else self.timeout * 2 + 30.0 * (1 + len(items) // max(1, self.workers))
        try:
            for fut in cf.as_completed(futs, timeout=grace):
                key = futs[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001  (worker crashed, pool broken...)
                    hint = (" (the worker process died: out of memory, a crash inside the oracle, or a "
                            "script that starts the campaign without `if __name__ == '__main__':`, which "
                            "spawned workers re-run)") if isinstance(exc, BrokenProcessPool) else ""
                    res = LabelResult(key, False, error=f"worker failed: {type(exc).__name__}: {exc}{hint}")
                results[key] = res
                if on_result:
                    on_result(res)
        except cf.TimeoutError:
            for fut, key in futs.items():
                if key not in results:
                    res = LabelResult(key, False, error=f"timeout: no answer within {grace:.0f} s")
                    results[key] = res
                    if on_result:
                        on_result(res)
            if self._own:
                _kill_pool(self.executor)
                self.executor = None
        # A broken pool (a worker killed by the OOM killer, os._exit...) is replaced.
        if self._own and self.executor is not None and getattr(self.executor, "_broken", False):
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None
        return [results[key] for key, _ in items]

    def close(self) -> None:
        if self._own and self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None
