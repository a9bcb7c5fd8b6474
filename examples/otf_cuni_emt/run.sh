#!/usr/bin/env bash
# Cu-Ni learning on the fly with an EMT oracle: LAMMPS NPT with a vacancy, then the ASE twin (slab).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$PY -m mlal.cli learn examples/otf_cuni_emt/cuni_npt_vacancy.yaml "$@"
$PY -m mlal.cli learn examples/otf_cuni_emt/slab_ase.yaml "$@"
