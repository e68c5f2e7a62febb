"""The salon metrics (dbt, defs/metrics.py) over the session's loaded warehouse: built with
Dagster's APIs, every mart recomputed here in Python from the raw tables and compared to the
cent, the dbt tests as asset checks, and the refresh a load triggers (which days it rewrites).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from booker_assets.defs.metrics import GROUP_NAME, REFRESH, SENSOR_NAME, metrics_definitions
from booker_assets.defs.storage import DuckLake, connect_locked
from booker_assets_tests.conftest import (
    LOADED_DAYS,
    OBSERVED_DAYS,
    Loaded,
    load_range,
    make_defs,
    make_settings,
)
from booker_sandbox import BookerSandbox

# The sandbox's zones of the loaded locations (written here, not read through the code under
# test): 1001 is Eastern, 1004 Pacific.
ZONES = {1001: ZoneInfo("America/New_York"), 1004: ZoneInfo("America/Los_Angeles")}
CENT = Decimal("0.01")
RETENTION_DAYS = 90
REBOOKING_HOURS = 24
SALES = dg.AssetKey([GROUP_NAME, "location_day_sales"])


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    """Rows as dicts, DECIMAL as Decimal (a DataFrame would make them floats)."""
    with connect_locked(db, read_only=True) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def cents(amount: Decimal, count: int) -> Decimal:
    return (amount / count).quantize(CENT, rounding=ROUND_HALF_UP)


def local_day(location_id: int, instant) -> date | None:
    return instant.astimezone(ZONES[location_id]).date() if instant else None


def build(loaded: Loaded, **selection) -> dg.ExecuteInProcessResult:
    metrics = metrics_definitions(loaded.settings)
    return dg.materialize(metrics.assets, resources=metrics.resources,
                          instance=loaded.instance, **selection)


@pytest.fixture(scope="module")
def built(loaded_warehouse: Loaded) -> dg.ExecuteInProcessResult:
    result = build(loaded_warehouse)
    assert result.success
    return result


# ---------------------------------------------------------------- the marts, recomputed


def counted_orders(db: str) -> list[dict[str, Any]]:
    return rows(db, "select * from booker.orders where status_name = 'Completed'"
                    " and not coalesce(is_deleted, false)")


def expected_sales(db: str) -> dict[tuple[int, date], dict[str, Any]]:
    loaded = {(r["location_id"], r["report_date"]) for r in rows(
        db, "select * from booker._loads where table_name = 'orders' and status = 'loaded'")}
    orders = counted_orders(db)
    day = defaultdict(lambda: defaultdict(Decimal))
    clients = defaultdict(set)
    for o in orders:
        key = (o["location_id"], o["report_date"])
        d = day[key]
        d["orders"] += 1
        d["discounts"] += o["discount_amount"]
        d["tax"] += o["total_taxes_amount"]
        d["tips"] += o["total_tip_amount"]
        d["order_totals"] += o["final_total_amount"]
        d["ticket"] += o["final_total_amount"] - o["total_taxes_amount"] - o["total_tip_amount"]
        if o["customer_id"] is not None:
            clients[key].add(o["customer_id"])
    counted = {(o["location_id"], o["id"], o["report_date"]) for o in orders}
    for i in rows(db, "select * from booker.orders_items"):
        if (i["location_id"], i["order_id"], i["report_date"]) not in counted:
            continue
        category = ("service" if i["is_service"] else "retail" if i["is_retail"]
                    else "gift_card" if i["is_gift_card"] else "other")
        gross = (Decimal(repr(i["quantity"])) * i["unit_price_amount"]).quantize(
            CENT, rounding=ROUND_HALF_UP)
        day[(i["location_id"], i["report_date"])][f"gross_{category}_sales"] += gross
    refunds = defaultdict(lambda: [0, Decimal(0)])
    for r in rows(db, "select * from booker.orders_refunds"):
        key = (r["location_id"], local_day(r["location_id"], r["date_created"]))
        refunds[key][0] += 1
        refunds[key][1] += r["amount_amount"]
    expected = {}
    for key in loaded | set(refunds):
        d, is_loaded = day.get(key, {}), key in loaded
        known = (lambda v: v) if is_loaded else (lambda v: None)
        expected[key] = {
            "orders_loaded": is_loaded, "orders": known(int(d.get("orders", 0))),
            **{f: known(d.get(f, Decimal(0))) for f in (
                "gross_service_sales", "gross_retail_sales", "gross_gift_card_sales",
                "discounts", "tax", "tips", "order_totals")},
            "refund_count": refunds[key][0] if key in refunds else 0,
            "refunds": refunds[key][1] if key in refunds else Decimal(0),
            "net_sales": known(d.get("order_totals", Decimal(0))
                               - (refunds[key][1] if key in refunds else 0)),
            "average_ticket": cents(d["ticket"], d["orders"]) if d.get("orders") else None,
            "distinct_clients": known(len(clients.get(key, ()))),
        }
    return expected


def test_location_day_sales_match_the_raw_tables_to_the_cent(built, loaded_warehouse):
    db = loaded_warehouse.settings.duckdb_path
    expected = expected_sales(db)
    mart = {(r.pop("location_id"), r.pop("sales_date")): r
            for r in rows(db, "select * exclude (loads_seen_until)"
                              " from metrics.location_day_sales")}
    assert mart == expected
    # the sample is not empty: orders, items of each kind, a refund on a day not loaded
    assert sum(r["orders"] or 0 for r in mart.values()) > 50
    assert all(sum(r[f] or 0 for r in mart.values()) > 0 for f in (
        "gross_service_sales", "gross_retail_sales", "refunds"))
    assert any(not r["orders_loaded"] and r["refunds"] for r in mart.values())


def expected_clients(db: str) -> dict[tuple[int, int], dict[str, Any]]:
    visits = defaultdict(set)
    for o in counted_orders(db):
        if o["customer_id"] is not None:
            visits[(o["location_id"], o["customer_id"])].add(o["report_date"])
    loaded = defaultdict(list)
    for r in rows(db, "select * from booker._loads where table_name = 'orders'"
                      " and status = 'loaded'"):
        loaded[r["location_id"]].append(r["report_date"])
    expected = {}
    for c in rows(db, "select * from booker.customers_current"):
        key = (c["location_id"], c["id"])
        first = local_day(c["location_id"], c["customer_stats_date_of_first_visit"])
        seen = sorted(visits.get(key, ()))
        back = [v for v in seen if first < v <= first + timedelta(days=RETENTION_DAYS)]
        days = loaded[c["location_id"]]
        observed = first >= min(days) and first + timedelta(days=RETENTION_DAYS) <= max(days)
        expected[key] = {
            "first_visit_date": first, "cohort_month": first.replace(day=1),
            "first_loaded_visit": seen[0] if seen else None,
            "last_visit": seen[-1] if seen else None, "visits_loaded": len(seen),
            "returned_on": back[0] if back else None, "window_observed": observed,
            "retained": True if back else (False if observed else None),
        }
    return expected


def test_clients_and_client_months_match_the_raw_tables(built, loaded_warehouse):
    db = loaded_warehouse.settings.duckdb_path
    clients = expected_clients(db)
    mart = {(r.pop("location_id"), r.pop("customer_id")): r
            for r in rows(db, "select * from metrics.clients")}
    assert mart == clients
    assert any(c["visits_loaded"] for c in clients.values())
    visiting, cohorts = defaultdict(set), defaultdict(lambda: [0, 0, 0])
    for o in counted_orders(db):
        if o["customer_id"] is not None:
            visiting[(o["location_id"], o["report_date"].replace(day=1))].add(o["customer_id"])
    for (location, _), c in clients.items():
        cohort = cohorts[(location, c["cohort_month"])]
        cohort[0] += 1
        cohort[1] += c["retained"] is not None
        cohort[2] += bool(c["retained"])
    months = {(r.pop("location_id"), r.pop("month")): r
              for r in rows(db, "select * exclude (cohort_return_rate) from metrics.client_months")}
    expected = {}
    for key in set(visiting) | set(cohorts):
        who = visiting.get(key, set())
        new = sum(clients[(key[0], c)]["cohort_month"] == key[1] for c in who
                  if (key[0], c) in clients)
        observed, retained = cohorts[key][1], cohorts[key][2]
        expected[key] = {"visiting_clients": len(who), "new_clients": new,
                         "returning_clients": len(who) - new, "cohort_clients": cohorts[key][0],
                         "cohort_observed": observed, "cohort_retained": retained}
    assert months == expected


def test_membership_months_match_the_raw_tables(built, loaded_warehouse):
    db = loaded_warehouse.settings.duckdb_path
    memberships = [
        {**m, "start": local_day(m["location_id"], m["start_date"]),
         "end": local_day(m["location_id"], m["membership_expiration_date"])}
        for m in rows(db, "select * from booker.customer_memberships_current")]
    assert memberships, "the sandbox's customers should have memberships"
    mart = rows(db, "select * from metrics.membership_months order by location_id, month")
    today = date.today()
    for location in {m["location_id"] for m in memberships}:
        theirs = [m for m in memberships if m["location_id"] == location]
        first = min(m["start"] for m in theirs).replace(day=1)
        months = [r for r in mart if r["location_id"] == location]
        assert months[0]["month"] == first and months[-1]["month"] == today.replace(day=1)
        for row in months:
            start = row["month"]
            end = (start + timedelta(days=32)).replace(day=1)
            active = [m for m in theirs
                      if m["start"] < end and (m["end"] is None or m["end"] >= start)]
            assert row["active"] == len(active), row
            assert row["new"] == sum(start <= m["start"] < end for m in theirs), row
            assert row["ended"] == sum(m["end"] is not None and start <= m["end"] < end
                                       and m["end"] <= today for m in theirs), row
            assert row["recurring_fees"] == sum(
                (m["total_fee_amount"] for m in active if m["payment_frequency_type_name"]
                 in ("Monthly", "Weekly", "Yearly")), Decimal(0)), row
    assert any(r["active"] for r in mart)


def minutes(start, end) -> int:
    """Whole minutes from start to end: times of day, or instants."""
    return int((datetime.combine(date.min, end) - datetime.combine(date.min, start))
               .total_seconds() // 60) if isinstance(start, time) else int(
        (end - start).total_seconds() // 60)


def held_lines(db: str) -> list[dict[str, Any]]:
    """The service lines of the appointments that took place (not cancelled, not no-shows)."""
    held = {(a["location_id"], a["id"], a["report_date"]) for a in rows(
        db, "select * from booker.appointments") if not a["is_cancelled"] and not a["is_no_show"]}
    return [line for line in rows(db, "select * from booker.appointment_treatments")
            if (line["location_id"], line["appointment_id"], line["report_date"]) in held]


def expected_checkouts(db: str) -> dict[tuple[int, date], list[int]]:
    """Per location and day: [checkouts, rebooked]. A checkout is a completed appointment of a
    client whose order's completion is loaded; rebooked when another appointment of theirs
    (loaded, or in a load's book ahead) starts later and was booked in the 24 h from it."""
    completed = {(o["location_id"], o["id"]): o["date_completed"] for o in rows(
        db, "select * from booker.orders where not coalesce(is_deleted, false)")}
    book = rows(db, "select location_id, id, customer_id, start_date_time, date_booked"
                    " from booker.appointments union select location_id, id, customer_id,"
                    " start_date_time, date_booked from booker.appointment_book")
    days = defaultdict(lambda: [0, 0])
    for a in rows(db, "select * from booker.appointments"):
        at = completed.get((a["location_id"], a["order_id"]))
        if a["status_name"] != "Completed" or a["customer_id"] is None or at is None:
            continue
        day = days[(a["location_id"], a["report_date"])]
        day[0] += 1
        day[1] += any(
            b["location_id"] == a["location_id"] and b["customer_id"] == a["customer_id"]
            and b["id"] != a["id"] and b["start_date_time"] > at
            and at <= b["date_booked"] <= at + timedelta(hours=REBOOKING_HOURS) for b in book)
    return days


def test_appointment_marts_match_the_raw_tables(built, loaded_warehouse):
    db = loaded_warehouse.settings.duckdb_path
    appointments = rows(db, "select * from booker.appointments")
    lines = held_lines(db)
    requested = {(line["location_id"], line["appointment_id"]) for line in lines
                 if line["employee_was_requested"]}
    days = defaultdict(list)
    for a in appointments:
        days[(a["location_id"], a["report_date"])].append(a)
    checkouts, expected = expected_checkouts(db), {}
    for key, day in days.items():
        checked_out, rebooked = checkouts.get(key, (0, 0))
        took_place = [a for a in day if not a["is_cancelled"] and not a["is_no_show"]]
        expected[key] = {
            "booked": len(day), "completed": sum(a["status_name"] == "Completed" for a in day),
            "cancelled": sum(bool(a["is_cancelled"]) for a in day),
            "no_shows": sum(bool(a["is_no_show"]) for a in day),
            "booked_online": sum(bool(a["is_web_booking"]) for a in day),
            "prebooked_at_checkout": sum(bool(a["is_pre_booked_at_past_checkout"]) for a in day),
            "requested_employee_share": pytest.approx(
                sum((key[0], a["id"]) in requested for a in took_place) / len(took_place),
                abs=1e-4) if took_place else None,
            "checkouts": checked_out, "rebooked": rebooked,
            "rebooking_rate": pytest.approx(rebooked / checked_out, abs=1e-4)
            if checked_out else None}
    mart = {(r.pop("location_id"), r.pop("appointment_date")): r
            for r in rows(db, "select * from metrics.location_day_appointments")}
    assert mart == expected
    assert sum(r["no_shows"] for r in mart.values()) and sum(r["completed"] for r in mart.values())
    assert sum(r["rebooked"] for r in mart.values()) and sum(r["checkouts"] for r in mart.values())

    scheduled, booked = defaultdict(int), defaultdict(int)
    for s in rows(db, "select * from booker.employee_schedules"):
        if not s["is_off"] and s["date"] is not None and s["start_time"] is not None:
            scheduled[(s["location_id"], s["employee_id"], s["date"])] += minutes(
                s["start_time"], s["end_time"])
    for line in lines:
        if line["employee_id"] is not None:
            booked[(line["location_id"], line["employee_id"], line["report_date"])] += minutes(
                line["start_date_time"], line["end_date_time"])
    utilization = {(r.pop("location_id"), r.pop("employee_id"), r.pop("work_date")): r
                   for r in rows(db, "select * from metrics.employee_day_utilization")}
    assert utilization == {key: {
        "scheduled_minutes": scheduled.get(key, 0), "booked_minutes": booked.get(key, 0),
        "utilization": pytest.approx(booked[key] / scheduled[key], abs=1e-4)
        if scheduled.get(key) and key in booked else None} for key in set(scheduled) | set(booked)}
    assert any(r["booked_minutes"] and r["scheduled_minutes"] for r in utilization.values())


def test_room_day_utilization_matches_the_raw_tables(built, loaded_warehouse):
    """Rooms have no schedule: each is available while its location is open, times its
    capacity, from the local day it was created; booked minutes from the held lines."""
    db = loaded_warehouse.settings.duckdb_path
    open_minutes = defaultdict(int)
    for s in rows(db, "select * from booker.location_schedules where date is not null"):
        open_minutes[(s["location_id"], s["date"])] += 0 if s["is_closed"] else minutes(
            s["start_time"], s["end_time"])
    available = {
        (r["location_id"], r["id"], day): minutes_open * r["capacity"]
        for r in rows(db, "select * from booker.rooms_current")
        for (location, day), minutes_open in open_minutes.items()
        if location == r["location_id"] and local_day(location, r["date_created"]) <= day}
    booked = defaultdict(int)
    for line in held_lines(db):
        if line["room_id"] is not None:
            booked[(line["location_id"], line["room_id"], line["report_date"])] += minutes(
                line["start_date_time"], line["end_date_time"])
    mart = {(r.pop("location_id"), r.pop("room_id"), r.pop("room_date")): r
            for r in rows(db, "select * from metrics.room_day_utilization")}
    assert mart == {key: {
        "available_minutes": available.get(key), "booked_minutes": booked.get(key, 0),
        "utilization": pytest.approx(booked[key] / available[key], abs=1e-4)
        if available.get(key) and key in booked else None} for key in set(available) | set(booked)}
    assert any(r["utilization"] for r in mart.values())
    assert any(r["available_minutes"] == 0 for r in mart.values())  # a closed day


# ---------------------------------------------------------------- in Dagster


def test_dbt_tests_are_asset_checks_and_pass(built):
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in built.get_asset_check_evaluations()}
    assert ("metrics/location_day_sales", "net_sales_reconciles_location_day_sales_") in checks
    assert ("metrics/location_day_sales",
            "unique_key_location_day_sales_location_id__sales_date") in checks
    assert len(checks) >= 14 and all(checks.values()), checks


