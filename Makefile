# thawproof — every entry point a user needs. `make test` and `make chaos`
# work on a fresh machine: they build .venv and install PostgreSQL if missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup postgres test test-fast chaos bench replay nightly lint typecheck clean

setup: $(STAMP) postgres

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,containers]'
	touch $@

postgres:
	@scripts/ensure-postgres.sh

# The whole suite. pytest's own exit status is kept: 5 (no tests collected) fails.
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only: no processes, no servers.
test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

chaos: setup
	$(BIN)/python -m scenarios all

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check harness scenarios tests bench
	$(BIN)/ruff format --check harness scenarios tests bench

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
