"""Each table's declared columns, derived from the catalogue: what the extractor writes and the
descriptions the Dagster UI shows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from booker_assets.catalogue import schema as s
from booker_assets.catalogue.reports import Explode, FromRoot, PerParent, ReportGroup, Table
from booker_assets.catalogue.schema import Record
from booker_assets.load.flatten import DRIFT, RAW, Column, columns_of
from booker_assets.load.frames import BASE_COLUMNS
from booker_assets.load.pii import PiiPolicy


def declared_columns(group: ReportGroup, table: Table, pii: PiiPolicy | str = "keep"
                  ) -> tuple[Column, ...]:
    """Base columns, then every source's declared columns, without repeats; under
    ``BOOKER_PII`` personal columns are text (``hash``) or absent (``drop``)."""
    found: dict[str, Column] = {c.name: c for c in BASE_COLUMNS}
    for source in table.sources:
        for column in _source_columns(group, source):
            found.setdefault(column.name, column)
    policy = PiiPolicy.of(pii)
    if policy.mode == "keep" or not table.pii:
        return tuple(found.values())
    personal = [c for c in found.values() if c.name.startswith(table.pii)]
    if policy.mode == "drop":
        return tuple(c for c in found.values() if c not in personal)
    return tuple(Column(c.name, s.TEXT, f"{c.description} (keyed hash: BOOKER_PII=hash)")
                 if c in personal else c for c in found.values())


def kept_columns(rows: Iterable[Mapping[str, Any]]) -> tuple[Column, ...]:
    """The columns of values kept as they came, in the rows' order: ``<column>__raw`` beside
    each column that could not hold a value, and the rows' ``_drift`` (added when first met)."""
    names = dict.fromkeys(k for row in rows for k in row if k.endswith(RAW) or k == DRIFT)
    return tuple(Column(name, KEPT_TYPE, KEPT_DESCRIPTION if name == DRIFT else
                        f"A {name.removesuffix(RAW)} value as Booker sent it, where it did not"
                        " fit its column (which holds null); JSON text") for name in names)


# JSON text, in a VARCHAR (DuckDB's JSON functions read it): DuckLake 0.3 cannot insert into
# a JSON column added in the same transaction ("Unsupported type UNKNOWN"), and these are
# added when first needed.
KEPT_TYPE = s.TEXT
KEPT_DESCRIPTION = ("What in this row did not fit its declared type and was kept as it came: "
                    "[{field, declared, seen, value}] (JSON text; the schema_drift check sums it)")


def code_version(group: ReportGroup, table: Table, pii: PiiPolicy | str = "keep") -> str:
    """A digest of what decides the table's rows and columns: the report's call, the table's
    sources and key, and its declared columns with their types (after ``BOOKER_PII``). A schema
    change is a new code version in the UI; a reworded description is not."""
    shape = (_shape(group.root), _shape(table),
             [(c.name, c.type) for c in declared_columns(group, table, pii)])
    return hashlib.sha256(repr(shape).encode()).hexdigest()[:12]


def _shape(value: Any) -> Any:
    """``value`` with every ``description`` left out (catalogue dataclasses, records, lists)."""
    if is_dataclass(value):
        return type(value).__name__, {f.name: _shape(getattr(value, f.name))
                                      for f in fields(value) if f.name != "description"}
    if isinstance(value, Mapping):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_shape(item) for item in value]
    return value


def _source_columns(group: ReportGroup, source: FromRoot | Explode | PerParent) -> list[Column]:
    parent = _without(group.root.record, group.exploded)
    if isinstance(source, FromRoot):
        own = columns_of(parent)
        by_name = {c.name: c for c in own}
        return own + [Column(new, s.DATE, f"Location-local day of {old}: "
                                          f"{by_name[old].description}")
                      for new, old in source.local_days.items()]
    if isinstance(source, Explode):
        own = columns_of(_without(source.record, source.drop))
        if source.carry_prefix:
            own += columns_of(parent, source.carry_prefix)
    else:
        own = columns_of(source.call.record)
    own += _carried(parent, source.carry)
    if isinstance(source, Explode) and source.index_column:
        own.append(Column(source.index_column, s.BIGINT, "1-based position in the parent's list"))
    own += [Column(name, s.TEXT, f"Always {value!r} for these rows")
            for name, value in source.constants.items()]
    return own


def _carried(parent: Record, carry: Mapping[str, str]) -> list[Column]:
    by_name = {c.name: c for c in columns_of(parent)}
    return [Column(new, by_name[old].type, f"The parent's {old}: {by_name[old].description}")
            for new, old in carry.items()]


def _without(record: Record, fields: tuple[str, ...]) -> Record:
    return {k: v for k, v in record.items() if k not in fields}
