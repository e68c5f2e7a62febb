"""booker-assets: check the credentials, and list the locations the token can see.

With no Booker credentials in the environment, ``discover-locations`` uses the embedded
sandbox, as the code location does; ``check-connection`` needs the credentials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.definitions import booker_resource
from booker_assets.defs.backfill import instance_from_env
from booker_assets.defs.connection import booker_resource_from_env
from booker_assets.defs.locations import LocationDrift, returned_locations, sync_locations
from booker_assets.defs.partitions import known_locations
from booker_assets.errors import BookerError
from booker_assets.settings import Settings, load_settings


def resource_from_env() -> BookerResource:
    """A ``BookerResource`` from the BOOKER_* environment variables (credentials required)."""
    return booker_resource_from_env(resolve_now=True)


def check_connection() -> int:
    checks = resource_from_env().get_client().check_connection()
    for check in checks:
        print(f"{'OK' if check.ok else 'FAILED':<7}{check.name}: {check.message}")
    return 0 if all(check.ok for check in checks) else 1


def client_for(settings: Settings) -> BookerClient:
    """The client the code location's resource would make, its credentials read now."""
    return (booker_resource(settings) if settings.use_sandbox else resource_from_env()).get_client()


def report(drift: LocationDrift) -> None:
    if drift.new:
        print(f"added location partitions: {', '.join(drift.new)}", file=sys.stderr)
    if drift.gone or drift.excluded:
        print(f"warning: {drift.message}", file=sys.stderr)


def seed_locations(instance: dg.DagsterInstance, settings: Settings) -> tuple[str, ...]:
    """Add the locations Booker returns to ``instance`` (what the ``booker_locations`` sensor
    does once the daemon runs); the location partitions to load, within the allow-list."""
    report(sync_locations(instance, returned_locations(client_for(settings)), settings))
    return known_locations(instance, settings)


def discover_locations(file: str | None) -> int:
    """Domo's "all locations": every location the token sees, added as location partitions
    of the instance (``DAGSTER_HOME``); ``file`` also saves them as an allow-list."""
    settings = load_settings()
    locations = client_for(settings).locations()
    with instance_from_env() as instance:
        report(sync_locations(instance, [str(loc["ID"]) for loc in locations], settings))
    for location in locations:
        name = location.get("BusinessName") or location.get("AccountName") or ""
        zone = (location.get("TimeZone") or {}).get("Name") or ""
        print(f"{location['ID']}\t{name}\t{zone}")
    if file:
        Path(file).write_text("".join(f"{location['ID']}\n" for location in locations))
        print(f"wrote {len(locations)} location ids to {file}: an allow-list, which leaves out "
              "locations Booker adds later", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booker-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-connection", help="test the base URL and each credential")
    discover = commands.add_parser(
        "discover-locations", help="list every location the token sees and add them as "
        "location partitions")
    discover.add_argument("--file", help="also write their ids to FILE, one per line: an "
                          "allow-list (set BOOKER_LOCATIONS_FILE=FILE to use it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "check-connection":
            return check_connection()
        return discover_locations(args.file)
    except BookerError as exc:
        print(f"booker-assets: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
