"""DuckDB IO manager for Booker reports: one transaction per report, declared columns, rejects.

Written for this project, not on dagster-duckdb (README, "Why not dagster-duckdb's IO
manager"; ``booker_assets_tests/test_stock_duckdb.py`` measures each point). Kept from its
design: DuckDB scans the DataFrame in place, the table is the last part of the asset key. The
connection is the warehouse's (``storage``), not ``DuckDBResource.get_connection``: that one
retries a held file 10 times over 102 s in silence, then fails without saying who holds it.

Changed, because the stock ``DuckDBPandasIOManager`` ...
- runs DELETE and INSERT as separate autocommits, one output after the other, so a failed
  INSERT loses the partition and a kill between two tables leaves orders new and items old:
  here schema, DDL, delete, insert, rejects, ``_loads`` and the view of every table of a
  report (orders, items, refunds) are ONE transaction (``ReportWrite``);
- skips empty frames: here an empty frame still creates the table (with every declared column)
  and records the day in ``<schema>._loads`` with row_count 0 (or ``no_history``);
- inserts by position and types columns by the first values it sees: here ``INSERT ... BY
  NAME`` into declared types; a column the data brings is added with the type it arrived in,
  and a later value that does not fit a column's type is kept as it came (``<column>__raw``),
  never a reject nor a failed write;
- derives the slice from ``partition_expr``, which fails on every write for days × dynamic
  locations: here the slice comes from the data (``ReportFrame.partitions``), so any set of
  (report_date, location_id) pairs works;
- fails when two processes open the file: here, on a DuckDB file, writers queue under its
  lock and wait, saying who holds it, for a process outside this code; on a DuckLake, a write
  that meets another writer's commit is retried whole. At the end of the step, the analysts'
  read copy is published (``store().publish``, called by the asset step: a copy that could
  not be published fails the step, which a resource's teardown cannot do).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
from pydantic import Field

from booker_assets.defs.migrate import migrate
from booker_assets.defs.rows import STAGED, ensure_columns, keep_misfits, stage_rows, table_columns
from booker_assets.defs.storage import (
    SCHEMA,
    BookerStorageError,
    BookerWriteConflict,
    Log,
    Warehouse,
    disk_full,
    one_line,
    open_warehouse,
    prepare_path,
    qualified,
    quote,
)
from booker_assets.errors import BookerError
from booker_assets.load.flatten import DRIFT, RAW
from booker_assets.load.frames import Partition, PartitionLoad, ReportFrame
from booker_assets.settings import DEFAULT_LOCK_WAIT_SECONDS, WAREHOUSES, Settings

ENTITY_KEY_METADATA = "booker/entity_key"
DATE_DIMENSION, LOCATION_DIMENSION = "date", "location"
LOADS_COLUMNS = (
    "table_name VARCHAR, report_date DATE, location_id BIGINT, row_count BIGINT, "
    "reported_total BIGINT, pages INTEGER, requests INTEGER, status VARCHAR, rejected BIGINT, "
    "loaded_at TIMESTAMPTZ, options JSON"
)
REJECTS_COLUMNS = (
    "table_name VARCHAR, report_date DATE, location_id BIGINT, record_id VARCHAR, "
    "column_name VARCHAR, reason VARCHAR, raw JSON, loaded_at TIMESTAMPTZ"
)


class BookerDuckDBIOManager(dg.ConfigurableIOManager):
    """Stores each ReportFrame slice in ``<schema_name>.<asset name>`` (see module docstring)."""

    database: str = Field(description="DuckDB file; its directory is created if missing.")
    schema_name: str = Field(default=SCHEMA, description="Schema of every report table.")
    warehouse: str = Field(default=WAREHOUSES[0],
                           description="duckdb (the file `database`) or ducklake.")
    ducklake_catalog: str = Field(default="", description="ducklake: the catalog's Postgres "
                                  "database, as a libpq connection string (no password).")
    ducklake_data_path: str = Field(default="", description="ducklake: the data files' folder.")
    lock_wait_seconds: float = Field(
        default=DEFAULT_LOCK_WAIT_SECONDS,
        description="How long a write waits while another process holds the DuckDB file.",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> BookerDuckDBIOManager:
        return cls(database=settings.duckdb_path, warehouse=settings.warehouse,
                   ducklake_catalog=settings.ducklake_catalog,
                   ducklake_data_path=settings.ducklake_data_path,
                   lock_wait_seconds=settings.lock_wait_seconds)

    def store(self) -> Warehouse:
        return open_warehouse(self.warehouse, self.database, self.ducklake_catalog,
                              self.ducklake_data_path, self.lock_wait_seconds)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """An unusable warehouse fails the run at start, before any Booker call or step retry,
        and so does one held for the whole wait (nothing fetched is lost); a database written
        by an older version is upgraded once, here."""
        if self.warehouse == "duckdb":
            prepare_path(self.database, read_only=False)
        log = context.log or None
        changes = self.store().write(lambda conn: migrate(conn, self.schema_name), log=log)
        for line in changes if log else []:
            log.info(line)

    def handle_output(self, context: dg.OutputContext,
                      obj: TablePart | ReportFrame | pd.DataFrame) -> None:
        """A report's first table writes every table of its fetch in one transaction; the
        others only record their materialization (see ``ReportWrite``)."""
        part = obj if isinstance(obj, TablePart) else _alone(context, obj)
        if part.writes:
            try:
                part.write.added = self.store().write(
                    lambda conn: write_report(conn, self.schema_name, part.write.slices),
                    log=_log_of(context), needs=part.write.size())
            except BookerError as exc:
                # The UI's first line is the cause; only what heals by waiting is retried.
                raise dg.Failure(description=str(exc), allow_retries=exc.transient) from exc
        elif part.write.added is None:  # a bug: the outputs came in another order
            raise dg.Failure(f"{part.table} was to be written with {part.write.slices[0].table},"
                             " which was not written")
        added = part.write.added.get(part.table)
        if added:  # the asset reports each partition's figures; this, only news
            context.add_output_metadata({"booker/new_columns": ", ".join(added)})
        columns = next(s.report.columns for s in part.write.slices if s.table == part.table)
        if any(_kept(c.name) for c in columns):  # the UI shows where values were kept
            context.add_output_metadata({"dagster/column_schema": dg.TableSchema(columns=[
                dg.TableColumn(c.name, c.type, description=c.description) for c in columns])})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        wanted = _wanted_partitions(context) if context.has_asset_partitions else None
        store = self.store()
        with store.connect(read_only=True, log=_log_of(context)) as conn:
            table = qualified(conn, context.asset_key.path[-1], self.schema_name)
            try:
                return _read(conn, table, wanted)
            except duckdb.CatalogException as exc:
                raise BookerStorageError(
                    f"table {table} does not exist: {exc}",
                    where=store.where,
                    fix="materialize the upstream asset first",
                ) from exc


def _kept(name: str) -> bool:
    return name.endswith(RAW) or name == DRIFT


def _log_of(context: dg.OutputContext | dg.InputContext) -> Log | None:
    """The context's Dagster log; none in a context built by hand (tests)."""
    try:
        return context.log
    except dg.DagsterInvariantViolationError:
        return None


