"""The one extractor: runs a ``ReportGroup`` for one location over a slice of days.

It fetches the group's root (once per day for an ``IsoWindow``, once for the slice's whole
months for a ``DateRange``, once otherwise), derives every selected table from those rows
(lists exploded, per-parent calls once per distinct parent), places each row on its day and
types it against the declared schema.

Where a row lands:
- rows of a day's window, or naming their own day (schedules), go to that day;
- undated rows (Booker's lists as they are today: employees, products...; weekday schedule
  defaults, tables of their own) go only to the days that can be observed now: the load runs
  during the day or within a day after it ended, in the location's zone. Older days get no
  rows and the status ``no_history``: Booker keeps no history of its lists, and today's list
  is not that day's.

A record that cannot be read becomes a ``Reject`` of its table; the rest of its day loads.
Each partition records the options it was loaded with (``PartitionLoad.options``); a table
asked only with an option (``Table.only_with``) that is off is not asked at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from booker_assets.api.paging import FindResult
from booker_assets.api.view import ReportView
from booker_assets.catalogue import schema as s
from booker_assets.catalogue.options import table_options
from booker_assets.catalogue.placing import child_placing, root_placing
from booker_assets.catalogue.reports import (
    AheadWindow,
    Call,
    DateRange,
    Explode,
    FromRoot,
    IsoWindow,
    LocationRecord,
    PerParent,
    ReportGroup,
    Table,
)
from booker_assets.load.columns import declared_columns, kept_columns
from booker_assets.load.dates import day_window, local_day, to_iso
from booker_assets.load.flatten import DRIFT, BadValue, flatten, read_value
from booker_assets.load.frames import PartitionLoad, Reject, ReportFrame, build_frame
from booker_assets.load.pii import PiiPolicy, protect_pii
from booker_assets.load.zones import zone_for
from booker_assets.settings import DEFAULT_LOOKAHEAD_DAYS

OBSERVABLE_DAYS_AFTER = 1  # a snapshot may be stored for day D until D+1 ends, locally


@dataclass(frozen=True)
class FetchJob:
    """One group, one location, a slice of days: what every fetch step of a report needs."""

    client: ReportView
    group: ReportGroup
    location_id: int
    days: list[date]
    zone: tzinfo
    options: Mapping[str, Any]
    observable: list[date]  # days whose snapshot can be taken now
    lookahead: int = DEFAULT_LOOKAHEAD_DAYS  # days of the book after an observed day

    def asks(self, table: Table) -> bool:
        """Whether ``table`` is asked: not one whose option (``only_with``) is off."""
        return not table.only_with or bool(self.options.get(table.only_with))

    def loaded_with(self, table: Table) -> dict[str, bool]:
        """The options that change ``table``, as this slice used them."""
        return {name: bool(self.options.get(name)) for name in table_options(table.name)}

    @property
    def months(self) -> tuple[date, date]:
        """The whole months the slice's days fall in: what a schedule call asks for, so that
        every run covering a month asks the same call, shared by the runs of a backfill."""
        first, last = self.days[0], self.days[-1]
        after = date(last.year + last.month // 12, last.month % 12 + 1, 1)
        return first.replace(day=1), after - timedelta(days=1)

    def describe(self, day: date | None = None) -> str:
        """Errors name the partition(s) to re-run: the call's day, else the slice."""
        first, last = (day, day) if day else (self.days[0], self.days[-1])
        return f"{self.group.name} for {first}" + (f"..{last}" if last != first else "")


@dataclass(frozen=True)
class Parent:
    """A root row: where it is placed, the record as Booker sent it, and its typed row."""

    day: date | None  # None: undated
    raw: dict
    row: dict | None  # None: the record could not be read
    problem: BadValue | None


@dataclass
class Derived:
    """A table's rows and rejects as derived, each with its day (None: undated)."""

    rows: list[tuple[date | None, dict]] = field(default_factory=list)
    rejects: list[tuple[date | None, Reject]] = field(default_factory=list)

    def reject(self, day: date | None, raw: Any, problem: BadValue) -> None:
        record_id = raw.get("ID") if isinstance(raw, dict) else None
        self.rejects.append((day, Reject(
            report_date=None, location_id=None,
            record_id=None if record_id is None else str(record_id),
            column=problem.column, reason=problem.reason,
            raw=raw_json(raw),
        )))


