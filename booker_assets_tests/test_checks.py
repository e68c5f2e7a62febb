"""Asset checks: pass on consistent tables, fail (naming the partition) on rows made wrong."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.checks import build_checks, check_evaluators, location_drift
from booker_assets.defs.storage import DuckDBFile, connect_locked, qualified
from booker_assets_tests.conftest import make_settings

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
  (DATE '{DAY}', 1001, 11, 1), (DATE '{DAY}', 1001, 12, 1), (DATE '{DAY}', 1002, 31, 3)
) t(report_date, location_id, id, order_id);
CREATE TABLE booker.orders_refunds AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, 1, 1, 60.0), (DATE '{DAY}', 1001, 1, 2, 40.0)
) t(report_date, location_id, order_id, refund_index, amount_amount);
CREATE TABLE booker.customers (report_date DATE, location_id BIGINT, id BIGINT);
CREATE TABLE booker.location_schedules AS SELECT * FROM (VALUES
  (DATE '{DAY}', 1001, DATE '{DAY}', 'Monday', false),
  (DATE '{DAY}', 1002, DATE '{DAY}', 'Monday', true)
) t(report_date, location_id, date, weekday, is_closed);
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
    ("orders_refunds", "refunds_within_order_total",
     "UPDATE booker.orders_refunds SET amount_amount = 41.0 WHERE refund_index = 2",
     "ERROR", "101.0"),
    ("orders", "open_days_have_orders",
     "UPDATE booker._loads SET row_count = 0 WHERE table_name = 'orders' AND location_id = 1001",
     "WARN", "1001"),
    ("orders", "fresh",
     f"UPDATE booker.orders SET report_date = DATE '{DAY - timedelta(days=2)}'"
     " WHERE location_id = 1002", "ERROR", "1002"),
    ("locations", "configured_locations_match",
     f"INSERT INTO booker.locations VALUES (DATE '{DAY}', 1007, 1007)", "ERROR", "1007"),
    ("orders", "rows_match_reported_total",
     "UPDATE booker._loads SET rejected = 1 WHERE location_id = 1002", "ERROR", "1002"),
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
    return check_evaluators(settings)[key].evaluate()


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
    shown_in = " ".join(str(getattr(v, "value", v)) for v in result.metadata.values())
    assert shown in shown_in + (result.description or "")


def test_every_table_has_key_checks(database: str):
    settings = make_settings(Path(database).parent, LOCS, duckdb_path=database)
    checks = build_checks(settings)
    names = {(k.asset_key.path[-1], k.name) for c in checks for k in c.check_keys}
    assert {(t, "key_unique") for t in TABLES} | {(t, "key_not_null") for t in TABLES} <= names


def test_missing_table_fails_with_its_name(database: str):
    result = _run(database, "rooms", "key_unique")
    assert not result.passed and "rooms" in result.description


def test_location_drift_gives_the_settings_line(database: str):
    with connect_locked(database) as conn:
        execute(conn, f"INSERT INTO booker.locations VALUES (DATE '{DAY}', 1009, 1009)")
        # an older snapshot's location does not count
        execute(conn, f"INSERT INTO booker.locations VALUES (DATE '{DAY - timedelta(1)}', 7, 7)")
    drift = location_drift(DuckDBFile(database), ("1002", "1005", "1001"))
    assert drift.unconfigured == ("1009",) and drift.not_returned == ("1005",)
    assert drift.settings_line == "BOOKER_LOCATION_IDS=1002,1001,1009"
    assert drift.settings_line in drift.message
