"""Appointments: the sandbox's book is consistent with its world, and the daily loads carry a
status change and the book ahead into the warehouse (two daily loads of the shipped sensor).

Location 1002 is Chicago (CDT, UTC-5, in June). On 2025-06-28 it has no-shows, which the
front desk marks the next morning: the first daily load (2025-06-29 03:00 local) sees them
booked, the next one (a day later) re-reads the day over its lookback and sees the no-show.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from booker_assets.defs.partitions import add_locations
from booker_assets.defs.storage import connect_locked
from booker_assets.load.dates import day_window, local_day
from booker_assets_tests.conftest import make_settings
from booker_assets_tests.test_automation import Ticker
from booker_sandbox import BookerSandbox, SandboxSettings
from booker_sandbox.data import SandboxDataset

UTC = timezone.utc
LOCATION = 1002
DAY = date(2025, 6, 28)
FIRST_LOAD = datetime(2025, 6, 29, 8, tzinfo=UTC)  # 03:00 in Chicago: DAY ended 3 h ago
NEXT_LOAD = FIRST_LOAD + timedelta(days=1)
LOADED = ("appointments", "appointment_treatments", "appointment_book", "orders")


def served(dataset: SandboxDataset, day: date, location: int = LOCATION) -> list[dict]:
    return dataset.appointments_between(location, *day_window(day, dataset.zone(location)))


# ---------------------------------------------------------------- the sandbox's book


@pytest.fixture(scope="module")
def dataset() -> SandboxDataset:
    now = datetime(2025, 6, 30, 12, tzinfo=UTC)
    return SandboxDataset(7, 4, date(2025, 6, 1), None, lambda: now)


def test_appointments_keep_to_hours_rooms_and_orders(dataset: SandboxDataset):
    days = [date(2025, 6, 2) + timedelta(days=n) for n in range(27)]
    for location in dataset.location_ids:
        rooms = {r["ID"]: set(r["Treatments"]) for r in dataset.rooms(location)}
        zone = dataset.zone(location)
        for day in days:
            orders = {o["ID"]: o for o in dataset.orders(location, day)}
            hours = dataset.location_schedule(location, day, day, defaults=False)[0]
            for appointment in served(dataset, day, location):
                for line in appointment["AppointmentTreatments"]:
                    start = datetime.fromisoformat(line["StartDateTimeOffset"])
                    end = datetime.fromisoformat(line["EndDateTimeOffset"])
                    assert local_day(start, zone) == day
                    assert hours["StartTime"] <= f"{start:%H:%M:%S}"
                    shift = dataset.shift(location, line["EmployeeID"], day)
                    assert shift, (appointment["ID"], "employee off that day")
                    if appointment["OrderID"] is None:  # not from a checkout: wholly inside
                        seconds = start.hour * 3600 + start.minute * 60
                        assert shift[0] <= seconds and (end - start).seconds + seconds <= shift[1]
                    if line["RoomID"] is not None:
                        assert line["TreatmentID"] in rooms[line["RoomID"]]
                if appointment["Status"]["Name"] == "Completed":
                    items = orders[appointment["OrderID"]]["Items"]
                    services = [i for i in items if i["IsService"]]
                    assert {i["AppointmentID"] for i in services} == {appointment["ID"]}
                    assert [i["EmployeeID"] for i in services] == [
                        line["EmployeeID"] for line in appointment["AppointmentTreatments"]]


def test_the_book_holds_every_kind_of_appointment(dataset: SandboxDataset):
    past = [a for day in (date(2025, 6, 26), date(2025, 6, 27)) for loc in (1001, 1002)
            for a in served(dataset, day, loc)]
    statuses = Counter(a["Status"]["Name"] for a in past)
    assert statuses["Completed"] > 20 and statuses["Cancelled"] and statuses["No Show"]
    assert any(a["IsWebBooking"] for a in past)
    assert any(a["IsPreBookedAtPastCheckout"] for a in past)
    assert any(len(a["AppointmentTreatments"]) > 1 for a in past)
    zone = dataset.zone(1001)
    ahead = dataset.appointments_between(1001, day_window(date(2025, 7, 1), zone)[0],
                                         day_window(date(2025, 7, 31), zone)[0])
    weeks = Counter((datetime.fromisoformat(a["StartDateTimeOffset"]).date()
                     - date(2025, 7, 1)).days // 7 for a in ahead)
    assert weeks[3] > 0 and weeks[0] > weeks[3]  # booked weeks ahead, fuller as a day nears
    assert {a["Status"]["Name"] for a in ahead} <= {"Booked", "Cancelled"}


# ---------------------------------------------------------------- two daily loads


@pytest.fixture(scope="module")
def two_daily_loads(tmp_path_factory):
    """The shipped daily sensor ticks at FIRST_LOAD and NEXT_LOAD; each run it requests is
    executed for the appointment and order assets. Yields what the warehouse held and what
    the sandbox served after each load."""
    tmp_path = tmp_path_factory.mktemp("appointments")
    settings = make_settings(tmp_path, (str(LOCATION),), start_date=date(2025, 6, 1))
    sandbox_settings = SandboxSettings(start_date=date(2025, 6, 1), end_date=None,
                                       now=FIRST_LOAD, location_count=2)
    with BookerSandbox(sandbox_settings) as sandbox, dg.instance_for_test() as instance:
        add_locations(instance, [str(LOCATION)])
        ticker = Ticker(sandbox, settings, FIRST_LOAD, instance)
        after = []
        for now in (FIRST_LOAD, NEXT_LOAD):
            sandbox.settings = replace(sandbox.settings, now=now)  # Booker, a day later
            results = [_execute(ticker.defs, instance, request)
                       for request in ticker.tick(now)]
            after.append({"day": _day(settings.duckdb_path), "served": served(
                sandbox.dataset, DAY), "results": [r for r in results if r]})
        yield settings.duckdb_path, after


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance,
             request: dg.RunRequest) -> dg.ExecuteInProcessResult | None:
    selection = [k for k in request.asset_selection or [] if k.path[-1] in LOADED]
    if not selection:
        return None
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                          resources=defs.resources, instance=instance, tags=request.tags)


def _day(path: str) -> dict[int, tuple[str, bool]]:
    with connect_locked(path, read_only=True) as conn:
        rows = conn.execute("SELECT id, status_name, is_no_show FROM booker.appointments"
                            " WHERE report_date = ? AND location_id = ?",
                            [DAY, LOCATION]).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_the_next_daily_load_carries_a_status_change(two_daily_loads):
    _, (first, after) = two_daily_loads
    for load in (first, after):  # the warehouse holds the day as Booker served it then
        assert load["day"] == {a["ID"]: (a["Status"]["Name"], a["IsNoShow"])
                               for a in load["served"]}
    checks = [c for load in (first, after) for r in load["results"]
              for c in r.get_asset_check_evaluations()
              if c.asset_key.path[-1].startswith("appointment")]  # orders' need more tables
    assert {c.check_name for c in checks} >= {"appointment_exists", "order_exists"}
    assert all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    changed = {i: (first["day"][i], after["day"][i]) for i in first["day"]
               if first["day"][i] != after["day"][i]}
    assert changed and set(changed.values()) == {(("Booked", False), ("No Show", True))}
    events = [e for r in after["results"] for e in r.get_asset_materialization_events()
              if e.asset_key.path[-1] == "appointments"
              and e.partition == f"{DAY}|{LOCATION}"]
    metadata = events[0].materialization.metadata
    assert metadata["booker/share_no_show"].value == round(
        sum(a["IsNoShow"] for a in after["served"]) / len(after["served"]), 4) > 0


def test_the_book_ahead_keeps_each_days_observation(two_daily_loads):
    path, _ = two_daily_loads
    with connect_locked(path, read_only=True) as conn:
        book = conn.execute("SELECT report_date, start_day, id, status_name"
                            " FROM booker.appointment_book").fetchall()
    seen = {d: {(start, i) for day, start, i, _ in book if day == d}
            for d in (DAY, DAY + timedelta(days=1))}
    assert {day for day, *_ in book} == set(seen)  # one observation per daily load
    for day, rows in seen.items():
        assert {start for start, _ in rows} <= {day + timedelta(days=n) for n in range(1, 31)}
    # an appointment stays in the book once booked (cancelled ones are flagged); new ones
    # are booked between the two observations
    overlap = {row for row in seen[DAY] if row[0] > DAY + timedelta(days=1)}
    assert overlap < seen[DAY + timedelta(days=1)]
