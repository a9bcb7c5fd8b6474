"""The ``mlal`` command: a thin layer over the library.

Each subcommand lives in its own module of this package and defines
``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# name -> (module, one-line help)
COMMANDS = {
    "train": ("mlal.cli.train", "train an ensemble on ab initio data"),
    "deploy": ("mlal.cli.deploy", "export a checkpoint as one TorchScript model file"),
    "eval": ("mlal.cli.evaluate", "energy/force/stress errors of a model on labelled data"),
    "learn": ("mlal.cli.learn", "run a learning-on-the-fly campaign from a YAML file"),
    "demo": ("mlal.cli.demo", "the embedded demo: learning on the fly for Si in LAMMPS"),
    "hull": ("mlal.cli.hull", "convex-hull screening of a binary alloy with active learning"),
    "search": ("mlal.cli.search", "crystal structure search with an ensemble and active learning"),
    "lattice": ("mlal.cli.lattice", "on-lattice sampling of an alloy (replica-exchange MC) with active learning"),
    "phonons": ("mlal.cli.phonons", "phonon bands, DOS and free energy of a crystal, with the ensemble's spread"),
}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mlal", description=__doc__.splitlines()[0])
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"mlal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (modname, helptext) in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise
            continue   # subcommand not installed in this version
        p = sub.add_parser(name, help=helptext, description=helptext)
        mod.add_arguments(p)
        modules[name] = mod
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
