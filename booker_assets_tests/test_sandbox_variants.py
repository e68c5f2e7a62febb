"""Sandbox variants: every form is one the contract allows and means what the canonical means.

The values are read back with this file's own small readers of booker-api.md §4 (ISO-8601 with
``Z``/``±hh:mm``/``±hhmm`` and up to 7 fractional digits; legacy ``/Date(ms±hhmm)/`` as an
Eastern wall clock re-anchored in the location's zone), never with the client's parsers: the
point is to check our reading of the contract independently of the code under test.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from booker_assets.load.dates import to_legacy
from booker_assets_tests.test_sandbox import auth, brand_token, find, location_token, read_all
from booker_sandbox import BookerSandbox, SandboxSettings
from booker_sandbox.__main__ import parse_args, settings_from
from booker_sandbox.data import SandboxDataset, stamp
from booker_sandbox.variants import (
    ENVELOPE_KEYS,
    VARIANT_KINDS,
    Choose,
    draw_page_cap,
    recording,
    seeded_chooser,
    vary_record,
    vary_reply,
)

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
ISO = re.compile(r"^(?P<stem>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,7}))?"
                 r"(?P<offset>Z|[+-]\d{2}:\d{2}|[+-]\d{4})$")
LEGACY = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<suffix>[+-]\d{4})?\)/$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
INTEGER, DECIMAL = re.compile(r"^-?\d+$"), re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
ORDERS = "/v4.1/merchant/orders"
# The variant forms a reader can tell apart in the values themselves.
EXPECTED_FORMS = {
    *(f"moment:{f}" for f in ("both", "legacy_only", "iso_only", "iso_in_legacy_field")),
    *(f"null_moment:{f}" for f in ("both_null", "legacy_null_only", "twin_null_only",
                                   "both_absent")),
    "legacy:suffix", "legacy:no_suffix",
    *(f"iso:{f}" for f in ("local", "local_basic", "utc_z", "utc", "utc_basic")),
    *(f"fraction:{n}" for n in range(8)),
    *(f"day:{f}" for f in ("date", "iso_local", "naive_midnight", "legacy", "legacy_and_twin")),
    "null:null", "null:absent", "empty_list:empty", "empty_list:null", "empty_list:absent",
    "number:number", "number:string", "extra:scalar", "extra:object", "extra:list",
    "key_order:same", "key_order:changed",
}


# ----- this file's own reading of the contract ----------------------------------------------


def read_iso(text: str, seen: set[str]) -> datetime:
    """ISO-8601 with an offset, as §4 writes it (``T``, never a space)."""
    match = ISO.match(text)
    assert match, f"not an ISO-8601 date-time with offset: {text!r}"
    fraction = match["fraction"] or ""
    ticks = int(fraction.ljust(7, "0") or 0)  # .NET ticks of 100 ns
    assert ticks % 10 == 0, f"{text!r} is not a whole microsecond"
    offset = match["offset"]
    if offset == "Z":
        zone: tzinfo = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        zone = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    utc = zone.utcoffset(None) == timedelta(0)
    spelling = "_z" if offset == "Z" else "_basic" if ":" not in offset else ""
    seen.update({f"iso:{'utc' if utc else 'local'}{spelling}", f"fraction:{len(fraction)}"})
    stem = datetime.strptime(match["stem"], "%Y-%m-%dT%H:%M:%S")
    return stem.replace(microsecond=ticks // 10, tzinfo=zone)


def read_legacy(text: str, seen: set[str]) -> tuple[int, datetime]:
    """``/Date(ms±hhmm)/``: its ms and the Eastern wall clock they show; a suffix, when there,
    is "Eastern's offset of that date" (§4): on a DST day either of its two offsets."""
    match = LEGACY.match(text)
    assert match, f"not a legacy date: {text!r}"
    ms = int(match["ms"])
    eastern = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
               ).astimezone(NEW_YORK)
    if match["suffix"]:
        day = eastern.date()
        offsets = {datetime.combine(day, at, tzinfo=NEW_YORK).strftime("%z")
                   for at in (time.min, time.max)}
        assert match["suffix"] in offsets, text
    seen.add("legacy:suffix" if match["suffix"] else "legacy:no_suffix")
    return ms, eastern.replace(tzinfo=None)


def check_record(want: dict, got: dict, zone: tzinfo, seen: set[str]) -> None:
    """``got`` holds what ``want`` holds, in forms §4/§6 allow; ``seen`` collects the forms."""
    pairs = {key for key in want if key + "Offset" in want}
    days = {key for key, value in want.items() if is_day(key, value)}
    for key, value in want.items():
        if key in pairs:
            check_moment(key, value, want[key + "Offset"], got, zone, seen)
        elif key[:-6] in pairs and key.endswith("Offset"):
            continue  # checked with its legacy field
        elif key in days:
            check_day(key, date.fromisoformat(value), got, zone, seen)
        elif value is None or value == []:
            assert got.get(key) == value or got.get(key) is None, key
            kind = "null" if value is None else "empty_list"
            form = "absent" if key not in got else "null" if got[key] is None else "empty"
            seen.add(f"{kind}:{form}")
        else:
            assert key in got, f"{key} is missing"
            check_value(key, value, got[key], zone, seen)
    known = set(want) | {key + "Offset" for key in days}
    for key in set(got) - known:  # unknown fields: never named like a contract field or date
        assert not key.endswith("Offset") and "Date" not in key, key
        kind = {str: "scalar", dict: "object", list: "list"}[type(got[key])]
        seen.add(f"extra:{kind}")
    common = [key for key in got if key in want]
    seen.add("key_order:same" if common == [k for k in want if k in got] else "key_order:changed")


def check_value(key: str, want: Any, got: Any, zone: tzinfo, seen: set[str]) -> None:
    if isinstance(want, bool):
        assert got is want, key
    elif isinstance(want, int | float):
        if isinstance(got, str):  # a quoted number: the same number, never a string's text
            assert (INTEGER if isinstance(want, int) else DECIMAL).match(got), (key, got)
            assert (int(got) if isinstance(want, int) else float(got)) == want, key
            seen.add("number:string")
        else:
            assert type(got) is type(want) and got == want, key
            seen.add("number:number")
    elif isinstance(want, dict):
        assert isinstance(got, dict), key
        check_record(want, got, zone, seen)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), key
        for one, other in zip(want, got, strict=True):
            if isinstance(one, dict):
                check_record(one, other, zone, seen)
            else:
                assert type(other) is type(one) and other == one, key
    else:
        assert type(got) is type(want) and got == want, key


def check_moment(key: str, legacy: str | None, iso: str | None, got: dict, zone: tzinfo,
                 seen: set[str]) -> None:
    twin = key + "Offset"
    if legacy is None:
        assert got.get(key) is None and got.get(twin) is None, key
        seen.add("null_moment:" + {(True, True): "both_null", (True, False): "legacy_null_only",
                                   (False, True): "twin_null_only",
                                   (False, False): "both_absent"}[(key in got, twin in got)])
        return
    assert iso is not None
    instant, canonical_ms = read_iso(iso, set()), read_legacy(legacy, set())[0]
    held, held_twin = got.get(key), got.get(twin)
    assert held is not None or held_twin is not None, f"{key} lost its value"
    assert (key in got) == (held is not None) and (twin in got) == (held_twin is not None), key
    if held_twin is not None:
        assert read_iso(held_twin, seen) == instant, key
    if held is not None and not LEGACY.match(held):
        assert held_twin is None and read_iso(held, seen) == instant, key
        seen.add("moment:iso_in_legacy_field")
    elif held is not None:
        ms, wall = read_legacy(held, seen)
        assert ms == canonical_ms, key
        if held_twin is None:  # the legacy alone must name the instant (§4: re-anchor it),
            # and only it: a wall clock in a DST overlap or gap names two instants or none.
            named = {wall.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc)
                     for fold in (0, 1)}
            assert named == {instant.astimezone(timezone.utc)}, (key, held, iso)
        seen.add("moment:both" if held_twin is not None else "moment:legacy_only")
    else:
        seen.add("moment:iso_only")


def check_day(key: str, day: date, got: dict, zone: tzinfo, seen: set[str]) -> None:
    value, twin = got.get(key), got.get(key + "Offset")
    assert isinstance(value, str), f"{key} lost its value"
    assert twin is None or LEGACY.match(value), "only a legacy day has a twin"
    if value == day.isoformat():
        seen.add("day:date")
    elif value == f"{day.isoformat()}T00:00:00":
        seen.add("day:naive_midnight")
    elif LEGACY.match(value):
        assert read_legacy(value, seen)[1] == datetime.combine(day, time.min), value
        if twin is not None:
            assert_local_midnight(twin, day, zone, seen)
        seen.add("day:legacy_and_twin" if twin is not None else "day:legacy")
    else:
        assert_local_midnight(value, day, zone, seen)
        seen.add("day:iso_local")


def assert_local_midnight(text: str, day: date, zone: tzinfo, seen: set[str]) -> None:
    """Midnight of ``day`` written with the location's offset: its own date still reads."""
    moment = read_iso(text, seen)
    assert moment.replace(tzinfo=None) == datetime.combine(day, time.min), text
    assert moment.utcoffset() == datetime.combine(day, time.min, tzinfo=zone).utcoffset(), text


