"""booker-assets: check the credentials, list the locations, load a range of days, and query
the warehouse where analysts read (never in a load's way).

With no Booker credentials in the environment, every command uses the embedded sandbox, as the
code location does (the sandbox is the default of the account's variables).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.catalogue.options import OPTIONS
from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions, deployed_settings
from booker_assets.defs.assets import STEP_NAME
from booker_assets.defs.backfill import instance_from_env, location_slices, run_slices
from booker_assets.defs.connection import booker_resource_from_env
from booker_assets.defs.drift import drift as find_drift
from booker_assets.defs.locations import (
    SENSOR_NAME,
    LocationDrift,
    returned_locations,
    sync_locations,
)
from booker_assets.defs.partitions import (
    LOCATIONS_PARTITIONS,
    build_partitions,
    known_locations,
    newest_day,
    utc_now,
)
from booker_assets.defs.replay import replay
from booker_assets.defs.storage import SCHEMA, drop_location, warehouse_of
from booker_assets.errors import BookerConfigError, BookerError
from booker_assets.load.pii import PiiPolicy
from booker_assets.settings import Settings

# Dagster's console shows a run's warnings and errors here; every event is in the instance.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def resource_from_env() -> BookerResource:
    """A ``BookerResource`` from the BOOKER_* environment variables, read now (the sandbox's
    defaults fill in what is unset, as in the code location)."""
    return booker_resource_from_env(resolve_now=True, rate=deployed_settings().rate)


def check_connection() -> int:
    checks = resource_from_env().get_client().check_connection()
    for check in checks:
        print(f"{'OK' if check.ok else 'FAILED':<7}{check.name}: {check.message}")
    return 0 if all(check.ok for check in checks) else 1


def client_for(settings: Settings) -> BookerClient:
    """The client the code location's resource would make, its credentials read now."""
    return booker_resource_from_env(resolve_now=True, rate=settings.rate).get_client()


def report(drift: LocationDrift) -> None:
    if drift.new:
        print(f"added location partitions: {', '.join(drift.new)}", file=sys.stderr)
    if drift.gone or drift.unknown or drift.excluded:
        print(f"warning: {drift.message}", file=sys.stderr)


def seed_locations(instance: dg.DagsterInstance, settings: Settings) -> tuple[str, ...]:
    """Add the locations Booker returns to ``instance`` (what the ``booker_locations`` sensor
    does once the daemon runs); the location partitions to load, within the allow-list."""
    report(sync_locations(instance, returned_locations(client_for(settings)), settings))
    return known_locations(instance, settings)


def discover_locations(file: str | None) -> int:
    """Domo's "all locations": every location the token sees, added as location partitions
    of the instance (``DAGSTER_HOME``); ``file`` also saves them as an allow-list."""
    settings = deployed_settings()
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


def _chosen(option: str, chosen: list[str], known: Sequence[str], what: str) -> list[str]:
    """``chosen`` in ``known``'s order (all of ``known`` if empty); an unknown one is refused."""
    unknown = [item for item in chosen if item not in known]
    if unknown:
        raise BookerConfigError(f"{option} {','.join(unknown)}: not {what}",
                                fix=f"choose from {','.join(known)}, or leave out {option} "
                                "for all")
    return [item for item in known if not chosen or item in chosen]


def _window(first: date, last: date, settings: Settings) -> None:
    newest = newest_day(build_partitions(settings), utc_now())
    if last < first:
        raise BookerConfigError(f"--to {last} is before --from {first}",
                                fix="give the oldest day as --from and the newest as --to")
    if first < settings.start_date:
        raise BookerConfigError(f"--from {first} is before BOOKER_START_DATE "
                                f"{settings.start_date}: there are no partitions that old",
                                fix="choose a later --from, or set BOOKER_START_DATE earlier")
    if last > newest:
        raise BookerConfigError(f"--to {last} is a day not over yet (the newest partition is "
                                f"{newest})", fix=f"choose --to {newest} or earlier")


