"""The fields that place a record: the only ones whose unreadable value rejects it.

docs/booker-api.md ("Shapes are only as certain as their tags"): a record must be readable
where it is placed (its key, its ``LocationID``, the date-time that puts it on a day, a
child's parent id); any other value that does not fit is kept as it came (``flatten.py``).
Derived from the catalogue, never listed by hand, so a report added later is covered:
- a table's key, less ``location_id`` (the partition's) and the columns its source sets
  (carried from the parent, constants, the list index);
- ``location_id`` where the record declares ``LocationID``;
- the day field: an ``IsoWindow``'s field (``FromDateCreatedOffset`` → ``DateCreated``), a
  ``DateRange``'s ``day_field`` (a schedule's ``Date``);
- on a root record, the parent id its children carry or are asked by (``ID``).
"""

from __future__ import annotations

from collections.abc import Iterable

from booker_assets.catalogue.reports import (
    GROUPS,
    LOCATION_COLUMN,
    Call,
    DateRange,
    Explode,
    FromRoot,
    IsoWindow,
    PerParent,
    ReportGroup,
    Source,
    Table,
)
from booker_assets.catalogue.schema import Record
from booker_assets.load.flatten import columns_of, snake

PARENT_ID = "id"  # a root record's ``ID``: what its children carry and are asked by


def root_placing(group: ReportGroup) -> frozenset[str]:
    """The columns of the group's root record that place it (or its children)."""
    record = _columns(_without(group.root.record, group.exploded))
    found: set[str] = set()
    for table in group.tables:
        for source in table.sources:
            if isinstance(source, FromRoot):
                found |= _own(table, source, record, group.root)
            elif isinstance(source, PerParent) or source.carry_prefix or any(
                    old == PARENT_ID for old in source.carry.values()):
                found.add(PARENT_ID)
    return frozenset(found & record)


def child_placing(table: Table, source: Explode | PerParent) -> frozenset[str]:
    """The columns of a child record (a list element, a per-parent call's row) that place it."""
    if isinstance(source, Explode):
        return _own(table, source, _columns(_without(source.record, source.drop)), None)
    return _own(table, source, _columns(source.call.record), source.call)


def placing_fields() -> list[tuple[str, str, str]]:
    """(table, column, why) for every column that can still reject a record: the README's list."""
    found = []
    for group in GROUPS:
        for table in group.tables:
            for source in table.sources:
                if isinstance(source, FromRoot):
                    found += [(table.name, column, _why(table, source, column, group))
                              for column in sorted(root_placing(group))]
                    continue
                found += [(table.name, column, _why(table, source, column, group))
                          for column in sorted(child_placing(table, source))]
                if PARENT_ID in root_placing(group):
                    found.append((f"{table.name} (its parent, a {group.name} record)", PARENT_ID,
                                  "the parent id its child rows carry or are asked by"))
    return list(dict.fromkeys(found))


def day_field(call: Call | None) -> str | None:
    """The Booker field that puts a row of ``call`` on a day, if the call dates its rows."""
    if call is None or not isinstance(call, Call):
        return None
    if isinstance(call.days, IsoWindow):
        return call.days.field
    if isinstance(call.days, DateRange):
        return call.days.day_field
    return None


def _own(table: Table, source: Source, record: set[str], call: Call | None) -> set[str]:
    set_by_source: set[str] = {LOCATION_COLUMN}
    if isinstance(source, Explode | PerParent):
        set_by_source |= set(source.carry) | set(source.constants)
    if isinstance(source, Explode) and source.index_column:
        set_by_source.add(source.index_column)
    found = {column for column in table.key if column not in set_by_source}
    if LOCATION_COLUMN in record:
        found.add(LOCATION_COLUMN)
    day = day_field(call)
    if day is not None:
        found.add(snake(day))
    return found & record


def _why(table: Table, source: Source, column: str, group: ReportGroup) -> str:
    if column == LOCATION_COLUMN:
        return "the record's LocationID: which location it belongs to"
    call = group.root if isinstance(source, FromRoot) else (
        source.call if isinstance(source, PerParent) else None)
    if column == snake(day_field(call) or "-"):
        return "the date-time that puts the record on its day"
    if column in table.key:
        return "part of the table's key"
    return "the parent id its child rows carry or are asked by"


def _columns(record: Record) -> set[str]:
    return {c.name for c in columns_of(record)}


def _without(record: Record, fields: Iterable[str]) -> Record:
    fields = set(fields)
    return {k: v for k, v in record.items() if k not in fields}