def is_day(key: str, value: Any) -> bool:
    return isinstance(value, str) and "Date" in key and bool(DAY.match(value))


# ----- canonical records ------------------------------------------------------------------


def canonical_records() -> list[tuple[dict, tzinfo]]:
    """A few hundred records of every report, around both DST changes, at all four zones."""
    data = SandboxDataset(7, 4, date(2025, 1, 1), date(2025, 12, 31), lambda: NOW)
    records: list[tuple[dict, tzinfo]] = [(r, data.zone(r["ID"])) for r in data.locations()]
    for location_id in data.location_ids:
        zone = data.zone(location_id)
        rows = [*data.employees(location_id), *data.memberships(location_id, True),
                *data.products(location_id)[:10], *data.rooms(location_id),
                *data.treatments(location_id)[:10],
                *data.location_schedule(location_id, date(2025, 3, 7), date(2025, 3, 10), False),
                *data.location_schedule(location_id, None, None, True),
                *data.employee_schedule(location_id, location_id * 1000 + 1, date(2025, 11, 1),
                                        date(2025, 11, 3), False)]
        for day in (date(2025, 3, 9), date(2025, 11, 2), date(2025, 6, 12)):
            rows += data.orders(location_id, day)[:12] + data.customers(location_id, day)[:6]
        for customer in data.customers(location_id, date(2025, 5, 5)):
            rows += data.customer_memberships(location_id, customer["CustomerID"], True)
            rows += data.progress_notes(location_id, customer["CustomerID"])
        records += [(row, zone) for row in rows]
    return records