def options_config(overrides: Mapping[str, bool]) -> dict:
    """The run config that sets ``overrides`` (Domo's options given as flags) for every run;
    the options not given keep the deployment's settings (the config's defaults)."""
    return {"ops": {STEP_NAME: {"config": dict(overrides)}}} if overrides else {}


def backfill(first: date, last: date, locations: list[str], tables: list[str],
             overrides: Mapping[str, bool] | None = None) -> int:
    """Days ``first``..``last`` × locations, a run per location and up to 31 days, in this
    process (recorded in the instance when DAGSTER_HOME is set); 1 if a run failed.
    ``overrides``: options for these runs instead of the deployment's."""
    overrides = overrides or {}
    settings = deployed_settings()
    _window(first, last, settings)
    selection = [f"booker/{t}" for t in _chosen("--assets", tables, list(TABLES), "tables")]
    defs = build_definitions(settings)
    with instance_from_env() as instance:
        chosen = _chosen("--locations", locations, seed_locations(instance, settings),
                         "locations Booker returns (within BOOKER_LOCATION_IDS, if set)")
        slices = location_slices(chosen, first, last)
        options = settings.options | dict(overrides)
        print(f"{len(slices)} run{'s' * (len(slices) != 1)}: {first}..{last} × locations "
              f"{', '.join(chosen)}; tables {', '.join(tables) or 'all'}; options "
              + ", ".join(f"{name}={str(on).lower()}" for name, on in options.items()))
        failed = 0
        for piece, result in run_slices(defs, instance, slices, selection,
                                        QUIET | options_config(overrides)):
            failed += not result.success
            print(f"{'OK' if result.success else 'FAILED':<7}{piece}, run {result.run_id}",
                  flush=True)
    if failed:
        print(f"{failed} of {len(slices)} runs failed: their errors are above and in the "
              "Dagster UI (Runs); launch the same command again to retry", file=sys.stderr)
    return 1 if failed else 0


def remove_location(location: str, drop_rows: bool) -> int:
    """Remove a location partition that should not exist (one added by hand, a typo): the
    user chooses whether its rows stay in the warehouse or go."""
    settings = deployed_settings()
    returned = returned_locations(client_for(settings))
    if location in returned:
        raise BookerConfigError(
            f"location {location} is one Booker returns: the {SENSOR_NAME} sensor would add it "
            "again", fix=f"to stop loading it, leave it out of BOOKER_LOCATION_IDS "
            f"(e.g. BOOKER_LOCATION_IDS={','.join(loc for loc in returned if loc != location)})")
    with instance_from_env() as instance:
        partitions = instance.get_dynamic_partitions(LOCATIONS_PARTITIONS)
        if location not in partitions:
            raise BookerConfigError(
                f"{location} is not a location partition of this instance "
                f"(DAGSTER_HOME={os.environ.get('DAGSTER_HOME', 'unset: a throwaway one')})",
                fix=f"choose one of {', '.join(partitions) or 'none'}; set DAGSTER_HOME to the "
                "instance the UI shows")
        if drop_rows:  # rows first: a kill in between leaves the partition, to run this again
            dropped = drop_location(warehouse_of(settings), int(location))
            print(f"deleted the rows of location {location} from {warehouse_of(settings)}: "
                  f"{', '.join(f'{t} {n}' for t, n in dropped.items()) or 'none stored'}")
        instance.delete_dynamic_partition(LOCATIONS_PARTITIONS, location)
    print(f"removed location partition {location}" + ("" if drop_rows else
          f"; its rows stay in the warehouse (where location_id = {location})"))
    return 0


def sql(query: str) -> int:
    """The query's result, read from the DuckDB file's read copy or the DuckLake; a copy
    older than the file's latest writes is said to be, on stderr."""
    warehouse = warehouse_of(deployed_settings())
    stale = warehouse.stale()
    if stale:
        print(f"booker-assets: warning: {stale}", file=sys.stderr)
    with warehouse.connect_reader() as conn:
        try:
            print(conn.sql(query))
        except duckdb.Error as exc:
            print(f"booker-assets: {exc}", file=sys.stderr)
            return 1
    return 0


