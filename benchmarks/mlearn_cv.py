"""Gather the folds of a K-fold mlearn cross-validation from several results files into one table.

``benchmarks/mlearn.py --folds 10 --only-folds ...`` spreads a cross-validation over several
runs (15 min per fold); this script collects their folds per element, checks that every fold
was trained with the default settings and appears once, and prints each fold, the mean over
folds (the cross-validated MAE) and the published GAP / MTP targets. Energy MAE in meV/atom,
force MAE in eV/Å, stress MAE in GPa.

    python benchmarks/mlearn_cv.py benchmarks/results/mlearn_2026-12-03.json#3 \\
        benchmarks/results/mlearn_2026-12-04[jklm]_ge_*.json

``--set KEY=VALUE`` (as given to ``mlearn.py``) gathers a cross-validation of changed settings
instead: every run must then have exactly those changes (a file that predates a setting counts
as trained with its default). ``FILE#N`` takes only the N-th result (0-based) of a file that holds several (the 2026-12-03
file holds Mo and Si twice: with the stress labels as given and corrected). A run without a
``fold`` is a hold-out split, which is fold 0 of the 10-fold split with the same seed.
The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlearn import PUBLISHED, holdout_folds, meets_targets, parse_settings  # noqa: E402

IGNORED_SETTINGS = {"processes"}   # how a batch is spread over cores, not what is trained


def _results_of(path: str) -> List[dict]:
    """The per-element results of one file: ``{"element", "config", "runs", ...}`` each.
    ``path`` may end in ``#N`` to take only the N-th."""
    name, _, index = path.partition("#")
    data = json.loads(Path(name).read_text())
    results = data["results"] if "results" in data else [data]      # the Ni CV files hold one element
    if index:
        try:
            results = [results[int(index)]]
        except (ValueError, IndexError):
            raise SystemExit(f"{path}: no result #{index} (the file holds {len(results)})")
    for r in results:
        for key in ("element", "runs"):
            if key not in r:
                raise SystemExit(f"{path}: a result without {key!r} is not an mlearn result")
        if r.get("stress", "corrected") != "corrected":
            raise SystemExit(f"{path}: {r['element']} was trained with stress labels {r['stress']!r}, "
                             f"not the corrected ones")
    return results


UNKNOWN = "unknown to this version"


def settings_changed(config: dict, defaults: dict, overrides: Optional[dict] = None) -> Dict[str, tuple]:
    """The settings of ``config`` that differ from ``defaults`` changed by ``overrides`` (a setting
    a file predates is taken at its default, not at its override), as ``{name: (value, expected)}``.
    A setting this version does not know (an option tried and dropped) counts as changed."""
    expected = dict(defaults, **(overrides or {}))
    changed = {k: (config.get(k, v), expected[k]) for k, v in defaults.items()
               if k not in IGNORED_SETTINGS and config.get(k, v) != expected[k]}
    changed.update({k: (v, UNKNOWN) for k, v in config.items() if k not in defaults and k not in IGNORED_SETTINGS})
    return changed


def gather(paths: List[str], defaults: Optional[dict] = None, k: int = 10,
           seed: int = 0, overrides: Optional[dict] = None) -> Dict[str, Dict[int, dict]]:
    """``{element: {fold: run}}`` over the files; each run gets its ``source``. A fold found twice,
    a run trained with other than ``defaults`` changed by ``overrides`` (``defaults`` ``None``: no
    check) or on another split than ``k`` folds of seed ``seed`` (where the file records its split)
    is an error."""
    folds: Dict[str, Dict[int, dict]] = {}
    for path in paths:
        for r in _results_of(path):
            split = r.get("split")
            if split is not None:
                kk = split["folds"] or holdout_folds(split["holdout"])
                if (kk, split["seed"]) != (k, seed):
                    raise SystemExit(f"{path}: {r['element']} was split into {kk} folds with seed "
                                     f"{split['seed']}, not {k} with seed {seed}")
            if defaults is not None and "config" in r:
                changed = settings_changed(r["config"], defaults, overrides)
                if changed:
                    raise SystemExit(f"{path}: {r['element']} was not trained with the defaults"
                                     f"{' and --set' if overrides else ''}: " + ", ".join(
                                         f"{name}={v!r} ("
                                         f"{UNKNOWN if d is UNKNOWN else ('expected ' if overrides else 'default ') + repr(d)})"
                                         for name, (v, d) in changed.items()))
            for run in r["runs"]:
                f = int(run.get("fold") or 0)
                seen = folds.setdefault(r["element"], {})
                if f in seen:
                    raise SystemExit(f"{r['element']} fold {f} is in both {seen[f]['source']} and {path}")
                seen[f] = dict(run, source=path)
    return folds


