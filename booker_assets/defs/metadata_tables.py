"""Rows as Dagster's table metadata (``dg.MetadataValue.table``): a typed column per field, the
UI's own table (sortable, copyable), rather than markdown written by hand.

Every cell is a value a ``TableRecord`` holds (text, number, bool or null). In an event's
table, text is cut at ``cell`` characters (Dagster keeps the table in every event that carries
it, and callers bound the rows); a definition's table, written once, passes ``cell=None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import dagster as dg
import pandas as pd

CELL = 200  # characters of text kept per cell


def metadata_table(records: Sequence[Mapping[str, object]], types: Mapping[str, str],
                   cell: int | None = CELL) -> dg.TableMetadataValue:
    """``records`` as a table of the columns ``types`` names (in its order), each with its type
    as the source declared it (DuckDB's, the catalogue's or the dataclass's)."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in types.items()])
    return dg.MetadataValue.table(
        [dg.TableRecord({name: _cell(record.get(name), kind, cell)
                         for name, kind in types.items()})
         for record in records], schema)


def _cell(value: object, kind: str, cell: int | None) -> str | int | float | bool | None:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if kind == "DATE":
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, str):
        return value if cell is None or len(value) <= cell else value[: cell - 1] + "…"
    if isinstance(value, bool | int | float):
        return value
    if hasattr(value, "item"):  # a numpy scalar
        return _cell(value.item(), kind, cell)
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return _cell(str(value), kind, cell)
