"""The one extractor: runs a ``ReportGroup`` for one location over a set of days.

It fetches the group's root once (or once per day when the root has a date-time window), derives
every selected table from those rows (explode lists, per-parent calls), places each row on its
partition day and flattens it. Per-parent calls go once per distinct parent, concurrently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd

from booker_assets.api.client import BookerClient, FindResult
from booker_assets.api.dates import day_window, to_iso, zone_for
from booker_assets.catalogue.reports import Call, ReportGroup, Source, Table
from booker_assets.load.flatten import Zone, flatten_record
from booker_assets.load.frames import PartitionLoad, ReportFrame
from booker_assets.load.pii import PiiPolicy, protect_pii

BASE_COLUMNS = ("report_date", "location_id", "_loaded_at")
Placed = tuple[date | None, dict]  # None: a snapshot row that belongs to every day of the slice


@dataclass(frozen=True)
class Job:
    """One group, one location, one slice of days: what every fetch step needs."""

    client: BookerClient
    group: ReportGroup
    location_id: str | None
    days: list[date]
    zone: Zone
    options: Mapping[str, Any]

    def date_range(self, call: Call) -> dict[str, str]:
        """fromDate/toDate covering the slice (Booker wants them even for defaults)."""
        if not call.date_range:
            return {}
        return {call.date_range[0]: self.days[0].isoformat(),
                call.date_range[1]: self.days[-1].isoformat()}


@dataclass
class RootFetch:
    rows: list[Placed]
    results: dict[date | None, FindResult | None]  # per day for windowed roots, else under None


def _api_fields(call: Call, options: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(call.params)
    fields.update({api: options[opt] for opt, api in call.options.items() if opt in options})
    if call.defaults_flag:
        fields[call.defaults_flag] = bool(options.get("schedule_defaults", False))
    return fields


def _query(fields: Mapping[str, Any]) -> dict[str, str]:
    """GET parameters as Booker reads them: booleans lower-case."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}


def _row_day(row: dict, call: Call, fallback: date | None) -> date | None:
    """Schedule rows carry their own ``Date``; everything else takes its parent's day."""
    if call.date_range and row.get("Date"):
        return date.fromisoformat(str(row["Date"])[:10])
    return fallback


def _call(job: Job, call: Call, fields: dict[str, Any], parent_id: Any = None,
          day: date | None = None) -> tuple[list[dict], FindResult | None]:
    path = call.path.format(location_id=job.location_id, parent_id=parent_id)
    report = job.group.name
    if parent_id is not None:  # e.g. "customers/memberships": which per-parent call failed
        report += "/" + call.path.rsplit("/", 1)[-1]
    # errors name the partition(s) to re-run: the call's day, else the slice
    first, last = (day, day) if day else (job.days[0], job.days[-1])
    report += f" for {first}" + (f"..{last}" if last != first else "")
    if call.paged:
        result = job.client.find(path, call.results_key or "Results", fields,
                                 location_id=job.location_id, report=report)
        return result.rows, result
    rows = job.client.get(path, call.results_key, _query(fields),
                          location_id=job.location_id, report=report)
    return (rows if isinstance(rows, list) else [rows]), None


def _fetch_root(job: Job) -> RootFetch:
    call, fields = job.group.root, _api_fields(job.group.root, job.options)
    if call.window:
        def one_day(day: date) -> tuple[list[dict], FindResult | None]:
            start, end = day_window(day, job.zone)
            window = {call.window[0]: to_iso(start), call.window[1]: to_iso(end)}
            return _call(job, call, fields | window, day=day)

        per_day = dict(zip(job.days, job.client.map(one_day, job.days), strict=True))
        rows = [(day, row) for day, (found, _) in per_day.items() for row in found]
        return RootFetch(rows, {day: result for day, (_, result) in per_day.items()})
    found, result = _call(job, call, fields | job.date_range(call))
    return RootFetch([(_row_day(row, call, None), row) for row in found], {None: result})


def _unwrap(row: dict, key: str | None) -> dict:
    """``{CustomerID, Customer: {...}}`` → the customer's own fields."""
    if not key or key not in row:
        return row
    return {**{k: v for k, v in row.items() if k != key}, **row[key]}


def _without(record: dict, fields: Iterable[str]) -> dict:
    return {k: v for k, v in record.items() if k not in fields}


def _carried(source: Source, parent: dict[str, Any]) -> dict[str, Any]:
    carried = {new: parent.get(old) for new, old in source.carry.items()}
    if source.carry_prefix:
        carried |= {source.carry_prefix + k: v for k, v in parent.items()}
    return carried | dict(source.constants)