RECORDS = canonical_records()


@pytest.fixture(scope="module")
def varied() -> tuple[list[tuple[dict, dict, tzinfo]], Counter[str]]:
    """Each canonical record varied under 3 seeds, and the chooser's picks."""
    tally: Counter[str] = Counter()
    out = []
    for n, (record, zone) in enumerate(RECORDS):
        for seed in range(3):
            choose = recording(seeded_chooser(n * 3 + seed), tally)
            out.append((record, vary_record(record, zone, choose), zone))
    return out, tally


# ----- the pure functions -----------------------------------------------------------------


def test_the_first_option_is_always_the_canonical_form() -> None:
    """So Hypothesis, which shrinks towards the first option, shrinks to canonical records."""
    first: Choose = lambda label, options: options[0]  # noqa: E731
    for record, zone in RECORDS:
        assert json.dumps(vary_record(record, zone, first)) == json.dumps(record)
    assert draw_page_cap(first) is None


def test_every_variant_is_legal_and_means_the_canonical(varied: tuple) -> None:
    seen: set[str] = set()
    for want, got, zone in varied[0]:
        check_record(want, got, zone, seen)
    assert len(varied[0]) >= 600


def test_the_input_record_is_never_changed() -> None:
    for record, zone in RECORDS[::7]:
        before = json.dumps(record)
        for seed in range(5):
            vary_record(record, zone, seeded_chooser(seed))
        assert json.dumps(record) == before


def test_each_variant_form_occurs(varied: tuple) -> None:
    """None is dead: every form shows in the values, and the chooser offered every option."""
    seen: set[str] = set()
    for want, got, zone in varied[0]:
        check_record(want, got, zone, seen)
    assert EXPECTED_FORMS - seen == set()
    tally = varied[1]
    for n in range(100):
        draw_page_cap(recording(seeded_chooser(n), tally))
    offered = {f"{kind}={option}" for kind, options in VARIANT_KINDS.items() for option in options}
    assert offered - set(tally) == set()


def test_labels_name_a_kind_and_offer_its_options_or_fewer() -> None:
    def spy(label: str, options: Any) -> Any:
        kind, _, field = label.partition(":")
        assert field and set(options) <= set(VARIANT_KINDS[kind]), label
        return options[-1]

    for record, zone in RECORDS[::5]:
        vary_record(record, zone, spy)


