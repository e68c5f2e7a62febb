"""Every contract-legal way Booker may write a reply loads exactly what the canonical one does.

The sandbox serves each report in variants drawn from a seed (booker_sandbox/variants.py): each date
in either form or both, the ISO twin missing, ``Z``/``+0000``/7-digit fractions, days as
``YYYY-MM-DD``, ISO or legacy, keys in any order, unknown extra fields, nulls absent, empty
lists ``[]``/null/absent, numbers as numeric strings, short pages. What lands in DuckDB must
equal the canonical load, column for column; columns the variants add (unknown fields) are
extra, never different, and no record may be rejected.

Property tests draw the seed with Hypothesis, per report; ``EXAMPLES`` per report run in CI
(``HYPOTHESIS_PROFILE=thorough`` runs 200). A full Dagster backfill of every report under one
seed is compared, table for table, with the session's loaded warehouse (the canonical load).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.catalogue.placing import booker_names, day_field, root_placing
from booker_assets.catalogue.reports import (
    GROUPS,
    TABLES,
    Call,
    DateRange,
    PerParent,
    ReportGroup,
)
from booker_assets.catalogue.schema import JSON, snake
from booker_assets.defs.drift import drift
from booker_assets.defs.io_manager import write_slice
from booker_assets.defs.storage import connect_locked, qualified
from booker_assets.load.extract import extract
from booker_assets.load.flatten import DRIFT, RAW
from booker_assets_tests.conftest import (
    LOADED_DAYS,
    OBSERVED_DAYS,
    SANDBOX_NOW,
    SANDBOX_SETTINGS,
    load_warehouse_days,
    make_defs,
)
from booker_sandbox import BookerSandbox
from booker_sandbox.variants import VARIANT_KINDS

EXAMPLES = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 12
SHAPE_EXAMPLES = 100 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 3
LOCATION = "1002"  # Central: its clocks change, so day windows are 23 and 25 hours
# Dated reports: the spring-forward weekend (LOADED_DAYS); snapshots: days the sandbox's clock
# can observe (OBSERVED_DAYS): the days of the session's loaded warehouse.
ALL_ON = {"include_expired": True, "ignore_freelancers": True, "only_active_employees": True,
          "schedule_defaults": True}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BookerSandbox, BookerClient]]:
    """A sandbox whose variants' seed each example sets, and one client for all of them
    (one request at a time, so a seed serves the same replies whatever the timing)."""
    with BookerSandbox(replace(SANDBOX_SETTINGS, variants=0)) as sb:
        resource = BookerResource(base_url=sb.url, **sb.credentials, requests_per_second=10_000,
                                  burst=1_000, max_in_flight=1)
        client = resource.get_client()
        yield sb, client
        client.close()


def _load(sb: BookerSandbox, client: BookerClient, group: ReportGroup, options: dict,
          seed: int | None, shapes: bool = False) -> dict[str, dict]:
    """Each table of ``group`` as DuckDB stores it, served under the variants of ``seed`` (and
    ``shapes``: every field that places nothing in a drawn shape), with its schema drift."""
    sb.settings = replace(sb.settings, variants=seed, shapes=shapes)
    # weekday defaults are undated, like snapshots: only observable days get them
    dated = any(t.history == "dated" for t in group.tables) and not options.get(
        "schedule_defaults")
    days = LOADED_DAYS if dated else OBSERVED_DAYS
    frames = extract(client.view(group.name), group, list(group.tables), LOCATION, list(days),
                     {name: options.get(name, False) for name in group.options}, "keep",
                     SANDBOX_NOW)
    stored = {}
    with duckdb.connect() as conn:
        for name, frame in frames.items():
            write_slice(conn, "booker", name, frame, ())
            stored[name] = _table(conn, name) | {"rejects": frame.rejects,
                                                 "drift": drift(conn, [name], "booker")}
    return stored


_CANONICAL: dict[str, dict] = {}  # each case's canonical load


def _canonical(sb: BookerSandbox, client: BookerClient, group: ReportGroup,
               options: dict) -> dict[str, dict]:
    """A case's canonical load, loaded once per module: the sandbox's clock is frozen, so it
    is the same for every example (it was loaded again for each, half of the test's time)."""
    case = repr((group.name, options))
    if case not in _CANONICAL:
        _CANONICAL[case] = _load(sb, client, group, options, None)
    return _CANONICAL[case]


def _table(conn: duckdb.DuckDBPyConnection, name: str) -> dict:
    """A stored table's columns, their types and rows (``_loaded_at`` aside)."""
    cursor = conn.execute(f"SELECT * EXCLUDE (_loaded_at) FROM {qualified(conn, name)}")
    columns, rows = [c[0] for c in cursor.description], cursor.fetchall()
    types = dict(conn.execute("SELECT column_name, data_type FROM duckdb_columns()"
                              " WHERE schema_name = 'booker' AND table_name = ?",
                              [name]).fetchall())
    return {"columns": columns, "types": types, "rows": rows, "rejects": []}


def assert_same_load(canonical: dict[str, dict], varied: dict[str, dict]) -> None:
    for name, want in canonical.items():
        got = varied[name]
        assert not got["rejects"], f"{name}: legal variants rejected: {got['rejects'][:3]}"
        assert set(want["columns"]) <= set(got["columns"]), name
        assert {c: got["types"][c] for c in want["columns"]} == {
            c: want["types"][c] for c in want["columns"]}, name
        json_columns = {c for c in want["columns"] if want["types"][c] == JSON}
        assert _rows(want, want["columns"], json_columns) == _rows(
            got, want["columns"], json_columns, against=want), name


def _rows(table: dict, columns: list[str], json_columns: set[str],
          against: dict | None = None) -> list[tuple]:
    """The rows on ``columns``, sorted; JSON cells parsed, and (for a variant) cut down to the
    keys the canonical cell has: elements may carry unknown fields, nothing else may differ."""
    index = [table["columns"].index(c) for c in columns]
    rows = [tuple(row[i] for i in index) for row in table["rows"]]
    rows = [tuple(json.loads(v) if c in json_columns and v is not None else v
                  for c, v in zip(columns, row, strict=True)) for row in rows]
    if against is not None:
        shape = {repr(_key(r, columns, json_columns)): r
                 for r in _rows(against, columns, json_columns)}
        rows = [tuple(_like(v, shape.get(repr(_key(row, columns, json_columns)), row)[n])
                      for n, v in enumerate(row)) for row in rows]
    return sorted(rows, key=repr)


def _key(row: tuple, columns: list[str], json_columns: set[str]) -> tuple:
    return tuple(v for c, v in zip(columns, row, strict=True) if c not in json_columns)


def _like(value: Any, model: Any) -> Any:
    """``value`` with only the dict keys ``model`` has, recursively."""
    if isinstance(value, dict) and isinstance(model, dict):
        return {k: _like(v, model[k]) for k, v in value.items() if k in model}
    if isinstance(value, list) and isinstance(model, list) and len(value) == len(model):
        return [_like(v, m) for v, m in zip(value, model, strict=True)]
    return value


# A group whose every table is asked only with an option (weekday defaults) serves nothing
# without it: only its options case
CASES = [(group, options) for group in GROUPS
         for options in ([{}, ALL_ON] if group.options else [{}])
         if any(not t.only_with or options.get(t.only_with) for t in group.tables)]


@pytest.mark.parametrize(("group", "options"), CASES,
                         ids=[f"{g.name}{'-options' if o else ''}" for g, o in CASES])
@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=1, max_value=2**32))
def test_every_variant_of_a_report_loads_like_the_canonical(served, group, options, seed):
    sb, client = served
    canonical = _canonical(sb, client, group, options)
    assert any(t["rows"] for t in canonical.values()), f"{group.name} serves nothing"
    assert_same_load(canonical, _load(sb, client, group, options, seed))


