"""Partitions: days (every asset) × Booker locations (location-scoped assets).

A partition's day is the location's local calendar day (contract §4): the extractor turns it
into that zone's ``[D 00:00, D+1 00:00)`` window, so the definitions themselves stay in UTC.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import dagster as dg

from booker_assets.settings import Settings

DATE, LOCATION = "date", "location"
# Run tags of a backfill run over a key range (what Dagster's backfill daemon sets).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class BookerPartitions:
    daily: dg.DailyPartitionsDefinition
    locations: dg.StaticPartitionsDefinition
    daily_by_location: dg.MultiPartitionsDefinition


def build_partitions(settings: Settings) -> BookerPartitions:
    daily = dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat())
    locations = dg.StaticPartitionsDefinition(list(settings.location_ids))
    return BookerPartitions(
        daily=daily,
        locations=locations,
        daily_by_location=dg.MultiPartitionsDefinition({DATE: daily, LOCATION: locations}),
    )


def days_by_location(partition_keys: list[str]) -> dict[str | None, list[date]]:
    """Any slice a run or backfill hands over → {location id (None: brand level): days}."""
    slices: dict[str | None, list[date]] = defaultdict(list)
    for key in partition_keys:
        # Multi keys read "<date>|<location>": Dagster orders dimensions by name.
        day, _, location = str(key).partition("|")
        slices[location or None].append(date.fromisoformat(day))
    return {loc: sorted(days) for loc, days in slices.items()}
