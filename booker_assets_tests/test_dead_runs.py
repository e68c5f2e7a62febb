"""Dead runs, end to end: real run processes, a real instance (the shipped dagster.yaml) and a
real webserver and daemon, against a sandbox slowed down so that a run holds its slot.

- a run launched by the daemon, SIGKILLed: FAILURE, its slot freed, re-run once;
- the two booker_api slot holders SIGKILLed: the load queued behind them completes;
- an in-process (demo) run SIGKILLed: the reaper sensor fails it and frees its slot;
- an in-process run waiting for a slot, sent SIGTERM or SIGINT: it exits, leaving no claim;
- with no daemon, two demo runs holding both slots SIGKILLed: the next demo completes.

Bounds are generous (a loaded 2-core host triples start-up times); each test prints what it
measured, seconds after the signal (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from dagster_graphql import DagsterGraphQLClient

from booker_assets.defs.assets import API_POOL, STEP_NAME
from booker_assets.defs.partitions import RANGE_END, RANGE_START, add_locations
from booker_assets.defs.runs import PID_TAG, REAPER_NAME
from booker_assets.sandbox import BookerSandbox, SandboxSettings
from booker_assets_tests.e2e import (
    HAS_DAEMON,
    instance_environment,
    start,
    wait_for,
    webserver_and_daemon,
)

LOCS = ("1001", "1002")
# 0.5 s per request: a month of every report takes minutes, a day of orders seconds.
LATENCY_MS = 500
ALL_TABLES = None  # every asset of the implicit job
ORDERS = [dg.AssetKey(["booker", "orders"])]
STARTUP_S = 240  # webserver, code server and daemon on a loaded host
SLOT_S = 120  # until a launched run's step holds its slot (a run worker's start-up)
RECOVERY_S = 90  # the aim is under a minute; measured figures are printed
REAP_S = 60  # the reaper ticks every 15 s; the sensor daemon can lag behind under load
EXIT_S = 30  # a waiting run notices a signal within 0.5 s, then tears down

T = TypeVar("T")


# ----- the deployment ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[BookerSandbox]:
    with BookerSandbox(SandboxSettings(latency_ms=LATENCY_MS)) as sb:
        yield sb


@pytest.fixture(scope="module")
def deployment(slow_sandbox: BookerSandbox, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[DagsterGraphQLClient, dict, list[Path]]]:
    """Webserver and daemon; of the default-on sensors only the reaper runs."""
    root = tmp_path_factory.mktemp("deployment")
    env = instance_environment(slow_sandbox, root, LOCS)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        add_locations(instance, LOCS)  # what the (stopped) booker_locations sensor would do
    deadline = time.monotonic() + STARTUP_S
    with webserver_and_daemon(env, root, deadline, keep_running={REAPER_NAME}) as (client,
                                                                                   logs):
        yield client, env, logs


@pytest.fixture
def instance(deployment) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(deployment[1]["DAGSTER_HOME"]) as instance:
        yield instance
        assert _holders(instance) == set(), "a run still holds a booker_api slot"


# ----- helpers ----------------------------------------------------------------------------------


def _until(what: str, probe: Callable[[], T | None], seconds: float, logs: list[Path]) -> T:
    return wait_for(what, probe, time.monotonic() + seconds, logs, interval=0.25)


def _launch(client: DagsterGraphQLClient, assets: list[dg.AssetKey] | None,
            tags: dict[str, str]) -> str:
    """A run of the implicit asset job through the webserver, as the launchpad makes it."""
    return client.submit_job_execution("__ASSET_JOB", repository_location_name="booker_assets",
                                       repository_name="__repository__", tags=tags,
                                       asset_selection=assets)


def _month(location: str) -> dict[str, str]:
    return {RANGE_START: f"2025-03-01|{location}", RANGE_END: f"2025-03-31|{location}"}


def _holders(instance: dg.DagsterInstance) -> set[str]:
    """Runs holding a booker_api slot, or queued for one inside their run."""
    info = instance.event_log_storage.get_concurrency_info(API_POOL)
    return {s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}


def _slot_holder_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of ``run_id``'s process once its step holds a slot."""
    info = instance.event_log_storage.get_concurrency_info(API_POOL)
    if run_id not in {s.run_id for s in info.claimed_slots}:
        return None
    return int(instance.get_run_by_id(run_id).tags[PID_TAG])


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def _is(instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus
        ) -> Callable[[], bool]:
    return lambda: _status(instance, run_id) == status


