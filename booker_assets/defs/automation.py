"""When the Booker reports load: a per-time-zone daily sensor, the brand schedule, backfills.

- ``booker_daily_loads`` (sensor): once day D is over in a location's own time zone (Booker's
  ``Location.TimeZone``) plus ``grace_hours``, it requests that location's day D, and re-loads
  the previous ``lookback_days`` days of the reports Booker edits after the fact. A fixed UTC
  cron would load Pacific locations three hours early or Eastern ones three hours late.
- ``booker_locations_daily`` (schedule): the brand-level ``booker/locations`` snapshot.
- ``booker_days_back`` (job): Domo's "days back N to M", launched as a backfill.
- ``booker_location_drift`` (sensor): locations Booker returns vs the configured ones.

No ``from __future__ import annotations``: Dagster reads the op's ``config`` type at definition.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Self

import dagster as dg
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.api.dates import local_day
from booker_assets.api.zones import zone_for
from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.checks import LOCATIONS_KEY, location_drift
from booker_assets.defs.partitions import RANGE_END, RANGE_START, BookerPartitions
from booker_assets.defs.storage import warehouse_of
from booker_assets.errors import BookerError
from booker_assets.settings import Settings

# Reports Booker changes after the day (refunds, edited customers): re-loaded over the lookback.
CHANGING_TABLES = tuple(name for name, table in TABLES.items() if table.changes_after_day)
LOAD_TAG = "booker/load"
SENSOR_INTERVAL_SECONDS = 300

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- planning (pure)


@dataclass(frozen=True)
class Work:
    """One slice of a location's load: these assets over ``[first_day, last_day]``."""

    kind: str  # "lookback", "snapshot", or "day" when both share one range
    first_day: date
    last_day: date
    asset_keys: tuple[dg.AssetKey, ...]


@dataclass(frozen=True)
class Launch:
    """One run: a ``Work`` for a block of locations adjacent in the partition order."""

    work: Work
    locations: tuple[str, ...]

    def run_request(self) -> dg.RunRequest:
        work, first, last = self.work, self.locations[0], self.locations[-1]
        span = first if first == last else f"{first}..{last}"
        return dg.RunRequest(
            run_key=f"{work.kind}:{span}:{work.first_day}..{work.last_day}",
            asset_selection=list(work.asset_keys),
            # multi keys read "<date>|<location>"; the run covers the rectangle between them
            tags={
                RANGE_START: f"{work.first_day}|{first}",
                RANGE_END: f"{work.last_day}|{last}",
                LOAD_TAG: work.kind,
            },
        )


@dataclass(frozen=True)
class LoadKeys:
    """Location-scoped asset keys, split by whether Booker edits them after the day."""

    changing: tuple[dg.AssetKey, ...]
    snapshot: tuple[dg.AssetKey, ...]


def last_ended_day(now: datetime, zone: tzinfo, grace: timedelta) -> date:
    """The newest local day that ended at least ``grace`` ago (a DST day is 23 or 25 hours)."""
    return local_day(now - grace, zone) - timedelta(days=1)


def due_days(
    now: datetime, zone: tzinfo, last_launched: date | None, settings: Settings, newest: date
) -> tuple[date, date] | None:
    """The new days ``[first, last]`` to launch for one location, or None.

    ``newest`` is the last partition Dagster has (UTC days): a zone east of UTC finishes its
    day before the partition exists. Without a cursor only the last day is due; after downtime
    at most ``catch_up_days`` are (older gaps are a backfill, see ``booker_days_back``).
    """
    last = min(last_ended_day(now, zone, timedelta(hours=settings.grace_hours)), newest)
    if last_launched is None:
        first = last
    else:
        floor = last - timedelta(days=settings.catch_up_days - 1)
        first = max(floor, last_launched + timedelta(days=1))
    first = max(first, settings.start_date)
    return (first, last) if first <= last else None


def location_work(first: date, last: date, settings: Settings, keys: LoadKeys) -> list[Work]:
    """Snapshots for the new days only; the changing reports also for the lookback before."""
    lookback_first = max(first - timedelta(days=settings.lookback_days), settings.start_date)
    if lookback_first == first:
        return [Work("day", first, last, keys.changing + keys.snapshot)]
    return [
        Work("lookback", lookback_first, last, keys.changing),
        Work("snapshot", first, last, keys.snapshot),
    ]


