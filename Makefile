# The README's commands. Python packages install into .venv from PyPI; the only global ones
# are Debian packages installed when missing (python3-venv, and postgresql for the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# sqlite (files under DAGSTER_HOME) or postgres (deploy/storage.postgres.yaml, DAGSTER_PG_*)
DAGSTER_STORAGE ?= sqlite
DAYS ?= 7
PORT ?= 3000
SANDBOX_PORT ?= 8765

.PHONY: install demo test dev bench lint sandbox clean postgres-bin

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
ifeq ($(DAGSTER_STORAGE),postgres)
	@cat deploy/storage.postgres.yaml >> $(DAGSTER_HOME)/dagster.yaml
endif

# The server binaries the tests and the benchmark start throwaway servers with
# (booker_assets_tests/postgres.py). Debian keeps them off PATH, in /usr/lib/postgresql/*/bin.
postgres-bin:
	@test -x "$$PG_BIN/initdb" || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  command -v initdb >/dev/null || { \
	  echo "PostgreSQL server binaries are missing: installing them (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

demo: install  ## load every report for the last $(DAYS) days from the sandbox into data/booker_assets.duckdb
	$(BIN)/python -m booker_assets.demo --days $(DAYS)

# Three workers on two cores: the end-to-end tests mostly wait for servers, runs and subprocesses.
TEST_WORKERS ?= 3

test: install postgres-bin /usr/bin/chromium  ## the whole test suite, the browser test included
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

dev: install  ## the Dagster UI and daemon on http://127.0.0.1:$(PORT)
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# The chain case: 50 locations, days scaled to minutes on 2 cores, the sandbox's limit raised so
# that the runs (not the pace) are measured; requests per location-day and the 2-year projection.
BENCH_CHAIN := --locations 50 --days 3 --rate 100 --burst 50 --skip-naive --project-days 730

bench: install postgres-bin  ## benchmarks/: one run, backfills, --adaptive, the metrics, the read copy at 1 GB
	$(BIN)/python benchmarks/single_run.py
	$(BIN)/python benchmarks/backfill.py
	$(BIN)/python benchmarks/backfill.py $(BENCH_CHAIN)
	$(BIN)/python benchmarks/backfill.py --adaptive
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/read_copy.py

sandbox: install  ## the Booker sandbox in the foreground
	$(BIN)/python -m booker_sandbox --port $(SANDBOX_PORT)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .dagster_home data *.egg-info
