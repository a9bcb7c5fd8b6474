"""kill -9 in the middle of a campaign, run the same command again: it finishes,
no label is lost or duplicated, and the trajectory log is continuous."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

CFG = {
    "species": ["Cu"], "engine": "lammps", "progress": False, "seed": 1,
    "oracle": {"type": "lammps", "pair_style": "eam", "pair_coeff": "* * Cu_u3.eam", "executor": "serial"},
    "initial": {"random": {"n": 3, "rattle": 0.05}},
    "validation": {"random": {"n": 2, "rattle": 0.15, "supercell": [2, 1, 1], "seed": 5}},
    "lammps": {
        "system": "units metal\natom_style atomic\nlattice fcc 3.615\nregion box block 0 2 0 2 0 2\n"
                  "create_box 1 box\ncreate_atoms 1 box\nmass 1 63.546\n"
                  "velocity all create 600 87287 mom yes rot yes dist gaussian\n",
        "dynamics": "timestep 0.001\nneighbor 1.0 bin\nfix t all nvt temp 600 1400 0.1\n",
        "steps": 600, "check_every": 2, "thermo_every": 20, "checkpoint_every": 50, "backend": "python"},
    "selection": {"gamma_select": 1.1, "gamma_break": 1.6, "batch_size": 3},
    "training": {"epochs": 10, "n_members": 2, "latent": 8, "hidden": 8, "channels": [4, 2, 2, 1], "n_basis": 4,
                 "valid_fraction": 0.0, "ema_decay": 0.0, "cutoff": 4.5},
    "retraining": {"epochs": 3},
    # bounded: past 20 iterations the MD runs on to step 600 without labelling, so the
    # 2nd kill point (a checkpoint after the resume) comes however many breaks come first
    "budget": {"max_iterations": 20, "when_spent": "continue"},
}


def _journal(camp: Path):
    p = camp / "journal.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def _start(cfg_path: Path, log):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "mlal.cli", "learn", str(cfg_path), "--no-progress"],
                            cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT)


def _kill_when(proc, camp: Path, cond, timeout=240.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if cond(_journal(camp)):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    tail = [f"{r['event']} {r.get('what', '')} step={r.get('step', '')}" for r in _journal(camp)[-30:]]
    raise AssertionError(f"the campaign did not reach the kill point in {timeout:.0f} s; journal tail:\n"
                         + "\n".join(tail))


@pytest.mark.slow
def test_kill9_then_rerun_resumes(tmp_path):
    camp = tmp_path / "camp"
    cfg_path = tmp_path / "cu.yaml"
    cfg_path.write_text(yaml.safe_dump(dict(CFG, workdir=str(camp))))
    log = open(tmp_path / "log.txt", "w")
    # 1st kill: while labelling/training after the first pause
    p = _start(cfg_path, log)
    assert _kill_when(p, camp, lambda j: any(r["event"] == "pause" for r in j))
    # 2nd kill: in the MD, after a checkpoint that follows the resume
    p = _start(cfg_path, log)
    def after_resume_md(j):
        k = max((i for i, r in enumerate(j) if r["event"] == "resume"), default=None)
        return k is not None and any(r["event"] in ("decision", "md_done") and r.get("what") != "select"
                                     for r in j[k:])
    killed = _kill_when(p, camp, after_resume_md)
    # then to the end (a 3rd run, or the 2nd if it finished before the kill point)
    if killed:
        p = _start(cfg_path, log)
    assert p.wait(timeout=240) == 0, (tmp_path / "log.txt").read_text()[-3000:]
    log.close()

    j = _journal(camp)
    assert sum(r["event"] == "resume" for r in j) >= 1
    assert j[-1]["event"] == "done"
    summary = json.loads((camp / "summary.json").read_text())
    assert summary["step_reached"] == 600

    # labels: one row per uid, every successful training oracle call is there
    import ase.db
    rows = list(ase.db.connect(str(camp / "labels.db")).select())
    uids = [r.uid for r in rows]
    assert len(uids) == len(set(uids))
    ok = {r["uid"] for r in j if r["event"] == "oracle_call" and r["ok"]}
    assert ok == set(uids)
    assert summary["labels"]["otf"] == sum(1 for u in uids if u.startswith("it"))
    # every iteration's labels were asked for at most once after they were stored
    stored_twice = [u for u in ok if sum(r["event"] == "oracle_call" and r["uid"] == u and r["ok"] for r in j) > 1]
    assert len(stored_twice) <= 1          # only a call in flight at the kill can be repeated

    # trajectory: every thermo row once, no gaps, ending at the requested step
    steps = [r["step"] for r in map(json.loads, (camp / "thermo.jsonl").read_text().splitlines())]
    assert steps == sorted(set(steps)), steps                 # no row twice, in order
    assert set(range(20, 601, 20)) <= set(steps), steps        # (break rows come in between)
    # model versions 0..N, each finished once in the final history
    versions = [r["version"] for r in j if r["event"] == "model"]
    assert sorted(set(versions)) == list(range(max(versions) + 1))


def test_passes_resume_at_the_pass_boundary(tmp_path):
    """``lammps.passes: 2``, stopped in the middle of the second pass and resumed: pass 2 starts
    from the system commands with the velocity seed + 7919, and each pass is logged once, complete."""
    from mlal.active.campaign import Campaign
    from mlal.active.lammps_driver import with_velocity_seed
    cfg = json.loads(json.dumps(CFG))
    cfg["lammps"].update(steps=100, passes=2, checkpoint_every=50)
    cfg["budget"] = {"max_iterations": 30, "when_spent": "continue"}
    cfg["workdir"] = str(tmp_path / "camp")
    Campaign(cfg).run(stop_after={"step": 140})    # steps counted over the passes: pass 2, step 40
    state = json.loads((tmp_path / "camp" / "state.json").read_text())
    # it stops at the next checkpoint (step 50) unless a learning pause comes first
    assert state["phase"] == "md" and state["md"]["pass"] == 1 and 40 <= state["md"]["step"] <= 100
    summary = Campaign.resume(tmp_path / "camp").run()
    assert summary["passes"] == 2 and summary["pass_reached"] == 1 and summary["step_reached"] == 100
    journal = _journal(tmp_path / "camp")
    assert [r["pass"] for r in journal if r["event"] == "pass_done"] == [0]
    rows = [json.loads(line) for line in open(tmp_path / "camp" / "thermo.jsonl")]
    rows = [r for r in rows if r.get("event") != "break"]
    for p in (0, 1):
        steps = [r["step"] for r in rows if r["pass"] == p and r["step"] % 20 == 0]
        assert steps == [20, 40, 60, 80, 100], (p, steps)
    # the second pass's first configuration: that of the system commands with the shifted seed
    sysc = CFG["lammps"]["system"].splitlines()
    assert with_velocity_seed(sysc, offset=7919)[-1] == "velocity all create 600 95206 mom yes rot yes dist gaussian"
    assert with_velocity_seed(sysc, seed=5)[-1].split()[4] == "5"
    first = [r for r in rows if r["step"] == 20]
    assert abs(first[0]["temp"] - first[1]["temp"]) > 1.0
