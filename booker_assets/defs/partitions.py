"""Partitions: days × Booker locations, and which of them exist now.

A partition's day is the location's local calendar day (``docs/booker-api.md``): the extractor
turns it into that zone's ``[D 00:00, D+1 00:00)`` window, so the definitions stay in UTC.
The locations are dynamic partitions: the ``booker_locations`` sensor adds each one Booker
returns (``defs/locations.py``), so a new location needs no redeploy; none is ever deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import dagster as dg

from booker_assets.settings import Settings

DATE, LOCATION = "date", "location"
LOCATIONS_PARTITIONS = "booker_locations"  # the dynamic dimension's name in the instance
# Every location id Booker has ever returned, kept in the instance (no asset's dimension): a
# location is "no longer returned" only if it once was; one never returned is a typo.
RETURNED_LOCATIONS = "booker_locations_returned"
# Run tags of a backfill run over a key range (what Dagster's backfill daemon sets).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class BookerPartitions:
    daily: dg.DailyPartitionsDefinition
    locations: dg.DynamicPartitionsDefinition
    daily_by_location: dg.MultiPartitionsDefinition


def build_partitions(settings: Settings) -> BookerPartitions:
    daily = dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat())
    locations = dg.DynamicPartitionsDefinition(name=LOCATIONS_PARTITIONS)
    return BookerPartitions(
        daily=daily,
        locations=locations,
        daily_by_location=dg.MultiPartitionsDefinition({DATE: daily, LOCATION: locations}),
    )


def range_tags(first: date, last: date, first_location: str,
               last_location: str) -> dict[str, str]:
    """A run's partition range: days ``first``..``last`` × the locations between the two in
    the partition order (a rectangle; multi keys read "<date>|<location>")."""
    return {RANGE_START: f"{first}|{first_location}", RANGE_END: f"{last}|{last_location}"}


def known_locations(instance: dg.DagsterInstance, settings: Settings) -> tuple[str, ...]:
    """The location partitions the instance holds, in the order they were added, within the
    allow-list (``BOOKER_LOCATION_IDS``; empty: all of them)."""
    stored = instance.get_dynamic_partitions(LOCATIONS_PARTITIONS)
    allowed = settings.allowed_locations
    return tuple(loc for loc in stored if not allowed or loc in allowed)


def add_locations(instance: dg.DagsterInstance, locations: Sequence[str]) -> list[str]:
    """Add locations Booker returned: the ones the instance lacks become partitions (in the
    given order), and all are remembered as returned; returns the partitions added."""
    remember_returned(instance, locations)
    return _add_missing(instance, LOCATIONS_PARTITIONS, locations)


def returned_before(instance: dg.DagsterInstance) -> set[str]:
    """Every location id Booker has returned to this instance's sensor, commands or runs."""
    return set(instance.get_dynamic_partitions(RETURNED_LOCATIONS))


def remember_returned(instance: dg.DagsterInstance, locations: Sequence[str]) -> None:
    _add_missing(instance, RETURNED_LOCATIONS, locations)


def _add_missing(instance: dg.DagsterInstance, name: str, keys: Sequence[str]) -> list[str]:
    """Add the ``keys`` the dynamic partitions ``name`` lack, in order; returns them. Two
    processes may add the same key at once (two demos): the loser's key is there anyway."""
    stored = set(instance.get_dynamic_partitions(name))
    new = [key for key in dict.fromkeys(keys) if key not in stored]
    try:
        if new:
            instance.add_dynamic_partitions(name, new)
    except Exception:  # the storage's unique-key error, whichever database it is
        for key in new:
            _add_one(instance, name, key)
    return new


def _add_one(instance: dg.DagsterInstance, name: str, key: str) -> None:
    try:
        instance.add_dynamic_partitions(name, [key])
    except Exception:
        if not instance.has_dynamic_partition(name, key):  # not a lost race: a real error
            raise


def newest_day(partitions: BookerPartitions, now: datetime) -> date:
    """The newest daily partition at ``now`` (the last UTC day that has ended)."""
    return date.fromisoformat(partitions.daily.get_partition_keys(current_time=now)[-1])


def days_by_location(partition_keys: list[str]) -> dict[str | None, list[date]]:
    """Any slice a run or backfill hands over → {location id (None: brand level): days}."""
    slices: dict[str | None, list[date]] = defaultdict(list)
    for key in partition_keys:
        # Multi keys read "<date>|<location>": Dagster orders dimensions by name.
        day, _, location = str(key).partition("|")
        slices[location or None].append(date.fromisoformat(day))
    return {loc: sorted(days) for loc, days in slices.items()}
