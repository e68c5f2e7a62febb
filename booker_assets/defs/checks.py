"""Asset checks over the warehouse's tables: whole table each time, offending partitions in
metadata.

They read through the warehouse's own connection (``storage``: on a DuckDB file, read-only
under its lock, so they queue behind a writing run instead of failing on DuckDB's file lock;
on a DuckLake, the newest snapshot). Each check is one SQL query returning the offending rows;
tables are written ``{name}`` and named by ``storage.render``, like every reader does.
(No ``from __future__ import annotations``: Dagster validates the ``context`` annotation.)
"""


from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta

import dagster as dg
import duckdb

from booker_assets.catalogue.options import OPTIONS, table_options
from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.drift import FieldDrift, drift
from booker_assets.defs.metadata_tables import metadata_table
from booker_assets.defs.partitions import known_locations
from booker_assets.defs.storage import (
    BookerStorageError,
    Warehouse,
    render,
    warehouse_of,
)
from booker_assets.settings import Settings

SCHEMA = "booker"
FRESH_DAYS = 2  # the newest loaded day of a location may be this many days old, no more
SHOWN = 20  # offending rows listed in a check's metadata
# A drifted field's columns as FieldDrift declares them (its table is the check's own).
DRIFT_TYPES = {f.name: f.type for f in fields(FieldDrift) if f.name != "table"}


@dataclass(frozen=True)
class BookerCheck:
    spec: dg.AssetCheckSpec
    # given the location partitions (what the freshness check expects loaded)
    evaluate: Callable[[Sequence[str]], dg.AssetCheckResult]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey([SCHEMA, table])


def _t(table: str) -> str:
    """A table placeholder, named when the query runs (the catalog is the file's name)."""
    return "{" + table + "}"


def _query(warehouse: Warehouse, sql: str, params: Sequence = ()) -> tuple[list[tuple], list[str]]:
    """The rows of ``sql`` and DuckDB's type of each of its columns."""
    with warehouse.connect(read_only=True) as conn:
        result = conn.execute(render(conn, sql), list(params))
        return result.fetchall(), [str(column[1]) for column in result.description]


def _result(
    warehouse: Warehouse,
    sql: str,
    columns: Sequence[str],
    what: str,
    params: Sequence = (),
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    commands: str = "",
) -> dg.AssetCheckResult:
    """Pass when ``sql`` returns no rows; otherwise list the first of them, and the whole of
    each one's ``commands`` column (the table cuts long cells) as a block to copy."""
    try:
        rows, types = _query(warehouse, sql, params)
    except (duckdb.CatalogException, BookerStorageError) as exc:
        return _cannot_check(exc, severity)
    if not rows:
        return dg.AssetCheckResult(passed=True, metadata={"offending": 0})
    shown = [dict(zip(columns, row, strict=True)) for row in rows[:SHOWN]]
    return dg.AssetCheckResult(
        passed=False,
        severity=severity,
        description=f"{len(rows)} {what}",
        metadata={
            "offending": len(rows),
            "offending_partitions": metadata_table(shown, dict(zip(columns, types, strict=True))),
            **({commands: dg.MetadataValue.md("\n".join(
                ["```bash", *(row[commands] for row in shown), "```"]))} if commands else {}),
        },
    )


CANNOT_CHECK = "cannot check: "


