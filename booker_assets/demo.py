"""``make demo``: the main job, as a range run of every report for the last N days and
every configured location (the embedded sandbox unless credentials are set), then a row count
per table, read where analysts read (the DuckDB file's read copy, or the DuckLake).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs.partitions import RANGE_END, RANGE_START
from booker_assets.defs.storage import Warehouse, qualified, warehouse_of
from booker_assets.settings import load_settings


def materialize_range(
    defs: dg.Definitions,
    locations: Sequence[str],
    first: date,
    last: date,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: Sequence[str] | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
) -> list[dg.ExecuteInProcessResult]:
    """Days ``first``..``last`` × ``locations`` in one run (a backfill run over a key range),
    the asset checks of what it loads evaluated after the load."""
    return [dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=defs.resources,
        instance=instance,
        run_config=run_config,
        tags={RANGE_START: f"{first}|{locations[0]}", RANGE_END: f"{last}|{locations[-1]}"},
        raise_on_error=raise_on_error,
    )]


def print_counts(warehouse: Warehouse) -> None:
    with warehouse.connect_reader() as conn:
        for name in TABLES:
            ((count,),) = conn.execute(f"select count(*) from {qualified(conn, name)}").fetchall()
            print(f"  booker.{name:<22} {count:>8} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    settings = load_settings()
    warehouse = warehouse_of(settings)
    source = "the embedded Booker sandbox" if settings.use_sandbox else "the Booker API"
    print(f"Loading {args.days} days × locations {', '.join(settings.location_ids)} from {source}"
          f" into {warehouse}")
    last = date.today() - timedelta(days=1)
    first = max(last - timedelta(days=args.days - 1), settings.start_date)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else None
    started = time.perf_counter()
    with instance or dg.DagsterInstance.ephemeral() as active:
        materialize_range(build_definitions(settings), settings.location_ids, first, last,
                          instance=active)
    print(f"Done in {time.perf_counter() - started:.1f} s. Tables:")
    print_counts(warehouse)


if __name__ == "__main__":
    main()