def plan_loads(
    now: datetime,
    zones: Mapping[str, tzinfo],
    cursor: Mapping[str, str],
    settings: Settings,
    newest: date,
    keys: LoadKeys,
) -> tuple[list[Launch], dict[str, str]]:
    """The runs due at ``now`` and the cursor after them ({location: last day launched})."""
    work: dict[str, list[Work]] = {}
    new_cursor = dict(cursor)
    for location, zone in zones.items():
        last = date.fromisoformat(cursor[location]) if location in cursor else None
        due = due_days(now, zone, last, settings, newest)
        if due:
            work[location] = location_work(*due, settings, keys)
            new_cursor[location] = due[1].isoformat()
    return merge_adjacent(work, settings.location_ids), new_cursor


def merge_adjacent(work: Mapping[str, list[Work]], order: Sequence[str]) -> list[Launch]:
    """Locations next to each other in the partition order with the same work share one run.

    A partition range covers a rectangle (days × locations between its ends), so only adjacent
    locations can share it; locations of one time zone configured together become one run.
    """
    launches: list[Launch] = []
    open_blocks: dict[Work, list[str]] = {}
    for location in order:
        here = work.get(location, [])
        for item in [w for w in open_blocks if w not in here]:
            launches.append(Launch(item, tuple(open_blocks.pop(item))))
        for item in here:
            open_blocks.setdefault(item, []).append(location)
    launches.extend(Launch(item, tuple(locations)) for item, locations in open_blocks.items())
    return launches


# ---------------------------------------------------------------- Booker lookups


def location_zones(
    client: BookerClient, location_ids: Sequence[str], log: dg.DagsterLogManager | None = None
) -> dict[str, tzinfo]:
    """Each location's zone; one that Booker cannot tell is skipped (and retried next tick)."""
    zones: dict[str, tzinfo] = {}
    for location in location_ids:
        try:
            zones[location] = zone_for(client.location(location)["TimeZone"])
        except (BookerError, ValueError) as exc:
            if log:
                log.warning(f"location {location}: no time zone ({exc}); skipped this tick")
    return zones


def newest_partition_day(partitions: BookerPartitions, now: datetime) -> date:
    return date.fromisoformat(partitions.daily.get_partition_keys(current_time=now)[-1])


# ---------------------------------------------------------------- definitions


def load_keys(assets: Sequence[dg.AssetsDefinition], partitions: BookerPartitions) -> LoadKeys:
    scoped = [
        key
        for a in assets
        if a.partitions_def == partitions.daily_by_location
        for key in sorted(a.keys, key=lambda k: k.to_user_string())
    ]
    changing = tuple(k for k in scoped if k.path[-1] in CHANGING_TABLES)
    return LoadKeys(changing, tuple(k for k in scoped if k not in changing))


def daily_load_sensor(
    settings: Settings, partitions: BookerPartitions, keys: LoadKeys, clock: Clock
) -> dg.SensorDefinition:
    @dg.sensor(
        name="booker_daily_loads",
        target=dg.AssetSelection.assets(*keys.changing, *keys.snapshot),
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Loads each location's day once it has ended in the location's time zone plus "
            f"{settings.grace_hours:g} h; re-loads the previous {settings.lookback_days} days of "
            f"{', '.join(CHANGING_TABLES)}. Cursor: {{location: last day launched}}."
        ),
    )
    def booker_daily_loads(
        context: dg.SensorEvaluationContext, booker: BookerResource
    ) -> dg.SensorResult | dg.SkipReason:
        now = clock()
        cursor = json.loads(context.cursor) if context.cursor else {}
        zones = location_zones(booker.get_client(), settings.location_ids, context.log)
        launches, new_cursor = plan_loads(
            now, zones, cursor, settings, newest_partition_day(partitions, now), keys
        )
        if not launches:
            return dg.SkipReason(f"no location has finished a new day by {now:%Y-%m-%d %H:%M} UTC")
        return dg.SensorResult(
            run_requests=[launch.run_request() for launch in launches],
            cursor=json.dumps(new_cursor, sort_keys=True),
        )

    return booker_daily_loads


def location_drift_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.asset_sensor(
        name="booker_location_drift",
        asset_key=LOCATIONS_KEY,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After each booker/locations load: locations Booker returns that are not "
        "configured, or configured ones it no longer returns, with the settings line to use.",
    )
    def booker_location_drift(
        context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
    ) -> dg.SkipReason:
        drift = location_drift(warehouse_of(settings), settings.location_ids)
        if drift.ok:
            return dg.SkipReason("configured locations match what Booker returns")
        context.log.warning(drift.message)
        return dg.SkipReason(drift.message)

    return booker_location_drift


# ---------------------------------------------------------------- days back

