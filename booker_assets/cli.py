"""booker-assets: check the credentials, list the locations the token can see, and query the
warehouse where analysts read (never in a load's way)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from booker_assets.api.client import BookerResource
from booker_assets.defs.connection import booker_resource_from_env
from booker_assets.defs.storage import warehouse_of
from booker_assets.errors import BookerError
from booker_assets.settings import load_settings

DEFAULT_LOCATIONS_FILE = "booker_locations.txt"


def resource_from_env() -> BookerResource:
    """A ``BookerResource`` from the BOOKER_* environment variables (credentials required)."""
    return booker_resource_from_env(resolve_now=True)


def check_connection() -> int:
    checks = resource_from_env().get_client().check_connection()
    for check in checks:
        print(f"{'OK' if check.ok else 'FAILED':<7}{check.name}: {check.message}")
    return 0 if all(check.ok for check in checks) else 1


def discover_locations(file: str) -> int:
    """Domo's "all locations": every location the brand token sees, saved for the assets."""
    locations = resource_from_env().get_client().locations()
    ids = [str(location["ID"]) for location in locations]
    Path(file).write_text("".join(f"{location_id}\n" for location_id in ids))
    for location in locations:
        name = location.get("BusinessName") or location.get("AccountName") or ""
        zone = (location.get("TimeZone") or {}).get("Name") or ""
        print(f"{location['ID']}\t{name}\t{zone}")
    print(f"wrote {len(ids)} location ids to {file}", file=sys.stderr)
    return 0


def sql(query: str) -> int:
    """The query's result, read from the DuckDB file's read copy or the DuckLake."""
    with warehouse_of(load_settings()).connect_reader() as conn:
        try:
            print(conn.sql(query))
        except duckdb.Error as exc:
            print(f"booker-assets: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="booker-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-connection", help="test the base URL and each credential")
    discover = commands.add_parser("discover-locations",
                                   help="list every location the token sees and save their ids")
    discover.add_argument(
        "--file", default=os.environ.get("BOOKER_LOCATIONS_FILE") or DEFAULT_LOCATIONS_FILE,
        help="where to write the ids, one per line (default: $BOOKER_LOCATIONS_FILE or "
             f"{DEFAULT_LOCATIONS_FILE})",
    )
    query = commands.add_parser("sql", help="run a query where analysts read: the read copy "
                                "of the DuckDB file, or the DuckLake")
    query.add_argument("query", help="e.g. 'select location_id, count(*) from booker.orders "
                       "group by 1'")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-connection":
            return check_connection()
        if args.command == "sql":
            return sql(args.query)
        return discover_locations(args.file)
    except BookerError as exc:
        print(f"booker-assets: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
