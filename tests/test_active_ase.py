"""The ASE twin: MlalCalculator raises on γ > break, the driver labels, retrains, continues
from the same atoms and velocities; oracle failures are recorded and skipped."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlal.active.ase_driver import AseDriver
from mlal.active.campaign import Campaign
from mlal.active.config import ConfigError

TINY = {"epochs": 4, "n_members": 2, "latent": 8, "hidden": 8, "channels": [4, 2, 2, 1], "n_basis": 4,
        "valid_fraction": 0.0, "ema_decay": 0.0, "cutoff": 4.5}

SCRIPT = textwrap.dedent('''
    import numpy as np
    from ase.build import bulk
    from ase.md.verlet import VelocityVerlet
    from ase import units

    def make_atoms():
        a = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 1)
        a.set_momenta(np.random.default_rng(1).normal(size=(len(a), 3)) * np.sqrt(1500 * units.kB * a.get_masses()[:, None]))
        return a

    def make_dynamics(atoms):
        return VelocityVerlet(atoms, 2 * units.fs)
''')
# gentler MD for tests about something else than the MD: a tiny model trained on few labels can
# push atoms together at 1500 K and 2 fs on some CPUs
GENTLE = SCRIPT.replace("1500", "600").replace("2 * units.fs", "1 * units.fs")


class FlakyEMT(EMT):
    """EMT that fails on about one configuration in three (deterministically)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if int(abs(atoms.positions.sum()) * 1000) % 3 == 0:
            raise RuntimeError("SCF did not converge (simulated)")
        super().calculate(atoms, properties, system_changes)


def flaky_emt():
    return FlakyEMT()


def campaign_cfg(tmp_path, script=SCRIPT, **over):
    (tmp_path / "md.py").write_text(script)
    cfg = {"species": ["Cu"], "engine": "ase", "workdir": str(tmp_path / "camp"), "progress": False,
           "oracle": {"type": "emt", "executor": "serial"},
           "initial": {"random": {"n": 3, "rattle": 0.05}},
           "validation": {"random": {"n": 2, "rattle": 0.2, "supercell": [2, 1, 1]}},
           "ase": {"script": str(tmp_path / "md.py"), "steps": 24, "check_every": 4, "thermo_every": 4,
                   "checkpoint_every": 12},
           "selection": {"gamma_select": 1.2, "gamma_break": 2.0, "batch_size": 2},
           "training": dict(TINY), "retraining": {"epochs": 2}, "budget": {"max_iterations": 30}, "report": False}
    cfg.update(over)
    return cfg


def test_ase_driver_continues_from_the_same_state(tmp_path):
    from mlal.testing import random_model
    model = random_model(tmp_path / "cu.pt", species=["Cu"], n_members=2)
    # an untrained model: gentle MD (300 K, 0.2 fs) so that atoms stay apart
    (tmp_path / "md.py").write_text(SCRIPT.replace("1500", "300").replace("2 * units.fs", "0.2 * units.fs"))
    d = AseDriver(model, ["Cu"], tmp_path / "md.py", total_steps=30, check_every=2, gamma_select=1.0,
                  gamma_break=1e9)
    d.start()
    p = d.advance()
    assert p.reason == "done" and d.step == 30 and p.candidates        # γ > 1: all checks are candidates
    ref_pos = d.atoms.positions.copy()
    # same run with a break after the 10th step: the driver goes back to step 10 exactly
    d2 = AseDriver(model, ["Cu"], tmp_path / "md.py", total_steps=30, check_every=2, gamma_select=1e8,
                   gamma_break=1e9)
    d2.start()
    d2.advance(until=10)
    pos10, mom10 = d2.atoms.positions.copy(), d2.atoms.get_momenta().copy()
    d2.gamma_break = 0.5                                                 # any γ breaks now
    p = d2.advance()
    assert p.reason == "break" and p.step == 10 and len(p.candidates) == 1
    assert p.candidates[0].info["step"] == 11
    assert not np.allclose(p.candidates[0].positions, pos10)             # the extrapolative configuration
    np.testing.assert_array_equal(d2.atoms.positions, pos10)             # ...but the MD is back at step 10
    np.testing.assert_array_equal(d2.atoms.get_momenta(), mom10)
    d2.gamma_break = 1e9
    d2.set_model(model)                                                  # "retrained" (same model)
    d2.advance()
    assert d2.step == 30
    np.testing.assert_allclose(d2.atoms.positions, ref_pos, atol=1e-10)  # identical trajectory


