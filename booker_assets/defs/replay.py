"""Replay: the records ``booker._rejects`` holds, read again through the current catalogue.

A record set aside by an older version (a value of an unexpected shape in a field that does
not place it) now loads. Replay moves each such record into its table and partition without
asking Booker again: a root record with the rows its lists yield (an order with its items and
refunds: the children rejected with their parent come back with it), a per-parent call's row
when its table carries nothing from the parent. The rows get the reject's ``loaded_at`` (when
they were fetched), ``_loads`` its counts; all in the caller's one transaction, and a second
replay finds nothing left to move. What stays, and why:
- a record whose placing field is still unreadable (it is rejected again, unchanged);
- a per-parent call never asked because its parent was rejected: only Booker has it (re-run
  that partition);
- a list element or per-parent row whose table carries columns from a parent that loaded (the
  parent's row is not in the reject);
- a record of a location whose zone the warehouse does not know (no ``locations`` row);
- under an unknown ``BOOKER_PII`` (the upgrade), records of tables with personal columns.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

import duckdb
import pandas as pd

from booker_assets.catalogue.reports import GROUP_OF, TABLES, Explode, FromRoot, PerParent, Table
from booker_assets.defs.rows import insert_rows
from booker_assets.defs.storage import qualified
from booker_assets.load.columns import declared_columns, kept_columns
from booker_assets.load.extract import (
    Derived,
    parent_of,
    raw_json,
    rederive,
    reread,
    stored_row,
)
from booker_assets.load.frames import build_frame
from booker_assets.load.pii import PiiPolicy
from booker_assets.load.zones import zone_for

PARENT_GONE = "its parent record"  # a list element rejected with its parent (extract.py)
_NOT_ASKED = "the parent of "  # a per-parent call not made: its parent was rejected
_Key = tuple[str, date, int]  # (table, report_date, location_id)


@dataclass
class Rejected:
    table: str
    day: date
    location: int
    column: str
    reason: str
    raw: str  # as stored
    loaded_at: datetime


@dataclass
class Moves:
    """What a replay changes: rows per table, rejects gone and new, records left and why."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    gone: list[tuple[str, date, int, str]] = field(default_factory=list)  # (table, day, loc, raw)
    new: list[tuple[str, date, int, str, str, str]] = field(default_factory=list)
    left: Counter[str] = field(default_factory=Counter)

    def add(self, key: _Key, rows: Iterable[dict]) -> None:
        self.rows.setdefault(key[0], []).extend(rows)


def replay(conn: duckdb.DuckDBPyConnection, schema: str, pii: PiiPolicy | None) -> list[str]:
    """Move what now loads out of ``<schema>._rejects``; a line per table moved and per reason
    a record stays. ``pii`` None: the policy is unknown here, personal tables are left."""
    rejected = _rejected(conn, schema)
    if not rejected:
        return []
    zones = _zones(conn, schema)
    moves = Moves()
    for reject in rejected:
        if not reject.reason.startswith(PARENT_GONE):  # those come back with their parent
            _one(reject, rejected, zones, pii, moves)
    orphans = sum(r.reason.startswith(PARENT_GONE) for r in rejected) - sum(
        1 for g in moves.gone if g[3] in {r.raw for r in rejected
                                          if r.reason.startswith(PARENT_GONE)})
    if orphans:
        moves.left["a list element whose parent record is still rejected"] += orphans
    for name, rows in moves.rows.items():
        table = TABLES[name]
        columns = (*declared_columns(GROUP_OF[name], table, pii or "keep"), *kept_columns(rows))
        insert_rows(conn, schema, name, build_frame(rows, columns), columns)
    _update_rejects_and_loads(conn, schema, moves)
    lines = [f"replayed {len(rows)} {name} rows from booker._rejects"
             for name, rows in sorted(moves.rows.items())]
    return lines + [f"left {n} rejects: {why}" for why, n in sorted(moves.left.items())]


def _one(reject: Rejected, everything: list[Rejected], zones: dict[int, tzinfo],
         pii: PiiPolicy | None, moves: Moves) -> None:
    table = TABLES.get(reject.table)
    why = _unreplayable(reject, table, zones, pii)
    if why or table is None:
        moves.left[why or "no such table"] += 1
        return
    zone = zones[reject.location]
    raw = json.loads(reject.raw)
    key = (reject.table, reject.day, reject.location)
    root = next((s for s in table.sources if isinstance(s, FromRoot)), None)
    if root is not None:
        parent = parent_of(GROUP_OF[reject.table], reject.day, raw, zone)
        if parent.row is None:
            moves.left["a placing field is still unreadable"] += 1
            return
        group = GROUP_OF[reject.table]
        for child in group.tables:  # the root's own table, and the lists it holds
            derived = rederive(group, child, parent, zone)
            _place(moves, (child.name, reject.day, reject.location), derived, reject, pii,
                   everything if child is not table else None)
        return
    (source,) = table.sources
    assert isinstance(source, PerParent)
    derived = reread(table, source, raw, reject.day, zone)
    if derived.rejects:
        moves.left["a placing field is still unreadable"] += 1
        return
    _place(moves, key, derived, reject, pii, None)


