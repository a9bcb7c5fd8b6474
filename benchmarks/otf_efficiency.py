"""Learning on the fly vs uniform sampling, at equal oracle calls (Si, Stillinger–Weber).

1. OTF: the ``mlal demo`` campaign (64-atom diamond Si heated 300 K -> 2000 K
   across melting, SW oracle in LAMMPS), once per ``--campaign-seeds`` seed;
   N_otf oracle calls for training.
2. Uniform: SW-driven MDs of the same protocol (their own velocity seeds, one
   per repeat) are sampled at B evenly spaced frames, for fixed budgets B
   (``--budgets``); one model is trained on each set (training seed = repeat),
   with the same trainer settings and a time budget T(B) = train_time *
   sqrt(max(1, B / 32)) (larger sets need more time per epoch).
3. Every model is scored twice, force RMSE (eV/Å) against SW:
   a. on the same independent SW trajectory (the campaign's validation set:
      same protocol, another velocity seed): where SW takes the atoms;
   b. on its own trajectory: the same protocol run by the model itself
      (``pair_style mlal``, another velocity seed), 30 frames relabelled by SW:
      where the model takes the atoms, which is what an MD user gets. A model
      whose MD fails (lost atoms) is scored on the frames before the failure
      and flagged.
   The OTF labels are also retrained from scratch with T(N_otf), to show that
   the gain comes from the data, not from the warm-started training history.

Efficiency ratio, for each score = (uniform budget whose error equals the OTF
campaign model's error) / N_otf. The uniform budget comes from a power law
fitted to every uniform point (ln error = a + b ln B, least squares); a
bootstrap over the points gives its 16–84% band. The log-log interpolation
between the two budgets that bracket the OTF error (per-budget geometric mean
over the repeats) is printed too.

The uniform results are cached in ``WORKDIR/uniform.json``, keyed by the
protocol, the trainer settings and a hash of the model and training code, so a
re-run (another campaign setting, an interrupted run) trains only what is missing.

Usage::

    python benchmarks/otf_efficiency.py [--workdir runs/otf_efficiency] [--repeats 2]
        [--budgets 8,16,32,64,128,256] [--campaign-seeds 0,1] [--train-time 60] [--set KEY=VALUE]

Prints a table, writes ``otf_efficiency.png`` and a final JSON line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REFERENCE_BUDGET = 32  # a set of B structures trains for train_time * sqrt(max(1, B / 32)) s


def efficiency_ratio(errs, best: float, n_otf: float):
    """``(ratio, kind)`` for a sweep ``errs`` of (uniform budget, error): the budget whose error equals
    ``best`` over ``n_otf``, log-log interpolated between the two budgets that bracket it ('~'),
    the smallest budget's if it already gets there ('<='), the largest's if none does ('>');
    ``(None, "")`` for an empty sweep."""
    errs = sorted(errs)
    if not errs:  # no uniform model was scored (every own MD failed)
        return None, ""
    if errs[0][1] <= best:
        return errs[0][0] / n_otf, "<="
    for (b0, e0), (b1, e1) in zip(errs, errs[1:]):
        if e1 <= best:
            t = 0.0 if e0 == e1 else (np.log(e0) - np.log(best)) / (np.log(e0) - np.log(e1))
            return float(np.exp(np.log(b0) + t * (np.log(b1) - np.log(b0)))) / n_otf, "~"
    return errs[-1][0] / n_otf, ">"


def power_law(points):
    """Least-squares fit ``ln error = a + b ln B`` to (budget, error) points: ``(a, b, rms residual)``."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0 or len(np.unique(p[:, 0])) < 2:
        return float("nan"), float("nan"), float("nan")
    x, y = np.log(p[:, 0]), np.log(p[:, 1])
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b), float(np.sqrt(np.mean((y - a - b * x) ** 2)))


