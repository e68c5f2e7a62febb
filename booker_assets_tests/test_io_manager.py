"""BookerDuckDBIOManager: every test asserts on what DuckDB holds after the write."""

import fcntl
import multiprocessing
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from multiprocessing.synchronize import Event
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from booker_assets.catalogue import schema as s
from booker_assets.defs.io_manager import (
    BookerDuckDBIOManager,
    ReportWrite,
    TablePart,
    TableSlice,
)
from booker_assets.defs.storage import BookerStorageBusy, BookerStorageError, connect_locked
from booker_assets.load.flatten import Column
from booker_assets.load.frames import PartitionLoad, Reject, ReportFrame

D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)
LOADED = pd.Timestamp("2025-03-04 12:00", tz="UTC")


def report(rows: list[dict], partitions: list[tuple[date, int | None]],
           columns: tuple[Column, ...] = (), rejects: tuple[Reject, ...] = ()) -> ReportFrame:
    """A ReportFrame whose loads count the rows of each partition."""
    names = None if rows else ["report_date", "location_id", "order_id", "amount"]
    frame = pd.DataFrame(rows, columns=names).assign(_loaded_at=LOADED)
    counts = {p: sum((r["report_date"], r["location_id"]) == p for r in rows) for p in partitions}
    loads = [
        PartitionLoad(d, loc, n, reported_total=n, pages=1, requests=1,
                      rejected=sum((r.report_date, r.location_id) == (d, loc) for r in rejects))
        for (d, loc), n in counts.items()
    ]
    return ReportFrame(frame, partitions, loads, list(rejects), columns)


def row(day: date, loc: int | None, order_id: int | str, amount: float) -> dict:
    return {"report_date": day, "location_id": loc, "order_id": order_id, "amount": amount}


@dataclass(frozen=True)
class Store:
    """A warehouse the IO manager is configured for (its fields)."""

    fields: dict

    def io_manager(self) -> BookerDuckDBIOManager:
        return BookerDuckDBIOManager(**self.fields)


def write(db: Store, obj: TablePart | ReportFrame | pd.DataFrame, table: str = "orders",
          **metadata) -> dict:
    """handle_output for asset booker/<table>; returns the output metadata it logged. The IO
    manager raises a dg.Failure for the UI; the storage error under it is re-raised here."""
    context = dg.build_output_context(asset_key=["booker", table], definition_metadata=metadata)
    try:
        db.io_manager().handle_output(context, obj)
    except dg.Failure as failure:
        raise failure.__cause__ from failure
    return context.consume_logged_metadata()


