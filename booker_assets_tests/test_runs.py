"""Dead runs: the instance settings and the reaper that mark them failed and free their slots."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._utils.interrupts import capture_interrupts

from booker_assets.defs import pool_wait
from booker_assets.defs.assets import STEP_NAME
from booker_assets.defs.runs import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    booker_reap_dead_runs,
    process_identity,
    reap_unwatched_runs,
    worker_tags,
)
from booker_assets_tests.e2e import REPO


def test_shipped_instance_frees_dead_runs_slots_and_retries_dead_workers(tmp_path: Path) -> None:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        settings = instance.run_monitoring_settings
        # unset or 0: the slots of a dead run are never freed
        assert settings["free_slots_after_run_end_seconds"] > 0
        assert settings["poll_interval_seconds"] <= 10  # recovery within a minute
        assert instance.run_monitoring_max_resume_run_attempts == 0  # cannot resume
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure


# ----- the reaper, on a real instance and real processes ---------------------------------------

POOL = "booker_api"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 2)
        yield instance


@pytest.fixture
def dead_process() -> dict[str, str]:
    """The worker tags of a process that has exited (and been collected)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    tags = worker_tags() | {PID_TAG: str(child.pid),
                            PID_START_TAG: process_identity(child.pid) or ""}
    child.kill()
    child.wait()
    return tags


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str],
                 launched: bool = False) -> str:
    """A STARTED run holding a booker_api slot, as its process left it."""
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(
        "booker_assets"), "__repository__"), "__ASSET_JOB") if launched else None
    run = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", tags=tags,
                                         status=dg.DagsterRunStatus.STARTED,
                                         remote_job_origin=origin))
    claim = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, STEP_NAME, 0)
    assert claim.is_claimed
    return run.run_id


def _holders(instance: dg.DagsterInstance) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return {slot.run_id for slot in info.claimed_slots} | {
        step.run_id for step in info.pending_steps}


def test_a_dead_unwatched_run_is_failed_and_its_slot_freed(instance, dead_process) -> None:
    run_id = _started_run(instance, dead_process)

    assert reap_unwatched_runs(instance) == [run_id]
    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert run_id not in _holders(instance)
    assert reap_unwatched_runs(instance) == []  # once


def test_live_runs_and_other_hosts_runs_are_left_alone(instance, dead_process) -> None:
    instance.event_log_storage.set_concurrency_slots(POOL, 3)
    alive = _started_run(instance, worker_tags())
    elsewhere = _started_run(instance, dead_process | {HOST_TAG: "another-host"})
    untagged = _started_run(instance, {})

    assert reap_unwatched_runs(instance) == []
    assert {alive, elsewhere, untagged} <= _holders(instance)


def test_a_reused_pid_counts_as_dead(instance) -> None:
    # this process's pid, recorded for a process that started at another time
    run_id = _started_run(instance, worker_tags() | {PID_START_TAG: "another-boot/1"})

    assert reap_unwatched_runs(instance) == [run_id]


def test_a_launched_run_is_reaped_only_when_still_dead_a_tick_later(
    instance, dead_process
) -> None:
    """Its code server reports a dead worker within a second; the reaper steps in only when
    that code server is gone too (e.g. a container restart)."""
    run_id = _started_run(instance, dead_process, launched=True)
    assert reap_unwatched_runs(instance) == []  # the demo's and the CLI's reap skip it

    first = dg.build_sensor_context(instance=instance)
    booker_reap_dead_runs(first)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    booker_reap_dead_runs(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert run_id not in _holders(instance)


# ----- waiting for a slot -------------------------------------------------------------------------


def test_a_step_waiting_for_a_slot_sleeps_and_stops_on_an_interrupt(instance) -> None:
    pool_wait.install()
    for holder in ("holder-a", "holder-b"):
        assert instance.event_log_storage.claim_concurrency_slot(POOL, holder, STEP_NAME,
                                                                 0).is_claimed
    run = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB",
                                         status=dg.DagsterRunStatus.STARTED))
    with InstanceConcurrencyContext(instance, run) as waiting:
        assert not waiting.claim(POOL, STEP_NAME)
        # Dagster 1.13 returns 0 here, and its executor loop spins
        assert 0 < waiting.interval_to_next_pending_claim_check() <= pool_wait.MAX_WAIT_S
        with capture_interrupts():  # as during a run: a signal only sets a flag
            os.kill(os.getpid(), signal.SIGINT)
            with pytest.raises(dg.DagsterExecutionInterruptedError):
                waiting.interval_to_next_pending_claim_check()
    assert _holders(instance) == {"holder-a", "holder-b"}  # the waiting claim is withdrawn
