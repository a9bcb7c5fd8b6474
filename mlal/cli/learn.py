"""``mlal learn CONFIG.yaml`` / ``mlal learn --resume DIR``: a learning-on-the-fly campaign.

Running the same command again after an interruption (even ``kill -9``)
resumes the campaign in its directory. Under ``mpirun -np N`` the LAMMPS
driver runs on all ranks (needs the plugin); rank 0 labels and trains.
"""
from __future__ import annotations

import json
import os
import sys


def add_arguments(p) -> None:
    p.add_argument("config", nargs="?", help="campaign file (YAML); see examples/otf_*/")
    p.add_argument("--resume", metavar="DIR", help="resume the campaign in DIR (its saved configuration)")
    p.add_argument("--workdir", help="campaign directory (default: the file's 'workdir', or next to the file)")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("--check", action="store_true", help="only check the configuration file and exit")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON line")


def mpi_comm():
    """``MPI.COMM_WORLD`` when launched by mpirun with more than one rank, else ``None``."""
    size = 1
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(var, "").isdigit():
            size = max(size, int(os.environ[var]))
    if size <= 1:
        return None
    from mpi4py import MPI
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def run(args) -> int:
    from ..active.config import ConfigError, load_config
    if not args.config and not args.resume:
        print("mlal learn: error: give a campaign file (mlal learn CONFIG.yaml) or --resume DIR", file=sys.stderr)
        return 2
    if args.config and args.resume:
        print("mlal learn: error: give either CONFIG.yaml or --resume DIR, not both", file=sys.stderr)
        return 2
    comm = None
    try:
        if args.check:
            cfg = load_config(args.config) if args.config else None
            print(f"{args.config or args.resume}: OK" + (f" (workdir {cfg['workdir']})" if cfg else ""))
            return 0
        from ..active.campaign import Campaign
        comm = mpi_comm()
        progress = False if args.no_progress else None
        if args.resume:
            camp = Campaign.resume(args.resume, comm=comm, progress=progress)
        else:
            camp = Campaign(args.config, workdir=args.workdir, comm=comm, progress=progress)
        try:
            summary = camp.run()
        except BaseException:
            if comm is not None and comm.Get_size() > 1:     # one failing rank must not leave the others waiting
                import traceback
                traceback.print_exc()
                sys.stderr.flush()
                comm.Abort(1)
            raise
        if comm is not None and comm.Get_rank() != 0:
            return 0
    except ConfigError as exc:
        print(f"mlal learn: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"mlal learn: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001
        from ..active.campaign import CampaignError
        from ..active.lammps_driver import DriverError
        if isinstance(exc, (CampaignError, DriverError)):
            print(f"mlal learn: error: {exc}", file=sys.stderr)
            return 1
        raise
    if summary and args.json:
        print(json.dumps(summary))
    return 0
