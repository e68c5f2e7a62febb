"""Backfills cut location-major: a run holds one location and up to a month of its days.

Why not leave the cut to Dagster: its planner (``BackfillPolicy.multi_run``, what the backfill
daemon calls) cuts a day × location subset by whichever dimension has *fewer* keys, so 30 days
× 50 locations becomes 60 runs of one day each. A run pays each location's fixed costs once
(every employee's schedule, every changed customer's memberships, the snapshot lists): a
location's month in 30 runs pays them 30 times (issue 16 measured 2.7× the requests). So:

- ``booker-assets backfill`` and ``make demo`` run location-major slices themselves, in this
  process (``location_slices``, ``run_slices``): no daemon needed, and with ``DAGSTER_HOME``
  set every run is recorded in the instance the UI reads;
- ``booker_days_back`` files Dagster backfills whose subsets the planner cuts by location
  (``backfill_groups``): each holds fewer locations than days.

The UI's *Materialize…* over a range is cut by Dagster's planner; nothing public steers it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

from booker_assets.defs.assets import BACKFILL_TAGS, RUN_DAYS
from booker_assets.defs.partitions import range_tags

BACKFILL_TAG = BACKFILL_TAGS[1]  # every run of one command-line backfill carries its id


@dataclass(frozen=True)
class Slice:
    """One run: ``location`` over days ``first``..``last``."""

    location: str
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"location {self.location}, {self.first}..{self.last} ({self.days} days)"

    @property
    def tags(self) -> dict[str, str]:
        return range_tags(self.first, self.last, self.location, self.location)


def location_slices(locations: Sequence[str], first: date, last: date,
                    max_days: int = RUN_DAYS) -> list[Slice]:
    """Each location's days ``first``..``last`` in runs of at most ``max_days``, location by
    location (never a day across locations: see the module's docstring)."""
    starts = [first + timedelta(days=n) for n in range(0, (last - first).days + 1, max_days)]
    return [Slice(location, start, min(start + timedelta(days=max_days - 1), last))
            for location in locations for start in starts]


def backfill_groups(days: Mapping[str, Sequence[date]]) -> list[list[str]]:
    """The locations of ``days`` ({location: its days}) in groups Dagster's planner cuts by
    location: each has fewer locations than distinct days (a tie goes to the date).

    When every location has a single day, a cut by date still asks each location once: then
    one group holds them all (a day × up to 31 locations per run, not a run per location).
    """
    if all(len(set(its_days)) == 1 for its_days in days.values()):
        return [list(days)] if days else []
    groups: list[list[str]] = []
    group: list[str] = []
    group_days: set[date] = set()
    for location, its_days in days.items():
        with_it = group_days | set(its_days)
        if group and len(group) + 1 >= len(with_it):
            groups.append(group)
            group, with_it = [], set(its_days)
        group.append(location)
        group_days = with_it
    return [*groups, group]


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
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=defs.resources,
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
        result = materialize_range(defs, instance, [piece.location], piece.first, piece.last,
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
