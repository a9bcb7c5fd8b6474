"""Learning on the fly vs uniform sampling, at equal oracle calls (Si, Stillinger–Weber).

1. OTF: the ``mlal demo`` campaign (64-atom diamond Si heated 300 K -> 2000 K
   across melting, SW oracle in LAMMPS); N_otf oracle calls for training.
2. Uniform: an SW-driven MD of the same protocol (its own velocity seed) is
   sampled at B evenly spaced frames, for a sweep of budgets B; one model is
   trained on each set, with the same trainer settings and time budget.
3. Every model is scored twice, force RMSE (eV/Å) against SW:
   a. on the same independent SW trajectory (the campaign's validation set:
      same protocol, third velocity seed): where SW takes the atoms;
   b. on its own trajectory: the same protocol run by the model itself
      (``pair_style mlal``, a fourth velocity seed), 30 frames relabelled by SW:
      where the model takes the atoms, which is what an MD user gets. A model
      whose MD fails (lost atoms) is scored on the frames before the failure
      and flagged.
   The OTF labels are also retrained from scratch with the same budget, so the
   comparison is about the data, not about the warm-started training history.

Efficiency ratio, for each score = (uniform budget whose error equals the OTF
error, log-log interpolated between the two budgets of the sweep that bracket
it) / N_otf; "<=" the smallest budget's when even that one gets there, "> the
largest's" when none does.

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


def efficiency_ratio(errs, best: float, n_otf: int):
    """``(ratio, kind)`` for a sweep ``errs`` of (uniform budget, error): the budget whose error equals
    ``best`` over ``n_otf``, log-log interpolated between the two budgets that bracket it ('~'),
    the smallest budget's if it already gets there ('<='), the largest's if none does ('>')."""
    errs = sorted(errs)
    if errs[0][1] <= best:
        return errs[0][0] / n_otf, "<="
    for (b0, e0), (b1, e1) in zip(errs, errs[1:]):
        if e1 <= best:
            t = 0.0 if e0 == e1 else (np.log(e0) - np.log(best)) / (np.log(e0) - np.log(e1))
            return float(np.exp(np.log(b0) + t * (np.log(b1) - np.log(b0)))) / n_otf, "~"
    return errs[-1][0] / n_otf, ">"


def set_dotted(cfg: dict, item: str) -> None:
    """Apply ``"a.b.c=VALUE"`` (a YAML value) to the nested dict ``cfg``; an unknown key raises."""
    import yaml
    key, sep, value = item.partition("=")
    if not sep:
        raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
    *path, last = key.split(".")
    d = cfg
    for k in path:
        if not isinstance(d.get(k), dict):
            raise SystemExit(f"--set {item!r}: {k!r} is not a section of the demo campaign")
        d = d[k]
    if last not in d:
        raise SystemExit(f"--set {item!r}: no setting {last!r} in {'.'.join(path) or 'the campaign'} "
                         f"(has: {', '.join(d)})")
    d[last] = yaml.safe_load(value)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/otf_efficiency")
    ap.add_argument("--factors", default="0.5,1,2,4,8", help="uniform budgets as multiples of N_otf")
    ap.add_argument("--train-time", type=float, default=60.0,
                    help="seconds of training for N_otf structures; a set of B structures gets "
                         "train_time * sqrt(B / N_otf) (larger sets need more time per epoch)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one setting of the demo campaign, dotted path and YAML value, e.g. "
                         "--set initial.random.n=5 --set selection.batch_size=2; the run then no "
                         "longer measures the demo's settings")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from mlal.active.campaign import Campaign
    from mlal.active.phases import force_errors
    from mlal.active.store import CampaignStore
    from mlal.active.structures import oracle_md_frames
    from mlal.cli.demo import demo_config
    from mlal.data.io import Labelled
    from mlal.train import TrainConfig, train

    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    cfg = demo_config(str(wd / "otf"))
    for item in args.set:
        set_dotted(cfg, item)
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

    def own_md(model_path):
        """Force RMSE against SW on the model's own MD of the protocol, and whether that MD failed."""
        pot = {"pair_style": "mlal uncertainty no", "pair_coeff": f"* * {model_path} {' '.join(cfg['species'])}"}
        fr = oracle_md_frames(lam["system"], lam["dynamics"], steps, max(1, steps // 30), cfg["oracle"],
                              cfg["species"], seed=13579, potential=pot)
        if not fr:
            return float("inf"), True
        return force_errors(model_path, as_items(fr))["force_rmse"], "md_failed" in fr[-1].info

    def fit(items, name):
        t = args.train_time * max(1.0, len(items) / n_otf) ** 0.5
        res = train(items, TrainConfig(**dict(settings, max_time=t)), wd / "models" / name, progress=False)
        own, failed = own_md(res.model_path)
        return force_errors(res.model_path, valid)["force_rmse"], own, failed

    print(f"[3/3] training: OTF labels from scratch, uniform budgets {budgets} "
          f"({args.train_time:.0f} s x sqrt(B/N_otf) each) ...", flush=True)
    otf_items = store.labels("initial") + store.labels("otf")
    e_otf, own_otf, fail_otf = fit(otf_items, "otf_scratch")
    own_campaign, fail_campaign = own_md(s["model_path"])
    rows = []
    for b in budgets:
        idx = np.unique(np.round(np.linspace(0, len(pool) - 1, b)).astype(int))
        e, own, failed = fit(as_items([pool[i] for i in idx]), f"uniform_{b}")
        rows.append((len(idx), e, own, failed))
        print(f"    uniform {len(idx):4d} frames: force RMSE {e:.3f} eV/Å on the SW trajectory, "
              f"{own:.3f} on its own{' (its MD failed)' if failed else ''}", flush=True)

    best_otf = min(e_otf, e_otf_campaign)
    best_own = min(own_otf, own_campaign)
    ratio = efficiency_ratio([(b, e) for b, e, _, _ in rows], best_otf, n_otf)
    ratio_own = efficiency_ratio([(b, o) for b, _, o, _ in rows], best_own, n_otf)
    print()
    print(f"OTF: {n_otf} oracle calls ({s['oracle_calls']['initial']} initial + {s['oracle_calls']['otf']} on the fly), "
          f"{s['iterations']} retrainings, campaign {t_otf / 60:.1f} min")
    print(f"  force RMSE on the independent SW trajectory: campaign model {e_otf_campaign:.3f} eV/Å, "
          f"OTF labels retrained from scratch {e_otf:.3f} eV/Å")
    print(f"  on its own MD: campaign model {own_campaign:.3f}{' (failed)' if fail_campaign else ''}, "
          f"retrained {own_otf:.3f}{' (failed)' if fail_otf else ''} eV/Å")
    print("  uniform sampling of an SW MD of the same protocol (SW trajectory | own MD):")
    for b, e, o, failed in rows:
        print(f"    {b:4d} oracle calls ({b / n_otf:4.1f} x N_otf): {e:.3f}{'  <= OTF' if e <= best_otf else '         '}"
              f" | {o:.3f}{'  <= OTF' if o <= best_own else ''}{' (MD failed)' if failed else ''}")
    for name, (r, kind) in (("SW trajectory", ratio), ("own MD", ratio_own)):
        what = {"~": "about ", "<=": "at most ", ">": "more than "}[kind]
        print(f"  {name}: uniform sampling needs {what}{r:.1f}x the OTF calls to reach the OTF error")
    eq = [e for b, e, _, _ in rows if b == n_otf]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", color="C0",
                label="uniform frames of SW MD: on the SW trajectory")
        ax.plot([r[0] for r in rows], [r[2] for r in rows], "o--", color="C1", label="uniform: on its own MD")
        ax.plot([n_otf], [e_otf_campaign], "*", color="C0", ms=14, label="OTF campaign model: SW trajectory")
        ax.plot([n_otf], [own_campaign], "*", color="C1", ms=14, label="OTF campaign model: own MD")
        ax.plot([n_otf], [e_otf], "s", color="C0", mfc="none", label="OTF labels retrained: SW trajectory")
        ax.plot([n_otf], [own_otf], "s", color="C1", mfc="none", label="OTF labels retrained: own MD")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("oracle calls (training labels)")
        ax.set_ylabel("force RMSE vs SW (eV/Å)")
        ax.set_title("Si 300->2000 K: OTF vs uniform sampling")
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(wd / "otf_efficiency.png", dpi=110)
        print(f"  figure: {wd / 'otf_efficiency.png'}")
    except Exception as exc:  # noqa: BLE001
        print(f"  (no figure: {exc})")
    out = {"benchmark": "otf_efficiency", "system": "Si SW 300->2000 K, 64 atoms", "n_otf": n_otf,
           "otf_force_rmse": e_otf_campaign, "otf_retrained_force_rmse": e_otf,
           "otf_own_md_force_rmse": own_campaign, "otf_retrained_own_md_force_rmse": own_otf,
           "otf_own_md_failed": fail_campaign, "otf_retrained_own_md_failed": fail_otf,
           "uniform": [{"calls": b, "force_rmse": e, "own_md_force_rmse": o, "own_md_failed": f}
                       for b, e, o, f in rows],
           "uniform_at_equal_calls": eq[0] if eq else None,
           "ratio": ratio[0], "ratio_kind": ratio[1], "ratio_own_md": ratio_own[0], "ratio_own_md_kind": ratio_own[1],
           "validation_frames": len(valid), "train_time_s": args.train_time, "overrides": args.set,
           "wall_s": round(time.time() - t0, 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
