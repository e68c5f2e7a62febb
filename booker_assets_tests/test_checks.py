"""Asset checks: pass on consistent tables, fail (naming the partition) on rows made wrong."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.checks import build_checks, check_evaluators
from booker_assets.defs.storage import connect_locked, qualified
from booker_assets_tests.conftest import make_settings, table_rows

LOCS = ("1001", "1002")
DAY = date.today() - timedelta(days=1)  # fresh: the freshness check compares with today

GOOD = f"""
CREATE SCHEMA booker;
CREATE TABLE booker._loads AS SELECT * FROM (VALUES
  ('orders', DATE '{DAY}', 1001, 2, 2, 0), ('orders', DATE '{DAY}', 1002, 1, 1, 0),
  ('customers', DATE '{DAY}', 1001, 0, 0, 0)
) t(table_name, report_date, location_id, row_count, reported_total, rejected);
CREATE TABLE booker._rejects (table_name VARCHAR, report_date DATE, location_id BIGINT,
  record_id VARCHAR, column_name VARCHAR, reason VARCHAR, raw JSON, loaded_at TIMESTAMPTZ);
CREATE TABLE booker.orders AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 1, 100.0), (DATE '{DAY}', 1001, 2, 50.0), (DATE '{DAY}', 1002, 3, 10.0)
) t(report_date, location_id, id, final_total_amount);
CREATE TABLE booker.orders_items AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 11, 1), (DATE '{DAY}', 1001, 12, 2), (DATE '{DAY}', 1002, 31, 3)
) t(report_date, location_id, id, order_id);
CREATE TABLE booker.orders_refunds AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 1, 1, 60.0), (DATE '{DAY}', 1001, 1, 2, 40.0)
) t(report_date, location_id, order_id, refund_index, amount_amount);
CREATE TABLE booker.customers (report_date DATE, location_id BIGINT, id BIGINT);
CREATE TABLE booker.location_schedules AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, DATE '{DAY}', 'Monday', false),
  (DATE '{DAY}', 1002, DATE '{DAY}', 'Monday', true)
) t(report_date, location_id, date, weekday, is_closed);
CREATE TABLE booker.appointments AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 7, 1, 'Completed'), (DATE '{DAY}', 1001, 8, NULL, 'Cancelled'),
  (DATE '{DAY}', 1003, 9, 77, 'Completed')
) t(report_date, location_id, id, order_id, status_name);
CREATE TABLE booker.appointment_treatments AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 71, 7), (DATE '{DAY}', 1001, 72, 7), (DATE '{DAY}', 1001, 81, 8)
) t(report_date, location_id, id, appointment_id);
CREATE TABLE booker.locations AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 1001), (DATE '{DAY}', 1002, 1002)
) t(report_date, location_id, id);
"""

# (asset, check, SQL that breaks it, severity, text in the offending rows)
BROKEN = [
    ("orders", "key_unique",
     f"INSERT INTO booker.orders VALUES (DATE '{DAY}', 1001, 2, 5.0)", "ERROR", "1001"),
    ("orders_items", "key_not_null",
     f"INSERT INTO booker.orders_items VALUES (DATE '{DAY}', 1002, NULL, 3)", "ERROR", "1002"),
    ("orders", "rows_match_reported_total",
     "UPDATE booker._loads SET reported_total = 3 WHERE location_id = 1002", "ERROR", "1002"),
    ("customers", "rows_match_reported_total",
     "UPDATE booker._loads SET reported_total = 4 WHERE table_name = 'customers'", "ERROR", "4"),
    ("orders_items", "order_exists",
     f"INSERT INTO booker.orders_items VALUES (DATE '{DAY}', 1002, 99, 1)", "ERROR", "1002"),
    ("orders_refunds", "order_exists",
     "UPDATE booker.orders_refunds SET location_id = 1002 WHERE refund_index = 2",
     "ERROR", "1002"),
    ("orders_items", "items_exist",  # a report torn between its tables (issue 21)
     "DELETE FROM booker.orders_items WHERE order_id = 3", "ERROR", "1002"),
    ("orders_refunds", "refunds_within_order_total",
     "UPDATE booker.orders_refunds SET amount_amount = 41.0 WHERE refund_index = 2",
     "ERROR", "101.0"),
    ("orders", "open_days_have_orders",
     "UPDATE booker._loads SET row_count = 0 WHERE table_name = 'orders' AND location_id = 1001",
     "WARN", "1001"),
    ("orders", "fresh",
     f"UPDATE booker._loads SET report_date = DATE '{DAY - timedelta(days=2)}'"
     " WHERE location_id = 1002", "ERROR", "1002"),
    ("orders", "rows_match_reported_total",
     "UPDATE booker._loads SET rejected = 1 WHERE location_id = 1002", "ERROR", "1002"),
    ("appointment_treatments", "appointment_exists",
     "UPDATE booker.appointment_treatments SET appointment_id = 9 WHERE id = 81",
     "ERROR", "1001"),
    ("appointments", "order_exists",  # 1003's orders are not loaded: its order is not sought
     "UPDATE booker.appointments SET order_id = NULL WHERE id = 7", "WARN", "1001"),
    ("appointments", "order_exists",
     "UPDATE booker.appointments SET order_id = 3 WHERE id = 7", "WARN", "1001"),
    ("orders", "no_rejects",
     f"INSERT INTO booker._rejects VALUES ('orders', DATE '{DAY}', 1002, 'ORD-9', 'id',"
     " 'ORD-9 is not a BIGINT value', '{\"ID\": \"ORD-9\"}', now())", "ERROR", "ORD-9"),
]


@pytest.fixture(params=["warehouse.duckdb", "booker.duckdb"])
def database(tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Every accepted path, including one whose catalog DuckDB names like the schema."""
    path = str(tmp_path / request.param)
    with connect_locked(path) as conn:
        execute(conn, GOOD)
    return path


