"""``make demo`` as a user sees it: the terminal, the log file, the checks in the instance.

The demo runs as a subprocess, as ``make demo`` starts it, against the embedded sandbox (no
BOOKER_* in its environment) with a temporary database and DAGSTER_HOME. Two earlier demos
were SIGKILLed in that DAGSTER_HOME while loading: with no daemon nothing fails their runs,
and nothing needs to, since a run executed in its caller's process waits for no pool slot.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console
from rich.progress import Progress

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.assets import API_POOL
from booker_assets.defs.checks import check_evaluators
from booker_assets.defs.jobs import LOAD_JOB
from booker_assets.defs.locations import drift_check
from booker_assets.defs.partitions import RANGE_END, RANGE_START
from booker_assets.defs.storage import connect_locked
from booker_assets.demo import DEMO_TAG, Watcher
from booker_assets.settings import load_settings
from booker_assets_tests.e2e import (
    UNPACED_ENV,
    in_progress,
    instance_environment,
    start,
    step_started,
    wait_for,
)
from booker_sandbox import BookerSandbox, SandboxSettings

REPO = Path(__file__).resolve().parents[1]
DEMO = [sys.executable, "-m", "booker_assets.demo"]
STEP_S = 120  # until a demo's run has started its step, on a loaded host


def demo_environment(tmp_path: Path) -> dict[str, str]:
    """The user's shell with no Booker account: the demo uses the embedded sandbox."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    # the README's test runs the demo at the default pace; what this one reads is the same
    return env | UNPACED_ENV | {
        "DAGSTER_HOME": str(home),
        "BOOKER_DUCKDB_PATH": str(tmp_path / "data" / "booker_assets.duckdb")}


