"""Every asset materialized with Dagster APIs against the sandbox over HTTP, read from DuckDB."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from booker_assets.catalogue.reports import GROUPS, TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.assets import asking_order
from booker_assets.defs.partitions import add_locations
from booker_assets.defs.storage import connect_locked
from booker_assets_tests.conftest import (
    LOADED_DAYS,
    LOADED_LOCATIONS,
    OBSERVED_DAYS,
    SANDBOX_SETTINGS,
    Loaded,
    load_range,
    make_defs,
    make_settings,
    planned_runs,
)
from booker_sandbox import BookerSandbox, FaultProfile

LOCS, DAYS, OBSERVED = LOADED_LOCATIONS, LOADED_DAYS, OBSERVED_DAYS
SNAPSHOTS = sorted(name for name, table in TABLES.items() if table.history == "snapshot")


def _materialize(defs: dg.Definitions, days, locs, *, selection=None, run_config=None,
                 raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return load_range(defs, locs, days[0], days[-1], selection=selection,
                      run_config=run_config, raise_on_error=raise_on_error)


def _count(db: str, sql: str) -> int:
    with connect_locked(db, read_only=True) as conn:
        return conn.execute(sql).fetchone()[0]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.fixture(scope="module")
def loaded(loaded_warehouse: Loaded) -> tuple[str, BookerSandbox]:
    """The session's loaded warehouse (conftest.py), shared by the grain tests."""
    return loaded_warehouse.settings.duckdb_path, loaded_warehouse.sandbox


def test_definitions_load_and_validate(tmp_path):
    defs = build_definitions(make_settings(tmp_path, LOCS))
    dg.Definitions.validate_loadable(defs)
    keys = {key.path[-1] for a in defs.assets for key in a.keys}
    assert keys == set(TABLES)


def test_orders_items_refunds_match_the_api(loaded):
    db, sb = loaded
    ds = sb.dataset
    orders = [o for loc in LOCS for d in DAYS for o in ds.orders(int(loc), d)]
    assert orders, "the sandbox should have orders on these days"
    past = f"report_date <= '{DAYS[-1]}'"
    assert _count(db, f"select count(*) from booker.orders where {past}") == len(orders)
    assert _count(db, f"select count(*) from booker.orders_items where {past}") == sum(
        len(o["Items"]) for o in orders)
    assert _count(db, f"select count(*) from booker.orders_refunds where {past}") == sum(
        len(o.get("Refunds") or []) for o in orders)
    # Items and refunds join back to their order in the same partition.
    assert _count(db, """select count(*) from booker.orders_items i left join booker.orders o
        on o.id = i.order_id and o.report_date = i.report_date and o.location_id = i.location_id
        where o.id is null""") == 0


def test_created_instant_falls_on_the_partition_day_in_local_time(loaded):
    db, _ = loaded
    with connect_locked(db, read_only=True) as conn:
        kind = conn.execute("""select data_type from information_schema.columns
            where table_schema='booker' and table_name='orders'
            and column_name='date_created'""").fetchone()[0]
        rows = conn.execute("""select location_id, report_date, min(date_created),
            max(date_created) from booker.orders group by all""").fetchall()
    assert kind == "TIMESTAMP WITH TIME ZONE"
    zones = {1001: "America/New_York", 1004: "America/Los_Angeles"}
    for loc, day, first, last in rows:
        zone = ZoneInfo(zones[loc])
        assert first.astimezone(zone).date() == day
        assert last.astimezone(zone).date() == day


@pytest.mark.parametrize("table", sorted(TABLES))
def test_key_unique_per_partition_and_not_null(loaded, table):
    db, _ = loaded
    key = ", ".join(TABLES[table].key)
    dup = _count(db, f"""select count(*) from (select report_date, {key}, count(*) n
        from booker.{table} group by all having n > 1)""")
    assert dup == 0
    assert _count(db, f"select count(*) from booker.{table}") > 0, f"{table} is empty"


