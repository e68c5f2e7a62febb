"""Schema drift: the values Booker sent in a shape their field was not declared with.

Every such value is kept as it came (``load/flatten.py``: ``<column>__raw`` and the row's
``_drift``); this reads them back, one line per (field, shape declared, shape seen): how many
rows, since which partition, the first examples. The ``schema_drift`` check shows it per table,
``booker-assets drift`` for the whole warehouse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from booker_assets.defs.storage import qualified
from booker_assets.load.flatten import DRIFT

EXAMPLES = 3  # distinct values shown per drifted field


@dataclass(frozen=True)
class FieldDrift:
    table: str
    field: str
    declared: str
    seen: str
    rows: int
    values: int  # more than rows when a list's elements drifted
    since: str  # the first partition, "<report_date>|<location_id>"
    examples: str  # the first distinct values, as JSON

    def line(self) -> str:
        return (f"{self.table}.{self.field}: declared {self.declared}, seen {self.seen} in "
                f"{self.rows} rows since {self.since}, e.g. {self.examples}")


def drift(conn: duckdb.DuckDBPyConnection, tables: Iterable[str], schema: str
          ) -> list[FieldDrift]:
    """The drift of ``tables`` (those without a ``_drift`` column have none)."""
    found: list[FieldDrift] = []
    for table in tables:
        if not _has_drift(conn, schema, table):
            continue
        rows = conn.execute(
            f"WITH d AS (SELECT report_date, location_id, row_number() OVER () AS r,"
            f" unnest(CAST({DRIFT}::JSON AS JSON[])) AS e FROM {qualified(conn, table, schema)}"
            f" WHERE {DRIFT} IS NOT NULL)"
            " SELECT e->>'field', e->>'declared', e->>'seen', count(DISTINCT r), count(*),"
            " strftime(min(report_date), '%Y-%m-%d') || '|' ||"
            " arg_min(location_id, report_date),"
            f" to_json(list(DISTINCT e->'value')[1:{EXAMPLES}])::VARCHAR"
            " FROM d GROUP BY ALL ORDER BY 1, 3").fetchall()
        found += [FieldDrift(table, *row) for row in rows]
    return found


def _has_drift(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return bool(conn.execute(
        "SELECT 1 FROM duckdb_columns() WHERE database_name = ? AND schema_name = ?"
        " AND table_name = ? AND column_name = ?", [catalog, schema, table, DRIFT]).fetchall())
