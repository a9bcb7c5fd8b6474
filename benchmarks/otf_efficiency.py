"""Learning on the fly vs uniform sampling, at equal oracle calls (Si, Stillinger–Weber).

1. OTF: the ``mlal demo`` campaign (64-atom diamond Si heated 300 K -> 2000 K
   across melting, SW oracle in LAMMPS); N_otf oracle calls for training.
2. Uniform: an SW-driven MD of the same protocol (its own velocity seed) is
   sampled at B evenly spaced frames, for a sweep of budgets B; one model is
   trained on each set, with the same trainer settings and time budget.
3. Every model is scored on the same independent SW trajectory (the campaign's
   validation set: same protocol, third velocity seed): force RMSE (eV/Å).
   The OTF labels are also retrained from scratch with the same budget, so the
   comparison is about the data, not about the warm-started training history.

Efficiency ratio = (smallest uniform budget whose error <= the OTF error) / N_otf;
if no budget of the sweep gets there it is reported as "> max budget / N_otf".

Usage::

    python benchmarks/otf_efficiency.py [--workdir runs/otf_efficiency] [--factors 1,2,4,8]
                                        [--train-time 60]

Prints a table, writes ``otf_efficiency.png`` and a final JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/otf_efficiency")
    ap.add_argument("--factors", default="1,2,4,8", help="uniform budgets as multiples of N_otf")
    ap.add_argument("--train-time", type=float, default=60.0,
                    help="seconds of training for N_otf structures; a set of B structures gets "
                         "train_time * sqrt(B / N_otf) (larger sets need more time per epoch)")
    ap.add_argument("--epochs", type=int, default=300)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from mlal.active.campaign import Campaign, force_errors
    from mlal.active.store import CampaignStore
    from mlal.active.structures import oracle_md_frames
    from mlal.cli.demo import demo_config
    from mlal.data.io import Labelled
    from mlal.train import TrainConfig, train

    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cfg = demo_config(str(wd / "otf"))
    print(f"[1/3] OTF campaign (the demo protocol) in {wd / 'otf'} ...", flush=True)
    s = Campaign(cfg, progress=False).run()
    t_otf = time.time() - t0
    n_otf = s["oracle_calls"]["initial"] + s["oracle_calls"]["otf"]
    store = CampaignStore(wd / "otf")
    valid = store.labels("validation_md")
    e_otf_campaign = s["validation"]["force_rmse"]

    lam = cfg["lammps"]
    factors = [float(x) for x in args.factors.split(",")]
    budgets = sorted({max(2, int(round(f * n_otf))) for f in factors})
    steps = lam["steps"]
    every = max(1, steps // max(budgets))
    print(f"[2/3] SW-driven MD of the same protocol, {steps} steps, a frame every {every} steps ...", flush=True)
    pool = oracle_md_frames(lam["system"], lam["dynamics"], steps, every, cfg["oracle"], cfg["species"],
                            seed=424242)

    def as_items(frames):
        out = []
        for k, a in enumerate(frames):
            r = a.calc.results
            out.append(Labelled(a.copy(), float(r["energy"]), np.array(r["forces"]),
                                None if r.get("stress") is None else np.array(r["stress"]), f"md:{k}"))
        return out

    settings = dict(cfg["training"], epochs=args.epochs, max_time=args.train_time, species=cfg["species"])
    settings.pop("lr", None)

    def fit(items, name):
        t = args.train_time * max(1.0, len(items) / n_otf) ** 0.5
        res = train(items, TrainConfig(**dict(settings, max_time=t)), wd / "models" / name, progress=False)
        return force_errors(res.model_path, valid)["force_rmse"]

    print(f"[3/3] training: OTF labels from scratch, uniform budgets {budgets} "
          f"({args.train_time:.0f} s x sqrt(B/N_otf) each) ...", flush=True)
    otf_items = store.labels("initial") + store.labels("otf")
    e_otf = fit(otf_items, "otf_scratch")
    rows = []
    for b in budgets:
        idx = np.unique(np.round(np.linspace(0, len(pool) - 1, b)).astype(int))
        e = fit(as_items([pool[i] for i in idx]), f"uniform_{b}")
        rows.append((len(idx), e))
        print(f"    uniform {len(idx):4d} frames: force RMSE {e:.3f} eV/Å", flush=True)
    best_otf = min(e_otf, e_otf_campaign)
    reach = [b for b, e in rows if e <= best_otf]
    ratio = (min(reach) / n_otf) if reach else None
    print()
    print(f"OTF: {n_otf} oracle calls ({s['oracle_calls']['initial']} initial + {s['oracle_calls']['otf']} on the fly), "
          f"{s['iterations']} retrainings, campaign {t_otf / 60:.1f} min")
    print(f"  force RMSE on the independent trajectory: campaign model {e_otf_campaign:.3f} eV/Å, "
          f"OTF labels retrained from scratch {e_otf:.3f} eV/Å")
    print("  uniform sampling of an SW MD of the same protocol:")
    for b, e in rows:
        print(f"    {b:4d} oracle calls ({b / n_otf:4.1f} x N_otf): {e:.3f} eV/Å"
              f"{'   <= OTF' if e <= best_otf else ''}")
    if ratio is not None:
        print(f"  uniform sampling needs {min(reach)} calls to reach the OTF error: {ratio:.1f}x the OTF calls")
    else:
        print(f"  no uniform budget up to {max(b for b, _ in rows)} calls reaches the OTF error: "
              f"ratio > {max(b for b, _ in rows) / n_otf:.1f}x")
    eq = [e for b, e in rows if b == min(budgets)]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.plot([b for b, _ in rows], [e for _, e in rows], "o-", label="uniform frames of SW MD")
        ax.plot([n_otf], [e_otf_campaign], "r*", ms=14, label="OTF (campaign model)")
        ax.plot([n_otf], [e_otf], "rs", mfc="none", label="OTF labels, retrained")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("oracle calls (training labels)")
        ax.set_ylabel("force RMSE vs SW, independent trajectory (eV/Å)")
        ax.set_title("Si 300->2000 K: OTF vs uniform sampling")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(wd / "otf_efficiency.png", dpi=110)
        print(f"  figure: {wd / 'otf_efficiency.png'}")
    except Exception as exc:  # noqa: BLE001
        print(f"  (no figure: {exc})")
    out = {"benchmark": "otf_efficiency", "system": "Si SW 300->2000 K, 64 atoms", "n_otf": n_otf,
           "otf_force_rmse": e_otf_campaign, "otf_retrained_force_rmse": e_otf,
           "uniform": [{"calls": b, "force_rmse": e} for b, e in rows],
           "uniform_at_equal_calls": eq[0] if eq else None,
           "ratio": ratio, "ratio_lower_bound": None if ratio is not None else max(b for b, _ in rows) / n_otf,
           "validation_frames": len(valid), "train_time_s": args.train_time,
           "wall_s": round(time.time() - t0, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