def test_each_model_is_downstream_of_the_raw_assets_it_reads(loaded_warehouse):
    metrics = metrics_definitions(loaded_warehouse.settings)
    (assets,) = metrics.assets
    deps = {key.to_user_string(): {d.asset_key.to_user_string() for d in spec.deps}
            for key, spec in ((s.key, s) for s in assets.specs)}
    assert deps["metrics/stg_orders"] == {"booker/orders"}
    assert deps["metrics/stg_refunds"] == {"booker/orders_refunds", "metrics/stg_location_zones"}
    assert "booker/orders" in deps["metrics/location_day_sales"]  # booker._loads
    assert deps["metrics/stg_location_zones"] == {"booker/locations"}
    assert {s.group_name for s in assets.specs} == {GROUP_NAME}
    assert all(s.automation_condition == REFRESH for s in assets.specs)


def test_a_load_refreshes_only_the_days_it_touched(built, loaded_warehouse):
    """A load of one slice: the refresh condition requests the models that read it (not the
    others), and the incremental sales mart rewrites only the slice's day and the days its
    refunds were made; every row still matches the raw tables."""
    loaded, db = loaded_warehouse, loaded_warehouse.settings.duckdb_path
    defs = dg.Definitions.merge(make_defs(loaded.sandbox, loaded.settings, page_size=10),
                                metrics_definitions(loaded.settings))
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=loaded.instance)
    assert quiet.total_requested == 0  # the marts are as new as their loads
    before = {(r["location_id"], r["sales_date"]): r["loads_seen_until"]
              for r in rows(db, "select * from metrics.location_day_sales")}

    day = LOADED_DAYS[0]
    assert load_range(defs, ["1001"], day, day, instance=loaded.instance, selection=[
        f"booker/{t}" for t in ("orders", "orders_items", "orders_refunds")]).success
    after_load = dg.evaluate_automation_conditions(defs=defs, instance=loaded.instance,
                                                   cursor=quiet.cursor)
    requested = {key for key in defs.resolve_asset_graph().get_all_asset_keys()
                 if after_load.get_num_requested(key)}
    assert SALES in requested and dg.AssetKey([GROUP_NAME, "clients"]) in requested
    assert dg.AssetKey([GROUP_NAME, "membership_months"]) not in requested
    assert build(loaded, selection=list(requested)).success

    touched = {(1001, day)} | {
        (1001, local_day(1001, r["date_created"])) for r in rows(
            db, f"select * from booker.orders_refunds where location_id = 1001"
                f" and report_date = '{day}'")}
    now = {(r["location_id"], r["sales_date"]): r["loads_seen_until"]
           for r in rows(db, "select * from metrics.location_day_sales")}
    assert set(now) == set(before)
    assert {key for key in now if now[key] != before[key]} == touched
    assert {(r.pop("location_id"), r.pop("sales_date")): r for r in rows(
        db, "select * exclude (loads_seen_until) from metrics.location_day_sales")
    } == expected_sales(db)