@pytest.mark.parametrize("table", SNAPSHOTS)
def test_a_backfill_of_past_days_stores_no_snapshot_and_says_so(loaded, table):
    """Booker keeps no history of its lists: today's list is not March's."""
    db, _ = loaded
    past = f"report_date <= '{DAYS[-1]}'"
    assert _count(db, f"select count(*) from booker.{table} where {past}") == 0
    assert _count(db, f"""select count(*) from booker._loads where table_name = '{table}'
        and {past} and status = 'no_history' and row_count = 0""") == len(LOCS) * len(DAYS)


def test_grain_of_snapshots_and_schedules(loaded):
    db, sb = loaded
    ds = sb.dataset
    employees = sum(len(ds.employees(int(loc), False, False)) for loc in LOCS)
    observed = f"report_date >= '{OBSERVED[0]}'"
    assert _count(db, "select count(*) from booker.employees") == employees * len(OBSERVED)
    assert _count(db, "select count(*) from booker.employee_schedules") == employees * (
        len(DAYS) + len(OBSERVED))
    assert _count(db, "select count(*) from booker.location_schedules") == len(LOCS) * (
        len(DAYS) + len(OBSERVED))
    # the weekday defaults: 7 per location and employee, on the observed days only
    assert _count(db, "select count(*) from booker.location_schedule_defaults") == len(
        LOCS) * 7 * len(OBSERVED)
    assert _count(db, "select count(*) from booker.employee_schedule_defaults") == (
        employees * 7 * len(OBSERVED))
    variants = sum(len(p["ProductVariants"]) for loc in LOCS for p in ds.products(int(loc)))
    assert _count(db, "select count(*) from booker.products") == variants * len(OBSERVED)
    assert _count(db, f"select count(*) from booker.locations where {observed}"
                      " and location_id = id") == len(LOCS) * len(OBSERVED)
    every_day = (*DAYS, *OBSERVED)
    customers = sum(len(ds.customers(int(loc), d)) for loc in LOCS for d in every_day)
    assert _count(db, "select count(*) from booker.customers") == customers
    notes = _count(db, "select count(*) from booker.notes where note_type='customer'")
    assert notes == sum(len(c["Customer"].get("Notes") or []) for loc in LOCS for d in every_day
                        for c in ds.customers(int(loc), d))
    assert _count(db, "select count(*) from booker.notes where note_type='progress'") > 0
    assert _count(db, "select count(*) from booker.customer_memberships") > 0


def test_ids_with_gaps_are_stored_as_integers(loaded):
    db, _ = loaded
    with connect_locked(db, read_only=True) as conn:
        types = dict(conn.execute(
            "SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()"
            " WHERE schema_name = 'booker' AND (column_name = 'id' OR column_name LIKE '%\\_id'"
            " ESCAPE '\\') AND column_name != 'location_id'").fetchall())
    # these ids are null on some rows (walk-ins, retail items): pandas makes them float64
    for column in ("orders.customer_id", "orders_items.appointment_id", "notes.employee_id"):
        assert types[column] == "BIGINT", types
    assert not {c: t for c, t in types.items() if t in ("DOUBLE", "FLOAT")}


def test_current_views_hold_one_row_per_entity(loaded):
    db, _ = loaded
    assert _count(db, "select count(*) from booker.employees_current") == _count(
        db, "select count(distinct (location_id, id)) from booker.employees")


def test_options_change_what_comes_back(sandbox, tmp_path):
    settings = make_settings(tmp_path, ("1001",))
    defs = make_defs(sandbox, settings)
    db = settings.duckdb_path

    def rows_with(table: str, group: str, **options) -> int:
        _materialize(defs, [OBSERVED[0]], ("1001",), selection=[f"booker/{table}"],
                     run_config={"ops": {"booker_reports": {"config": options}}})
        return _count(db, f"select count(*) from booker.{table}")

    assert rows_with("memberships", "memberships", include_expired=True) > rows_with(
        "memberships", "memberships")
    everyone = rows_with("employees", "employees")
    assert rows_with("employees", "employees", ignore_freelancers=True) < everyone
    assert rows_with("employees", "employees", only_active_employees=True) < everyone
    # weekday defaults are a table of their own, asked only with the option on; the dated
    # schedules are loaded either way
    assert rows_with("location_schedule_defaults", "location_schedule_defaults") == 0
    assert _count(db, "select count(*) from booker._loads where table_name ="
                  " 'location_schedule_defaults' and status = 'option_off'") == 1
    assert rows_with("location_schedule_defaults", "location_schedule_defaults",
                     schedule_defaults=True) == 7
    assert rows_with("location_schedules", "location_schedules", schedule_defaults=True) == 1
    assert _count(db, "select count(*) from booker.location_schedules where date is null") == 0