def _alone(context: dg.OutputContext, obj: ReportFrame | pd.DataFrame) -> TablePart:
    """A slice handed to the IO manager by itself: a report of one table."""
    report = obj if isinstance(obj, ReportFrame) else ReportFrame.from_frame(obj)
    table = context.asset_key.path[-1]
    return TablePart(ReportWrite([TableSlice(table, report, _entity_key(context))]), table)


def _entity_key(context: dg.OutputContext) -> list[str]:
    value = (context.definition_metadata or {}).get(ENTITY_KEY_METADATA)
    value = getattr(value, "value", value)  # a raw list, or a JsonMetadataValue
    return [value] if isinstance(value, str) else list(value or [])


def _wanted_partitions(context: dg.InputContext) -> list[Partition]:
    """(date, location) per upstream key; location None means every location of that date."""
    partitions_def = context.asset_partitions_def
    if not isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return [(date.fromisoformat(key), None) for key in context.asset_partition_keys]
    wanted = []
    for key in context.asset_partition_keys:
        if not isinstance(key, dg.MultiPartitionKey):  # a plain "2025-03-01|1002" string
            key = partitions_def.get_partition_key_from_str(key)
        dims = key.keys_by_dimension
        wanted.append((date.fromisoformat(dims[DATE_DIMENSION]), int(dims[LOCATION_DIMENSION])))
    return wanted


def _read(
    conn: duckdb.DuckDBPyConnection, table: str, wanted: list[Partition] | None
) -> pd.DataFrame:
    if wanted is None:
        frame = conn.execute(f"SELECT * FROM {table}").fetchdf()
    else:
        conn.register("_wanted", _partition_frame(wanted))
        frame = conn.execute(
            f"SELECT t.* FROM {table} t SEMI JOIN _wanted w ON t.report_date = w.report_date::DATE"
            " AND (w.location_id IS NULL OR t.location_id = w.location_id::BIGINT)"
            " ORDER BY t.report_date, t.location_id"
        ).fetchdf()
    frame["report_date"] = frame["report_date"].dt.date  # fetchdf gives datetime64; assets use date
    return frame


# ---------------------------------------------------------------- the write transaction


@dataclass(frozen=True)
class TableSlice:
    """One table's part of a report's write: its rows and the key of its ``_current`` view."""

    table: str
    report: ReportFrame
    entity_key: Sequence[str] = ()