# The marts, their rows compared whole; loads_seen_until is the time of each warehouse's loads.
MARTS = {"location_day_sales": "* exclude (loads_seen_until)", "clients": "*",
         "client_months": "*", "membership_months": "*", "location_day_appointments": "*",
         "employee_day_utilization": "*", "room_day_utilization": "*"}
# What the models read, copied into the lake as the loads would write it there.
READ = ("orders", "orders_items", "orders_refunds", "_loads", "locations_current",
        "customers_current", "customer_memberships_current", "appointments",
        "appointment_treatments", "employee_schedules", "location_schedules", "rooms_current",
        "appointment_book")


def test_the_marts_build_the_same_on_a_ducklake(built, loaded_warehouse, postgres_dsn,
                                                tmp_path):
    db = loaded_warehouse.settings.duckdb_path
    settings = replace(loaded_warehouse.settings, warehouse="ducklake",
                       ducklake_catalog=postgres_dsn, ducklake_data_path=str(tmp_path / "lake"))
    lake = DuckLake(settings.ducklake_catalog, settings.ducklake_data_path)
    file = Path(db).stem  # its views name their tables by the file's catalog
    with lake.connect() as conn:  # a _current view arrives as a table of its rows: same reads
        conn.execute(f"ATTACH '{db}' AS {file} (READ_ONLY)")
        conn.execute("CREATE SCHEMA booker")
        for table in READ:
            conn.execute(f"CREATE TABLE booker.{table} AS SELECT * FROM {file}.booker.{table}")
        conn.execute(f"DETACH {file}")
    metrics = metrics_definitions(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(metrics.assets, resources=metrics.resources, instance=instance)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    for mart, columns in MARTS.items():
        with lake.connect_reader() as conn:
            on_lake = conn.execute(f"select {columns} from metrics.{mart} order by all").fetchall()
        with connect_locked(db, read_only=True) as conn:
            in_file = conn.execute(f"select {columns} from metrics.{mart} order by all").fetchall()
        assert on_lake == in_file and in_file, mart


ORDER_TABLES = [f"booker/{t}" for t in ("orders", "orders_items", "orders_refunds")]


def test_a_refund_gone_from_a_reloaded_order_leaves_the_sales_mart(built, loaded_warehouse):
    """An order slice re-loaded without a refund it had (Booker as it stood before the refund
    was made: a sandbox whose clock is earlier) takes the refund out of the day it was made,
    here a day whose orders are not loaded, so its row goes; re-loaded as it stands, it is
    back. The incremental refresh rewrites what the slice touched, deletes included."""
    loaded, db = loaded_warehouse, loaded_warehouse.settings.duckdb_path
    refund = max((r for r in rows(db, "select * from booker.orders_refunds")
                  if local_day(r["location_id"], r["date_created"]) > r["report_date"]),
                 key=lambda r: r["date_created"])
    location, day = refund["location_id"], refund["report_date"]
    gone = (location, local_day(location, refund["date_created"]))
    assert gone[1] not in LOADED_DAYS  # a row of its refunds alone

    def reload_and_refresh(sandbox: BookerSandbox) -> dict[tuple[int, date], dict[str, Any]]:
        defs = make_defs(sandbox, loaded.settings, page_size=10)
        assert load_range(defs, [str(location)], day, day, instance=loaded.instance,
                          selection=ORDER_TABLES).success
        assert build(loaded, selection=[SALES]).success
        mart = {(r.pop("location_id"), r.pop("sales_date")): r for r in rows(
            db, "select * exclude (loads_seen_until) from metrics.location_day_sales")}
        assert mart == expected_sales(db)
        return mart

    before_refund = replace(loaded.sandbox.settings,
                            now=refund["date_created"] - timedelta(seconds=1))
    with BookerSandbox(before_refund) as earlier:
        assert gone not in reload_and_refresh(earlier)
    assert reload_and_refresh(loaded.sandbox)[gone]["refunds"] == refund["amount_amount"]


def test_a_daily_load_is_followed_by_the_marts_refresh_by_default(built, loaded_warehouse):
    """The shipped definitions (the loads' and the metrics', merged as ``defs()`` does): the
    metrics' sensor runs from the start, and after the runs the daily-load sensor asks for it
    requests every mart that reads what they loaded, with no manual step."""
    loaded = loaded_warehouse
    # no lookback: the sensor launches the last ended day alone, which the warehouse holds
    settings = replace(loaded.settings, lookback_days=0)
    defs = dg.Definitions.merge(make_defs(loaded.sandbox, settings, page_size=10),
                                metrics_definitions(settings))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=loaded.instance)
    with dg.build_sensor_context(instance=loaded.instance, definitions=defs,
                                 resources=defs.resources) as context:
        requests = list(defs.resolve_sensor_def("booker_daily_loads").evaluate_tick(context)
                        .run_requests or [])
    assert requests
    for request in requests:  # as the daemon would launch them
        assert dg.materialize(
            [*defs.assets, *defs.asset_checks], selection=request.asset_selection,
            resources=defs.resources, instance=loaded.instance, tags=request.tags,
            run_config=request.run_config).success
    after = dg.evaluate_automation_conditions(
        defs=defs, instance=loaded.instance, cursor=quiet.cursor,
        asset_selection=sensor.asset_selection)
    requested = {key for key in defs.resolve_asset_graph().get_all_asset_keys()
                 if after.get_num_requested(key)}
    marts = {key for key in requested if not key.path[-1].startswith("stg_")}
    assert {SALES, dg.AssetKey([GROUP_NAME, "location_day_appointments"]),
            dg.AssetKey([GROUP_NAME, "room_day_utilization"])} <= marts
    assert build(loaded, selection=list(requested)).success


