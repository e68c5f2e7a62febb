"""The daily-load sensor, on frozen clocks (days back: test_days_back; discovery:
test_locations).

Sandbox locations: 1001 New York, 1002 Chicago, 1003 Phoenix (no DST), 1004 Los Angeles; the
instance's location partitions are those four, then 1099 (once returned, unknown to Booker
now). Each test's settings allow-list (BOOKER_LOCATION_IDS) picks the ones it loads.
US DST began 2025-03-09 (a 23-hour day) and ended 2025-11-02 (a 25-hour day).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs.checks import check_evaluators
from booker_assets.defs.daily import Launch, LoadKeys, Work, plan_loads
from booker_assets.defs.partitions import RANGE_END, RANGE_START, add_locations
from booker_assets.defs.storage import connect_locked
from booker_assets.settings import Settings, load_settings
from booker_assets_tests.conftest import make_settings, table_rows
from booker_sandbox import BookerSandbox

UTC = timezone.utc
ALL = ("1001", "1002", "1003", "1004")
KEYS = LoadKeys(changing=(dg.AssetKey(["booker", "orders"]),),
                snapshot=(dg.AssetKey(["booker", "rooms"]),))
# The session sandbox has no rate limit. Paced like the gateway (10/s, one bucket per key in
# the process, drained by earlier tests too), a simulated week's 840 calls (a token and 4
# locations per tick: each tick's resource is a new client) slept ~65 s in the limiter.
UNPACED = {"requests_per_second": 10_000.0, "burst": 1_000}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Ticker:
    """The sensor's clock, moved by the test, and the sensor's cursor between ticks."""

    def __init__(
        self, sandbox: BookerSandbox, settings: Settings, now: datetime,
        instance: dg.DagsterInstance,
    ) -> None:
        self.now, self.cursor, self.instance = now, None, instance
        booker = BookerResource(base_url=sandbox.url, **sandbox.credentials, **UNPACED)
        self.defs = build_definitions(settings, booker, clock=lambda: self.now)
        self.sensor = self.defs.get_sensor_def("booker_daily_loads")

    def tick(self, now: datetime | None = None) -> list[dg.RunRequest]:
        self.now = now or self.now
        with dg.build_sensor_context(
            # one instance for every tick: building one costs 0.1 s
            cursor=self.cursor, definitions=self.defs, resources=self.defs.resources,
            instance=self.instance,
        ) as context:
            data = self.sensor.evaluate_tick(context)
        self.cursor, self.skipped = data.cursor or self.cursor, data.skip_message
        return list(data.run_requests or [])


def spans(requests: list[dg.RunRequest]) -> list[tuple[str, str, str]]:
    """(load kind, range start, range end) per run, e.g. ("snapshot", "2025-03-04|1001", ...)."""
    return [(r.tags["booker/load"], r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests]


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        add_locations(instance, [*ALL, "1099"])
        yield instance


@pytest.fixture
def ticker_for(sandbox: BookerSandbox, tmp_path: Path, instance: dg.DagsterInstance):
    def make(now: datetime, locations=ALL, **overrides) -> Ticker:
        return Ticker(sandbox, make_settings(tmp_path, locations, **overrides), now, instance)

    return make


def test_each_location_loads_after_its_own_midnight_plus_grace(ticker_for):
    ticker = ticker_for(at("2025-03-05T04:00"))
    ticker.cursor = json.dumps({loc: "2025-03-03" for loc in ALL})
    # 2025-03-04 ends at 05:00 UTC in New York (EST), 06:00 Chicago, 07:00 Phoenix, 08:00 LA
    assert ticker.tick(at("2025-03-05T06:59")) == []
    assert spans(ticker.tick(at("2025-03-05T07:00"))) == [
        ("lookback", "2025-02-25|1001", "2025-03-04|1001"),
        ("snapshot", "2025-03-04|1001", "2025-03-04|1001"),
    ]
    assert ticker.tick(at("2025-03-05T07:59")) == []
    assert [s[1] for s in spans(ticker.tick(at("2025-03-05T08:00")))] == [
        "2025-02-25|1002", "2025-03-04|1002"]
    assert [s[1] for s in spans(ticker.tick(at("2025-03-05T09:00")))] == [
        "2025-02-25|1003", "2025-03-04|1003"]
    assert [s[1] for s in spans(ticker.tick(at("2025-03-05T10:00")))] == [
        "2025-02-25|1004", "2025-03-04|1004"]
    assert json.loads(ticker.cursor) == {loc: "2025-03-04" for loc in ALL}


def test_each_tick_says_why_and_counts_a_range_runs_partitions(ticker_for):
    """Dagster's tick list counts a range run as one partition per asset: the tick's log says
    how many it holds; a tick with nothing due says when and what it waited for."""
    ticker = ticker_for(at("2025-03-05T06:59"), locations=("1001", "1002"))
    ticker.cursor = json.dumps({"1001": "2025-03-03", "1002": "2025-03-03"})
    assert ticker.tick() == []
    assert ticker.skipped == ("no location has finished a new day by 2025-03-05 06:59 UTC "
                              "(locations 1001, 1002; last day launched: "
                              '{"1001": "2025-03-03", "1002": "2025-03-03"})')
    lookback = Launch(Work("lookback", date(2025, 2, 25), date(2025, 3, 4), KEYS.changing),
                      ("1001", "1002"))
    assert lookback.describe() == ("lookback run: days 2025-02-25..2025-03-04 (8) × locations "
                                   "1001, 1002 = 16 partitions of each of orders")


def test_run_requests_select_the_right_assets(ticker_for):
    ticker = ticker_for(at("2025-03-05T07:00"), locations=("1001",))
    lookback, snapshot = ticker.tick()
    changing = {"orders", "orders_items", "orders_refunds", "customers",
                "customer_memberships", "notes", "appointments", "appointment_treatments"}
    assert {k.path[-1] for k in lookback.asset_selection} == changing
    snapshots = {k.path[-1] for k in snapshot.asset_selection}
    assert {"employees", "locations"} <= snapshots and not snapshots & changing
    assert lookback.run_key != snapshot.run_key


def test_spring_forward_merges_phoenix_and_los_angeles(ticker_for):
    """Before DST LA is an hour behind Phoenix: two separate runs; after, they share one."""
    ticker = ticker_for(at("2025-03-09T09:00"), locations=("1001", "1003", "1004"),
                        lookback_days=0)
    ticker.cursor = json.dumps({"1001": "2025-03-08", "1003": "2025-03-07", "1004": "2025-03-07"})
    assert spans(ticker.tick()) == [("day", "2025-03-08|1003", "2025-03-08|1003")]
    assert spans(ticker.tick(at("2025-03-09T10:00"))) == [
        ("day", "2025-03-08|1004", "2025-03-08|1004")]
    # 2025-03-09 is 23 hours in New York: over at 04:00 UTC (EDT), so due at 06:00
    assert ticker.tick(at("2025-03-10T05:59")) == []
    assert spans(ticker.tick(at("2025-03-10T06:00"))) == [
        ("day", "2025-03-09|1001", "2025-03-09|1001")]
    assert spans(ticker.tick(at("2025-03-10T09:00"))) == [
        ("day", "2025-03-09|1003", "2025-03-09|1004")]


def test_fall_back_day_is_25_hours(ticker_for):
    ticker = ticker_for(at("2025-11-03T06:59"), locations=("1001",), lookback_days=0)
    ticker.cursor = json.dumps({"1001": "2025-11-01"})
    assert ticker.tick() == []  # 2025-11-02 ends at 05:00 UTC (EST) + 2 h grace
    assert spans(ticker.tick(at("2025-11-03T07:00"))) == [
        ("day", "2025-11-02|1001", "2025-11-02|1001")]


def test_a_simulated_week_requests_every_day_once(ticker_for):
    ticker = ticker_for(at("2025-03-06T00:00"))
    seen_keys: Counter[str] = Counter()
    snapshot_days: Counter[str] = Counter()
    for hour in range(7 * 24):
        for request in ticker.tick(ticker.now + timedelta(hours=1) if hour else None):
            seen_keys[request.run_key] += 1
            if request.tags["booker/load"] == "snapshot":
                first, last = request.tags[RANGE_START], request.tags[RANGE_END]
                assert first.split("|")[0] == last.split("|")[0]
                for loc in ALL:
                    if first.split("|")[1] <= loc <= last.split("|")[1]:
                        snapshot_days[f"{first.split('|')[0]}|{loc}"] += 1
    assert max(seen_keys.values()) == 1
    # no cursor at the start: only the last day over everywhere (03-04) is loaded, then each
    # day up to 03-11, the last one over in every zone by 03-12 23:00 UTC
    expected = {f"{date(2025, 3, 4) + timedelta(days=d)}|{loc}" for d in range(8) for loc in ALL}
    assert set(snapshot_days) == expected and set(snapshot_days.values()) == {1}


def test_catch_up_after_downtime_is_bounded(ticker_for):
    ticker = ticker_for(at("2025-03-12T12:00"), locations=("1001",), catch_up_days=3)
    ticker.cursor = json.dumps({"1001": "2025-03-04"})  # down since 03-05
    assert spans(ticker.tick()) == [
        ("lookback", "2025-03-02|1001", "2025-03-11|1001"),
        ("snapshot", "2025-03-09|1001", "2025-03-11|1001"),
    ]
    assert ticker.tick(at("2025-03-12T23:00")) == []


def test_restart_resumes_from_the_cursor(ticker_for):
    first = ticker_for(at("2025-03-05T12:00"), locations=("1001",))
    first.tick()
    restarted = ticker_for(at("2025-03-06T12:00"), locations=("1001",))
    restarted.cursor = first.cursor
    assert spans(restarted.tick()) == [
        ("lookback", "2025-02-26|1001", "2025-03-05|1001"),
        ("snapshot", "2025-03-05|1001", "2025-03-05|1001"),
    ]


def test_a_location_booker_does_not_know_is_skipped(ticker_for):
    ticker = ticker_for(at("2025-03-05T12:00"), locations=("1001", "1099"))
    assert [s[1] for s in spans(ticker.tick())] == ["2025-02-25|1001", "2025-03-04|1001"]
    assert set(json.loads(ticker.cursor)) == {"1001"}


def test_zone_east_of_utc_waits_for_the_partition(tmp_path: Path):
    settings = make_settings(tmp_path, ("1001",), lookback_days=0)
    sydney = {"1001": ZoneInfo("Australia/Sydney")}
    # 2025-03-04 ended in Sydney at 03-03 13:00 UTC, but the UTC partition exists at 03-05 00:00
    launches, _ = plan_loads(at("2025-03-04T20:00"), sydney, {"1001": "2025-03-03"},
                             settings, date(2025, 3, 3), KEYS, ["1001"])
    assert launches == []
    launches, cursor = plan_loads(at("2025-03-05T00:00"), sydney, {"1001": "2025-03-03"},
                                  settings, date(2025, 3, 4), KEYS, ["1001"])
    assert [launch.work.last_day for launch in launches] == [date(2025, 3, 4)]
    assert cursor == {"1001": "2025-03-04"}


def test_lookback_never_reaches_before_start_date(tmp_path: Path):
    settings = make_settings(tmp_path, ("1001",), start_date=date(2025, 3, 1))
    launches, _ = plan_loads(at("2025-03-03T12:00"), {"1001": ZoneInfo("America/New_York")}, {},
                             settings, date(2025, 3, 2), KEYS, ["1001"])
    assert [(launch.work.kind, launch.work.first_day) for launch in launches] == [
        ("lookback", date(2025, 3, 1)), ("snapshot", date(2025, 3, 2))]


def test_only_neighbours_in_the_partition_order_share_a_run(tmp_path: Path):
    """1001 and 1003 are due together, but 1002 lies between them in the partition order (the
    allow-list leaves it out): a range over 1001..1003 would load it, so they run apart."""
    settings = make_settings(tmp_path, ("1001", "1003"), lookback_days=0)
    east = ZoneInfo("America/New_York")
    launches, _ = plan_loads(at("2025-03-05T12:00"), {"1001": east, "1003": east}, {},
                             settings, date(2025, 3, 4), KEYS, ["1001", "1002", "1003"])
    assert [launch.locations for launch in launches] == [("1001",), ("1003",)]


def test_no_location_partitions_yet_says_which_sensor_adds_them(sandbox, tmp_path):
    with dg.instance_for_test() as empty:
        ticker = Ticker(sandbox, make_settings(tmp_path, ()), at("2025-03-05T12:00"), empty)
        with dg.build_sensor_context(definitions=ticker.defs, resources=ticker.defs.resources,
                                     instance=empty) as context:
            data = ticker.sensor.evaluate_tick(context)
    assert not data.run_requests
    assert "no location partitions yet: the booker_locations sensor" in data.skip_message


def test_the_daily_load_uses_the_options_set_in_the_environment(sandbox, tmp_path, monkeypatch):
    """BOOKER_INCLUDE_EXPIRED=true, no config typed anywhere: the sensor's runs, executed as
    Dagster would (their run config, tags and selection), store expired memberships and record
    the option; a deployment that turns it off again is warned which partitions differ."""
    for name, value in {"BOOKER_INCLUDE_EXPIRED": "true", "BOOKER_LOCATION_IDS": "1001",
                        "BOOKER_LOOKBACK_DAYS": "1",
                        "BOOKER_DUCKDB_PATH": str(tmp_path / "b.duckdb")}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    ticker = Ticker(sandbox, settings, sandbox.settings.now, dg.DagsterInstance.ephemeral())
    add_locations(ticker.instance, ["1001"])
    requests = ticker.tick()
    assert [r.tags["booker/load"] for r in requests] == ["lookback", "snapshot"]
    for request in requests:
        result = dg.materialize(
            [*ticker.defs.assets, *ticker.defs.asset_checks], selection=request.asset_selection,
            resources=ticker.defs.resources, instance=ticker.instance, tags=request.tags,
            run_config=request.run_config)
        assert result.success
    with connect_locked(settings.duckdb_path, read_only=True) as conn:
        expired = dict(conn.execute(
            "SELECT 'plans', count(*) FILTER (is_expired) FROM booker.memberships UNION ALL"
            " SELECT 'customers', count(*) FILTER (is_expired) FROM booker.customer_memberships"
        ).fetchall())
        loads = conn.execute(
            "SELECT table_name, report_date, options::VARCHAR FROM booker._loads WHERE"
            " table_name LIKE '%memberships' ORDER BY ALL").fetchall()
    print("\n" + "\n".join(map(str, loads)))
    (record,) = ticker.instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["booker", "memberships"])), limit=10).records
    assert record.asset_materialization.metadata["booker/loaded_with"].value == {
        "include_expired": True}
    assert expired["plans"] > 0 and expired["customers"] > 0, expired
    assert {options for *_, options in loads} == {'{"include_expired": true}'}
    assert [(t, str(d)) for t, d, _ in loads] == [
        ("customer_memberships", "2025-06-28"), ("customer_memberships", "2025-06-29"),
        ("memberships", "2025-06-29")]

    monkeypatch.delenv("BOOKER_INCLUDE_EXPIRED")
    warned = check_evaluators(load_settings())[dg.AssetCheckKey(
        dg.AssetKey(["booker", "memberships"]), "options_match_deployment")].evaluate(["1001"])
    shown = warned.metadata["backfill"].value
    rows = table_rows(warned.metadata["offending_partitions"])
    print(f"{warned.description}\n{rows}\n{shown}")
    assert [(r["location_id"], r["first_day"], r["last_day"]) for r in rows] == [
        (1001, "2025-06-29", "2025-06-29")]
    assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert "BOOKER_INCLUDE_EXPIRED=false" in warned.description
    assert ("booker-assets backfill --from 2025-06-29 --to 2025-06-29 --locations 1001 "
            "--assets memberships") in shown
