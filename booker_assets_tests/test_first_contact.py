"""What broke against an independently written Booker, each case through the shipped
definitions and a sandbox whose replies a test rewrites: legal forms load, unreadable records
become rejects while the rest of the day loads, and a failure no retry can fix fails at once.
"""

from __future__ import annotations

import copy
import json
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time

import dagster as dg
import duckdb
import pytest

from booker_assets.defs.storage import connect_locked, qualified
from booker_assets.load.dates import EASTERN, to_iso, to_legacy
from booker_assets_tests.conftest import (
    SANDBOX_SETTINGS,
    load_range,
    make_defs,
    make_settings,
    table_rows,
)
from booker_sandbox import BookerSandbox
from booker_sandbox.api import Reply

DAY = date(2025, 3, 5)
ORDERS = ["booker/orders", "booker/orders_items", "booker/orders_refunds"]
Rewrite = Callable[[str, dict], dict]  # (request path, reply body) -> reply body
INSTANCE = dg.DagsterInstance.ephemeral()  # its event log has the events' times


@contextmanager
def rewritten(rewrite: Rewrite) -> Iterator[BookerSandbox]:
    """A sandbox whose good replies pass through ``rewrite`` (on a copy: records are shared)."""
    with BookerSandbox(SANDBOX_SETTINGS) as sb:
        handle = sb.api.handle

        def handle_rewritten(request, route, params) -> Reply:
            reply = handle(request, route, params)
            if reply.status == 200 and isinstance(reply.body, dict):
                reply.body = rewrite(request.path, copy.deepcopy(reply.body))
            return reply

        sb.api.handle = handle_rewritten
        yield sb


def load(sb: BookerSandbox, tmp_path, selection: list[str], days=(DAY, DAY), locations=("1001",),
         **run) -> tuple[dg.ExecuteInProcessResult, str]:
    settings = make_settings(tmp_path, locations)
    result = load_range(make_defs(sb, settings), list(locations), *days,
                        selection=selection, instance=INSTANCE, **run)
    return result, settings.duckdb_path


def rows(database: str, sql: str) -> list[tuple]:
    with connect_locked(database, read_only=True) as conn:
        return conn.execute(sql.replace("booker.", qualified(conn, schema="booker") + ".")
                            ).fetchall()


def on_path(suffix: str, change: Callable[[dict], dict]) -> Rewrite:
    return lambda path, body: change(body) if path.endswith(suffix) else body


def first_row(key: str, **fields) -> Callable[[dict], dict]:
    def change(body: dict) -> dict:
        if body.get(key):
            body[key][0].update(fields)
        return body
    return change


def rows_of(key: str, days: tuple[date, ...], **fields) -> Callable[[dict], dict]:
    """Change the rows of ``days`` (a schedule is asked for its whole month)."""
    def change(body: dict) -> dict:
        for row in body.get(key) or []:
            if str(row.get("Date", ""))[:10] in {d.isoformat() for d in days}:
                row.update(fields)
        return body
    return change


def test_a_legacy_schedule_date_with_its_twin_loads(tmp_path):
    """The independent server wrote ``Date: "/Date(...)/"`` beside ``DateOffset``: the day
    is the one they name, not a crash of the shared step."""
    def legacy(body: dict) -> dict:
        for row in body.get("EmployeeDaySchedules") or []:
            midnight = datetime.combine(date.fromisoformat(row["Date"]), time.min, EASTERN)
            row["Date"], row["DateOffset"] = to_legacy(midnight), to_iso(midnight)
        return body

    with rewritten(on_path("/schedule", legacy)) as sb:
        result, db = load(sb, tmp_path, ["booker/employee_schedules"])
    assert result.success
    assert rows(db, "SELECT DISTINCT date FROM booker.employee_schedules") == [(DAY,)]
    assert rows(db, "SELECT count(*) FROM booker._rejects") == [(0,)]


def test_an_iso_value_without_offset_is_the_locations_wall_clock(tmp_path):
    with rewritten(on_path("/orders", first_row(
            "Results", DateCompleted=None, DateCompletedOffset="2025-03-05T10:15:30"))) as sb:
        result, db = load(sb, tmp_path, ORDERS)
    assert result.success
    completed = rows(db, "SELECT strftime(timezone('America/New_York', date_completed),"
                         " '%H:%M:%S') FROM booker.orders ORDER BY id LIMIT 1")
    assert completed == [("10:15:30",)]