def summarise(element: str, runs: Dict[int, dict], k: int) -> dict:
    """Mean over folds of the energy, force and stress MAE, the folds missing out of ``k``, and
    whether the means meet the published targets (the larger of GAP and MTP; forces to two digits)."""
    order = sorted(runs)
    def mean(key):
        vals = [runs[f][key] for f in order if runs[f].get(key) is not None]
        return float(np.mean(vals)) if vals else None
    pub = PUBLISHED[element]
    e, f = mean("energy_mae"), mean("force_mae")
    meets_e, meets_f = meets_targets(element, e, f)
    return {"element": element, "folds": order, "missing": [x for x in range(k) if x not in runs],
            "energy_mae": e, "force_mae": f, "stress_mae": mean("stress_mae"),
            "energy_median": float(np.median([runs[x]["energy_mae"] for x in order])),
            "energy_by_fold": [runs[x]["energy_mae"] for x in order],
            "force_by_fold": [runs[x]["force_mae"] for x in order],
            "published_energy_gap_mtp": pub["energy"], "published_force_gap_mtp": pub["force"],
            "meets_energy": meets_e, "meets_force": meets_f,
            "folds_meeting_energy": sum(meets_targets(element, runs[x]["energy_mae"], 0.0)[0] for x in order)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", metavar="FILE[#N]", help="mlearn results JSON files")
    p.add_argument("--folds", type=int, default=10, help="K of the cross-validation (to list missing folds)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the split")
    p.add_argument("--any-settings", action="store_true",
                   help="accept runs trained with other than the default settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="the runs were trained with this setting changed (mlearn.py --set): accept those, "
                        "and only those")
    args = p.parse_args(argv)
    try:
        overrides = parse_settings(args.set)
    except ValueError as exc:
        p.error(str(exc))
    defaults = None
    if not args.any_settings:
        from mlal.train import TrainConfig
        defaults = TrainConfig().to_dict()
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            p.error(f"--set: unknown setting(s) {unknown}")
    table = gather(args.files, defaults, args.folds, args.seed, overrides)
    summaries = []
    for el in sorted(table, key=list(PUBLISHED).index):
        runs = table[el]
        s = summarise(el, runs, args.folds)
        summaries.append(s)
        print(f"{el}: {len(runs)} of {args.folds} folds" + (f" (missing {s['missing']})" if s["missing"] else ""))
        print(f"  {'fold':>4} {'E MAE':>7} {'F MAE':>7} {'S MAE':>6} {'epochs':>6}  source")
        for f in s["folds"]:
            r = runs[f]
            st = "-" if r.get("stress_mae") is None else f"{r['stress_mae']:.2f}"
            print(f"  {f:4d} {r['energy_mae']:7.2f} {r['force_mae']:7.4f} {st:>6} {r.get('epochs', 0):6.0f}  "
                  f"{Path(r['source']).name}")
        ge, me = s["published_energy_gap_mtp"]
        gf, mf = s["published_force_gap_mtp"]
        st = "-" if s["stress_mae"] is None else f"{s['stress_mae']:.2f}"
        print(f"  {'mean':>4} {s['energy_mae']:7.2f} {s['force_mae']:7.4f} {st:>6}   GAP/MTP {ge}/{me} meV/atom, "
              f"{gf}/{mf} eV/Å: energy {'met' if s['meets_energy'] else 'missed'}, "
              f"forces {'met' if s['meets_force'] else 'missed'}; "
              f"{s['folds_meeting_energy']} of {len(runs)} folds meet the energy target")
    print("(energy meV/atom, force eV/Å, stress GPa; each fold's test part never seen in its training)")
    print(json.dumps({"benchmark": "mlearn_cv", "k": args.folds, "elements": summaries}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
