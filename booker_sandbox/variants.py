"""Contract-legal variants of Booker records: every form the contract allows, same meaning.

The sandbox and the client were written by the same hands, so the sandbox only ever sent one
form of each value; an independent Booker sends others (a legacy ``Date`` on a schedule row
crashed the client). ``vary_record`` rewrites a canonical record into one of the other forms
the contract allows (docs/booker-api.md §4, §6) while keeping every instant, day and number, so a
correct client stores the same rows from either.

Every decision goes through a ``Choose`` (label, options) → option, so the sandbox can draw
from a seeded RNG and property tests from Hypothesis::

    choose = lambda label, options: data.draw(st.sampled_from(options), label=label)

Labels are ``"<kind>:<field>"``; ``VARIANT_KINDS`` lists each kind's options. The first option
of every kind is the canonical form: always choosing it returns the record unchanged, and
Hypothesis, which shrinks towards the first option, reports near-canonical failing records.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timezone, tzinfo
from typing import Any, TypeVar

from booker_assets.load.dates import EASTERN, to_iso
from booker_sandbox.data import stamp

T = TypeVar("T")
Choose = Callable[[str, Sequence[T]], T]

OFFSET = "Offset"  # the ISO twin of a legacy field X is XOffset (docs/booker-api.md §4)
# A date-time pair: both present, legacy only, ISO twin only, or ISO under the legacy name.
MOMENT_FORMS = ("both", "legacy_only", "iso_only", "iso_in_legacy_field")
_ISO_MOMENT_FORMS = ("both", "iso_only", "iso_in_legacy_field")  # when the legacy misreads
NULL_MOMENT_FORMS = ("both_null", "legacy_null_only", "twin_null_only", "both_absent")
LEGACY_FORMS = ("suffix", "no_suffix")  # /Date(ms-0500)/ or /Date(ms)/, same ms
# The same instant with the location's offset (extended or basic) or in UTC (Z, +00:00, +0000).
ISO_OFFSETS = ("local", "local_basic", "utc_z", "utc", "utc_basic")
_LOCAL_OFFSETS = ("local", "local_basic")  # a day's midnight keeps its local reading
FRACTION_DIGITS = (0, 1, 2, 3, 4, 5, 6, 7)  # zeros after the seconds; .NET writes 7
# A date-only value (schedule ``Date``): as is, local midnight with or without offset, legacy
# midnight (Eastern wall clock, as an independent Booker sent it) with or without an ISO twin.
DAY_FORMS = ("date", "iso_local", "naive_midnight", "legacy", "legacy_and_twin")
NULL_FORMS = ("null", "absent")
EMPTY_LIST_FORMS = ("empty", "null", "absent")
NUMBER_FORMS = ("number", "string")
EXTRA_FORMS = ("none", "scalar", "object", "list", "all")
# Inside a nested object (Money, lookups, Address) only a scalar: fields grow there too, but
# every Money getting lists and objects would double a page's bytes for no new information.
_NESTED_EXTRA_FORMS = ("none", "scalar")
KEY_ORDERS = ("as_is", "reversed", "sorted", "interleaved", "rotated")
# Per query (not per page: pages are addressed by PageNumber × PageSize, see ``draw_page_cap``).
PAGE_CAPS: tuple[int | None, ...] = (None, 3, 10, 37, 64, 99)

VARIANT_KINDS: dict[str, tuple[Any, ...]] = {
    "moment": MOMENT_FORMS,
    "null_moment": NULL_MOMENT_FORMS,
    "legacy": LEGACY_FORMS,
    "iso.offset": ISO_OFFSETS,
    "iso.fraction": FRACTION_DIGITS,
    "day": DAY_FORMS,
    "null": NULL_FORMS,
    "empty_list": EMPTY_LIST_FORMS,
    "number": NUMBER_FORMS,
    "extra": EXTRA_FORMS,
    "key_order": KEY_ORDERS,
    "page_cap": PAGE_CAPS,
}
# Envelope keys (docs/booker-api.md §3) stay as they are; on GET /location/{id} they share the
# record's object.
ENVELOPE_KEYS = frozenset({"IsSuccess", "ErrorCode", "ErrorMessage", "ArgumentErrors",
                           "DetailedErrorCode", "DetailedErrorMessage", "TotalResultsCount"})

_LEGACY = re.compile(r"^/Date\(-?\d+([+-]\d{4})?\)/$")
_LEGACY_SUFFIX = re.compile(r"[+-]\d{4}(?=\)/$)")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ----- choosers --------------------------------------------------------------------------


def seeded_chooser(seed: int) -> Choose:
    """A chooser drawing from ``random.Random(seed)``; thread-safe, reproducible per seed."""
    rng, lock = random.Random(seed), threading.Lock()

    def choose(label: str, options: Sequence[T]) -> T:
        with lock:
            return rng.choice(options)

    return choose


def recording(choose: Choose, tally: Counter[str]) -> Choose:
    """``choose``, counting each pick in ``tally`` as ``"<kind>=<option>"``."""

    def counted(label: str, options: Sequence[T]) -> T:
        picked = choose(label, options)
        tally[f"{label.split(':', 1)[0]}={picked}"] += 1
        return picked

    return counted


def draw_page_cap(choose: Choose) -> int | None:
    """A short page size for one query (None: no cap).

    Booker addresses pages by ``PageNumber`` × ``PageSize``, so a page cut short on its own
    would skip the rows it left out (that is the ``lossy_page`` fault). A cap drawn once per
    query and kept for all its pages makes every page short yet tiles the rows exactly.
    """
    return choose("page_cap:PageSize", PAGE_CAPS)


# ----- replies and records -----------------------------------------------------------------


def vary_reply(
    body: dict,
    rows_key: str | None,
    record_body: bool,
    zone_of: Callable[[dict], tzinfo],
    choose: Choose,
) -> dict:
    """``body`` with each record varied; the envelope and the order of rows stay as they are."""
    if record_body:
        envelope = {k: v for k, v in body.items() if k in ENVELOPE_KEYS}
        record = {k: v for k, v in body.items() if k not in ENVELOPE_KEYS}
        return {**envelope, **vary_record(record, zone_of(record), choose)}
    rows = body.get(rows_key) if rows_key else None
    if not isinstance(rows, list):
        return body
    varied = [vary_record(row, zone_of(row), choose) if isinstance(row, dict) else row
              for row in rows]
    return {**body, rows_key: varied}


def vary_record(record: dict, zone: tzinfo, choose: Choose) -> dict:
    """A new record in other contract-legal forms (``zone``: the location's); the input, often
    a shared cache, is never changed."""
    return _vary_object(record, zone, choose, "record", row=True)


def _vary_object(record: dict, zone: tzinfo, choose: Choose, where: str, row: bool) -> dict:
    """A varied copy of one object; ``row``: a record or a list item (not a nested field)."""
    out: dict[str, Any] = {}
    pairs = _moment_pairs(record)
    pair_of = {name: legacy for legacy, twin in pairs.items() for name in (legacy, twin)}
    drawn: dict[str, dict[str, Any]] = {}  # legacy field -> its pair's varied fields
    for key, value in record.items():
        legacy = pair_of.get(key)
        if legacy is None:
            out.update(_vary_value(key, value, zone, choose))
            continue
        if legacy not in drawn:  # a pair is drawn once, at whichever of its fields comes first
            drawn[legacy] = _vary_pair(legacy, record[legacy], record[pairs[legacy]], zone,
                                       choose)
        if key in drawn[legacy]:  # each field keeps its place ("key_order" moves it)
            out[key] = drawn[legacy][key]
    extras = choose("extra:" + where, EXTRA_FORMS if row else _NESTED_EXTRA_FORMS)
    for key, value in _extra_fields(extras).items():
        out.setdefault(key, value)  # never overwrite a real field
    return _reordered(out, choose("key_order:" + where, KEY_ORDERS))


def _moment_pairs(record: dict) -> dict[str, str]:
    """Legacy field → its ISO twin, for pairs shaped as the sandbox writes them (``stamp``)."""
    pairs = {}
    for key, value in record.items():
        twin = record.get(key + OFFSET, ...)
        if twin is ...:
            continue
        if (value is None and twin is None) or (
                isinstance(value, str) and _LEGACY.match(value) and isinstance(twin, str)):
            pairs[key] = key + OFFSET
    return pairs


def _vary_value(key: str, value: Any, zone: tzinfo, choose: Choose) -> dict[str, Any]:
    """``{key: varied value}``, or ``{}`` when the variant leaves the field out."""
    if value is None:
        return {} if choose(f"null:{key}", NULL_FORMS) == "absent" else {key: None}
    if isinstance(value, bool):
        return {key: value}
    if isinstance(value, int | float):
        # Numbers may come quoted ("12.5"); strings never become numbers (Zip, Barcode).
        return {key: str(value) if choose(f"number:{key}", NUMBER_FORMS) == "string" else value}
    if isinstance(value, str) and "Date" in key and _DAY.match(value):
        return _vary_day(key, date.fromisoformat(value), zone, choose)
    if isinstance(value, dict):
        return {key: _vary_object(value, zone, choose, key, row=False)}
    if isinstance(value, list):
        return _vary_list(key, value, zone, choose)
    return {key: value}


def _vary_list(key: str, items: list, zone: tzinfo, choose: Choose) -> dict[str, Any]:
    if not items:
        form = choose(f"empty_list:{key}", EMPTY_LIST_FORMS)
        return {} if form == "absent" else {key: [] if form == "empty" else None}
    return {key: [_vary_object(item, zone, choose, key, row=True) if isinstance(item, dict)
                  else item for item in items]}


# ----- date-times and days -----------------------------------------------------------------


def _vary_pair(
    key: str, legacy: str | None, iso: str | None, zone: tzinfo, choose: Choose
) -> dict[str, Any]:
    twin = key + OFFSET
    if legacy is None or iso is None:
        form = choose(f"null_moment:{key}", NULL_MOMENT_FORMS)
        kept = {"both_null": (key, twin), "legacy_null_only": (key,),
                "twin_null_only": (twin,), "both_absent": ()}[form]
        return dict.fromkeys(kept)
    moment = datetime.fromisoformat(iso)  # the sandbox's own to_iso form
    forms = MOMENT_FORMS if _legacy_reads_as(moment, zone) else _ISO_MOMENT_FORMS
    form = choose(f"moment:{key}", forms)
    out: dict[str, Any] = {}
    if form in ("both", "legacy_only"):
        out[key] = _spell_legacy(key, legacy, choose)
    if form in ("both", "iso_only"):
        out[twin] = _spell_iso(key, moment, ISO_OFFSETS, choose)
    if form == "iso_in_legacy_field":
        out[key] = _spell_iso(key, moment, ISO_OFFSETS, choose)
    return out


def _legacy_reads_as(moment: datetime, zone: tzinfo) -> bool:
    """Whether a client holding only the legacy value finds ``moment`` (docs/booker-api.md §4:
    read the Eastern wall clock, re-anchor it in the location's zone). Not in a DST gap of
    Eastern (the wall clock cannot be written) nor in a gap or overlap of the location's zone
    (it names no instant, or two): e.g. Phoenix at 02:30 on the day Eastern springs forward."""
    wall, instant = moment.replace(tzinfo=None), moment.astimezone(timezone.utc)
    return bool(_instants(wall, EASTERN)) and _instants(wall, zone) == {instant}


def _instants(wall: datetime, zone: tzinfo) -> set[datetime]:
    """The instants a wall-clock reading names in ``zone``: none in a gap, two in an overlap."""
    found = set()
    for fold in (0, 1):
        moment = wall.replace(tzinfo=zone, fold=fold)
        if moment.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == wall:
            found.add(moment.astimezone(timezone.utc))
    return found


def _spell_legacy(key: str, legacy: str, choose: Choose) -> str:
    if choose(f"legacy:{key}", LEGACY_FORMS) == "suffix":
        return legacy
    return _LEGACY_SUFFIX.sub("", legacy)  # the same ms: the suffix is only informative


def _spell_iso(key: str, moment: datetime, offsets: Sequence[str], choose: Choose) -> str:
    """``moment`` (whole seconds) in ISO-8601: local or UTC, ``±hh:mm``/``±hhmm``/``Z``, and
    zero fractional seconds of 1 to 7 digits. Always with ``T``: ISO allows no other."""
    offset = choose(f"iso.offset:{key}", offsets)
    digits = choose(f"iso.fraction:{key}", FRACTION_DIGITS)
    text = to_iso(moment.astimezone(timezone.utc) if offset.startswith("utc") else moment)
    stem, suffix = text[:19], text[19:]  # "YYYY-MM-DDTHH:MM:SS", "±hh:mm"
    if offset == "utc_z":
        suffix = "Z"
    elif offset.endswith("_basic"):
        suffix = suffix.replace(":", "")
    return stem + ("." + "0" * digits if digits else "") + suffix


def _vary_day(key: str, day: date, zone: tzinfo, choose: Choose) -> dict[str, Any]:
    form = choose(f"day:{key}", DAY_FORMS)
    midnight = datetime.combine(day, time.min, tzinfo=zone)
    if form == "date":
        return {key: day.isoformat()}
    if form == "naive_midnight":
        return {key: f"{day.isoformat()}T00:00:00"}
    if form == "iso_local":
        return {key: _spell_iso(key, midnight, _LOCAL_OFFSETS, choose)}
    out = {key: _spell_legacy(key, stamp(key, midnight)[key], choose)}
    if form == "legacy_and_twin":
        out[key + OFFSET] = _spell_iso(key, midnight, _LOCAL_OFFSETS, choose)
    return out


# ----- unknown fields and key order --------------------------------------------------------


def _extra_fields(form: str) -> dict[str, Any]:
    """Fields a newer Booker might add (docs/booker-api.md §6: keep what you do not know). The
    ``2099`` suffix keeps them clear of contract names; fresh objects each time, as callers may
    edit."""
    fields = {
        "scalar": {"ReferralCode2099": "SPRING-2099"},
        "object": {"Preferences2099": {"Channel": "SMS", "OptIn": True, "Priority": 2}},
        "list": {"Tags2099": ["vip", "early-bird"],
                 "Badges2099": [{"Code": "GOLD", "Level": 3}]},
    }
    if form == "all":
        return {k: v for group in fields.values() for k, v in group.items()}
    return fields.get(form, {})


def _reordered(record: dict, order: str) -> dict:
    keys = list(record)
    half = len(keys) // 2
    ordered = {"as_is": keys, "reversed": keys[::-1], "sorted": sorted(keys),
               "interleaved": keys[1::2] + keys[::2], "rotated": keys[half:] + keys[:half]}[order]
    return {key: record[key] for key in ordered}