@pytest.mark.parametrize(("fields", "column", "reason"), [
    ({"ID": "ORD-919500101"}, "id", '"ORD-919500101" is not a BIGINT'),
    ({"DateCreatedOffset": "tomorrow"}, "date_created", "not a Booker date: 'tomorrow'"),
    ({"LocationID": [1001]}, "location_id", "[1001] is not a BIGINT"),
], ids=["non-numeric-id", "unreadable-date", "list-for-its-location"])
def test_an_order_whose_placing_field_is_unreadable_is_a_reject_and_its_day_still_loads(
        tmp_path, fields, column, reason):
    with rewritten(on_path("/orders", first_row("Results", **fields))) as sb:
        result, db = load(sb, tmp_path, ORDERS)
        expected = len(sb.dataset.orders(1001, DAY))
    assert result.success
    assert rows(db, "SELECT count(*) FROM booker.orders") == [(expected - 1,)]
    ((stored_column, stored_reason, raw, day, location),) = rows(
        db, "SELECT column_name, reason, raw, report_date, location_id FROM booker._rejects"
            " WHERE table_name = 'orders'")
    assert (stored_column, day, location) == (column, DAY, 1001)
    assert reason in stored_reason and '"Items"' in raw  # the record as Booker sent it
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()
              if e.asset_key.path[-1] == "orders"}
    assert not checks["no_rejects"].passed
    assert checks["rows_match_reported_total"].passed  # rows + rejects = TotalResultsCount


