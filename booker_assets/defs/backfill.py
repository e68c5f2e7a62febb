"""The command line's backfills: runs of one location and up to a month of its days, executed
in this process (``booker-assets backfill``, ``make demo``).

They need no daemon, and with ``DAGSTER_HOME`` set every run is recorded in the instance the UI
reads. Every other backfill (the UI's, days back's) is filed in Dagster and cut by its planner
(``BackfillPolicy.multi_run``): by whichever dimension has fewer keys. The cut does not change
the requests: the runs of one backfill share what no partition day shapes
(``api/shared_replies.py``; 30 days × 50 locations: 19,058 requests in the planner's 60
day-runs, 19,067 in 50 location-month runs). The command line keeps a run per location and
month as it has no planner to ask (it is Dagster's private API): a cut whose memory is bounded
by ``RUN_DAYS``, and the fewest runs for a few locations over many days.

The demo loads a few days of every location: it takes a run per month of days over every
location at once (``range_slices``), since each run costs Dagster's fixed work again (its
checks read every table whatever its range: 99 evaluations a run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from booker_assets.defs.assets import BACKFILL_TAGS, RUN_DAYS
from booker_assets.defs.jobs import LOAD_JOB, load_selection
from booker_assets.defs.partitions import range_tags

BACKFILL_TAG = BACKFILL_TAGS[1]  # every run of one command-line backfill carries its id


@dataclass(frozen=True)
class Slice:
    """One run: ``locations`` (neighbours in the instance's partition order, so the run's
    range is exactly them) over days ``first``..``last``."""

    locations: tuple[str, ...]
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        named = "location" + "s" * (len(self.locations) > 1)
        return f"{named} {', '.join(self.locations)}, {self.first}..{self.last} ({self.days} days)"

    @property
    def tags(self) -> dict[str, str]:
        return range_tags(self.first, self.last, self.locations[0], self.locations[-1])


def location_slices(locations: Sequence[str], first: date, last: date,
                    max_days: int = RUN_DAYS) -> list[Slice]:
    """Each location's days ``first``..``last`` in runs of at most ``max_days``, location by
    location (never a day across locations: see the module's docstring)."""
    return [Slice((location,), start, end) for location in locations
            for start, end in _months(first, last, max_days)]


def range_slices(order: Sequence[str], locations: Sequence[str], first: date, last: date,
                 max_days: int = RUN_DAYS) -> list[Slice]:
    """Days ``first``..``last`` × ``locations`` in the fewest runs: a run per ``max_days``
    days and per stretch of ``locations`` that are neighbours in ``order`` (the instance's
    location partitions): a run's range is a rectangle, so it spans no location left out."""
    wanted = set(locations)
    stretches: list[list[str]] = []
    previous = False
    for location in order:
        if location in wanted and previous:
            stretches[-1].append(location)
        elif location in wanted:
            stretches.append([location])
        previous = location in wanted
    return [Slice(tuple(stretch), start, end) for start, end in _months(first, last, max_days)
            for stretch in stretches]


def _months(first: date, last: date, max_days: int) -> list[tuple[date, date]]:
    """``first``..``last`` cut into spans of at most ``max_days`` days."""
    starts = [first + timedelta(days=n) for n in range(0, (last - first).days + 1, max_days)]
    return [(start, min(start + timedelta(days=max_days - 1), last)) for start in starts]


def materialize_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    locations: Sequence[str],
    first: date,
    last: date,
    *,
    selection: Sequence[str] | None = None,
    run_config: dict | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One run over days ``first``..``last`` × ``locations[0]``..``locations[-1]`` (a range
    run, as a backfill run is), the asset checks of what it loads evaluated after the load.
    The locations must be partitions of ``instance``. The run is executed here, through no
    run queue: it waits for no pool slot. If this process is killed, the run stays STARTED
    until the monitoring daemon fails it (``max_runtime_seconds`` in dagster.yaml)."""
    return defs.resolve_job_def(LOAD_JOB).execute_in_process(
        asset_selection=load_selection(selection),
        instance=instance,
        run_config=run_config,
        tags={**(tags or {}), **range_tags(first, last, locations[0], locations[-1])},
        raise_on_error=raise_on_error,
    )


def run_slices(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    slices: Sequence[Slice],
    selection: Sequence[str] | None = None,
    run_config: dict | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[tuple[Slice, dg.ExecuteInProcessResult]]:
    """Each slice as a run, one after the other (the rate limit is the bound, not the runs);
    a failed run is reported and the next one goes on, like a backfill's."""
    tags = {**(tags or {}), BACKFILL_TAG: f"cli-{uuid.uuid4().hex[:8]}"}
    for piece in slices:
        result = materialize_range(defs, instance, list(piece.locations), piece.first, piece.last,
                                   selection=selection, run_config=run_config, tags=tags,
                                   raise_on_error=False)
        yield piece, result
        if interrupted(result):  # SIGTERM or Ctrl-C ended that run: stop, not the next slice
            return


def interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether the run ended because this process was told to stop (SIGTERM, Ctrl-C): a step
    failed as interrupted (Dagster's own error source for it)."""
    return any(getattr(event.step_failure_data.error_source, "value", "") == "INTERRUPT"
               for event in result.all_events if event.is_step_failure)


def instance_from_env() -> dg.DagsterInstance:
    """The instance ``DAGSTER_HOME`` names (the one ``make dev`` shows), else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()
