"""Booker's value shapes as the sandbox writes them: money and the twice-written date-time."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from booker_assets.load.dates import to_iso, to_legacy


@lru_cache(maxsize=1 << 16)
def money(cents: int) -> dict:
    """Booker money ``{Amount, CurrencyCode}`` from integer cents (no float drift); read-only."""
    return {"Amount": round(cents / 100, 2), "CurrencyCode": "USD"}


def cents(value: dict) -> int:
    return round(value["Amount"] * 100)


def stamp(field: str, moment: datetime | None) -> dict:
    """A date-time field twice: legacy ``/Date(ms-0500)/`` and its ISO ``...Offset`` twin."""
    if moment is None:
        return {field: None, f"{field}Offset": None}
    legacy, iso = _stamp_texts(moment.replace(tzinfo=None), moment.tzinfo)
    return {field: legacy, f"{field}Offset": iso}


@lru_cache(maxsize=1 << 17)
def _stamp_texts(wall: datetime, zone: ZoneInfo) -> tuple[str, str]:
    # Keyed on wall clock + zone: aware datetimes hash by instant, which would mix zones.
    moment = wall.replace(tzinfo=zone)
    return to_legacy(moment), to_iso(moment)