def _lone_legacy_forms(moment: datetime) -> set[str]:
    """The moment forms offered for a DateCreated at ``moment`` (its zone: the location's)."""
    offered: set[str] = set()

    def spy(label: str, options: Any) -> Any:
        if label.startswith("moment:"):
            offered.update(options)
        return options[0]

    assert moment.tzinfo is not None
    vary_record(stamp("DateCreated", moment), moment.tzinfo, spy)
    return offered


@pytest.mark.parametrize("zone, wall", [
    ("America/Phoenix", datetime(2025, 3, 9, 2, 30)),  # Eastern skips 02:00-03:00
    ("America/Chicago", datetime(2025, 3, 9, 2, 30)),  # no such time in Chicago either
    ("America/Chicago", datetime(2025, 11, 2, 1, 30)),  # twice in Chicago
])
def test_no_lone_legacy_where_it_would_misread(zone: str, wall: datetime) -> None:
    """§4's reading of a lone legacy value (Eastern wall clock, re-anchored) cannot find these
    instants, so the variants always keep the ISO value there."""
    assert "legacy_only" not in _lone_legacy_forms(wall.replace(tzinfo=ZoneInfo(zone)))
    assert "legacy_only" in _lone_legacy_forms(datetime(2025, 3, 9, 4, 30,
                                                        tzinfo=ZoneInfo(zone)))


def test_a_lone_legacy_that_names_the_instant_is_offered() -> None:
    """Phoenix at 01:30 when Eastern falls back: Eastern shows 01:30 twice, both read 01:30."""
    moment = datetime(2025, 11, 2, 1, 30, tzinfo=ZoneInfo("America/Phoenix"))
    assert "legacy_only" in _lone_legacy_forms(moment)
    legacy = to_legacy(moment)
    assert read_legacy(legacy, set())[1].replace(tzinfo=moment.tzinfo) == moment


def test_vary_reply_keeps_the_envelope_and_the_order_of_rows() -> None:
    data = SandboxDataset(7, 4, date(2025, 1, 1), date(2025, 12, 31), lambda: NOW)
    rows = data.orders(1003, date(2025, 4, 2))
    envelope = {"IsSuccess": True, "ErrorCode": 0, "ErrorMessage": None,
                "ArgumentErrors": None, "TotalResultsCount": 99}
    for seed in range(20):
        body = vary_reply({**envelope, "Results": rows}, "Results", False,
                          lambda record: data.zone(1003), seeded_chooser(seed))
        assert {k: body[k] for k in envelope} == envelope
        assert [int(r["ID"]) for r in body["Results"]] == [r["ID"] for r in rows]
        single = vary_reply({**envelope, **data.location(1003)}, None, True,
                            lambda record: data.zone(record["ID"]), seeded_chooser(seed))
        assert list(single)[:5] == list(envelope) and {k: single[k] for k in envelope} == envelope
        check_record(data.location(1003), {k: v for k, v in single.items()
                                           if k not in ENVELOPE_KEYS}, data.zone(1003), set())
    assert vary_reply({"Results": 3}, "Results", False, lambda r: timezone.utc,
                      seeded_chooser(1)) == {"Results": 3}  # a wrong shape stays wrong


def test_seeded_chooser_repeats_itself_per_seed() -> None:
    picks = [[seeded_chooser(seed)("x:y", range(1000)) for _ in range(3)] for seed in (1, 1, 2)]
    assert picks[0] == picks[1] != picks[2]


# ----- the sandbox over HTTP --------------------------------------------------------------


@pytest.fixture(scope="module")
def variant_sb() -> Iterator[BookerSandbox]:
    with BookerSandbox(SandboxSettings(now=NOW, variants=11)) as sandbox:
        yield sandbox


def window(day: date, days: int, offset: str) -> dict[str, str]:
    return {"FromDateCreatedOffset": f"{day}T00:00:00{offset}",
            "ToDateCreatedOffset": f"{day + timedelta(days=days)}T00:00:00{offset}"}


