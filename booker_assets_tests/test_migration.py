"""A database written by the previous version is upgraded in place on the first load of this one.

The old database is made by the previous version's own code (checked out from git into a
temporary folder and run in a child process), so the test meets what users really have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from datetime import date
from io import BytesIO
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.checks import check_evaluators
from booker_assets.defs.migrate import BACKDATED_SCHEMA, DEFAULTS_MOVED, SCHEMA_VERSION
from booker_assets.defs.storage import connect_locked, qualified
from booker_assets_tests.conftest import load_range, make_defs, make_settings, table_rows

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "05b9a303aceac4d531657d0844cf4f1912ec3737"  # the last version before declared schemas
# The tables it had (the weekday defaults' own tables came with version 3, appointments later)
NEWER = (*DEFAULTS_MOVED.values(), "appointments", "appointment_treatments", "appointment_book")
OLD_TABLES = {name: table for name, table in TABLES.items() if name not in NEWER}
LOCS = ("1001", "1002")
OLD_DAYS = (date(2025, 6, 25), date(2025, 6, 27))  # loaded in 2026: snapshots were back-dated
OLD_LOAD = """
import json, sys
from datetime import date
from booker_assets.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.demo import materialize_range
from booker_assets.settings import Settings
args = json.loads(sys.argv[1])
settings = Settings(use_sandbox=False, location_ids=tuple(args["locations"]),
                    start_date=date(2025, 1, 1), duckdb_path=args["database"], lookback_days=7,
                    grace_hours=2, catch_up_days=3, pii="keep")
booker = BookerResource(base_url=args["url"], **args["credentials"], requests_per_second=1000,
                        burst=100)
results = materialize_range(build_definitions(settings, booker), args["locations"],
                            *map(date.fromisoformat, args["days"]))
assert all(r.success for r in results)
"""


# Version 2: weekday defaults in the dated schedule tables, loads without their options
VERSION_2 = "7165aaaa4f6f271f1c0ae74f4084c3457b9c97ba"
V2_DAY = date(2025, 6, 29)  # observable at the sandbox's frozen clock: defaults are stored
V2_LOAD = """
import json, sys
from datetime import date, datetime
import dagster as dg
from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import materialize_range
from booker_assets.defs.partitions import add_locations
from booker_assets.settings import Settings
args = json.loads(sys.argv[1])
settings = Settings(use_sandbox=False, allowed_locations=("1001",), start_date=date(2025, 1, 1),
                    duckdb_path=args["database"], lookback_days=7, grace_hours=2,
                    catch_up_days=3, pii="keep")
booker = BookerResource(base_url=args["url"], **args["credentials"], requests_per_second=1000,
                        burst=100)
now = datetime.fromisoformat(args["now"])
day = date.fromisoformat(args["day"])
with dg.DagsterInstance.ephemeral() as instance:
    add_locations(instance, ["1001"])
    result = materialize_range(
        build_definitions(settings, booker, clock=lambda: now), instance, ["1001"], day, day,
        selection=["booker/location_schedules", "booker/memberships"],
        run_config={"ops": {"booker_reports": {"config": {"schedule_defaults": True}}}})
