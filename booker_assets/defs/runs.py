"""Dead runs: a run whose process died is marked failed and gives its pool slots back.

Dagster frees a ``booker_api`` slot when the step holding it ends, or when the monitoring
daemon sees that the run has ended (``run_monitoring`` in dagster.yaml). A run worker launched
by the daemon is reported dead by the code server that spawned it. Nothing watches the others:
runs executed in the caller's process (``make demo``, ``dagster asset materialize``; with
DAGSTER_HOME set they use the persistent instance) and launched runs whose code server died
with them (a container restart). They stay STARTED for ever and hold their slots, so two of
them stop every later load.

- Every run records where it executes, as tags: ``booker/host``, ``booker/pid`` and
  ``booker/pid_start`` (which tells a reused pid apart). The demo passes ``worker_tags()`` when
  it creates its run; the code location's executor adds them to every run it executes.
- ``dead_runs``: the STARTED runs whose process on this host is gone. The sensor
  ``booker_reap_dead_runs`` fails them and frees their slots every 15 s under the daemon; the
  demo, and every run this executor starts, reap the unwatched ones first, so a load with no
  daemon never waits on a dead run either.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

HOST_TAG = "booker/host"
PID_TAG = "booker/pid"
PID_START_TAG = "booker/pid_start"
REAPER_NAME = "booker_reap_dead_runs"
# A dead unwatched run keeps its slots until the next tick; a tick is one indexed query.
REAP_INTERVAL_SECONDS = 15


# ---------------------------------------------------------------- processes


@functools.cache
def _boot_id() -> str:
    """This boot of the kernel: a pid's start time only identifies it within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_identity(pid: int) -> str | None:
    """``<boot id>/<start time>`` of live process ``pid`` (Linux), ``""`` if the system cannot
    tell (no /proc), None if there is no such live process (gone, or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # the latter: it exited while read
        return None if Path("/proc/self/stat").exists() else _exists_without_proc(pid)
    fields = stat.rsplit(")", 1)[1].split()  # after "(command)", which may hold spaces
    if fields[0] in ("Z", "X"):  # dead, waiting for its parent to collect it
        return None
    return f"{_boot_id()}/{fields[19]}"  # field 22 of proc(5): start time in clock ticks


def _exists_without_proc(pid: int) -> str | None:
    """Without /proc (macOS): whether ``pid`` exists; a reused pid cannot be told apart."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # exists, another user's
        return ""
    return ""


def worker_tags() -> dict[str, str]:
    """Tags saying that this process executes the run: pass them when creating a run."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid),
            PID_START_TAG: process_identity(pid) or ""}


def _process_gone(tags: Mapping[str, str]) -> bool:
    """The run's recorded process (on this host) has exited, or its pid now names another."""
    try:
        now = process_identity(int(tags[PID_TAG]))
    except (KeyError, ValueError):
        return False  # no process recorded: not ours to judge
    recorded = tags.get(PID_START_TAG, "")
    return now is None or bool(recorded and now and now != recorded)


# ---------------------------------------------------------------- reaping


def dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """STARTED runs executing on this host whose process is gone."""
    records = instance.get_run_records(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: socket.gethostname()}))
    return [r.dagster_run for r in records if _process_gone(r.dagster_run.tags)]


def _launched(run: dg.DagsterRun) -> bool:
    """Launched from a code location: a code server watches its worker while it lives."""
    return run.remote_job_origin is not None


def reap(instance: dg.DagsterInstance, runs: Sequence[dg.DagsterRun]) -> list[str]:
    """Fail ``runs`` (dead) and free their pool slots; the ids of those reaped."""
    return [run.run_id for run in runs if _fail_and_free(instance, run.run_id, _cause(run))]


def _cause(run: dg.DagsterRun) -> str:
    return (f"The run's process (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]}) is gone "
            "without reporting an outcome (killed, or its host restarted); marked failed by "
            f"{REAPER_NAME} and its pool slots freed.")


def reap_unwatched_runs(instance: dg.DagsterInstance) -> list[str]:
    """Reap the dead runs no code server watches: for callers that may have no daemon."""
    return reap(instance, [run for run in dead_runs(instance) if not _launched(run)])


def _fail_and_free(instance: dg.DagsterInstance, run_id: str, message: str) -> bool:
    """Mark a dead run failed and free its pool slots; False if it ended meanwhile.

    Dagster internals, on purpose: no public API ends a run that another process was executing.
    Considered: GraphQL ``terminateRun`` with ``MARK_AS_CANCELED_IMMEDIATELY`` then
    ``freeConcurrencySlotsForRun`` (the UI's route) needs a webserver, which the demo does not
    run, and calls a crash "canceled"; ``DagsterInstance.delete_run`` frees the slots but erases
    the run. These two calls are those the code server makes for a dead worker
    (``report_run_failed``) and the monitoring daemon for an ended run's slots.
    """
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:  # reported meanwhile, e.g. by the code server
        return False
    instance.report_run_failed(run, message)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return True


def _due(dead: Sequence[dg.DagsterRun], seen: Mapping[str, str]
         ) -> tuple[list[dg.DagsterRun], dict[str, str]]:
    """Runs to reap now, and the launched ones to reap next tick if still dead.

    An unwatched run is due at once. A launched run's code server reports its worker's death
    within a second: the reaper acts only when the same process was already dead at the
    previous tick, so the code server has gone too (a container restart) and the two never
    both fail the run. It also spares a re-run, which inherits its parent's tags until its
    executor rewrites them as it starts.
    """
    due, suspects = [], {}
    for run in dead:
        process = f"{run.tags[PID_TAG]}@{run.tags.get(PID_START_TAG, '')}"
        if not _launched(run) or seen.get(run.run_id) == process:
            due.append(run)
        else:
            suspects[run.run_id] = process
    return due, suspects


@dg.sensor(
    name=REAPER_NAME,
    minimum_interval_seconds=REAP_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process on this host died without reporting "
    "(kill -9, OOM, restart) and frees their booker_api slots, so no load waits on them. "
    "Cursor: launched runs found dead once, {run id: process}.",
)
def booker_reap_dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    due, suspects = _due(dead_runs(context.instance), json.loads(context.cursor or "{}"))
    reaped = reap(context.instance, due)
    context.update_cursor(json.dumps(suspects, sort_keys=True))
    if reaped:
        context.log.warning(f"marked dead runs failed and freed their slots: {reaped}")
    return dg.SkipReason(f"{len(reaped)} dead run(s) reaped, {len(suspects)} to confirm")


# ---------------------------------------------------------------- the executor


class _RecordingExecutor(dg.Executor):
    """The in-process executor; first records this process in the run's tags, and reaps the
    dead unwatched runs (a ``dagster asset materialize`` may run with no daemon)."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        # Always rewrite: a retry or re-execution inherits its parent's (dead) process tags.
        _tag_run(plan_context.instance, plan_context.run_id, worker_tags())
        reap_unwatched_runs(plan_context.instance)
        yield from self._inner.execute(plan_context, execution_plan)


def _tag_run(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """Dagster internal: the public route, tags given at run creation, is what the demo uses;
    the CLI and the run launcher create the run before its executing process exists."""
    instance.add_run_tags(run_id, tags)


def _recording_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    return _RecordingExecutor(dg.in_process_executor.executor_creation_fn(init_context))


in_process_executor = dg.ExecutorDefinition(
    name="in_process",
    config_schema=dg.in_process_executor.config_schema,
    executor_creation_fn=_recording_executor,
    description="Executes all steps in the run's process; records the process for "
    f"{REAPER_NAME}.",
)
