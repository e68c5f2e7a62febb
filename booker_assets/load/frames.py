"""What extraction hands to storage: a slice's typed rows, its rejects and its partitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd

from booker_assets.catalogue import schema as s
from booker_assets.load.flatten import Column

Partition = tuple[date, int | None]  # (report_date, location_id); None: brand level
LoadStatus = Literal["loaded", "no_history", "option_off"]
BASE_COLUMNS = (
    Column("report_date", s.DATE, "The partition's day, in the location's own time zone"),
    Column("location_id", s.BIGINT, "Booker's id of the location (the partition's location)"),
    Column("_loaded_at", s.TIMESTAMP, "When this row was loaded"),
)


@dataclass(frozen=True)
class PartitionLoad:
    """What was fetched for one (report_date, location_id) partition, recorded in ``_loads``.

    ``no_history``: a snapshot report for a day that can no longer be observed (Booker keeps
    no history of its lists), so nothing was stored, truthfully, rather than today's list.
    ``option_off``: a table asked only with an option that was off (nothing asked).
    ``options``: the options that change this table, as they were for this load."""

    report_date: date
    location_id: int | None
    row_count: int
    reported_total: int | None = None
    pages: int = 0
    requests: int = 0
    status: LoadStatus = "loaded"
    rejected: int = 0
    options: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """A Booker record that could not be read: kept in ``booker._rejects``, never dropped."""

    report_date: date | None
    location_id: int | None
    record_id: str | None
    column: str
    reason: str
    raw: str  # the record's JSON as Booker sent it


@dataclass
class ReportFrame:
    """What a Booker asset returns: the slice's rows plus every partition it replaces."""

    frame: pd.DataFrame
    partitions: list[Partition]
    loads: list[PartitionLoad]
    rejects: list[Reject] = field(default_factory=list)
    columns: tuple[Column, ...] = ()  # declared: the table has them from its first load

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReportFrame:
        """A plain DataFrame's slice is the distinct (report_date, location_id) pairs it holds."""
        require_columns(frame, ["report_date", "location_id"])
        counts = frame.groupby(["report_date", "location_id"], dropna=False, sort=True).size()
        loads = [
            PartitionLoad(day, None if pd.isna(loc) else int(loc), int(n))
            for (day, loc), n in counts.items()
        ]
        return cls(frame, [(ld.report_date, ld.location_id) for ld in loads], loads)


def build_frame(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> pd.DataFrame:
    """Rows → a DataFrame with every declared column (typed, so DuckDB reads it as a block)
    followed by the columns the data brought that the schema does not declare."""
    declared = [c.name for c in columns]
    extra = list(dict.fromkeys(k for row in rows for k in row if k not in set(declared)))
    data = {c.name: _series([row.get(c.name) for row in rows], c.type) for c in columns}
    data |= {name: _found([row.get(name) for row in rows]) for name in extra}
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


_DTYPES = {s.BIGINT: "Int64", s.MONEY: "Float64", s.DOUBLE: "Float64", s.BOOLEAN: "boolean"}


def _series(values: list[Any], type_: str) -> pd.Series:
    if type_ in _DTYPES:
        return pd.Series(pd.array(values, dtype=_DTYPES[type_]))
    if type_ == s.TIMESTAMP:
        return pd.Series(pd.to_datetime(values, utc=True))
    if type_ == s.DATE:  # datetime64: DuckDB reads it as a block, the write casts to DATE
        return pd.Series(pd.to_datetime(values))
    return pd.Series(values, dtype=object)


def _found(values: list[Any]) -> pd.Series:
    """An undeclared column, by the JSON types it holds: one type per column, text if mixed."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return _series(values, s.BOOLEAN)
    if kinds == {int}:
        return _series(values, s.BIGINT)
    if kinds and kinds <= {int, float}:
        return _series(values, s.DOUBLE)
    if kinds and all(issubclass(k, datetime) for k in kinds):
        return _series(values, s.TIMESTAMP)
    return pd.Series([v if v is None or isinstance(v, str) else str(v) for v in values],
                     dtype=object)


def require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the required columns {missing}")
