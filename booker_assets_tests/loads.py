"""A load in a process of its own, as a run launcher starts one: ``python -m
booker_assets_tests.loads '<json>'`` runs the shipped code location against a sandbox and
prints one JSON line: the run's success, step restarts, checks, log messages and errors."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from datetime import date, datetime
from typing import Any

import dagster as dg

import booker_assets.defs.io_manager as io
from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import materialize_range
from booker_assets.defs.partitions import add_locations
from booker_assets.settings import Settings

# The points of a run's write phase where ``kill_at`` may SIGKILL it: after a table's rows are
# staged, after they replaced the old ones (and their rejects), after its _loads (its siblings
# not yet written), and after the report's transaction committed.
KILL_POINTS = ("_stage", "_record_rejects", "_record_loads", "write_report")
DEFAULTS = {"start_date": date(2025, 1, 1), "lookback_days": 7, "grace_hours": 2.0,
            "catch_up_days": 3, "pii": "keep"}


def kill_at(point: int, trace: str) -> None:
    """SIGKILL this process at the ``point``-th write point (1-based, KILL_POINTS in the order
    the run reaches them); each point reached is first appended to the file ``trace``."""
    reached = itertools.count(1)

    def hook(name: str, original: Any) -> Any:
        def at_point(*args: Any) -> Any:
            result = original(*args)
            n = next(reached)
            # the table: _record_*(conn, schema, table); write_report(conn, schema, slices)
            table = (args[-1][0].table if name == "write_report"
                     else "" if name == "_stage" else args[-1])
            with open(trace, "a") as out:
                out.write(f"{n} {name} {table}\n")
            if n == point:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return at_point

    for name in KILL_POINTS:
        setattr(io, name, hook(name, getattr(io, name)))


def load(args: dict[str, Any]) -> dict[str, Any]:
    """``args``: url, credentials, now, locations, days [first, last], settings (Settings
    fields beyond DEFAULTS); optional: selection (asset keys), kill_at and trace (see
    ``kill_at``)."""
    if args.get("kill_at"):
        kill_at(args["kill_at"], args["trace"])
    settings = Settings(use_sandbox=False, allowed_locations=tuple(args["locations"]),
                        **DEFAULTS | args["settings"])
    booker = BookerResource(base_url=args["url"], **args["credentials"],
                            requests_per_second=1000, burst=100)
    now = datetime.fromisoformat(args["now"])
    defs = build_definitions(settings, booker, clock=lambda: now)
    with dg.DagsterInstance.ephemeral() as instance:
        add_locations(instance, args["locations"])  # what the locations sensor does
        result = materialize_range(defs, instance, args["locations"],
                                   *map(date.fromisoformat, args["days"]),
                                   selection=args.get("selection"), raise_on_error=False)
        logs = instance.all_logs(result.run_id)
        checks = {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
                  for e in result.get_asset_check_evaluations()}
    kinds = [entry.dagster_event.event_type_value for entry in logs if entry.dagster_event]
    return {
        "success": result.success,
        "restarts": kinds.count("STEP_RESTARTED"),
        "checks": checks,
        "messages": [{"step": entry.step_key, "level": entry.level, "text": entry.user_message}
                     for entry in logs if not entry.dagster_event],
        "errors": [error.message for entry in logs if entry.dagster_event
                   for error in [getattr(entry.dagster_event.event_specific_data, "error", None)]
                   if error is not None],
    }


if __name__ == "__main__":
    print(json.dumps(load(json.loads(sys.argv[1])), default=str))
