"""Locations are discovered, not configured: Booker's list keeps the location partitions in step.

Domo's "Location Selection Type: All" is every location the token sees, including one that
opens next month. The ``booker_locations`` sensor asks Booker for its list every
``DISCOVERY_INTERVAL_SECONDS`` (and at once when the daemon starts, so a fresh ``make dev``
shows the locations): a location it returns that is not a partition yet is added, and a run of
``booker/locations`` is requested for it (the daily loads pick it up on their next tick, no
redeploy). A location Booker no longer returns is reported and kept: its partitions and rows
stay. ``BOOKER_LOCATION_IDS`` is an optional allow-list on top.

Drift is shown where a Dagster user looks: the check ``locations_match_booker`` of
``booker/locations`` fails, naming what changed and the settings line that matches Booker (the
sensor records it as soon as the list changes; every load of ``booker/locations`` evaluates it
again), the sensor logs a warning, and its tick says so.
(No ``from __future__ import annotations``: Dagster reads the ``context`` annotations.)
"""

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.defs.jobs import LOAD_JOB
from booker_assets.defs.partitions import (
    LOCATIONS_PARTITIONS,
    RETURNED_LOCATIONS,
    BookerPartitions,
    Clock,
    add_locations,
    newest_day,
    range_tags,
    remember_returned,
    returned_before,
)
from booker_assets.errors import BookerConfigError, BookerError
from booker_assets.settings import Settings

LOCATIONS_KEY = dg.AssetKey(["booker", "locations"])
CHECK_NAME = "locations_match_booker"
# Its op in a run's job: Dagster names a check's op "<asset key as identifier>_<check name>"
CHECK_OP = f"{LOCATIONS_KEY.to_python_identifier()}_{CHECK_NAME}"
DISCOVERY_INTERVAL_SECONDS = 900  # one paged GET /locations; a new location waits 15 min at most
SENSOR_NAME = "booker_locations"


@dataclass(frozen=True)
class LocationDrift:
    """Booker's list of locations against the location partitions and the allow-list."""

    new: tuple[str, ...]  # Booker returns them, allowed, not partitions yet
    gone: tuple[str, ...]  # Booker returned them once, no longer: partitions and rows kept
    unknown: tuple[str, ...]  # partitions or allow-listed, Booker never returned them: typos
    excluded: tuple[str, ...]  # Booker returns them, BOOKER_LOCATION_IDS leaves them out
    returned: tuple[str, ...]  # what Booker returns, in its order
    settings_line: str  # BOOKER_LOCATION_IDS listing exactly what Booker returns

    @property
    def ok(self) -> bool:
        return not (self.new or self.gone or self.unknown or self.excluded)

    @property
    def message(self) -> str:
        if self.ok:
            return "the location partitions are the locations Booker returns"
        parts = []
        if self.new:
            parts.append(f"Booker returns locations that are not partitions yet: "
                         f"{', '.join(self.new)} (the {SENSOR_NAME} sensor adds them: is it "
                         "running?)")
        if self.gone:
            parts.append(f"Booker no longer returns locations {', '.join(self.gone)}: their "
                         "partitions and rows are kept, nothing is deleted")
        if self.unknown:
            parts.append(f"{not_returned(self.unknown, self.returned)}: nothing is loaded for "
                         f"them; a partition added by hand is removed by `{REMOVE_COMMAND}`")
        if self.excluded:
            parts.append(f"Booker returns locations BOOKER_LOCATION_IDS leaves out (not "
                         f"loaded): {', '.join(self.excluded)}")
        return "; ".join(parts) + f". To match Booker, set {self.settings_line}" + (
            " or unset BOOKER_LOCATION_IDS to follow Booker's list" if self.excluded else "")

    def check_fields(self) -> dict[str, Any]:
        """What the check reports, as the keyword arguments of a check result or evaluation."""
        return {
            "passed": self.ok,
            "severity": dg.AssetCheckSeverity.ERROR,
            "description": self.message,
            "metadata": {
                "new": ", ".join(self.new),
                "gone": ", ".join(self.gone),
                "unknown": ", ".join(self.unknown),
                "excluded": ", ".join(self.excluded),
                "settings_line": self.settings_line,
            },
        }


