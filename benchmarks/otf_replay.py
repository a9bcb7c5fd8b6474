"""Replay a learning-on-the-fly campaign's retrainings on its own labels, with other settings.

A campaign's exploring models (the versions trained at each pause) drive its MD
and decide when it pauses, so how well they fit decides what gets labelled.
This script trains the campaign's chain of exploring models again: version k on
the labels it had (the journal's ``n_structures``; initial labels first, then
the on-the-fly ones in the order they were made), version 0 from scratch with
``training``, every later one from the previous replayed version with
``retraining`` (warm start, as the campaign did, unless
``retraining.warm_start`` is false). ``--set`` changes a setting first, e.g.
``--set retraining.lr=0.001``. Each version is scored, force RMSE in eV/Å, on
the campaign's validation labels and on its own training labels, next to the
campaign's own score of that version.

The labels are fixed, so this isolates the retraining settings from where the
MD went: a setting that keeps the chain's errors low is worth a real campaign.

    python benchmarks/otf_replay.py runs/demo-si --set retraining.lr=0.001

The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from otf_efficiency import set_dotted  # noqa: E402


def replay(campaign_dir: Path, out_dir: Path, sets=(), versions=None, verbose: bool = True) -> list:
    """Train the campaign's exploring models again; one row per version."""
    import torch
    from mlal.active.campaign import saved_config
    from mlal.active.phases import force_errors, trainer, training_config
    from mlal.active.store import CampaignStore
    torch.set_num_threads(1)

    def edit(raw):
        for item in sets:
            set_dotted(raw, item)
    cfg = saved_config(campaign_dir, edit)
    store = CampaignStore(campaign_dir, create=False)
    by_version = {}
    for r in store.journal():
        if r["event"] == "md_done":          # the final model (trained from scratch) comes after it
            break
        if r["event"] == "model":
            by_version[r["version"]] = r
    chain = [by_version[v] for v in sorted(by_version)]
    if versions is not None:
        chain = chain[:versions]
    labels = store.labels("initial") + store.labels("otf")
    valid = store.labels("validation") + store.labels("validation_md")
    _, train = trainer()
    rows, prev = [], None
    for r in chain:
        v, n = r["version"], r["n_structures"]
        tc, warm = training_config(cfg, v)
        t0 = time.time()
        res = train(labels[:n], tc, out_dir / f"v{v:03d}", init=prev if warm else None, progress=False)
        prev = str(res.checkpoint)
        row = {"version": v, "n_structures": n, "seconds": round(time.time() - t0, 1),
               "validation_force_rmse": force_errors(res.model_path, valid).get("force_rmse"),
               "training_force_rmse": force_errors(res.model_path, labels[:n])["force_rmse"],
               "campaign_validation_force_rmse": (r.get("validation") or {}).get("force_rmse"),
               "model_path": str(res.model_path)}
        rows.append(row)
        if verbose:
            f = lambda x: "  n/a" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"v{v:<3d} {n:4d} labels {row['seconds']:6.1f} s   validation {f(row['validation_force_rmse'])}"
                  f"   training {f(row['training_force_rmse'])}   campaign {f(row['campaign_validation_force_rmse'])}",
                  flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("campaign", type=Path, help="a campaign's work directory (campaign.yaml, journal, labels)")
    ap.add_argument("--out", type=Path, default=None, help="where the replayed models go "
                    "(default CAMPAIGN/replay)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one campaign setting, dotted path and YAML value")
    ap.add_argument("--versions", type=int, default=None, help="replay only the first N versions")
    args = ap.parse_args(argv)
    out = args.out or args.campaign / "replay"
    t0 = time.time()
    rows = replay(args.campaign, out, args.set, args.versions)
    last = rows[-1] if rows else {}
    print(json.dumps({"benchmark": "otf_replay", "campaign": str(args.campaign), "overrides": args.set,
                      "versions": len(rows), "last_validation_force_rmse": last.get("validation_force_rmse"),
                      "last_training_force_rmse": last.get("training_force_rmse"),
                      "rows": [{k: v for k, v in r.items() if k != "model_path"} for r in rows],
                      "wall_s": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
