"""DuckDB IO manager for Booker reports: one transaction per slice, columns by name, file lock.

Taken from dagster-duckdb / dagster-duckdb-pandas:
- ``DuckDBResource.get_connection`` opens the connection (its ``backoff`` retry on DuckDB's
  file lock still helps against processes that ignore our lock file, e.g. the DuckDB CLI);
- the pandas handler's conventions: DuckDB scans the DataFrame in place (no copy, no pyarrow),
  inputs come back through ``fetchdf``, the table is the last component of the asset key.

Changed, because the stock ``DuckDBPandasIOManager`` (dagster-notes §2) ...
- runs DELETE and INSERT as separate autocommits, so a failed INSERT loses the partition:
  here schema, DDL, delete, insert, ``_loads`` and the view are ONE transaction, rolled back
  on any error;
- skips empty frames: here an empty frame still creates the table and records the day in
  ``<schema>._loads`` with row_count 0;
- inserts by position: here ``INSERT ... BY NAME``, missing columns are added with
  ``ALTER TABLE ADD COLUMN`` and DuckDB casts drifted types (its error names the column);
- derives the slice from ``partition_expr`` and needs a rectangular slice with one key range:
  here the slice comes from the data (``ReportFrame.partitions``), so any set of
  (report_date, location_id) pairs works, including brand-level ``location_id IS NULL`` ones;
- fails when two processes open the file: here every connection is taken under an exclusive
  ``flock`` on ``<database>.lock`` (plus a per-process ``threading.Lock``), so writers queue.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from booker_assets.errors import BookerError
from booker_assets.load.frames import (
    Partition,
    PartitionLoad,
    ReportFrame,
    require_columns,
)

# Columns every report table has, with the types they are stored as whatever pandas inferred
# (an empty frame's object columns would otherwise become VARCHAR or DuckDB's NULL type).
KEY_TYPES = {
    "report_date": "DATE",
    "location_id": "VARCHAR",
    "_loaded_at": "TIMESTAMP WITH TIME ZONE",
}
ENTITY_KEY_METADATA = "booker/entity_key"
DATE_DIMENSION, LOCATION_DIMENSION = "date", "location"
_NULL_TYPE = '"NULL"'  # what DuckDB infers for an object column holding no values
_FALLBACK_TYPE = "VARCHAR"
SCHEMA_ALWAYS_UP_TO_DAYS = 8  # a daily load with its 7-day lookback

class BookerStorageError(BookerError):
    """A DuckDB read or write failed; ``where`` names the database, table and slice."""


# ---------------------------------------------------------------- connections and locking

_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def connect_locked(
    database: str, read_only: bool = False, timeout_seconds: float = 600
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection held under the lock every Booker reader and writer takes.

    Not re-entrant: do not call it again (same database) while holding its connection.
    """
    path = _prepare_path(database, read_only)
    deadline = time.monotonic() + timeout_seconds
    with _thread_lock(path, deadline), _file_lock(path, deadline, timeout_seconds):
        config = {"access_mode": "READ_ONLY"} if read_only else {}
        with DuckDBResource(database=str(path), connection_config=config).get_connection() as conn:
            try:
                yield conn
            finally:  # get_connection skips close() when the body raises
                conn.close()


def _prepare_path(database: str, read_only: bool) -> Path:
    path = Path(database).expanduser().resolve()
    if read_only and not path.exists():
        # checked here: DuckDB's "file not found" would be retried by backoff for ~100 s
        raise BookerStorageError(
            "the file does not exist", where=f"DuckDB {path}", fix="materialize an asset first"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f"{path.name}.lock").touch()
    except OSError as exc:
        raise BookerStorageError(
            f"cannot create the database or its lock file: {exc}",
            where=f"DuckDB {path}",
            fix="point BOOKER_DUCKDB_PATH (the IO manager's `database`) at a writable directory",
        ) from exc
    if path.exists() and not read_only and not os.access(path, os.W_OK):
        raise BookerStorageError(
            "the database file is not writable",
            where=f"DuckDB {path}",
            fix="fix its permissions or point BOOKER_DUCKDB_PATH (`database`) elsewhere",
        )
    return path