def test_rematerializing_replaces_and_empty_day_is_recorded(sandbox, tmp_path):
    settings = make_settings(tmp_path, ("1001",))
    defs = make_defs(sandbox, settings)
    closed = next(d for d in _days(date(2025, 3, 1), date(2025, 3, 14))
                  if not sandbox.dataset.orders(1001, d))
    for _ in range(2):
        _materialize(defs, [closed - timedelta(days=1), closed], ("1001",),
                     selection=["booker/orders"])
    db = settings.duckdb_path
    expected = len(sandbox.dataset.orders(1001, closed - timedelta(days=1)))
    assert expected > 0
    assert _count(db, "select count(*) from booker.orders") == expected
    assert _count(db, f"select count(*) from booker.orders where report_date='{closed}'") == 0
    assert _count(db, f"""select count(*) from booker._loads where table_name='orders'
        and report_date='{closed}' and row_count=0""") == 1


def _columns(db: str, table: str) -> set[str]:
    with connect_locked(db, read_only=True) as conn:
        return {c[0] for c in conn.execute(f"select * from booker.{table} limit 0").description}


def test_new_api_field_becomes_a_new_column(tmp_path):
    settings = make_settings(tmp_path, ("1001",))
    db = settings.duckdb_path
    first, second = date(2025, 3, 7), date(2025, 3, 8)  # two open days
    with BookerSandbox(SANDBOX_SETTINGS) as clean:
        _materialize(make_defs(clean, settings), [first], ("1001",), selection=["booker/orders"])
    before = _columns(db, "orders")
    noisy_settings = replace(SANDBOX_SETTINGS, faults=FaultProfile(extra_fields=True))
    with BookerSandbox(noisy_settings) as noisy:
        _materialize(make_defs(noisy, settings), [second], ("1001",), selection=["booker/orders"])
    added = _columns(db, "orders") - before
    assert "loyalty_tier2027" in added and "flags2027_is_vip" in added
    assert _count(db, f"select count(*) from booker.orders where report_date='{first}'") > 0
    assert _count(db, f"""select count(*) from booker.orders
        where report_date='{first}' and loyalty_tier2027 is not null""") == 0
    assert _count(db, f"""select count(*) from booker.orders
        where report_date='{second}' and loyalty_tier2027 = 'Gold'""") > 0


