"""A LAMMPS run that fails between two γ checks (here: a `fix halt ... error hard` on the
per-step γ, standing in for lost atoms) is rolled back to the last restart and re-run with γ
checked at every step, so the break catches the extrapolation first; a failure that keeps
coming back stops the campaign with a clear error after budget.max_rollbacks tries."""
from __future__ import annotations

import copy

import pytest

from mlal.active.campaign import Campaign, CampaignError
from mlal.active.lammps_driver import plugin_available
from mlal.active.store import CampaignStore
from test_active_resume import CFG

pytestmark = pytest.mark.skipif(not plugin_available(), reason="pair_style mlal plugin not built")

# γ of the whole cell every step; "blow up" (a LAMMPS error) when it passes 2 × gamma_break
# (at 1.5 ×, a one-step jump from below the break past it, which no check can catch, made the
# test flaky)
BOOM_GAMMA = ("compute boom_g all mlal/atom\ncompute boom_gmax all reduce max c_boom_g[1]\n"
              "variable boom equal c_boom_gmax\nfix boom all halt 1 v_boom > 3.2 error hard\n")


def _cfg(tmp_path, dynamics_extra, steps, **selection):
    cfg = copy.deepcopy(CFG)
    cfg["workdir"] = str(tmp_path / "camp")
    cfg["lammps"].update(backend="plugin", check_every=100, steps=steps, checkpoint_every=100)
    cfg["lammps"]["dynamics"] += dynamics_extra
    cfg["selection"].update(selection)
    return cfg


def _journal(tmp_path):
    return CampaignStore(tmp_path / "camp").journal()


def test_failed_md_is_rolled_back_and_finishes(tmp_path):
    cfg = _cfg(tmp_path, BOOM_GAMMA, steps=300)
    summary = Campaign(cfg).run()
    assert summary["step_reached"] == 300
    j = _journal(tmp_path)
    rollbacks = [e for e in j if e["event"] == "rollback"]
    assert rollbacks, "the coarse γ checks (every 100 steps) should have let γ pass 3.2 at least once"
    for rb in rollbacks:
        assert "Fix halt condition" in rb["error"] and rb["back_to"] < rb["failed_at"]
        assert rb["check_every"] == 1 and rb["until"] > rb["failed_at"]
        # the re-run from back_to pauses (break, or labels what the fix saw) before the failed step
        k = j.index(rb)
        nxt = next(e for e in j[k + 1:] if e["event"] in ("pause", "rollback"))
        assert nxt["event"] == "pause"
        assert nxt["step"] <= rb["failed_at"]
    uids = [e["uid"] for e in j if e["event"] == "oracle_call" and e.get("ok")]
    assert len(uids) == len(set(uids))


def test_a_failure_that_keeps_coming_back_stops_with_a_clear_error(tmp_path):
    boom_step = "variable s equal step\nfix boom all halt 1 v_s >= 30 error hard\n"
    cfg = _cfg(tmp_path, boom_step, steps=100, gamma_select=1e8, gamma_break=1e9)
    cfg["budget"]["max_rollbacks"] = 1
    with pytest.raises(CampaignError, match=r"failed 2 times after going back to step 0.*step 30"):
        Campaign(cfg).run()
    j = _journal(tmp_path)
    assert [e["count"] for e in j if e["event"] == "rollback"] == [1]
    assert j[-1]["event"] == "stop" and j[-1]["reason"] == "md_failure"


def test_a_runaway_break_goes_back_instead_of_resuming_from_it(tmp_path):
    """γ checked every 100 steps overshoots gamma_runaway: the run goes back to the last restart,
    checks every step, and pauses before the runaway step; nothing above gamma_runaway is labelled."""
    cfg = _cfg(tmp_path, "", steps=300, gamma_runaway=1.7)
    summary = Campaign(cfg).run()
    assert summary["step_reached"] == 300
    j = _journal(tmp_path)
    runaways = [e for e in j if e["event"] == "rollback" and e["error"].startswith("runaway")]
    assert runaways, "γ should have passed 1.7 at a check every 100 steps at least once"
    for rb in runaways:
        assert rb["back_to"] < rb["failed_at"] and rb["check_every"] == 1
        k = j.index(rb)
        nxt = next(e for e in j[k + 1:] if e["event"] in ("pause", "rollback"))
        assert nxt["event"] == "pause" and nxt["step"] <= rb["failed_at"]
    # the runaway configurations themselves are never labelled (γ 10-1000x what the re-runs break at)
    chosen = [g for e in j if e["event"] == "decision" and e.get("what") == "select" for g in e["gammas"]]
    ran_away = [e["gamma_max"] for e in j if e["event"] == "decision" and e.get("what") == "runaway"]
    assert len(ran_away) == len(runaways) and min(ran_away) > 1.7
    assert chosen and not any(abs(g - r) <= 1e-6 * r for g in chosen for r in ran_away)
    with pytest.raises(Exception, match="gamma_runaway"):
        Campaign(dict(cfg, workdir=str(tmp_path / "bad"),
                      selection=dict(cfg["selection"], gamma_runaway=1.5)))