def test_a_warehouse_of_past_days_alone_names_the_missing_zone(sandbox, tmp_path):
    """A load of past days stores no location snapshot, so no zone: the refresh fails naming
    the location and the fix, never a guessed zone; the fix it names (today's locations) mends
    it."""
    settings = make_settings(tmp_path, ("1001",))
    defs = make_defs(sandbox, settings, page_size=10)
    metrics = metrics_definitions(settings)
    sales = dg.AssetSelection.assets(SALES).upstream() & dg.AssetSelection.groups(GROUP_NAME)
    with dg.DagsterInstance.ephemeral() as instance:
        assert load_range(defs, ["1001"], LOADED_DAYS[0], LOADED_DAYS[0], instance=instance,
                          selection=ORDER_TABLES).success
        failed = dg.materialize(metrics.assets, resources=metrics.resources, instance=instance,
                                selection=sales, raise_on_error=False)
        assert not failed.success
        (failure,) = [e for e in failed.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        print(message)
        first = message.splitlines()[0]  # the cause and the fix, first and once
        assert ("location 1001 has no time zone" in first and "booker-assets backfill"
                " --from TODAY --to TODAY --assets locations --locations 1001" in first)
        assert message.count("has no time zone") == 1
        today = OBSERVED_DAYS[-1]
        assert load_range(defs, ["1001"], today, today, instance=instance,
                          selection=["booker/locations"]).success
        assert dg.materialize(metrics.assets, resources=metrics.resources, instance=instance,
                              selection=sales).success