def _unreplayable(reject: Rejected, table: Table | None, zones: dict[int, tzinfo],
                  pii: PiiPolicy | None) -> str:
    if table is None:
        return "no such table"
    if reject.column == "report_date":
        return "dated outside the days asked (placing)"
    if reject.reason.startswith(_NOT_ASKED):
        return "its per-parent call was never made: re-run the partition to ask Booker"
    if reject.location not in zones:
        return "no locations row gives its location's time zone: load locations first"
    if pii is None and table.pii:
        return "personal columns under an unknown BOOKER_PII: run `booker-assets replay`"
    if not any(isinstance(s, FromRoot) for s in table.sources) and (
            len(table.sources) != 1 or isinstance(table.sources[0], Explode)
            or table.sources[0].carry or table.sources[0].constants):
        return "its table carries columns of a parent record that is not in the reject"
    return ""


def _place(moves: Moves, key: _Key, derived: Derived, reject: Rejected,
           pii: PiiPolicy | None, siblings: list[Rejected] | None) -> None:
    """The derived rows into ``key``'s partition; a list's elements replace the rejects they
    were (matched by the record as stored), and those that still fail become new ones."""
    table = TABLES[key[0]]
    if siblings is not None and not derived.rows and not derived.rejects:
        return  # a table of the group this record feeds nothing (a per-parent call's)
    rows = [stored_row(row, table, pii or "keep") | {
        "report_date": key[1], "location_id": key[2], "_loaded_at": reject.loaded_at}
        for _, row in derived.rows]
    moves.add(key, rows)
    if siblings is None:
        moves.gone.append((*key, reject.raw))
        return
    stored = {r.raw for r in siblings if (r.table, r.day, r.location) == key
              and r.reason.startswith(PARENT_GONE)}
    moves.gone += [(*key, raw) for raw in _children(reject, table) if raw in stored]
    moves.new += [(*key, r.record_id or "", r.column, r.reason, r.raw)
                  for _, r in derived.rejects]


def _children(reject: Rejected, table: Table) -> list[str]:
    """The stored form of each element of the root record's lists that feed ``table``."""
    raw = json.loads(reject.raw)
    return [raw_json(child) for source in table.sources if isinstance(source, Explode)
            for child in (raw.get(source.list_field) or []) if isinstance(raw, dict)]


def _rejected(conn: duckdb.DuckDBPyConnection, schema: str) -> list[Rejected]:
    if not _exists(conn, schema, "_rejects"):
        return []
    return [Rejected(*row) for row in conn.execute(
        "SELECT table_name, report_date, location_id, column_name, reason, raw::VARCHAR,"
        f" loaded_at FROM {qualified(conn, '_rejects', schema)}"
        " WHERE location_id IS NOT NULL ORDER BY ALL").fetchall()]


def _zones(conn: duckdb.DuckDBPyConnection, schema: str) -> dict[int, tzinfo]:
    """Each location's zone from its newest ``locations`` row: what the load read it from."""
    if not _exists(conn, schema, "locations"):
        return {}
    rows = conn.execute(
        "SELECT location_id, time_zone_id, time_zone_name, time_zone_standard_name"
        f" FROM {qualified(conn, 'locations', schema)} QUALIFY row_number() OVER"
        " (PARTITION BY location_id ORDER BY report_date DESC) = 1").fetchall()
    return {loc: zone_for({"ID": zid, "Name": name, "StandardName": standard})
            for loc, zid, name, standard in rows}


def _update_rejects_and_loads(conn: duckdb.DuckDBPyConnection, schema: str,
                              moves: Moves) -> None:
    rejects, loads = qualified(conn, "_rejects", schema), qualified(conn, "_loads", schema)
    gone = pd.DataFrame(moves.gone, columns=["table_name", "report_date", "location_id", "raw"])
    _with(conn, "_gone", gone, lambda: conn.execute(
        f"DELETE FROM {rejects} r USING _gone g WHERE r.table_name = g.table_name"
        " AND r.report_date = g.report_date::DATE AND r.location_id = g.location_id"
        " AND r.raw::VARCHAR = g.raw"))
    new = pd.DataFrame(moves.new, columns=["table_name", "report_date", "location_id",
                                           "record_id", "column_name", "reason", "raw"])
    _with(conn, "_new", new, lambda: conn.execute(
        f"INSERT INTO {rejects} BY NAME SELECT table_name, report_date::DATE AS report_date,"
        " location_id::BIGINT AS location_id, nullif(record_id, '') AS record_id, column_name,"
        " reason, raw::JSON AS raw, now() AS loaded_at FROM _new"))
    if not _exists(conn, schema, "_loads"):
        return
    # every partition a replay touched, counted again from what it now holds
    for name in {*moves.rows, *(g[0] for g in moves.gone), *(n[0] for n in moves.new)}:
        conn.execute(
            f"UPDATE {loads} l SET row_count = (SELECT count(*) FROM"
            f" {qualified(conn, name, schema)} t WHERE t.report_date = l.report_date"
            " AND t.location_id = l.location_id), rejected = (SELECT count(*) FROM"
            f" {rejects} r WHERE r.table_name = l.table_name AND r.report_date = l.report_date"
            " AND r.location_id = l.location_id) WHERE l.table_name = ? AND l.status = 'loaded'",
            [name])


def _with(conn: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame,
          work: Callable[[], Any]) -> None:
    if frame.empty:
        return
    conn.register(name, frame)
    try:
        work()
    finally:
        conn.unregister(name)


def _exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return bool(conn.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?"
        " AND table_name = ?", [catalog, schema, table]).fetchall())
