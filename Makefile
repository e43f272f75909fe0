# thawproof — every entry point a user needs. `make test` and `make chaos`
# work on a fresh machine: they build .venv and install PostgreSQL if missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# N=auto (or a number) runs the suite on pytest-xdist workers, each with its own
# PostgreSQL cluster and proxy server: `make test N=2`.
N ?=
XDIST := $(if $(N),-n $(N),)
# Where make test's chaos runs record the situations they reached (the last test reads it).
SITUATIONS := $(CURDIR)/reports/situations/make-test-$(notdir $(VENV)).jsonl

NODE_DRIVERS := harness/drivers/node
NODE_STAMP   := $(NODE_DRIVERS)/node_modules/.package-lock.json

.PHONY: setup postgres chromium pgbouncer node-drivers compare test test-both test-fast \
	test-containers chaos bench replay nightly mutate lint typecheck clean

setup: $(STAMP) postgres chromium pgbouncer node-drivers

$(STAMP): pyproject.toml Makefile
	@scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,containers,mutate]'
	touch $@

postgres:
	@scripts/ensure-postgres.sh

# Debian's Chromium for the report's browser test (driven by the dev extra's playwright).
chromium:
	@scripts/ensure-chromium.sh

# A real PgBouncer (Debian's 1.18) for the pgbouncer drivers; without it those skip.
pgbouncer:
	@scripts/ensure-pgbouncer.sh || echo "pgbouncer unavailable: the pgbouncer drivers will skip"

# npm's pg and serverless-postgres for the Node drivers (harness/drivers/node) and the
# pg-aequor interop tests, exactly as locked. Without npm the step says so and those skip.
node-drivers: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_DRIVERS)/package.json $(NODE_DRIVERS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(NODE_DRIVERS) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: skipping $(NODE_DRIVERS) (the pg-aequor interop tests will skip)"; \
	fi

# The whole suite. pytest's own exit status is kept: 5 (no tests collected) fails.
# With N, the `scale` tests (a fleet of 100 loads both cores) run after the rest, alone.
# Every chaos run appends the situations it reached to $(SITUATIONS); the last test
# (marker situations_gate) fails naming any situation no run reached.
# `make test PYTHON=/usr/bin/python3 VENV=.venv-debian` runs it on Debian's own Python.
test: setup
	rm -f $(SITUATIONS)
	THAWPROOF_SITUATIONS=$(SITUATIONS) $(BIN)/python -m pytest $(XDIST) \
		$(if $(N),-m 'not scale and not situations_gate',) $(PYTEST_ARGS)
	$(if $(N),THAWPROOF_SITUATIONS=$(SITUATIONS) $(BIN)/python -m pytest \
		-m 'scale or situations_gate' $(PYTEST_ARGS),)

# The suite on both interpreters this machine family has: the default python3 and
# Debian's /usr/bin/python3 (3.11.2 on Debian 12), each in its own virtualenv.
test-both:
	$(MAKE) test
	$(MAKE) test PYTHON=/usr/bin/python3 VENV=.venv-debian

# Unit tests only: no processes, no servers.
test-fast: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The container backend's tests (marker `docker`) against a real engine: installs
# docker.io and debootstrap when missing, starts a private dockerd (--bridge=none,
# stopped again on every exit path), builds the local PostgreSQL image once.
test-containers: setup
	scripts/test-containers.sh $(BIN)/python $(PYTEST_ARGS)

chaos: setup
	$(BIN)/python -m scenarios all

# Re-run only the failing examples saved in .hypothesis-examples/ (no new ones):
# the detection tests replay each bug-zoo entry's shrunk failure, the state
# machine any failure a run saved.
replay: setup
	HYPOTHESIS_PROFILE=replay $(BIN)/python -m pytest tests/detection tests/chaos -k "catches or machine" $(PYTEST_ARGS)

# The long property runs (many random examples); what the nightly CI job runs.
nightly: setup
	rm -f $(subst make-test,nightly,$(SITUATIONS))
	HYPOTHESIS_PROFILE=nightly THAWPROOF_SITUATIONS=$(subst make-test,nightly,$(SITUATIONS)) \
		$(BIN)/python -m pytest $(XDIST) -m 'not situations_gate' tests/detection tests/chaos \
		$(PYTEST_ARGS)
	THAWPROOF_SITUATIONS=$(subst make-test,nightly,$(SITUATIONS)) \
		$(BIN)/python -m pytest -m situations_gate tests/chaos $(PYTEST_ARGS)

# Every driver on the same scenarios and seeds: reports/compare/<UTC time>/ (index.html,
# compare.md). COMPARE_ARGS: drivers=a,b scenarios=x,y seeds=N out=DIR.
COMPARE_ARGS ?=
compare: setup
	$(BIN)/python -m harness.compare $(COMPARE_ARGS)

# The mutation score of harness/lease against the chaos suites only: cosmic-ray (the
# mutate extra, installed by setup), two http workers each in its own copy of the tree;
# scripts/mutate.py says how it samples and counts. Writes reports/mutate/score.md and
# mutate.json and prints the score line. Results are kept in reports/mutate/session.sqlite
# by content, so a rerun runs only what changed (nothing, when nothing did).
# MUTATE_ARGS: --dry-run (show the sample), --config FILE, --out DIR.
MUTATE_ARGS ?=
mutate: setup
	$(BIN)/python scripts/mutate.py $(MUTATE_ARGS)

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check harness scenarios tests bench
	$(BIN)/ruff format --check harness scenarios tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(NODE_DRIVERS)/node_modules
