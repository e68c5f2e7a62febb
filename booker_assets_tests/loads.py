"""A load in a process of its own, as a run launcher starts one: ``python -m
booker_assets_tests.loads '<json>'`` runs the shipped code location against a sandbox and
prints one JSON line: the run's success, step restarts, checks, log messages and errors."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from typing import Any

import dagster as dg

from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import materialize_range
from booker_assets.defs.partitions import add_locations
from booker_assets.settings import Settings

DEFAULTS = {"start_date": date(2025, 1, 1), "lookback_days": 7, "grace_hours": 2.0,
            "catch_up_days": 3, "pii": "keep"}


def load(args: dict[str, Any]) -> dict[str, Any]:
    """``args``: url, credentials, now, locations, days [first, last], settings (Settings
    fields beyond DEFAULTS)."""
    settings = Settings(use_sandbox=False, allowed_locations=tuple(args["locations"]),
                        **DEFAULTS | args["settings"])
    booker = BookerResource(base_url=args["url"], **args["credentials"],
                            requests_per_second=1000, burst=100)
    now = datetime.fromisoformat(args["now"])
    defs = build_definitions(settings, booker, clock=lambda: now)
    with dg.DagsterInstance.ephemeral() as instance:
        add_locations(instance, args["locations"])  # what the locations sensor does
        result = materialize_range(defs, instance, args["locations"],
                                   *map(date.fromisoformat, args["days"]), raise_on_error=False)
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