def test_ase_campaign_learns_and_finishes(tmp_path):
    summary = Campaign(campaign_cfg(tmp_path, final_training={"epochs": 3})).run()
    assert summary["step_reached"] == 24
    assert summary["iterations"] >= 1 and summary["labels"]["otf"] >= 1
    assert summary["oracle_calls"]["initial"] == 3
    camp = tmp_path / "camp"
    journal = [json.loads(line) for line in open(camp / "journal.jsonl")]
    events = [r["event"] for r in journal]
    for e in ("start", "model", "pause", "decision", "oracle_call", "md_done", "done"):
        assert e in events, e
    models = [r for r in journal if r["event"] == "model"]
    assert [m["version"] for m in models] == list(range(len(models)))
    assert all(m["validation"]["force_rmse"] > 0 for m in models)
    # retrainings during the MD warm-start (retraining: 2 epochs); the final model starts from
    # scratch on every label with training + final_training settings (3 epochs)
    starts = [r for r in journal if r["event"] == "train_start"]
    assert [s["init"] is None for s in starts] == [True] + [False] * (len(starts) - 2) + [True]
    assert [m["metrics"]["epochs"] for m in models] == [4] + [2] * (len(models) - 2) + [3]
    assert models[-1]["n_structures"] == summary["labels"]["initial"] + summary["labels"]["otf"]
    assert (camp / "model.pt").exists()
    from mlal.active.report import write_report
    from mlal.active.store import CampaignStore
    # the final model frame by frame: the frames' RMSEs make up the validation RMSE, and γ_max is
    # what the calculator reports on that frame
    from ase_calculators import MlalCalculator
    fr, valid = summary["validation_frames"], CampaignStore(camp).labels("validation")
    assert len(fr) == len(valid) == models[-1]["validation"]["n_frames"] == 2
    sizes = np.array([len(it.atoms) for it in valid])
    rms = np.sqrt(np.sum(sizes * np.array([f["force_rmse"] for f in fr]) ** 2) / sizes.sum())
    assert np.isclose(rms, models[-1]["validation"]["force_rmse"], rtol=1e-6)
    for f, it in zip(fr, valid):
        a = it.atoms.copy()
        a.calc = MlalCalculator(str(camp / "model.pt"))
        a.get_forces()
        assert np.isclose(f["gamma_max"], a.calc.results["gamma_max"], rtol=1e-9) and f["gamma_max"] > 0
        assert np.isclose(f["sigma_max"], a.calc.results["sigma"].max(), rtol=1e-9)
    assert write_report(CampaignStore(camp), frames=fr).stat().st_size > 1000
    steps = [r["step"] for r in map(json.loads, open(camp / "thermo.jsonl")) if r.get("event") != "break"]
    assert steps == sorted(set(steps)) and steps[-1] == 24


def test_retrainings_from_scratch_when_warm_start_is_off(tmp_path):
    """``retraining.warm_start: false``: every model starts from scratch (here with the training's settings)."""
    summary = Campaign(campaign_cfg(tmp_path, retraining={"warm_start": False},
                                    final_training={"epochs": 3})).run()
    assert summary["step_reached"] == 24 and summary["iterations"] >= 1
    journal = [json.loads(line) for line in open(tmp_path / "camp" / "journal.jsonl")]
    starts = [r for r in journal if r["event"] == "train_start"]
    models = [r for r in journal if r["event"] == "model"]
    assert len(starts) >= 3 and all(s["init"] is None for s in starts)
    assert [m["metrics"]["epochs"] for m in models] == [4] * (len(models) - 1) + [3]


