#!/usr/bin/env bash
# Train, deploy and evaluate an ensemble from the command line.
#   bash examples/train_cli.sh            # about a minute on 2 cores
#   EPOCHS=200 bash examples/train_cli.sh # a better model
set -euo pipefail
cd "$(dirname "$0")/.."
MLAL=${MLAL:-.venv/bin/mlal}
DATA=examples/data/Mo_mlearn_subset.xyz      # 20 structures of the mlearn Mo training set (stress yz/xz swapped back: benchmarks/stress_orientation.py)
OUT=${OUT:-runs/example_cli}
EPOCHS=${EPOCHS:-15}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

cat > /tmp/mlal_example_train.yaml <<YAML
n_members: 3
batch_size: 4
max_time: 600
YAML

# 1. train: writes $OUT/model.pt (float64), checkpoint.pt, log.csv, learning_curve.png
$MLAL train --data "$DATA" --out "$OUT" --config /tmp/mlal_example_train.yaml --epochs "$EPOCHS" --seed 0

# 2. deploy: a float32 copy for fast MD (LAMMPS `pair_style mlal` or ASE)
$MLAL deploy "$OUT/checkpoint.pt" -o "$OUT/model_f32.pt" --dtype float32

# 3. evaluate on the data (here: the training data itself) with a parity plot
$MLAL eval "$OUT/model.pt" "$DATA" --plot "$OUT/parity.png" --json
