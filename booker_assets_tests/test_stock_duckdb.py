"""Why the loads do not use dagster-duckdb's IO manager: each README reason, measured.

Our report's shape (one fetch → ``orders`` and ``orders_items``, day × location partitions,
``partition_expr`` as dagster-duckdb asks) is materialized by Dagster with the stock
``DuckDBPandasIOManager``, and DuckDB is read afterwards. Each test asserts what the README's
"Why not dagster-duckdb's IO manager" section reports; one that starts failing means a new
dagster-duckdb fixed that case, and the section (and maybe the choice) must be revisited.
What our own IO manager does in the same case is tested in test_atomic_reports.py,
test_io_manager.py and test_bad_input.py.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from booker_assets.defs.partitions import LOCATIONS_PARTITIONS, build_partitions
from booker_assets_tests.conftest import make_settings

DAY, EMPTY_DAY, NEVER_LOADED = "2025-03-01", "2025-03-02", "2025-03-03"
LOCATION = "1001"
# what the stock manager needs to delete a slice: the column of each partition dimension
PARTITION_EXPR = {"date": "report_date", "location": "location_id"}
Frames = Callable[[], dict[str, pd.DataFrame]]


def orders(day: str, version: str, *columns: str) -> pd.DataFrame:
    rows = [{"report_date": pd.Timestamp(day).date(), "location_id": int(LOCATION),
             "order_id": n, "first_name": f"Ann{n}", "last_name": f"Lee{n}", "version": version}
            for n in (1, 2)]
    return pd.DataFrame(rows, columns=list(columns) or None)


def items(day: str, version: str, **more: object) -> pd.DataFrame:
    return pd.DataFrame([{"report_date": pd.Timestamp(day).date(),
                          "location_id": int(LOCATION), "order_id": n, "item_id": 10 + n,
                          "version": version, **more} for n in (1, 2)])


class Stock:
    """A DuckDB file loaded by the stock IO manager, in one Dagster instance."""

    def __init__(self, tmp_path: Path, instance: dg.DagsterInstance,
                 partitions: dg.MultiPartitionsDefinition) -> None:
        self.database = str(tmp_path / "stock.duckdb")
        self.instance, self.partitions = instance, partitions

    def load(self, day: str, frames: Frames, crash_after: str = "") -> dg.ExecuteInProcessResult:
        """One run of the report for ``day`` × LOCATION; ``crash_after``: the step dies once
        that output is stored (a kill at that instant leaves what this leaves)."""

        @dg.multi_asset(
            name="booker_reports", partitions_def=self.partitions,
            outs={name: dg.AssetOut(key=["booker", name], is_required=False,
                                    metadata={"partition_expr": PARTITION_EXPR})
                  for name in ("orders", "orders_items")})
        def booker_reports() -> Iterator[dg.Output]:
            for name, frame in frames().items():
                yield dg.Output(frame, output_name=name)
                if name == crash_after:
                    raise RuntimeError(f"killed after {name}")

        return dg.materialize(
            [booker_reports], instance=self.instance, raise_on_error=False,
            partition_key=dg.MultiPartitionKey({"date": day, "location": LOCATION}),
            resources={"io_manager": DuckDBPandasIOManager(database=self.database)})

    def connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """The stock resource's connection. A failed write leaves its connection to the
        garbage collector (its close is not in a ``finally``); until then this process's
        DuckDB refuses a connection of another configuration, not one of the same."""
        return DuckDBResource(database=self.database).get_connection()

    def rows(self, table: str, day: str = DAY) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(f"SELECT * EXCLUDE (report_date, location_id) FROM booker.{table}"
                                " WHERE report_date = ? ORDER BY ALL", [day]).fetchall()

    def tables(self) -> list[str]:
        with self.connect() as conn:
            return [name for (name,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]


@pytest.fixture
def dynamic_stock(tmp_path: Path) -> Iterator[Stock]:
    """Our partitions: days × the dynamic locations Booker returns."""
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(LOCATIONS_PARTITIONS, [LOCATION])
        partitions = build_partitions(make_settings(tmp_path, (LOCATION,)))
        yield Stock(tmp_path, instance, partitions.daily_by_location)


@pytest.fixture
def stock(tmp_path: Path) -> Iterator[Stock]:
    """Days × a static list of locations (a redeploy for each new one): the shape the stock
    manager can write, to measure what it does then."""
    with dg.DagsterInstance.ephemeral() as instance:
        daily = build_partitions(make_settings(tmp_path, (LOCATION,))).daily
        yield Stock(tmp_path, instance, dg.MultiPartitionsDefinition(
            {"date": daily, "location": dg.StaticPartitionsDefinition([LOCATION])}))


def first_error(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return str(failure.step_failure_data.error.cause or failure.step_failure_data.error)


def test_our_partitions_cannot_be_written(dynamic_stock: Stock) -> None:
    """Days × dynamic locations: computing the slice to delete fails on every write, whatever
    the data (dagster-io/dagster#32631, open)."""
    result = dynamic_stock.load(DAY, lambda: {"orders": orders(DAY, "v1")})
    assert not result.success
    assert "The instance is not available to load partitions" in first_error(result)
    assert not Path(dynamic_stock.database).exists()  # the slice is computed before connecting


def test_a_report_is_written_table_by_table(stock: Stock) -> None:
    """Each output is its own connection and statements: a kill between the two tables of
    one fetch leaves orders new and their items old (ours: one transaction for both)."""
    v1 = {"orders": orders(DAY, "v1"), "orders_items": items(DAY, "v1")}
    assert stock.load(DAY, lambda: v1).success
    v2 = {"orders": orders(DAY, "v2"), "orders_items": items(DAY, "v2")}
    assert not stock.load(DAY, lambda: v2, crash_after="orders").success
    assert {row[-1] for row in stock.rows("orders")} == {"v2"}
    assert {row[-1] for row in stock.rows("orders_items")} == {"v1"}


def test_a_failed_insert_loses_the_days_rows(stock: Stock) -> None:
    """A field Booker adds to items: the slice is deleted (autocommit), then the positional
    INSERT fails: the day's 2 old rows are gone, 0 new ones written, and a re-run fails alike
    (ours: the column is added, or nothing changes)."""
    assert stock.load(DAY, lambda: {"orders_items": items(DAY, "v1")}).success
    assert len(stock.rows("orders_items")) == 2
    result = stock.load(DAY, lambda: {"orders_items": items(DAY, "v2", discount=0.5)})
    assert not result.success
    assert "table orders_items has 5 columns but 6 values were supplied" in first_error(result)
    assert stock.rows("orders_items") == []
    again = stock.load(DAY, lambda: {"orders_items": items(DAY, "v2", discount=0.5)})
    assert "5 columns but 6 values were supplied" in first_error(again)  # it never heals


def test_columns_are_inserted_by_position(stock: Stock) -> None:
    """Two text fields in another order (Booker's JSON has no order): the run succeeds and
    every first name is stored as a last name (ours: INSERT ... BY NAME)."""
    assert stock.load(DAY, lambda: {"orders": orders(DAY, "v1")}).success
    swapped = orders(DAY, "v2", "report_date", "location_id", "order_id", "last_name",
                     "first_name", "version")
    assert stock.load(DAY, lambda: {"orders": swapped}).success
    assert stock.rows("orders")[0][:3] == (1, "Lee1", "Ann1")  # (order_id, first, last)


def test_an_empty_day_leaves_no_trace(stock: Stock) -> None:
    """A day without orders: the run succeeds, no table is made, nothing records the load, so
    "loaded, nothing happened" reads exactly as "never loaded" (ours: the table with every
    column, and a row_count 0 in booker._loads)."""
    empty = {"orders": orders(EMPTY_DAY, "v1").iloc[0:0]}
    result = stock.load(EMPTY_DAY, lambda: empty)
    assert result.success
    assert any("Skipping DuckDB write for empty DataFrame" in (e.message or "")
               for e in stock.instance.all_logs(result.run_id))
    assert stock.tables() == []
    assert stock.load(DAY, lambda: {"orders": orders(DAY, "v1")}).success
    assert stock.rows("orders", EMPTY_DAY) == stock.rows("orders", NEVER_LOADED) == []
    assert stock.tables() == ["orders"]


def test_types_come_from_the_first_frame(stock: Stock) -> None:
    """A field null on the first day is typed INTEGER by DuckDB; the first text in it fails
    the load, and its re-run, until someone alters the table by hand (ours: the declared
    type, or the value kept in <column>__raw)."""
    assert stock.load(DAY, lambda: {"orders_items": items(DAY, "v1", note=None)}).success
    with stock.connect() as conn:
        assert conn.execute("SELECT data_type FROM duckdb_columns() WHERE table_name ="
                            " 'orders_items' AND column_name = 'note'").fetchall() == [("INTEGER",)]
    result = stock.load(EMPTY_DAY, lambda: {"orders_items": items(EMPTY_DAY, "v1", note="VIP")})
    assert not result.success
    assert "Could not convert string 'VIP' to INT32" in first_error(result)
    again = stock.load(EMPTY_DAY, lambda: {"orders_items": items(EMPTY_DAY, "v1", note="VIP")})
    assert "Could not convert string 'VIP' to INT32" in first_error(again)  # it never heals


def test_the_resource_waits_for_a_held_file_in_silence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Another process holds the file: ``DuckDBResource.get_connection`` tries 11 times over
    102.3 s, logging nothing, then raises DuckDB's lock error (ours: says at once who holds
    it and what to do, every 30 s, for BOOKER_LOCK_WAIT_SECONDS). The sleeps are recorded,
    not slept."""
    database = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
         " print('held', flush=True); sys.stdin.read()", str(database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        slept: list[float] = []
        caplog.set_level(logging.INFO)
        monkeypatch.setattr(time, "sleep", slept.append)
        with pytest.raises(duckdb.IOException, match="Conflicting lock is held"), \
                DuckDBResource(database=str(database)).get_connection():
            pass
    finally:
        holder.communicate("")
    assert len(slept) == 10
    assert round(sum(slept), 1) == 102.3
    assert not caplog.records  # nothing said the file was held, nor by whom