@dataclass
class ReportWrite:
    """The tables one fetch produced (orders, their items and refunds), written in ONE
    transaction: a kill at any instant leaves the report wholly old or wholly new.

    Dagster stores each output of a multi-asset by its own ``handle_output``, one after the
    other, so the report's first output writes them all and the others find them written:
    each asset still gets its own materialization, and a table is never written twice."""

    slices: list[TableSlice]
    added: dict[str, list[str]] | None = None  # the columns each table gained; None: unwritten

    def size(self) -> int:
        """About how many bytes the write stores: its rows as they are in memory."""
        return sum(int(s.report.frame.memory_usage(deep=True).sum()) for s in self.slices)


@dataclass(frozen=True)
class TablePart:
    """An output's value: its table's part of a report's write."""

    write: ReportWrite
    table: str

    @property
    def writes(self) -> bool:
        return self.write.slices[0].table == self.table


def write_report(conn: duckdb.DuckDBPyConnection, schema: str,
                 slices: Sequence[TableSlice]) -> dict[str, list[str]]:
    """Replace every slice's rows, rejects and loads in one transaction; the columns each
    table gained."""
    targets = [qualified(conn, s.table, schema) for s in slices]
    conn.begin()
    try:
        added = {s.table: _write_table(conn, schema, s) for s in slices}
        conn.commit()
    except Exception as exc:
        _rollback(conn)
        raise _storage_error(exc, ", ".join(targets), slices[0].report.partitions) from exc
    return added


def write_slice(conn: duckdb.DuckDBPyConnection, schema: str, table: str, report: ReportFrame,
                entity_key: Sequence[str] = ()) -> list[str]:
    """One table's slice in a transaction of its own; the columns it gained."""
    return write_report(conn, schema, [TableSlice(table, report, entity_key)])[table]


def _write_table(conn: duckdb.DuckDBPyConnection, schema: str, part: TableSlice) -> list[str]:
    """One table's statements of a report's transaction; the columns it gained."""
    table, target = part.table, qualified(conn, part.table, schema)
    _stage(conn, part.report)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(conn, schema=schema)}")
    keep_misfits(conn, schema, table)
    added = ensure_columns(conn, schema, table, part.report.columns)
    _check_frame_matches_slice(conn)
    conn.execute(
        f"DELETE FROM {target} t USING _slice s WHERE t.report_date = s.report_date"
        " AND t.location_id IS NOT DISTINCT FROM s.location_id"
    )
    conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _frame")
    _record_rejects(conn, schema, table)
    _record_loads(conn, schema, table)
    # DuckDB binds a view's columns when it is made: made again when the table's columns
    # changed, and only then (on a DuckLake, two writers replacing one view conflict)
    view = f"{table}_current"
    if part.entity_key and table_columns(conn, schema, view) != table_columns(conn, schema, table):
        _create_current_view(conn, schema, table, part.entity_key)
    for temp in (*STAGED, "_slice", "_rejects"):  # the next table of the report stages its own
        conn.execute(f"DROP TABLE temp.{temp}")
    return added


def _stage(conn: duckdb.DuckDBPyConnection, report: ReportFrame) -> None:
    """The slice's rows, rejects and loads as typed temp tables."""
    stage_rows(conn, report.frame, report.columns)
    _register_slice(conn, report)
    rejects = pd.DataFrame([asdict(r) for r in report.rejects],
                           columns=["report_date", "location_id", "record_id", "column", "reason",
                                    "raw"])
    conn.register("_rejects_in", rejects)
    conn.execute(
        "CREATE TEMP TABLE _rejects AS SELECT report_date::DATE AS report_date,"
        " location_id::BIGINT AS location_id, record_id::VARCHAR AS record_id,"
        " \"column\"::VARCHAR AS column_name, reason::VARCHAR AS reason, raw::JSON AS raw"
        " FROM _rejects_in"
    )
    conn.unregister("_rejects_in")


def _register_slice(conn: duckdb.DuckDBPyConnection, report: ReportFrame) -> None:
    keys = [(ld.report_date, ld.location_id) for ld in report.loads]
    if len(set(keys)) != len(keys) or Counter(keys) != Counter(report.partitions):
        raise ValueError("ReportFrame.loads must hold exactly one PartitionLoad per partition")
    loads = pd.DataFrame([asdict(ld) | {"options": json.dumps(ld.options, sort_keys=True)}
                          for ld in report.loads], columns=list(PartitionLoad.__dataclass_fields__))
    conn.register("_slice_in", loads)
    # a typed copy: an all-None column would otherwise have DuckDB's NULL type
    conn.execute(
        "CREATE TEMP TABLE _slice AS SELECT report_date::DATE AS report_date,"
        " location_id::BIGINT AS location_id, row_count::BIGINT AS row_count,"
        " reported_total::BIGINT AS reported_total, pages::INTEGER AS pages,"
        " requests::INTEGER AS requests, status::VARCHAR AS status,"
        " rejected::BIGINT AS rejected, options::JSON AS options FROM _slice_in"
    )
    conn.unregister("_slice_in")