DAYS_BACK_NODE = "file_days_back_backfill"  # run config: ops.file_days_back_backfill.config
# Clocks run from UTC-12 to UTC+14: the days a location can be on now, before Booker says where.
_WEST, _EAST = timedelta(hours=-12), timedelta(hours=14)
_LINE = "\n  - "
NO_ZONES = (
    "Booker gave no time zone for any selected location (see the warnings above), so their "
    "days cannot be counted. Fix: run the job booker_check_connection, correct "
    "BOOKER_LOCATION_IDS if a location is gone, and launch again"
)


def _invalid(cause: str, fix: str) -> ValueError:
    return ValueError(f"{cause}. Fix: {fix}")


class DaysBackConfig(dg.Config):
    """Domo's "days back N to M": the days N..M days ago in each location's time zone."""

    # Checks that need no deployment; ``checked_days_back_config`` adds this deployment's.

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
        description="Location ids to load (e.g. 1001); empty: every configured location.",
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


@dataclass(frozen=True)
class DaysBackScope:
    """What a days-back config is checked against at launch: this deployment, now."""

    tables: tuple[str, ...]
    location_ids: tuple[str, ...]
    start_date: date
    newest: date  # the newest daily partition
    local_days: tuple[date, ...]  # the calendar days a location may be on


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


def _unknown(field: str, chosen: list[str], known: tuple[str, ...], what: str) -> list[str]:
    unknown = sorted(set(chosen) - set(known))
    if not unknown:
        return []
    return [f"{field} {unknown}: not {what}. Fix: choose from {', '.join(known)}, or leave "
            f"{field} empty for all"]


def deployment_problems(config: DaysBackConfig, scope: DaysBackScope) -> list[str]:
    """What this deployment cannot load of ``config``: unknown tables or locations, no days."""
    problems = _unknown("tables", config.tables, scope.tables, "location reports")
    problems += [
        problem + "; to load another location, add it to BOOKER_LOCATION_IDS and reload the "
        "code location (`booker-assets discover-locations` lists those Booker shows)"
        for problem in _unknown("locations", config.locations, scope.location_ids,
                                "configured locations")
    ]
    window = window_problem(config, scope.local_days, scope.start_date, scope.newest)
    return problems + ([window] if window else [])


def checked_days_back_config(scope_now: Callable[[], DaysBackScope]) -> type[DaysBackConfig]:
    """``DaysBackConfig`` that also validates against the deployment at ``scope_now()``.

    A subclass closing over the scope: Dagster builds a Config as ``cls(**values)``, so no
    pydantic validation context reaches field validators.
    """

    class CheckedDaysBackConfig(DaysBackConfig):
        """Domo's "days back N to M": the days N..M days ago in each location's time zone."""

        @model_validator(mode="after")
        def _loadable_here(self) -> Self:
            problems = deployment_problems(self, scope_now())
            if problems:
                raise ValueError(_LINE.join(problems))
            return self

    return CheckedDaysBackConfig


def checked_at_launch(config_cls: type[DaysBackConfig]) -> dg.ConfigMapping:
    """The days-back node's config, validated by ``config_cls`` as Dagster resolves run config.

    Dagster builds an op's Config only when its step starts: a validator there fails a run
    already launched. A config mapping runs when the run config is resolved (a launch from the
    launchpad or CLI, execute_in_process; again as the run starts), before a run exists. A
    pydantic error raised in it would read "The config
    mapping function ... has thrown an unexpected error", pydantic's text under a stack trace;
    so it is re-raised as Dagster's own invalid-config error, one line per cause and fix.
    """

    def to_op_config(values: dict[str, Any]) -> dict[str, Any]:
        try:
            config_cls(**values)
        except ValidationError as exc:
            raise dg.DagsterInvalidConfigError(launch_error(exc), [], values) from None
        return {"file_backfill": {"config": values}}

    return dg.ConfigMapping(config_fn=to_op_config, config_schema=config_cls.to_config_schema())


def launch_error(exc: ValidationError) -> str:
    """Each validation error as a line: ours name field and fix; pydantic's get the field."""
    lines = [
        str(error["ctx"]["error"]) if error["type"] == "value_error"
        else f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
        for error in exc.errors()
    ]
    return _LINE.join([f"Invalid config at ops.{DAYS_BACK_NODE}.config:", *lines])


def days_back_keys(
    config: DaysBackConfig,
    zones: Mapping[str, tzinfo],
    now: datetime,
    settings: Settings,
    newest: date,
) -> list[str]:
    """Multi partition keys "D|location" for every day N..M days ago in each location's zone."""
    keys = []
    for location, zone in zones.items():
        first, last = days_back_window(config, local_day(now, zone), settings.start_date, newest)
        keys += [
            f"{first + timedelta(days=n)}|{location}" for n in range((last - first).days + 1)
        ]
    return keys