@contextmanager
def _thread_lock(path: Path, deadline: float) -> Iterator[None]:
    # flock is per open file, so threads would also exclude each other; this lock just
    # makes them wait in-process and keeps DuckDB's same-process instance cache consistent.
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(path, threading.Lock())
    if not lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
        raise BookerStorageError(
            "another thread of this process holds the DuckDB file", where=f"DuckDB {path}"
        )
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _file_lock(path: Path, deadline: float, timeout_seconds: float) -> Iterator[None]:
    lock_path = path.parent / f"{path.name}.lock"
    with open(lock_path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BookerStorageError(
                        f"another process holds the DuckDB file (lock {lock_path}) for more"
                        f" than {timeout_seconds:g} s",
                        where=f"DuckDB {path}",
                        fix="wait for the other run or raise lock_timeout_seconds",
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- the IO manager


class BookerDuckDBIOManager(dg.ConfigurableIOManager):
    """Stores each ReportFrame slice in ``<schema_name>.<asset name>`` (see module docstring)."""

    database: str = Field(description="DuckDB file; its directory is created if missing.")
    schema_name: str = Field(default="booker", description="Schema of every report table.")
    lock_timeout_seconds: float = Field(
        default=600, description="How long to wait for other processes using the file."
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """An unusable path fails the run at start, before any Booker call or step retry."""
        _prepare_path(self.database, read_only=False)

    def handle_output(self, context: dg.OutputContext, obj: ReportFrame | pd.DataFrame) -> None:
        report = obj if isinstance(obj, ReportFrame) else ReportFrame.from_frame(obj)
        table = context.asset_key.path[-1]
        with connect_locked(self.database, timeout_seconds=self.lock_timeout_seconds) as conn:
            columns, changed = _write_slice(conn, self.schema_name, table, report,
                                            _entity_key(context))
        metadata = {
            "dagster/row_count": len(report.frame),
            "dagster/table_name": f"{self.schema_name}.{table}",
            "booker/partitions_written": len(report.partitions),
            "preview": dg.MetadataValue.md(markdown_table(report.frame.head(5))),
        }
        # Dagster stores an output's metadata once per partition of the range, and the column
        # schema is most of it (~17% of a 30-day run's CPU): long backfill slices carry it
        # only where the table's columns changed; daily loads always do.
        days = {day for day, _ in report.partitions}
        if changed or len(days) <= SCHEMA_ALWAYS_UP_TO_DAYS:
            metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
                dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in columns])
            )
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        wanted = _wanted_partitions(context) if context.has_asset_partitions else None
        with connect_locked(
            self.database, read_only=True, timeout_seconds=self.lock_timeout_seconds
        ) as conn:
            table = _qualified(conn, self.schema_name, context.asset_key.path[-1])
            try:
                return _read(conn, table, wanted)
            except duckdb.CatalogException as exc:
                raise BookerStorageError(
                    f"table {table} does not exist: {exc}",
                    where=f"DuckDB {self.database}",
                    fix="materialize the upstream asset first",
                ) from exc


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
        wanted.append((date.fromisoformat(dims[DATE_DIMENSION]), dims[LOCATION_DIMENSION]))
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
            " AND (w.location_id IS NULL OR t.location_id = w.location_id::VARCHAR)"
            " ORDER BY t.report_date, t.location_id"
        ).fetchdf()
    frame["report_date"] = frame["report_date"].dt.date  # fetchdf gives datetime64; assets use date
    return frame


# ---------------------------------------------------------------- the write transaction


def _write_slice(
    conn: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    report: ReportFrame,
    entity_key: list[str],
) -> tuple[list[tuple[str, str]], bool]:
    """Replace the slice in one transaction; return the table's (column, type) afterwards and
    whether this write changed them."""
    target = _qualified(conn, schema, table)
    conn.begin()
    try:
        frame = _with_loaded_at(report.frame)
        require_columns(frame, list(KEY_TYPES))
        # One scan of the DataFrame (the costly part: object columns are read value by value);
        # the checks and the insert then read DuckDB's own copy.
        conn.register("_frame_in", frame)
        conn.execute("CREATE TEMP TABLE _frame AS SELECT * FROM _frame_in")
        conn.unregister("_frame_in")
        _register_slice(conn, report)
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_qualified(conn, schema)}")
        before = _ensure_columns(conn, schema, table, conn.execute("DESCRIBE _frame").fetchall())
        _check_frame_matches_slice(conn)
        conn.execute(
            f"DELETE FROM {target} t USING _slice s WHERE t.report_date = s.report_date"
            " AND t.location_id IS NOT DISTINCT FROM s.location_id"
        )
        conn.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _frame")
        _record_loads(conn, schema, table)
        if entity_key:
            _create_current_view(conn, schema, table, entity_key)
        columns = _table_columns(conn, schema, table)
        conn.commit()
    except Exception as exc:
        conn.rollback()
        raise BookerStorageError(
            f"nothing was changed: {exc}",
            where=f"writing {target} ({_describe(report.partitions)})",
        ) from exc
    return columns, columns != before


def _with_loaded_at(frame: pd.DataFrame) -> pd.DataFrame:
    if "_loaded_at" in frame.columns:
        return frame
    return frame.assign(_loaded_at=pd.Timestamp(datetime.now(timezone.utc)))


def _register_slice(conn: duckdb.DuckDBPyConnection, report: ReportFrame) -> None:
    keys = [(ld.report_date, ld.location_id) for ld in report.loads]
    if len(set(keys)) != len(keys) or Counter(keys) != Counter(report.partitions):
        raise ValueError("ReportFrame.loads must hold exactly one PartitionLoad per partition")
    loads = pd.DataFrame(
        [vars(ld) for ld in report.loads], columns=list(PartitionLoad.__dataclass_fields__)
    )
    conn.register("_slice_in", loads)
    # a typed copy: an all-None column would otherwise have DuckDB's NULL type
    conn.execute(
        "CREATE TEMP TABLE _slice AS SELECT report_date::DATE AS report_date,"
        " location_id::VARCHAR AS location_id, row_count::BIGINT AS row_count,"
        " reported_total::BIGINT AS reported_total, pages::INTEGER AS pages,"
        " requests::INTEGER AS requests FROM _slice_in"
    )


