"""Booker records → typed flat rows, following the declared schema (catalogue/schema.py).

Names are snake_case, nested objects are joined with ``_`` (``final_total_amount``), lists are
JSON. Every declared field is read into its declared type or the record is refused with
``BadValue`` (the extractor makes it a reject): numbers may arrive as JSON numbers or numeric
strings, dates in any form ``api.dates.read_date`` reads, with or without their ``...Offset``
twin. A field the schema does not know is kept, typed by its JSON type, never by guessing
from its text (``"0042"`` stays text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from booker_assets.api.dates import BookerDateError, read_date, read_time
from booker_assets.catalogue import schema as s
from booker_assets.catalogue.schema import Field, Record

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_PLURAL_ID = re.compile(r"IDs(?=[A-Z]|$)")  # a plural of ID is one word, not "I_Ds"
_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CENT = Decimal("0.01")
_FLOAT_NOISE = Decimal("1e-9")  # 0.1 + 0.2 written by a server is still 30 cents
_INT64 = 2**63
OFFSET = "Offset"
EMPTY_LIST = "[]"


def snake(name: str) -> str:
    """``DateCreated`` → ``date_created``, ``CustomerID`` → ``customer_id``, ``SKU`` → ``sku``,
    ``EmployeeIDs`` → ``employee_ids``."""
    return _CAMEL.sub("_", _PLURAL_ID.sub("Ids", name)).lower()


class BadValue(ValueError):
    """A value that does not fit its declared type: its record is rejected, never stored."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column, self.reason = column, reason


@dataclass(frozen=True)
class Column:
    """A table column: declared (with the description the UI shows) or found in the data."""

    name: str
    type: str
    description: str = ""


def columns_of(record: Record, prefix: str = "") -> list[Column]:
    """The flat columns a record schema declares, in declaration order."""
    columns: list[Column] = []
    for key, spec in record.items():
        name = prefix + snake(key)
        if isinstance(spec, Field):
            columns.append(Column(name, spec.type, spec.description))
        else:
            columns.extend(columns_of(spec, f"{name}_"))
    return columns


def flatten(value: Any, record: Record, zone: tzinfo, prefix: str = "") -> dict[str, Any]:
    """One typed flat row from a (possibly nested) Booker record; ``BadValue`` if it cannot be."""
    if not isinstance(value, Mapping):
        raise BadValue(prefix.rstrip("_") or "record",
                       f"expected an object, got {type(value).__name__}")
    row: dict[str, Any] = {}
    for key, spec in record.items():
        name = prefix + snake(key)
        if isinstance(spec, Field):
            raw = value.get(key + OFFSET) if spec.type in _DATED else None
            raw = value.get(key) if raw is None else raw
            row[name] = (_json_list(raw, spec.items, zone, name) if spec.items is not None
                         else read_value(spec.type, raw, zone, name))
        elif value.get(key) is None:
            row |= dict.fromkeys((c.name for c in columns_of(spec, f"{name}_")), None)
            row |= {c.name: EMPTY_LIST for c in columns_of(spec, f"{name}_") if c.type == s.JSON}
        else:
            row |= flatten(value[key], spec, zone, f"{name}_")
    known = set(record) | {key + OFFSET for key in record}
    for key, item in value.items():
        if key not in known:
            row |= _unknown(key, item, value, zone, prefix)
    return row


def read_value(type_: str, value: Any, zone: tzinfo, column: str) -> Any:
    """``value`` as the declared ``type_``: the Python value stored, or ``BadValue``."""
    if value is None and type_ != s.JSON:
        return None
    try:
        return _READERS[type_](value, zone)
    except BookerDateError as exc:
        raise BadValue(column, str(exc)) from None
    except (TypeError, ValueError, InvalidOperation):
        raise BadValue(column, f"{_shown(value)} is not a {type_} value") from None


def _integer(value: Any, zone: tzinfo) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value.strip().split(".")[0])
    if not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise ValueError
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        raise ValueError  # "1,234.50": whose thousands separator? never guessed
    number = Decimal(str(value).strip())
    if not number.is_finite():
        raise ValueError
    return number


def _money(value: Any, zone: tzinfo) -> float:
    number = _decimal(value)
    cents = number.quantize(_CENT)
    if abs(number - cents) > _FLOAT_NOISE:
        raise ValueError  # finer than cents: storing it would round an amount silently
    return float(cents)


def _double(value: Any, zone: tzinfo) -> float:
    number = float(_decimal(value))
    if not math.isfinite(number):
        raise ValueError
    return number


def _text(value: Any, zone: tzinfo) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)  # a number as text keeps its digits: 12.5 -> "12.5"
    raise TypeError


def _boolean(value: Any, zone: tzinfo) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError


def _json(value: Any, zone: tzinfo) -> str:
    if value is None:
        return EMPTY_LIST  # absent, null and [] all say "no items"
    if not isinstance(value, list | dict):
        raise TypeError
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _json_list(value: Any, items: Field | Record, zone: tzinfo, column: str) -> str:
    """A declared list as JSON, each element read like a column: ``"7"`` and ``7`` are one
    id, a date in any form one instant. Fields an element brings undeclared are kept."""
    if value is None:
        return EMPTY_LIST
    if not isinstance(value, list):
        raise BadValue(column, f"{_shown(value)} is not a list")
    read = [_element(item, items, zone, f"{column}[{n}]") for n, item in enumerate(value)]
    return json.dumps(read, ensure_ascii=False, sort_keys=True, default=_plain)


def _element(item: Any, spec: Field | Record, zone: tzinfo, column: str) -> Any:
    if isinstance(spec, Field):
        return read_value(spec.type, item, zone, column)
    if item is None:
        return None
    if not isinstance(item, Mapping):
        raise BadValue(column, f"expected an object, got {type(item).__name__}")
    known = {key: _element(item.get(key), sub, zone, f"{column}.{key}")
             for key, sub in spec.items()}
    return {**{k: v for k, v in item.items() if k not in spec}, **known}


def _plain(value: Any) -> Any:
    """JSON for what a reader returns: instants and days as ISO text."""
    return value.isoformat()


def _instant(value: Any, zone: tzinfo) -> Any:
    moment = read_date(value, zone)
    return None if moment is None else moment.instant


def _day(value: Any, zone: tzinfo) -> Any:
    moment = read_date(value, zone)
    return None if moment is None else moment.day


_READERS = {
    s.BIGINT: _integer, s.MONEY: _money, s.DOUBLE: _double, s.TEXT: _text,
    s.BOOLEAN: _boolean, s.TIMESTAMP: _instant, s.DATE: _day, s.TIME: read_time, s.JSON: _json,
}
_DATED = (s.TIMESTAMP, s.DATE)


def _unknown(key: str, value: Any, record: Mapping, zone: tzinfo, prefix: str) -> dict[str, Any]:
    """A field the schema does not know, typed by its JSON type (date pairs by their form)."""
    base = key[: -len(OFFSET)] if key.endswith(OFFSET) else key
    if base != key and base in record:
        return {}  # the twin of an unknown legacy field: read with it
    name = prefix + snake(base)
    twin = record.get(key + OFFSET)
    if isinstance(value, str) and (twin is not None or base != key or value.startswith("/Date(")):
        try:
            return {name: _instant(twin if twin is not None else value, zone)}
        except BookerDateError:  # not a date after all (e.g. UtcOffset: "-05:00")
            return {prefix + snake(key): value}
    if isinstance(value, Mapping):
        return flatten(value, {}, zone, f"{name}_")
    if isinstance(value, list):
        return {name: _json(value, zone)}
    return {name: value}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
