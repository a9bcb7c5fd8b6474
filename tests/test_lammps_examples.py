"""The inputs in examples/lammps run (short versions) against a random model."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlal.integrations.lammps import require_plugin

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "lammps"
LMP = Path(sys.executable).parent / "lmp"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    require_plugin()
    d = tmp_path_factory.mktemp("examples")
    for f in EXAMPLES.iterdir():
        if f.is_file():
            shutil.copy(f, d)
    subprocess.run([sys.executable, "make_model.py", "model.pt"], cwd=d, env=ENV, check=True,
                   capture_output=True)
    return d


@pytest.mark.parametrize("name,extra,expect", [
    ("in.nvt", ["-var", "steps", "20"], "Loop time"),
    ("in.npt", ["-var", "steps", "20"], "Loop time"),
    ("in.minimize_box_relax", ["-var", "maxiter", "20"], "relaxed: pe ="),
    ("in.gamma_dump", ["-var", "steps", "20"], "Loop time"),
    ("in.halt", ["-var", "steps", "200"], "stopped at step 80 with max gamma"),
    ("in.active", ["-var", "steps", "200"], "stopped=1 frames="),
])
def test_example_runs(workdir, name, extra, expect):
    out = subprocess.run([str(LMP), "-in", name, "-var", "model", "model.pt", "-var", "n", "3", *extra,
                          "-log", f"log.{name}", "-nocite"], cwd=workdir, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert expect in out.stdout and "ERROR" not in out.stdout