def _derive(job: Job, source: Source, parents: list[Placed]) -> list[Placed]:
    zone = job.zone
    if source.kind == "root":
        return [(day, flatten_record(_without(p, source.drop), zone) | dict(source.constants))
                for day, p in parents]
    if source.kind == "explode":
        placed = []
        for day, parent in parents:
            carried = _carried(source, flatten_record(_without(parent, [source.list_field]), zone))
            for index, child in enumerate(parent.get(source.list_field) or [], start=1):
                row = flatten_record(_without(child, source.drop), zone) | carried
                if source.index_column:
                    row[source.index_column] = index
                placed.append((day, row))
        return placed
    return _per_parent(job, source, parents)


def _per_parent(job: Job, source: Source, parents: list[Placed]) -> list[Placed]:
    """One call per distinct parent (a customer changed on two days is asked once)."""
    call = source.call
    assert call is not None
    wanted = [(d, p) for d, p in parents
              if not source.when_any or any(p.get(f) for f in source.when_any)]
    ids = list(dict.fromkeys(p["ID"] for _, p in wanted))
    fields = _api_fields(call, job.options) | job.date_range(call)
    fetched = job.client.map(lambda pid: _call(job, call, fields, pid)[0], ids)
    children = dict(zip(ids, fetched, strict=True))
    placed = []
    for day, parent in wanted:
        carried = _carried(source, flatten_record(parent, job.zone))
        for child in children[parent["ID"]]:
            placed.append((_row_day(child, call, day), flatten_record(child, job.zone) | carried))
    return placed


def _frame(rows: list[dict], table: Table, pii: PiiPolicy | str) -> pd.DataFrame:
    frame = pd.DataFrame([protect_pii(r, table.pii, pii) for r in rows])
    for column in table.key:  # e.g. ``date`` on schedule defaults: the views need every key
        if column not in frame:
            frame[column] = None
    keep = set(BASE_COLUMNS) | set(table.key)
    empty = [c for c in frame.columns if c not in keep and frame[c].isna().all()]
    # An all-null column carries no type; the table gets it when a value first arrives.
    frame = _integer_ids(frame.drop(columns=empty))
    # datetime64, not date objects: DuckDB reads it as a block (a sixth of a write's scan)
    return frame.assign(report_date=pd.to_datetime(frame["report_date"]))


def _integer_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """IDs with gaps come out of pandas as float64; store them as integers (BIGINT).

    Only ``id``/``*_id`` columns: an amount that happens to be whole on one day must stay a
    float, or the table would be created BIGINT and refuse the next day's cents.
    """
    ids = [c for c in frame.columns if (c == "id" or c.endswith("_id"))
           and pd.api.types.is_float_dtype(frame[c])
           and (frame[c].dropna() % 1 == 0).all()]
    return frame.astype({c: "Int64" for c in ids}) if ids else frame


def extract(
    client: BookerClient,
    group: ReportGroup,
    tables: list[Table],
    location_id: str | None,
    days: list[date],
    options: Mapping[str, Any],
    pii: PiiPolicy | str = "keep",
) -> dict[str, ReportFrame]:
    """Fetch ``group`` for one location (None: brand level) and ``days``; one frame per table."""
    zone = zone_for(client.location(location_id)["TimeZone"]) if location_id else timezone.utc
    days = sorted(set(days))
    job = Job(client, group, location_id, days, zone, options)
    root = _fetch_root(job)
    parents = [(day, _unwrap(row, group.unwrap)) for day, row in root.rows]
    loaded_at = datetime.now(timezone.utc)
    frames = {}
    for table in tables:
        placed = [pr for source in table.sources
                  for pr in _derive(job, source, parents)]
        rows = [row | {"report_date": d, "location_id": location_id, "_loaded_at": loaded_at}
                for day, row in placed for d in ([day] if day else days) if d in days]
        counted = table.sources[0].kind == "root"
        frames[table.name] = ReportFrame(
            frame=_frame(rows, table, pii) if rows else _empty(table),
            partitions=[(d, location_id) for d in days],
            loads=[_load(d, location_id, rows, root, counted) for d in days],
        )
    return frames


def _empty(table: Table) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in (*BASE_COLUMNS, *table.key)})


def _load(day: date, location_id: str | None, rows: list[dict], root: RootFetch,
          counted: bool) -> PartitionLoad:
    result = root.results.get(day, root.results.get(None))
    return PartitionLoad(
        report_date=day,
        location_id=location_id,
        row_count=sum(1 for r in rows if r["report_date"] == day),
        reported_total=result.total if (counted and result) else None,
        pages=result.pages if result else 0,
        requests=result.requests if result else 0,
    )
