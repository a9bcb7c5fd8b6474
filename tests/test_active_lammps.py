"""The LAMMPS driver: pause on γ, swap the model in place, restart files with thermostat state.

The python backend (fix external) runs everywhere; the plugin backend (pair_style
mlal + fix mlal/extrapolation) is tested when the plugin is built.
"""
from __future__ import annotations

import numpy as np
import pytest

from mlal.active.lammps_driver import LammpsDriver, plugin_available

SYSTEM = """
units metal
atom_style atomic
lattice fcc 3.61
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 63.546
displace_atoms all random 0.05 0.05 0.05 8123
velocity all create 300 4928459 mom yes rot yes dist gaussian
"""
DYNAMICS = """
timestep 0.0005
neighbor 1.0 bin
fix nvt all nvt temp 300 600 0.05
"""

BACKENDS = ["python"] + (["plugin"] if plugin_available() else [])


@pytest.fixture(scope="module")
def cu_model(tmp_path_factory):
    from mlal.testing import random_model
    return random_model(tmp_path_factory.mktemp("m") / "cu.pt", species=["Cu"], n_members=2)


@pytest.fixture(scope="module")
def cu_gamma(cu_model):
    """γ of the starting configuration, from the ASE calculator (the known value)."""
    from ase_calculators import MlalCalculator
    d = LammpsDriver(cu_model, ["Cu"], SYSTEM, DYNAMICS, 10, backend="python")
    d.start()
    a = d.snapshot()
    d.close()
    a.calc = MlalCalculator(cu_model)
    a.get_potential_energy()
    return float(a.calc.results["gamma_max"])


def driver(model, backend, tmp_path, steps=40, **kw):
    d = LammpsDriver(model, ["Cu"], SYSTEM, DYNAMICS, steps, backend=backend,
                     candidates_file=tmp_path / f"cand_{backend}.extxyz", **kw)
    return d


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_and_break_on_known_gamma(cu_model, cu_gamma, backend, tmp_path):
    g0 = cu_gamma
    assert g0 > 1.0
    # select below γ, break far above: every check is a candidate, no break
    d = driver(cu_model, backend, tmp_path, steps=20, check_every=5, thermo_every=10,
               gamma_select=0.5 * g0, gamma_break=100 * g0)
    d.start()
    p = d.advance()
    assert p.reason == "done" and d.step == 20
    assert [a.info["step"] for a in p.candidates] == [5, 10, 15, 20] or \
        [a.info["step"] for a in p.candidates] == [0, 5, 10, 15, 20]
    d.close()
    # break below γ: stops at the first check, which is step 5 (step 0 when the plugin checks at setup)
    d = driver(cu_model, backend, tmp_path, steps=20, check_every=5, thermo_every=10,
               gamma_select=0.25 * g0, gamma_break=0.5 * g0)
    d.start()
    p = d.advance()
    assert p.reason == "break" and p.step in (0, 5) and p.gamma_max > 0.5 * g0
    assert p.candidates and p.candidates[-1].info["step"] == p.step
    # γ of the frame the driver kept equals the ASE calculator's γ of that frame
    from ase_calculators import MlalCalculator
    a = p.candidates[-1].copy()
    a.calc = MlalCalculator(cu_model)
    a.get_potential_energy()
    assert a.calc.results["gamma_max"] == pytest.approx(p.gamma_max, rel=1e-6)
    # skip_break_until lets it go past (what the campaign does after repeated breaks)
    d.skip_break_until = 20
    p = d.advance()
    assert p.reason == "done" and d.step == 20
    d.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_model_swap_and_restart_keep_the_trajectory(cu_model, backend, tmp_path):
    kw = dict(check_every=5, thermo_every=10, gamma_select=1e8, gamma_break=1e9)
    ref = driver(cu_model, backend, tmp_path, **kw)
    ref.start()
    ref.advance()
    x_ref, v_ref = ref.snapshot().positions, ref.velocities()
    ref.close()
    # pause at 20, "redeploy" (same file), continue: identical trajectory
    d = driver(cu_model, backend, tmp_path, **kw)
    d.start()
    d.advance(until=20)
    d.write_restart(tmp_path / "at20.restart")
    d.set_model(cu_model, version=1)
    d.advance()
    np.testing.assert_allclose(d.snapshot().positions, x_ref, atol=1e-9)
    np.testing.assert_allclose(d.velocities(), v_ref, atol=1e-9)
    d.close()
    # a new instance from the restart file (positions, velocities, box, fix nvt state)
    r = driver(cu_model, backend, tmp_path, **kw)
    r.start(restart=str(tmp_path / "at20.restart"))
    assert r.step == 20
    r.advance()
    np.testing.assert_allclose(r.snapshot().positions, x_ref, atol=1e-8)
    np.testing.assert_allclose(r.velocities(), v_ref, atol=1e-8)
    r.close()