def _freed(instance: dg.DagsterInstance, *run_ids: str) -> Callable[[], bool]:
    return lambda: not _holders(instance) & set(run_ids)


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 1)


def _measured(test: str, **figures: str) -> None:
    print(f"\n[measured] {test}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


def _run_of(instance: dg.DagsterInstance, process: subprocess.Popen, logs: list[Path],
            seconds: float) -> str:
    """The run that ``process`` (an in-process load) executes, once it exists."""
    def run_id() -> str | None:
        records = instance.get_run_records(dg.RunsFilter(tags={PID_TAG: str(process.pid)}))
        return records[0].dagster_run.run_id if records else None
    return _until(f"process {process.pid}'s run", run_id, seconds, logs)


def _demo(env: dict, log: Path, days: int = 2) -> subprocess.Popen:
    return start([sys.executable, "-m", "booker_assets.demo", "--days", str(days)], env, log)


# ----- under the daemon -------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_DAEMON, reason="dagster-daemon not installed")
def test_a_sigkilled_daemon_run_fails_frees_its_slot_and_is_rerun_once(deployment, instance):
    client, _, logs = deployment
    run_id = _launch(client, ALL_TABLES, {RANGE_START: "2025-03-01|1001",
                                          RANGE_END: "2025-03-03|1001"})
    pid = _until("the run to hold a slot", lambda: _slot_holder_pid(instance, run_id), SLOT_S,
                 logs)

    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    _until("the killed run to fail", _is(instance, run_id, dg.DagsterRunStatus.FAILURE),
           RECOVERY_S, logs)
    failed = _since(t0)
    _until("its slot to be freed", _freed(instance, run_id), RECOVERY_S, logs)
    freed = _since(t0)

    def retry() -> str | None:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
        return records[0].dagster_run.run_id if records else None

    retry_id = _until("the re-run", retry, RECOVERY_S, logs)
    _until("the re-run to succeed", _is(instance, retry_id, dg.DagsterRunStatus.SUCCESS),
           SLOT_S + RECOVERY_S, logs)
    _measured("daemon run SIGKILL", failure=f"{failed} s", slot_freed=f"{freed} s",
              rerun_success=f"{_since(t0)} s")
    assert instance.get_run_by_id(retry_id).tags.get("dagster/retry_number") == "1"


@pytest.mark.skipif(not HAS_DAEMON, reason="dagster-daemon not installed")
def test_two_sigkilled_slot_holders_do_not_block_the_next_load(deployment, instance):
    client, _, logs = deployment
    no_rerun = {"dagster/max_retries": "0"}  # this test is about the load waiting behind them
    holders = [_launch(client, ALL_TABLES, _month(location) | no_rerun) for location in LOCS]
    pids = [_until("both runs to hold a slot", lambda r=r: _slot_holder_pid(instance, r),
                   SLOT_S, logs) for r in holders]
    load = _launch(client, ORDERS, {"dagster/partition": "2025-03-05|1001"})
    # The pool is full: the coordinator keeps the load queued behind the two holders.
    time.sleep(2)
    assert _status(instance, load) == dg.DagsterRunStatus.QUEUED

    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    _until("the killed runs' slots to be freed", _freed(instance, *holders), RECOVERY_S, logs)
    freed = _since(t0)
    _until("the queued load to succeed", _is(instance, load, dg.DagsterRunStatus.SUCCESS),
           RECOVERY_S, logs)
    _measured("two slot holders SIGKILL", slots_freed=f"{freed} s",
              next_load_success=f"{_since(t0)} s")
    assert {_status(instance, r) for r in holders} == {dg.DagsterRunStatus.FAILURE}


@pytest.mark.skipif(not HAS_DAEMON, reason="dagster-daemon not installed")
def test_a_sigkilled_in_process_run_is_failed_by_the_reaper(deployment, instance, tmp_path):
    _, env, logs = deployment
    demo = _demo(env, tmp_path / "demo.log")
    logs = [*logs, tmp_path / "demo.log"]
    run_id = _run_of(instance, demo, logs, SLOT_S)
    _until("the demo's run to hold a slot", lambda: _slot_holder_pid(instance, run_id), SLOT_S,
           logs)

    demo.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    demo.wait()
    _until("the reaper to fail the run", _is(instance, run_id, dg.DagsterRunStatus.FAILURE),
           REAP_S, logs)
    failed = _since(t0)
    _until("its slot to be freed", _freed(instance, run_id), REAP_S, logs)
    _measured("in-process run SIGKILL", failure=f"{failed} s", slot_freed=f"{_since(t0)} s")
    (failure,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    assert REAPER_NAME in failure.message


# ----- no daemon --------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time in /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_waiting_for_a_slot_stops_on_a_signal_and_leaves_no_claim(
    slow_sandbox: BookerSandbox, tmp_path: Path, signum: int
):
    env = instance_environment(slow_sandbox, tmp_path, LOCS)
    logs = [tmp_path / "demo.log"]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(API_POOL, 2)
        for holder in ("holder-a", "holder-b"):  # two live runs elsewhere hold both slots
            assert storage.claim_concurrency_slot(API_POOL, holder, STEP_NAME, 0).is_claimed
        demo = _demo(env, logs[0])
        try:
            run_id = _run_of(instance, demo, logs, SLOT_S)
            _until("the demo's step to wait for a slot", lambda: run_id in _holders(instance),
                   SLOT_S, logs)
            cpu = _cpu_seconds(demo.pid)
            time.sleep(3)
            cpu = round((_cpu_seconds(demo.pid) - cpu) / 3 * 100)

            demo.send_signal(signum)
            t0 = time.monotonic()
            demo.wait(timeout=EXIT_S)
        finally:
            demo.kill()
        _measured(f"waiting run {signal.Signals(signum).name}", exit=f"{_since(t0)} s",
                  cpu_while_waiting=f"{cpu} % of a core")
        assert demo.returncode != 0, "the run was interrupted: the demo cannot succeed"
        assert _status(instance, run_id) == dg.DagsterRunStatus.FAILURE
        assert _holders(instance) == {"holder-a", "holder-b"}  # its claim withdrawn, only


def test_two_sigkilled_demo_runs_do_not_block_the_next_demo(slow_sandbox: BookerSandbox,
                                                            tmp_path: Path):
    """With no daemon, the next demo reaps the dead runs before it loads."""
    env = instance_environment(slow_sandbox, tmp_path, LOCS)
    logs = [tmp_path / f"demo-{n}.log" for n in range(3)]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        killed = [_demo(env, log, days=7) for log in logs[:2]]
        try:
            runs = [_run_of(instance, demo, logs, SLOT_S) for demo in killed]
            _until("both demo runs to hold a slot",
                   lambda: all(_slot_holder_pid(instance, r) for r in runs), SLOT_S, logs)
        finally:
            for demo in killed:
                demo.kill()
                demo.wait()
        t0 = time.monotonic()
        assert _demo(env, logs[2], days=1).wait(timeout=RECOVERY_S) == 0, logs[2].read_text()
        _measured("two demo runs SIGKILL, no daemon", next_demo_done=f"{_since(t0)} s")
        assert {_status(instance, r) for r in runs} == {dg.DagsterRunStatus.FAILURE}
        assert _holders(instance) == set()
        assert logs[2].read_text().count("Marked dead run") == 2
