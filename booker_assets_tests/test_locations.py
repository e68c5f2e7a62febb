"""Locations are discovered: the ``booker_locations`` sensor adds each one Booker returns as a
partition and requests its record, a location Booker stops returning is reported and kept, and
the daily loads pick a new one up on their next tick. Everything from the shipped definitions.

The sensor result is applied to the instance as the sensor daemon applies it (partitions
added, check evaluations recorded); test_e2e_daemon runs the real daemon.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.api.view import ReportView
from booker_assets.definitions import build_definitions
from booker_assets.defs.locations import CHECK_NAME, LOCATIONS_KEY, compare
from booker_assets.defs.partitions import (
    LOCATIONS_PARTITIONS,
    RANGE_END,
    RANGE_START,
    add_locations,
)
from booker_assets.defs.storage import connect_locked
from booker_assets_tests.conftest import SANDBOX_NOW, SANDBOX_SETTINGS, make_settings
from booker_sandbox import BookerSandbox

SANDBOX_FOUR = ("1001", "1002", "1003", "1004")
CHECK = dg.AssetCheckKey(LOCATIONS_KEY, CHECK_NAME)
NEWEST = "2025-06-29"
LIST_ROUTE = "POST /v4.1/merchant/locations"  # the newest daily partition on the sandbox's clock


def shipped(sandbox: BookerSandbox, tmp_path: Path, allowed: tuple[str, ...] = ()
            ) -> dg.Definitions:
    booker = BookerResource(base_url=sandbox.url, **sandbox.credentials)
    return build_definitions(make_settings(tmp_path, allowed), booker, clock=lambda: SANDBOX_NOW)


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str,
         cursor: str | None = None):
    """One evaluation of sensor ``name``, applied to ``instance`` as the daemon applies it."""
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources,
                                 cursor=cursor) as context:
        data = defs.get_sensor_def(name).evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data


def run_requested(defs: dg.Definitions, instance: dg.DagsterInstance,
                  request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The run a sensor requested, as the daemon would launch it (its assets and their checks)."""
    return dg.materialize([*defs.assets, *defs.asset_checks], instance=instance,
                          selection=request.asset_selection, resources=defs.resources,
                          tags=request.tags)


@pytest.fixture
def five(tmp_path: Path):
    """A sandbox whose brand has a fifth location, 1005, opened since the four were found."""
    with BookerSandbox(replace(SANDBOX_SETTINGS, location_count=5)) as sandbox, \
            dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(LOCATIONS_PARTITIONS, list(SANDBOX_FOUR))
        yield sandbox, instance


def test_a_fresh_instance_gets_every_location_on_the_first_tick(sandbox, tmp_path):
    """What a fresh `make dev` shows once the daemon's first tick ran: no manual step."""
    defs = shipped(sandbox, tmp_path)
    with dg.instance_for_test() as instance:
        data = tick(defs, instance, "booker_locations")
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == list(SANDBOX_FOUR)
    (request,) = data.run_requests
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (f"{NEWEST}|1001",
                                                                     f"{NEWEST}|1004")
    # the runs of both sensors read "booker_load" in the Runs list, not "Job None"
    assert {defs.get_sensor_def(name).job_name for name in (
        "booker_locations", "booker_daily_loads")} == {"booker_load"}