# ----- values of another shape than declared (booker_sandbox/shapes.py) ---------------------------


@pytest.mark.parametrize(("group", "options"), CASES,
                         ids=[f"{g.name}{'-options' if o else ''}" for g, o in CASES])
@settings(max_examples=SHAPE_EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=1, max_value=2**32))
def test_a_field_in_any_shape_keeps_its_record_and_its_value(served, group, options, seed):
    """Every field that places nothing, drawn in another shape (from the catalogue): the same
    rows and keys per partition, each drifted value kept exactly, the drift listed by field."""
    sb, client = served
    canonical = _canonical(sb, client, group, options)
    shaped = _load(sb, client, group, options, seed, shapes=True)
    for name, want in canonical.items():
        got = shaped[name]
        assert not got["rejects"], f"{name}: a reshaped value cost its record: {got['rejects'][:2]}"
        assert _keys(got, name) == _keys(want, name), name
        kept = _kept_values(got)
        for column, value, row in kept:
            if column + RAW in row:  # beside its column, which holds null
                assert json.loads(row[column + RAW]) == value, column
                assert column not in row or column in _carried(name) or row[column] is None
            elif "[]" in column:  # an element of a JSON list: it stays in the list as it came
                listed = row[column.split("[]")[0]]
                assert json.dumps(value, sort_keys=True) in json.dumps(json.loads(listed),
                                                                       sort_keys=True), column
        assert {c for c, _, _ in kept} == {d.field for d in got["drift"]}, name


PLACING = [(group, name) for group in GROUPS if isinstance(group.root, Call)
           for name in sorted(booker_names(
               {k: v for k, v in group.root.record.items() if k not in group.exploded},
               root_placing(group)))]


@pytest.mark.parametrize(("group", "field"), PLACING,
                         ids=[f"{g.name}-{name}" for g, name in PLACING])
