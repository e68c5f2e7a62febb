"""Booker records → typed flat rows, following the declared schema (catalogue/schema.py).

Names are snake_case, nested objects are joined with ``_`` (``final_total_amount``), lists are
JSON. Every declared field is read into its declared type: numbers may arrive as JSON numbers or
numeric strings, dates in any form ``load.dates.read_date`` reads, with or without their
``...Offset`` twin. A value that does not fit refuses its record (``BadValue``: the extractor
makes it a reject) only when it places the record (``catalogue/placing.py``); any other is kept as
it came, beside a null (docs/booker-api.md, "Shapes are only as certain as their tags").
A field the schema does not know is kept, typed by its JSON type, never by guessing from its
text (``"0042"`` stays text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from booker_assets.catalogue import schema as s
from booker_assets.catalogue.schema import Field, Record, snake
from booker_assets.load.dates import BookerDateError, read_date, read_time

_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CENT = Decimal("0.01")
_FLOAT_NOISE = Decimal("1e-9")  # 0.1 + 0.2 written by a server is still 30 cents
_INT64 = 2**63
OFFSET = "Offset"
EMPTY_LIST = "[]"
RAW = "__raw"  # <column>__raw: a value its column could not hold, as it came (JSON)
DRIFT = "_drift"  # a row's values kept as they came: [{field, declared, seen, value}] (JSON)


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


def flatten(value: Any, record: Record, zone: tzinfo, placing: Collection[str] = ()
            ) -> dict[str, Any]:
    """One typed flat row from a (possibly nested) Booker record.

    Only a ``placing`` column (its key, ``location_id``, its day: ``catalogue/placing.py``) that
    cannot be read refuses the record (``BadValue``). Any other value that does not fit is
    kept as it came: its column holds null, ``<column>__raw`` the value (JSON), and the row's
    ``_drift`` a ``Drift`` naming the field, the shape declared and the shape seen."""
    reader = _Reader(zone, frozenset(placing), frozenset(c.name for c in columns_of(record)))
    row = reader.record(value, record, "")
    if reader.drift:
        row[DRIFT] = reader.drift
    return row


@dataclass
class _Reader:
    """One record's reading: the zone its dates are in, the columns that place it, and the
    drift met on the way."""

    zone: tzinfo
    placing: frozenset[str]
    declared: frozenset[str] = frozenset()
    drift: list[Drift] = field(default_factory=list)

    def record(self, value: Any, record: Record, prefix: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise BadValue(prefix.rstrip("_") or "record",
                           f"expected an object, got {type(value).__name__}")
        row: dict[str, Any] = {}
        for key, spec in record.items():
            name = prefix + snake(key)
            if isinstance(spec, Field):
                raw = value.get(key + OFFSET) if spec.type in _DATED else None
                raw = value.get(key) if raw is None else raw
                row |= self.read_field(name, spec, raw)
            elif value.get(key) is None:
                row |= dict.fromkeys((c.name for c in columns_of(spec, f"{name}_")), None)
                row |= {c.name: EMPTY_LIST for c in columns_of(spec, f"{name}_")
                        if c.type == s.JSON}
            elif isinstance(value[key], Mapping):
                row |= self.record(value[key], spec, f"{name}_")
            else:  # a scalar or a list where an object was declared
                inner = [c.name for c in columns_of(spec, f"{name}_")]
                self._refuse_if_placing(inner, BadValue(
                    name, f"expected an object, got {type(value[key]).__name__}"))
                row |= dict.fromkeys(inner, None) | self._kept(name, _shape_of(spec), value[key])
        known = set(record) | {key + OFFSET for key in record}
        for key, item in value.items():
            if key not in known:
                row |= self._undeclared(_unknown(key, item, value, self.zone, prefix), key)
        return row

    def _undeclared(self, found: dict[str, Any], key: str) -> dict[str, Any]:
        """Columns of an undeclared field, less those a declared field owns (a lookup's ``ID``
        inside ``BillableItem`` is ``billable_item_id``, as ``BillableItemID`` is): those are
        kept in the drift, never over the declared value."""
        for name in found.keys() & self.declared:
            self.drift.append(Drift(f"{key}: {name}", "undeclared (the column is another "
                                    "field's)", shape(found[name]), found[name]))
        return {name: v for name, v in found.items() if name not in self.declared}

    def read_field(self, name: str, spec: Field, raw: Any) -> dict[str, Any]:
        """``{name: value}``, or ``{name: None, name__raw: raw}`` when it does not fit."""
        try:
            if spec.items is not None:
                return {name: self._list(raw, spec.items, name)}
            return {name: read_value(spec.type, raw, self.zone, name)}
        except BadValue as problem:
            self._refuse_if_placing([name], problem)
            return {name: None} | self._kept(name, _shape_of(spec), raw)

    def _kept(self, name: str, declared: str, raw: Any) -> dict[str, Any]:
        self.drift.append(Drift(name, declared, shape(raw), raw))
        return {name + RAW: _dumps(raw)}

    def _refuse_if_placing(self, columns: Iterable[str], problem: BadValue) -> None:
        if self.placing.intersection(columns):
            raise problem

    def _list(self, value: Any, items: Field | Record, column: str) -> str:
        """A declared list as JSON, each element read like a column: ``"7"`` and ``7`` are one
        id, a date in any form one instant. An element, or a field of one, that does not fit
        stays as it came (a drift of ``column[].Field``); fields it brings undeclared stay."""
        if value is None:
            return EMPTY_LIST
        if not isinstance(value, list):
            raise BadValue(column, f"{_shown(value)} is not a list")
        read = [self._element(item, items, f"{column}[]") for item in value]
        return json.dumps(read, ensure_ascii=False, sort_keys=True, default=_plain)

    def _element(self, item: Any, spec: Field | Record, path: str) -> Any:
        if isinstance(spec, Field):
            try:
                return read_value(spec.type, item, self.zone, path)
            except BadValue:
                self.drift.append(Drift(path, _shape_of(spec), shape(item), item))
                return item
        if item is None:
            return None
        if not isinstance(item, Mapping):
            self.drift.append(Drift(path, _shape_of(spec), shape(item), item))
            return item
        known = {key: self._element(item.get(key), sub, f"{path}.{key}")
                 for key, sub in spec.items()}
        return {**{k: v for k, v in item.items() if k not in spec}, **known}


@dataclass(frozen=True)
class Drift:
    """A value kept as it came: ``field`` (a column, or ``levels[].Fee`` inside a list), the
    shape declared, the shape seen (``shape``) and the value."""

    field: str
    declared: str
    seen: str
    value: Any


def shape(value: Any) -> str:
    """A JSON value's shape, in the words the drift check uses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "object {" + ", ".join(sorted(map(str, value)))[:60] + "}"
    return "list"


def _shape_of(spec: Field | Record) -> str:
    """The shape a field is declared with: its column type, ``list``, or the object's keys."""
    if isinstance(spec, Field):
        return "list" if spec.items is not None else spec.type
    return "object {" + ", ".join(spec) + "}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


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
        return _Reader(zone, frozenset()).record(value, {}, f"{name}_")
    if isinstance(value, list):
        return {name: _json(value, zone)}
    return {name: value}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
