"""``make bench``'s read-copy case: what publishing the analysts' read copy costs after a
one-partition load into a warehouse of about 1 GB.

The warehouse is grown once: each table's first slice goes through the real writer
(``write_slice``: the table, its ``_loads`` and ``_rejects``), then synthetic rows of 2 years ×
50 locations (random text, so DuckDB cannot compress them away) and their ``_loads`` rows are
inserted directly. Then the copy is published twice (the first publications of a new copy
are whole files), and each measured round writes one day × location slice through the real
writer and times ``publish_read_copy``. Printed: the file's size, each publication's seconds,
and the median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from booker_assets.defs.io_manager import write_slice
from booker_assets.defs.storage import DuckDBFile, publish_read_copy
from booker_assets.load.frames import PartitionLoad, ReportFrame

FIRST_DAY = date(2024, 1, 1)
TABLES = ("orders", "order_items", "appointments")


def one_slice(day: date, location: int, rows: int) -> ReportFrame:
    frame = pd.DataFrame({"report_date": [day] * rows, "location_id": [location] * rows,
                          "id": range(rows), "note": [f"row {n} of {day}" for n in range(rows)],
                          "amount": [n * 1.5 for n in range(rows)],
                          "_loaded_at": pd.Timestamp.now(tz="UTC")})
    return ReportFrame(frame, [(day, location)], [PartitionLoad(day, location, rows)])


def grow(warehouse: DuckDBFile, days: int, locations: int, rows_per_slice: int) -> None:
    """Each table: its first slice by the real writer, the rest inserted directly."""
    for table in TABLES:
        warehouse.write(lambda conn, t=table: write_slice(conn, "booker", t,
                                                          one_slice(FIRST_DAY, 1, 1)))

        def bulk(conn, t=table) -> None:
            conn.execute(
                f"INSERT INTO booker.{t} BY NAME SELECT DATE '{FIRST_DAY}' + (s // ?)::INTEGER"
                " AS report_date, 2 + (s % ?) AS location_id, r AS id, md5(s::VARCHAR || ?) ||"
                " md5(r::VARCHAR) AS note, random() * 100 AS amount, now() AS _loaded_at FROM"
                " range(?) t(s), range(?) u(r)",
                [locations, locations, t, days * locations, rows_per_slice])
            conn.execute(
                "INSERT INTO booker._loads BY NAME SELECT ? AS table_name, DATE"
                f" '{FIRST_DAY}' + (s // ?)::INTEGER AS report_date, 2 + (s % ?) AS location_id,"
                " ? AS row_count, 'loaded' AS status, 0 AS rejected,"
                " (report_date + 1)::TIMESTAMPTZ AS loaded_at"  # each day loaded the next
                " FROM range(?) t(s)", [t, locations, locations, rows_per_slice,
                                        days * locations])
            conn.execute("CHECKPOINT")

        warehouse.write(bulk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--locations", type=int, default=50)
    parser.add_argument("--rows", type=int, default=210, help="rows per slice and table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", help="grow the warehouse there, or reuse the one there,"
                                         " and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-read-copy-") as temporary:
        database = str(Path(args.folder or temporary) / "booker_assets.duckdb")
        warehouse = DuckDBFile(database)
        started = time.perf_counter()
        if not Path(database).exists():
            grow(warehouse, args.days, args.locations, args.rows)
        size = Path(database).stat().st_size
        print(f"warehouse {size / 2**30:.2f} GB ({len(TABLES)} tables × {args.days} days ×"
              f" {args.locations} locations × {args.rows} rows) ready in"
              f" {time.perf_counter() - started:.0f} s")
        for n in range(2):
            warehouse.write(lambda conn, n=n: write_slice(
                conn, "booker", "orders", one_slice(FIRST_DAY + timedelta(days=n), 1, 50)))
            started = time.perf_counter()
            publish_read_copy(database)
            print(f"first publication {n + 1}: {time.perf_counter() - started:.2f} s")
        rounds = []
        for n in range(args.rounds):
            day = FIRST_DAY + timedelta(days=10 + n)
            warehouse.write(lambda conn, d=day: write_slice(conn, "booker", "orders",
                                                            one_slice(d, 2, 50)))
            started = time.perf_counter()
            publish_read_copy(database)
            rounds.append(time.perf_counter() - started)
            print(f"publish after a one-partition load, round {n + 1}: {rounds[-1]:.2f} s")
        print(f"median publish after a one-partition load: {statistics.median(rounds):.2f} s"
              f" at {size / 2**30:.2f} GB")


if __name__ == "__main__":
    main()