def _check_frame_matches_slice(conn: duckdb.DuckDBPyConnection) -> None:
    """Rows outside the slice would never be deleted on a re-run; row counts must agree."""
    mismatches = conn.execute(
        "WITH rows AS (SELECT report_date::DATE AS d, location_id::BIGINT AS l, count(*) AS n"
        " FROM _frame GROUP BY ALL)"
        " SELECT coalesce(s.report_date, r.d), coalesce(s.location_id, r.l), s.row_count, r.n"
        " FROM _slice s FULL JOIN rows r"
        " ON s.report_date = r.d AND s.location_id IS NOT DISTINCT FROM r.l"
        " WHERE s.row_count IS DISTINCT FROM coalesce(r.n, 0) LIMIT 5"
    ).fetchall()
    if mismatches:
        detail = "; ".join(
            f"{d}/{loc}: declared {declared}, frame has {actual or 0}"
            for d, loc, declared, actual in mismatches
        )
        raise ValueError(
            f"frame rows do not match the declared partitions ({detail});"
            " declared None means the rows are outside the slice"
        )


def _record_rejects(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    rejects = qualified(conn, "_rejects", schema)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {rejects} ({REJECTS_COLUMNS})")
    conn.execute(
        f"DELETE FROM {rejects} r USING _slice s WHERE r.table_name = ?"
        " AND r.report_date = s.report_date AND r.location_id IS NOT DISTINCT FROM s.location_id",
        [table],
    )
    conn.execute(f"INSERT INTO {rejects} BY NAME SELECT ? AS table_name, *, now() AS loaded_at"
                 " FROM _rejects", [table])


def _record_loads(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    loads = qualified(conn, "_loads", schema)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {loads} ({LOADS_COLUMNS})")
    # no primary key: location_id may be NULL, so upsert = delete + insert
    conn.execute(
        f"DELETE FROM {loads} l USING _slice s WHERE l.table_name = ?"
        " AND l.report_date = s.report_date"
        " AND l.location_id IS NOT DISTINCT FROM s.location_id",
        [table],
    )
    conn.execute(
        f"INSERT INTO {loads} BY NAME SELECT ? AS table_name, *, now() AS loaded_at FROM _slice",
        [table],
    )


def _create_current_view(
    conn: duckdb.DuckDBPyConnection, schema: str, table: str, entity_key: Sequence[str]
) -> None:
    known = {name.casefold() for name, _ in table_columns(conn, schema, table)}
    missing = [name for name in entity_key if name.casefold() not in known]
    if missing:
        raise ValueError(f"{ENTITY_KEY_METADATA} names columns the table lacks: {missing}")
    conn.execute(
        f"CREATE OR REPLACE VIEW {qualified(conn, table + '_current', schema)} AS"
        f" SELECT * FROM {qualified(conn, table, schema)} QUALIFY row_number() OVER (PARTITION BY"
        f" {', '.join(map(quote, entity_key))} ORDER BY report_date DESC, _loaded_at DESC) = 1"
    )


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back if DuckDB still has the transaction (after an IO error it may not: its
    "cannot rollback" would then hide the cause)."""
    with contextlib.suppress(duckdb.Error):
        conn.rollback()


def _storage_error(exc: Exception, target: str, partitions: Sequence[Partition]
                   ) -> BookerStorageError:
    cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = f"writing {target} ({_describe(partitions)})"
    if disk_full(exc):  # DuckDB raises it as a failed commit: not another writer's
        return BookerStorageError(f"nothing was changed: {cause}", where=where,
                                  fix="free disk space where the warehouse lives, then re-run")
    if isinstance(exc, duckdb.TransactionException):  # a DuckLake commit met another's
        return BookerWriteConflict(f"nothing was changed: {one_line(exc)}", where=where)
    return BookerStorageError(f"nothing was changed: {cause}", where=where)


# ---------------------------------------------------------------- small helpers


def _partition_frame(partitions: Sequence[Partition]) -> pd.DataFrame:
    return pd.DataFrame(list(partitions), columns=["report_date", "location_id"], dtype=object)


def _describe(partitions: Sequence[Partition]) -> str:
    if not partitions:
        return "no partitions"
    days = sorted({day for day, _ in partitions})
    locations = sorted({str(loc) for _, loc in partitions})
    shown = ", ".join(locations[:5]) + (", ..." if len(locations) > 5 else "")
    return f"{len(partitions)} partition(s): report_date {days[0]}..{days[-1]}, location_id {shown}"
