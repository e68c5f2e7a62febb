"""BOOKER_WAREHOUSE=ducklake: many writers and readers share one warehouse, with no lock.

The catalog is a database on the tests' own Postgres server (``postgres.py``); the extensions
load from the installed ``duckdb-ext-*`` wheels. The IO manager's guarantees on a DuckLake are
the parametrized ``test_io_manager.py``; here, whole loads in processes of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest

from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.io_manager import BookerDuckDBIOManager
from booker_assets.defs.storage import BookerStorageError, DuckLake, connect_locked
from booker_assets.errors import BookerConfigError
from booker_assets.settings import load_settings
from booker_assets_tests.conftest import SANDBOX_SETTINGS, load_range, make_defs, make_settings

ROOT = Path(__file__).resolve().parents[1]
WRITERS = ("1001", "1002")  # one load process per location, at once
DAYS = ("2025-06-27", "2025-06-29")
CHECKED = ("key_unique", "key_not_null", "rows_match_reported_total", "no_rejects")
# A third process: reads the lake while both load (from when the first creates it), and
# counts the partitions whose rows differ from what _loads says was written with them, and
# the orders it sees without their items (a report torn between its tables' commits).
READER = """
import json, os, sys
from booker_assets.defs.storage import DuckLake
lake, stop = DuckLake(sys.argv[1], sys.argv[2]), sys.argv[3]
queries, torn, errors, seen = 0, 0, [], 0
while True:
    done = os.path.exists(stop)
    try:
        with lake.connect_reader() as conn:
            tables = [t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables()"
                      " WHERE database_name = current_database() AND schema_name = 'booker'"
                      " AND table_name IN ('orders', 'orders_items', 'customers', 'notes')")
                      .fetchall()]
            for table in tables:
                torn += conn.execute(
                    f"SELECT count(*) FROM booker._loads l LEFT JOIN (SELECT report_date,"
                    f" location_id, count(*) AS n FROM booker.{table} GROUP BY ALL) t USING"
                    f" (report_date, location_id) WHERE l.table_name = ? AND l.row_count"
                    f" <> coalesce(t.n, 0)", [table]).fetchone()[0]
                queries += 1
            if {"orders", "orders_items"} <= set(tables):
                torn += conn.execute(
                    "SELECT count(*) FROM booker.orders o ANTI JOIN booker.orders_items i"
                    " ON i.report_date = o.report_date AND i.location_id = o.location_id"
                    " AND i.order_id = o.id").fetchone()[0]
            seen = max(seen, len(tables))
    except Exception as exc:
        if queries or "holds no DuckLake yet" not in str(exc):
            errors.append(str(exc).splitlines()[0])
    if done:
        break
