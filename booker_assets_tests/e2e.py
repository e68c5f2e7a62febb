"""Real processes for end-to-end tests: a Dagster home with the shipped dagster.yaml, and a
dagster-webserver and dagster-daemon on loopback, started and stopped by the test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from booker_sandbox import BookerSandbox

REPO = Path(__file__).resolve().parents[1]
# The sandbox has no rate limit: at the default pace (10 requests/s) a deployment's runs only
# wait for tokens (conftest.TEST_PACE does the same for the tests' in-process runs).
UNPACED_ENV = {"BOOKER_REQUESTS_PER_SECOND": "1000"}
BIN = Path(sys.executable).parent
HAS_DAEMON = (BIN / "dagster-daemon").exists()

REPOS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { id name } schedules { id name } } } } }"""
STOP_SENSOR = "mutation($id: String) { stopSensor(id: $id) { __typename } }"
STOP_SCHEDULE = "mutation($id: String) { stopRunningSchedule(id: $id) { __typename } }"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # own process group: the webserver and daemon spawn code servers and run workers
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(what: str, probe: Callable[[], T | None], deadline: float, logs: Sequence[Path],
             interval: float = 2.0) -> T:
    """``probe()``'s first truthy value before ``deadline`` (monotonic); else fail the test
    with the tail of each log."""
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception:  # the server is still starting
            value = None
        if value:
            return value
        time.sleep(interval)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def instance_environment(sandbox: BookerSandbox, root: Path, locations: Sequence[str]) -> dict:
    """The environment of a deployment under ``root``: a fresh DAGSTER_HOME with the shipped
    dagster.yaml, Booker at ``sandbox``, a DuckDB file of its own."""
    home = root / "dagster_home"
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
        "BOOKER_LOCATION_IDS": ",".join(locations),
        "BOOKER_START_DATE": "2025-01-01",
        "BOOKER_DUCKDB_PATH": str(root / "warehouse.duckdb"),
    } | UNPACED_ENV


def demo_environment(tmp_path: Path) -> dict[str, str]:
    """The user's shell with no Booker account (the embedded sandbox), the shipped instance
    settings in a DAGSTER_HOME and a database of its own under ``tmp_path``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKER_", "DAGSTER_"))}
    return env | UNPACED_ENV | {
        "DAGSTER_HOME": str(home),
        "BOOKER_DUCKDB_PATH": str(tmp_path / "data" / "booker_assets.duckdb")}


@contextmanager
def webserver_and_daemon(
    environment: dict, logs_dir: Path, deadline: float, keep_running: Collection[str] = ()
) -> Iterator[tuple[DagsterGraphQLClient, list[Path]]]:
    """A webserver, then a daemon, on the workspace; the sensors and schedules that run by
    default are stopped first (on the real clock they would load 2026 days), except those
    named in ``keep_running``."""
    port = free_port()
    workspace = ["-w", str(REPO / "workspace.yaml")]
    logs = [logs_dir / "webserver.log", logs_dir / "daemon.log"]
    processes = [start([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                        *workspace], environment, logs[0])]
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        repos = wait_for("the webserver", lambda: client._execute(REPOS)["repositoriesOrError"]
                         ["nodes"], deadline, logs)
        for repo in repos:
            for sensor in repo["sensors"]:
                if sensor["name"] not in keep_running:
                    client._execute(STOP_SENSOR, {"id": sensor["id"]})
            for schedule in repo["schedules"]:
                if schedule["name"] not in keep_running:
                    client._execute(STOP_SCHEDULE, {"id": schedule["id"]})
        processes.append(start([str(BIN / "dagster-daemon"), "run", *workspace],
                               environment, logs[1]))
        yield client, logs
    finally:
        for process in processes:
            stop(process)


def in_progress(instance: dg.DagsterInstance) -> set[str]:
    """Runs in progress: those the run queue counts against pool ``booker_api``."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING]))
    return {r.dagster_run.run_id for r in records}


def step_started(instance: dg.DagsterInstance, run_id: str) -> bool:
    return bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))