def raw_json(raw: Any) -> str:
    """A record as ``booker._rejects`` keeps it (and as the replay finds it again)."""
    return json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)


def observable_days(days: Iterable[date], zone: tzinfo, now: datetime) -> list[date]:
    """Days whose lists can still be observed at ``now``: today and yesterday, locally."""
    today = local_day(now, zone)
    return [d for d in days if timedelta(0) <= today - d <= timedelta(OBSERVABLE_DAYS_AFTER)]


def extract(
    client: ReportView,
    group: ReportGroup,
    tables: list[Table],
    location_id: str | int,
    days: list[date],
    options: Mapping[str, Any],
    pii: PiiPolicy | str = "keep",
    now: datetime | None = None,
    lookahead: int = DEFAULT_LOOKAHEAD_DAYS,
) -> dict[str, ReportFrame]:
    """Fetch ``group`` for one location and ``days``; one frame per table in ``tables``
    (``lookahead``: the days an ``AheadWindow`` reaches, BOOKER_LOOKAHEAD_DAYS)."""
    location = client.location(location_id)
    zone = zone_for(location.get("TimeZone"))
    days = sorted(set(days))
    now = now or datetime.now(timezone.utc)
    job = FetchJob(client, group, int(location_id), days, zone, options,
                observable_days(days, zone, now), lookahead)
    asked = [t for t in tables if job.asks(t)]
    fetch = any(t.history == "dated" for t in asked) or bool(asked and job.observable)
    parents, results = _fetch_root(job, location) if fetch else ([], {})
    loaded_at = datetime.now(timezone.utc)
    return {t.name: _table_frame(job, t, parents, results, loaded_at, pii) for t in tables}


# ---------------------------------------------------------------- calls


def _api_fields(job: FetchJob, call: Call) -> dict[str, Any]:
    fields = dict(call.params)
    fields.update({api: job.options[opt] for opt, api in call.options.items()
                   if opt in job.options})
    if isinstance(call.days, DateRange):  # the slice's months, local days
        since, until = job.months
        fields |= {call.days.since: since.isoformat(), call.days.until: until.isoformat(),
                   call.days.defaults_flag: False}
    return fields


def _query(fields: Mapping[str, Any]) -> dict[str, str]:
    """GET parameters as Booker reads them: booleans lower-case."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}


def shared_by_backfill(job: FetchJob, call: Call, private: bool) -> bool:
    """Whether the runs of a backfill share this call's reply (``shared_replies.py``): when
    no partition day shapes it. A schedule month: always (every run covering the month asks
    the same). Any other call without a day window (a customer's memberships or progress
    notes, the employees list under the schedules): unless it feeds a table with columns
    BOOKER_PII protects (``private``: the store is outside the warehouse), or the slice
    stores a snapshot of now (a kept reply may be hours old; a snapshot is the list as
    observed on its day)."""
    if isinstance(call.days, IsoWindow | AheadWindow):
        return False  # the partition day's own window, or the book seen now
    if isinstance(call.days, DateRange):
        return True  # dated rows; weekday defaults are undated, a snapshot like a list
    return not private and not job.observable


def _call(job: FetchJob, call: Call, fields: dict[str, Any], parent_id: Any = None,
          day: date | None = None, private: bool = True) -> tuple[list[dict], FindResult | None]:
    path = call.path.format(location_id=job.location_id, parent_id=parent_id)
    report = job.describe(day)
    if parent_id is not None:  # e.g. "customers/memberships": which per-parent call failed
        report = report.replace(job.group.name, f"{job.group.name}/{call.path.rsplit('/', 1)[-1]}")
    share = shared_by_backfill(job, call, private)
    if call.paged:
        result = job.client.find(path, call.results_key, fields, location_id=job.location_id,
                                 report=report, key_field=call.key_field, share=share)
        return result.rows, result
    rows = job.client.get(path, call.results_key, _query(fields), location_id=job.location_id,
                          report=report, share=share)
    return (rows if isinstance(rows, list) else [rows]), None


def _fetch_root(job: FetchJob, location: dict
                ) -> tuple[list[Parent], dict[date | None, FindResult]]:
    root = job.group.root
    if isinstance(root, LocationRecord):
        return [parent_of(job.group, None, location, job.zone)], {}
    fields = _api_fields(job, root)
    if isinstance(root.days, IsoWindow | AheadWindow):
        window = root.days
        ahead = isinstance(window, AheadWindow)

        def one_day(day: date) -> tuple[list[dict], FindResult | None]:
            start, end = _window(job, day, ahead)
            return _call(job, root, fields | {window.since: to_iso(start),
                                              window.until: to_iso(end)}, day=day)

        days = job.observable if ahead else job.days  # the book: only as seen now
        per_day = dict(zip(days, job.client.map(one_day, days), strict=True))
        parents = [parent_of(job.group, day, _unwrap(row, root.unwrap), job.zone)
                   for day, (rows, _) in per_day.items() for row in rows]
        return parents, {day: result for day, (_, result) in per_day.items() if result}
    rows, result = _call(job, root, fields, private=any(t.pii for t in job.group.tables))
    parents = [_dated_parent(job, root, row) for row in rows]
    return parents, ({None: result} if result else {})


def _window(job: FetchJob, day: date, ahead: bool) -> tuple[datetime, datetime]:
    """Day D's own window, or the ``lookahead`` days after it (the book ahead of D)."""
    if not ahead:
        return day_window(day, job.zone)
    after = day + timedelta(days=1)
    return day_window(after, job.zone)[0], day_window(after + timedelta(days=job.lookahead),
                                                      job.zone)[0]


