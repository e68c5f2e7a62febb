"""Booker's two date forms, its Windows time-zone names, and location-local day windows.

Booker's server clock is US Eastern: a legacy ``/Date(ms-0500)/`` value is the location's
wall-clock time written as if it were Eastern. The ISO ``...Offset`` twin carries the true
offset and is preferred (contract §4).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")

# Windows-style names Booker uses in Location.TimeZone, keyed by the text after "(GMT±hh:mm) ".
_WINDOWS_ZONES: dict[str, str] = {
    "Eastern Time (US & Canada)": "America/New_York",
    "Indiana (East)": "America/Indiana/Indianapolis",
    "Central Time (US & Canada)": "America/Chicago",
    "Saskatchewan": "America/Regina",
    "Mountain Time (US & Canada)": "America/Denver",
    "Arizona": "America/Phoenix",
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Alaska": "America/Anchorage",
    "Hawaii": "Pacific/Honolulu",
    "Atlantic Time (Canada)": "America/Halifax",
    "Newfoundland": "America/St_Johns",
    "Puerto Rico": "America/Puerto_Rico",
    "Guadalajara, Mexico City, Monterrey": "America/Mexico_City",
    "London, Edinburgh, Dublin, Lisbon": "Europe/London",
    "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London": "Europe/London",
    "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": "Europe/Berlin",
    "Brussels, Copenhagen, Madrid, Paris": "Europe/Paris",
    "Sydney, Canberra, Melbourne": "Australia/Sydney",
    "Canberra, Melbourne, Sydney": "Australia/Sydney",
    "Brisbane": "Australia/Brisbane",
    "Auckland, Wellington": "Pacific/Auckland",
    "Dubai, Abu Dhabi": "Asia/Dubai",
    "Abu Dhabi, Muscat": "Asia/Dubai",
    "Singapore, Kuala Lumpur": "Asia/Singapore",
    "Kuala Lumpur, Singapore": "Asia/Singapore",
}
# Windows standard names ("Eastern Standard Time"), the other spelling Booker sends.
_STANDARD_NAMES: dict[str, str] = {
    "Eastern Standard Time": "America/New_York",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Central Standard Time": "America/Chicago",
    "Canada Central Standard Time": "America/Regina",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "AUS Eastern Standard Time": "Australia/Sydney",
}
_NAME = re.compile(r"^\(?(?:GMT|UTC)\s*(?P<offset>[+-]\d{1,2}:\d{2})?\)?\s*(?P<label>.*)$")
_LEGACY = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/$")


class BookerDateError(ValueError):
    """A value that is neither Booker date form, or a time zone we cannot place."""


def zone_for(time_zone: dict | str | None) -> ZoneInfo | timezone:
    """The IANA zone of a Booker ``TimeZone`` object (or its ``Name``/``StandardName`` string).

    Falls back to the fixed offset in the name when the label is unknown; raises when there
    is nothing to go on, since a wrong zone silently shifts every partition.
    """
    if isinstance(time_zone, dict):
        candidates = [time_zone.get("Name"), time_zone.get("StandardName")]
    else:
        candidates = [time_zone]
    for text in filter(None, candidates):
        text = str(text).strip()
        if text in _STANDARD_NAMES:
            return ZoneInfo(_STANDARD_NAMES[text])
        match = _NAME.match(text)
        if match and match["label"] in _WINDOWS_ZONES:
            return ZoneInfo(_WINDOWS_ZONES[match["label"]])
        try:
            return ZoneInfo(text)
        except (ValueError, KeyError, OSError):
            pass
        if match and match["offset"]:
            hours, minutes = match["offset"].split(":")
            sign = -1 if hours.startswith("-") else 1
            return timezone(sign * timedelta(hours=abs(int(hours)), minutes=int(minutes)))
    raise BookerDateError(
        f"unknown Booker time zone {time_zone!r}: add it to booker_assets.api.dates._WINDOWS_ZONES"
    )


def parse_legacy(value: str, zone: ZoneInfo | timezone) -> datetime:
    """``/Date(ms±hhmm)/`` → aware UTC datetime, re-anchoring the Eastern wall clock in ``zone``."""
    match = _LEGACY.match(value.strip())
    if not match:
        raise BookerDateError(f"not a Booker legacy date: {value!r}")
    instant = datetime.fromtimestamp(int(match["ms"]) / 1000, tz=timezone.utc)
    wall_clock = instant.astimezone(EASTERN).replace(tzinfo=None)
    return wall_clock.replace(tzinfo=zone).astimezone(timezone.utc)


def parse_iso(value: str) -> datetime:
    """ISO-8601 with offset (``2025-02-11T20:05:00-06:00``) → aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BookerDateError(f"not an ISO date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise BookerDateError(f"ISO date-time without an offset: {value!r}")
    return parsed.astimezone(timezone.utc)


def parse_booker_datetime(
    iso: str | None, legacy: str | None, zone: ZoneInfo | timezone
) -> datetime | None:
    """The UTC instant of a Booker date-time field, preferring the ISO ``...Offset`` twin."""
    if iso:
        return parse_iso(iso)
    if legacy:
        return parse_legacy(legacy, zone)
    return None


def to_legacy(moment: datetime) -> str:
    """The legacy form Booker writes for an aware local ``moment`` (used by the sandbox)."""
    as_eastern = moment.replace(tzinfo=None).replace(tzinfo=EASTERN)
    ms = int(as_eastern.timestamp() * 1000)
    offset = as_eastern.strftime("%z")
    return f"/Date({ms}{offset})/"


def to_iso(moment: datetime) -> str:
    """ISO-8601 with the moment's own offset, seconds precision (the ``...Offset`` form)."""
    return moment.isoformat(timespec="seconds")


def day_window(day: date, zone: ZoneInfo | timezone) -> tuple[datetime, datetime]:
    """Half-open ``[D 00:00, D+1 00:00)`` in the location's zone: 23 or 25 hours on DST days."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def local_day(instant: datetime, zone: ZoneInfo | timezone) -> date:
    """The location-local calendar day an aware instant falls on."""
    return instant.astimezone(zone).date()
