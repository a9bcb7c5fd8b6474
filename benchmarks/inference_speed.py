"""Inference speed through the ASE calculator: µs per atom per step, one thread.

A 2,000-atom bcc Mo cell (10×10×10 conventional cells, slightly rattled) is
evaluated repeatedly by :class:`ase_calculators.mlal.MlalCalculator` (neighbour
list + model + force/virial assembly), with and without the uncertainty
outputs (σ, γ), for the float64 and float32 exports of the same model. The
model is ``benchmarks/models/Mo/model.pt`` when it exists (trained by
``benchmarks/mlearn.py``), otherwise an untrained model of the default
architecture (same cost).

The calculator tunes glibc malloc once per process
(:func:`mlal.deploy.runtime.tune_malloc`); run with ``MLAL_MALLOC_TUNING=0``
to measure without it.

The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_models(path: Path, workdir: Path):
    from mlal.deploy import export_model
    from mlal.train.checkpoint import model_from_init
    if path.is_file():
        eager = model_from_init(path)
        source = str(path)
    else:
        from mlal.testing import random_model
        tmp = random_model(workdir / "random.pt", species=["Mo"], n_members=5)
        eager = model_from_init(tmp)
        source = "untrained default architecture (benchmarks/models/Mo/model.pt not found)"
    out = {}
    for dtype in ("float64", "float32"):
        out[dtype] = export_model(eager, workdir / f"mo_{dtype}.pt", dtype=dtype)
    return out, source, eager.n_members


def time_calc(model_path: Path, atoms, uncertainty: bool, steps: int, warmup: int = 4) -> float:
    """Mean seconds per force call (positions change slightly every step, as in MD)."""
    from ase_calculators.mlal import MlalCalculator
    calc = MlalCalculator(model_path, uncertainty=uncertainty)
    a = atoms.copy()
    a.calc = calc
    rng = np.random.default_rng(0)
    times = []
    for k in range(warmup + steps):
        a.positions += 1e-3 * rng.standard_normal(a.positions.shape)
        t0 = time.perf_counter()
        a.get_forces()
        if uncertainty:
            assert "gamma" in calc.results
        times.append(time.perf_counter() - t0)
    return float(np.median(times[warmup:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks" / "models" / "Mo" / "model.pt"))
    p.add_argument("--repeat", type=int, default=10, help="cell repetitions per direction (2·n³ atoms)")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ase.build import bulk
    atoms = bulk("Mo", "bcc", a=3.16, cubic=True).repeat((args.repeat,) * 3)
    atoms.rattle(0.03, seed=1)
    n = len(atoms)
    results = {"n_atoms": n, "threads": torch.get_num_threads(), "steps": args.steps,
               "malloc_tuning": os.environ.get("MLAL_MALLOC_TUNING", "1") != "0"}
    with tempfile.TemporaryDirectory() as tmp:
        models, source, K = make_models(Path(args.model), Path(tmp))
        results.update({"model": source, "n_members": K})
        for dtype, path in models.items():
            for unc in (False, True):
                t = time_calc(path, atoms, unc, args.steps)
                results[f"{dtype}_{'with' if unc else 'no'}_uncertainty_us_per_atom"] = t / n * 1e6
                print(f"{n} atoms  {dtype}  uncertainty={'on ' if unc else 'off'}  "
                      f"{t * 1e3:8.1f} ms/step  {t / n * 1e6:7.2f} µs/atom", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
