"""What an older version set aside comes back without asking Booker again.

The older warehouse is written by the version before "only placing fields reject" (from git,
in a child process, as test_migration.py does), against a sandbox that sends three values in
another shape than the catalogue declares (a room's ``Type`` as a lookup, a membership's
``PaymentFrequencyType`` as text, an order's ``Status`` as text): that version rejected those
records. The upgrade replays them; the tables then equal what this version loads from the same
replies, and a second replay (``booker-assets replay``) moves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import dagster as dg
import pytest

from booker_assets import cli
from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.io_manager import BookerDuckDBIOManager
from booker_assets.defs.storage import connect_locked, qualified
from booker_assets_tests.conftest import load_range, make_defs, make_settings
from booker_assets_tests.test_first_contact import rewritten
from booker_assets_tests.test_migration import _previous_version

BEFORE = "7165aaaa4f6f271f1c0ae74f4084c3457b9c97ba"  # the last version that rejected any misfit
LOCS = ("1001",)
DAYS = (date(2025, 6, 28), date(2025, 6, 29))  # orders on the first; the snapshots on the
# second (observable at the sandbox's clock)
OLD_LOAD = """
import json, sys
from datetime import date, datetime
import dagster as dg
from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import materialize_range
from booker_assets.defs.partitions import add_locations
from booker_assets.settings import Settings
args = json.loads(sys.argv[1])
settings = Settings(use_sandbox=False, allowed_locations=tuple(args["locations"]),
                    start_date=date(2025, 1, 1), duckdb_path=args["database"], lookback_days=7,
                    grace_hours=2.0, catch_up_days=3, pii="keep")
booker = BookerResource(base_url=args["url"], **args["credentials"], requests_per_second=1000,
                        burst=100)
now = datetime.fromisoformat(args["now"])
defs = build_definitions(settings, booker, clock=lambda: now)
with dg.DagsterInstance.ephemeral() as instance:
    add_locations(instance, args["locations"])
    days = [date.fromisoformat(day) for day in args["days"]]
    assert materialize_range(defs, instance, args["locations"], *days).success
"""


def reshaped(path: str, body: dict) -> dict:
    """Another Booker's reading of fields the contract names without a shape."""
    rows = body.get("Results") or []
    if path.endswith("/rooms"):
        for room in rows:
            room["Type"] = {"ID": 1, "Name": room.get("Type")}
    if path.endswith("/memberships"):  # the plans' levels, and a customer's memberships
        for row in rows:
            for level in [row, *(row.get("Levels") or [])]:
                if isinstance(level.get("PaymentFrequencyType"), dict):
                    level["PaymentFrequencyType"] = level["PaymentFrequencyType"]["Name"]
    if path.endswith("/orders") and rows:
        rows[0]["Status"] = "Completed"
    return body


def _tables(database: str) -> dict[str, list[tuple]]:
    """Every report table the warehouse holds (the older version had fewer reports)."""
    with connect_locked(database, read_only=True) as conn:
        stored = {name for (name,) in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'booker'").fetchall()}
        return {name: sorted(conn.execute(
            f"SELECT * EXCLUDE (_loaded_at) FROM {qualified(conn, name)}").fetchall(), key=repr)
            for name in TABLES if name in stored}


def _one(database: str, sql: str) -> list[tuple]:
    with connect_locked(database, read_only=True) as conn:
        return conn.execute(sql.replace("booker.", qualified(conn, schema="booker") + ".")
                            ).fetchall()


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory) -> tuple[str, str]:
    """(the older version's warehouse, this version's), from the same reshaped replies."""
    code = _previous_version(tmp_path_factory.mktemp("before"), BEFORE)
    old = str(tmp_path_factory.mktemp("old") / "booker_assets.duckdb")
    with rewritten(reshaped) as sb:
        args = {"url": sb.url, "credentials": sb.credentials, "database": old,
                "locations": list(LOCS), "days": [str(d) for d in DAYS],
                "now": sb.settings.now.isoformat()}
        done = subprocess.run([sys.executable, "-c", OLD_LOAD, json.dumps(args)], cwd=code,
                              env={**{k: v for k, v in os.environ.items()
                                      if not k.startswith(("BOOKER_", "DAGSTER_"))},
                                   "PYTHONPATH": str(code)}, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        settings = make_settings(tmp_path_factory.mktemp("new"), LOCS)
        assert load_range(make_defs(sb, settings), LOCS, *DAYS).success
    return old, settings.duckdb_path


def test_the_upgrade_replays_the_rejects_of_an_older_version(warehouses, monkeypatch, capsys):
    old, new = warehouses
    set_aside = dict(_one(old, "SELECT table_name, count(*) FROM booker._rejects GROUP BY 1"))
    assert set_aside["rooms"] and set_aside["memberships"] and set_aside["orders"], set_aside
    assert set_aside["customer_memberships"] and set_aside["orders_items"], set_aside

    manager = BookerDuckDBIOManager(database=old)
    manager.setup_for_execution(dg.build_init_resource_context())  # what the first load does

    assert _one(old, "SELECT count(*) FROM booker._rejects") == [(0,)]
    replayed = _tables(old)
    assert replayed == {name: rows for name, rows in _tables(new).items() if name in replayed}
    assert _one(old, "SELECT type__raw->>'Name' IS NOT NULL, count(*) FROM booker.rooms"
                     " GROUP BY 1") == [(True, set_aside["rooms"])]
    loads = ("SELECT table_name, sum(row_count), sum(rejected) FROM booker._loads"
             " WHERE table_name IN ('rooms', 'memberships', 'customer_memberships', 'orders',"
             " 'orders_items') GROUP BY 1")
    assert sorted(_one(old, loads)) == sorted(_one(new, loads))

    monkeypatch.setenv("BOOKER_DUCKDB_PATH", old)
    assert cli.main(["replay"]) == 0  # once is all: nothing is left to move
    assert "nothing to replay" in capsys.readouterr().out
    assert _tables(old) == replayed
    assert cli.main(["drift"]) == 0  # the documented way to see what drifted
    listed = capsys.readouterr().out
    assert "rooms.type: declared VARCHAR, seen object {ID, Name}" in listed
    assert "memberships.levels[].PaymentFrequencyType: declared object {ID, Name}, seen text" in (
        listed)