def test_replay_trains_the_chain_of_exploring_models_again(tmp_path):
    """``benchmarks/otf_replay.py``: version k on the campaign's first n_k labels, warm-started from
    the replayed k-1. With 0 retraining epochs every warm-started version keeps version 0's forces;
    from scratch they do not."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from otf_replay import replay
    summary = Campaign(campaign_cfg(tmp_path, final_training={"epochs": 3})).run()
    camp = tmp_path / "camp"
    journal = [json.loads(line) for line in open(camp / "journal.jsonl")]
    explored = [r for r in journal if r["event"] == "model"][:-1]          # the last is the final model
    rows = replay(camp, tmp_path / "r1", ["retraining.epochs=0"], verbose=False)
    assert [r["n_structures"] for r in rows] == [m["n_structures"] for m in explored]
    assert len(rows) == summary["iterations"] + 1 >= 2
    v = [r["validation_force_rmse"] for r in rows]
    assert np.allclose(v, v[0], rtol=1e-9, atol=0)
    assert rows[0]["campaign_validation_force_rmse"] == explored[0]["validation"]["force_rmse"]
    scratch = replay(camp, tmp_path / "r2", ["retraining.epochs=0", "retraining.warm_start=false"],
                     versions=2, verbose=False)
    assert len(scratch) == 2 and not np.isclose(scratch[1]["validation_force_rmse"], v[0], rtol=1e-6)


def test_spent_budget_continues_without_labelling(tmp_path):
    """``budget.when_spent: continue``: once the oracle budget is spent the MD runs to the end, breaks ignored."""
    cfg = campaign_cfg(tmp_path, script=GENTLE, budget={"max_oracle_calls": 4, "when_spent": "continue"})
    cfg["selection"].update(gamma_select=1.0001, gamma_break=1.001)      # break at nearly every check
    summary = Campaign(cfg).run()
    assert summary["step_reached"] == 24
    assert summary["budget_spent"] == "budget.max_oracle_calls (4) reached"
    assert summary["oracle_calls"]["initial"] == 3 and summary["oracle_calls"]["otf"] <= 1
    journal = [json.loads(line) for line in open(tmp_path / "camp" / "journal.jsonl")]
    spent = [r for r in journal if r["event"] == "decision" and r.get("what") == "budget_spent"]
    assert len(spent) == 1
    # the default stops instead
    (tmp_path / "stop").mkdir()
    cfg = campaign_cfg(tmp_path / "stop", script=GENTLE, budget={"max_oracle_calls": 4})
    cfg["selection"].update(gamma_select=1.0001, gamma_break=1.001)
    summary = Campaign(cfg).run()
    assert summary["step_reached"] < 24 and summary["stop_reason"] == "budget.max_oracle_calls (4) reached"


def test_oracle_failures_are_recorded_and_skipped(tmp_path):
    cfg = campaign_cfg(tmp_path, script=GENTLE, oracle={"type": "python", "factory": "test_active_ase:flaky_emt",
                                                        "executor": "serial"})   # about failures, not MD
    cfg["initial"]["random"]["n"] = 6
    summary = Campaign(cfg).run()
    camp = tmp_path / "camp"
    journal = [json.loads(line) for line in open(camp / "journal.jsonl")]
    calls = [r for r in journal if r["event"] == "oracle_call"]
    failed = [r for r in calls if not r["ok"]]
    assert failed and all("SCF did not converge" in r["error"] for r in failed)
    from mlal.active.store import CampaignStore
    uids = CampaignStore(camp).label_uids()
    assert not uids & {r["uid"] for r in failed}                        # never used
    assert {r["uid"] for r in calls if r["ok"]} <= uids
    assert summary["oracle_failures"] == len(failed)
    assert summary["step_reached"] == 24


def test_large_cells_are_cut_into_clusters(tmp_path):
    """selection.cluster: cells above max_atoms go to the oracle as a free sphere around the
    most extrapolative atom; the campaign trains on them and finishes."""
    cfg = campaign_cfg(tmp_path, script=GENTLE)                # about cutting, not MD
    cfg["selection"]["cluster"] = {"max_atoms": 10, "radius": 3.0, "mode": "sphere"}
    summary = Campaign(cfg).run()
    assert summary["step_reached"] == 24 and summary["labels"]["otf"] >= 1
    from mlal.active.store import CampaignStore
    store = CampaignStore(tmp_path / "camp")
    otf = store.labels("otf")
    assert otf and len(otf) == summary["labels"]["otf"]
    for item in otf:
        assert not item.atoms.pbc.any()                          # a free cluster, not the 16-atom cell
        assert 8 <= len(item.atoms) < 16                         # fcc Cu: 12 neighbours within 3 Å + centre
        assert np.isfinite(item.forces).all() and item.stress is None
    assert all(item.atoms.pbc.all() for item in store.labels("initial"))   # uncut periodic cells


def test_passes_run_the_protocol_again_with_other_velocities(tmp_path):
    """``ase.passes: 2``: after the last step the dynamics start again from make_atoms(1), with the
    latest model; the trajectory log holds both passes, each complete."""
    script = GENTLE.replace("def make_atoms():", "def make_atoms(pass_index):").replace(
        "default_rng(1)", "default_rng(1 + pass_index)")
    cfg = campaign_cfg(tmp_path, script=script)
    cfg["ase"]["passes"] = 2
    summary = Campaign(cfg).run()
    assert summary["passes"] == 2 and summary["pass_reached"] == 1 and summary["step_reached"] == 24
    camp = tmp_path / "camp"
    journal = [json.loads(line) for line in open(camp / "journal.jsonl")]
    done = [r for r in journal if r["event"] == "pass_done"]
    assert len(done) == 1 and done[0]["pass"] == 0 and done[0]["step"] == 24
    starts = [r for r in journal if r["event"] == "md_start"]
    assert starts[-1]["pass"] == 1 and starts[-1]["step"] == 0 and starts[-1]["restart"] is None
    assert starts[-1]["model_version"] == done[0]["model_version"]        # the latest model goes on
    rows = [r for r in map(json.loads, open(camp / "thermo.jsonl")) if r.get("event") != "break"]
    by_pass = {p: [r for r in rows if r["pass"] == p] for p in (0, 1)}
    for p in (0, 1):
        steps = [r["step"] for r in by_pass[p]]
        assert steps == list(range(4, 25, 4)), (p, steps)
    # other velocities: the two passes are different trajectories from the same lattice
    assert abs(by_pass[0][0]["temp"] - by_pass[1][0]["temp"]) > 1.0
    # a script whose make_atoms() takes no pass number cannot run several passes (said before any work)
    (tmp_path / "two").mkdir()
    cfg = campaign_cfg(tmp_path / "two", script=GENTLE)
    cfg["ase"]["passes"] = 2
    with pytest.raises(ConfigError, match="ase.passes: 2 passes need make_atoms"):
        Campaign(cfg)
