"""Booker's dates: the one reader for every form a server sends, and location-local days.

Every date, date-time and time-of-day value Booker sends, in any record and any field, is
read by ``read_date`` (times of day by ``read_time``, which defers to it for date forms).
The forms (docs/booker-api.md §4, plus what a server plausibly sends):

- ISO-8601 with an offset: ``2025-02-11T20:05:00-06:00``, ``Z``, ``+0000``, ``-06``, and
  fractional seconds up to .NET's 7 digits (more are cut to microseconds);
- ISO-8601 without an offset: the location's wall clock (the contract says the ISO twin
  carries the location's offset, so a server that drops it still means local time);
- a date alone, ``YYYY-MM-DD``: that local day (for a date-time field, its local midnight);
- legacy ``/Date(ms)/`` and ``/Date(ms±hhmm)/``: the location's wall clock written as if it
  were US Eastern (Booker's server zone), so the Eastern reading is re-anchored in the
  location's zone. A suffix that is neither of Eastern's offsets (-0500, -0400) is not the
  contract's form: such a value is read the standard .NET way, ``ms`` as the true instant.

Anything else raises ``BookerDateError``, which the loader turns into a rejected record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("America/New_York")
_EASTERN_OFFSETS = (timedelta(hours=-5), timedelta(hours=-4))


class BookerDateError(ValueError):
    """A value that is no Booker date form, or a time zone we cannot place."""


_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.IGNORECASE,
)
_LEGACY = re.compile(r"/?Date\((?P<ms>-?\d+)(?P<offset>[+-]\d{4})?\)/?")
_TIME_OF_DAY = re.compile(
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
)


@dataclass(frozen=True)
class BookerDate:
    """One Booker date value, read: the instant it names and the wall clock it was written in.

    ``written`` is the wall clock as the value states it (for legacy values, the Eastern
    reading, which is the location's wall clock); ``date_only`` is true for ``YYYY-MM-DD``.
    """

    instant: datetime  # aware, UTC
    written: datetime  # naive wall clock, as written
    date_only: bool
    zone: tzinfo  # the location's
    anchored: bool = True  # the value fixed its instant itself (an offset, or legacy ms)

    @property
    def day(self) -> date:
        """The calendar day the value names, in the location's zone.

        A day written as a date, or as a midnight (``1990-05-01T00:00:00Z`` for a birth
        date), is that day as written; any other moment is its local day in the zone.
        """
        if self.date_only or self.written.time() == time.min:
            return self.written.date()
        return self.instant.astimezone(self.zone).date()

    @property
    def time_of_day(self) -> time:
        return self.instant.astimezone(self.zone).time()


def read_date(value: Any, zone: tzinfo) -> BookerDate | None:
    """The one reader: any Booker date form → ``BookerDate``; None for null or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise BookerDateError(f"a date must be text, got {type(value).__name__} {value!r}")
    text = value.strip()
    if text.startswith(("/Date(", "Date(")):
        return _read_legacy(text, zone)
    match = _ISO.fullmatch(text)
    if not match:
        raise BookerDateError(f"not a Booker date: {value!r} (neither ISO-8601 nor /Date(ms)/)")
    try:
        return _read_iso(match, zone)
    except ValueError as exc:  # e.g. month 13, hour 25, offset +25:00
        raise BookerDateError(f"not a valid date: {value!r} ({exc})") from None


def read_time(value: Any, zone: tzinfo) -> time | None:
    """A time of day (``09:00``, ``09:00:00.0000000``), or the local time of a date form."""
    if isinstance(value, str):
        match = _TIME_OF_DAY.fullmatch(value.strip())
        if match:
            try:
                return time(int(match["hour"]), int(match["minute"]), int(match["second"] or 0),
                            _microseconds(match["fraction"]))
            except ValueError as exc:
                raise BookerDateError(f"not a time of day: {value!r} ({exc})") from None
    try:
        moment = read_date(value, zone)
    except BookerDateError:
        raise BookerDateError(f"not a time of day: {value!r} (neither HH:MM[:SS] nor a date "
                              "form)") from None
    return None if moment is None else moment.time_of_day


def _read_iso(match: re.Match, zone: tzinfo) -> BookerDate:
    day = date.fromisoformat(match["date"])
    if match["hour"] is None:
        written = datetime.combine(day, time.min)
        return BookerDate(_anchor(written, zone), written, True, zone, anchored=False)
    written = datetime.combine(day, time(int(match["hour"]), int(match["minute"]),
                                         int(match["second"] or 0),
                                         _microseconds(match["fraction"])))
    offset = _offset(match["offset"])
    instant = _anchor(written, zone) if offset is None else written.replace(tzinfo=offset)
    return BookerDate(instant.astimezone(timezone.utc), written, False, zone,
                      anchored=offset is not None)


def _read_legacy(text: str, zone: tzinfo) -> BookerDate:
    match = _LEGACY.fullmatch(text)
    if not match:
        raise BookerDateError(f"not a Booker legacy date: {text!r}")
    instant = datetime.fromtimestamp(int(match["ms"]) / 1000, tz=timezone.utc)
    suffix = _offset(match["offset"])
    if suffix is not None and suffix.utcoffset(None) not in _EASTERN_OFFSETS:
        # Not Eastern's offset (standard or daylight; either may stand next to a DST change):
        # the standard .NET reading, ms since the epoch in UTC, the suffix for information.
        return BookerDate(instant, instant.astimezone(suffix).replace(tzinfo=None), False, zone)
    written = instant.astimezone(EASTERN).replace(tzinfo=None)
    return BookerDate(_anchor(written, zone), written, False, zone)


def _anchor(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a wall-clock reading in ``zone``."""
    return wall.replace(tzinfo=zone).astimezone(timezone.utc)


def _offset(text: str | None) -> timezone | None:
    if not text:
        return None
    if text.upper() == "Z":
        return timezone.utc
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _microseconds(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


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
