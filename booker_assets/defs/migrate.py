"""Upgrading a database written by an older version, in place, on the first load of this one.

Version 1 (before declared schemas) stored ``location_id`` as text, typed columns by the first
values seen, kept brand-level ``locations`` rows without a location, and stored today's lists
under every past day a backfill covered. Version 2:
- ``location_id`` is BIGINT everywhere, and the ``locations`` rows carry their own id;
- every declared column gets its declared type, where every stored value converts exactly
  (a column with a value that does not is left as it is, and said so: nothing is rounded
  or dropped);
- snapshot rows stored for a day at least two days before they were loaded (so not observed
  that day) move to the schema ``booker_backdated``, kept for whoever wants them, and their
  partitions are marked ``no_history`` in ``_loads``. Removing them from the tables, not
  flagging them in place, keeps every query on ``booker`` truthful without a new filter.

Version 3 (Domo's options became settings, and weekday defaults tables of their own):
- ``_loads`` gets ``options``, the options each partition was loaded with; NULL for the loads
  before, which nothing recorded (the check ``options_match_deployment`` names them);
- weekday schedule defaults stored in ``location_schedules`` / ``employee_schedules`` (rows
  without a date, from a load with schedule_defaults on) move to ``location_schedule_defaults``
  / ``employee_schedule_defaults``, with their loads; those days' dated schedules were never
  loaded, and the upgrade says which backfill loads them.

Version 4 (only the fields that place a record reject it): the records older versions set
aside in ``_rejects`` for a value of an unexpected shape are replayed into their tables
(``defs/replay.py``), once. Tables with personal columns are left to ``booker-assets replay``,
which knows BOOKER_PII (this upgrade runs in the IO manager, which does not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

import duckdb

from booker_assets.catalogue.reports import GROUP_OF, TABLES
from booker_assets.defs.storage import qualified, quote
from booker_assets.load.columns import declared_columns

SCHEMA_VERSION = 4
BACKDATED_SCHEMA = "booker_backdated"
# Version 1 split a plural "IDs" into "I_Ds": EmployeeIDs was employee_i_ds.
RENAMED = {"employee_i_ds": "employee_ids", "room_i_ds": "room_ids"}
# Version 2 stored weekday defaults in the dated tables; version 3 in their own.
DEFAULTS_MOVED = {"location_schedules": "location_schedule_defaults",
                  "employee_schedules": "employee_schedule_defaults"}


def migrate(conn: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    """Bring the database to ``SCHEMA_VERSION``; returns a line per change made."""
    version = _version(conn, schema)
    if version is None or version >= SCHEMA_VERSION:
        if version is None:
            _set_version(conn, schema, SCHEMA_VERSION)
        return []
    started = time.perf_counter()
    lines = []
    if version < 3:
        lines += _step(conn, schema, 3, lambda: _upgrade(conn, schema, version))
    # Version 4: only placing fields reject a record; what older versions set aside comes back
    # (a late import: the replay writes through the IO manager, which runs this upgrade)
    from booker_assets.defs.replay import replay
    lines += _step(conn, schema, 4, lambda: replay(conn, schema, None))
    return [*lines, f"upgraded the database to version {SCHEMA_VERSION} in "
                    f"{time.perf_counter() - started:.2f} s"]


def _step(conn: duckdb.DuckDBPyConnection, schema: str, version: int,
          work: Callable[[], list[str]]) -> list[str]:
    """One upgrade in its own transaction (DuckDB refuses to commit an ALTER of a table after
    a DELETE of it, so version 3's deletes and version 4's added columns commit apart)."""
    conn.begin()
    try:
        lines = work()
        _set_version(conn, schema, version)
        conn.commit()
    except Exception:
        with suppress(duckdb.Error):  # a failed COMMIT has ended the transaction already
            conn.rollback()
        raise
    return lines


def _version(conn: duckdb.DuckDBPyConnection, schema: str) -> int | None:
    """The stored version; 1 for report tables without one; None for an empty database."""
    tables = _stored(conn, schema)
    if "_schema_version" in tables:
        ((version,),) = conn.execute(
            f"SELECT max(version) FROM {qualified(conn, '_schema_version', schema)}").fetchall()
        return version
    return 1 if tables else None


def _set_version(conn: duckdb.DuckDBPyConnection, schema: str, version: int) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(conn, schema=schema)}")
    table = qualified(conn, "_schema_version", schema)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER, migrated_at TIMESTAMPTZ)")
    conn.execute(f"INSERT INTO {table} VALUES (?, now())", [version])


def _stored(conn: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return {name for (name,) in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?",
        [catalog, schema]).fetchall()}


def _types(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return dict(conn.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ?"
        " AND schema_name = ? AND table_name = ?", [catalog, schema, table]).fetchall())


def _upgrade(conn: duckdb.DuckDBPyConnection, schema: str, version: int) -> list[str]:
    # Every ALTER first, then the rows: DuckDB 1.4 refuses to commit a transaction that alters
    # a table after it deleted or updated rows of it.
    stored = _stored(conn, schema)
    if "_loads" in stored:
        _loads_columns(conn, schema)
    lines = _to_version_2(conn, schema, stored) if version < 2 else []
    return lines + [line for table in sorted(stored & set(DEFAULTS_MOVED))
                    for line in _move_defaults(conn, schema, table, "_loads" in stored)]


def _to_version_2(conn: duckdb.DuckDBPyConnection, schema: str, stored: set[str]) -> list[str]:
    lines = [line for table in sorted(stored & set(TABLES)) for line in _table(conn, schema, table)]
    if "_loads" in stored and _types(conn, schema, "_loads")["location_id"] != "BIGINT":
        lines.append(_retype(conn, qualified(conn, "_loads", schema), "_loads", "location_id",
                             "VARCHAR", "BIGINT"))
    if "locations" in stored:
        _locations(conn, schema, "_loads" in stored)
    return lines + [line for table in sorted(stored & set(TABLES))
                    if TABLES[table].history == "snapshot"
                    for line in _move_backdated(conn, schema, table)]


def _loads_columns(conn: duckdb.DuckDBPyConnection, schema: str) -> None:
    loads = qualified(conn, "_loads", schema)
    if "status" not in _types(conn, schema, "_loads"):
        conn.execute(f"ALTER TABLE {loads} ADD COLUMN status VARCHAR DEFAULT 'loaded'")
        conn.execute(f"ALTER TABLE {loads} ADD COLUMN rejected BIGINT DEFAULT 0")
    if "options" not in _types(conn, schema, "_loads"):  # NULL: not recorded
        conn.execute(f"ALTER TABLE {loads} ADD COLUMN options JSON")


def _locations(conn: duckdb.DuckDBPyConnection, schema: str, has_loads: bool) -> None:
    """Brand-level ``locations`` rows (no location) become each location's own record, and
    their loads one per location the day's snapshot held."""
    target = qualified(conn, "locations", schema)
    conn.execute(f"UPDATE {target} SET location_id = id WHERE location_id IS NULL")
    if not has_loads:
        return
    loads = qualified(conn, "_loads", schema)
    conn.execute(
        f"INSERT INTO {loads} BY NAME SELECT 'locations' AS table_name, l.report_date,"
        " t.id AS location_id, 1 AS row_count, 0 AS pages, 0 AS requests,"
        f" 'loaded' AS status, 0 AS rejected, l.loaded_at FROM {loads} l JOIN {target} t"
        " ON t.report_date = l.report_date"
        " WHERE l.table_name = 'locations' AND l.location_id IS NULL")
    conn.execute(f"DELETE FROM {loads} WHERE table_name = 'locations' AND location_id IS NULL")