def query(db: Store, sql: str) -> list[tuple]:
    with db.io_manager().store().connect(read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def file_db(tmp_path: Path) -> Path:
    return tmp_path / "t.duckdb"


@pytest.fixture(params=["duckdb", "ducklake"])
def db(request: pytest.FixtureRequest, file_db: Path) -> Store:
    """Every guarantee holds on both warehouses: the DuckDB file and a DuckLake whose
    catalog is a fresh database on the tests' Postgres server."""
    if request.param == "duckdb":
        return Store({"database": str(file_db)})
    return Store({"database": str(file_db), "warehouse": "ducklake",
                  "ducklake_catalog": request.getfixturevalue("postgres_dsn"),
                  "ducklake_data_path": str(file_db.parent / "lake")})


def test_rematerializing_a_partition_replaces_it(db: Store) -> None:
    write(db, report([row(D1, 1002, 1, 1.0), row(D1, 1002, 2, 2.0)], [(D1, 1002)]))
    write(db, report([row(D2, 1002, 9, 9.0)], [(D2, 1002)]))
    meta = write(db, report([row(D1, 1002, 1, 10.0), row(D1, 1002, 2, 20.0)], [(D1, 1002)]))

    assert query(db, "SELECT report_date, order_id, amount FROM booker.orders ORDER BY ALL") == [
        (D1, 1, 10.0),
        (D1, 2, 20.0),
        (D2, 9, 9.0),
    ]
    assert meta == {}  # the asset reports each partition; the writer only what it changed


def test_the_writer_names_the_columns_it_added(db: Store) -> None:
    month = pd.date_range("2025-03-01", periods=30).date
    rows = [row(day, 1002, i, 1.0) for i, day in enumerate(month)]
    first = write(db, report(rows, [(d, 1002) for d in month]))
    again = write(db, report(rows, [(d, 1002) for d in month]))
    wider = write(db, report([r | {"tip": 1.0} for r in rows], [(d, 1002) for d in month]))

    assert "booker/new_columns" not in first  # created, not changed
    assert "booker/new_columns" not in again
    assert wider["booker/new_columns"].value == "tip"


DECLARED = (Column("report_date", s.DATE), Column("location_id", s.BIGINT),
            Column("order_id", s.BIGINT), Column("amount", s.MONEY), Column("note", s.TEXT),
            Column("paid", s.BOOLEAN))


def test_declared_columns_exist_from_the_first_load_with_their_types(db: Store) -> None:
    """Whatever the day's values: an empty day creates every declared column."""
    write(db, report([], [(D1, 1002)], columns=DECLARED))
    write(db, report([{**row(D2, 1002, "7", 1.5), "paid": True}], [(D2, 1002)],
                     columns=DECLARED))
    assert query(db, "SELECT column_name, data_type FROM duckdb_columns()"
                     " WHERE table_name = 'orders'") == [
        ("report_date", "DATE"), ("location_id", "BIGINT"), ("_loaded_at",
                                                              "TIMESTAMP WITH TIME ZONE"),
        ("order_id", "BIGINT"), ("amount", "DECIMAL(18,2)"), ("note", "VARCHAR"),
        ("paid", "BOOLEAN"),
    ]
    assert query(db, "SELECT order_id, amount FROM booker.orders") == [(7, Decimal("1.50"))]


def test_a_value_that_does_not_fit_its_column_is_kept_as_it_came(db: Store) -> None:
    """An undeclared field first seen as a number, later as text, a fraction or a padded
    number (a mixed column is text): its row loads, the column holds null (never "5.5" rounded
    to 6, nor "0042" read as 42), the value is in <column>__raw and the row's _drift names it."""
    write(db, report([{**row(D1, 1002, 1, 1.0), "score": 5}], [(D1, 1002)]))
    write(db, report([{**row(D2, 1002, 2, 1.0), "score": 6},
                      {**row(D2, 1002, 3, 1.0), "score": "high"},
                      {**row(D2, 1002, 4, 1.0), "score": 5.5}], [(D2, 1002)]))
    write(db, report([{**row(D3, 1002, 5, 1.0), "score": "0042"}], [(D3, 1002)]))

    assert query(db, "SELECT order_id, score, score__raw, _drift->0->>'seen'"
                     " FROM booker.orders ORDER BY 1") == [
        (1, 5, None, None), (2, 6, None, None), (3, None, '"high"', "text"),
        (4, None, '"5.5"', "text"), (5, None, '"0042"', "text")]
    assert query(db, "SELECT count(*) FROM booker._rejects") == [(0,)]
    assert query(db, "SELECT report_date, row_count, rejected FROM booker._loads ORDER BY 1") == [
        (D1, 1, 0), (D2, 3, 0), (D3, 1, 0)]


def test_rejects_of_a_partition_are_replaced_with_it(db: Store) -> None:
    bad = Reject(D1, 1002, "9", "amount", "not a DECIMAL(18,2) value", '{"ID": 9}')
    write(db, report([row(D1, 1002, 1, 1.0)], [(D1, 1002)], rejects=(bad,)))
    assert query(db, "SELECT record_id, column_name, raw->>'ID' FROM booker._rejects") == [
        ("9", "amount", "9")]
    write(db, report([row(D1, 1002, 1, 1.0)], [(D1, 1002)]))
    assert query(db, "SELECT count(*) FROM booker._rejects") == [(0,)]


def test_empty_frame_creates_table_and_records_zero_rows(db: Store) -> None:
    empty = pd.DataFrame(
        {
            "report_date": pd.Series([], dtype=object),
            "location_id": pd.Series([], dtype=object),
            "order_id": pd.Series([], dtype="int64"),
            "note": pd.Series([], dtype=object),
            "_loaded_at": pd.Series([], dtype="datetime64[us, UTC]"),
        }
    )
    write(db, ReportFrame(empty, [(D1, 1002)], [PartitionLoad(D1, 1002, 0, 0, 1, 1)]))

    assert query(db, "SELECT count(*) FROM booker.orders") == [(0,)]
    assert query(
        db, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'orders'"
    ) == [
        ("report_date", "DATE"),
        ("location_id", "BIGINT"),
        ("_loaded_at", "TIMESTAMP WITH TIME ZONE"),
        ("order_id", "BIGINT"),
    ]
    assert query(
        db,
        "SELECT table_name, report_date, location_id, row_count, reported_total, status"
        " FROM booker._loads",
    ) == [("orders", D1, 1002, 0, 0, "loaded")]

    # an undeclared column that never held a value has no type yet: added when one arrives
    write(db, report([{**row(D2, 1002, 1, 1.0), "note": 7}], [(D2, 1002)]))
    assert query(db, "SELECT data_type FROM duckdb_columns() WHERE column_name = 'note'") == [
        ("BIGINT",)
    ]


def test_empty_frame_replaces_existing_rows(db: Store) -> None:
    write(db, report([row(D1, 1002, 1, 1.0)], [(D1, 1002)]))
    write(db, report([], [(D1, 1002)]))

    assert query(db, "SELECT count(*) FROM booker.orders") == [(0,)]
    assert query(db, "SELECT row_count FROM booker._loads") == [(0,)]


def test_new_column_is_added_and_older_rows_get_null(db: Store) -> None:
    write(db, report([row(D1, 1002, 1, 1.0)], [(D1, 1002)]))
    write(db, report([{**row(D2, 1002, 2, 2.0), "tip": 0.5}], [(D2, 1002)]))

    assert query(db, "SELECT order_id, tip FROM booker.orders ORDER BY 1") == [(1, None), (2, 0.5)]


def test_reordered_columns_land_by_name(db: Store) -> None:
    write(db, report([{**row(D1, 1002, 1, 1.0), "a": 1, "b": 2}], [(D1, 1002)]))
    reordered = report([{"b": 20, "a": 10, **row(D2, 1002, 2, 2.0)}], [(D2, 1002)])
    reordered.frame = reordered.frame[list(reversed(reordered.frame.columns))]
    write(db, reordered)

    assert query(db, "SELECT order_id, a, b FROM booker.orders ORDER BY 1") == [
        (1, 1, 2),
        (2, 10, 20),
    ]


def test_failed_write_keeps_old_rows_and_names_table_and_column(db: Store) -> None:
    write(db, report([row(D1, 1002, 1, 1.0), row(D1, 1002, 2, 2.0)], [(D1, 1002)]))
    before = query(db, "SELECT * FROM booker.orders ORDER BY order_id")

    # the loader reads every declared value into its type; one that still is not fails the
    # write, and nothing changes
    bad = report([row(D1, 1002, "x", 3.0)], [(D1, 1002)], columns=DECLARED)
    with pytest.raises(BookerStorageError, match=r'"booker"\."orders".*2025-03-01.*order_id'):
        write(db, bad)

    assert query(db, "SELECT * FROM booker.orders ORDER BY order_id") == before
    assert query(db, "SELECT row_count FROM booker._loads") == [(2,)]


def test_a_reports_tables_change_together_or_not_at_all(db: Store) -> None:
    """The first table's output writes the whole report; a failure in its last table leaves
    the others as they were, and a sibling's output writes nothing itself."""
    def parts(amount: float, item_id: int | str) -> list[TablePart]:
        together = ReportWrite([
            TableSlice("orders", report([row(D1, 1002, 1, amount)], [(D1, 1002)])),
            TableSlice("orders_items", report([row(D1, 1002, item_id, amount)], [(D1, 1002)],
                                              columns=DECLARED))])
        return [TablePart(together, "orders"), TablePart(together, "orders_items")]

    for part in parts(1.0, 11):
        write(db, part, part.table)
    before = {t: query(db, f"SELECT * FROM booker.{t}") for t in ("orders", "orders_items")}
    first, second = parts(2.0, "not a number")  # orders_items fails after orders is written
    with pytest.raises(BookerStorageError, match=r'"orders", .*"orders_items".*order_id'):
        write(db, first)
    assert {t: query(db, f"SELECT * FROM booker.{t}") for t in before} == before
    with pytest.raises(dg.Failure, match="to be written with orders, which was not written"):
        db.io_manager().handle_output(
            dg.build_output_context(asset_key=["booker", "orders_items"]), second)

    first, second = parts(3.0, 12)
    write(db, first)
    assert query(db, "SELECT count(DISTINCT loaded_at) FROM booker._loads") == [(1,)]
    assert query(db, "SELECT order_id FROM booker.orders_items") == [(12,)]
    write(db, second, "orders_items")  # records the materialization only
    assert query(db, "SELECT order_id, amount FROM booker.orders_items") == [(12, 3.0)]


def test_rows_outside_the_declared_slice_are_rejected(db: Store) -> None:
    stray = report([row(D1, 1002, 1, 1.0), row(D2, 1002, 2, 2.0)], [(D1, 1002)])
    with pytest.raises(BookerStorageError, match="2025-03-02/1002: declared None"):
        write(db, stray)

    assert query(db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'booker'") == [
        (0,)]


def test_slice_of_three_dates_by_two_locations_then_a_non_rectangular_slice(db: Store) -> None:
    grid = [(d, loc) for d in (D1, D2, D3) for loc in (1002, 1003)]
    write(db, report([row(d, loc, 1, 1.0) for d, loc in grid], grid))
    write(db, report([row(D1, 1004, 1, 1.0)], [(D1, 1004)]))
    write(db, report([row(d, loc, 1, 2.0) for d, loc in grid], grid))
    assert query(db, "SELECT amount, count(*) FROM booker.orders GROUP BY 1 ORDER BY 1") == [
        (1.0, 1),
        (2.0, 6),
    ]

    diagonal = [(D1, 1002), (D2, 1003)]
    write(db, report([row(d, loc, 1, 3.0) for d, loc in diagonal], diagonal))
    assert (
        query(db, "SELECT report_date, location_id FROM booker.orders WHERE amount = 3 ORDER BY 1")
        == diagonal
    )
    assert query(db, "SELECT count(*) FROM booker.orders") == [(7,)]


def test_brand_level_partitions_have_null_location(db: Store) -> None:
    write(db, report([row(D1, None, 1, 1.0), row(D1, None, 2, 1.0)], [(D1, None)]))
    write(db, report([row(D1, 1002, 3, 1.0)], [(D1, 1002)]))
    write(db, report([row(D1, None, 1, 5.0)], [(D1, None)]))

    assert query(db, "SELECT location_id, order_id, amount FROM booker.orders ORDER BY 2") == [
        (None, 1, 5.0),
        (1002, 3, 1.0),
    ]
    assert query(db, "SELECT location_id, row_count FROM booker._loads ORDER BY 1") == [
        (1002, 1),
        (None, 1),
    ]


def test_plain_dataframe_slice_comes_from_its_rows(db: Store) -> None:
    write(db, report([row(D1, 1002, 1, 1.0), row(D2, None, 2, 1.0)], [(D1, 1002), (D2, None)]))
    write(db, pd.DataFrame([row(D1, 1002, 1, 4.0), row(D2, None, 2, 4.0)]))

    assert query(db, "SELECT amount, count(*) FROM booker.orders GROUP BY 1") == [(4.0, 2)]
    assert query(db, "SELECT count(*) FROM booker._loads WHERE row_count = 1") == [(2,)]


def test_current_view_keeps_latest_version_per_entity(db: Store) -> None:
    write(
        db,
        report([row(D1, 1002, 1, 1.0), row(D1, 1002, 2, 1.0)], [(D1, 1002)]),
        **{"booker/entity_key": ["order_id"]},
    )
    write(
        db, report([row(D2, 1002, 1, 2.0)], [(D2, 1002)]), **{"booker/entity_key": ["order_id"]}
    )

    assert query(
        db, "SELECT order_id, report_date, amount FROM booker.orders_current ORDER BY 1"
    ) == [(1, D2, 2.0), (2, D1, 1.0)]


def test_timestamptz_stores_the_correct_utc_instant(db: Store) -> None:
    created = pd.Timestamp("2025-03-01 22:00", tz="America/New_York")
    write(db, report([{**row(D1, 1002, 1, 1.0), "created": created}], [(D1, 1002)]))

    assert query(
        db,
        "SELECT typeof(created), strftime(timezone('UTC', created), '%Y-%m-%d %H:%M')"
        " FROM booker.orders",
    ) == [("TIMESTAMP WITH TIME ZONE", "2025-03-02 03:00")]


def test_load_input_returns_exactly_the_upstream_slice(db: Store) -> None:
    days = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_offset=1)
    by_location = dg.MultiPartitionsDefinition(
        {"date": days, "location": dg.StaticPartitionsDefinition(["1002", "1003"])}
    )
    io_manager = db.io_manager()

    @dg.asset(key_prefix=["booker"], partitions_def=by_location)
    def orders(context: dg.AssetExecutionContext) -> ReportFrame:
        key = context.partition_key.keys_by_dimension
        day, loc = date.fromisoformat(key["date"]), int(key["location"])
        return report([row(day, loc, 1, 1.0)], [(day, loc)])

    for key in ("2025-03-01|1002", "2025-03-01|1003", "2025-03-02|1002"):
        result = dg.materialize([orders], partition_key=key, resources={"io_manager": io_manager})
        assert result.success
    assert query(db, "SELECT count(*) FROM booker._loads") == [(3,)]

    def load(partition_key: str, partitions_def: dg.PartitionsDefinition) -> list[tuple]:
        context = dg.build_input_context(
            asset_key=["booker", "orders"],
            partition_key=partition_key,
            asset_partitions_def=partitions_def,
        )
        frame = io_manager.load_input(context)
        return list(zip(frame.report_date, frame.location_id, strict=True))

    assert load("2025-03-01|1003", by_location) == [(D1, 1003)]
    assert load("2025-03-01", days) == [(D1, 1002), (D1, 1003)]
    assert len(io_manager.load_input(dg.build_input_context(asset_key=["booker", "orders"]))) == 3


