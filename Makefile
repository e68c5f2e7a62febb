# The README's commands. Python packages install into .venv from PyPI; the only global ones
# are Debian packages installed when missing (python3-venv, and postgresql for the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test dev bench lint sandbox clean postgres-bin

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3-venv is missing: installing it (Debian)"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
	@mkdir -p $(DAGSTER_HOME) data
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The server binaries the tests and the benchmark start throwaway servers with
# (booker_assets_tests/postgres.py). Debian keeps them off PATH, in /usr/lib/postgresql/*/bin.
postgres-bin:
	@test -x "$$PG_BIN/initdb" || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  command -v initdb >/dev/null || { \
	  echo "PostgreSQL server binaries are missing: installing them (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

demo: install  ## backfill every report for the last 7 days from the sandbox into data/booker_assets.duckdb
	$(BIN)/python -m booker_assets.demo

test: install postgres-bin  ## the whole test suite
	$(BIN)/python -m pytest -q

dev: install  ## the Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install  ## benchmarks/backfill.py with its defaults
	$(BIN)/python benchmarks/backfill.py

sandbox: install  ## the Booker sandbox in the foreground
	$(BIN)/python -m booker_assets.sandbox --port 8765

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .dagster_home data *.egg-info
