"""Readers never block loads, and a load waiting for the DuckDB file says so.

An analyst holding the live file (DBeaver, ``duckdb.connect(path, read_only=True)``) makes a
load wait: it names the holder's PID and what to do at once, waits (BOOKER_LOCK_WAIT_SECONDS at
most) with what it fetched in memory, and writes it when the file is free, fetching nothing
twice. Analysts read the copy published after each run: holding it never blocks a load, and it
is never half written. Loads run in processes of their own (``loads.py``), as a run launcher
starts them; the holder is another process, as DuckDB's lock is per process.
"""

from __future__ import annotations

import base64
import errno
import gzip
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from rich.console import Console

from booker_assets import demo
from booker_assets.defs import storage
from booker_assets.defs.io_manager import write_slice
from booker_assets.defs.storage import (
    BookerStorageError,
    DuckDBFile,
    connect_locked,
    publish_read_copy,
    read_copy_path,
)
from booker_assets.errors import BookerConfigError
from booker_assets.load.frames import PartitionLoad, Reject, ReportFrame
from booker_assets.settings import load_settings
from booker_assets_tests.conftest import SANDBOX_SETTINGS, load_range, make_defs, make_settings
from booker_sandbox import BookerSandbox

ROOT = Path(__file__).resolve().parents[1]
LOC = "1001"
DAYS = ("2025-06-27", "2025-06-28")  # days with orders at location 1001
COUNT = "SELECT count(*) FROM booker.orders"
NEWEST = "SELECT max(loaded_at)::VARCHAR FROM booker._loads"
# An analyst's process: opens the file (trying again while a write holds it), then answers
# ``sql`` through that one connection for each line it is sent.
HOLD = """
import duckdb, sys, time
for _ in range(600):
    try:
        c = duckdb.connect(sys.argv[1], read_only=True)
        break
    except duckdb.IOException:
        time.sleep(0.1)
print("held", flush=True)
for line in sys.stdin:
    print(c.execute(sys.argv[2]).fetchall()[0][0], flush=True)
"""


class Holder:
    """Another process holding ``path`` read-only until ``release``; ``ask`` runs ``sql``
    through its open connection."""

    def __init__(self, path: str, sql: str = COUNT) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLD, path, sql],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"
        self.pid = self.process.pid

    def ask(self) -> str:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(30)


class Load:
    """A load of LOC × DAYS in its own process; its Dagster log streams to ``log``."""

    def __init__(self, sandbox: BookerSandbox, database: str, log: Path, **settings) -> None:
        args = {"url": sandbox.url, "credentials": sandbox.credentials,
                "now": SANDBOX_SETTINGS.now.isoformat(), "locations": [LOC], "days": DAYS,
                "settings": {"duckdb_path": database, **settings}}
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "booker_assets_tests.loads", json.dumps(args)], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=stderr, text=True)

    def wait_for_line(self, pattern: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log.read_text()):
            assert self.process.poll() is None, f"the load ended first:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in the load's log"
            time.sleep(0.1)

    def result(self) -> dict:
        out, _ = self.process.communicate(timeout=600)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        return json.loads(out.splitlines()[-1])


@pytest.fixture(scope="module")
def slow_sandbox() -> Iterator[BookerSandbox]:
    """Booker's latency: a step fetches for seconds, so a holder can come while it does."""
    with BookerSandbox(replace(SANDBOX_SETTINGS, latency_ms=500)) as sb:
        yield sb


@pytest.fixture(scope="module")
def loaded(slow_sandbox: BookerSandbox, tmp_path_factory) -> tuple[str, int]:
    """A database after one load, and the requests that load made."""
    folder = tmp_path_factory.mktemp("readers")
    database = str(folder / "booker_assets.duckdb")
    before = slow_sandbox.stats.requests
    result = Load(slow_sandbox, database, folder / "first.log").result()
    assert result["success"], result["errors"]
    return database, slow_sandbox.stats.requests - before


def _held_messages(result: dict, pid: int) -> list[dict]:
    return [m for m in result["messages"] if f"is held by PID {pid}" in m["text"]]