def days_back_job(
    settings: Settings,
    partitions: BookerPartitions,
    assets: Sequence[dg.AssetsDefinition],
    clock: Clock,
) -> dg.JobDefinition:
    """Domo's "days back N to M" as one click: a job whose only step files a backfill.

    Why a job that files a backfill rather than a partitioned asset job run: a run has one
    partition range, but the days differ per location (each location's own "N days ago") and a
    multi-partition range only covers a rectangle. A backfill takes any set of partitions and
    the backfill daemon splits it into as few runs as the backfill policy allows (a run per
    location and month). It is the same call the UI's launchPartitionBackfill makes
    (``PartitionBackfill.from_asset_partitions`` then ``instance.add_backfill``), so the result
    shows up under Overview → Backfills with per-partition status, retries and cancel.

    The op sits in a graph named ``file_days_back_backfill`` whose config mapping validates
    at launch; the run config keeps its shape, ``ops.file_days_back_backfill.config``.
    """
    keys = load_keys(assets, partitions)
    by_table = {key.path[-1]: key for key in keys.changing + keys.snapshot}

    def scope_now() -> DaysBackScope:
        now = clock()
        return DaysBackScope(tuple(sorted(by_table)), settings.location_ids, settings.start_date,
                             newest_partition_day(partitions, now), days_anywhere(now))

    @dg.op(name="file_backfill")
    def file_backfill(
        context: dg.OpExecutionContext, config: DaysBackConfig, booker: BookerResource
    ) -> None:
        now = clock()
        newest = newest_partition_day(partitions, now)
        chosen = [loc for loc in settings.location_ids
                  if not config.locations or loc in config.locations]
        zones = location_zones(booker.get_client(), chosen, context.log)
        # Only the run knows each location's own day: the launch check allowed any of them.
        todays = [local_day(now, zone) for zone in zones.values()]
        problem = window_problem(config, todays, settings.start_date, newest) if zones else NO_ZONES
        if problem:
            raise dg.Failure(problem, allow_retries=False)
        partition_keys = days_back_keys(config, zones, now, settings, newest)
        selection = [by_table[t] for t in config.tables] or list(by_table.values())
        backfill_id = file_backfill_for(context, assets, selection, partition_keys, config)
        context.log.info(f"backfill {backfill_id}: {len(partition_keys)} partitions")

    @dg.graph(name=DAYS_BACK_NODE,
              config=checked_at_launch(checked_days_back_config(scope_now)))
    def file_days_back_backfill() -> None:
        file_backfill()

    @dg.job(
        name="booker_days_back",
        description="Domo 'days back N to M': backfill every location report (or `tables`, "
        "`locations`) for the days N..M days ago in each location's time zone.",
    )
    def booker_days_back() -> None:
        file_days_back_backfill()

    return booker_days_back


def file_backfill_for(
    context: dg.OpExecutionContext,
    assets: Sequence[dg.AssetsDefinition],
    selection: list[dg.AssetKey],
    partition_keys: list[str],
    config: DaysBackConfig,
) -> str:
    # Private API, as the webserver's launchPartitionBackfill mutation uses it.
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=AssetGraph.from_assets(assets),  # the op may run outside a repository
        partition_names=partition_keys,
        asset_selection=selection,
        backfill_timestamp=utc_now().timestamp(),
        tags={"booker/days_back": f"{config.days_back_start}..{config.days_back_end}",
              "booker/days_back_run": context.run_id},
        dynamic_partitions_store=context.instance,
        all_partitions=False,
        title=f"Booker days back {config.days_back_start} to {config.days_back_end}",
        description=f"filed by run {context.run_id}",
        run_config=None,
    )
    context.instance.add_backfill(backfill)
    return backfill.backfill_id


def build_automation(
    settings: Settings,
    partitions: BookerPartitions,
    assets: Sequence[dg.AssetsDefinition],
    clock: Clock = utc_now,
) -> dict[str, list]:
    """Jobs, schedules and sensors for ``dg.Definitions(**build_automation(...))``."""
    keys = load_keys(assets, partitions)
    return {
        "jobs": [days_back_job(settings, partitions, assets, clock)],
        "schedules": [],
        "sensors": [
            daily_load_sensor(settings, partitions, keys, clock),
            location_drift_sensor(settings),
        ],
    }
