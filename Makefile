# Developer entry points. Everything runs from the project virtualenv in .venv.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# python3.11 where it exists; otherwise python3, which pip then checks against requires-python.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
# Re-installs only when the dependency list changes, so `make test` stays fast.
STAMP := $(VENV)/.installed

.PHONY: help install run cluster test test-fast lint mutation audit bench drill clean

help:
	@echo "make install  create .venv and install stepgate with the dev and bench extras"
	@echo "make run      Temporal dev server + worker + API (Ctrl-C stops all)"
	@echo "make cluster  the production topology: PostgreSQL, Temporal server, Web UI, 2 workers, API"
	@echo "make test     test suite against a real Temporal dev server (PYTEST_ARGS=...)"
	@echo "make test-fast the fast loop: every test that needs no server (pytest -m 'not server')"
	@echo "make lint     ruff check, ruff format --check, mypy"
	@echo "make mutation mutation testing of the pure rule modules (kill rate per module)"
	@echo "make audit    known vulnerabilities in the installed packages (pip-audit)"
	@echo "make bench    benchmarks (BENCH_SCALE=...)"
	@echo "make drill    fault drills (DRILL_TARGET=cluster: on the make cluster topology)"
	@echo "make clean    remove caches, build output and .venv (keeps .stepgate data)"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# The interpreter bundles an old pip (with published vulnerabilities): replace it, in new and old venvs.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

run: install
	scripts/run

# No Docker needed: builds the Temporal server once (docs/operations.md, "Production topology
# without Docker"); data in $STEPGATE_DATA/cluster.
cluster: install
	scripts/cluster

# Both end by printing how long they took and the load averages then (1, 5, 15 min; the last
# line of a CI log): on a shared two-core machine a figure means little without its load.
timed = start=$$(date +%s); status=0; $(1) || status=$$?; \
	echo "make $@: $$(( $$(date +%s) - start )) s, load average $$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"; \
	exit $$status

test: install
	@$(call timed,scripts/ensure-temporal >/dev/null && scripts/ensure-test-server >/dev/null && $(BIN)/pytest -q $(PYTEST_ARGS))

# The fast loop: every test not marked `server` (tests/conftest.py marks the tests that need a
# Temporal server, PostgreSQL, or a worker or API process); no Temporal CLI or test server needed.
# They share no server, so they run in one process per core.
test-fast: install
	@$(call timed,$(BIN)/pytest -q -m "not server" -n auto $(PYTEST_ARGS))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# mutmut's progress line redraws itself; the log keeps it out of the terminal, the report is what
# counts. Its own state lives in ./mutants, rebuilt from scratch each time.
mutation: install
	rm -rf mutants
	$(BIN)/mutmut run > .mutmut.log 2>&1 || { tail -n 20 .mutmut.log; exit 1; }
	$(BIN)/python scripts/mutation-report

# Exit 0: no known vulnerability. 1: some found (listed). 3: no vulnerability source could be
# reached, so nothing was checked (said plainly; CI without network can tell it apart).
audit: install
	scripts/audit

# BENCH_SCALE reaches the benchmark through the environment (also when given as `make bench BENCH_SCALE=...`).
bench: install
	scripts/ensure-temporal >/dev/null
	$(BIN)/python -m bench

# DRILL_TARGET=cluster (default dev) drills the production topology of `make cluster`
# (bench/drill_cluster.py), building the Temporal server once; DRILL_SCALE=quick shrinks either.
drill: install
	scripts/ensure-temporal >/dev/null
	$(BIN)/python -m bench.drill

# .stepgate is left alone on purpose: it holds workflow history and the local API key.
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -exec rm -rf {} +