def _dated_parent(job: FetchJob, root: Call, row: dict) -> Parent:
    """A root row of a call without a day window: on its own day (a schedule's ``Date``); a
    day that cannot be read rejects the row (on every day of the slice), not the report."""
    raw = _unwrap(row, root.unwrap)
    try:
        day = _own_day(job, root, row)
    except BadValue as problem:
        return Parent(None, raw, None, problem)
    return parent_of(job.group, day, raw, job.zone)


def parent_of(group: ReportGroup, day: date | None, raw: dict, zone: tzinfo) -> Parent:
    """A root row, typed without the lists that are tables of their own (read as those)."""
    lists = group.exploded
    try:
        return Parent(day, raw, flatten(_drop(raw, lists), _drop(group.root.record, lists), zone,
                                        root_placing(group)), None)
    except BadValue as problem:
        return Parent(day, raw, None, problem)


def rederive(group: ReportGroup, table: Table, parent: Parent, zone: tzinfo) -> Derived:
    """The rows and rejects ``table`` derives from one root record, asking Booker nothing:
    ``table``'s root rows and list elements; a per-parent call's rows are not in it."""
    derived = Derived()
    for source in table.sources:
        if isinstance(source, FromRoot):
            _from_root(source, [parent], derived, zone)
        elif isinstance(source, Explode):
            _explode(zone, table, source, [parent], derived)
    return derived


def reread(table: Table, source: PerParent, raw: Any, day: date | None, zone: tzinfo
           ) -> Derived:
    """A per-parent call's row read again (``source`` carries nothing from its parent)."""
    derived = Derived()
    try:
        derived.rows.append((day, flatten(raw, source.call.record, zone,
                                          child_placing(table, source))))
    except BadValue as problem:
        derived.reject(day, raw, problem)
    return derived


def _own_day(job: FetchJob, call: Call, row: dict) -> date | None:
    """A schedule row's own day (``Date``, in any form, or its twin); None: undated."""
    if not isinstance(call.days, DateRange):
        return None
    field = call.days.day_field
    return read_value(s.DATE, row.get(field + "Offset") or row.get(field), job.zone,
                      field.lower())


def _unwrap(row: dict, key: str | None) -> dict:
    """``{CustomerID, Customer: {...}}`` → the customer's own fields and the wrapper's id."""
    if not key or not isinstance(row.get(key), dict):
        return row
    return {**{k: v for k, v in row.items() if k != key}, **row[key]}


# ---------------------------------------------------------------- tables