def test_failed_run_keeps_rows_and_names_the_credential(sandbox, tmp_path):
    from booker_assets.api.client import BookerResource

    settings = make_settings(tmp_path, ("1001",))
    _materialize(make_defs(sandbox, settings), [DAYS[0]], ("1001",), selection=["booker/orders"])
    db = settings.duckdb_path
    before = _count(db, "select count(*) from booker.orders")
    wrong = BookerResource(base_url=sandbox.url, **{**sandbox.credentials,
                                                    "client_secret": "not-the-secret"})
    result = _materialize(build_definitions(settings, wrong), [DAYS[0]], ("1001",),
                          selection=["booker/orders"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "BOOKER_CLIENT_SECRET" in message and "not-the-secret" not in message
    assert _count(db, "select count(*) from booker.orders") == before > 0


def test_a_year_backfill_is_cut_into_month_runs_per_location(tmp_path):
    """Dagster's own run planner (what the backfill daemon calls, as for a UI backfill) on a
    year × 4 locations: more days than locations, so a run per location and month."""
    from dagster._core.definitions.events import AssetKeyPartitionKey

    locations = ("1001", "1002", "1003", "1004")
    defs = build_definitions(make_settings(tmp_path, locations))
    days = dg.DailyPartitionsDefinition("2025-01-01", end_date="2026-01-01").get_partition_keys()
    wanted = [AssetKeyPartitionKey(key, f"{day}|{loc}") for asset in defs.assets
              for key in asset.keys for day in days for loc in locations]
    with dg.instance_for_test() as instance:
        add_locations(instance, locations)
        runs = planned_runs(defs, wanted, instance)

    assert len(runs) == 12 * 4  # 12 months x 4 locations
    assert max(len(keys) for _, keys in runs) == 31
    assert all(len({key.split("|")[1] for key in keys}) == 1 for _, keys in runs)
    covered = {(asset, k) for assets, keys in runs for asset in assets for k in keys}
    assert covered == {(w.asset_key.to_user_string(), w.partition_key) for w in wanted}


def test_each_partition_carries_its_own_figures_and_the_run_once(sandbox, tmp_path):
    """A range run writes many partitions: each materialization shows that partition's rows
    and Booker's total for it; the run's figures appear once, labelled as the run's. A past
    day of a snapshot list is marked not observed, with no row count that reads "0 rows"."""
    settings = make_settings(tmp_path, LOCS)
    key = dg.AssetKey(["booker", "orders"])
    with dg.instance_for_test() as instance:
        load_range(make_defs(sandbox, settings), LOCS, *DAYS, instance=instance,
                   selection=["booker/orders", "booker/rooms"])
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key),
                                                  limit=100).records
        rooms = [r.asset_materialization.metadata for r in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["booker", "rooms"])), limit=100).records]
    assert len(rooms) == len(DAYS) * len(LOCS)
    assert all(m["booker/status"].value == "no_history" and "dagster/row_count" not in m
               and m["booker/note"].value.startswith("Not observed") for m in rooms)
    (run,) = [m["booker/run_no_history"].value for m in rooms if "booker/run_no_history" in m]
    assert run.startswith(f"{len(rooms)} of {len(rooms)} partitions not observed")
    events = {r.partition_key: r.asset_materialization.metadata for r in records}
    with connect_locked(settings.duckdb_path, read_only=True) as conn:
        stored = {f"{day}|{loc}": n for day, loc, n in conn.execute(
            "SELECT report_date, location_id, count(*) FROM booker.orders GROUP BY ALL"
        ).fetchall()}
    assert set(events) == {f"{d}|{loc}" for d in DAYS for loc in LOCS}
    for partition, metadata in events.items():
        assert metadata["dagster/row_count"].value == stored.get(partition, 0), partition
        assert metadata["booker/reported_total"].value == stored.get(partition, 0)
        assert metadata["booker/location"].value.startswith(partition.split("|")[1] + " ")
    assert sum("booker/run_requests" in m for m in events.values()) == 1
    (preview,) = [m["booker/run_preview"] for m in events.values() if "booker/run_preview" in m]
    columns = {c.name: c.type for c in preview.schema.columns}
    assert columns["report_date"] == "DATE" and len(preview.records) == 5
    # a date reads as a date: "2025-03-08", not "2025-03-08 00:00:00"
    assert {r.data["report_date"] for r in preview.records} <= {str(d) for d in DAYS}


def test_the_reports_that_fan_out_per_record_are_asked_last():
    """Issue 24: customers (a call per customer for memberships and progress notes, ~3/4 of
    a run's requests) asked among the first took the budget until the end, and every report
    was stored after the last request; asked last, the others are stored meanwhile."""
    order = [group.name for group in asking_order(GROUPS)]
    fanning = [group.name for group in GROUPS if group.fan_outs]
    assert fanning == ["customers", "employees"]  # the catalogue's order
    assert order[-2:] == ["employees", "customers"]  # customers: two calls per record
    assert order[:-2] == [group.name for group in GROUPS if not group.fan_outs]