print(json.dumps({"queries": queries, "torn": torn, "tables_seen": seen, "errors": errors[:5]}))
"""


@pytest.fixture
def lake(postgres_dsn: str, tmp_path: Path) -> dict[str, str]:
    return {"warehouse": "ducklake", "ducklake_catalog": postgres_dsn,
            "ducklake_data_path": str(tmp_path / "lake-data")}


def _load(sandbox, location: str, lake: dict[str, str], log: Path) -> subprocess.Popen:
    args = {"url": sandbox.url, "credentials": sandbox.credentials,
            "now": SANDBOX_SETTINGS.now.isoformat(), "locations": [location], "days": DAYS,
            "settings": {"duckdb_path": str(log.parent / "unused.duckdb"), **lake}}
    with log.open("w") as stderr:
        return subprocess.Popen([sys.executable, "-m", "booker_assets_tests.loads",
                                 json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=stderr, text=True)


def _contents(conn) -> dict[str, list[tuple]]:
    tables = {name: conn.execute(f"SELECT * EXCLUDE (_loaded_at) FROM booker.{name}"
                                 " ORDER BY ALL").fetchall() for name in TABLES}
    tables["_loads"] = conn.execute("SELECT * EXCLUDE (loaded_at) FROM booker._loads"
                                    " ORDER BY ALL").fetchall()
    return tables


@pytest.fixture(scope="module")
def reference(sandbox, tmp_path_factory) -> dict[str, list[tuple]]:
    """The same partitions loaded into a DuckDB file by one process."""
    settings = make_settings(tmp_path_factory.mktemp("reference"), WRITERS)
    first, last = map(date.fromisoformat, DAYS)
    assert load_range(make_defs(sandbox, settings), WRITERS, first, last).success
    with connect_locked(settings.duckdb_path, read_only=True) as conn:
        return _contents(conn)


def test_two_loads_and_a_reader_share_one_ducklake(sandbox, lake, reference, tmp_path):
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, lake["ducklake_catalog"],
                               lake["ducklake_data_path"], str(stop)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    started = time.perf_counter()
    loads = [_load(sandbox, location, lake, tmp_path / f"load-{location}.log")
             for location in WRITERS]
    try:
        results = [json.loads(load.communicate(timeout=900)[0].splitlines()[-1])
                   for load in loads]
    finally:
        stop.touch()
        seen = json.loads(reader.communicate(timeout=300)[0])
    seconds = time.perf_counter() - started

    for location, result in zip(WRITERS, results, strict=True):
        assert result["success"] and result["restarts"] == 0, (location, result["errors"])
        assert not [e for e in result["errors"] if "lock" in e.lower()]
        failed = [name for name, passed in result["checks"].items()
                  if not passed and name.split(":")[1] in CHECKED]
        assert failed == [], (location, failed)
    assert seen["errors"] == [] and seen["torn"] == 0, seen
    assert seen["queries"] > 0 and seen["tables_seen"] == 4  # it read while they wrote
    with DuckLake(lake["ducklake_catalog"], lake["ducklake_data_path"]).connect_reader() as conn:
        shared = _contents(conn)
    for name, rows in reference.items():  # every partition as one process writes it
        assert shared[name] == rows, f"{name} differs from the one-process load"
    retried = sum("another writer committed first" in m["text"]
                  for r in results for m in r["messages"])
    rows = sum(len(rows) for name, rows in shared.items() if name != "_loads")
    days = (date.fromisoformat(DAYS[1]) - date.fromisoformat(DAYS[0])).days + 1
    print(f"\nDuckLake: {len(WRITERS)} writer processes, {days} days each, "
          f"{seconds:.1f} s; reader: {seen['queries']} queries, {seen['torn']} torn; "
          f"{rows} rows in {len(TABLES)} tables, {len(shared['_loads'])} partitions in _loads; "
          f"{retried} transactions retried after a conflict")

    # the analysts' command reads the same lake
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKER_")} | {
        "BOOKER_WAREHOUSE": "ducklake", "BOOKER_DUCKLAKE_CATALOG": lake["ducklake_catalog"],
        "BOOKER_DUCKLAKE_DATA_PATH": lake["ducklake_data_path"]}
    # the README `sql` command marked as reading the DuckLake; its others query other tables
    (command,) = [line.split("  #")[0] for line in (ROOT / "README.md").read_text().splitlines()
                  if line.startswith(".venv/bin/booker-assets sql") and "DuckLake" in line]
    done = subprocess.run(command.replace(".venv/bin/", f"{Path(sys.executable).parent}/"),
                          shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(location in done.stdout for location in WRITERS), done.stdout


def test_the_warehouse_is_a_setting(postgres_dsn, tmp_path):
    env = {"BOOKER_WAREHOUSE": "ducklake", "BOOKER_DUCKLAKE_CATALOG": postgres_dsn,
           "BOOKER_DUCKLAKE_DATA_PATH": str(tmp_path / "data")}
    settings = load_settings(env)
    io_manager = BookerDuckDBIOManager.from_settings(settings)
    assert (io_manager.warehouse, io_manager.ducklake_catalog) == ("ducklake", postgres_dsn)
    assert isinstance(io_manager.store(), DuckLake)
    assert load_settings({}).warehouse == "duckdb"  # the default is unchanged


@pytest.mark.parametrize(("env", "message"), [
    ({"BOOKER_WAREHOUSE": "lakehouse"}, "BOOKER_WAREHOUSE='lakehouse' is not a warehouse"),
    ({"BOOKER_WAREHOUSE": "ducklake"}, "needs BOOKER_DUCKLAKE_CATALOG and BOOKER_DUCKLAKE_DATA"),
    ({"BOOKER_WAREHOUSE": "ducklake", "BOOKER_DUCKLAKE_DATA_PATH": "/srv/lake",
      "BOOKER_DUCKLAKE_CATALOG": "host=db dbname=lake user=booker password=hunter2"},
     "holds a password.*PGPASSWORD"),
    ({"BOOKER_WAREHOUSE": "ducklake", "BOOKER_DUCKLAKE_DATA_PATH": "/srv/lake",
      "BOOKER_DUCKLAKE_CATALOG": "postgresql://booker:hunter2@db/lake"},
     "holds a password"),
])
def test_a_bad_warehouse_setting_names_the_fix(env, message):
    with pytest.raises(BookerConfigError, match=message) as info:
        load_settings(env)
    assert "hunter2" not in str(info.value)


def test_an_unreachable_catalog_is_named_with_the_fix(tmp_path):
    lake = DuckLake("host=127.0.0.1 port=9 user=postgres dbname=lake connect_timeout=2",
                    str(tmp_path / "data"))
    with pytest.raises(BookerStorageError, match="cannot attach the DuckLake.*Fix: check that"):
        lake.write(lambda conn: None)



def test_the_catalog_password_comes_from_pgpassword(postgres_server, tmp_path):
    """libpq (inside DuckDB's postgres extension) reads PGPASSWORD: the setting holds none."""
    name, _ = postgres_server.create_database()
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE ROLE booker_pw LOGIN PASSWORD 's3cret'")
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO booker_pw')
        hba = postgres_server.base / "data" / "pg_hba.conf"  # a password for this role only
        hba.write_text("host all booker_pw 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        conn.execute("SELECT pg_reload_conf()")
    dsn = f"host=127.0.0.1 port={postgres_server.port} user=booker_pw dbname={name}"
    code = ("import sys; from booker_assets.defs.storage import DuckLake\n"
            "DuckLake(sys.argv[1], sys.argv[2]).write(lambda c: c.execute('SELECT 1'))")
    runs = {password: subprocess.run(
        [sys.executable, "-c", code, dsn, str(tmp_path / "data")], cwd=ROOT, text=True,
        capture_output=True, env={k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        | ({"PGPASSWORD": password} if password else {})) for password in ("", "s3cret")}

    assert runs[""].returncode == 1 and "no password supplied" in runs[""].stderr
    assert "PGPASSWORD (or ~/.pgpass)" in runs[""].stderr
    assert runs["s3cret"].returncode == 0, runs["s3cret"].stderr