def execute(conn, sql: str) -> None:
    """The fixtures' ``booker.<table>``, qualified by the catalog (DuckDB names it after the
    file, so in booker.duckdb a bare ``booker.orders`` is ambiguous)."""
    conn.execute(sql.replace("booker.", qualified(conn, schema="booker") + "."))


def _run(database: str, asset: str, name: str) -> dg.AssetCheckResult:
    settings = make_settings(Path(database).parent, LOCS, duckdb_path=database)
    key = dg.AssetCheckKey(dg.AssetKey(["booker", asset]), name)
    return check_evaluators(settings)[key].evaluate(LOCS)  # LOCS: the location partitions


@pytest.mark.parametrize(("asset", "name"), [(a, n) for a, n, *_ in BROKEN])
def test_check_passes_on_good_data(database: str, asset: str, name: str):
    result = _run(database, asset, name)
    assert result.passed, result.description


@pytest.mark.parametrize(("asset", "name", "breakage", "severity", "shown"), BROKEN)
def test_check_fails_on_bad_data(database, asset, name, breakage, severity, shown):
    with connect_locked(database) as conn:
        execute(conn, breakage)
    result = _run(database, asset, name)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity[severity]
    cells = [str(cell) for row in table_rows(result.metadata["offending_partitions"])
             for cell in row.values()]
    assert shown in cells, cells


def test_every_table_has_key_checks(database: str):
    settings = make_settings(Path(database).parent, LOCS, duckdb_path=database)
    checks = build_checks(settings)
    names = {(k.asset_key.path[-1], k.name) for c in checks for k in c.check_keys}
    assert {(t, "key_unique") for t in TABLES} | {(t, "key_not_null") for t in TABLES} <= names


def test_missing_table_fails_with_its_name(database: str):
    result = _run(database, "rooms", "key_unique")
    assert not result.passed and "rooms" in result.description


def test_fresh_names_a_location_partition_with_nothing_loaded(database: str):
    """The check expects every location partition loaded, not just those with rows."""
    settings = make_settings(Path(database).parent, (), duckdb_path=database)
    key = dg.AssetCheckKey(dg.AssetKey(["booker", "orders"]), "fresh")
    result = check_evaluators(settings)[key].evaluate((*LOCS, "1003"))
    assert not result.passed and result.metadata["offending"].value == 1
    offending = result.metadata["offending_partitions"]
    assert table_rows(offending) == [{"location_id": 1003, "newest_day": None}]
    # typed as DuckDB answered, so the UI sorts ids as numbers and days as dates
    assert [(c.name, c.type) for c in offending.schema.columns] == [
        ("location_id", "BIGINT"), ("newest_day", "DATE")]


def test_a_failed_load_leaves_no_check_red(sandbox, tmp_path: Path):
    """A run whose load fails (a wrong secret: every report) evaluates each check it planned,
    on the data: Dagster shows a planned check without evaluation in a failed run as
    "Execution failed". Orders were stored before: checked on those rows; customers never
    were: nothing to fail."""
    from booker_assets.api.client import BookerResource
    from booker_assets.definitions import build_definitions
    from booker_assets_tests.conftest import load_range, make_defs

    settings = make_settings(tmp_path, ("1001",))
    day = date(2025, 3, 8)
    wrong = BookerResource(base_url=sandbox.url, **{**sandbox.credentials,
                                                    "client_secret": "not-the-secret"})
    with dg.instance_for_test() as instance:
        load_range(make_defs(sandbox, settings), ("1001",), day, day, instance=instance,
                   selection=["booker/orders"])
        failed = load_range(build_definitions(settings, wrong), ("1001",), day, day,
                            instance=instance, raise_on_error=False,
                            selection=["booker/orders", "booker/customers"])
        records = {kind: instance.get_records_for_run(failed.run_id, of_type=kind).records
                   for kind in (dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                                dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
    assert not failed.success and failed.job_def.name == "booker_load"  # a named job
    planned, evaluated = (
        {(e.asset_key.path[-1], e.check_name): e for e in
         (r.event_log_entry.dagster_event.event_specific_data for r in rs)}
        for rs in records.values())
    assert set(planned) == set(evaluated) and ("customers", "key_unique") in planned
    # red only on data: the sandbox's 2025 orders are not fresh today
    assert [name for name, e in evaluated.items() if not e.passed] == [("orders", "fresh")]
    orders, customers = evaluated["orders", "key_unique"], evaluated["customers", "key_unique"]
    assert "BOOKER_CLIENT_SECRET" in orders.description
    assert "checked on the rows stored before" in orders.description
    assert "no rows stored yet" in customers.description


def test_fresh_counts_a_loaded_day_without_orders(database: str):
    """A location closed on Sunday: 0 orders is a loaded day, not a stale one."""
    with connect_locked(database) as conn:
        execute(conn, "DELETE FROM booker.orders WHERE location_id = 1002;"
                      " UPDATE booker._loads SET row_count = 0, reported_total = 0"
                      " WHERE location_id = 1002")
    assert _run(database, "orders", "fresh").passed
