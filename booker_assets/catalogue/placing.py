"""The fields that place a record: the only ones whose unreadable value rejects it.

docs/booker-api.md ("Shapes are only as certain as their tags"): a record must be readable
where it is placed (its key, its ``LocationID``, the date-time that puts it on a day, a
child's parent id); any other value that does not fit is kept as it came (``load/flatten.py``).
Derived from the catalogue, never listed by hand, so a report added later is covered (by
the loader, and by the sandbox's ``shape`` variants, which reshape every other field):
- a table's key, less ``location_id`` (the partition's) and the columns its source sets
  (carried from the parent, constants, the list index);
- ``location_id`` where the record declares ``LocationID``;
- the day field: an ``IsoWindow``'s field (``FromDateCreatedOffset`` → ``DateCreated``), a
  ``DateRange``'s ``day_field`` (a schedule's ``Date``);
- on a root record, the parent id its children carry or are asked by (``ID``), and the row
  id its paged call is checked by (``Call.key_field``).
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
from booker_assets.catalogue.schema import Field, Record, snake

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
    if isinstance(group.root, Call) and group.root.paged:
        found.add(snake(group.root.key_field))  # how a shifted page is caught (api/paging.py)
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
                    found.append((f"{table.name} (its parent {group.name} record)", PARENT_ID,
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
    if isinstance(group.root, Call) and column == snake(group.root.key_field):
        return "the row id of its paged call: how a page that shifted is caught"
    return "the parent id its child rows carry or are asked by"


def _columns(record: Record) -> set[str]:
    """The columns of a record's own fields (a placing field is never nested)."""
    return {snake(key) for key, spec in record.items() if isinstance(spec, Field)}


def booker_names(record: Record, columns: Iterable[str]) -> frozenset[str]:
    """The Booker field names of a record's ``columns``."""
    columns = set(columns)
    return frozenset(key for key in record if snake(key) in columns)


def _without(record: Record, fields: Iterable[str]) -> Record:
    fields = set(fields)
    return {k: v for k, v in record.items() if k not in fields}
