# mlal: two commands on a fresh machine: `make demo` and `make test`.
# Every target is idempotent: a second call skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlal-installed
PLUGIN := mlal/integrations/plugin/mlalplugin.so
PLUGIN_SRC := $(wildcard lammps_plugin/*.cpp lammps_plugin/*.h) CMakeLists.txt
export OMP_WAIT_POLICY := PASSIVE
export OMP_NUM_THREADS ?= 1

.PHONY: setup plugin test demo demo-dft bench bench-otf clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned: the CPU wheel lies on this disk; never let pip pick another.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade "pip>=23" setuptools wheel
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $(STAMP)

$(PLUGIN): $(STAMP) $(PLUGIN_SRC)
	$(PY) -m mlal.integrations.build

plugin: $(PLUGIN)

setup: $(STAMP) $(PLUGIN)

test: setup
	$(PY) -m pytest -q -n 2 --durations=15

demo: setup
	$(PY) -m mlal.cli demo

# a real ab initio campaign (Quantum ESPRESSO from Debian); not part of CI
demo-dft: setup
	@command -v pw.x >/dev/null && test -f /usr/share/espresso/pseudo/Si.pz-vbc.UPF || \
	  { apt-get update && apt-get install -y --no-install-recommends quantum-espresso quantum-espresso-data; }
	examples/dft_si_qe/run.sh

bench-otf: setup
	$(PY) benchmarks/otf_efficiency.py

bench: setup
	$(PY) benchmarks/mlearn.py --quick

clean:
	rm -rf build $(PLUGIN) $(STAMP)