def _table(conn: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    target = qualified(conn, name, schema)
    lines = _rename(conn, target, name, _types(conn, schema, name))
    stored = _types(conn, schema, name)
    return lines + [_retype(conn, target, name, column.name, stored[column.name], column.type)
                    for column in declared_columns(GROUP_OF[name], TABLES[name])
                    if stored.get(column.name) not in (None, column.type)]


def _rename(conn: duckdb.DuckDBPyConnection, target: str, table: str,
            stored: dict[str, str]) -> list[str]:
    renamed = [(old, new) for old, new in RENAMED.items() if old in stored and new not in stored]
    for old, new in renamed:
        conn.execute(f"ALTER TABLE {target} RENAME COLUMN {quote(old)} TO {quote(new)}")
    return [f"{table}.{old} renamed {new}" for old, new in renamed]


def _retype(conn: duckdb.DuckDBPyConnection, target: str, table: str, column: str, old: str,
            new: str) -> str:
    ((misfits,),) = conn.execute(
        f"SELECT count(*) FROM {target} WHERE {quote(column)} IS NOT NULL"
        f" AND TRY_CAST({quote(column)} AS {new}) IS NULL").fetchall()
    if misfits:
        return (f"{table}.{column} stays {old}: {misfits} stored values are not {new} (nothing "
                "is converted that would change)")
    conn.execute(f"ALTER TABLE {target} ALTER COLUMN {quote(column)} SET DATA TYPE {new}")
    return f"{table}.{column}: {old} -> {new}"


def _move_backdated(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    """Snapshot rows stored under a day they could not have been observed on."""
    target = qualified(conn, table, schema)
    where = "report_date < CAST(_loaded_at AS DATE) - 1"
    ((count,),) = conn.execute(f"SELECT count(*) FROM {target} WHERE {where}").fetchall()
    if not count:
        return []
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {qualified(conn, schema=BACKDATED_SCHEMA)}")
    kept = qualified(conn, table, BACKDATED_SCHEMA)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {kept} AS SELECT * FROM {target} LIMIT 0")
    conn.execute(f"INSERT INTO {kept} BY NAME SELECT * FROM {target} WHERE {where}")
    if "_loads" in _stored(conn, schema):
        conn.execute(
            f"UPDATE {qualified(conn, '_loads', schema)} l SET status = 'no_history',"
            " row_count = 0, reported_total = NULL FROM (SELECT DISTINCT report_date,"
            f" location_id FROM {target} WHERE {where}) b WHERE l.table_name = ?"
            " AND l.report_date = b.report_date"
            " AND CAST(l.location_id AS BIGINT) IS NOT DISTINCT FROM b.location_id", [table])
    conn.execute(f"DELETE FROM {target} WHERE {where}")
    return [f"{table}: {count} rows stored for days before they were observed moved to "
            f"{BACKDATED_SCHEMA}.{table}"]


def _move_defaults(conn: duckdb.DuckDBPyConnection, schema: str, table: str,
                   has_loads: bool) -> list[str]:
    """A dated schedule table's undated rows (weekday defaults) into their own table."""
    source, defaults = qualified(conn, table, schema), DEFAULTS_MOVED[table]
    days = conn.execute(f"SELECT DISTINCT report_date, location_id FROM {source}"
                        " WHERE date IS NULL ORDER BY ALL").fetchall()
    if not days:
        return []
    target = qualified(conn, defaults, schema)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * EXCLUDE (date)"
                 f" FROM {source} LIMIT 0")
    conn.execute(f"INSERT INTO {target} BY NAME SELECT * EXCLUDE (date) FROM {source}"
                 " WHERE date IS NULL")
    conn.execute(f"DELETE FROM {source} WHERE date IS NULL")
    if has_loads:  # those partitions' loads were the defaults' loads: theirs now
        conn.execute(
            f"UPDATE {qualified(conn, '_loads', schema)} l SET table_name = ? FROM (SELECT"
            f" DISTINCT report_date, location_id FROM {target}) d WHERE l.table_name = ?"
            " AND l.report_date = d.report_date AND l.location_id = d.location_id",
            [defaults, table])
    first, last = min(d for d, _ in days), max(d for d, _ in days)
    locations = ",".join(sorted({str(loc) for _, loc in days}))
    return [f"{table}: the weekday defaults of {len(days)} partitions moved to {defaults}; "
            f"their dated schedules were never loaded: booker-assets backfill --from {first} "
            f"--to {last} --locations {locations} --assets {table}"]
