"""Values in another shape than the catalogue declares: what an independent Booker may send.

docs/booker-api.md ("Shapes are only as certain as their tags"): a field may come as a scalar,
a lookup ``{ID, Name}``, a list or null, numbers as strings, booleans as ``0``/``1``. Each
field a record's schema declares, except the fields that place it (``catalogue/placing.py``),
is served in a shape drawn per record (kind ``shape``, first option ``as_is``): the plan is
walked from the catalogue, so a field or report added later is reshaped with no new test. A
correct client stores the same rows and keeps each reshaped value as it came.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from booker_assets.catalogue.placing import booker_names, child_placing, root_placing
from booker_assets.catalogue.reports import GROUPS, Call, Explode, PerParent, Record
from booker_assets.catalogue.schema import Field

SHAPE_FORMS = ("as_is", "scalar", "lookup", "list", "null", "quoted")
_ID = 7  # the id of a lookup made from a scalar


@dataclass(frozen=True)
class Plan:
    """Which fields of a record are reshaped, and the plans of the lists it holds."""

    fields: frozenset[str]
    lists: dict[str, Plan] = field(default_factory=dict)
    unwrap: str | None = None  # rows are {<unwrap>ID, <unwrap>: {...}} wrappers


def plan_for(path: str) -> Plan | None:
    """The plan of the records a request path returns (None: not a catalogue call)."""
    return next((plan for pattern, plan in _PLANS if pattern.fullmatch(path.lower())), None)


def reshape_rows(rows: list, plan: Plan, choose: Any) -> list:
    """New rows, each planned field in a drawn shape; the input (shared) is never changed."""
    return [reshape(row, plan, choose) if isinstance(row, dict) else row for row in rows]


def reshape(record: dict, plan: Plan, choose: Any) -> dict:
    out = dict(record)
    if plan.unwrap and isinstance(out.get(plan.unwrap), dict):
        out[plan.unwrap] = reshape(out[plan.unwrap], Plan(plan.fields, plan.lists), choose)
    for key, value in record.items():
        if key in plan.lists and isinstance(value, list):
            out[key] = reshape_rows(value, plan.lists[key], choose)
        elif key in plan.fields:
            out[key] = shaped(value, choose(f"shape:{key}", SHAPE_FORMS))
    return out


def shaped(value: Any, form: str) -> Any:
    """``value`` in ``form``: a lookup's name or a list's first element as a scalar, a scalar
    as a lookup, anything in a list, null, a number as text or a boolean as 0/1."""
    if form == "scalar":
        if isinstance(value, dict):
            return value.get("Name", json.dumps(value, sort_keys=True))
        return value[0] if isinstance(value, list) and value else value
    if form == "lookup":
        return {"ID": _ID, "Name": value}
    if form == "list":
        return [value]
    if form == "null":
        return None
    if form == "quoted":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True)
    return value


def _plan(record: Record, placing: Iterable[str], lists: dict[str, Plan],
          unwrap: str | None = None) -> Plan:
    """Every field of ``record`` but the placing ones and the lists planned apart; a JSON list
    of records is planned element by element (its elements place nothing)."""
    nested = {key: Plan(frozenset(spec.items)) for key, spec in record.items()
              if isinstance(spec, Field) and isinstance(spec.items, dict)}
    lists = lists | nested
    fields = frozenset(record) - frozenset(placing) - frozenset(lists)
    return Plan(fields, lists, unwrap)


def _pattern(call: Call) -> re.Pattern[str]:
    path = re.escape(call.path.lower()).replace(r"\{location_id\}", "[^/]+")
    return re.compile(path.replace(r"\{parent_id\}", "[^/]+"))


def _plans() -> list[tuple[re.Pattern[str], Plan]]:
    plans = []
    for group in GROUPS:
        root = group.root
        if isinstance(root, Call):
            own = {k: v for k, v in root.record.items() if k not in group.exploded}
            lists = {source.list_field: _plan(
                {k: v for k, v in source.record.items() if k not in source.drop},
                booker_names(source.record, child_placing(table, source)), {})
                for table in group.tables for source in table.sources
                if isinstance(source, Explode)}
            plans.append((_pattern(root), _plan(
                own, booker_names(own, root_placing(group)), lists, root.unwrap)))
        plans += [(_pattern(source.call), _plan(
            source.call.record, booker_names(source.call.record, child_placing(table, source)),
            {})) for table in group.tables for source in table.sources
            if isinstance(source, PerParent)]
    return plans


_PLANS = _plans()
