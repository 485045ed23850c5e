# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates or updates the virtual environment in .venv first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch is pinned in the same pip command as everything else: a looser pin lets
# pip pick a multi-GB CUDA build.
INSTALL := -e ".[dev,ilp,prune]" torch==2.13.0

.PHONY: demo test venv clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(INSTALL)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mewcp compare instances/mdplib/MDG-a/MDG-a_1_n500_m50.txt --best-known 7833.83 --time-limit 10

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
