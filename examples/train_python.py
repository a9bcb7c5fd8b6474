"""Train an ensemble from Python, look at its errors and its uncertainty.

    .venv/bin/python examples/train_python.py            # about a minute
    EPOCHS=200 .venv/bin/python examples/train_python.py
"""
import os
from pathlib import Path

import torch

from mlal.data.io import read_structures
from mlal.evaluate import evaluate
from mlal.train import TrainConfig, load_checkpoint, train

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("OUT", HERE.parent / "runs" / "example_python"))

# Labelled structures: energies (eV), forces (eV/Å), stress (eV/Å³, ASE sign) from any ase.io format.
structures = read_structures(HERE / "data" / "Mo_mlearn_subset.xyz")

cfg = TrainConfig(
    n_members=3,                     # ensemble size K: sigma is the spread of the K force predictions
    epochs=int(os.environ.get("EPOCHS", 15)),
    max_time=600,                    # seconds; stops and keeps the best weights
    seed=0,
)
result = train(structures, cfg, OUT)  # also writes OUT/model.pt, checkpoint.pt, log.csv, learning_curve.png
print("validation errors:", {k: result.metrics[k] for k in ("energy_mae", "force_mae", "stress_mae")})

# The exported TorchScript file is what LAMMPS and the ASE calculator load.
print("training-set errors of", result.model_path, evaluate(result.model_path, structures))

# Continue later from the checkpoint (e.g. more epochs), or warm-start on new data:
model, cfg_back, state = load_checkpoint(result.checkpoint)
print(f"checkpoint: {state['epoch']} epochs, best epoch {state['best_epoch'] + 1}, species {model.species}")
more = train(structures[:10], cfg.replace(epochs=3), OUT.with_name(OUT.name + "_warm"),
             init=result.checkpoint, progress=False)
print("warm-started model:", more.model_path)
