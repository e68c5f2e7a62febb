"""Domo's "days back N to M" as one click: the job ``booker_days_back`` files backfills.

Why a job that files backfills rather than a partitioned run: the days differ per location
(each location's own "N days ago"), and a run's partition range only covers a rectangle. A
backfill takes any set of partitions, shows under Overview → Backfills with per-partition
status, retries and cancel, and the daemon cuts it into runs as Dagster's planner does every
backfill (the UI's too): by whichever dimension has fewer keys. One backfill per launch: its
runs share what no partition day shapes (``api/shared_replies.py``), so the cut does not change
the requests (README, *Backfills*).

What is checked when: the launch (a config mapping, run as Dagster resolves the run config:
launchpad, CLI, ``execute_in_process``) refuses a bad window, unknown tables and locations
outside ``BOOKER_LOCATION_IDS`` before any run exists; the run itself checks what only it can
know, each location's own day (its zone is Booker's) and the instance's location partitions.

No ``from __future__ import annotations``: Dagster reads the op's ``config`` type at definition.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Self

import dagster as dg
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from booker_assets.api.client import BookerResource
from booker_assets.catalogue.options import OPTIONS
from booker_assets.defs.assets import STEP_NAME
from booker_assets.defs.daily import LoadKeys, location_zones
from booker_assets.defs.locations import SENSOR_NAME as DISCOVERY_SENSOR
from booker_assets.defs.partitions import BookerPartitions, Clock, known_locations, newest_day
from booker_assets.load.dates import local_day
from booker_assets.settings import Settings

DAYS_BACK_NODE = "file_days_back_backfill"  # run config: ops.file_days_back_backfill.config
# Clocks run from UTC-12 to UTC+14: the days a location can be on now, before Booker says where.
_WEST, _EAST = timedelta(hours=-12), timedelta(hours=14)
_LINE = "\n  - "
NO_ZONES = (
    "Booker gave no time zone for any selected location (see the warnings above), so their "
    "days cannot be counted. Fix: run the job booker_check_connection, set "
    "BOOKER_LOCATION_IDS without a location Booker no longer returns, and launch again"
)


def _invalid(cause: str, fix: str) -> ValueError:
    return ValueError(f"{cause}. Fix: {fix}")


class DaysBackConfig(dg.Config):
    """Domo's "days back N to M": the days N..M days ago in each location's time zone."""

    days_back_start: int = Field(
        7, description="Domo 'days back to start from': the oldest day, N days ago."
    )
    days_back_end: int = Field(
        1, description="Domo 'days back to end at': the newest day, M days ago (M <= N)."
    )
    tables: list[str] = Field(
        default_factory=list,
        description="Tables to load (e.g. orders, customers); empty: every location report.",
    )
    locations: list[str] = Field(
        default_factory=list,
        description="Location ids to load (e.g. 1001); empty: every location partition.",
    )
    options: dict[str, bool] = Field(
        default_factory=dict,
        description="Domo's options for these backfills only, e.g. {include_expired: true}; "
        f"the others (all, if empty) are the deployment's settings: {', '.join(OPTIONS)}.",
    )

    @field_validator("days_back_start", "days_back_end")
    @classmethod
    def _not_negative(cls, value: int, info: ValidationInfo) -> int:
        if value < 0:
            raise _invalid(
                f"{info.field_name}={value} is negative: days back count from today (0) into "
                "the past", f"set {info.field_name} to 0 or more, e.g. days_back_start 7 and "
                "days_back_end 1 for the seven days up to yesterday")
        return value

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        if self.days_back_end > self.days_back_start:
            raise _invalid(
                f"days_back_end ({self.days_back_end}) is more days back than days_back_start "
                f"({self.days_back_start}): the window would be empty", "set days_back_end <= "
                "days_back_start, e.g. start 7, end 1 for the seven days up to yesterday")
        return self


# ---------------------------------------------------------------- windows (pure)


def days_anywhere(now: datetime) -> tuple[date, ...]:
    """Every calendar day some place on Earth is on at ``now`` (one or two days)."""
    utc = now.astimezone(timezone.utc)
    first, last = (utc + _WEST).date(), (utc + _EAST).date()
    return tuple(first + timedelta(days=n) for n in range((last - first).days + 1))


def days_back_window(
    config: DaysBackConfig, today: date, start_date: date, newest: date
) -> tuple[date, date]:
    """Days N..M before ``today`` that have partitions (``first > last``: none)."""
    first = max(today - timedelta(days=config.days_back_start), start_date)
    last = min(today - timedelta(days=config.days_back_end), newest)
    return first, last


def _on(days: Sequence[date], back: int) -> str:
    shifted = sorted({day - timedelta(days=back) for day in days})
    return " or ".join(map(str, shifted)) + (" (by time zone)" if len(shifted) > 1 else "")


def window_problem(
    config: DaysBackConfig, todays: Sequence[date], start_date: date, newest: date
) -> str | None:
    """Why days back N..M has no partition on any of ``todays`` (None: it has one).

    One check for both moments: the launch passes every day a location may be on now (its
    zone is Booker's, asked only by the run); the run passes each location's own day.
    """
    if any(first <= last for first, last in
           (days_back_window(config, today, start_date, newest) for today in todays)):
        return None
    n, m = config.days_back_start, config.days_back_end
    if newest < start_date:
        return (f"no day since BOOKER_START_DATE {start_date} is over yet, so there are no "
                f"partitions. Fix: launch after {start_date} has ended, or set "
                "BOOKER_START_DATE earlier")
    if max(todays) - timedelta(days=m) < start_date:
        return (f"days_back_end={m} ends the window on {_on(todays, m)}, before "
                f"BOOKER_START_DATE {start_date}: there are no partitions that old. Fix: set "
                f"days_back_end to {(min(todays) - start_date).days} or less, or set "
                "BOOKER_START_DATE earlier")
    return (f"days_back_start={n} starts the window on {_on(todays, n)}, a day not over yet "
            f"(the newest partition is {newest}). Fix: set days_back_start to "
            f"{(max(todays) - newest).days} or more")


def days_back_days(config: DaysBackConfig, zones: Mapping[str, tzinfo], now: datetime,
                   start_date: date, newest: date) -> dict[str, list[date]]:
    """{location: every day N..M days ago in its own zone} (locations with none left out)."""
    days = {}
    for location, zone in zones.items():
        first, last = days_back_window(config, local_day(now, zone), start_date, newest)
        if first <= last:
            days[location] = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return days


# ---------------------------------------------------------------- checks


def _unknown(field: str, chosen: Sequence[str], known: Sequence[str], what: str,
             also: str = "") -> list[str]:
    unknown = sorted(set(chosen) - set(known))
    if not unknown:
        return []
    return [f"{field} {unknown}: not {what}. Fix: choose from {', '.join(known)}, or leave "
            f"{field} empty for all{also}"]


@dataclass(frozen=True)
class LaunchScope:
    """What a days-back config is checked against at launch: this deployment, now."""

    tables: tuple[str, ...]
    allowed_locations: tuple[str, ...]  # BOOKER_LOCATION_IDS; the partitions only the run sees
    start_date: date
    newest: date  # the newest daily partition
    local_days: tuple[date, ...]  # the calendar days a location may be on


def launch_problems(config: DaysBackConfig, scope: LaunchScope) -> list[str]:
    """What this deployment cannot load of ``config``, every cause at once."""
    problems = _unknown("tables", config.tables, scope.tables, "location reports")
    problems += _unknown("options", list(config.options), list(OPTIONS), "Domo's options",
                         " (the deployment's BOOKER_* settings)")
    if scope.allowed_locations:
        problems += _unknown("locations", config.locations, scope.allowed_locations,
                             "in BOOKER_LOCATION_IDS", "; to load another location, add it "
                             "to BOOKER_LOCATION_IDS and reload the code location")
    window = window_problem(config, scope.local_days, scope.start_date, scope.newest)
    return problems + ([window] if window else [])


def validated_at_launch(scope_now: Callable[[], LaunchScope]) -> dg.ConfigMapping:
    """The days-back node's config, refused with every cause and fix as Dagster resolves it.

    Dagster builds an op's Config only when its step starts: a validator there fails a run
    already launched. A config mapping runs when the run config is resolved, before a run
    exists. Its errors are raised as Dagster's own invalid-config error, one line per cause
    (pydantic's text under a stack trace would read "The config mapping function ... has
    thrown an unexpected error").
    """

    def to_op_config(values: dict[str, Any]) -> dict[str, Any]:
        try:
            problems = launch_problems(DaysBackConfig(**values), scope_now())
        except ValidationError as exc:
            problems = [str(e["ctx"]["error"]) if e["type"] == "value_error"
                        else f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        if problems:
            message = _LINE.join([f"Invalid config at ops.{DAYS_BACK_NODE}.config:", *problems])
            raise dg.DagsterInvalidConfigError(message, [], values)
        return {"file_backfill": {"config": values}}

    return dg.ConfigMapping(config_fn=to_op_config,
                            config_schema=DaysBackConfig.to_config_schema())


def chosen_locations(config: DaysBackConfig, known: Sequence[str]) -> list[str]:
    """The run's locations: ``config.locations`` among the location partitions (all if empty)."""
    if not known:
        raise dg.Failure(
            f"there are no location partitions (within BOOKER_LOCATION_IDS, if set). Fix: "
            f"start the daemon (`make dev`) so the {DISCOVERY_SENSOR} sensor adds the locations "
            "Booker returns, or run `booker-assets discover-locations`, then launch again",
            allow_retries=False)
    problems = _unknown("locations", config.locations, known,
                        "location partitions (Booker has not returned them)")
    if problems:
        raise dg.Failure(problems[0], allow_retries=False)
    return [loc for loc in known if not config.locations or loc in config.locations]


# ---------------------------------------------------------------- the job


def days_back_job(settings: Settings, partitions: BookerPartitions,
                  assets: Sequence[dg.AssetsDefinition], keys: LoadKeys,
                  clock: Clock) -> dg.JobDefinition:
    """The op sits in a graph named ``file_days_back_backfill`` whose config mapping validates
    at launch; the run config keeps its shape, ``ops.file_days_back_backfill.config``."""
    by_table = {key.path[-1]: key for key in keys.changing + keys.snapshot}

    def scope_now() -> LaunchScope:
        now = clock()
        return LaunchScope(tuple(sorted(by_table)), settings.allowed_locations,
                           settings.start_date, newest_day(partitions, now), days_anywhere(now))

    @dg.op(name="file_backfill")
    def file_backfill(
        context: dg.OpExecutionContext, config: DaysBackConfig, booker: BookerResource
    ) -> None:
        now = clock()
        newest = newest_day(partitions, now)
        locations = chosen_locations(config, known_locations(context.instance, settings))
        zones = location_zones(booker.get_client(), locations, context.log)
        # Only the run knows each location's own day: the launch check allowed any of them.
        todays = [local_day(now, zone) for zone in zones.values()]
        problem = window_problem(config, todays, settings.start_date, newest) if zones else NO_ZONES
        if problem:
            raise dg.Failure(problem, allow_retries=False)
        days = days_back_days(config, zones, now, settings.start_date, newest)
        selection = [by_table[t] for t in config.tables] or list(by_table.values())
        wanted = [f"{day}|{loc}" for loc, its_days in days.items() for day in its_days]
        backfill_id = add_backfill(context, assets, selection, wanted, {
            "booker/days_back": f"{config.days_back_start}..{config.days_back_end}",
            "booker/days_back_run": context.run_id}, config.options)
        context.log.info(backfill_line(backfill_id, days))

    @dg.graph(name=DAYS_BACK_NODE, config=validated_at_launch(scope_now))
    def file_days_back_backfill() -> None:
        file_backfill()

    @dg.job(
        name="booker_days_back",
        description="Domo 'days back N to M': backfill every location report (or `tables`, "
        "`locations`) for the days N..M days ago in each location's time zone, as one "
        "Dagster backfill.",
    )
    def booker_days_back() -> None:
        file_days_back_backfill()

    return booker_days_back


def backfill_line(backfill_id: str, days: Mapping[str, Sequence[date]]) -> str:
    """What the run's log says of one backfill it filed: its days, locations and where the
    UI shows it (Runs → Backfills, or the path under the UI's address)."""
    spans = sorted({(min(d), max(d)) for d in days.values()})
    shown = "; ".join(f"{first}..{last}" if first != last else f"{first}"
                      for first, last in spans)
    partitions = sum(len(d) for d in days.values())
    return (f"backfill {backfill_id}: days {shown} × locations {', '.join(days)} "
            f"({partitions} partitions); in the UI: Runs → Backfills → {backfill_id} "
            f"(/runs/b/{backfill_id})")


def add_backfill(context: dg.OpExecutionContext, assets: Sequence[dg.AssetsDefinition],
                 selection: list[dg.AssetKey], partition_keys: list[str],
                 tags: dict[str, str], options: Mapping[str, bool]) -> str:
    """File one asset backfill in the instance; returns its id. Its runs load with the
    deployment's options (the step config's defaults), ``options`` overriding them.

    Private Dagster API, isolated here: the package's one ``dagster._`` import (the run
    lifecycle is Dagster's own, through dagster.yaml). An op has no public way to file a
    backfill in Dagster 1.13 (``dagster/__init__.py`` exports no backfill class). What was
    considered: the webserver's GraphQL ``launchPartitionBackfill`` (public, but needs the
    webserver's URL from inside a run), ``RunRequest.for_asset_graph_subset`` (private too, and
    from sensors only), ``dagster job backfill`` (a job backfill, one run per partition). This
    is the call that mutation makes: ``PartitionBackfill.from_asset_partitions`` then
    ``instance.add_backfill``.
    """
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=AssetGraph.from_assets(assets),  # the op may run outside a repository
        partition_names=partition_keys,
        asset_selection=selection,
        backfill_timestamp=datetime.now(timezone.utc).timestamp(),
        tags=tags,
        dynamic_partitions_store=context.instance,
        all_partitions=False,
        title=f"Booker days back {tags['booker/days_back']}",
        description=f"filed by run {context.run_id}",
        run_config={"ops": {STEP_NAME: {"config": dict(options)}}} if options else None,
    )
    context.instance.add_backfill(backfill)
    return backfill.backfill_id
