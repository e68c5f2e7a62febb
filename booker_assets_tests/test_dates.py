"""Booker's legacy and ISO date forms, time-zone names and location-local day windows."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from booker_assets.api.dates import (
    BookerDateError,
    day_window,
    local_day,
    parse_booker_datetime,
    parse_iso,
    parse_legacy,
    to_iso,
    to_legacy,
    zone_for,
)

UTC = timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PHOENIX = ZoneInfo("America/Phoenix")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_contract_central_example_both_forms_give_the_same_instant():
    expected = utc(2025, 2, 12, 2, 5)
    assert parse_legacy("/Date(1739322300000-0500)/", CHICAGO) == expected
    assert parse_iso("2025-02-11T20:05:00-06:00") == expected
    assert local_day(expected, CHICAGO) == date(2025, 2, 11)


def test_iso_twin_is_preferred_over_the_legacy_value():
    # A legacy value that disagrees shows which one was used.
    got = parse_booker_datetime("2025-02-11T20:05:00-06:00", "/Date(0-0500)/", CHICAGO)
    assert got == utc(2025, 2, 12, 2, 5)
    assert parse_booker_datetime(None, "/Date(1739322300000-0500)/", CHICAGO) == got
    assert parse_booker_datetime(None, None, CHICAGO) is None


@pytest.mark.parametrize(("legacy", "zone", "expected"), [
    # 09:30 local on 2025-07-01 written as Eastern (EDT, -0400).
    ("/Date(1751376600000-0400)/", LOS_ANGELES, utc(2025, 7, 1, 16, 30)),
    ("/Date(1751376600000-0400)/", PHOENIX, utc(2025, 7, 1, 16, 30)),
    # 09:30 local on 2025-01-15 (EST, -0500): Pacific is -8 in winter, Arizona stays -7.
    ("/Date(1736951400000-0500)/", LOS_ANGELES, utc(2025, 1, 15, 17, 30)),
    ("/Date(1736951400000-0500)/", PHOENIX, utc(2025, 1, 15, 16, 30)),
    ("/Date(1736951400000)/", PHOENIX, utc(2025, 1, 15, 16, 30)),
], ids=["pacific-summer", "arizona-summer", "pacific-winter", "arizona-winter", "no-suffix"])
def test_legacy_wall_clock_is_re_anchored_in_the_location_zone(legacy, zone, expected):
    assert parse_legacy(legacy, zone) == expected


def test_iso_forms():
    assert parse_iso("2025-07-01T09:30:00-07:00") == utc(2025, 7, 1, 16, 30)
    assert parse_iso("2025-07-01T16:30:00Z") == utc(2025, 7, 1, 16, 30)
    assert parse_iso("2025-07-01T09:30:00.123-07:00") == utc(2025, 7, 1, 16, 30, 0, 123000)


@pytest.mark.parametrize("bad", ["2025-07-01T09:30:00", "yesterday", ""])
def test_iso_without_offset_or_garbage_is_rejected(bad):
    with pytest.raises(BookerDateError):
        parse_iso(bad)


@pytest.mark.parametrize("bad", ["/Date(abc)/", "1739322300000", "Date(1-0500)"])
def test_malformed_legacy_is_rejected(bad):
    with pytest.raises(BookerDateError, match="not a Booker legacy date"):
        parse_legacy(bad, CHICAGO)


def test_writers_round_trip():
    local = datetime(2025, 2, 11, 20, 5, tzinfo=CHICAGO)
    assert to_legacy(local) == "/Date(1739322300000-0500)/"
    assert to_iso(local) == "2025-02-11T20:05:00-06:00"
    assert parse_legacy(to_legacy(local), CHICAGO) == parse_iso(to_iso(local))


@pytest.mark.parametrize(("day", "zone", "hours"), [
    (date(2025, 3, 9), LOS_ANGELES, 23),
    (date(2025, 11, 2), LOS_ANGELES, 25),
    (date(2025, 3, 10), LOS_ANGELES, 24),
    (date(2025, 3, 9), PHOENIX, 24),
    (date(2025, 11, 2), PHOENIX, 24),
])
def test_day_window_length_across_dst(day, zone, hours):
    start, end = day_window(day, zone)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)
    assert (start.date(), end.date()) == (day, day + timedelta(days=1))
    assert (start.hour, end.hour) == (0, 0)


def test_day_window_bounds_in_utc_and_iso():
    start, end = day_window(date(2025, 3, 9), LOS_ANGELES)
    assert (to_iso(start), to_iso(end)) == ("2025-03-09T00:00:00-08:00",
                                            "2025-03-10T00:00:00-07:00")
    assert start.astimezone(UTC) == utc(2025, 3, 9, 8)
    assert end.astimezone(UTC) == utc(2025, 3, 10, 7)


@pytest.mark.parametrize(("time_zone", "expected"), [
    ({"ID": 8, "Name": "(GMT-08:00) Pacific Time (US & Canada)",
      "StandardName": "Pacific Standard Time"}, "America/Los_Angeles"),
    ({"ID": 10, "Name": "(GMT-07:00) Arizona"}, "America/Phoenix"),
    ({"ID": 20, "Name": "(GMT-06:00) Central Time (US & Canada)"}, "America/Chicago"),
    ({"Name": None, "StandardName": "US Mountain Standard Time"}, "America/Phoenix"),
    ("Eastern Standard Time", "America/New_York"),
    ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
    ("America/Denver", "America/Denver"),
])
def test_windows_and_standard_names_map_to_iana(time_zone, expected):
    assert zone_for(time_zone) == ZoneInfo(expected)


def test_unknown_label_with_an_offset_falls_back_to_a_fixed_offset():
    assert zone_for("(GMT+05:30) Chennai, Kolkata, Mumbai, New Delhi") == timezone(
        timedelta(hours=5, minutes=30))


@pytest.mark.parametrize("time_zone", [{"Name": "Olympus Mons Time"}, None, {}, ""])
def test_unknown_zone_is_an_error(time_zone):
    with pytest.raises(BookerDateError, match="unknown Booker time zone"):
        zone_for(time_zone)