def replies(sandbox: BookerSandbox, order: slice = slice(None)) -> list[bytes]:
    """Raw reply bytes of a fixed list of calls (of every reply shape), sent in ``order``."""
    brand, local = brand_token(sandbox), location_token(sandbox, 1002)
    base = f"{sandbox.url}/v4.1/merchant"
    modified = {"FromDateLastModifiedOffset": "2025-03-09T00:00:00-06:00",
                "ToDateLastModifiedOffset": "2025-03-10T00:00:00-05:00"}
    calls = [
        ("POST", f"{base}/locations", brand, {"PageNumber": 1, "PageSize": 100}),
        ("GET", f"{base}/location/1003", brand, None),
        ("GET", f"{base}/location/1002/schedule", local,
         {"fromDate": "2025-03-07", "toDate": "2025-03-10"}),
        ("POST", f"{base}/customers", local, {"LocationID": 1002, "PageNumber": 1, **modified}),
        *(("POST", f"{base}/orders", local,
           {"LocationID": 1002, "PageNumber": n, "PageSize": 100,
            **window(date(2025, 3, 8), 4, "-06:00")}) for n in (1, 2, 3)),
    ]
    out: dict[int, bytes] = {}
    for n, (method, url, token, args) in list(enumerate(calls))[order]:
        if method == "GET":
            reply = requests.get(url, params=args, headers=auth(token), timeout=10)
        else:
            reply = requests.post(url, json={"UsePaging": True, **args}, headers=auth(token),
                                  timeout=10)
        assert reply.status_code == 200, reply.text
        out[n] = reply.content
    return [out[n] for n in sorted(out)]


def test_without_variants_replies_are_byte_identical_to_the_canonical() -> None:
    with BookerSandbox(SandboxSettings(now=NOW)) as plain:
        sent = replies(plain)
        data = plain.dataset
    location = {"IsSuccess": True, "ErrorCode": 0, "ErrorMessage": None, "ArgumentErrors": None,
                **data.location(1003)}
    assert sent[1] == json.dumps(location, ensure_ascii=False).encode()
    start, end = (datetime.fromisoformat(v) for v in window(date(2025, 3, 8), 4, "-06:00")
                  .values())
    orders = data.orders_between(1002, start, end)
    for page, body in enumerate(sent[4:]):
        expected = {"IsSuccess": True, "ErrorCode": 0, "ErrorMessage": None,
                    "ArgumentErrors": None, "TotalResultsCount": len(orders),
                    "Results": orders[page * 100:(page + 1) * 100]}
        assert body == json.dumps(expected, ensure_ascii=False).encode()
    assert plain.stats.variants == Counter()


def test_the_same_seed_serves_the_same_bytes_in_any_order(variant_sb: BookerSandbox) -> None:
    forward = replies(variant_sb)
    with BookerSandbox(SandboxSettings(now=NOW, variants=11)) as twin:
        assert replies(twin, slice(None, None, -1)) == forward
    with BookerSandbox(SandboxSettings(now=NOW, variants=12)) as other:
        assert replies(other) != forward
    with BookerSandbox(SandboxSettings(now=NOW)) as plain:
        canonical = replies(plain)
    assert all(ours != theirs for ours, theirs in zip(forward, canonical, strict=True)
               if b'"Results": []' not in theirs)  # an empty page has nothing to vary


def test_a_variant_sandbox_pages_short_yet_serves_every_row(variant_sb: BookerSandbox) -> None:
    """Each query's pages share one drawn cap: short pages, right totals, no row lost."""
    seen: set[str] = set()
    short = 0
    for location_id, offset in ((1001, "-05:00"), (1002, "-06:00"), (1003, "-07:00")):
        token, zone = location_token(variant_sb, location_id), variant_sb.dataset.zone(location_id)
        for day in (date(2025, 3, 3), date(2025, 3, 10), date(2025, 6, 2), date(2025, 11, 1)):
            body = {"LocationID": location_id, **window(day, 3, offset)}
            want = variant_sb.dataset.orders_between(
                location_id, *(datetime.fromisoformat(v) for v in window(day, 3, offset).values()))
            first = find(variant_sb, ORDERS, token, PageNumber=1, PageSize=100, **body).json()
            assert first["TotalResultsCount"] == len(want) > 0
            short += len(first["Results"]) < min(100, len(want))
            got = read_all(variant_sb, ORDERS, token, **body)
            assert [int(r["ID"]) for r in got] == [r["ID"] for r in want]
            for one, other in zip(want, got, strict=True):
                check_record(one, other, zone, seen)
    assert short >= 3
    stats = variant_sb.stats.variants
    assert stats["replies"] > 12 and any(k.startswith("page_cap=") for k in stats)
    assert {"moment:legacy_only", "number:string", "key_order:changed"} <= seen


def test_cli_takes_a_variants_seed() -> None:
    assert settings_from(parse_args(["--variants", "5"])).variants == 5
    assert settings_from(parse_args([])).variants is None