def _cannot_check(exc: Exception, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    # e.g. the table is not loaded yet; DuckDB's first line names it
    first_line = str(exc).splitlines()[0]
    return dg.AssetCheckResult(
        passed=False, severity=severity, description=f"{CANNOT_CHECK}{first_line}"
    )


@dataclass(frozen=True)
class SqlCheck:
    """A check that passes when ``sql`` returns no rows: the offending ones (see ``_result``)."""

    asset: str
    name: str
    description: str
    sql: str
    columns: tuple[str, ...]
    what: str  # the failure's description after the count, e.g. "partitions hold ..."
    deps: tuple[str, ...] = ()  # other tables the query reads
    params: tuple = ()
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    commands: str = ""  # a column of commands that fix a row, listed whole

    def build(self, warehouse: Warehouse) -> BookerCheck:
        spec = dg.AssetCheckSpec(asset=_key(self.asset), name=self.name,
                                 additional_deps=[_key(dep) for dep in self.deps],
                                 description=self.description)
        return BookerCheck(spec, lambda _locations: _result(
            warehouse, self.sql, self.columns, self.what, self.params, self.severity,
            self.commands))


# ---------------------------------------------------------------- checks on every table


def _not_null(table: str) -> str:
    return " OR ".join(f'"{c}" IS NULL' for c in TABLES[table].key)


def key_checks(table: str) -> tuple[SqlCheck, SqlCheck]:
    key = TABLES[table].key
    cols = ", ".join(f'"{c}"' for c in dict.fromkeys(("report_date", "location_id", *key)))
    return (
        SqlCheck(
            table, "key_unique", f"({', '.join(key)}) is unique within each partition.",
            f"SELECT report_date, location_id, count(*) AS duplicated_keys FROM (SELECT"
            f" {cols} FROM {_t(table)} GROUP BY ALL HAVING count(*) > 1)"
            f" GROUP BY ALL ORDER BY ALL",
            ("report_date", "location_id", "duplicated_keys"),
            "partitions hold duplicate keys",
        ),
        SqlCheck(
            table, "key_not_null", f"No row has a null in ({', '.join(key)}).",
            f"SELECT report_date, location_id, count(*) FROM {_t(table)}"
            f" WHERE {_not_null(table)} GROUP BY ALL ORDER BY ALL",
            ("report_date", "location_id", "rows_with_null_key"),
            "partitions have rows with a null key",
        ),
    )


def reported_total_check(table: str) -> SqlCheck:
    return SqlCheck(
        table, "rows_match_reported_total",
        "Rows stored per partition, plus its rejects, equal the TotalResultsCount Booker"
        " reported for it (where it reported one; see booker._loads).",
        f"SELECT l.report_date, l.location_id, l.reported_total,"
        f" count(t.report_date) + coalesce(any_value(l.rejected), 0)"
        f" FROM {_t('_loads')} l LEFT JOIN {_t(table)} t ON t.report_date = l.report_date"
        f" AND t.location_id IS NOT DISTINCT FROM l.location_id"
        f" WHERE l.table_name = ? AND l.reported_total IS NOT NULL GROUP BY ALL"
        f" HAVING count(t.report_date) + coalesce(any_value(l.rejected), 0) <> l.reported_total"
        f" ORDER BY ALL",
        ("report_date", "location_id", "reported_total", "rows_and_rejects"),
        "partitions differ from Booker's TotalResultsCount",
        params=(table,),
    )


def rejects_check(table: str) -> SqlCheck:
    return SqlCheck(
        table, "no_rejects",
        "No Booker record of this table was rejected (booker._rejects: a record no reader could"
        " read, or a value that does not fit its column). The rest of its partition loaded.",
        f"SELECT report_date, location_id, record_id, column_name, reason,"
        f" left(raw::VARCHAR, 300) FROM {_t('_rejects')} WHERE table_name = ?"
        f" ORDER BY report_date, location_id, record_id",
        ("report_date", "location_id", "record_id", "column", "reason", "raw"),
        "rejected records (the first shown; all in booker._rejects)",
        params=(table,),
    )


def options_check(table: str, settings: Settings) -> SqlCheck:
    """Partitions loaded under options other than the deployment's, a range per location and
    options, each with the command that re-loads it under the deployment's."""
    options = table_options(table)
    wanted = {name: settings.options[name] for name in options}
    differs = " OR ".join(f"(options->>'{name}')::BOOLEAN IS DISTINCT FROM ?" for name in options)
    shown = ", ".join(f"{OPTIONS[name].setting}={str(on).lower()}" for name, on in wanted.items())
    return SqlCheck(
        table, "options_match_deployment",
        f"Every partition was loaded with this deployment's options ({shown}): a table mixing "
        "partitions loaded with and without an option means two things at once (warning: "
        "each row is true to what was asked).",
        f"SELECT location_id, min(report_date), max(report_date), count(*),"
        f" coalesce(options::VARCHAR, 'not recorded (loaded before options were)'),"
        f" 'booker-assets backfill --from ' || min(report_date) || ' --to ' || max(report_date)"
        f" || ' --locations ' || location_id || ' --assets ' || ?"
        f" FROM {_t('_loads')} WHERE table_name = ? AND status <> 'no_history'"
        f" AND (options IS NULL OR {differs}) GROUP BY location_id, options::VARCHAR"
        f" ORDER BY ALL",
        ("location_id", "first_day", "last_day", "partitions", "loaded_with", "backfill"),
        f"partition range(s) were loaded under other options than this deployment's ({shown}); "
        "each row's backfill, run with the deployment's settings, re-loads them",
        params=(table, table, *wanted.values()),
        severity=dg.AssetCheckSeverity.WARN,
        commands="backfill",
    )


# ---------------------------------------------------------------- orders

def _unmatched(table: str, name: str, description: str, other: str, on: str, counted: str,
               what: str, asset: str = "") -> SqlCheck:
    """Rows of ``table`` with no row of ``other`` in their partition that matches ``on``
    (``t``: the table, ``o``: the other); a check of ``asset`` (default: ``table``)."""
    asset = asset or table
    return SqlCheck(
        asset, name, description,
        f"SELECT t.report_date, t.location_id, count(*) FROM {_t(table)} t"
        f" ANTI JOIN {_t(other)} o ON o.report_date = t.report_date"
        f" AND o.location_id = t.location_id AND {on} GROUP BY ALL ORDER BY ALL",
        ("report_date", "location_id", counted), what,
        deps=tuple(t for t in (table, other) if t != asset),
    )


ORDER_CHECKS = (
    *(_unmatched(
        table, "order_exists",
        "Every row's order_id is an order of booker.orders in the same partition.",
        "orders", "o.id = t.order_id", "rows_without_order",
        "partitions have rows whose order is missing",
    ) for table in ("orders_items", "orders_refunds")),
    _unmatched(
        "orders", "items_exist",
        "Every order has its items in booker.orders_items, in the same partition (both are"
        " written in one transaction: an order without items is a torn or partial load).",
        "orders_items", "o.order_id = t.id", "orders_without_items",
        "partitions have orders without items",
        asset="orders_items",  # evaluated when the items are loaded, as orders' are with them
    ),
    SqlCheck(
        "orders_refunds", "refunds_within_order_total",
        "The refunds of an order never add up to more than its final total.",
        f"SELECT r.report_date, r.location_id, r.order_id, sum(r.amount_amount),"
        f" any_value(o.final_total_amount) FROM {_t('orders_refunds')} r"
        f" JOIN {_t('orders')} o ON o.report_date = r.report_date"
        f" AND o.location_id = r.location_id AND o.id = r.order_id GROUP BY ALL"
        f" HAVING sum(r.amount_amount) > any_value(o.final_total_amount) ORDER BY ALL",
        ("report_date", "location_id", "order_id", "refunded", "final_total"),
        "orders are refunded more than their final total",
        deps=("orders",),
    ),
    SqlCheck(
        "orders", "open_days_have_orders",
        "A location-day loaded with 0 orders while location_schedules says it was open"
        " (warning: a quiet day happens, a broken feed too).",
        f"SELECT l.report_date, l.location_id FROM {_t('_loads')} l"
        f" JOIN {_t('location_schedules')} s ON s.report_date = l.report_date"
        f" AND s.location_id = l.location_id AND s.date = l.report_date"
        f" WHERE l.table_name = 'orders' AND l.row_count = 0"
        f" AND NOT coalesce(s.is_closed, false) ORDER BY ALL",
        ("report_date", "location_id"),
        "open location-days have no orders",
        deps=("location_schedules",),
        severity=dg.AssetCheckSeverity.WARN,
    ),
)


# ---------------------------------------------------------------- appointments

APPOINTMENT_CHECKS = (
    SqlCheck(
        "appointment_treatments", "appointment_exists",
        "Every service line's appointment_id is an appointment of booker.appointments in the"
        " same partition.",
        f"SELECT t.report_date, t.location_id, count(*) FROM {_t('appointment_treatments')} t"
        f" ANTI JOIN {_t('appointments')} a ON a.report_date = t.report_date"
        f" AND a.location_id = t.location_id AND a.id = t.appointment_id"
        f" GROUP BY ALL ORDER BY ALL",
        ("report_date", "location_id", "lines_without_appointment"),
        "partitions have service lines whose appointment is missing",
        deps=("appointments",),
    ),
    SqlCheck(
        "appointments", "order_exists",
        "A completed appointment (or one naming an order) has its order in booker.orders, on"
        " any day of the location (a checkout may pass midnight), wherever the appointment's"
        " day of orders is loaded (warning: the order's own day may not be loaded yet).",
        f"SELECT a.report_date, a.location_id, count(*) FROM {_t('appointments')} a"
        f" SEMI JOIN {_t('_loads')} l ON l.table_name = 'orders'"
        f" AND l.report_date = a.report_date AND l.location_id = a.location_id"
        f" WHERE (a.order_id IS NOT NULL OR a.status_name = 'Completed')"
        f" AND NOT EXISTS (SELECT 1 FROM {_t('orders')} o"
        f" WHERE o.location_id = a.location_id AND o.id = a.order_id)"
        f" GROUP BY ALL ORDER BY ALL",
        ("report_date", "location_id", "appointments_without_order"),
        "partitions have completed appointments whose order is missing",
        deps=("orders",),
        severity=dg.AssetCheckSeverity.WARN,
    ),
)


def drift_check(table: str, warehouse: Warehouse) -> BookerCheck:
    """WARN when Booker sent a field of this table in a shape it was not declared with: the
    values are kept as they came (never a lost row), the check names each field."""
    spec = dg.AssetCheckSpec(asset=_key(table), name="schema_drift", description=(
        "Every field came in its declared shape. A warning names each field that did not, the "
        "shape declared and seen, rows, since which partition and examples; the values are in "
        "<column>__raw and _drift (nothing was lost). `booker-assets drift` lists them all."))
    severity = dg.AssetCheckSeverity.WARN

    def evaluate(_locations: Sequence[str]) -> dg.AssetCheckResult:
        try:
            with warehouse.connect(read_only=True) as conn:
                found = drift(conn, [table], SCHEMA)
        except (duckdb.CatalogException, BookerStorageError) as exc:
            return _cannot_check(exc, severity)
        if not found:
            return dg.AssetCheckResult(passed=True, metadata={"drifted_fields": 0})
        shown = [asdict(f) for f in found[:SHOWN]]
        return dg.AssetCheckResult(
            passed=False, severity=severity,
            description=f"{len(found)} field shape(s) drifted: " + "; ".join(
                f.line().removeprefix(f"{table}.") for f in found[:3]),
            metadata={"drifted_fields": len(found),
                      "drift": metadata_table(shown, DRIFT_TYPES)})

    return BookerCheck(spec, evaluate)


def freshness_check(warehouse: Warehouse) -> BookerCheck:
    # Not a SqlCheck: its date parameter and failure text follow the day it is evaluated on.
    spec = dg.AssetCheckSpec(asset=_key("orders"), name="fresh",
                    description=f"The newest day of orders loaded (with rows or none) of each "
                    f"location partition (within BOOKER_LOCATION_IDS, if set) is at most "
                    f"{FRESH_DAYS} days old (UTC today).")

    def fresh(location_ids: Sequence[str]) -> dg.AssetCheckResult:
        oldest_ok = date.today() - timedelta(days=FRESH_DAYS)
        return _result(
            warehouse,
            # booker._loads, not the rows: a day loaded with 0 orders (closed on Sunday) is
            # a fresh day, not a stale one
            f"SELECT c.location_id, max(l.report_date) FROM (SELECT unnest(?::BIGINT[])"
            f" AS location_id) c LEFT JOIN {_t('_loads')} l ON l.location_id = c.location_id"
            f" AND l.table_name = 'orders' GROUP BY ALL"
            f" HAVING max(l.report_date) IS NULL OR max(l.report_date) < ?::DATE ORDER BY ALL",
            ["location_id", "newest_day"],
            f"locations have no day of orders loaded since {oldest_ok}",
            params=[[int(loc) for loc in location_ids], oldest_ok],
        )

    return BookerCheck(spec, fresh)


def check_evaluators(settings: Settings) -> dict[dg.AssetCheckKey, BookerCheck]:
    """Every check by key."""
    db = warehouse_of(settings)
    sql_checks = [
        *(check for table in TABLES for check in key_checks(table)),
        *(reported_total_check(name) for name, table in TABLES.items() if table.counted),
        *(rejects_check(name) for name in TABLES),
        *(options_check(name, settings) for name in TABLES if table_options(name)),
        *ORDER_CHECKS,
        *APPOINTMENT_CHECKS,
    ]
    checks = [
        *(check.build(db) for check in sql_checks),
        freshness_check(db),
        *(drift_check(name, db) for name in TABLES),
    ]
    return {check.spec.key: check for check in checks}


def build_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """All checks as ONE subsettable multi-check: a run evaluates the checks of the assets it
    materialized in a single step, not one step (and process) per check."""
    evaluators = check_evaluators(settings)

    @dg.multi_asset_check(
        name="booker_checks", specs=[c.spec for c in evaluators.values()], can_subset=True
    )
    def booker_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        locations = known_locations(context.instance, settings)
        for key in sorted(context.selected_asset_check_keys, key=str):
            result = evaluators[key].evaluate(locations)
            yield dg.AssetCheckResult(
                asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                severity=result.severity, description=result.description,
                metadata=result.metadata,
            )

    return [booker_checks]


# ---------------------------------------------------------------- after a failed load

Evaluate = Callable[[], dg.AssetCheckResult]


def planned_checks(context: dg.AssetExecutionContext) -> list[dg.AssetCheckKey]:
    """The checks Dagster planned for this run (whatever launched it: UI, sensor, CLI)."""
    records = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED).records
    planned = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    return [dg.AssetCheckKey(p.asset_key, p.check_name) for p in planned]


