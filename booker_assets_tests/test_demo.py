"""``make demo`` as a user sees it: the terminal, the log file, the checks in the instance.

The demo runs as a subprocess, as ``make demo`` starts it, against the embedded sandbox (no
BOOKER_* in its environment) with a temporary database and DAGSTER_HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.checks import check_evaluators
from booker_assets.defs.locations import drift_check
from booker_assets.defs.storage import connect_locked
from booker_assets.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def demo_environment(tmp_path: Path) -> dict[str, str]:
    """The user's shell with no Booker account: the demo uses the embedded sandbox."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    return env | {"DAGSTER_HOME": str(home),
                  "BOOKER_DUCKDB_PATH": str(tmp_path / "data" / "booker_assets.duckdb")}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    env = demo_environment(tmp_path_factory.mktemp("demo"))
    done = subprocess.run([sys.executable, "-m", "booker_assets.demo", "--days", "2"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, env


def test_the_terminal_shows_a_line_per_table_then_the_summary(demo):
    done, env = demo
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Loading 2 days") and "embedded Booker sandbox" in lines[0]
    stored = {m["table"]: int(m["rows"].replace(",", "")) for m in (
        re.match(r"\s+stored booker\.(?P<table>\w+)\s+(?P<rows>[\d,]+) rows\s+report \w+: "
                 r"[\d,]+ requests$", line) for line in lines) if m}
    with connect_locked(env["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
        counts = {t: conn.execute(f"select count(*) from booker.{t}").fetchone()[0]
                  for t in TABLES}
    assert stored == counts  # one line per table, its rows as DuckDB holds them
    assert sum(counts.values()) > 0
    summary = lines.index("What DuckDB holds")
    assert all(any(f"booker.{t} " in line for line in lines[summary:]) for t in TABLES)
    assert re.fullmatch(r"Checks: \d+ passed, 0 failed", lines[-2])
    log = Path(env["BOOKER_DUCKDB_PATH"]).parent / "demo.log"
    assert lines[-1].startswith("Done in ") and f"Dagster's event log: {log}." in lines[-1]


def test_dagster_debug_stream_goes_to_the_log_file_not_the_terminal(demo):
    done, env = demo
    assert "DEBUG" not in done.stdout and "DEBUG" not in done.stderr
    assert len(done.stdout.splitlines()) < 60
    log = (Path(env["BOOKER_DUCKDB_PATH"]).parent / "demo.log").read_text()
    assert " - DEBUG - " in log and "ASSET_MATERIALIZATION" in log
    assert "RUN_SUCCESS" in log and "ASSET_CHECK_EVALUATION" in log


def test_after_the_demo_every_check_is_evaluated(demo):
    """Issue 11, finding 5: booker/locations showed "Not evaluated" after ``make demo``. The
    UI reads the latest evaluation of each check from the instance; so does this test."""
    _, env = demo
    settings = load_settings(env)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = {run.run_id for run in instance.get_runs()}  # a run per location
        keys = [*check_evaluators(settings), *drift_check(settings).check_keys]
        latest = {key: instance.get_latest_asset_check_evaluation_record(key) for key in keys}
    locations = [key for key in latest if key.asset_key.path == ["booker", "locations"]]
    assert len(locations) >= 4  # keys, rejects, and the drift check
    not_evaluated = [str(key) for key, record in latest.items()
                     if record is None or record.run_id not in runs]
    assert not_evaluated == []
    assert all(record.event.dagster_event.event_specific_data.passed
               for record in latest.values())