def test_a_load_waits_for_an_analyst_on_the_live_file_and_fetches_nothing_twice(
        slow_sandbox, loaded, tmp_path):
    database, requests_of_a_load = loaded
    before = slow_sandbox.stats.requests
    load = Load(slow_sandbox, database, tmp_path / "load.log")
    while slow_sandbox.stats.requests == before:  # the run has started and is fetching
        time.sleep(0.02)
    holder = Holder(database)  # as `duckdb.connect(path, read_only=True)` in a notebook
    held = time.monotonic()
    try:
        load.wait_for_line(rf"is held by PID {holder.pid}")
        said_after = time.monotonic() - held
        time.sleep(1.5)  # it keeps waiting
    finally:
        holder.release()
    result = load.result()

    assert result["success"] and result["restarts"] == 0
    assert slow_sandbox.stats.requests - before == requests_of_a_load  # nothing fetched twice
    waits = _held_messages(result, holder.pid)
    # the step's fetched rows waited (not only the run's start or end), naming the fix
    assert any(m["step"] == "booker_reports" and m["level"] == logging.WARNING
               for m in waits), waits
    assert str(read_copy_path(database)) in waits[0]["text"]
    assert "close that process's connection" in waits[0]["text"]
    assert any("is free again" in m["text"] for m in result["messages"])
    with connect_locked(database, read_only=True) as conn:
        rows = conn.execute(COUNT).fetchone()[0]
    assert rows > 0
    print(f"\nheld lock reported {said_after:.1f} s after the analyst took the file; "
          f"{requests_of_a_load} requests, each made once")


def test_a_load_held_for_the_whole_wait_fails_before_fetching_and_is_not_retried(
        slow_sandbox, loaded, tmp_path):
    database, _ = loaded
    holder = Holder(database)
    before = slow_sandbox.stats.requests
    try:
        result = Load(slow_sandbox, database, tmp_path / "load.log", lock_wait_seconds=2).result()
    finally:
        holder.release()

    assert not result["success"] and result["restarts"] == 0
    assert slow_sandbox.stats.requests == before  # the run's start waited: nothing fetched
    (error,) = [e for e in result["errors"] if "held it for the 2 s" in e]
    assert f"PID {holder.pid}" in error and "BOOKER_LOCK_WAIT_SECONDS" in error


def test_an_analyst_reading_the_copy_never_blocks_a_load(slow_sandbox, loaded, tmp_path):
    database, _ = loaded
    copy = read_copy_path(database)
    holder = Holder(str(copy), NEWEST)  # all day long, on the copy
    try:
        seen = holder.ask()
        result = Load(slow_sandbox, database, tmp_path / "load.log").result()
        still = holder.ask()
    finally:
        holder.release()

    assert result["success"] and result["restarts"] == 0
    assert not [m for m in result["messages"] if "is held by" in m["text"]]
    assert still == seen  # the open connection keeps the file it opened
    with duckdb.connect(str(copy), read_only=True) as fresh:  # the next one sees the load
        assert fresh.execute(NEWEST).fetchone()[0] > seen


def test_the_readme_reads_the_copy(loaded, tmp_path):
    """Each README command that reads the warehouse, run as a user would, from a checkout
    whose data/ holds a published copy."""
    database, _ = loaded
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "booker_assets.read.duckdb").write_bytes(
        read_copy_path(database).read_bytes())
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    commands = [line.split("  #")[0] for line in _readme_section("### Reading while it loads")]
    assert len(commands) == 2, commands
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKER_")}
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        assert re.search(rf"{LOC}\s.*\d", done.stdout), (command, done.stdout)