def test_a_placing_field_made_unreadable_rejects_its_record_and_only_it(served, group, field):
    """The first record of each reply gets an object in a field that places it (from the
    catalogue): that record, and the rows it yields, are rejected naming the field; every
    other row loads as in the canonical load."""
    sb, client = served
    options: dict = {}
    canonical = _canonical(sb, client, group, options)
    if not any(table["rows"] for table in canonical.values()):  # asked only with an option
        options = ALL_ON
        canonical = _canonical(sb, client, group, options)
    handle = sb.api.handle
    path = re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(group.root.path.lower())))

    def unreadable(request, route, params):
        reply = handle(request, route, params)
        rows = reply.body.get(group.root.results_key) if isinstance(reply.body, dict) else None
        first_page = not isinstance(request.json, dict) or request.json.get("PageNumber") in (
            None, 1)  # a key read on two pages is a list that moved: another failure
        if path.fullmatch(request.path.lower()) and rows and first_page:
            reply.body = copy.deepcopy(reply.body)
            rows = reply.body[group.root.results_key]
            # a schedule is asked by months: each of its rows, so that the days loaded hold one
            for row in rows if isinstance(group.root.days, DateRange) else rows[:1]:
                for target in (row, row.get(group.root.unwrap or "")):
                    for key in (field, field + "Offset"):
                        if isinstance(target, dict) and key in target:
                            target[key] = {"Unreadable": True}
        return reply

    sb.api.handle = unreadable
    try:
        broken = _load(sb, client, group, options, None)
    finally:
        sb.api.handle = handle
    named = set()
    for table in group.tables:
        want, got = canonical[table.name], broken[table.name]
        assert set(_keys(got, table.name)) <= set(_keys(want, table.name)), table.name
        named |= {r.column for r in got["rejects"]}
        if any(isinstance(source, PerParent) for source in table.sources):
            continue  # a rejected parent's call is not made: one reject, not one per row
        if field == day_field(group.root):  # no day: the reject is on each day of the slice
            assert len(got["rows"]) + len(got["rejects"]) >= len(want["rows"]), table.name
        else:
            assert len(got["rows"]) + len(got["rejects"]) == len(want["rows"]), table.name
    assert snake(field) in named, named


def _carried(name: str) -> set[str]:
    """Columns a table's rows take from their parent: the record's own value is only kept."""
    return {column for source in TABLES[name].sources
            for column in getattr(source, "carry", {})}


def _keys(table: dict, name: str) -> list[tuple]:
    """Each row's partition and key, sorted: what may not change with a value's shape."""
    wanted = ["report_date", "location_id", *TABLES[name].key]
    index = [table["columns"].index(c) for c in dict.fromkeys(wanted)]
    return sorted((tuple(row[i] for i in index) for row in table["rows"]), key=repr)


def _kept_values(table: dict) -> list[tuple[str, Any, dict]]:
    """(field, value as it came, the row) for each value a row's _drift lists."""
    if DRIFT not in table["columns"]:
        return []
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    return [(entry["field"], entry["value"], row) for row in rows if row[DRIFT]
            for entry in json.loads(row[DRIFT])]


# ----- a full backfill of every report under variants --------------------------------------


def _warehouse(database: str) -> dict[str, dict]:
    stored = {}
    with connect_locked(database, read_only=True) as conn:
        for name in TABLES:
            stored[name] = _table(conn, name)
        stored["_rejects"] = conn.execute(f"SELECT * FROM {qualified(conn, '_rejects')}").fetchall()
    return stored


def test_a_backfill_of_every_report_under_variants_equals_the_canonical(loaded_warehouse,
                                                                         tmp_path):
    """The session's loaded warehouse is the canonical load: the same runs (its days, its
    locations, its settings and page size) from a sandbox serving variants."""
    settings = replace(loaded_warehouse.settings, duckdb_path=str(tmp_path / "varied.duckdb"))
    with BookerSandbox(replace(SANDBOX_SETTINGS, variants=20251130)) as sb:
        defs = make_defs(sb, settings, page_size=10)
        with dg.DagsterInstance.ephemeral() as instance:
            assert load_warehouse_days(defs, instance)
        picks = sb.stats.variants
    canonical = _warehouse(loaded_warehouse.settings.duckdb_path)
    varied = _warehouse(settings.duckdb_path)
    assert varied.pop("_rejects") == [] and canonical.pop("_rejects") == []
    assert all(table["rows"] for table in canonical.values()), "every table holds rows"
    assert_same_load(canonical, varied)
    rows = sum(len(t["rows"]) for t in canonical.values())
    offered = {f"{kind}={option}" for kind, options in VARIANT_KINDS.items()
               for option in options}
    drawn = {pick for pick in picks if pick in offered}
    print(f"\nvariants backfill: {len(canonical)} tables, {rows} rows, "
          f"{picks['replies']} replies varied, {len(drawn)} of {len(offered)} forms drawn")
    assert len(drawn) >= 0.9 * len(offered), sorted(offered - drawn)
