# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates or updates the virtual environment in .venv first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch is pinned in the same pip command as everything else: a looser pin lets
# pip pick a multi-GB CUDA build.
INSTALL := -e ".[dev,ilp,prune,models,onnx]" torch==2.13.0

.PHONY: demo solver-demo test venv clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(INSTALL)
	-$(PY) -m mewcp.warmup  # compile every numba kernel now, so no user call pays for it (a miss warns)
	touch $(STAMP)

venv: $(STAMP)

# The main job: train the built-in DeepLab-style model on the built-in synthetic data,
# prune 60% of its FLOPs with SIRFP, fine-tune, print the before/after table and write
# the report and the pruned model to runs/sirfp/.
demo: $(STAMP)
	$(VENV)/bin/sirfp prune --out runs/sirfp

# Every available mewcp method on shipped instances (best-known values from
# instances/best_known.csv): value, gap to the best-known value and time.
solver-demo: $(STAMP)
	$(VENV)/bin/mewcp compare instances/mdplib/MDG-a/MDG-a_1_n500_m50.txt --best-known 7833.83 --time-limit 10
	@echo
	$(VENV)/bin/mewcp compare instances/mdplib/GKD-b/GKD-b_11_n50_m5.txt --best-known 1795.20603 --time-limit 10
	@echo
	$(VENV)/bin/mewcp compare instances/dimacs/hamming6-4.wclq -k 4 --best-known 396 --time-limit 10

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
