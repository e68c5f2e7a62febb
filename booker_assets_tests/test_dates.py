"""The one reader of Booker dates: every form the contract allows or a server plausibly sends."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booker_assets.load.dates import (
    EASTERN,
    BookerDateError,
    day_window,
    local_day,
    read_date,
    read_time,
    to_iso,
    to_legacy,
)

UTC = timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
PHOENIX = ZoneInfo("America/Phoenix")
SYDNEY = ZoneInfo("Australia/Sydney")
ZONES = (EASTERN, CHICAGO, PHOENIX, LOS_ANGELES, SYDNEY, ZoneInfo("Pacific/Honolulu"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def instant(value: str, zone=CHICAGO) -> datetime:
    moment = read_date(value, zone)
    assert moment is not None
    return moment.instant


@pytest.mark.parametrize("value", [
    "/Date(1739322300000-0500)/",  # the contract's example: 20:05 Central written as Eastern
    "/Date(1739322300000)/",  # legacy without its suffix
    "2025-02-11T20:05:00-06:00",  # the ISO twin
    "2025-02-12T02:05:00Z",
    "2025-02-12T02:05:00z",
    "2025-02-12T02:05:00+0000",
    "2025-02-12T02:05:00+00",
    "2025-02-11T20:05:00.0000000-06:00",  # .NET's 7 digits
    "2025-02-11T20:05:00.000-06:00",
    "2025-02-11 20:05:00-06:00",
    "2025-02-11T20:05:00",  # no offset: the location's wall clock
    "2025-02-11T20:05",
    " 2025-02-11T20:05:00-06:00 ",
], ids=lambda v: v.strip())
def test_every_form_of_the_contract_example_is_one_instant(value):
    assert instant(value) == utc(2025, 2, 12, 2, 5)
    assert read_date(value, CHICAGO).day == date(2025, 2, 11)


def test_fractions_beyond_microseconds_are_cut_not_rounded():
    assert instant("2025-02-12T02:05:00.1234567Z") == utc(2025, 2, 12, 2, 5, 0, 123456)


def test_legacy_with_a_suffix_that_is_not_eastern_is_the_true_instant():
    """The contract's legacy value carries Eastern's offset; one with the location's own
    offset is the standard .NET form, whose ms are the instant itself."""
    assert instant("/Date(1739340300000-0600)/") == utc(2025, 2, 12, 6, 5)


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
    assert instant(legacy, zone) == expected


@pytest.mark.parametrize(("value", "zone", "day"), [
    ("2025-03-05", CHICAGO, date(2025, 3, 5)),
    ("2025-03-05T00:00:00-06:00", CHICAGO, date(2025, 3, 5)),
    ("/Date(1741150800000-0500)/", CHICAGO, date(2025, 3, 5)),  # midnight, written as Eastern
    ("2025-03-04T13:00:00Z", SYDNEY, date(2025, 3, 5)),  # Sydney's midnight, in UTC
    ("1990-05-01T00:00:00Z", CHICAGO, date(1990, 5, 1)),  # a birth date at UTC midnight
    ("2025-03-05T23:30:00-06:00", CHICAGO, date(2025, 3, 5)),
])
def test_a_day_is_the_local_calendar_day_the_value_names(value, zone, day):
    assert read_date(value, zone).day == day


def test_a_date_alone_is_local_midnight_for_a_date_time_field():
    assert instant("2025-03-05") == utc(2025, 3, 5, 6)


@pytest.mark.parametrize(("value", "expected"), [
    ("09:00", time(9)), ("09:00:00", time(9)), ("9:30:15.5", time(9, 30, 15, 500000)),
    ("/Date(1739322300000-0500)/", time(20, 5)), ("2025-02-11T20:05:00-06:00", time(20, 5)),
    (None, None),
])
def test_times_of_day(value, expected):
    assert read_time(value, CHICAGO) == expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_null_and_empty_are_no_date(value):
    assert read_date(value, CHICAGO) is None


@pytest.mark.parametrize("bad", [
    "yesterday", "2025-02-30", "2025-13-01T00:00:00Z", "2025-02-11T25:00:00Z",
    "/Date(abc)/", "Date(1-0500", "1739322300000", "2025/02/11", "11/02/2025",
    "2025-02-11T20:05:00+25:00", "2025-02-11T20:05:00 CST",
])
def test_no_known_form_is_an_error_naming_the_value(bad):
    with pytest.raises(BookerDateError, match="date"):
        read_date(bad, CHICAGO)


@pytest.mark.parametrize("bad", [1739322300000, 20250211, 1.5, True, ["2025-02-11"]])
def test_a_date_must_be_text(bad):
    with pytest.raises(BookerDateError, match="must be text"):
        read_date(bad, CHICAGO)


def test_writers_round_trip():
    local = datetime(2025, 2, 11, 20, 5, tzinfo=CHICAGO)
    assert to_legacy(local) == "/Date(1739322300000-0500)/"
    assert to_iso(local) == "2025-02-11T20:05:00-06:00"
    assert instant(to_legacy(local)) == instant(to_iso(local))


# Moments every location sees: a few years around now, to the second, DST days included.
_MOMENTS = st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2031, 1, 1),
                        timezones=st.just(UTC)).map(lambda m: m.replace(microsecond=0))


def _spellings(moment: datetime, zone: ZoneInfo, fraction: int) -> list[str]:
    local = moment.astimezone(zone)
    digits = f".{'0' * fraction}" if fraction else ""
    offset = local.strftime("%z")
    wall = local.strftime("%Y-%m-%dT%H:%M:%S")
    legacy = to_legacy(local)
    # The legacy form writes the wall clock as if it were Eastern's: one Eastern skips (the
    # spring-forward hour) or repeats (the fall-back hour) cannot be written that way.
    as_eastern = local.replace(tzinfo=None).replace(tzinfo=EASTERN)
    writable = as_eastern.astimezone(UTC).astimezone(EASTERN).replace(tzinfo=None) == \
        local.replace(tzinfo=None) and as_eastern.replace(fold=1).utcoffset() == \
        as_eastern.utcoffset()
    return [
        *([legacy, legacy[:-7] + ")/"] if writable else []),  # /Date(ms)/: without the suffix
        f"{wall}{digits}{offset[:3]}:{offset[3:]}",
        f"{wall}{digits}{offset}",
        moment.strftime("%Y-%m-%dT%H:%M:%S") + digits + "Z",
        f"{wall}{digits}",
    ]


@settings(max_examples=1000)  # a millisecond each: DST edges need many draws to be met
@given(moment=_MOMENTS, zone=st.sampled_from(ZONES), fraction=st.integers(0, 7))
def test_every_spelling_of_a_moment_reads_as_that_moment(moment, zone, fraction):
    """Property: whichever legal form a server writes, the reader gets the same instant and
    the same local day (DST gaps aside: a wall clock that does not exist has no spelling)."""
    # astimezone keeps the fold (which of the repeated hour's two readings): compare both
    wall = moment.astimezone(zone).replace(tzinfo=None)
    if len({wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}) > 1:
        return  # an ambiguous wall clock (the repeated DST hour) has one reading per offset
    for text in _spellings(moment, zone, fraction):
        read = read_date(text, zone)
        assert read.instant == moment, text
        assert read.instant.astimezone(zone).date() == local_day(moment, zone), text


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