def _readme_section(title: str) -> list[str]:
    """The shell lines of the README's ```bash blocks under ``title``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(title) + len(title):]
    section = re.split(r"\n##+ ", section)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_moves_a_file_across_duckdb_versions(loaded, tmp_path):
    """The README's export and import, run as written. Here both halves run on DuckDB 1.4.4
    (the tests cannot install DuckDB 2 next to it); the export by DuckDB 2.0.1 of a file it
    wrote was checked by hand the same way."""
    database, _ = loaded
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "booker_assets.duckdb").write_bytes(Path(database).read_bytes())
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    commands = _readme_section("### A database file from DuckDB 2")
    assert len(commands) == 3, commands
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)

    def contents(path: Path) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as conn:
            tables = conn.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name ="
                                  " 'booker' ORDER BY 1").fetchall()
            return [(t, conn.execute(f"SELECT count(*) FROM booker.{t}").fetchone()[0])
                    for (t,) in tables] + conn.execute(
                "SELECT view_name FROM duckdb_views() WHERE schema_name = 'booker'"
                " ORDER BY 1").fetchall()

    assert contents(tmp_path / "data" / "booker_assets.duckdb") == contents(
        tmp_path / "data" / "booker_assets.duckdb2")


# ---------------------------------------------------------------- the copy itself


READER = """
import duckdb, json, sys, time
copy, stop = sys.argv[1], sys.argv[2]
seen, reads, errors = set(), 0, []
while True:
    done = __import__("os").path.exists(stop)
    try:
        with duckdb.connect(copy, read_only=True) as c:
            rows, declared, version = c.execute(
                "SELECT (SELECT count(*) FROM booker.orders), (SELECT sum(row_count) FROM"
                " booker._loads), (SELECT max(loaded_at)::VARCHAR FROM booker._loads)").fetchone()
        reads += 1
        seen.add(version)
        if rows != declared:
            errors.append(f"{rows} rows, {declared} declared")
    except duckdb.Error as exc:
        errors.append(str(exc).splitlines()[0])
    if done:
        break