def drift() -> int:
    """Every field of every table Booker sent in a shape it was not declared with."""
    with warehouse_of(deployed_settings()).connect_reader() as conn:
        found = find_drift(conn, TABLES, SCHEMA)
    for line in found:
        print(line.line())
    print(f"{len(found)} drifted field shape(s) in {len({f.table for f in found})} table(s); "
          "the values are kept as they came in <column>__raw and _drift", file=sys.stderr)
    return 0


def replay_rejects() -> int:
    """Move the records of booker._rejects that the current catalogue reads into their
    tables, without asking Booker (``defs/replay.py``), then publish the read copy."""
    settings = deployed_settings()
    store = warehouse_of(settings)

    def work(conn: duckdb.DuckDBPyConnection) -> list[str]:
        conn.begin()
        try:
            lines = replay(conn, SCHEMA, PiiPolicy.of_settings(settings))
            conn.commit()
        except Exception:
            with suppress(duckdb.Error):
                conn.rollback()
            raise
        return lines

    lines = store.write(work)
    store.publish()
    print("\n".join(lines) or "booker._rejects holds nothing to replay")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: use YYYY-MM-DD, e.g. "
                                         "2025-06-01") from None


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="booker-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-connection", help="test the base URL and each credential")
    discover = commands.add_parser(
        "discover-locations", help="list every location the token sees and add them as "
        "location partitions")
    discover.add_argument("--file", help="also write their ids to FILE, one per line: an "
                          "allow-list (set BOOKER_LOCATIONS_FILE=FILE to use it)")
    load = commands.add_parser(
        "backfill", help="load days --from..--to of every location (or --locations) and "
        "report (or --assets), a run per location and up to 31 days, in this process")
    load.add_argument("--from", dest="first", required=True, type=_day,
                      help="the oldest day, YYYY-MM-DD (a location-local day)")
    load.add_argument("--to", dest="last", required=True, type=_day,
                      help="the newest day, YYYY-MM-DD")
    load.add_argument("--locations", type=_ids, default=[],
                      help="location ids, e.g. 1001,1002 (default: every location)")
    load.add_argument("--assets", type=_ids, default=[],
                      help="tables, e.g. orders,customers (default: every table)")
    for name, option in OPTIONS.items():
        load.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                          action=argparse.BooleanOptionalAction,
                          help=f"Domo '{option.domo_name}' for these runs (default: "
                          f"{option.setting}, false if unset)")
    remove = commands.add_parser(
        "remove-location", help="remove a location partition Booker does not return (one "
        "added by hand, a typo), keeping or dropping its rows")
    remove.add_argument("location", help="the location id, e.g. 9999")
    rows = remove.add_mutually_exclusive_group(required=True)
    rows.add_argument("--keep-rows", dest="drop_rows", action="store_false",
                      help="keep its rows in the warehouse")
    rows.add_argument("--drop-rows", dest="drop_rows", action="store_true",
                      help="delete its rows from every table")
    query = commands.add_parser("sql", help="run a query where analysts read: the read copy "
                                "of the DuckDB file, or the DuckLake")
    query.add_argument("query", help="e.g. 'select location_id, count(*) from booker.orders "
                       "group by 1'")
    commands.add_parser("drift", help="list every field Booker sent in a shape it was not "
                        "declared with: table, field, shapes, rows, since when, examples")
    commands.add_parser("replay", help="move the records of booker._rejects that now load "
                        "into their tables and partitions (without asking Booker)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "check-connection":
            return check_connection()
        if args.command == "discover-locations":
            return discover_locations(args.file)
        if args.command == "sql":
            return sql(args.query)
        if args.command == "remove-location":
            return remove_location(args.location, args.drop_rows)
        if args.command == "drift":
            return drift()
        if args.command == "replay":
            return replay_rejects()
        overrides = {name: getattr(args, name) for name in OPTIONS
                     if getattr(args, name) is not None}
        return backfill(args.first, args.last, args.locations, args.assets, overrides)
    except BookerConfigError as exc:
        print(f"booker-assets: {exc}", file=sys.stderr)
        return 2
    except BookerError as exc:
        print(f"booker-assets: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
