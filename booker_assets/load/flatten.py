"""Booker records → flat rows: snake_case names, nested objects joined with ``_``, lists as JSON.

A date-time field and its ISO ``...Offset`` twin become one UTC timestamp column; a lone legacy
``/Date(...)/`` value is re-anchored in the location's zone (contract §4).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from booker_assets.api.dates import BookerDateError, parse_booker_datetime

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_LEGACY_PREFIX = "/Date("
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
OFFSET = "Offset"

Zone = ZoneInfo | timezone


def snake(name: str) -> str:
    """``DateCreated`` → ``date_created``, ``CustomerID`` → ``customer_id``, ``SKU`` → ``sku``."""
    return _CAMEL.sub("_", name).lower()


def _scalar(value: Any, zone: Zone) -> Any:
    if isinstance(value, str):
        if value.startswith(_LEGACY_PREFIX):
            return parse_booker_datetime(None, value, zone)
        if _DATE_ONLY.match(value):
            return date.fromisoformat(value)
    return value


def _iso_or_none(value: str) -> datetime | None:
    """A lone ``...Offset`` value is a date-time if it parses (``UtcOffset: "-05:00"`` does not)."""
    try:
        return parse_booker_datetime(value, None, timezone.utc)
    except BookerDateError:
        return None


def flatten_record(record: dict, zone: Zone, prefix: str = "") -> dict[str, Any]:
    """One flat row from a (possibly nested) Booker record."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key.endswith(OFFSET) and key[: -len(OFFSET)] in record:
            continue  # the twin of a legacy field: read together with it below
        name = prefix + snake(key[: -len(OFFSET)] if key.endswith(OFFSET) else key)
        twin = record.get(key + OFFSET)
        if twin is not None:
            row[name] = parse_booker_datetime(twin, value, zone)
        elif key.endswith(OFFSET) and isinstance(value, str):
            moment = _iso_or_none(value)
            row[name if moment else prefix + snake(key)] = moment or value
        elif isinstance(value, dict):
            row.update(flatten_record(value, zone, prefix=f"{name}_"))
        elif isinstance(value, list):
            row[name] = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        else:
            row[name] = _scalar(value, zone)
    return row