def _write_in_child(database: str, location: str, ready: Event) -> None:
    ready.set()
    write(Store({"database": database}), report([row(D1, location, 1, 1.0)], [(D1, location)]))


def test_two_processes_writing_the_same_file_queue_instead_of_failing(file_db: Path) -> None:
    db = Store({"database": str(file_db)})
    spawn = multiprocessing.get_context("spawn")
    ready = [spawn.Event(), spawn.Event()]
    children = [
        spawn.Process(target=_write_in_child, args=(str(file_db), loc, event))
        for loc, event in zip((1002, 1003), ready, strict=True)
    ]
    with connect_locked(str(file_db)) as conn:  # both children start while the file is held
        conn.execute("CREATE TABLE held (x INTEGER)")
        for child in children:
            child.start()
        assert all(event.wait(30) for event in ready)
    for child in children:
        child.join(60)

    assert [child.exitcode for child in children] == [0, 0]
    assert query(db, "SELECT location_id FROM booker.orders ORDER BY 1") == [(1002,), (1003,)]


def test_lock_timeout_says_another_process_holds_the_file(file_db: Path) -> None:
    # a separate open file description: flock treats it as another holder
    with open(f"{file_db}.lock", "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        with (
            pytest.raises(BookerStorageBusy,
                          match="another process of this project .* held it for the 0.2 s"),
            connect_locked(str(file_db), timeout_seconds=0.2),
        ):
            pass


def test_unwritable_database_path_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    database = tmp_path / "file" / "t.duckdb"
    with pytest.raises(BookerStorageError, match=str(database)):
        write(Store({"database": str(database)}), report([row(D1, 1002, 1, 1.0)], [(D1, 1002)]))


def test_loads_must_cover_every_partition(db: Store) -> None:
    short = report([row(D1, 1002, 1, 1.0)], [(D1, 1002)])
    short.partitions.append((D2, 1002))
    with pytest.raises(BookerStorageError, match="one PartitionLoad per partition"):
        write(db, short)

    assert query(db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'booker'") == [
        (0,)]
