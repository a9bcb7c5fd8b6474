"""The training log: ``DIR/log.csv`` (one row per epoch) and ``DIR/learning_curve.png``."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

LOG_FIELDS = ["epoch", "seconds", "lr", "train_loss", "valid_loss", "valid_energy_mae", "valid_force_mae",
               "valid_stress_mae", "best", "energy_weight"]


def write_log(out: Path, history: List[Dict[str, Any]]) -> None:
    """Rewrite ``out/log.csv`` atomically from the epoch rows."""
    tmp = out / "log.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, out / "log.csv")


def plot_learning_curve(history: List[Dict[str, Any]], path: Path) -> Optional[Path]:
    """Training/validation loss and validation errors versus epoch (PNG)."""
    if not history:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:   # plotting is a convenience, never a failure
        return None
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].semilogy(ep, [h["train_loss"] for h in history], label="train")
    axes[0].semilogy(ep, [h["valid_loss"] for h in history], label="valid")
    axes[0].set_xlabel("epoch"); axes[0].set_ylabel("loss"); axes[0].legend()
    axes[1].semilogy(ep, [h["valid_energy_mae"] for h in history])
    axes[1].set_xlabel("epoch"); axes[1].set_ylabel("valid energy MAE (meV/atom)")
    axes[2].semilogy(ep, [h["valid_force_mae"] for h in history])
    axes[2].set_xlabel("epoch"); axes[2].set_ylabel("valid force MAE (eV/Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
