"""The days-back job: a bad config is refused at launch (no run, no Booker call) with the cause
and the fix; a good one files location-major backfills; what only the run can tell fails the
run. Every job runs from the shipped definitions (``build_definitions``: the DuckDB IO manager
and resources ``dagster dev`` loads).

Sandbox locations: 1001 New York, 1002 Chicago, 1004 Los Angeles; the instance's location
partitions are the sandbox's four, then 1099 (once returned, unknown to Booker now).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from pydantic import ValidationError

from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.days_back import DaysBackConfig, days_back_days
from booker_assets.defs.partitions import add_locations
from booker_assets_tests.conftest import make_settings
from booker_sandbox import BookerSandbox

if TYPE_CHECKING:
    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset

UTC = timezone.utc
# Somewhere it is 03-05 or 03-06; the newest daily partition is 03-04.
NOON = datetime(2025, 3, 5, 12, tzinfo=UTC)
START = date(2025, 3, 1)


def days_back_defs(
    sandbox: BookerSandbox, tmp_path: Path, now: datetime = NOON,
    locations: tuple[str, ...] = ("1001", "1002"), start_date: date = START,
) -> dg.Definitions:
    """The shipped definitions (DuckDB IO manager included) on a frozen clock."""
    settings = make_settings(tmp_path, locations, start_date=start_date)
    booker = BookerResource(base_url=sandbox.url, **sandbox.credentials)
    return build_definitions(settings, booker, clock=lambda: now)


def launch(defs: dg.Definitions, config: dict, instance: dg.DagsterInstance
           ) -> dg.ExecuteInProcessResult:
    return defs.get_job_def("booker_days_back").execute_in_process(
        run_config={"ops": {"file_days_back_backfill": {"config": config}}},
        instance=instance, raise_on_error=False)


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    return failure.event_specific_data.error.message


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:  # one per module: building one costs ~1 s
        add_locations(instance, ["1001", "1002", "1003", "1004", "1099"])
        yield instance


def counts(instance: dg.DagsterInstance) -> tuple[int, int]:
    return len(instance.get_runs()), len(instance.get_backfills())


def filed(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance
          ) -> list[AssetGraphSubset]:
    """The targets of the backfills the run filed."""
    assert result.success
    return [backfill.asset_backfill_data.target_subset for backfill in instance.get_backfills()
            if backfill.tags["booker/days_back_run"] == result.run_id]


@pytest.mark.parametrize(("config", "expected"), [
    pytest.param({"days_back_start": 1, "days_back_end": 3}, [
        "days_back_end (3) is more days back than days_back_start (1)",
        "Fix: set days_back_end <= days_back_start"], id="end-before-start"),
    pytest.param({"days_back_start": -1}, [
        "days_back_start=-1 is negative", "Fix: set days_back_start to 0 or more"],
        id="negative-start"),
    pytest.param({"days_back_start": 3, "days_back_end": -2}, [
        "days_back_end=-2 is negative", "Fix: set days_back_end to 0 or more"],
        id="negative-end"),
    pytest.param({"days_back_start": 30, "days_back_end": 10}, [
        "days_back_end=10 ends the window on 2025-02-23 or 2025-02-24 (by time zone), before "
        "BOOKER_START_DATE 2025-03-01", "Fix: set days_back_end to 4 or less"],
        id="before-start-date"),
    pytest.param({"days_back_start": 0, "days_back_end": 0}, [
        "days_back_start=0 starts the window on 2025-03-05 or 2025-03-06 (by time zone), a day "
        "not over yet", "Fix: set days_back_start to 2 or more"], id="today-only"),
    pytest.param({"locations": ["1001", "1003"]}, [
        "locations ['1003']: not in BOOKER_LOCATION_IDS", "Fix: choose from 1001, 1002",
        "add it to BOOKER_LOCATION_IDS"], id="location-outside-the-allow-list"),
    pytest.param({"tables": ["orders", "order"]}, [
        "tables ['order']: not location reports", "Fix: choose from appointment_book, ",
        "orders_items, orders_refunds, "],
        id="unknown-table"),
    pytest.param({"options": {"include_expird": True}}, [
        "options ['include_expird']: not Domo's options", "Fix: choose from include_expired, "],
        id="unknown-option"),
])
def test_bad_config_is_refused_at_launch_naming_cause_and_fix(
    sandbox: BookerSandbox, tmp_path: Path, instance: dg.DagsterInstance,
    config: dict, expected: list[str],
):
    defs = days_back_defs(sandbox, tmp_path)
    before, requests = counts(instance), sandbox.stats.requests
    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        launch(defs, config, instance)
    message = str(info.value)
    print(f"\n{config}: {message}")
    assert message.startswith("Invalid config at ops.file_days_back_backfill.config:\n  - ")
    assert all(text in message for text in expected)
    assert counts(instance) == before  # no run, no backfill
    assert sandbox.stats.requests == requests  # refused before the op could ask Booker


def test_every_problem_is_listed_at_once(sandbox, tmp_path, instance):
    config = {"days_back_start": 400, "days_back_end": 300, "tables": ["x"], "locations": ["9"]}
    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        launch(days_back_defs(sandbox, tmp_path), config, instance)
    lines = str(info.value).splitlines()[1:]
    assert [line.split()[1] for line in lines] == ["tables", "locations", "days_back_end=300"]


def test_the_config_class_checks_itself_without_a_deployment():
    with pytest.raises(ValidationError, match=r"days_back_end \(3\) is more days back"):
        DaysBackConfig(days_back_start=1, days_back_end=3)
    with pytest.raises(ValidationError, match="days_back_end=-1 is negative"):
        DaysBackConfig(days_back_end=-1)
    assert DaysBackConfig(tables=["anything"]).tables == ["anything"]  # checked at launch


def test_good_config_files_the_backfill(sandbox, tmp_path, instance):
    config = {"days_back_start": 3, "days_back_end": 1, "tables": ["orders"],
              "options": {"include_expired": True}}
    result = launch(days_back_defs(sandbox, tmp_path), config, instance)
    (subset,) = filed(result, instance)
    # the option given overrides the deployment's for its runs; the others keep the settings
    (backfill,) = [b for b in instance.get_backfills()
                   if b.tags["booker/days_back_run"] == result.run_id]
    assert backfill.run_config == {"ops": {"booker_reports": {"config": {"include_expired": True}}}}
    (key,) = subset.asset_keys
    assert key == dg.AssetKey(["booker", "orders"])
    assert sorted(subset.get_partitions_subset(key).get_partition_keys()) == [
        f"2025-03-0{d}|{loc}" for d in (2, 3, 4) for loc in ("1001", "1002")]


def test_locations_narrow_the_backfill(sandbox, tmp_path, instance):
    result = launch(days_back_defs(sandbox, tmp_path),
                    {"days_back_start": 2, "locations": ["1002"]}, instance)
    (subset,) = filed(result, instance)
    assert {key.path[-1] for key in subset.asset_keys} >= {"orders", "rooms", "employees"}
    assert sorted(subset.get_partitions_subset(dg.AssetKey(["booker", "orders"]))
                  .get_partition_keys()) == ["2025-03-03|1002", "2025-03-04|1002"]
    # the run's log names the days and the backfill, and where the UI shows it
    (backfill,) = [b for b in instance.get_backfills()
                   if b.tags["booker/days_back_run"] == result.run_id]
    lines = [e.user_message for e in instance.all_logs(result.run_id)
             if e.user_message.startswith("backfill ")]
    assert lines == [f"backfill {backfill.backfill_id}: days 2025-03-03..2025-03-04 × "
                     f"locations 1002 (2 partitions); in the UI: Runs → Backfills → "
                     f"{backfill.backfill_id} (/runs/b/{backfill.backfill_id})"]


def test_days_back_days_per_location_zone():
    zones = {"1001": ZoneInfo("America/New_York"), "1004": ZoneInfo("America/Los_Angeles")}
    # 2025-03-05 06:00 UTC: already 03-05 in New York, still 03-04 in Los Angeles
    days = days_back_days(DaysBackConfig(days_back_start=2, days_back_end=1), zones,
                          datetime(2025, 3, 5, 6, tzinfo=UTC), START, date(2025, 3, 4))
    assert days == {"1001": [date(2025, 3, 3), date(2025, 3, 4)],
                    "1004": [date(2025, 3, 2), date(2025, 3, 3)]}


def test_the_run_refuses_a_window_empty_in_the_locations_own_day(sandbox, tmp_path, instance):
    """At 02:00 UTC it is already 03-05 east of UTC, so the launch allows "yesterday" (03-04);
    Los Angeles is still on 03-04, its yesterday is before the start date: the run says so."""
    defs = days_back_defs(sandbox, tmp_path, now=datetime(2025, 3, 5, 2, tzinfo=UTC),
                          locations=("1004",), start_date=date(2025, 3, 4))
    backfills = len(instance.get_backfills())
    result = launch(defs, {"days_back_start": 1, "days_back_end": 1}, instance)
    message = step_failure(result)
    assert ("days_back_end=1 ends the window on 2025-03-03, before BOOKER_START_DATE 2025-03-04"
            in message and "Fix: set days_back_end to 0 or less" in message)
    assert len(instance.get_backfills()) == backfills


def test_the_run_refuses_when_booker_gives_no_time_zone(sandbox, tmp_path, instance):
    backfills = len(instance.get_backfills())
    result = launch(days_back_defs(sandbox, tmp_path, locations=("1099",)), {}, instance)
    message = step_failure(result)
    assert "Booker gave no time zone for any selected location" in message
    assert "Fix: run the job booker_check_connection" in message
    assert len(instance.get_backfills()) == backfills


def test_the_run_refuses_a_location_that_is_not_a_partition(sandbox, tmp_path, instance):
    """No allow-list: only the run can tell which locations the instance holds."""
    backfills = len(instance.get_backfills())
    result = launch(days_back_defs(sandbox, tmp_path, locations=()), {"locations": ["1005"]},
                    instance)
    message = step_failure(result)
    assert "locations ['1005']: not location partitions (Booker has not returned them)" in message
    assert "Fix: choose from 1001, 1002, 1003, 1004, 1099" in message
    assert len(instance.get_backfills()) == backfills


def test_the_run_says_how_to_get_location_partitions(sandbox, tmp_path):
    with dg.instance_for_test() as empty:
        message = step_failure(launch(days_back_defs(sandbox, tmp_path, locations=()), {}, empty))
    assert "there are no location partitions" in message
    assert "booker_locations sensor" in message and "discover-locations" in message
