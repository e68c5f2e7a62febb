"""``make bench``: the salon metrics (dbt, defs/metrics.py) over a chain's two years.

Loading 2 years × 50 locations from the sandbox takes hours at Booker's pace (README,
Performance), so the raw tables are **synthesized in DuckDB directly** at that size, with the
columns, types and views the loads write (only those the models read): 50 locations in 4 zones,
30 orders a location-day (2 % voided), 2–3 items each, 2 % refunded up to 9 days later, 5,000
clients and 200 memberships a location; an appointment per order (its checkout) and 2 more
(cancelled, no-show), 1–2 service lines each in one of 5 rooms, 12 employees' schedules, the
location's opening hours, the book ahead of the last day (30 days); and ``booker._loads``
with a slice per table and day.

Then, through the code location's own asset (``dg.materialize``, dbt in its own process):
1. the full build of every model and test;
2. a daily load: the last ``--lookback`` days (the daily load's BOOKER_LOOKBACK_DAYS) written
   again and one new day, for every location, as the IO manager writes slices (delete + insert,
   a ``_loads`` row each), then the refresh the automation would run (every model: each reads a
   table the daily load writes), the incremental sales mart recomputing only those days;
3. the sales mart alone, incrementally and then rebuilt from nothing, for the difference.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb

from booker_assets.defs.metrics import GROUP_NAME, metrics_definitions
from booker_assets.demo import QUIET
from booker_assets.settings import load_settings

ZONES = (("Eastern Standard Time", "America/New_York"),
         ("Central Standard Time", "America/Chicago"),
         ("US Mountain Standard Time", "America/Phoenix"),
         ("Pacific Standard Time", "America/Los_Angeles"))
ORDERS_PER_DAY = 30


def synthesize(db: str, locations: int, days: int) -> dict[str, int]:
    """The raw tables of ``locations`` × ``days`` (ending yesterday); their row counts."""
    zones = ", ".join(f"({i}, '{std}', '{iana}')" for i, (std, iana) in enumerate(ZONES))
    with duckdb.connect(db) as conn:
        conn.execute(f"""
        create schema booker;
        create temp table zone(z int, std varchar, iana varchar);
        insert into zone values {zones};
        create table booker.locations as
            select current_date - 1 as report_date, l::bigint as location_id,
                   now() as _loaded_at, l::bigint as id, z.std as time_zone_standard_name,
                   '(GMT) ' || z.std as time_zone_name, z.z::varchar as time_zone_id
            from range(1, {locations} + 1) t(l) join zone z on z.z = l % 4;
        create table booker.orders as
            select report_date, location_id, now() as _loaded_at, id,
                   case when h % 10 < 8 then location_id * 100000 + h % 5000 end as customer_id,
                   if(h % 50 = 0, 'Voided', 'Completed') as status_name,
                   h % 50 = 0 as is_deleted,
                   sub as sub_total_amount, discount as discount_amount,
                   round(sub * 0.08, 2)::decimal(18, 2) as total_taxes_amount,
                   tip as total_tip_amount,
                   (sub - discount + round(sub * 0.08, 2) + tip)::decimal(18, 2)
                       as final_total_amount,
                   timezone(iana, (report_date + interval (9 + k % 10) hour)::timestamp)
                       as date_created,
                   timezone(iana, (report_date + interval (10 + k % 10) hour)::timestamp)
                       as date_completed
            from (
                select (current_date - {days} + d::int)::date as report_date,
                       l::bigint as location_id,
                       (l * 100000000 + d * 1000 + k)::bigint as id, k, z.iana,
                       hash(l, d, k) as h,
                       (20 + hash(l, d, k) % 20000 / 100)::decimal(18, 2) as sub,
                       (hash(k, l, d) % 5 * 2)::decimal(18, 2) as discount,
                       (hash(d, k, l) % 3000 / 100)::decimal(18, 2) as tip
                from range({days}) a(d), range(1, {locations} + 1) b(l),
                     range({ORDERS_PER_DAY}) c(k), zone z
                where z.z = l % 4);
        create table booker.orders_items as
            select o.report_date, o.location_id, o._loaded_at, o.id * 10 + n as id,
                   o.id as order_id, n = 0 as is_service,
                   n > 0 and o.id % 7 <> 0 as is_retail, n > 0 and o.id % 7 = 0 as is_gift_card,
                   1.0::double as quantity,
                   (o.sub_total_amount / (2 + o.id % 2))::decimal(18, 2) as unit_price_amount,
                   o.location_id * 1000 + o.id % 12 as employee_id
            from booker.orders o, range(3) r(n) where n < 2 + o.id % 2;
        create table booker.orders_refunds as
            select report_date, location_id, _loaded_at, id as order_id, 1::bigint as refund_index,
                   (final_total_amount / 2)::decimal(18, 2) as amount_amount,
                   date_created + interval (id % 10) day as date_created
            from booker.orders where hash(id) % 50 = 1 and not is_deleted;
        create table booker.customers as
            select current_date - 1 as report_date, l::bigint as location_id,
                   now() as _loaded_at, (l * 100000 + c)::bigint as id,
                   (current_date - 1825 + (hash(l, c) % 1825)::int)::timestamptz
                       as customer_stats_date_of_first_visit
            from range(1, {locations} + 1) a(l), range(5000) b(c);
        create table booker.customer_memberships as
            select current_date - 1 as report_date, l::bigint as location_id,
                   now() as _loaded_at, (l * 1000 + m)::bigint as customer_membership_id,
                   (l * 100000 + m * 7)::bigint as customer_id, (m % 5)::bigint as membership_id,
                   'Active' as status_name, 'Monthly' as payment_frequency_type_name,
                   (50 + m % 5 * 25)::decimal(18, 2) as total_fee_amount,
                   (current_date - 1095 + (hash(l, m) % 1095)::int)::timestamptz as start_date,
                   if(m % 4 = 0, (current_date - 400 + (hash(m, l) % 700)::int)::timestamptz, null)
                       as membership_expiration_date
            from range(1, {locations} + 1) a(l), range(200) b(m);
        create table booker.appointments as
            select o.report_date, o.location_id, o._loaded_at, o.id + n * 500 as id,
                   o.customer_id, if(n = 0, o.id, null) as order_id,
                   case n when 0 then 'Completed' when 1 then 'Cancelled' else 'NoShow' end
                       as status_name,
                   n = 1 as is_cancelled, n = 2 as is_no_show, o.id % 3 = 0 as is_web_booking,
                   o.id % 5 = 0 as is_pre_booked_at_past_checkout,
                   o.date_created - interval 1 hour as start_date_time,
                   o.date_created - interval (o.id % 40) day as date_booked
            from booker.orders o, range(3) r(n) where n = 0 or o.id % 15 = n;
        create table booker.appointment_treatments as
            select a.report_date, a.location_id, a._loaded_at, a.id * 10 + n as id,
                   a.id as appointment_id, a.location_id * 1000 + (a.id + n) % 12 as employee_id,
                   a.location_id * 1000 + 300 + (a.id + n) % 5 as room_id,
                   a.id % 4 = 0 as employee_was_requested,
                   a.start_date_time + interval (n * 45) minute as start_date_time,
                   a.start_date_time + interval (n * 45 + 45) minute as end_date_time
            from booker.appointments a, range(2) r(n) where n < 1 + a.id % 2;
        create table booker.employee_schedules as
            select d.report_date, d.location_id, now() as _loaded_at,
                   d.location_id * 1000 + e as employee_id, d.report_date as "date",
                   time '09:00' as start_time, time '17:00' as end_time, e = 11 as is_off
            from (select distinct report_date, location_id from booker.orders) d, range(12) r(e);
        create table booker.location_schedules as
            select report_date, location_id, now() as _loaded_at, report_date as "date",
                   time '09:00' as start_time, time '20:00' as end_time, false as is_closed
            from (select distinct report_date, location_id from booker.orders);
        create table booker.rooms as
            select current_date - 1 as report_date, l::bigint as location_id, now() as _loaded_at,
                   (l * 1000 + 300 + r)::bigint as id, 1 + (r = 2)::int as capacity,
                   (current_date - {days} - 30)::timestamptz as date_created
            from range(1, {locations} + 1) a(l), range(5) b(r);
        create table booker.appointment_book as
            select current_date - 1 as report_date, location_id, now() as _loaded_at,
                   id + 900 as id, customer_id,
                   start_date_time + interval 28 day as start_date_time,
                   start_date_time + interval 2 hour as date_booked
            from booker.appointments where report_date >= current_date - 30;
        create table booker._loads as
            select t.name as table_name, d.report_date, d.location_id,
                   count(*) as row_count, 'loaded' as status, now() as loaded_at
            from (values ('orders'), ('orders_items'), ('orders_refunds'), ('appointments'),
                         ('appointment_treatments'), ('employee_schedules'),
                         ('location_schedules')) t(name),
                 (select distinct report_date, location_id from booker.orders) d
            group by all;
        """)
        for table in ("locations", "customers", "customer_memberships", "rooms"):
            conn.execute(f"create view booker.{table}_current as select * from booker.{table}")
        return {t: conn.execute(f"select count(*) from booker.{t}").fetchone()[0]
                for t in ("orders", "orders_items", "orders_refunds", "customers",
                          "customer_memberships", "appointments", "appointment_treatments",
                          "employee_schedules", "appointment_book", "_loads")}


def daily_load(db: str, lookback: int) -> int:
    """The last ``lookback`` days written again and a new day (today, once), slice by slice as
    the IO manager writes them (the rows as they were; a new _loaded_at and _loads row); the
    slices."""
    with duckdb.connect(db) as conn:
        conn.execute(f"""
        create temp table slices as select distinct report_date, location_id
            from booker.orders where report_date >= current_date - {lookback};
        insert into booker.orders by name
            select * replace (report_date + 1 as report_date, id + 1000 as id,
                              date_created + interval 1 day as date_created)
            from booker.orders where report_date = current_date - 1
              and not exists (from booker.orders where report_date = current_date);
        insert into booker.orders_items by name
            select i.* replace (i.report_date + 1 as report_date, i.order_id + 1000 as order_id,
                                i.id + 10000 as id)
            from booker.orders_items i where i.report_date = current_date - 1
              and not exists (from booker.orders_items where report_date = current_date);
        insert into slices select distinct current_date, location_id from booker.orders;
        """)
        for table in ("orders", "orders_items", "orders_refunds"):
            conn.execute(f"""
            begin;
            create or replace temp table kept as select t.* replace (now() as _loaded_at)
                from booker.{table} t join slices s using (report_date, location_id);
            delete from booker.{table} t using slices s
                where t.report_date = s.report_date and t.location_id = s.location_id;
            insert into booker.{table} select * from kept;
            delete from booker._loads l using slices s where l.table_name = '{table}'
                and l.report_date = s.report_date and l.location_id = s.location_id;
            insert into booker._loads select '{table}', report_date, location_id, 0, 'loaded',
                now() from slices;
            commit;""")
        return conn.execute("select count(*) from slices").fetchone()[0]


def timed(step: Callable[[], dg.ExecuteInProcessResult]) -> dict[str, float]:
    """The step's wall time (dbt's process start and parse, Dagster's run), and the time dbt
    spent in the models: all of them, and the sales mart."""
    started = time.perf_counter()
    result = step()
    assert result.success, "the dbt build failed: see its events above"
    models = {event.asset_key.path[-1]: event.metadata["Execution Duration"].value
              for event in result.get_asset_materialization_events()
              for event in [event.event_specific_data.materialization]}
    return {"wall_s": round(time.perf_counter() - started, 1),
            "models_s": round(sum(models.values()), 1),
            "sales_mart_s": round(models["location_day_sales"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/metrics.py", description=__doc__)
    parser.add_argument("--locations", type=int, default=50)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--lookback", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="booker-metrics-bench-") as folder:
        db = str(Path(folder) / "booker_assets.duckdb")
        started = time.perf_counter()
        rows = synthesize(db, args.locations, args.days)
        figures: dict = {"rows": rows, "synthesize_s": round(time.perf_counter() - started, 1)}
        metrics = metrics_definitions(load_settings({"BOOKER_DUCKDB_PATH": db}))
        sales = dg.AssetKey([GROUP_NAME, "location_day_sales"])

        def build(*selection: dg.AssetKey) -> dg.ExecuteInProcessResult:
            with dg.DagsterInstance.ephemeral() as instance:
                return dg.materialize(metrics.assets, resources=metrics.resources,
                                      instance=instance, selection=list(selection) or None,
                                      run_config=QUIET, raise_on_error=False)

        figures["full_build"] = timed(build)
        figures["daily_slices"] = daily_load(db, args.lookback)
        figures["refresh_after_daily_load"] = timed(build)
        daily_load(db, args.lookback)
        figures["sales_mart_only_incremental"] = timed(lambda: build(sales))
        with duckdb.connect(db) as conn:  # the mart from nothing: dbt builds it whole
            conn.execute("drop table metrics.location_day_sales")
        figures["sales_mart_only_from_nothing"] = timed(lambda: build(sales))
        figures["database_mb"] = round(Path(db).stat().st_size / 2**20)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.locations} locations × {args.days} days, raw tables synthesized in DuckDB")
    for name, value in figures.items():
        print(f"  {name:<28} {value}")


if __name__ == "__main__":
    main()