REMOVE_COMMAND = "booker-assets remove-location ID --keep-rows|--drop-rows"


def not_returned(locations: Sequence[str], returned: Sequence[str]) -> str:
    """"locations 9999 are not locations Booker returns (it returns 1001, 1002)"."""
    return (f"locations {', '.join(locations)} are not locations Booker returns (it returns "
            f"{', '.join(returned) or 'none'})")


def compare(returned: Sequence[str], partitions: Sequence[str], allowed: Sequence[str],
            seen: Collection[str] = ()) -> LocationDrift:
    """The drift of the partitions (and allow-list; empty: all) from what Booker returns;
    ``seen``: every location Booker returned before (only those can be "no longer")."""

    def allows(location: str) -> bool:
        return not allowed or location in allowed

    known = [loc for loc in partitions if allows(loc)]
    # partition order first: a partition range stays the block it was
    matching = [loc for loc in dict.fromkeys([*partitions, *returned]) if loc in returned]
    missing = [loc for loc in dict.fromkeys([*known, *allowed, *partitions])
               if loc not in returned]
    return LocationDrift(
        new=tuple(loc for loc in returned if allows(loc) and loc not in partitions),
        gone=tuple(loc for loc in missing if loc in seen and allows(loc)),
        unknown=tuple(loc for loc in missing if loc not in seen),
        excluded=tuple(loc for loc in returned if not allows(loc)),
        returned=tuple(returned),
        settings_line="BOOKER_LOCATION_IDS=" + ",".join(matching),
    )


def refuse_empty_allow_list(returned: Sequence[str], allowed: Sequence[str]) -> None:
    """An allow-list that matches nothing would load nothing and say "done": an error."""
    if allowed and not set(allowed) & set(returned):
        raise BookerConfigError(
            f"BOOKER_LOCATION_IDS (or BOOKER_LOCATIONS_FILE) {','.join(allowed)} matches no "
            f"location Booker returns (it returns {', '.join(returned) or 'none'}): nothing "
            "would be loaded",
            fix=f"set BOOKER_LOCATION_IDS={','.join(returned)} (or some of them), or unset it "
            "to load every location Booker returns")


def returned_locations(client: BookerClient) -> list[str]:
    """The ids of every location the brand token sees, in Booker's order."""
    return [str(location["ID"]) for location in client.locations()]


def refuse_unreturned(client: BookerClient, instance: dg.DagsterInstance,
                      locations: Sequence[str]) -> str | None:
    """Why a run must not load ``locations`` (None: it may). A location partition can be added
    by hand (the UI's "Add a partition"): one Booker never returned to this instance is
    checked against Booker's list before anything is fetched, and refused if not in it."""
    unverified = [loc for loc in locations if loc not in returned_before(instance)]
    if not unverified:
        return None
    returned = returned_locations(client)
    remember_returned(instance, returned)
    refused = [loc for loc in unverified if loc not in returned]
    if not refused:
        return None
    return (f"{not_returned(refused, returned)}: nothing was loaded. Fix: a location partition "
            f"added by hand is removed by `booker-assets remove-location {refused[0]} "
            "--keep-rows` (or --drop-rows to delete its rows too); a typo in "
            "BOOKER_LOCATION_IDS is fixed there")


def sync_locations(instance: dg.DagsterInstance, returned: Sequence[str],
                   settings: Settings) -> LocationDrift:
    """Add the locations Booker ``returned`` (within the allow-list) to ``instance`` now: what
    the sensor does on its tick, for the command line and the demo that run without a daemon."""
    refuse_empty_allow_list(returned, settings.allowed_locations)
    drift = compare(returned, instance.get_dynamic_partitions(LOCATIONS_PARTITIONS),
                    settings.allowed_locations, returned_before(instance))
    remember_returned(instance, returned)
    add_locations(instance, drift.new)
    return drift