def _table_frame(job: FetchJob, table: Table, parents: list[Parent],
                 results: dict[date | None, FindResult], loaded_at: datetime,
                 pii: PiiPolicy | str) -> ReportFrame:
    derived = Derived()
    for source in table.sources if job.asks(table) else ():
        _derive(job, table, source, parents, derived, private=bool(table.pii))
    dated = table.history == "dated"
    placed, rejects = _place(job, derived, dated)
    rows = [stored_row(row, table, pii) | {"report_date": day, "location_id": job.location_id,
                                                "_loaded_at": loaded_at}
            for day, row in placed]
    columns = declared_columns(job.group, table, pii) + kept_columns(rows)
    return ReportFrame(
        frame=build_frame(rows, columns),
        partitions=[(d, job.location_id) for d in job.days],
        loads=[_load(job, table, day, placed, rejects, results, dated) for day in job.days],
        rejects=rejects,
        columns=columns,
    )


def _derive(job: FetchJob, table: Table, source: FromRoot | Explode | PerParent,
            parents: list[Parent], out: Derived, private: bool) -> None:
    if isinstance(source, Explode):
        _explode(job.zone, table, source, parents, out)
    elif isinstance(source, PerParent):
        _per_parent(job, table, source, parents, out, private)
    else:
        _from_root(source, parents, out, job.zone)


def _from_root(source: FromRoot, parents: list[Parent], out: Derived, zone: tzinfo) -> None:
    for parent in parents:
        if parent.row is None:
            out.reject(parent.day, parent.raw, _problem(parent))
        else:
            out.rows.append((parent.day, parent.row | {
                new: _local(parent.row.get(old), zone) for new, old in source.local_days.items()}))


def _explode(zone: tzinfo, table: Table, source: Explode, parents: list[Parent],
             out: Derived) -> None:
    for parent in parents:
        children = parent.raw.get(source.list_field) or []
        if not isinstance(children, list):
            children = [children]  # a lone object where a list belongs: read, or rejected
        for index, child in enumerate(children, start=1):
            if parent.row is None:
                out.reject(parent.day, child, _problem(parent, "its parent record"))
                continue
            try:
                row = flatten(_drop(child, source.drop), source.record, zone,
                              child_placing(table, source))
            except BadValue as problem:
                out.reject(parent.day, child, problem)
                continue
            row |= _carried(source.carry, source.constants, parent.row)
            if source.carry_prefix:
                row = _with_parent(row, parent.row, source.carry_prefix)
            if source.index_column:
                row[source.index_column] = index
            out.rows.append((parent.day, row))


def _per_parent(job: FetchJob, table: Table, source: PerParent, parents: list[Parent],
                out: Derived, private: bool) -> None:
    """One call per distinct parent (a customer changed on two days is asked once, and once
    per backfill when its reply is shared)."""
    wanted = [p for p in parents
              if not source.when_any or any(_true(p.raw.get(f)) for f in source.when_any)]
    for parent in wanted:
        if parent.row is None:  # not asked: its id or fields could not be read
            out.reject(parent.day, parent.raw, _problem(parent, f"the parent of "
                                                                 f"{source.call.path}"))
    good = [p for p in wanted if p.row is not None]
    ids = list(dict.fromkeys(p.raw["ID"] for p in good))
    fields = _api_fields(job, source.call)
    fetched = job.client.map(lambda pid: _call(job, source.call, fields, pid,
                                               private=private)[0], ids)
    children = dict(zip(ids, fetched, strict=True))
    for parent in good:
        assert parent.row is not None
        for child in children[parent.raw["ID"]]:
            try:  # a schedule row names its own day: its reject belongs to that day too
                day = (_own_day(job, source.call, child)
                       if isinstance(source.call.days, DateRange) else parent.day)
            except BadValue as problem:
                out.reject(parent.day, child, problem)
                continue
            try:
                row = flatten(child, source.call.record, job.zone, child_placing(table, source))
            except BadValue as problem:
                out.reject(day, child, problem)
                continue
            out.rows.append((day, row | _carried(source.carry, source.constants, parent.row)))