@pytest.mark.skipif(not plugin_available(), reason="pair_style mlal plugin not built")
def test_checkpoint_then_continue_keeps_the_trajectory(cu_model, tmp_path):
    """Checkpoints (write_restart) every 10 steps change nothing. write_restart re-partitions
    the atoms (pbc, exchange, borders), so the run after it must not reuse the old neighbour
    lists: with `run ... pre no` the energy was off by tens of eV from step 71 on here.
    (The python backend builds its own neighbour lists; this random model also pulls atoms
    closer than its overlap check allows by step 80.)"""
    backend = "plugin"
    kw = dict(check_every=5, thermo_every=10, gamma_select=1e8, gamma_break=1e9)
    ref = driver(cu_model, backend, tmp_path, steps=120, **kw)
    ref.start()
    rows_ref = []
    ref.advance(progress=rows_ref.append)
    x_ref, v_ref = ref.snapshot().positions, ref.velocities()
    ref.close()
    d = driver(cu_model, backend, tmp_path, steps=120, **kw)
    d.start()
    rows = []
    for until in range(10, 121, 10):
        d.advance(until=until, progress=rows.append)
        d.write_restart(tmp_path / "ck.restart")
    pe = {r["step"]: r["pe"] for r in rows}
    assert len(rows_ref) >= 12
    for r in rows_ref:
        assert pe[r["step"]] == pytest.approx(r["pe"], rel=1e-9), r["step"]
    np.testing.assert_allclose(d.snapshot().positions, x_ref, atol=1e-7)
    np.testing.assert_allclose(d.velocities(), v_ref, atol=1e-7)
    d.close()


def test_restart_without_thermostat_state_differs(cu_model, tmp_path):
    """The continuity test above can fail: a fix nvt recreated with a fresh state drifts."""
    kw = dict(check_every=5, thermo_every=10, gamma_select=1e8, gamma_break=1e9, backend="python")
    ref = LammpsDriver(cu_model, ["Cu"], SYSTEM, DYNAMICS, 40, **kw)
    ref.start()
    ref.advance()
    v_ref = ref.velocities()
    ref.close()
    d = LammpsDriver(cu_model, ["Cu"], SYSTEM, DYNAMICS, 40, **kw)
    d.start()
    d.advance(until=20)
    d.write_restart(tmp_path / "r.restart")
    d.close()
    r = LammpsDriver(cu_model, ["Cu"], SYSTEM, DYNAMICS.replace("fix nvt", "fix other"), 40, **kw)  # new ID: state unused
    r.start(restart=str(tmp_path / "r.restart"))
    r.advance()
    assert np.abs(r.velocities() - v_ref).max() > 1e-6
    r.close()


@pytest.mark.skipif(not plugin_available(), reason="needs the LAMMPS plugin")
def test_model_driven_md_frames_are_labelled_by_the_oracle(cu_model):
    """``oracle_md_frames(potential=...)``: the model drives the MD, the oracle labels every frame
    (the benchmark's own-trajectory error)."""
    from mlal.active.oracles import LammpsCalculator
    from mlal.active.structures import oracle_md_frames
    oracle = {"pair_style": "eam", "pair_coeff": "* * Cu_u3.eam"}
    model = {"pair_style": "mlal uncertainty no", "pair_coeff": f"* * {cu_model} Cu"}
    own = oracle_md_frames(SYSTEM, DYNAMICS, 40, 20, oracle, ["Cu"], seed=7, potential=model)
    ref = oracle_md_frames(SYSTEM, DYNAMICS, 40, 20, oracle, ["Cu"], seed=7)
    assert [a.info["step"] for a in own] == [20, 40] and all(a.info["config_type"] == "model_md" for a in own)
    calc = LammpsCalculator("eam", "* * Cu_u3.eam", ["Cu"])
    for a, b in zip(own, ref):
        c = a.copy()
        c.calc = calc
        np.testing.assert_allclose(a.get_forces(), c.get_forces(), atol=1e-10)
        assert a.get_potential_energy() == pytest.approx(c.get_potential_energy(), abs=1e-9)
        assert np.abs(a.positions - b.positions).max() > 1e-3     # the model, not EAM, moved the atoms
