#!/usr/bin/env bash
# Run an example on 2 MPI ranks with the lmp and mpirun of this Python environment.
#   ./run_mpi.sh [input (default in.nvt)] [model (default model.pt)] [ranks (default 2)]
set -euo pipefail
cd "$(dirname "$0")"
BIN="$(dirname "$(command -v python)")"
[ -x ../../.venv/bin/lmp ] && BIN=../../.venv/bin
input=${1:-in.nvt}
model=${2:-model.pt}
np=${3:-2}
[ -f "$model" ] || "$BIN/python" make_model.py "$model"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
exec "$BIN/mpirun" -np "$np" "$BIN/lmp" -in "$input" -var model "$model" -var steps 200