assert result.success
"""


def _previous_version(folder: Path, commit: str = PREVIOUS) -> Path:
    """The previous version's package, from git (CI clones the whole history)."""
    archive = subprocess.run(["git", "archive", commit, "booker_assets"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def _run_previous(code: Path, script: str, args: dict) -> None:
    done = subprocess.run([sys.executable, "-c", script, json.dumps(args)], cwd=code,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith(("BOOKER_", "DAGSTER_"))},
                               "PYTHONPATH": str(code)}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _counts(database: str) -> dict[str, int]:
    with connect_locked(database, read_only=True) as conn:
        return {name: conn.execute(f"SELECT count(*) FROM {qualified(conn, name)}").fetchone()[0]
                for name in OLD_TABLES}


def _types(database: str, column: str) -> set[tuple[str, str]]:
    with connect_locked(database, read_only=True) as conn:
        return set(conn.execute(
            "SELECT table_name, data_type FROM duckdb_columns() WHERE schema_name = 'booker'"
            " AND column_name = ?", [column]).fetchall())


@pytest.fixture(scope="module")
def old_database(sandbox, tmp_path_factory) -> str:
    code = _previous_version(tmp_path_factory.mktemp("previous"))
    database = str(tmp_path_factory.mktemp("db") / "booker_assets.duckdb")
    args = {"url": sandbox.url, "credentials": sandbox.credentials, "database": database,
            "locations": list(LOCS), "days": [str(d) for d in OLD_DAYS]}
    _run_previous(code, OLD_LOAD, args)
    assert ("orders", "VARCHAR") in _types(database, "location_id")  # the old layout
    return database


def test_the_first_load_upgrades_the_previous_versions_database(sandbox, old_database):
    before = _counts(old_database)
    settings = make_settings(Path(old_database).parent, LOCS, duckdb_path=old_database)
    started = time.perf_counter()
    result = load_range(make_defs(sandbox, settings), LOCS, date(2025, 6, 29), date(2025, 6, 29))
    seconds = time.perf_counter() - started
    assert result.success
    upgraded = _counts(old_database)
    with connect_locked(old_database, read_only=True) as conn:
        version = conn.execute(
            f"SELECT max(version) FROM {qualified(conn, '_schema_version')}").fetchone()[0]
        kept = {name: conn.execute(
            f"SELECT count(*) FROM {qualified(conn, name, BACKDATED_SCHEMA)}").fetchone()[0]
            for name, table in OLD_TABLES.items() if table.history == "snapshot"}
        statuses = dict(conn.execute(
            f"SELECT status, count(*) FROM {qualified(conn, '_loads')} WHERE report_date"
            f" <= '{OLD_DAYS[-1]}' AND table_name = 'employees' GROUP BY 1").fetchall())
        locations = conn.execute(f"SELECT count(*) FROM {qualified(conn, 'locations')}"
                                 " WHERE location_id IS DISTINCT FROM id").fetchone()[0]
        # the views the old version made bind the old types: each is made again when written
        current = {name: conn.execute(f"SELECT count(*) FROM {qualified(conn, name + '_current')}"
                                      ).fetchone()[0]
                   for name, table in OLD_TABLES.items() if table.entity_key}
        money = conn.execute("SELECT data_type FROM duckdb_columns() WHERE schema_name ="
                             " 'booker' AND table_name = 'orders' AND column_name ="
                             " 'final_total_amount'").fetchone()[0]
    print(f"\nmigration and a one-day load: {seconds:.1f} s; moved aside {kept}")

    assert version == SCHEMA_VERSION
    assert {t for _, t in _types(old_database, "location_id")} == {"BIGINT"}
    assert locations == 0  # each location's row carries its own id
    assert money == "DECIMAL(18,2)"
    assert ("treatments", "JSON") in _types(old_database, "employee_ids")  # was employee_i_ds
    assert all(current[name] <= upgraded[name] for name in current)
    # dated reports keep every old row (plus the new day's); back-dated snapshots moved aside
    for name, table in OLD_TABLES.items():
        if table.history == "dated":
            assert upgraded[name] >= before[name], name
        elif name != "locations":
            assert kept[name] == before[name] > 0, name
    assert statuses == {"no_history": len(LOCS) * 3}


def test_version_2s_weekday_defaults_move_to_their_own_table(sandbox, tmp_path):
    """A version-2 load with schedule_defaults stored weekday rows in location_schedules: the
    upgrade moves them (and their loads) to location_schedule_defaults; the loads before it
    have no options, which the check names as not recorded."""
    database = str(tmp_path / "booker_assets.duckdb")
    _run_previous(_previous_version(tmp_path / "v2", VERSION_2), V2_LOAD, {
        "url": sandbox.url, "credentials": sandbox.credentials, "database": database,
        "day": str(V2_DAY), "now": sandbox.settings.now.isoformat()})
    settings = make_settings(tmp_path, ("1001",), duckdb_path=database)
    defs = make_defs(sandbox, settings)
    assert load_range(defs, ("1001",), V2_DAY, V2_DAY, selection=["booker/orders"]).success
    with connect_locked(database, read_only=True) as conn:
        undated = conn.execute(f"SELECT count(*) FROM {qualified(conn, 'location_schedules')}"
                               " WHERE date IS NULL").fetchone()[0]
        defaults = conn.execute("SELECT count(DISTINCT weekday) FROM"
                                f" {qualified(conn, 'location_schedule_defaults')}").fetchone()[0]
        loads = dict(conn.execute(
            f"SELECT table_name, coalesce(options::VARCHAR, 'none') FROM"
            f" {qualified(conn, '_loads')} WHERE table_name <> 'orders'").fetchall())
    assert (undated, defaults) == (0, 7)
    assert loads == {"location_schedule_defaults": "none", "memberships": "none"}
    warned = check_evaluators(settings)[dg.AssetCheckKey(
        dg.AssetKey(["booker", "memberships"]), "options_match_deployment")].evaluate(())
    assert warned.severity == dg.AssetCheckSeverity.WARN and not warned.passed
    (row,) = table_rows(warned.metadata["offending_partitions"])
    assert row["loaded_with"] == "not recorded (loaded before options were)"
