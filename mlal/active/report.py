"""Campaign report: one PNG with labels per iteration, max γ over simulated time,
the validation force error of each model version against oracle calls and, when given,
the final model's error on each validation frame against its γ_max there."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np


def campaign_tables(store) -> Dict[str, Any]:
    """The numbers the report plots, from the journal and the trajectory log."""
    journal = store.journal()
    per_it: Dict[int, int] = {}
    for r in journal:
        if r["event"] == "oracle_call" and r.get("kind") == "otf" and r.get("ok"):
            per_it[int(r["iteration"])] = per_it.get(int(r["iteration"]), 0) + 1
    models = [r for r in journal if r["event"] == "model"]
    thermo = store.thermo()
    return {"labels_per_iteration": sorted(per_it.items()),
            "models": [(m["version"], m.get("oracle_calls", 0), m.get("validation", {})) for m in models],
            "thermo": thermo,
            "pauses": [(r["step"], r.get("gamma_max", np.nan)) for r in journal if r["event"] == "pause"]}


def write_report(store, path=None, frames: Optional[List[Dict[str, float]]] = None) -> Path:
    """Write ``report.png`` in the campaign directory; returns its path. ``frames``: the final
    model on each validation frame (``force_rmse`` in eV/Å, ``gamma_max``), a fourth panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = campaign_tables(store)
    path = Path(path) if path else store.root / "report.png"
    fig, ax = plt.subplots(1, 4 if frames else 3, figsize=(20 if frames else 15, 4.2))
    its = t["labels_per_iteration"]
    ax[0].bar([i for i, _ in its], [n for _, n in its], color="tab:blue")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("new oracle labels")
    ax[0].set_title(f"labels per iteration (total {sum(n for _, n in its)})")

    rows = [r for r in t["thermo"] if "gamma_max" in r and r.get("event") != "break"]
    if rows:
        x = np.array([r.get("time", np.nan) for r in rows], dtype=float)
        xlabel = "simulated time (ps)"
        if not np.all(np.isfinite(x)):
            x = np.array([r["step"] for r in rows], dtype=float)
            xlabel = "step"
        p = np.array([r.get("pass", 0) for r in rows])
        if p.max() > 0:       # passes one after another on the axis, a dashed line between two
            start = 0.0
            for k in range(1, int(p.max()) + 1):
                start += float(np.max(x[p == k - 1], initial=0.0))
                x[p == k] += start
                ax[1].axvline(start, color="0.5", lw=0.8, ls="--")
            xlabel += ", passes one after another"
        g = np.array([r["gamma_max"] for r in rows], dtype=float)
        ax[1].semilogy(x, np.maximum(g, 1e-3), ".", ms=3, color="tab:red", label="max γ")
        if any("temp" in r for r in rows):
            a2 = ax[1].twinx()
            a2.plot(x, [r.get("temp", np.nan) for r in rows], color="0.6", lw=0.8)
            a2.set_ylabel("T (K)", color="0.4")
        ax[1].set_xlabel(xlabel)
    ax[1].set_ylabel("max γ (extrapolation grade)")
    ax[1].set_title("max γ over the trajectory")

    ms = [(v, c, e) for v, c, e in t["models"] if e]
    if ms:
        ax[2].plot([c for _, c, _ in ms], [e["force_rmse"] for _, _, e in ms], "o-", color="tab:green")
        for v, c, e in ms:
            ax[2].annotate(f"v{v}", (c, e["force_rmse"]), fontsize=7, xytext=(2, 2), textcoords="offset points")
        ax[2].set_yscale("log")
    ax[2].set_xlabel("oracle calls (training labels)")
    ax[2].set_ylabel("force RMSE vs oracle (eV/Å)")
    ax[2].set_title("validation error per model version")
    if frames:
        g = np.array([f["gamma_max"] for f in frames], dtype=float)
        e = np.array([f["force_rmse"] for f in frames], dtype=float)
        ax[3].scatter(g, e, c=np.arange(len(frames)), cmap="viridis", s=18)
        ax[3].axvline(1.0, color="0.5", lw=0.8, ls="--")
        ax[3].set_yscale("log")
        ax[3].set_xlabel("γ_max on the frame (dashed: 1)")
        ax[3].set_ylabel("force RMSE vs oracle (eV/Å)")
        ax[3].set_title(f"final model per validation frame\n({int(np.sum(g > 1))} of {len(g)} with γ_max > 1;"
                        " colour: frame order)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