def killed_demos(home: str, root: Path) -> set[str]:
    """Two demos in DAGSTER_HOME ``home``, SIGKILLed once their runs load (from a slow sandbox,
    into a file of their own); their runs' ids."""
    root.mkdir()
    with BookerSandbox(SandboxSettings(latency_ms=500)) as slow, \
            dg.DagsterInstance.from_config(home) as instance:
        env = instance_environment(slow, root, ("1001", "1002")) | {"DAGSTER_HOME": home}
        logs = [root / f"killed-{n}.log" for n in range(2)]
        demos = [start([*DEMO, "--days", "7"], env, log) for log in logs]

        def both_loading() -> set[str] | None:
            loading = {run for run in in_progress(instance) if step_started(instance, run)}
            return loading if len(loading) == 2 else None

        try:
            return wait_for("both demo runs to start their step", both_loading,
                            time.monotonic() + STEP_S, logs, interval=0.25)
        finally:
            for process in demos:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def demo_and_killed(tmp_path_factory
                    ) -> tuple[subprocess.CompletedProcess, dict[str, str], set[str]]:
    root = tmp_path_factory.mktemp("demo")
    env = demo_environment(root)
    killed = killed_demos(env["DAGSTER_HOME"], root / "killed")
    done = subprocess.run([*DEMO, "--days", "2"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, env, killed


@pytest.fixture(scope="module")
def demo(demo_and_killed) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    return demo_and_killed[:2]


def test_killed_demos_do_not_block_the_next(demo_and_killed):
    _, env, killed = demo_and_killed
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert len(killed) == 2 and in_progress(instance) == killed  # no daemon to fail them
        # granularity run: in-process runs never claim a slot, so none is left behind
        assert instance.event_log_storage.get_concurrency_info(API_POOL).claimed_slots == []


def test_the_demo_loads_every_location_in_one_run(demo_and_killed):
    """Each run repeats Dagster's fixed work (a planned event per asset and partition, the
    checks over every table): the demo's 2 days × 4 locations are one run (issue 24)."""
    _, env, killed = demo_and_killed
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = [run for run in instance.get_runs()
                if run.job_name == LOAD_JOB and run.run_id not in killed]  # not dbt's
    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS]
    assert runs[0].tags[RANGE_START].endswith("|1001")
    assert runs[0].tags[RANGE_END].endswith("|1004")


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
    copy = Path(env["BOOKER_DUCKDB_PATH"]).with_name("booker_assets.read.duckdb")
    summary = lines.index(f"Read from DuckDB {copy}") + 1  # the file it reads, current
    assert lines[summary] == "What DuckDB holds"
    assert all(any(f"booker.{t} " in line for line in lines[summary:]) for t in TABLES)
    # the marts' summary: a row per location for its sales, then for its appointments and
    # utilization, whole at 80 columns (no cell cut short with "…")
    headers = [line for line in lines if "avg ticket" in line or "no-shows" in line]
    assert all(any(name in line for line in headers) for name in (
        "net sales", "refunds", "no-shows", "rebooked", "staff util", "room util")), headers
    rows = [line for line in lines if re.match(r"│ 100\d ", line)]
    assert len(rows) == 8 and all(re.search(r"\d+%", row) for row in rows[4:]), rows
    assert not any("…" in line for line in headers + rows)
    assert re.fullmatch(r"Checks: \d+ passed, 0 failed", lines[-2])
    log = Path(env["BOOKER_DUCKDB_PATH"]).parent / "demo.log"
    assert lines[-1].startswith("Done in ") and f"Dagster's event log: {log}." in lines[-1]


def test_dagster_debug_stream_goes_to_the_log_file_not_the_terminal(demo):
    done, env = demo
    assert "DEBUG" not in done.stdout and "DEBUG" not in done.stderr
    # a line per table, the summaries (about 70 lines): not the DEBUG stream (thousands)
    assert len(done.stdout.splitlines()) < 80
    log = (Path(env["BOOKER_DUCKDB_PATH"]).parent / "demo.log").read_text()
    assert " - DEBUG - " in log and "ASSET_MATERIALIZATION" in log
    assert "RUN_SUCCESS" in log and "ASSET_CHECK_EVALUATION" in log


def test_after_the_demo_every_check_is_evaluated(demo):
    """Issue 11, finding 5: booker/locations showed "Not evaluated" after ``make demo``. The
    UI reads the latest evaluation of each check from the instance; so does this test."""
    _, env = demo
    settings = load_settings(env)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = {run.run_id for run in instance.get_runs()}
        keys = [*check_evaluators(settings), *drift_check(settings).check_keys]
        latest = {key: instance.get_latest_asset_check_evaluation_record(key) for key in keys}
    locations = [key for key in latest if key.asset_key.path == ["booker", "locations"]]
    assert len(locations) >= 4  # keys, rejects, and the drift check
    not_evaluated = [str(key) for key, record in latest.items()
                     if record is None or record.run_id not in runs]
    assert not_evaluated == []
    assert all(record.event.dagster_event.event_specific_data.passed
               for record in latest.values())


def test_the_terminal_shows_each_warning_and_failure_first_line_once(tmp_path):
    """A load waiting for a held file says so on the terminal (issue 21: only in the log
    file, for 30 s of silence); a failure shows its cause's first line once, its details and
    the DEBUG stream stay in the log file."""
    held = "DuckDB /x/booker_assets.duckdb is held by PID 4242 (dbeaver): waited 0 s"
    cause = "orders, location 1001, 2025-03-05: the disk of /x is full"

    @dg.op
    def load(context) -> None:  # unannotated: Dagster refuses a string annotation
        context.log.info("a detail for the log file")
        context.log.warning(f"{held}\nwaiting up to 600 s more")
        context.log.error(f"report failed: {cause}")
        raise dg.Failure(description=f"{cause}\nThe step's other reports were stored.")

    with dg.DagsterInstance.ephemeral() as instance:
        dg.GraphDefinition("demo_like", node_defs=[load]).to_job().execute_in_process(
            instance=instance, tags={DEMO_TAG: "t"}, raise_on_error=False)
        out = io.StringIO()
        console = Console(file=out, soft_wrap=True)
        with (tmp_path / "demo.log").open("w") as log, \
                Watcher(instance, "t", 1, log, Progress(console=console)):
            pass
    shown = [line for line in out.getvalue().splitlines() if line.startswith("  ")]
    assert shown == [f"  warning: {held}", f"  error: report failed: {cause}"]
    assert "a detail for the log file" in (tmp_path / "demo.log").read_text()
