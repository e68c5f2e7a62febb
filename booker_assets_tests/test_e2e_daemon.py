"""End to end: dagster-webserver + dagster-daemon on loopback run a backfill against the sandbox.

On a fresh instance the ``booker_locations`` sensor's first tick adds the location partitions
(nothing else seeds them); the backfill then goes through the webserver's GraphQL API
(``launchPartitionBackfill``, as the UI does), the daemon splits it into single-run ranges and
the runs write DuckDB.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from booker_assets.defs.storage import connect_locked
from booker_assets.sandbox import BookerSandbox

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCS = ("1001", "1002")
DAYS = (date(2025, 3, 1), date(2025, 3, 2))
TABLES = ("orders", "orders_items", "orders_refunds")
DEADLINE_S = 180

REPOS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { id name } schedules { id name } } } } }"""
STOP_SENSOR = "mutation($id: String) { stopSensor(id: $id) { __typename } }"
STOP_SCHEDULE = "mutation($id: String) { stopRunningSchedule(id: $id) { __typename } }"
LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams:
  $params) { __typename ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message } ... on InvalidSubsetError { message } } }"""
PARTITIONS = """{ assetNodeOrError(assetKey: {path: ["booker", "orders"]}) { ... on AssetNode {
  partitionKeysByDimension { name partitionKeys } } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]})
  { ... on Runs { results { status tags { key value } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # own process group: the webserver and daemon spawn code servers and run workers
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for(what: str, probe, deadline: float, logs: list[Path]):
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception:  # the server is still starting
            value = None
        if value:
            return value
        time.sleep(2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def environment(sandbox: BookerSandbox, tmp_path: Path) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the shipped instance settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    return env | {
        "DAGSTER_HOME": str(home),
        "BOOKER_BASE_URL": sandbox.url,
        "BOOKER_CLIENT_ID": sandbox.credentials["client_id"],
        "BOOKER_CLIENT_SECRET": sandbox.credentials["client_secret"],
        "BOOKER_SUBSCRIPTION_KEY": sandbox.credentials["subscription_key"],
        "BOOKER_PERSONAL_ACCESS_TOKEN": sandbox.credentials["personal_access_token"],
        "BOOKER_LOCATION_IDS": ",".join(LOCS),
        "BOOKER_START_DATE": "2025-01-01",
        "BOOKER_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
    }


@pytest.fixture
def webserver_and_daemon(environment: dict, tmp_path: Path) -> Iterator[tuple]:
    port, deadline = _free_port(), time.monotonic() + DEADLINE_S
    workspace = ["-w", str(REPO / "workspace.yaml")]
    logs = [tmp_path / "webserver.log", tmp_path / "daemon.log"]
    web = _start([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                  *workspace], environment, logs[0])
    processes = [web]
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        repos = _wait_for("the webserver", lambda: client._execute(REPOS)["repositoriesOrError"]
                          ["nodes"], deadline, logs)
        # the daily loads run by default; on the real clock they would load 2026 days
        for repo in repos:
            for sensor in repo["sensors"]:
                if sensor["name"] != "booker_locations":
                    client._execute(STOP_SENSOR, {"id": sensor["id"]})
            for schedule in repo["schedules"]:
                client._execute(STOP_SCHEDULE, {"id": schedule["id"]})
        processes.append(_start([str(BIN / "dagster-daemon"), "run", *workspace],
                                environment, logs[1]))
        yield client, deadline, logs
    finally:
        for process in processes:
            _stop(process)


@pytest.mark.skipif(not (BIN / "dagster-daemon").exists(), reason="dagster-daemon not installed")
def test_backfill_through_graphql_lands_in_duckdb(
    webserver_and_daemon, environment: dict, sandbox: BookerSandbox
):
    client, deadline, logs = webserver_and_daemon
    started = time.monotonic()

    def locations() -> list[str] | None:
        dimensions = client._execute(PARTITIONS)["assetNodeOrError"]["partitionKeysByDimension"]
        return next(d["partitionKeys"] for d in dimensions if d["name"] == "location") or None

    # BOOKER_LOCATION_IDS is the allow-list: the sandbox's other two locations stay out
    assert _wait_for("the location partitions", locations, deadline, logs) == list(LOCS)
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

    assert _wait_for("the backfill", finished, deadline, logs) in ("COMPLETED",
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
