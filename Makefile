# The README's commands. Everything installs into .venv from PyPI; nothing is global.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAYS ?= 7
PORT ?= 3000
SANDBOX_PORT ?= 8765

.PHONY: install demo test dev bench lint sandbox clean

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3-venv is missing: installing it (Debian)"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)

# The browser test drives Debian's chromium (Playwright's own browser download is not used).
/usr/bin/chromium:
	@echo "chromium is missing: installing it (Debian) for the browser test"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
	@mkdir -p $(DAGSTER_HOME) data
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install  ## load every report for the last $(DAYS) days from the sandbox into data/booker_assets.duckdb
	$(BIN)/python -m booker_assets.demo --days $(DAYS)

test: install /usr/bin/chromium  ## the whole test suite, the browser test included
	$(BIN)/python -m pytest -q

dev: install  ## the Dagster UI and daemon on http://127.0.0.1:$(PORT)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

bench: install  ## benchmarks/backfill.py with its defaults
	$(BIN)/python benchmarks/backfill.py

sandbox: install  ## the Booker sandbox in the foreground
	$(BIN)/python -m booker_assets.sandbox --port $(SANDBOX_PORT)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .dagster_home data *.egg-info