def evaluations_after_failure(
    context: dg.AssetExecutionContext, settings: Settings, stored: Set[dg.AssetKey],
    cause: str, others: Mapping[dg.AssetCheckKey, Evaluate],
) -> Iterator[dg.AssetCheckEvaluation]:
    """The run's planned checks, evaluated by the failing asset step itself.

    Dagster resolves a check still planned when its run fails as "Execution failed" (red),
    and the check step never runs once the asset step failed: a Booker outage would paint
    every check red. So the step evaluates them before it raises, on the data: what it
    stored as usual; a table it did not store on the rows stored before, its description
    naming the load's failure; a table never stored has no row to fail (passed, saying so).
    ``others``: checks outside ``booker_checks`` (the drift check), by key.
    """
    evaluators = check_evaluators(settings)
    locations = known_locations(context.instance, settings)
    for key in planned_checks(context):
        if key in evaluators:
            result = evaluators[key].evaluate(locations)
        elif key in others:
            result = others[key]()
        else:  # another code's check: its own step reports it
            continue
        if key.asset_key not in stored:
            result = _not_stored(result, key.asset_key, cause)
        yield dg.AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=key.name, passed=result.passed,
            severity=result.severity, description=result.description,
            metadata=result.metadata,
        )


def _not_stored(result: dg.AssetCheckResult, asset: dg.AssetKey,
                cause: str) -> dg.AssetCheckResult:
    note = f"This run did not store {asset.to_user_string()} (its load failed: {cause})"
    description = result.description or ""
    if description.startswith(CANNOT_CHECK):  # no table yet: no row can be wrong
        return dg.AssetCheckResult(passed=True, description=f"{note}; no rows stored yet.",
                                   metadata=result.metadata)
    return dg.AssetCheckResult(
        passed=result.passed, severity=result.severity, metadata=result.metadata,
        description=f"{note}; checked on the rows stored before"
        + (f": {description}" if description else "."))
