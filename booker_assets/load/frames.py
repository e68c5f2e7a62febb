"""What extraction hands to storage: a slice's rows and the partitions it replaces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

Partition = tuple[date, str | None]


@dataclass(frozen=True)
class PartitionLoad:
    """What was fetched for one (report_date, location_id) partition, recorded in ``_loads``."""

    report_date: date
    location_id: str | None
    row_count: int
    reported_total: int | None = None
    pages: int = 0
    requests: int = 0


@dataclass
class ReportFrame:
    """What a Booker asset returns: the slice's rows plus every partition it replaces."""

    frame: pd.DataFrame
    partitions: list[Partition]
    loads: list[PartitionLoad]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReportFrame:
        """A plain DataFrame's slice is the distinct (report_date, location_id) pairs it holds."""
        require_columns(frame, ["report_date", "location_id"])
        counts = frame.groupby(["report_date", "location_id"], dropna=False, sort=True).size()
        loads = [
            PartitionLoad(day, None if pd.isna(loc) else loc, int(n))
            for (day, loc), n in counts.items()
        ]
        return cls(frame, [(ld.report_date, ld.location_id) for ld in loads], loads)


def require_columns(frame: pd.DataFrame, names: list[str]) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the required columns {missing}")
