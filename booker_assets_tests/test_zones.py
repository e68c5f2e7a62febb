"""Booker's Windows time-zone names resolve by meaning before offset, and DST days stay right."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from babel.core import get_global

from booker_assets.load import zones
from booker_assets.load.dates import BookerDateError, day_window, local_day
from booker_assets.load.zones import ResolvedZone, resolve_zone, zone_for

UTC = timezone.utc
LABELS, LOCAL = "booker_assets.load.zones._WINDOWS_LABELS", "booker_assets.load.zones._LOCAL_ZONES"

# Written out here rather than read from the module, so a wrong table entry fails a test:
# (Windows standard name, its standard offset, display labels Windows used, IANA zone).
ZONES = [
    ("Eastern Standard Time", "-05:00", ["Eastern Time (US & Canada)"], "America/New_York"),
    ("US Eastern Standard Time", "-05:00", ["Indiana (East)"], "America/Indiana/Indianapolis"),
    ("Central Standard Time", "-06:00", ["Central Time (US & Canada)"], "America/Chicago"),
    ("Canada Central Standard Time", "-06:00", ["Saskatchewan"], "America/Regina"),
    ("Mountain Standard Time", "-07:00", ["Mountain Time (US & Canada)"], "America/Denver"),
    ("US Mountain Standard Time", "-07:00", ["Arizona"], "America/Phoenix"),
    ("Yukon Standard Time", "-07:00", ["Yukon"], "America/Whitehorse"),
    ("Pacific Standard Time", "-08:00",
     ["Pacific Time (US & Canada)", "Pacific Time (US & Canada); Tijuana"], "America/Los_Angeles"),
    ("Alaskan Standard Time", "-09:00", ["Alaska"], "America/Anchorage"),
    ("Aleutian Standard Time", "-10:00", ["Aleutian Islands"], "America/Adak"),
    ("Hawaiian Standard Time", "-10:00", ["Hawaii"], "Pacific/Honolulu"),
    ("Atlantic Standard Time", "-04:00", ["Atlantic Time (Canada)"], "America/Halifax"),
    ("Newfoundland Standard Time", "-03:30",
     ["Newfoundland", "Newfoundland and Labrador"], "America/St_Johns"),
    ("Central Standard Time (Mexico)", "-06:00",
     ["Guadalajara, Mexico City, Monterrey", "Guadalajara, Mexico City, Monterrey - New"],
     "America/Mexico_City"),
    ("Mexico Standard Time", "-06:00",
     ["Guadalajara, Mexico City, Monterrey - Old"], "America/Mexico_City"),
    ("Mountain Standard Time (Mexico)", "-07:00",
     ["La Paz, Mazatlan", "Chihuahua, La Paz, Mazatlan", "Chihuahua, La Paz, Mazatlan - New"],
     "America/Mazatlan"),
    ("Mexico Standard Time 2", "-07:00",
     ["Chihuahua, La Paz, Mazatlan - Old"], "America/Mazatlan"),
    ("Pacific Standard Time (Mexico)", "-08:00",
     ["Baja California", "Tijuana, Baja California"], "America/Tijuana"),
    ("Eastern Standard Time (Mexico)", "-05:00", ["Chetumal"], "America/Cancun"),
    ("SA Western Standard Time", "-04:00",
     ["Puerto Rico", "Georgetown, La Paz, Manaus, San Juan"], "America/Puerto_Rico"),
    ("GMT Standard Time", "+00:00",
     ["Dublin, Edinburgh, Lisbon, London", "London, Edinburgh, Dublin, Lisbon",
      "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London"], "Europe/London"),
    ("W. Europe Standard Time", "+01:00",
     ["Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"], "Europe/Berlin"),
    ("Romance Standard Time", "+01:00",
     ["Brussels, Copenhagen, Madrid, Paris"], "Europe/Paris"),
    ("Arabian Standard Time", "+04:00",
     ["Abu Dhabi, Muscat", "Dubai, Abu Dhabi"], "Asia/Dubai"),
    ("Singapore Standard Time", "+08:00",
     ["Kuala Lumpur, Singapore", "Singapore, Kuala Lumpur"], "Asia/Singapore"),
    ("AUS Eastern Standard Time", "+10:00",
     ["Canberra, Melbourne, Sydney", "Sydney, Canberra, Melbourne"], "Australia/Sydney"),
    ("E. Australia Standard Time", "+10:00", ["Brisbane"], "Australia/Brisbane"),
    ("New Zealand Standard Time", "+12:00", ["Auckland, Wellington"], "Pacific/Auckland"),
    ("UTC", "+00:00", ["Coordinated Universal Time"], "Etc/UTC"),
]
# 2025's spring-forward and fall-back days of every covered zone that observes DST.
US_DST = (date(2025, 3, 9), date(2025, 11, 2))
EU_DST = (date(2025, 3, 30), date(2025, 10, 26))
DST_DAYS = {
    "America/New_York": US_DST,
    "America/Indiana/Indianapolis": US_DST,
    "America/Chicago": US_DST,
    "America/Denver": US_DST,
    "America/Los_Angeles": US_DST,
    "America/Anchorage": US_DST,
    "America/Adak": US_DST,
    "America/Halifax": US_DST,
    "America/St_Johns": US_DST,
    "America/Tijuana": US_DST,
    "Europe/London": EU_DST,
    "Europe/Berlin": EU_DST,
    "Europe/Paris": EU_DST,
    "Australia/Sydney": (date(2025, 10, 5), date(2025, 4, 6)),
    "Pacific/Auckland": (date(2025, 9, 28), date(2025, 4, 6)),
}


def _spellings(label: str) -> list[str]:
    """A label as Booker may write it: "&" or "and" between US and Canada."""
    return sorted({label, label.replace("&", "and")})


def _display_names(offset: str, label: str) -> list[str]:
    """Old "(GMT-05:00)" and new "(UTC-05:00)" prefixes; Windows wrote "(GMT)" for +00:00."""
    prefixes = ["(GMT{})", "(UTC{})"] + (["(GMT)", "(UTC)"] if offset == "+00:00" else [])
    return [f"{prefix.format(offset)} {text}" for prefix in prefixes for text in _spellings(label)]


DISPLAY_CASES = [
    pytest.param(name, iana, id=name)
    for _, offset, labels, iana in ZONES
    for label in labels
    for name in _display_names(offset, label)
]


def hours(start: datetime, end: datetime) -> float:
    # Aware datetimes sharing a tzinfo subtract as wall clocks; UTC gives elapsed time.
    return (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)


# -- The two reported cases -------------------------------------------------------------------

@pytest.mark.parametrize(("time_zone", "iana", "summer_offset"), [
    ({"ID": 12, "Name": "(UTC-05:00) Eastern Time (US and Canada)",
      "StandardName": "Eastern Standard Time"}, "America/New_York", timedelta(hours=-4)),
    ({"ID": 30, "Name": "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
      "StandardName": "GMT Standard Time"}, "Europe/London", timedelta(hours=1)),
], ids=["eastern", "london"])
def test_reported_zones_keep_their_summer_time(time_zone, iana, summer_offset):
    resolved = resolve_zone(time_zone)
    assert resolved == ResolvedZone(ZoneInfo(iana), "standard_name", time_zone["StandardName"])
    start, _ = day_window(date(2025, 7, 1), resolved.zone)
    assert start.utcoffset() == summer_offset
    # Without the standard name the display label alone still means the zone.
    assert zone_for({"Name": time_zone["Name"]}) is ZoneInfo(iana)


# -- Every covered zone in every spelling ------------------------------------------------------

@pytest.mark.parametrize(("standard_name", "iana"), [(z[0], z[3]) for z in ZONES],
                         ids=[z[0] for z in ZONES])
def test_standard_names(standard_name, iana):
    assert resolve_zone(standard_name) == ResolvedZone(ZoneInfo(iana), "standard_name",
                                                       standard_name)
    assert zone_for({"StandardName": standard_name, "Name": None}) is ZoneInfo(iana)


@pytest.mark.parametrize(("display_name", "iana"), DISPLAY_CASES)
def test_display_names(display_name, iana):
    resolved = resolve_zone({"ID": 1, "Name": display_name})
    assert resolved == ResolvedZone(ZoneInfo(iana), "display_name", display_name)


@pytest.mark.parametrize("iana", sorted({z[3] for z in ZONES}))
def test_iana_names(iana):
    assert resolve_zone(iana) == ResolvedZone(ZoneInfo(iana), "iana", iana)


@pytest.mark.parametrize(("alias", "iana"), [
    ("US/Eastern", "America/New_York"),
    ("US/Pacific", "America/Los_Angeles"),
    ("us/arizona", "America/Phoenix"),
    ("America/Indianapolis", "America/Indiana/Indianapolis"),
    ("Canada/Newfoundland", "America/St_Johns"),
    ("america/chicago", "America/Chicago"),
])
def test_iana_aliases_and_case(alias, iana):
    assert resolve_zone(alias) == ResolvedZone(ZoneInfo(iana), "iana", alias)


@pytest.mark.parametrize("text", [
    "  (utc-05:00)   EASTERN time  (us AND canada) ",
    "(UTC\u221205:00) Eastern Time (US & Canada)",
    "GMT-05:00 Eastern Time (US & Canada)",
    "Eastern Time (US & Canada)",
    "(UTC-05:00) Eastern Standard Time",
    "eastern  standard time",
])
def test_spacing_case_and_prefix_do_not_change_the_meaning(text):
    assert zone_for(text) is ZoneInfo("America/New_York")


def test_every_label_entry_is_tested_here():
    assert {z[0] for z in ZONES} == set(zones._WINDOWS_LABELS)


# -- CLDR's mapping, and where the project answers otherwise -----------------------------------

def test_local_entries_are_only_where_cldr_lacks_the_name_or_answers_elsewhere():
    # When a babel upgrade brings CLDR's answer for one of these, this fails: drop the entry.
    cldr = get_global("windows_zone_mapping")
    assert {name: cldr.get(name) for name in zones._LOCAL_ZONES} == {
        "Mexico Standard Time": None, "Mexico Standard Time 2": None,
        "SA Western Standard Time": "America/La_Paz",
    }


@pytest.mark.parametrize(("standard_name", "iana"), [
    # Names with no local entry at all: CLDR's table alone, its old IANA names made current.
    ("India Standard Time", "Asia/Kolkata"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
])
def test_a_name_only_cldr_knows_resolves(standard_name, iana):
    assert standard_name not in zones._WINDOWS_LABELS
    assert resolve_zone({"ID": 7, "StandardName": standard_name, "Name": "(UTC+01:00) x"}) == (
        ResolvedZone(ZoneInfo(iana), "standard_name", standard_name))


def test_every_windows_name_cldr_maps_loads_as_a_current_iana_zone():
    names = get_global("windows_zone_mapping")
    assert len(names) > 100  # babel's data is there, not an empty table
    for name in names:
        zone = zone_for(name)
        assert zone.key not in get_global("zone_aliases"), name  # current, not an old link


def test_every_old_iana_name_cldr_lists_loads():
    # CLDR maps Factory to Etc/Unknown, which no host can load: it stays the host's Factory.
    loadable = available_timezones()
    for alias in get_global("zone_aliases"):
        assert resolve_zone(alias).zone.key in loadable, alias


# -- DST days ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("standard_name", "iana"),
                         [(z[0], z[3]) for z in ZONES if z[3] in DST_DAYS],
                         ids=[z[0] for z in ZONES if z[3] in DST_DAYS])
def test_dst_days_are_23_and_25_hours(standard_name, iana):
    zone = zone_for(standard_name)
    spring, fall = DST_DAYS[iana]
    for day, length in [(spring, 23), (fall, 25), (spring - timedelta(days=1), 24)]:
        start, end = day_window(day, zone)
        assert hours(start, end) == length, day
        assert_midnights_land_on(day, start, end, zone)


@pytest.mark.parametrize(("standard_name", "iana"),
                         [(z[0], z[3]) for z in ZONES if z[3] not in DST_DAYS],
                         ids=[z[0] for z in ZONES if z[3] not in DST_DAYS])
def test_zones_without_dst_keep_24_hour_days(standard_name, iana):
    zone = zone_for(standard_name)
    for day in [*US_DST, *EU_DST, *DST_DAYS["Australia/Sydney"]]:
        start, end = day_window(day, zone)
        assert hours(start, end) == 24, day
        assert_midnights_land_on(day, start, end, zone)


def assert_midnights_land_on(day: date, start: datetime, end: datetime, zone) -> None:
    """Local midnight opens ``day``; the last instant before the next midnight is still in it."""
    assert local_day(start.astimezone(UTC), zone) == day
    assert local_day(end.astimezone(UTC) - timedelta(microseconds=1), zone) == day
    assert local_day(end.astimezone(UTC), zone) == day + timedelta(days=1)


def test_every_zone_with_dst_has_its_dst_days_here():
    def observes_dst(iana: str) -> bool:
        zone = ZoneInfo(iana)
        return datetime(2025, 1, 15, tzinfo=zone).utcoffset() != datetime(
            2025, 7, 15, tzinfo=zone).utcoffset()

    assert {z[3] for z in ZONES if observes_dst(z[3])} == set(DST_DAYS)


# -- Meaning beats offset ----------------------------------------------------------------------

@pytest.mark.parametrize(("time_zone", "iana", "source"), [
    # Summer offsets in the label, read in January: the zone still gives winter time.
    ({"Name": "(UTC-04:00) Eastern Time (US & Canada)"}, "America/New_York", "display_name"),
    ({"Name": "(GMT-07:00) Pacific Time (US & Canada)"}, "America/Los_Angeles", "display_name"),
    ({"Name": "(UTC+01:00) Dublin, Edinburgh, Lisbon, London"}, "Europe/London", "display_name"),
    # A meaningful name in any field wins over an offset in another.
    ({"ID": "Central Standard Time", "Name": "(UTC-06:00) Somewhere"}, "America/Chicago",
     "standard_name"),
    ({"ID": "America/Denver", "Name": "(UTC-07:00) Somewhere"}, "America/Denver", "iana"),
    ({"Name": "(UTC-08:00) Somewhere", "StandardName": "US/Pacific"}, "America/Los_Angeles",
     "iana"),
])
def test_meaning_beats_an_offset_that_is_wrong_for_the_season(time_zone, iana, source):
    resolved = resolve_zone(time_zone)
    assert (resolved.zone, resolved.source, resolved.warning) == (ZoneInfo(iana), source, None)
    start, _ = day_window(date(2025, 1, 15), resolved.zone)
    assert start.utcoffset() == datetime(2025, 1, 15, tzinfo=ZoneInfo(iana)).utcoffset()


def test_standard_name_is_tried_before_name():
    resolved = resolve_zone({"Name": "(UTC-06:00) Central Time (US & Canada)",
                             "StandardName": "Eastern Standard Time"})
    assert resolved.zone is ZoneInfo("America/New_York")


# -- Fixed offset, the last resort -------------------------------------------------------------

@pytest.mark.parametrize(("text", "offset"), [
    ("(GMT+05:30) Chennai, Kolkata, Mumbai, New Delhi", timedelta(hours=5, minutes=30)),
    ("(UTC-03:30) Somewhere", -timedelta(hours=3, minutes=30)),
    ("(UTC) Somewhere", timedelta(0)),
])
def test_unknown_label_falls_back_to_its_offset_with_a_warning(text, offset, caplog):
    resolved = resolve_zone({"ID": 5, "Name": text})
    assert (resolved.zone, resolved.source, resolved.text) == (
        timezone(offset), "fixed_offset", text)
    assert "daylight saving time is ignored" in resolved.warning
    assert LABELS in resolved.warning and LOCAL in resolved.warning
    with caplog.at_level(logging.WARNING, logger="booker_assets.load.zones"):
        assert zone_for(text) == timezone(offset)
    assert [r.getMessage() for r in caplog.records] == [resolved.warning]


def test_a_resolved_name_logs_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="booker_assets.load.zones"):
        zone_for("Eastern Standard Time")
    assert caplog.records == []


@pytest.mark.parametrize("time_zone", [
    None, "", "   ", {}, {"ID": 42}, {"Name": None, "StandardName": None},
    {"Name": "Olympus Mons Time"}, "Not/AZone", "GMT Daylight Time", "(UTC+25:00) Nowhere",
    "(UTC+05:75) Nowhere", 17,
])
def test_garbage_is_an_error_naming_the_value_and_the_fix(time_zone):
    with pytest.raises(BookerDateError, match=re.escape(repr(time_zone))) as raised:
        resolve_zone(time_zone)
    assert LABELS in str(raised.value) and LOCAL in str(raised.value)
    with pytest.raises(BookerDateError):
        zone_for(time_zone)


def test_a_label_meaning_two_zones_is_refused():
    with pytest.raises(ValueError, match="would mean both"):
        zones._index([("Eastern Time (US & Canada)", "America/New_York"),
                      ("eastern time (us and canada)", "America/Chicago")])
