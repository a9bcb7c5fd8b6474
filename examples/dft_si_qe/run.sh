#!/usr/bin/env bash
# Si learning on the fly with Quantum ESPRESSO as the oracle (needs pw.x and Si.pz-vbc.UPF).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if ! command -v pw.x >/dev/null; then
  echo "pw.x not found: install Quantum ESPRESSO (Debian/Ubuntu: apt-get install -y quantum-espresso quantum-espresso-data)" >&2
  exit 1
fi
PSEUDO=/usr/share/espresso/pseudo/Si.pz-vbc.UPF
if [ ! -f "$PSEUDO" ]; then
  echo "$PSEUDO not found: install quantum-espresso-data (it has the pseudopotentials) or edit oracle.pseudo_dir/pseudopotentials in" \
       "examples/dft_si_qe/si_qe.yaml" >&2
  exit 1
fi
$PY -m mlal.cli learn examples/dft_si_qe/si_qe.yaml "$@"