def test_a_new_location_is_added_loaded_and_picked_up_by_the_daily_loads(five, tmp_path,
                                                                         monkeypatch):
    sandbox, instance = five
    asked_soon = []
    soon = ReportView.locations_soon
    monkeypatch.setattr(ReportView, "locations_soon",
                        lambda view: asked_soon.append(view) or soon(view))
    defs = shipped(sandbox, tmp_path)
    data = tick(defs, instance, "booker_locations")

    assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == [*SANDBOX_FOUR, "1005"]
    (request,) = data.run_requests  # the visible event: a run of the new location's record
    assert request.asset_selection == [LOCATIONS_KEY]
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (f"{NEWEST}|1005",
                                                                     f"{NEWEST}|1005")
    (evaluation,) = data.asset_events
    assert evaluation.passed  # once added, the partitions match Booker again

    listed = sandbox.stats.by_route[LIST_ROUTE]
    result = run_requested(defs, instance, request)
    assert result.success
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    assert check.passed
    # the check compared the list the step asked beside its own requests: asked once
    assert len(asked_soon) == 1 and sandbox.stats.by_route[LIST_ROUTE] == listed + 1
    with connect_locked(str(tmp_path / "booker_assets.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT location_id, report_date::VARCHAR FROM booker.locations"
                            ).fetchall() == [(1005, NEWEST)]

    # The daily sensor's next tick loads 1005 too: no redeploy, no settings change.
    with dg.build_sensor_context(instance=instance, definitions=defs,
                                 resources=defs.resources) as context:
        daily = defs.get_sensor_def("booker_daily_loads").evaluate_tick(context)
    loaded = {r.tags[RANGE_END].split("|")[1] for r in daily.run_requests}
    assert "1005" in loaded


def test_a_location_booker_no_longer_returns_is_reported_and_kept(sandbox, tmp_path):
    defs = shipped(sandbox, tmp_path)
    with dg.instance_for_test() as instance:
        add_locations(instance, [*SANDBOX_FOUR, "1005"])  # Booker returned 1005 once
        data = tick(defs, instance, "booker_locations")

        assert not data.run_requests and not data.dynamic_partitions_requests
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == [*SANDBOX_FOUR, "1005"]
        line = "BOOKER_LOCATION_IDS=1001,1002,1003,1004"
        assert "Booker no longer returns locations 1005" in data.skip_message
        assert line in data.skip_message
        record = instance.get_latest_asset_check_evaluation_record(CHECK)
        evaluation = record.event.dagster_event.event_specific_data
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert "1005" in evaluation.description and "kept" in evaluation.description
        assert evaluation.metadata["settings_line"].value == line

        # The same drift next tick is not reported again; the check of a load says it too.
        assert not tick(defs, instance, "booker_locations", cursor=data.cursor).asset_events
        result = run_requested(defs, instance, dg.RunRequest(
            asset_selection=[LOCATIONS_KEY],
            tags={RANGE_START: f"{NEWEST}|1001", RANGE_END: f"{NEWEST}|1001"}))
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    assert not check.passed and line in check.description and "1005" in check.description


def test_a_run_without_the_drift_check_does_not_ask_the_list(sandbox, tmp_path):
    defs = shipped(sandbox, tmp_path)
    with dg.instance_for_test() as instance:
        tick(defs, instance, "booker_locations")  # Booker returned them: no list to verify
        listed = sandbox.stats.by_route[LIST_ROUTE]
        result = dg.materialize(defs.assets, selection=[LOCATIONS_KEY], instance=instance,
                                resources=defs.resources, partition_key=f"{NEWEST}|1001")
    assert result.success and not result.get_asset_check_evaluations()
    assert sandbox.stats.by_route[LIST_ROUTE] == listed


def test_the_allow_list_limits_what_is_added_and_names_what_it_leaves_out(sandbox, tmp_path):
    defs = shipped(sandbox, tmp_path, allowed=("1001", "1002"))
    with dg.instance_for_test() as instance:
        data = tick(defs, instance, "booker_locations")
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == ["1001", "1002"]
    (evaluation,) = data.asset_events
    assert not evaluation.passed
    assert "BOOKER_LOCATION_IDS leaves out (not loaded): 1003, 1004" in evaluation.description
    assert "set BOOKER_LOCATION_IDS=1001,1002,1003,1004 or unset" in evaluation.description


def test_compare_keeps_the_partition_order_in_the_settings_line():
    drift = compare(returned=["1001", "1002", "1009"], partitions=["1002", "1005", "1001"],
                    allowed=[], seen={"1001", "1002", "1005"})
    assert (drift.new, drift.gone, drift.excluded) == (("1009",), ("1005",), ())
    assert drift.settings_line == "BOOKER_LOCATION_IDS=1002,1001,1009"
    assert drift.settings_line in drift.message


def test_compare_reports_an_allow_listed_location_booker_never_returned():
    drift = compare(returned=["1001", "1002"], partitions=["1001"], allowed=["1001", "1099"])
    assert (drift.new, drift.gone, drift.unknown, drift.excluded) == ((), (), ("1099",),
                                                                      ("1002",))
    assert "locations 1099 are not locations Booker returns (it returns 1001, 1002)" in (
        drift.message) and "no longer" not in drift.message
    assert compare(["1001"], ["1001"], []).ok
    gone = compare(["1001"], ["1001", "1099"], [], seen={"1001", "1099"})
    assert (gone.gone, gone.unknown) == (("1099",), ())


def test_an_allow_list_that_matches_nothing_is_an_error_naming_booker_ids(sandbox, tmp_path):
    defs = shipped(sandbox, tmp_path, allowed=("9999",))
    with dg.instance_for_test() as instance, pytest.raises(Exception) as raised:
        tick(defs, instance, "booker_locations")
    message = str(raised.value)
    assert "BOOKER_LOCATION_IDS (or BOOKER_LOCATIONS_FILE) 9999 matches no location" in message
    assert "set BOOKER_LOCATION_IDS=1001,1002,1003,1004" in message


def test_a_partition_added_by_hand_is_refused_then_removed(sandbox, tmp_path, monkeypatch,
                                                           capsys):
    """The UI's "Add a partition" writes 9999 to the instance: the sensor names it a location
    Booker never returned (not "no longer"), a run for it loads nothing and names Booker's
    ids, and the command removes it, as its message says."""
    from booker_assets import cli

    defs = shipped(sandbox, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        tick(defs, instance, "booker_locations")
        instance.add_dynamic_partitions(LOCATIONS_PARTITIONS, ["9999"])  # by hand
        data = tick(defs, instance, "booker_locations")
        assert "locations 9999 are not locations Booker returns" in data.skip_message
        assert "no longer" not in data.skip_message
        run = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance,
                             selection=["booker/orders"], resources=defs.resources,
                             partition_key=f"{NEWEST}|9999", raise_on_error=False)
    failure = next(e for e in run.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert not run.success and "(it returns 1001, 1002, 1003, 1004)" in message
    assert "booker-assets remove-location 9999 --keep-rows" in message

    for name, value in {"BOOKER_BASE_URL": sandbox.url, **{
            f"BOOKER_{k.upper()}": v for k, v in sandbox.credentials.items()},
            "BOOKER_DUCKDB_PATH": str(tmp_path / "booker_assets.duckdb")}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["remove-location", "1001", "--keep-rows"]) == 2  # Booker returns it
    assert cli.main(["remove-location", "9999", "--drop-rows"]) == 0
    assert "removed location partition 9999" in capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == list(SANDBOX_FOUR)


def test_a_location_another_process_added_meanwhile_is_no_error(monkeypatch):
    """Two demos add the same locations at once: Dagster's storage reads, then inserts, so the
    later insert meets the unique key (sqlite: IntegrityError). The loser must go on."""
    with dg.instance_for_test() as instance:
        real_add = instance.add_dynamic_partitions

        def lost_race(name: str, keys: list[str]) -> None:
            real_add(name, keys)  # the other process's insert lands first...
            raise RuntimeError("UNIQUE constraint failed")  # ...and ours meets its key

        monkeypatch.setattr(instance, "add_dynamic_partitions", lost_race)
        assert add_locations(instance, ["1001", "1002"]) == ["1001", "1002"]
        monkeypatch.undo()
        assert instance.get_dynamic_partitions(LOCATIONS_PARTITIONS) == ["1001", "1002"]