def _place(job: FetchJob, derived: Derived, dated: bool
           ) -> tuple[list[tuple[date, dict]], list[Reject]]:
    """Dated rows on their day, undated ones on each observable day; none silently dropped.

    A schedule is asked by whole months: its rows of the months' other days are those days'
    partitions' rows, stored by the runs of those partitions (from the same reply). A row
    dated outside what was asked is a reject. An undated reject of a dated table (a schedule
    not asked because its employee could not be read) belongs to every day of the slice."""
    days = set(job.days)
    months = job.months
    placed: list[tuple[date, dict]] = []
    rejects: list[tuple[date | None, Reject]] = list(derived.rejects)
    for day, row in derived.rows:
        if day is None:
            placed += [(d, row) for d in job.observable]
        elif day in days:
            placed.append((day, row))
        elif months[0] <= day <= months[1]:
            continue  # another partition's row: its own run stores it
        else:
            outside = Derived()
            outside.reject(job.days[0], row, BadValue(
                "report_date", f"Booker dated it {day}, outside the days asked "
                f"({months[0]}..{months[1]})"))
            rejects += outside.rejects
    spread = job.days if dated else job.observable
    out: list[Reject] = []
    for day, reject in rejects:
        if day is not None and day not in days:
            if months[0] <= day <= months[1]:
                continue  # another partition's reject: its own run records it
            day = job.days[0]  # dated outside what was asked: on the slice, as rows are
        out += [replace(reject, report_date=d, location_id=job.location_id)
                for d in ([day] if day else spread)]
    return placed, out


def _load(job: FetchJob, table: Table, day: date, placed: list[tuple[date, dict]],
          rejects: list[Reject], results: dict[date | None, FindResult], dated: bool
          ) -> PartitionLoad:
    options = job.loaded_with(table)
    if not job.asks(table):
        return PartitionLoad(day, job.location_id, 0, status="option_off", options=options)
    if not dated and day not in job.observable:
        return PartitionLoad(day, job.location_id, 0, status="no_history", options=options)
    result = results.get(day) or results.get(None)
    own = results.get(day)  # a day's own window call; calls shared by the slice count apart
    return PartitionLoad(
        report_date=day,
        location_id=job.location_id,
        row_count=sum(1 for d, _ in placed if d == day),
        reported_total=result.total if (table.counted and result) else None,
        pages=own.pages if own else 0,
        requests=own.requests if own else 0,
        rejected=sum(1 for r in rejects if r.report_date == day),
        options=options,
    )


# ---------------------------------------------------------------- small helpers


def stored_row(row: dict, table: Table, pii: PiiPolicy | str) -> dict:
    """The row as stored: under ``BOOKER_PII``, its drift as JSON (a personal field's value
    kept as it came is hashed or dropped like its column)."""
    personal = table.pii
    drift = [asdict(d) | {"value": protect_pii({d.field: d.value}, personal, pii).get(d.field)}
             for d in row.get(DRIFT, [])]
    out = protect_pii({k: v for k, v in row.items() if k != DRIFT}, personal, pii)
    return out | ({DRIFT: json.dumps(drift, ensure_ascii=False, default=str)} if drift else {})


def _with_parent(row: dict, parent: dict, prefix: str) -> dict:
    """``row`` with every parent column under ``prefix``; the parent's drift joins the row's,
    its fields named as their columns now are."""
    drift = row.pop(DRIFT, []) + [replace(d, field=prefix + d.field)
                                  for d in parent.get(DRIFT, [])]
    carried = {prefix + k: v for k, v in parent.items() if k != DRIFT}
    return row | carried | ({DRIFT: drift} if drift else {})


def _carried(carry: Mapping[str, str], constants: Mapping[str, str], parent: dict) -> dict:
    return {new: parent.get(old) for new, old in carry.items()} | dict(constants)


def _problem(parent: Parent, what: str = "") -> BadValue:
    problem = parent.problem
    assert problem is not None
    if not what:
        return problem
    return BadValue(problem.column, f"{what} could not be read ({problem.reason})")


def _local(moment: datetime | None, zone: tzinfo) -> date | None:
    return None if moment is None else local_day(moment, zone)


def _true(value: Any) -> bool:
    """A flag that decides whether a per-parent call is made: only a readable ``false`` skips
    it; null or a flag that cannot be read (``1``, a lookup) asks: a call too many costs a
    request, a call not made loses its rows."""
    try:
        return read_value(s.BOOLEAN, value, timezone.utc, "flag") is not False
    except BadValue:
        return True


def _drop(record: Any, fields: Iterable[str]) -> Any:
    fields = set(fields)
    if not isinstance(record, dict) or not fields:
        return record
    return {k: v for k, v in record.items() if k not in fields}
