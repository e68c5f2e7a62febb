"""Booker's Windows time-zone names → IANA zones, by meaning before offset (docs/booker-api.md §4).

A display name such as ``"(UTC-05:00) Eastern Time (US & Canada)"`` carries only the zone's
*standard* offset. Taking that offset as the zone drops daylight saving time and shifts every
summer partition boundary by an hour, so each name Booker sends is first looked up by what it
means; the bare offset is a last resort that says what it costs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from babel.core import get_global

from booker_assets.load.dates import BookerDateError

log = logging.getLogger(__name__)

# Windows standard name → IANA zone: CLDR's windowsZones.xml (its world-wide "001" entries) as
# babel ships it, with CLDR's old IANA names (America/Indianapolis, Asia/Calcutta) made current
# by CLDR's own alias table, so a zone has one name whichever spelling Booker sent.
_ALIASES: dict[str, str] = dict(get_global("zone_aliases"))
_CLDR_ZONES: dict[str, str] = {
    name: _ALIASES.get(iana, iana) for name, iana in get_global("windows_zone_mapping").items()
}
# Where the project answers otherwise than CLDR, and why. Each is tested in test_zones.py.
_LOCAL_ZONES: dict[str, str] = {
    # Older Windows names, replaced by the "(Mexico)" ones and gone from CLDR: a location set
    # up under them still resolves.
    "Mexico Standard Time": "America/Mexico_City",
    "Mexico Standard Time 2": "America/Mazatlan",
    # CLDR's 001 entry is America/La_Paz; its territory PR entry is the same clock and the
    # place Booker serves.
    "SA Western Standard Time": "America/Puerto_Rico",
}
_WINDOWS_ZONES: dict[str, str] = _CLDR_ZONES | _LOCAL_ZONES
# The display labels Windows wrote after "(UTC±hh:mm) " over the years, by standard name: CLDR
# has none of them. Labels match ignoring case, spacing, "&" vs "and" and the order of
# comma-separated places: list each wording once. (Chihuahua left the Mountain label when it
# dropped DST in 2022.)
_WINDOWS_LABELS: dict[str, tuple[str, ...]] = {
    # United States and Canada.
    "Eastern Standard Time": ("Eastern Time (US & Canada)",),
    "US Eastern Standard Time": ("Indiana (East)",),
    "Central Standard Time": ("Central Time (US & Canada)",),
    "Canada Central Standard Time": ("Saskatchewan",),
    "Mountain Standard Time": ("Mountain Time (US & Canada)",),
    "US Mountain Standard Time": ("Arizona",),
    "Yukon Standard Time": ("Yukon",),
    "Pacific Standard Time": ("Pacific Time (US & Canada)", "Pacific Time (US & Canada); Tijuana"),
    "Alaskan Standard Time": ("Alaska",),
    "Aleutian Standard Time": ("Aleutian Islands",),
    "Hawaiian Standard Time": ("Hawaii",),
    "Atlantic Standard Time": ("Atlantic Time (Canada)",),
    "Newfoundland Standard Time": ("Newfoundland", "Newfoundland and Labrador"),
    # Mexico.
    "Central Standard Time (Mexico)": (
        "Guadalajara, Mexico City, Monterrey", "Guadalajara, Mexico City, Monterrey - New"
    ),
    "Mexico Standard Time": ("Guadalajara, Mexico City, Monterrey - Old",),
    "Mountain Standard Time (Mexico)": (
        "La Paz, Mazatlan", "Chihuahua, La Paz, Mazatlan", "Chihuahua, La Paz, Mazatlan - New"
    ),
    "Mexico Standard Time 2": ("Chihuahua, La Paz, Mazatlan - Old",),
    "Pacific Standard Time (Mexico)": ("Baja California", "Tijuana, Baja California"),
    "Eastern Standard Time (Mexico)": ("Chetumal",),
    "SA Western Standard Time": ("Puerto Rico", "Georgetown, La Paz, Manaus, San Juan"),
    # Europe.
    "GMT Standard Time": (
        "Dublin, Edinburgh, Lisbon, London",
        "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London",
    ),
    "W. Europe Standard Time": ("Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",),
    "Romance Standard Time": ("Brussels, Copenhagen, Madrid, Paris",),
    # Asia and the Pacific.
    "Arabian Standard Time": ("Abu Dhabi, Muscat", "Dubai, Abu Dhabi"),
    "Singapore Standard Time": ("Kuala Lumpur, Singapore",),
    "AUS Eastern Standard Time": ("Canberra, Melbourne, Sydney",),
    "E. Australia Standard Time": ("Brisbane",),
    "New Zealand Standard Time": ("Auckland, Wellington",),
    "UTC": ("Coordinated Universal Time",),
}
# "(UTC-05:00) label", "(GMT) label", "GMT+1 label"; U+2212 is the minus some tools write.
_DISPLAY = re.compile(
    r"^(?P<open>\()?\s*(?:UTC|GMT)\s*"
    r"(?:(?P<sign>[+\-\u2212])\s*(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?"
    r"\s*(?(open)\))\s*(?P<label>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_MAX_OFFSET = timedelta(hours=14)  # the widest offset any zone uses (Kiribati)
_FIX = (
    f"add its display label under its Windows standard name in {__name__}._WINDOWS_LABELS, "
    f"and the name with its IANA zone to {__name__}._LOCAL_ZONES if CLDR (babel) lacks it"
)


@dataclass(frozen=True)
class ResolvedZone:
    """A location's zone and how it was found, so a guessed fixed offset is never silent."""

    zone: tzinfo
    source: str  # "standard_name", "iana", "display_name" or "fixed_offset"
    text: str  # the input text it was resolved from
    warning: str | None = None  # set only for "fixed_offset"


