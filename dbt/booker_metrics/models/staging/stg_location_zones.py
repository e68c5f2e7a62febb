"""Each location's IANA time zone, read from Booker's Windows zone names by the loads' own
reader (booker_assets/load/zones.py): a second copy of that table in SQL would drift from it.
A location whose zone no reader knows gets NULL, and the not_null test on iana_zone says so."""

from datetime import timedelta

import duckdb
import pandas as pd

from booker_assets.load.dates import BookerDateError
from booker_assets.load.zones import resolve_zone


def _iana(row) -> str | None:
    try:
        zone = resolve_zone({"StandardName": row.time_zone_standard_name,
                             "Name": row.time_zone_name, "ID": row.time_zone_id}).zone
    except BookerDateError:
        return None
    key = getattr(zone, "key", None)  # a ZoneInfo
    if key:
        return key
    offset = zone.utcoffset(None) or timedelta()
    hours, rest = divmod(offset.total_seconds(), 3600)
    # a fixed whole-hour offset: Etc/GMT names count west-positive
    return None if rest else f"Etc/GMT{-int(hours):+d}"


def model(dbt, session):
    dbt.config(materialized="table")
    try:
        locations = dbt.source("booker", "locations_current").df()
    except duckdb.CatalogException:  # never loaded (a backfill of other tables): no zone known
        locations = pd.DataFrame({"location_id": pd.Series(dtype="int64")})
    zones = locations[["location_id"]].copy()
    zones["iana_zone"] = [_iana(row) for row in locations.itertuples()]
    # typed even when empty (a backfill of past days stores no location snapshot): an untyped
    # empty column fails in timezone() before the marts can name the location without a zone
    zones["iana_zone"] = zones["iana_zone"].astype("string")
    return zones.drop_duplicates("location_id")