def discovery_sensor(settings: Settings, partitions: BookerPartitions,
                     clock: Clock) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job_name=LOAD_JOB,  # its runs read "booker_load", not "Job None"
        minimum_interval_seconds=DISCOVERY_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds every location Booker returns (within BOOKER_LOCATION_IDS, if set) "
        "as a location partition and loads its booker/locations record; a location Booker no "
        f"longer returns is kept and reported by the check {CHECK_NAME}. Cursor: the last "
        "drift reported.",
    )
    def booker_locations(
        context: dg.SensorEvaluationContext, booker: BookerResource
    ) -> dg.SensorResult:
        returned = returned_locations(booker.get_client())
        refuse_empty_allow_list(returned, settings.allowed_locations)  # the tick fails, saying so
        stored = context.instance.get_dynamic_partitions(LOCATIONS_PARTITIONS)
        seen = returned_before(context.instance)
        new = compare(returned, stored, settings.allowed_locations, seen).new
        after = compare(returned, [*stored, *new], settings.allowed_locations, seen)
        first_seen = [loc for loc in returned if loc not in seen]
        context.log.info(f"Booker returns locations {', '.join(returned)}" + (
            f"; added as partitions: {', '.join(new)}" if new else "; no new one"))
        if not after.ok:
            context.log.warning(after.message)
        state = json.dumps(after.check_fields()["metadata"], sort_keys=True)
        reported = [] if state == context.cursor else [dg.AssetCheckEvaluation(
            asset_key=LOCATIONS_KEY, check_name=CHECK_NAME, **after.check_fields())]
        runs = [_record_run(new, newest_day(partitions, clock()))] if new else []
        return dg.SensorResult(
            run_requests=runs,
            skip_reason=None if runs else after.message,
            dynamic_partitions_requests=[
                *([partitions.locations.build_add_request(list(new))] if new else []),
                *([dg.AddDynamicPartitionsRequest(RETURNED_LOCATIONS, first_seen)]
                  if first_seen else []),
            ],
            asset_events=reported,
            cursor=state,
        )

    return booker_locations


def _record_run(new: Sequence[str], day: date) -> dg.RunRequest:
    """One run of ``booker/locations`` for the newest day × the new locations: they are added
    together, so they are one block of the partition order (a range's rectangle)."""
    first, last = new[0], new[-1]
    return dg.RunRequest(
        run_key=f"new-locations:{first}..{last}:{day}",
        asset_selection=[LOCATIONS_KEY],
        tags={**range_tags(day, day, first, last), "booker/load": "new-locations"},
    )


def drift_check(settings: Settings) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=LOCATIONS_KEY,
        name=CHECK_NAME,
        description="The location partitions are exactly the locations Booker returns (within "
        "BOOKER_LOCATION_IDS, if set); on drift, names the locations and the settings line "
        "that matches Booker.",
    )
    def locations_match_booker(
        context: dg.AssetCheckExecutionContext, booker: BookerResource
    ) -> dg.AssetCheckResult:
        return drift_result(booker.get_client(), context.instance, settings)

    return locations_match_booker


DRIFT_CHECK_KEY = dg.AssetCheckKey(LOCATIONS_KEY, CHECK_NAME)


def drift_result(client: BookerClient, instance: dg.DagsterInstance,
                 settings: Settings) -> dg.AssetCheckResult:
    returned = returned_locations(client)
    drift = compare(returned, instance.get_dynamic_partitions(LOCATIONS_PARTITIONS),
                    settings.allowed_locations, returned_before(instance))
    remember_returned(instance, returned)
    return dg.AssetCheckResult(**drift.check_fields())


def drift_result_or_warning(client: BookerClient, instance: dg.DagsterInstance,
                            settings: Settings) -> dg.AssetCheckResult:
    """The drift check evaluated by a failing load: when Booker cannot answer (the likely
    cause of the failure), a warning saying so, not an error about the partitions."""
    try:
        return drift_result(client, instance, settings)
    except BookerError as exc:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"not evaluated: Booker did not return its locations ({exc})")
