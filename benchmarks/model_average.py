"""How much of a model's test error is training variance: score several independently trained
models of one mlearn fold, alone and averaged.

Each model is an exported ``model.pt`` trained on the same training part (for example the
``fold7/model.pt`` of several ``mlearn.py --only-folds 7 --set ...`` runs). The script scores
every model on the fold's test structures, then the plain average of their predictions (energy
per atom, forces, stress), and the mean over all averages of 2 and 3 of them. If the averages
are much better than the single models, the error is the spread between trainings (what a
member ensemble over one shared descriptor does not average out), not a bias that all share.

    python benchmarks/model_average.py --element Mo --fold 7 RUN1/Mo/fold7/model.pt RUN2/...

Energy in meV/atom, force in eV/Å. The last line of the output is one JSON object.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from typing import Dict, List, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from mlearn import DATA, ELEMENTS, correct_stress, stratified_folds, structure_errors  # noqa: E402


def averaged(ps: Sequence[Dict], which: Sequence[int]) -> Dict:
    """The predictions ``ps[k]`` (:func:`mlal.evaluate.predict_structures`) averaged over ``which``."""
    out = dict(ps[which[0]])
    for key in ("energy", "forces", "stress"):
        if ps[which[0]].get(key) is not None:
            out[key] = np.mean([ps[k][key] for k in which], axis=0)
    return out


def errors(p: Dict, hot: np.ndarray) -> Dict[str, float]:
    """Energy (meV/atom) and force (eV/Å) MAE, over all structures and over the ``hot`` ones."""
    signed, f, of_atom = structure_errors(p)
    e = np.abs(signed)
    out = {"energy_mae": float(np.nanmean(e)), "force_mae": float(f.mean())}
    if hot.any():
        out.update(hot_energy_mae=float(np.nanmean(e[hot])), hot_force_mae=float(f[hot[of_atom]].mean()))
    return out


def score(models: Sequence[str], items, hot: np.ndarray) -> Dict[str, object]:
    """Errors of each model, of the average of all, and mean errors over all 2- and 3-model averages."""
    from mlal.evaluate import predict_structures
    ps = [predict_structures(m, items) for m in models]
    out: Dict[str, object] = {"single": [errors(p, hot) for p in ps],
                              "average_all": errors(averaged(ps, range(len(ps))), hot)}
    for k in (2, 3):
        if len(ps) > k:
            runs = [errors(averaged(ps, c), hot) for c in itertools.combinations(range(len(ps)), k)]
            out[f"average_of_{k}"] = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
    return out


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="exported model.pt files trained on the same fold")
    ap.add_argument("--element", required=True, choices=ELEMENTS)
    ap.add_argument("--fold", type=int, required=True)
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hot", type=float, default=1.0,
                    help="eV/atom above the data's lowest from which a structure counts as hot")
    args = ap.parse_args(argv)
    from mlal.data.io import read_structures
    items = correct_stress(args.element, read_structures(DATA / args.element / "train.xyz"))
    per_atom = np.array([it.energy / len(it.atoms) for it in items])
    test = np.flatnonzero(stratified_folds(items, args.folds, args.seed) == args.fold)
    hot = per_atom[test] - per_atom.min() >= args.hot
    res = score(args.models, [items[i] for i in test], hot)

    def line(name: str, r: Dict[str, float]) -> None:
        h = f"   hot ({int(hot.sum())}): {r['hot_energy_mae']:.2f} / {r['hot_force_mae']:.4f}" if "hot_force_mae" in r else ""
        print(f"{name:30s} {r['energy_mae']:6.2f} meV/atom  {r['force_mae']:.4f} eV/Å{h}")
    for m, r in zip(args.models, res["single"]):
        line(m[-30:], r)
    for k in (2, 3):
        if f"average_of_{k}" in res:
            line(f"mean of the {k}-model averages", res[f"average_of_{k}"])
    line(f"average of all {len(args.models)}", res["average_all"])
    print(json.dumps({"benchmark": "model_average", "element": args.element, "fold": args.fold,
                      "folds": args.folds, "seed": args.seed, "models": args.models, **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