def fitted_ratio(points, best: float, n_otf: float, n_boot: int = 2000, seed: int = 0):
    """Uniform budget reaching error ``best`` on the fitted power law, over ``n_otf``, and the 16–84%
    band of that ratio over bootstrap resamples of the points: ``(ratio, low, high)``.
    ``nan`` when the fit does not fall with B (uniform sampling never gets there)."""
    def ratio(pts):
        a, b, _ = power_law(pts)
        with np.errstate(over="ignore"):  # a nearly flat resample: inf, dropped from the band
            return float(np.exp((np.log(best) - a) / b)) / n_otf if b < 0 else float("nan")
    pts = np.asarray(points, dtype=float)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        s = pts[rng.integers(0, len(pts), len(pts))]
        boot.append(ratio(s))
    boot = np.asarray(boot)
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.percentile(boot, [16, 84]) if len(boot) else (float("nan"),) * 2)
    return ratio(pts), float(lo), float(hi)


def json_safe(obj):
    """``obj`` with every non-finite float (a fit that could not be made) replaced by ``None``,
    so that the JSON line is strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _x(r) -> str:
    return "n/a" if r is None else f"{r:.1f}x"


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
    if last not in d and last not in known_keys(path):
        raise SystemExit(f"--set {item!r}: no setting {last!r} in {'.'.join(path) or 'the campaign'} "
                         f"(has: {', '.join(d)})")
    d[last] = yaml.safe_load(value)


def known_keys(path) -> set:
    """The keys the campaign file allows at ``path`` (a section, or a nested one such as
    ``selection``; a training section: the TrainConfig settings), beyond those the demo sets."""
    from mlal.active.config import SCHEMA, CAMPAIGN_KEYS, TRAINING_SECTIONS
    from mlal.train import TrainConfig
    section = path[-1] if path else ""
    if section in TRAINING_SECTIONS:
        return set(TrainConfig.field_names()) | set(CAMPAIGN_KEYS.get(section, ()))
    return set(SCHEMA.get(section, {}))


def code_hash() -> str:
    """Hash of the model, data and training code: cached uniform results are reused only under it."""
    h = hashlib.sha256()
    for room in ("nn", "data", "train", "deploy"):
        for f in sorted((ROOT / "mlal" / room).glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class UniformCache:
    """``uniform.json``: one entry per (budget, repeat), written atomically after each model."""

    def __init__(self, path: Path, key: dict):
        self.path, self.key = path, key
        self.rows = {}
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("key") == key:
                self.rows = old["rows"]
            else:
                print(f"    {path.name}: made with other settings or code, not reused", flush=True)

    def get(self, b: int, r: int):
        return self.rows.get(f"{b}:{r}")

    def put(self, b: int, r: int, row: dict) -> None:
        from mlal.active.store import atomic_write_text
        self.rows[f"{b}:{r}"] = row
        atomic_write_text(self.path, json.dumps({"key": self.key, "rows": self.rows}, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/otf_efficiency")
    ap.add_argument("--budgets", default="8,16,32,64,128,256", help="uniform budgets (frames = oracle calls)")
    ap.add_argument("--repeats", type=int, default=2, help="uniform MDs (velocity seeds) and training seeds per budget")
    ap.add_argument("--campaign-seeds", default="0,1",
                    help="one OTF campaign per seed (the campaign's `seed`); the ratio is their median")
    ap.add_argument("--train-time", type=float, default=60.0,
                    help=f"seconds of training for up to {REFERENCE_BUDGET} structures; B structures get "
                         f"train_time * sqrt(B / {REFERENCE_BUDGET})")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--uniform-cache", default=None,
                    help="uniform results file (default WORKDIR/uniform.json); share it between runs that "
                         "change only the campaign's selection settings")
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
    from mlal.data.io import DataError, as_labelled
    from mlal.train import TrainConfig, train

    wd = Path(args.workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = [int(s) for s in args.campaign_seeds.split(",")]
    budgets = sorted({int(b) for b in args.budgets.split(",")})

    def campaign_config(seed: int) -> dict:
        cfg = demo_config(str(wd / ("otf" if seed == 0 else f"otf_seed{seed}")))
        cfg["seed"] = seed
        for item in args.set:
            set_dotted(cfg, item)
        return cfg

    cfg = campaign_config(seeds[0])
    lam = cfg["lammps"]
    steps = lam["steps"]
    settings = dict(cfg["training"], epochs=args.epochs, species=cfg["species"])
    settings.pop("lr", None)

    def own_md(model_path):
        """Force RMSE against SW on the model's own MD of the protocol, and whether that MD failed."""
        pot = {"pair_style": "mlal uncertainty no", "pair_coeff": f"* * {model_path} {' '.join(cfg['species'])}"}
        fr = oracle_md_frames(lam["system"], lam["dynamics"], steps, max(1, steps // 30), cfg["oracle"],
                              cfg["species"], seed=13579, potential=pot)
        failed = bool(fr) and "md_failed" in fr[-1].info
        items = []
        for a in fr:
            try:
                items += as_labelled([a])  # checks the structure: a collapsed MD (overlapping atoms) failed
            except DataError:
                failed = True
                break
        if not items:
            return float("inf"), True
        return force_errors(model_path, items)["force_rmse"], failed

    def fit(items, name, seed, valid):
        t = args.train_time * max(1.0, len(items) / REFERENCE_BUDGET) ** 0.5
        res = train(items, TrainConfig(**dict(settings, max_time=t, seed=seed)), wd / "models" / name,
                    progress=False)
        own, failed = own_md(res.model_path)
        return force_errors(res.model_path, valid)["force_rmse"], own, failed

    # 1. the OTF campaigns
    otf = []
    valid = None
    for seed in seeds:
        c = campaign_config(seed)
        print(f"[1/3] OTF campaign (the demo protocol, seed {seed}) in {c['workdir']} ...", flush=True)
        t1 = time.time()
        s = Campaign(c, progress=False).run()
        store = CampaignStore(c["workdir"])
        valid = store.labels("validation_md")
        n = s["oracle_calls"]["initial"] + s["oracle_calls"]["otf"]
        e_re, own_re, fail_re = fit(store.labels("initial") + store.labels("otf"), f"otf_scratch_seed{seed}",
                                    seed, valid)
        own_c, fail_c = own_md(s["model_path"])
        otf.append({"seed": seed, "n_otf": n, "initial": s["oracle_calls"]["initial"],
                    "iterations": s["iterations"], "campaign_min": round((time.time() - t1) / 60, 1),
                    "force_rmse": s["validation"]["force_rmse"], "own_md_force_rmse": own_c,
                    "own_md_failed": fail_c, "retrained_force_rmse": e_re,
                    "retrained_own_md_force_rmse": own_re, "retrained_own_md_failed": fail_re})
        print(f"    {n} calls, {s['iterations']} retrainings: force RMSE {otf[-1]['force_rmse']:.4f} eV/Å "
              f"(retrained {e_re:.4f}), own MD {own_c:.4f} (retrained {own_re:.4f})", flush=True)

    # 2. + 3. uniform sampling, cached
    key = {"system": lam["system"], "dynamics": lam["dynamics"], "steps": steps, "oracle": cfg["oracle"],
           "training": settings, "train_time": args.train_time, "validation": cfg["validation"],
           "code": code_hash(), "frames_every": max(1, steps // max(budgets))}
    cache = UniformCache(Path(args.uniform_cache) if args.uniform_cache else wd / "uniform.json", key)
    print(f"[2/3] uniform sampling: budgets {budgets} x {args.repeats} SW MDs "
          f"({args.train_time:.0f} s x sqrt(B/{REFERENCE_BUDGET}) of training each) ...", flush=True)
    rows = []
    for r in range(args.repeats):
        pool = None
        for b in budgets:
            row = cache.get(b, r)
            if row is None:
                if pool is None:
                    pool = oracle_md_frames(lam["system"], lam["dynamics"], steps, key["frames_every"],
                                            cfg["oracle"], cfg["species"], seed=424242 + r)
                idx = np.unique(np.round(np.linspace(0, len(pool) - 1, b)).astype(int))
                e, own, failed = fit(as_labelled([pool[i] for i in idx]), f"uniform_{b}_r{r}", r, valid)
                row = {"calls": len(idx), "repeat": r, "force_rmse": e, "own_md_force_rmse": own,
                       "own_md_failed": failed}
                cache.put(b, r, row)
            rows.append(row)
            print(f"    uniform {row['calls']:4d} frames, repeat {r}: force RMSE {row['force_rmse']:.4f} eV/Å "
                  f"on the SW trajectory, {row['own_md_force_rmse']:.4f} on its own"
                  f"{' (its MD failed)' if row['own_md_failed'] else ''}", flush=True)

    # the ratios
    print("[3/3] ratios")
    scores = {}
    for name, field in (("SW trajectory", "force_rmse"), ("own MD", "own_md_force_rmse")):
        # a model whose own MD failed has no score there: left out of the fit (which favours uniform)
        pts = [(u["calls"], u[field]) for u in rows
               if np.isfinite(u[field]) and not (field == "own_md_force_rmse" and u["own_md_failed"])]
        a, b, resid = power_law(pts)
        means = {}
        for c, e in pts:
            means.setdefault(c, []).append(np.log(e))
        curve = [(c, float(np.exp(np.mean(v)))) for c, v in sorted(means.items())]
        per = []
        for o in otf:
            best = o[field]
            fr = fitted_ratio(pts, best, o["n_otf"])
            ir = efficiency_ratio(curve, best, o["n_otf"])
            fr = [x if np.isfinite(x) else None for x in fr]
            per.append({"seed": o["seed"], "ratio": fr[0], "band": [fr[1], fr[2]], "interpolated": ir[0],
                        "interpolated_kind": ir[1], "uniform_at_equal_calls": float(np.exp(a + b * np.log(o["n_otf"])))})
        scores[field] = {"fit": {"a": a, "b": b, "rms_log_residual": resid}, "curve": curve, "campaigns": per}
        print(f"  {name}: uniform error ~ B^{b:.2f} (rms log residual {resid:.2f}); mean per budget: "
              + ", ".join(f"{c}: {e:.4f}" for c, e in curve))
        for o, p in zip(otf, per):
            print(f"    campaign seed {o['seed']}: {o['n_otf']} calls, {o[field]:.4f} eV/Å (uniform at equal calls "
                  f"{p['uniform_at_equal_calls']:.4f}): uniform needs {_x(p['ratio'])} the calls "
                  f"(band {_x(p['band'][0])}-{_x(p['band'][1])}; interpolated {p['interpolated_kind']}{_x(p['interpolated'])})")
    summary = {}
    for f in scores:
        r = [p["ratio"] for p in scores[f]["campaigns"]]
        summary[f] = float(np.median(r)) if None not in r else None
    print(f"  median ratio over campaigns: {_x(summary['force_rmse'])} on the SW trajectory, "
          f"{_x(summary['own_md_force_rmse'])} on their own MD (target >= 5)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5.5, 4))
        bs = np.array([budgets[0] * 0.8, budgets[-1] * 1.2])
        for field, col, lab in (("force_rmse", "C0", "SW trajectory"), ("own_md_force_rmse", "C1", "own MD")):
            ax.plot([u["calls"] for u in rows], [u[field] for u in rows], "o", color=col, alpha=0.6,
                    label=f"uniform frames of SW MD: {lab}")
            f = scores[field]["fit"]
            ax.plot(bs, np.exp(f["a"] + f["b"] * np.log(bs)), "-" if col == "C0" else "--", color=col)
            ax.plot([o["n_otf"] for o in otf], [o[field] for o in otf], "*", color=col, ms=14,
                    label=f"OTF campaign model: {lab}")
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
    out = {"benchmark": "otf_efficiency", "system": "Si SW 300->2000 K, 64 atoms", "otf": otf, "uniform": rows,
           "scores": scores, "ratio": summary["force_rmse"], "ratio_own_md": summary["own_md_force_rmse"],
           "validation_frames": len(valid), "train_time_s": args.train_time,
           "reference_budget": REFERENCE_BUDGET, "repeats": args.repeats, "overrides": args.set,
           "code": key["code"], "wall_s": round(time.time() - t0, 1)}
    print(json.dumps(json_safe(out), allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
