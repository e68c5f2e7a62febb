"""End to end: dagster-webserver + dagster-daemon on loopback run a backfill against the sandbox,
as deployed on several hosts.

On a fresh instance the ``booker_locations`` sensor's first tick adds the location partitions
(nothing else seeds them). The backfill then goes through the webserver's GraphQL API
(``launchPartitionBackfill``, as the UI does), the daemon splits it into single-run ranges and
the runs write DuckDB. The instance is the shipped ``dagster.yaml`` with
``deploy/storage.postgres.yaml`` appended, as ``make install DAGSTER_STORAGE=postgres`` writes
it (runs, events and schedules in a PostgreSQL server the test starts), and the rate bucket in
the same database (``BOOKER_RATE_BUCKET=postgres``). The shipped SQLite instance runs the same
daemon backfill in the browser test (``test_ui.py``, under ``dagster dev``) and launched runs in
``test_dead_runs.py``: running it here too would pay a third webserver and daemon for nothing
they do not check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from booker_assets.defs.storage import connect_locked
from booker_assets_tests.e2e import (
    HAS_DAEMON,
    REPO,
    instance_environment,
    wait_for,
    webserver_and_daemon,
)
from booker_sandbox import BookerSandbox

LOCS = ("1001", "1002")
DAYS = (date(2025, 3, 1), date(2025, 3, 2))
TABLES = ("orders", "orders_items", "orders_refunds")
DEADLINE_S = 180

LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams:
  $params) { __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message } ... on InvalidSubsetError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
PARTITIONS = """{ assetNodeOrError(assetKey: {path: ["booker", "orders"]}) { ... on AssetNode {
  partitionKeysByDimension { name partitionKeys } } } }"""
RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]})
  { ... on Runs { results { status tags { key value } } } } }"""


def _postgres_deployment(home: Path, dsn: str) -> dict[str, str]:
    """Appends the shipped Postgres storage to the instance settings: its DAGSTER_PG_* vars,
    and the rate bucket's in the same database."""
    with (home / "dagster.yaml").open("a") as config:
        config.write((REPO / "deploy" / "storage.postgres.yaml").read_text())
    server = psycopg.conninfo.conninfo_to_dict(dsn)
    return {"DAGSTER_PG_HOST": server["host"], "DAGSTER_PG_PORT": server["port"],
            "DAGSTER_PG_USER": server["user"], "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": server["dbname"],
            "BOOKER_RATE_BUCKET": "postgres", "BOOKER_RATE_POSTGRES_DSN": dsn}


@pytest.fixture
def environment(sandbox: BookerSandbox, tmp_path: Path, postgres_dsn: str) -> dict:
    env = instance_environment(sandbox, tmp_path, LOCS)
    return env | _postgres_deployment(Path(env["DAGSTER_HOME"]), postgres_dsn)


@pytest.fixture
def deployment(environment: dict, tmp_path: Path) -> Iterator[tuple]:
    deadline = time.monotonic() + DEADLINE_S
    with webserver_and_daemon(environment, tmp_path, deadline,
                              keep_running=("booker_locations",)) as (client, logs):
        yield client, deadline, logs


@pytest.mark.skipif(not HAS_DAEMON, reason="dagster-daemon not installed")
def test_backfill_through_graphql_lands_in_duckdb(
    deployment, environment: dict, sandbox: BookerSandbox
):
    client, deadline, logs = deployment
    started = time.monotonic()

    def locations() -> list[str] | None:
        dimensions = client._execute(PARTITIONS)["assetNodeOrError"]["partitionKeysByDimension"]
        return next(d["partitionKeys"] for d in dimensions if d["name"] == "location") or None

    # BOOKER_LOCATION_IDS is the allow-list: the sandbox's other two locations stay out
    assert wait_for("the location partitions", locations, deadline, logs) == list(LOCS)
    print(f"\nlocation partitions in the UI {time.monotonic() - started:.1f} s after the "
          "daemon started")
    params = {
        "partitionNames": [f"{day}|{loc}" for day in DAYS for loc in LOCS],
        "assetSelection": [{"path": ["booker", table]} for table in TABLES],
    }
    launched = client._execute(LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def finished() -> str | None:
        status = client._execute(STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
        return status if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED",
                                    "FAILED", "CANCELED") else None

    assert wait_for("the backfill", finished, deadline, logs) in ("COMPLETED",
                                                                  "COMPLETED_SUCCESS")
    runs = client._execute(RUNS, {"id": backfill_id})["runsOrError"]["results"]
    # single-run policy: one run per location (or per day) covering the other dimension
    assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCESS"}

    expected = {(day, int(loc)): len(sandbox.dataset.orders(int(loc), day))
                for day in DAYS for loc in LOCS}
    with connect_locked(environment["BOOKER_DUCKDB_PATH"], read_only=True) as conn:
        rows = conn.execute("SELECT report_date, location_id, count(*) FROM booker.orders"
                            " GROUP BY ALL").fetchall()
        loads = conn.execute("SELECT report_date, location_id, row_count FROM booker._loads"
                             " WHERE table_name = 'orders'").fetchall()
    assert {(day, loc): n for day, loc, n in rows} == {k: n for k, n in expected.items() if n}
    assert {(day, loc): n for day, loc, n in loads} == expected  # closed days recorded as 0
    assert sum(expected.values()) > 0
    _assert_instance_storage(environment, backfill_id)


def _assert_instance_storage(environment: dict, backfill_id: str) -> None:
    """The runs are where the instance settings put them, and only there; so is the bucket."""
    assert not (Path(environment["DAGSTER_HOME"]) / "history" / "runs.db").exists()
    with psycopg.connect(environment["BOOKER_RATE_POSTGRES_DSN"]) as conn:
        runs = conn.execute("SELECT status FROM runs r JOIN run_tags t ON t.run_id = r.run_id"
                            " WHERE t.key = 'dagster/backfill' AND t.value = %s",
                            (backfill_id,)).fetchall()
        buckets = conn.execute("SELECT count(*) FROM booker_rate_bucket").fetchone()[0]
    assert sorted(status for (status,) in runs) == ["SUCCESS", "SUCCESS"]
    assert buckets == 1  # both runs drew from one bucket