print(json.dumps({"reads": reads, "versions": len(seen), "errors": errors[:5]}))
"""


def _slice(day: date, rows: int) -> ReportFrame:
    frame = pd.DataFrame({"report_date": [day] * rows, "location_id": [1001] * rows,
                          "order_id": range(rows), "note": ["x" * 40] * rows,
                          "_loaded_at": pd.Timestamp.now(tz="UTC")})
    return ReportFrame(frame, [(day, 1001)], [PartitionLoad(day, 1001, rows)])


def _slow_copy(source: str | Path, target: str | Path) -> None:
    """A slow disk: half the file, a pause, the rest."""
    data = Path(source).read_bytes()
    with open(target, "wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(0.3)
        out.write(data[len(data) // 2:])


def test_the_read_copy_is_never_half_written(tmp_path, monkeypatch):
    """A reader opening the copy over and over while it is replaced after each write, on a
    slow disk: every open finds a whole file whose tables agree with its _loads (a copy
    written in place is caught half-written)."""
    monkeypatch.setattr(storage.shutil, "copyfile", _slow_copy)
    database, stop = str(tmp_path / "booker_assets.duckdb"), tmp_path / "stop"
    warehouse = DuckDBFile(database)
    first = date(2025, 3, 1)
    warehouse.write(lambda conn: write_slice(conn, "booker", "orders", _slice(first, 1)))
    publish_read_copy(database)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(read_copy_path(database)),
                               str(stop)], stdout=subprocess.PIPE, text=True)
    published = 0
    try:
        for n in range(12):
            report = _slice(first + timedelta(days=n % 3), 10_000 + n)
            warehouse.write(lambda conn, r=report: write_slice(conn, "booker", "orders", r))
            published += publish_read_copy(database) is not None
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=120)
    seen = json.loads(out)

    assert published == 12
    assert seen["errors"] == []
    assert seen["versions"] >= 2 and seen["reads"] >= seen["versions"]
    size = read_copy_path(database).stat().st_size
    print(f"\n{seen['reads']} opens of the copy during {published} publications, "
          f"{seen['versions']} versions seen, 0 torn; copy {size:,} B")


def test_publishing_again_without_a_write_copies_nothing(tmp_path):
    database = str(tmp_path / "booker_assets.duckdb")
    DuckDBFile(database).write(
        lambda conn: write_slice(conn, "booker", "orders", _slice(date(2025, 3, 1), 3)))
    assert publish_read_copy(database) == read_copy_path(database)
    assert publish_read_copy(database) is None


def test_the_lock_wait_is_a_setting():
    assert load_settings({"BOOKER_LOCK_WAIT_SECONDS": "90"}).lock_wait_seconds == 90
    with pytest.raises(BookerConfigError, match="BOOKER_LOCK_WAIT_SECONDS='soon' is not a"):
        load_settings({"BOOKER_LOCK_WAIT_SECONDS": "soon"})


# An empty database file written by DuckDB 2.0.1 (gzip, base64): what a user of the previous
# version has in data/.
DUCKDB_2_FILE = (
    "H4sIAAAAAAACA+3XoQrCABAG4IELFqvJahLGJoKanRZZNFn1ASxisgk+gM9h2hPYrSJGy/ApNIgIgmIRDN9X"
    "fo47Lly7cr0SNnb7ZTrqDYtS8JV5M4qj5H2/M2l3kqQ17caf9xSX7f60Ps8GeTXbHPJVAAAAAPzEsb1Y1MZp"
    "9qivL56T4T3K9+g7HQAAAPj/AQAAgL9xAwUxi0MAMAAA")


def test_a_file_from_duckdb_2_is_refused_with_the_way_out(tmp_path):
    database = tmp_path / "booker_assets.duckdb"
    database.write_bytes(gzip.decompress(base64.b64decode(DUCKDB_2_FILE)))
    with pytest.raises(BookerStorageError, match="written by a newer DuckDB .* README"):
        DuckDBFile(str(database)).write(lambda conn: None)


def test_waiting_is_reported_again_while_it_lasts(tmp_path, monkeypatch):
    """The first line at once, then one every LOG_EVERY_S: bounded, never one per retry."""
    monkeypatch.setattr(storage, "LOG_EVERY_S", 0.6)
    monkeypatch.setattr(storage, "POLL_S", 0.05)
    database = str(tmp_path / "booker_assets.duckdb")
    DuckDBFile(database).write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)"))
    lines: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            lines.append(msg)

        warning = info

    holder = Holder(database)
    release = threading.Timer(2.0, holder.release)
    started = time.monotonic()
    release.start()
    try:
        DuckDBFile(database).write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"),
                                   log=Log())
    finally:
        release.join()
    waited = time.monotonic() - started
    waits = [line for line in lines if f"is held by PID {holder.pid}" in line]
    # one at once, then one per 0.6 s of waiting: not one per 0.05 s try
    assert 2 <= len(waits) <= waited / 0.6 + 2, (waited, lines)
    assert "is free again" in lines[-1]


def _full_disk(source: str | Path, target: str | Path) -> None:
    """The disk fills while the copy is written (what a 16 MB tmpfs did in issue 21)."""
    Path(target).write_bytes(Path(source).read_bytes()[:4096])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))


def test_a_copy_that_cannot_be_published_fails_the_run_and_is_called_stale(
        sandbox, tmp_path, monkeypatch, capsys):
    settings = make_settings(tmp_path, (LOC,))
    day = date.fromisoformat(DAYS[0])
    defs = make_defs(sandbox, settings)
    assert load_range(defs, [LOC], day, day, selection=["booker/locations"]).success
    warehouse = DuckDBFile(settings.duckdb_path)
    assert warehouse.stale() is None
    monkeypatch.setattr(storage.shutil, "copyfile", _full_disk)

    result = load_range(defs, [LOC], day, day, selection=["booker/locations"],
                        raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    first = failure.step_failure_data.user_failure_data.description.splitlines()[0]
    copy = read_copy_path(settings.duckdb_path)
    assert first.startswith(f"the analysts' read copy was not published (it still holds the "
                            f"previous run's data): publishing the read copy DuckDB {copy}: "
                            f"the disk of {tmp_path} is full (No space left on device): a new"
                            f" read copy needs about")
    assert "Fix: free at least" in first and "booker_assets.duckdb" in first
    assert not list(tmp_path.glob(".*.partial"))  # the partial copy is removed

    stale = warehouse.stale()
    assert stale and stale.startswith(f"the read copy {copy} was published ")
    demo.read_back(warehouse, demo.Tally(), Console(soft_wrap=True))  # as the demo
    shown = capsys.readouterr().out.splitlines()
    assert shown[:2] == [f"Read from DuckDB {copy}",
                         f"STALE: {stale}"]
    print(f"\n[measured] unpublished copy, first line: {first[:300]}")


# ---------------------------------------------------------------- the copy kept up to date


def _contents(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every table's rows (sorted) and every view's definition, by name."""
    found = {f"view {s}.{v}": [(sql,)] for s, v, sql in conn.execute(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()}
    for schema, table in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()"
                                      ).fetchall():
        found[f"{schema}.{table}"] = sorted(
            conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall(), key=repr)
    return found