@pytest.mark.parametrize(("fields", "column", "seen", "raw"), [
    ({"FinalTotal": {"Amount": "1,234.50", "CurrencyCode": "USD"}}, "final_total_amount", "text",
     '"1,234.50"'),
    ({"Status": "Completed"}, "status", "text", '"Completed"'),
    ({"OrderNumber": {"ID": 7, "Name": "A-7"}}, "order_number", "object {ID, Name}",
     '{"ID": 7, "Name": "A-7"}'),
], ids=["thousands-separator", "scalar-for-a-lookup", "lookup-for-text"])
def test_a_value_of_an_unexpected_shape_keeps_its_record(tmp_path, fields, column, seen, raw):
    """Not a placing field: the order loads, its column holds null, the value is kept as it
    came in <column>__raw, and the schema_drift check (a warning) names the field."""
    with rewritten(on_path("/orders", first_row("Results", **fields))) as sb:
        result, db = load(sb, tmp_path, ORDERS)
        expected = len(sb.dataset.orders(1001, DAY))
    assert result.success
    assert rows(db, "SELECT count(*) FROM booker.orders") == [(expected,)]
    assert rows(db, f"SELECT {column}__raw, _drift->0->>'seen' FROM booker.orders"
                    f" WHERE {column}__raw IS NOT NULL") == [(raw, seen)]
    assert rows(db, "SELECT count(*) FROM booker._rejects") == [(0,)]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()
              if e.asset_key.path[-1] == "orders"}
    drift = checks["schema_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert drift.description.startswith(f"1 field shape(s) drifted: {column}")
    (field,) = table_rows(drift.metadata["drift"])
    assert (field["field"], field["seen"], json.loads(field["examples"])) == (
        column, seen, [json.loads(raw)])
    assert checks["no_rejects"].passed and checks["rows_match_reported_total"].passed


def test_a_numeric_string_id_gives_the_same_type_on_a_fresh_and_an_existing_table(tmp_path):
    stringly = on_path("/orders", lambda body: {**body, "Results": [
        {**order, "ID": str(order["ID"]), "CustomerID": str(order["CustomerID"])
         if order.get("CustomerID") else None} for order in body.get("Results") or []]})
    with rewritten(stringly) as sb:
        _, fresh = load(sb, tmp_path / "fresh", ["booker/orders"])
    with BookerSandbox(SANDBOX_SETTINGS) as clean:
        _, existing = load(clean, tmp_path / "existing", ["booker/orders"],
                           days=(DAY - date.resolution, DAY - date.resolution))
    with rewritten(stringly) as sb:
        load(sb, tmp_path / "existing", ["booker/orders"])
    types = "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'"
    assert rows(fresh, types) == rows(existing, types)
    assert dict(rows(fresh, types))["id"] == "BIGINT"


def _no_retry_failure(result: dg.ExecuteInProcessResult) -> tuple[float, str]:
    """Seconds from the step's start to its failure, and the first line the UI shows."""
    logs = [entry for entry in INSTANCE.all_logs(result.run_id) if entry.dagster_event]
    kinds = [entry.dagster_event.event_type for entry in logs]
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in kinds
    start = next(e for e in logs if e.dagster_event.event_type == dg.DagsterEventType.STEP_START)
    failure = next(e for e in logs if e.dagster_event.is_step_failure)
    message = failure.dagster_event.step_failure_data.error.message
    return failure.timestamp - start.timestamp, message.splitlines()[0]


def test_a_refused_request_fails_at_once_without_a_retry(tmp_path):
    """An argument error cannot heal: no step retry, the cause on the first line. (The step
    retry policy waits 30 s and more before a retry, so a retry would show here.)"""
    def refuse(body: dict) -> dict:
        return {"IsSuccess": False, "ErrorCode": 200, "ErrorMessage": "invalid arguments",
                "ArgumentErrors": [{"ArgumentName": "LocationID", "ErrorMessage": "unknown"}]}

    with rewritten(on_path("/orders", refuse)) as sb:
        started = clock.monotonic()
        result, _ = load(sb, tmp_path, ORDERS, raise_on_error=False)
        elapsed = clock.monotonic() - started
    seconds, first_line = _no_retry_failure(result)
    print(f"\ndeterministic failure: {seconds:.2f} s from step start, run over in "
          f"{elapsed:.1f} s")
    assert "argument LocationID: unknown" in first_line and "orders" in first_line
    assert seconds < 25  # far under the retry policy's first wait of 30 s


def test_a_bug_in_a_report_fails_at_once_without_a_retry(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("a programming error")

    monkeypatch.setattr("booker_assets.load.extract._table_frame", broken)
    with BookerSandbox(SANDBOX_SETTINGS) as sb:
        result, _ = load(sb, tmp_path, ORDERS, raise_on_error=False)
    _, first_line = _no_retry_failure(result)
    assert "KeyError" in first_line or "a programming error" in first_line


def test_a_full_disk_names_the_cause_and_keeps_what_was_stored(tmp_path, monkeypatch):
    """DuckDB's own "cannot rollback" must not hide the cause; nothing stored is lost."""
    with BookerSandbox(SANDBOX_SETTINGS) as sb:
        _, db = load(sb, tmp_path, ["booker/orders"])
        before = rows(db, "SELECT count(*) FROM booker.orders")

        def full(conn, *args, **kwargs):
            raise duckdb.IOException("Could not write file: No space left on device")

        monkeypatch.setattr("booker_assets.defs.io_manager._record_loads", full)
        result, _ = load(sb, tmp_path, ["booker/orders"], days=(DAY, DAY + date.resolution),
                         raise_on_error=False)
    _, first_line = _no_retry_failure(result)
    assert "No space left on device" in first_line
    assert rows(db, "SELECT count(*) FROM booker.orders") == before


def test_an_unreadable_schedule_row_is_rejected_on_its_own_day(tmp_path):
    """Its employee is undated (a list), the row names its day: the reject goes there, once.
    The same bad row on a day outside the run is left to that day's run. (``Weekday`` is in
    the key: it places the row.)"""
    days = (DAY, DAY + date.resolution)
    bad_days = (DAY, DAY - date.resolution)
    with rewritten(on_path("/schedule", rows_of("EmployeeDaySchedules", bad_days,
                                                Weekday={"ID": 3}))) as sb:
        result, db = load(sb, tmp_path, ["booker/employee_schedules"], days=days)
        employees = len(sb.dataset.employees(1001, False, False))
    assert result.success
    assert rows(db, "SELECT report_date, count(*), any_value(reason) FROM booker._rejects"
                    " GROUP BY 1") == [(DAY, employees, '{"ID": 3} is not a VARCHAR value')]
    assert rows(db, "SELECT count(*) FROM booker.employee_schedules") == [(employees,)]


def test_an_unreadable_opening_time_keeps_its_schedule_row(tmp_path):
    """``StartTime`` places nothing: the row stays on its day, the time kept as it came."""
    with rewritten(on_path("/schedule", rows_of("EmployeeDaySchedules", (DAY,),
                                                StartTime="9 o'clock"))) as sb:
        result, db = load(sb, tmp_path, ["booker/employee_schedules"])
        employees = len(sb.dataset.employees(1001, False, False))
    assert result.success
    assert rows(db, "SELECT count(*), count(start_time), any_value(start_time__raw)"
                    " FROM booker.employee_schedules") == [(employees, 0, '"9 o\'clock"')]
    assert rows(db, "SELECT count(*) FROM booker._rejects") == [(0,)]
