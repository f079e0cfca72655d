# The README's commands. `make run` opens neurotop on the demo; `make test` runs the suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: setup run test bench clean

$(BIN)/neurotop: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, so nothing later pulls a multi-GB CUDA build; on a GPU box set TORCH=torch
	$(BIN)/pip install -q "$(TORCH)"
	# PYTHONWARNINGS: setuptools prints an informational notice for every editable install
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e ".[demo,test]"
	@touch $@
	@echo "neurotop is $(abspath $(BIN))/neurotop; to type plain neurotop in any shell:"
	@echo "  mkdir -p ~/.local/bin && ln -sf $(abspath $(BIN))/neurotop ~/.local/bin/"

setup: $(BIN)/neurotop

run: setup
	$(BIN)/neurotop

test: setup
	$(BIN)/python -m tests.lint_imports
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench

# runs live in ~/.local/state/neurotop/runs (or $$NEUROTOP_RUNS): clean never deletes them
clean:
	rm -rf $(VENV) .pytest_cache