def _same(database: str) -> None:
    with connect_locked(database, read_only=True) as live:
        expected = _contents(live)
    with duckdb.connect(str(read_copy_path(database)), read_only=True) as copy:
        assert _contents(copy) == expected


def test_after_its_first_two_the_copy_is_kept_up_to_date_by_slices(tmp_path, monkeypatch):
    """Each write a load, a removed location, a new column, a view or a dbt-like table makes,
    published: the copy holds exactly the live file; after the first two publications (one
    per buffer) no whole file is copied."""
    database = str(tmp_path / "booker_assets.duckdb")
    warehouse = DuckDBFile(database)
    first = date(2025, 3, 1)

    def load(day: date, rows: int, location: int = 1001, table: str = "orders",
             rejected: str = "") -> None:
        report = _slice(day, rows)
        report.frame["location_id"] = location
        rejects = [Reject(day, location, "7", "order_id", rejected, "{}")] if rejected else []
        report = ReportFrame(report.frame, [(day, location)],
                             [PartitionLoad(day, location, rows)], rejects)
        warehouse.write(lambda conn: write_slice(conn, "booker", table, report, ["order_id"]))

    for n in range(2):
        load(first + timedelta(days=n), 3, rejected="unreadable")
        assert publish_read_copy(database)
    copies: list[str] = []
    monkeypatch.setattr(storage.shutil, "copyfile", lambda *a: copies.append(a))
    changes = [
        lambda: load(first, 3, rejected="unreadable again"),  # a slice replaced, same count
        lambda: load(first, 5),  # a slice replaced
        lambda: load(first + timedelta(days=2), 4, location=1002),  # a new slice, location
        lambda: load(first, 2, table="order_items"),  # a new table
        lambda: warehouse.write(lambda conn: conn.execute(  # a new column
            "ALTER TABLE booker.orders ADD COLUMN tip DOUBLE")),
        lambda: storage.drop_location(warehouse, 1002),  # publishes itself
        lambda: warehouse.write(lambda conn: conn.execute(  # a table no _loads records
            "CREATE OR REPLACE TABLE booker.mart AS SELECT 1 AS n")),
    ]
    for change in changes:
        change()
        publish_read_copy(database)
        _same(database)
    assert copies == []


def test_a_reader_holding_an_old_copy_keeps_it_and_the_next_is_whole(tmp_path):
    """The buffer a reader opened two publications ago is not written under it: the copy is
    made afresh, the reader still reads what it opened."""
    database = str(tmp_path / "booker_assets.duckdb")
    warehouse = DuckDBFile(database)
    first = date(2025, 3, 1)
    warehouse.write(lambda conn: write_slice(conn, "booker", "orders", _slice(first, 1)))
    publish_read_copy(database)
    holder = Holder(str(read_copy_path(database)))
    try:
        for rows in (2, 3):
            warehouse.write(lambda conn, r=rows: write_slice(conn, "booker", "orders",
                                                             _slice(first, r)))
            assert publish_read_copy(database)
            _same(database)
        assert holder.ask() == "1"
    finally:
        holder.release()


def test_a_full_disk_while_the_slices_are_copied_leaves_the_copy_as_it_was(tmp_path,
                                                                          monkeypatch):
    database = str(tmp_path / "booker_assets.duckdb")
    warehouse = DuckDBFile(database)
    first = date(2025, 3, 1)
    for rows in (1, 2, 3):
        warehouse.write(lambda conn, r=rows: write_slice(conn, "booker", "orders",
                                                         _slice(first, r)))
        if rows < 3:
            publish_read_copy(database)

    def full(*args) -> None:
        raise duckdb.IOException("Could not write file \"x\": No space left on device")

    monkeypatch.setattr(storage, "_copy_slices", full)
    with pytest.raises(BookerStorageError) as raised:
        publish_read_copy(database)
    message = str(raised.value).splitlines()[0]
    assert "is full (No space left on device): the read copy's update needs about" in message
    with duckdb.connect(str(read_copy_path(database)), read_only=True) as copy:
        assert copy.execute(COUNT).fetchone()[0] == 2  # the previous publication's