def _ensure_columns(
    conn: duckdb.DuckDBPyConnection, schema: str, table: str, described: Sequence[tuple]
) -> list[tuple[str, str]]:
    """Create the table or add the columns it lacks; retype columns that never held a value.
    Returns the table's (column, type) as they were before."""
    inferred = {row[0]: row[1] for row in described}
    incoming = {
        name: KEY_TYPES.get(name, _FALLBACK_TYPE if dtype == _NULL_TYPE else dtype)
        for name, dtype in inferred.items()
    }
    before = _table_columns(conn, schema, table)
    existing = {name.casefold(): (name, dtype) for name, dtype in before}
    target = _qualified(conn, schema, table)
    if not existing:
        columns = ", ".join(f"{_quote(name)} {dtype}" for name, dtype in incoming.items())
        conn.execute(f"CREATE TABLE {target} ({columns})")
        return before
    for name, dtype in incoming.items():
        if name.casefold() not in existing:
            conn.execute(f"ALTER TABLE {target} ADD COLUMN {_quote(name)} {dtype}")
    drifted = [
        (existing[n.casefold()][0], t)
        for n, t in incoming.items()
        if n.casefold() in existing and existing[n.casefold()][1] != t and inferred[n] != _NULL_TYPE
    ]
    _retype_empty_columns(conn, target, drifted)
    return before


def _retype_empty_columns(
    conn: duckdb.DuckDBPyConnection, target: str, drifted: list[tuple[str, str]]
) -> None:
    """A column created from an empty day (VARCHAR) takes the type of its first real values."""
    if not drifted:
        return
    counts = conn.execute(
        "SELECT " + ", ".join(f"count({_quote(name)})" for name, _ in drifted) + f" FROM {target}"
    ).fetchall()[0]
    for (name, dtype), count in zip(drifted, counts, strict=True):
        if count == 0:
            conn.execute(f"ALTER TABLE {target} ALTER COLUMN {_quote(name)} SET DATA TYPE {dtype}")


def _check_frame_matches_slice(conn: duckdb.DuckDBPyConnection) -> None:
    """Rows outside the slice would never be deleted on a re-run; row counts must agree."""
    mismatches = conn.execute(
        "WITH rows AS (SELECT report_date::DATE AS d, location_id::VARCHAR AS l, count(*) AS n"
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


def _record_loads(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    loads = _qualified(conn, schema, "_loads")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {loads} (table_name VARCHAR, report_date DATE,"
        " location_id VARCHAR, row_count BIGINT, reported_total BIGINT, pages INTEGER,"
        " requests INTEGER, loaded_at TIMESTAMPTZ)"
    )
    # no primary key: location_id is NULL for brand-level reports, so upsert = delete + insert
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
    conn: duckdb.DuckDBPyConnection, schema: str, table: str, entity_key: list[str]
) -> None:
    known = {name.casefold() for name, _ in _table_columns(conn, schema, table)}
    missing = [name for name in entity_key if name.casefold() not in known]
    if missing:
        raise ValueError(f"{ENTITY_KEY_METADATA} names columns the table lacks: {missing}")
    conn.execute(
        f"CREATE OR REPLACE VIEW {_qualified(conn, schema, table + '_current')} AS"
        f" SELECT * FROM {_quote(table)} QUALIFY row_number() OVER (PARTITION BY"
        f" {', '.join(map(_quote, entity_key))} ORDER BY report_date DESC, _loaded_at DESC) = 1"
    )


# ---------------------------------------------------------------- small helpers


def _table_columns(
    conn: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns()"
        " WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()


def _partition_frame(partitions: Sequence[Partition]) -> pd.DataFrame:
    return pd.DataFrame(list(partitions), columns=["report_date", "location_id"], dtype=object)


def _describe(partitions: Sequence[Partition]) -> str:
    if not partitions:
        return "no partitions"
    days = sorted({day for day, _ in partitions})
    locations = sorted({str(loc) for _, loc in partitions})
    shown = ", ".join(locations[:5]) + (", ..." if len(locations) > 5 else "")
    return f"{len(partitions)} partition(s): report_date {days[0]}..{days[-1]}, location_id {shown}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _qualified(conn: duckdb.DuckDBPyConnection, *names: str) -> str:
    """catalog.schema[.table]: DuckDB names the catalog after the file, so in a file named
    ``booker.duckdb`` a bare ``booker.orders`` is rejected as ambiguous."""
    # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unfinished
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return ".".join(map(_quote, (catalog, *names)))


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style markdown table of ``frame`` (``tabulate`` is not installed)."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    header = [line(frame.columns), line(["---"] * len(frame.columns))]
    return "\n".join(header + [line(row) for row in frame.itertuples(index=False)])