def resolve_zone(time_zone: dict | str | None) -> ResolvedZone:
    """The zone of a Booker ``TimeZone`` object (or one of its strings), by meaning first.

    Every candidate (``StandardName``, ``Name``, a string ``ID``) is tried as a Windows
    standard name, then as an IANA name, then as a display label, and only then for the fixed
    offset in a display name: an offset must never win over a name that means a real zone.
    """
    texts = _candidates(time_zone)
    for resolver in (_by_standard_name, _by_iana_name, _by_display_label, _by_fixed_offset):
        for text in texts:
            found = resolver(text)
            if found:
                return found
    raise BookerDateError(
        f"unknown Booker time zone {time_zone!r}: no known Windows standard name, IANA name or "
        f"display label, and no (UTC±hh:mm) offset; {_FIX}"
    )


def zone_for(time_zone: dict | str | None) -> tzinfo:
    """The zone of a Booker ``TimeZone``; logs the warning when only a fixed offset was found."""
    resolved = resolve_zone(time_zone)
    if resolved.warning:
        log.warning(resolved.warning)
    return resolved.zone


def _candidates(time_zone: dict | str | None) -> list[str]:
    if isinstance(time_zone, dict):
        # ID is usually Booker's own number; only a string can name a zone.
        values = [time_zone.get(field) for field in ("StandardName", "Name", "ID")]
    else:
        values = [time_zone]
    return [value.strip() for value in values if isinstance(value, str) and value.strip()]


def _key(text: str) -> str:
    """What a name means, not how it is spelled: no case, spacing, "&"/"and" or place order."""
    text = text.casefold().replace("&", " and ")
    places = (" ".join(place.split()) for place in text.split(","))
    return ", ".join(sorted(place for place in places if place))


def _index(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Match key → IANA zone; raises at import if one key would mean two zones, which would
    otherwise silently pick whichever entry came last."""
    index: dict[str, str] = {}
    for text, iana in pairs:
        if index.setdefault(_key(text), iana) != iana:
            raise ValueError(f"{text!r} would mean both {index[_key(text)]} and {iana}")
    return index


_BY_STANDARD_NAME = _index(_WINDOWS_ZONES.items())
_BY_LABEL = _index(
    (label, _WINDOWS_ZONES[name]) for name, labels in _WINDOWS_LABELS.items() for label in labels
)


@lru_cache(maxsize=1)
def _iana_names() -> dict[str, str]:
    """Case-folded IANA name → the key to load; built once (it walks the zone files)."""
    zones = available_timezones()
    names = {name.casefold(): name for name in zones}
    # Old links resolved by CLDR's table, not by the host: Debian, for one, moved them to
    # tzdata-legacy.
    # (An alias to a zone the host cannot load, Factory → Etc/Unknown, is no zone.)
    names.update(
        (alias.casefold(), target) for alias, target in _ALIASES.items() if target in zones
    )
    return names


def _by_standard_name(text: str) -> ResolvedZone | None:
    iana = _BY_STANDARD_NAME.get(_key(text))
    return ResolvedZone(ZoneInfo(iana), "standard_name", text) if iana else None


def _by_iana_name(text: str) -> ResolvedZone | None:
    # Looked up rather than passed to ZoneInfo, so odd text never becomes a file path.
    name = _iana_names().get(text.casefold())
    return ResolvedZone(ZoneInfo(name), "iana", text) if name else None


def _by_display_label(text: str) -> ResolvedZone | None:
    match = _DISPLAY.match(text)
    label = _key(match["label"] if match else text)
    # A standard name written behind the prefix still means its zone.
    iana = _BY_LABEL.get(label) or _BY_STANDARD_NAME.get(label)
    return ResolvedZone(ZoneInfo(iana), "display_name", text) if iana else None


def _by_fixed_offset(text: str) -> ResolvedZone | None:
    match = _DISPLAY.match(text)
    # "(UTC) label" means +00:00; "GMT label" without parentheses or offset means nothing.
    if not match or not (match["hours"] or match["open"]):
        return None
    offset = timedelta(hours=int(match["hours"] or 0), minutes=int(match["minutes"] or 0))
    if offset > _MAX_OFFSET or int(match["minutes"] or 0) >= 60:
        return None
    zone = timezone(offset if match["sign"] in (None, "+") else -offset)
    warning = (
        f"Booker time zone {text!r} names no known zone, so its fixed offset {zone} is used: "
        f"daylight saving time is ignored, and if the location observes it its day windows "
        f"are an hour off in summer. Fix: {_FIX}."
    )
    return ResolvedZone(zone, "fixed_offset", text, warning)
