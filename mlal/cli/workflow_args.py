"""Arguments shared by the workflows that relax with active learning (``mlal hull``, ``mlal search``)."""
from __future__ import annotations

import argparse
from typing import Any, Dict


def add_active_relaxation_arguments(p: argparse.ArgumentParser) -> None:
    """``--model --data --oracle --workdir --rounds --labels-per-round --gamma-break --train-time --json``."""
    p.add_argument("--model", required=True, help="the starting model.pt")
    p.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="the starting model's training data (any ase.io format; repeat for several files)")
    p.add_argument("--oracle", default="emt",
                   help="'emt', or an oracle spec as YAML, e.g. \"{type: lammps, pair_style: ..., pair_coeff: ...}\"")
    p.add_argument("--workdir", required=True, help="run directory (a second run with it resumes)")
    p.add_argument("--rounds", type=int, default=8, help="rounds of labelling at most")
    p.add_argument("--labels-per-round", type=int, default=6)
    p.add_argument("--gamma-break", type=float, default=3.0)
    p.add_argument("--train-time", type=float, default=60.0, help="seconds per retraining")
    p.add_argument("--json", action="store_true", help="print a summary as one JSON line")


def oracle_spec(text: str) -> Dict[str, Any]:
    """``--oracle``: ``"emt"`` or a YAML mapping with a ``type`` key."""
    import yaml
    spec = {"type": "emt"} if text == "emt" else yaml.safe_load(text)
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"--oracle: expected 'emt' or a mapping with a 'type' key, got {text!r}")
    return spec


def settings_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    """The :class:`mlal.workflows.relaxations.RelaxSettings` fields the common arguments set."""
    return {"max_rounds": args.rounds, "labels_per_round": args.labels_per_round, "gamma_break": args.gamma_break,
            "training": {"max_time": args.train_time, "epochs": 300}}
