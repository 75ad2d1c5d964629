# Two entry points: `make repro` (set up + run the pipeline) and `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# DVC stages call `python stages/...`: make it the project's interpreter.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-fast lint bench readme clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

repro: setup
	dvc repro

test: setup
	pytest -q

# the edit-test loop: everything but the tests marked slow (the real `dvc repro` runs)
test-fast: setup
	pytest -q -m "not slow"

readme: setup
	python scripts/readme_tables.py

lint: setup
	ruff check .

bench: setup
	python benchmarks/extract.py
	python benchmarks/loader.py
	python benchmarks/train.py

clean-venv:
	rm -rf $(VENV)
