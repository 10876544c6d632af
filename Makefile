# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch==2.13.0 is the CPU wheel available locally; the pin keeps pip from
# pulling a multi-GB CUDA build (see DEVELOPERS.md).
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
# A packaged config's name (bbrl-ppo configs lists them) or a YAML file.
CONFIG ?= cartpole

.PHONY: run test test-quick lint format docs bench bench-peers notebooks notebooks-check wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP_INSTALL) -e .
	touch $@

# The docs extra too: tests/test_docs.py builds the site.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev,mujoco,docs]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[docs]'
	touch $@

$(VENV)/.installed-notebooks: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[notebooks]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/bbrl-ppo train $(CONFIG)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

test-quick: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site (mkdocs.yml, docs/) into site/: every public name must have a
# docstring (mkdocstrings does not check), then a build where any warning is an error.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2.
docs: $(VENV)/.installed-docs
	$(BIN)/python scripts/docs_check_docstrings.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed
	taskset -c $$(($$(nproc)-1)) $(BIN)/python benchmarks/env_throughput.py

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[bench]'
	touch $@

# Our PPO against Stable-Baselines3's, same hyper-parameters (see BENCHMARKS.md):
#   make bench-peers CASE=pendulum [BENCH_ARGS="--max-steps 4096"]
CASE ?= cartpole
BENCH_ARGS ?=
bench-peers: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/compare_peers.py --case $(CASE) $(BENCH_ARGS)

# JupyterLab refuses to start as root without --allow-root (containers and CI run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
notebooks: $(VENV)/.installed-notebooks
	cd notebooks && ../$(BIN)/jupyter lab $(ALLOW_ROOT)

# The notebooks as a student sees them: JupyterLab in headless Chromium, Run All, then
# checks and screenshots (outputs/notebooks-check/). Fast budgets unless FULL=1; a subset
# with NOTEBOOKS="01 03". The script installs what it lacks: selenium from the package
# index, Debian's chromium and chromium-driver with apt-get.
FULL ?=
NOTEBOOKS ?=
notebooks-check: $(VENV)/.installed-notebooks
	$(BIN)/python scripts/notebooks_check.py $(if $(FULL),--full) $(NOTEBOOKS)

# The wheel as a user installs it: built, put in a fresh venv outside the checkout, run
# there (train cartpole, play). make test runs it too (tests/test_packaging.py, slow).
wheel-check: $(VENV)/.installed-dev
	$(BIN)/python scripts/wheel_check.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site .cache/mkdocs-jupyter
