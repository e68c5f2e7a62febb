"""``make demo``: every report for the last N days and every location Booker returns (the
embedded sandbox unless credentials are set), a run per location, then a row count per DuckDB
table.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

from booker_assets.catalogue.reports import TABLES
from booker_assets.cli import seed_locations
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import instance_from_env, location_slices, run_slices
from booker_assets.defs.storage import connect_locked, qualified
from booker_assets.settings import load_settings


def print_counts(database: str) -> None:
    with connect_locked(database, read_only=True) as conn:
        for name in TABLES:
            ((count,),) = conn.execute(f"select count(*) from {qualified(conn, name)}").fetchall()
            print(f"  booker.{name:<22} {count:>8} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    settings = load_settings()
    source = "the embedded Booker sandbox" if settings.use_sandbox else "the Booker API"
    last = date.today() - timedelta(days=1)
    first = max(last - timedelta(days=args.days - 1), settings.start_date)
    started = time.perf_counter()
    with instance_from_env() as instance:
        locations = seed_locations(instance, settings)
        print(f"Loading {args.days} days × locations {', '.join(locations)} from {source}"
              f" into {settings.duckdb_path}")
        runs = run_slices(build_definitions(settings), instance,
                          location_slices(locations, first, last))
        failed = [str(piece) for piece, result in runs if not result.success]
    if failed:
        raise SystemExit(f"runs failed ({'; '.join(failed)}): their errors are above")
    print(f"Done in {time.perf_counter() - started:.1f} s. Tables:")
    print_counts(settings.duckdb_path)


if __name__ == "__main__":
    main()
