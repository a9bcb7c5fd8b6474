"""`mpiexec -np 2 mlal learn`: both ranks run the LAMMPS driver (pair_style mlal +
fix mlal/extrapolation), rank 0 labels, trains and broadcasts the new model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_active_resume import CFG, ROOT

pytestmark = pytest.mark.mpi

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def test_learn_under_mpiexec_np2(tmp_path):
    from mlal.integrations.lammps import require_plugin
    require_plugin()
    camp = tmp_path / "camp"
    cfg = json.loads(json.dumps(CFG))
    cfg["workdir"] = str(camp)
    cfg["lammps"].update(backend="plugin", steps=100, checkpoint_every=50)
    cfg["selection"].update(gamma_break=2.0)
    cfg["budget"] = {"max_iterations": 40}
    cfg["lammps"]["system"] = "processors 2 1 1\n" + cfg["lammps"]["system"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    r = subprocess.run([str(MPIEXEC), "-np", "2", sys.executable, "-m", "mlal.cli", "learn",
                        str(tmp_path / "c.yaml"), "--no-progress", "--json"], cwd=str(ROOT), env=env,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    summaries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1                        # rank 0 alone reports
    s = summaries[0]
    assert s["step_reached"] == 100 and s["iterations"] >= 1
    j = [json.loads(line) for line in (camp / "journal.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "start" for r in j) == 1
    versions = [r["version"] for r in j if r["event"] == "model"]
    assert versions == list(range(len(versions))) and len(versions) >= 2     # each once: rank 0 only
    pauses = [r for r in j if r["event"] == "pause"]
    assert pauses and all(p["candidates"] >= 1 for p in pauses)
    import ase.db
    uids = [row.uid for row in ase.db.connect(str(camp / "labels.db")).select()]
    assert len(uids) == len(set(uids))
    steps = [json.loads(x)["step"] for x in (camp / "thermo.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 100
