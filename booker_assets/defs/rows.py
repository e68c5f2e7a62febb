"""Rows into a report table, as every write does: staged as typed temp tables, a value its
column cannot hold exactly kept as it came (``<column>__raw``, ``_drift``), the columns a table
lacks added. Shared by the IO manager's slice writes (``defs/io_manager.py``) and the replay of
rejects (``defs/replay.py``), which runs inside a migration the IO manager starts: a module of
its own, so that neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import duckdb
import pandas as pd

from booker_assets.defs.storage import qualified, quote
from booker_assets.load.columns import KEPT_TYPE
from booker_assets.load.flatten import DRIFT, RAW, Column
from booker_assets.load.frames import BASE_COLUMNS

_BASE_TYPES = {c.name: c.type for c in BASE_COLUMNS}
STAGED = ("_typed", "_frame")  # the temp tables rows are staged in


def insert_rows(conn: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pd.DataFrame,
                columns: Sequence[Column]) -> None:
    """Add ``frame``'s rows to ``table`` as a write does (columns added, misfits kept), in the
    caller's transaction, deleting nothing: the replay of ``defs/replay.py``."""
    try:
        stage_rows(conn, frame, columns)
        keep_misfits(conn, schema, table)
        ensure_columns(conn, schema, table, columns)
        conn.execute(f"INSERT INTO {qualified(conn, table, schema)} BY NAME SELECT * FROM _frame")
    finally:
        for temp in STAGED:
            conn.execute(f"DROP TABLE IF EXISTS temp.{temp}")


def stage_rows(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame,
               columns: Sequence[Column]) -> None:
    """Rows as the typed temp table ``_typed``: one scan of the DataFrame, cast to the
    declared types (the loader already read every value into its type)."""
    frame = _with_loaded_at(frame)
    missing = [c.name for c in BASE_COLUMNS if c.name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the required columns {missing}")
    declared = {c.name: c.type for c in columns} | _BASE_TYPES
    # An undeclared column that never held a value has no type yet (DuckDB would say INTEGER)
    valueless = {name for name in frame.columns
                 if frame[name].dtype == object and not frame[name].notna().any()}
    conn.register("_frame_in", frame)
    inferred = conn.execute("SELECT column_name FROM (DESCRIBE _frame_in)").fetchall()
    select = ", ".join(
        f"CAST({quote(name)} AS {declared[name]}) AS {quote(name)}" if name in declared
        else quote(name)
        for (name,) in inferred if name in declared or name not in valueless
    )
    conn.execute(f"CREATE TEMP TABLE _typed AS SELECT {select} FROM _frame_in")
    conn.unregister("_frame_in")


def _with_loaded_at(frame: pd.DataFrame) -> pd.DataFrame:
    if "_loaded_at" in frame.columns:
        return frame
    return frame.assign(_loaded_at=pd.Timestamp(datetime.now(timezone.utc)))


def ensure_columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str,
                   declared: Sequence[Column]) -> list[str]:
    """Create the table with every declared column, or add the columns it lacks (declared
    ones, and those the data brought, typed as they arrived). Returns the added names."""
    staged = conn.execute("SELECT column_name, column_type FROM (DESCRIBE _frame)").fetchall()
    wanted = {c.name: c.type for c in BASE_COLUMNS} | {c.name: c.type for c in declared}
    wanted |= {name: dtype for name, dtype in staged if name not in wanted}
    existing = {name.casefold() for name, _ in table_columns(conn, schema, table)}
    target = qualified(conn, table, schema)
    if not existing:
        columns = ", ".join(f"{quote(name)} {dtype}" for name, dtype in wanted.items())
        conn.execute(f"CREATE TABLE {target} ({columns})")
        return []
    added = [name for name in wanted if name.casefold() not in existing]
    for name in added:
        conn.execute(f"ALTER TABLE {target} ADD COLUMN {quote(name)} {wanted[name]}")
    return added


def keep_misfits(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    """A value its column's type cannot hold exactly (a field first seen as a number, now
    text; ``"0042"`` where numbers are) is kept as it came, as the extractor keeps a declared
    field's: null in the column, the value in ``<column>__raw``, a drift in the row's
    ``_drift``. The row loads; nothing is rounded or cast by guess. ``_frame`` is made from
    ``_typed`` (altering or replacing a temp table in a DuckLake transaction aborts DuckDB)."""
    types = {name.casefold(): dtype for name, dtype in table_columns(conn, schema, table)}
    staged = conn.execute("SELECT column_name, column_type FROM (DESCRIBE _typed)").fetchall()
    bad = {name: (f"({quote(name)} IS NOT NULL AND CAST(TRY_CAST({quote(name)} AS {wanted})"
                  f" AS {dtype}) IS DISTINCT FROM {quote(name)})", wanted, dtype)
           for name, dtype in staged
           if (wanted := types.get(name.casefold(), dtype)) != dtype}
    bad = {name: found for name, found in bad.items()
           if conn.execute(f"SELECT count(*) FROM _typed WHERE {found[0]}").fetchall()[0][0]}
    if not bad:
        conn.execute("CREATE TEMP TABLE _frame AS SELECT * FROM _typed")
        return
    entries = ", ".join(
        f"CASE WHEN {where} THEN json_object('field', '{name}', 'declared', '{wanted}',"
        f" 'seen', '{_SEEN.get(dtype, dtype)}', 'value', to_json({quote(name)})) END"
        for name, (where, wanted, dtype) in bad.items())
    had = ("CAST(_drift::JSON AS JSON[])" if any(name == DRIFT for name, _ in staged)
           else "[]::JSON[]")
    drift = (f"nullif(list_filter(list_concat(coalesce({had}, []::JSON[]), [{entries}]),"
             f" e -> e IS NOT NULL), []::JSON[])::JSON::{KEPT_TYPE}")
    nulled = ", ".join(f"CASE WHEN {where} THEN NULL ELSE {quote(name)} END AS {quote(name)}"
                       for name, (where, _, _) in bad.items())
    raws = ", ".join(f"CASE WHEN {where} THEN to_json({quote(name)})::{KEPT_TYPE} END AS"
                     f" {quote(name + RAW)}"
                     for name, (where, _, _) in bad.items())
    kept = [name for name, _ in staged if name != DRIFT and name not in bad]
    conn.execute(f"CREATE TEMP TABLE _frame AS SELECT {', '.join(map(quote, kept))}, {nulled},"
                 f" {raws}, {drift} AS {DRIFT} FROM _typed")


_SEEN = {"VARCHAR": "text", "BIGINT": "number", "DOUBLE": "number", "BOOLEAN": "boolean"}


def table_columns(
    conn: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    """A table's (or view's) columns and types, in order; none when it does not exist."""
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns()"
        " WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [catalog, schema, table],
    ).fetchall()
