"""Daily loads: the ``booker_daily_loads`` sensor, per location time zone.

Once day D is over in a location's own time zone (Booker's ``Location.TimeZone``) plus
``grace_hours``, the sensor requests that location's day D, and re-loads the previous
``lookback_days`` days of the reports Booker edits after the fact. A fixed UTC cron would load
Pacific locations three hours early or Eastern ones three hours late. The locations are the
instance's location partitions (``defs/locations.py`` adds them), so a new one is loaded from
its next tick on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import dagster as dg

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.jobs import LOAD_JOB
from booker_assets.defs.locations import SENSOR_NAME as DISCOVERY_SENSOR
from booker_assets.defs.partitions import (
    LOCATIONS_PARTITIONS,
    BookerPartitions,
    Clock,
    known_locations,
    newest_day,
    range_tags,
)
from booker_assets.errors import BookerError
from booker_assets.load.dates import local_day
from booker_assets.load.zones import zone_for
from booker_assets.settings import Settings

# Reports Booker changes after the day (refunds, edited customers): re-loaded over the lookback.
CHANGING_TABLES = tuple(name for name, table in TABLES.items() if table.changes_after_day)
LOAD_TAG = "booker/load"
SENSOR_INTERVAL_SECONDS = 300


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

    def describe(self) -> str:
        """The run in the tick's log: Dagster's tick list counts a range run's partitions as
        one per asset, so the log says how many it holds."""
        work, locations = self.work, self.locations
        days = (work.last_day - work.first_day).days + 1
        count = days * len(locations)
        return (f"{work.kind} run: days {work.first_day}..{work.last_day} ({days}) × locations "
                f"{', '.join(locations)} = {count} partition{'s' * (count != 1)} of each of "
                f"{', '.join(key.path[-1] for key in work.asset_keys)}")

    def run_request(self) -> dg.RunRequest:
        work, first, last = self.work, self.locations[0], self.locations[-1]
        span = first if first == last else f"{first}..{last}"
        return dg.RunRequest(
            run_key=f"{work.kind}:{span}:{work.first_day}..{work.last_day}",
            asset_selection=list(work.asset_keys),
            tags={**range_tags(work.first_day, work.last_day, first, last), LOAD_TAG: work.kind},
        )


@dataclass(frozen=True)
class LoadKeys:
    """Location-scoped asset keys, split by whether Booker edits them after the day."""

    changing: tuple[dg.AssetKey, ...]
    snapshot: tuple[dg.AssetKey, ...]


def load_keys(assets: Sequence[dg.AssetsDefinition], partitions: BookerPartitions) -> LoadKeys:
    scoped = [
        key
        for a in assets
        if a.partitions_def == partitions.daily_by_location
        for key in sorted(a.keys, key=lambda k: k.to_user_string())
    ]
    changing = tuple(k for k in scoped if k.path[-1] in CHANGING_TABLES)
    return LoadKeys(changing, tuple(k for k in scoped if k not in changing))


# ---------------------------------------------------------------- planning (pure)


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
    order: Sequence[str],
) -> tuple[list[Launch], dict[str, str]]:
    """The runs due at ``now`` and the cursor after them ({location: last day launched}).

    ``order`` is every location partition in the instance's order: only neighbours there can
    share a run.
    """
    work: dict[str, list[Work]] = {}
    new_cursor = dict(cursor)
    for location, zone in zones.items():
        last = date.fromisoformat(cursor[location]) if location in cursor else None
        due = due_days(now, zone, last, settings, newest)
        if due:
            work[location] = location_work(*due, settings, keys)
            new_cursor[location] = due[1].isoformat()
    return merge_adjacent(work, order), new_cursor


def merge_adjacent(work: Mapping[str, list[Work]], order: Sequence[str]) -> list[Launch]:
    """Locations next to each other in the partition order with the same work share one run.

    A partition range covers a rectangle (days × locations between its ends), so only adjacent
    locations can share it; locations of one time zone discovered together become one run.
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


# ---------------------------------------------------------------- the sensor


def daily_load_sensor(
    settings: Settings, partitions: BookerPartitions, keys: LoadKeys, clock: Clock
) -> dg.SensorDefinition:
    @dg.sensor(
        name="booker_daily_loads",
        job_name=LOAD_JOB,  # its runs read "booker_load", not "Job None"
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Loads each location's day once it has ended in the location's time zone plus "
            f"{settings.grace_hours:g} h; re-loads the previous {settings.lookback_days} days of "
            f"{', '.join(CHANGING_TABLES)}. Locations: the location partitions "
            f"({DISCOVERY_SENSOR} adds them). Cursor: {{location: last day launched}}."
        ),
    )
    def booker_daily_loads(
        context: dg.SensorEvaluationContext, booker: BookerResource
    ) -> dg.SensorResult | dg.SkipReason:
        now = clock()
        locations = known_locations(context.instance, settings)
        if not locations:
            return dg.SkipReason(f"no location partitions yet: the {DISCOVERY_SENSOR} sensor "
                                 "adds the locations Booker returns")
        cursor = json.loads(context.cursor) if context.cursor else {}
        zones = location_zones(booker.get_client(), locations, context.log)
        launches, new_cursor = plan_loads(
            now, zones, cursor, settings, newest_day(partitions, now), keys,
            context.instance.get_dynamic_partitions(LOCATIONS_PARTITIONS),
        )
        if not launches:
            reason = (f"no location has finished a new day by {now:%Y-%m-%d %H:%M} UTC "
                      f"(locations {', '.join(zones) or 'none with a time zone'}; last day "
                      f"launched: {json.dumps(cursor, sort_keys=True) if cursor else 'none'})")
            context.log.info(reason)
            return dg.SkipReason(reason)
        for launch in launches:
            context.log.info(launch.describe())
        return dg.SensorResult(
            run_requests=[launch.run_request() for launch in launches],
            cursor=json.dumps(new_cursor, sort_keys=True),
        )

    return booker_daily_loads
