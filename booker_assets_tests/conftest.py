"""Shared fixtures: a sandbox on a free port, settings and definitions pointing at it."""

from __future__ import annotations

import bisect
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from xdist.scheduler import LoadScopeScheduling

from booker_assets.api.client import BookerResource
from booker_assets.catalogue.options import OPTIONS
from booker_assets.definitions import build_definitions
from booker_assets.defs.backfill import materialize_range
from booker_assets.defs.partitions import RANGE_END, RANGE_START, add_locations
from booker_assets.settings import Settings
from booker_assets_tests.postgres import postgres_dsn, postgres_server  # noqa: F401 (fixtures)
from booker_sandbox import BookerSandbox, SandboxSettings

# The sandbox's clock is frozen so that refunds "not made yet" are the same on every run.
SANDBOX_NOW = datetime(2025, 6, 30, 12, tzinfo=timezone.utc)
SANDBOX_SETTINGS = SandboxSettings(start_date=date(2025, 1, 1), end_date=date(2025, 6, 30),
                                   now=SANDBOX_NOW)


# The longest work units first (seconds of a worker in a CI run: the loaded warehouse's files
# ~385, dead runs ~190, the README ~185, the browser ~150, then ~100 to ~70): xdist hands the
# next unit to the first worker nearly done, and a long one started last would leave the other
# workers idle while it runs alone. test_variants_load.py stands for its unit (WAREHOUSE_FILES).
SLOWEST_FIRST = ("test_variants_load.py", "test_dead_runs.py", "test_readme.py", "test_ui.py",
                 "test_reliability.py", "test_e2e_daemon.py", "test_readers.py",
                 "test_ducklake.py")


def pytest_configure(config: pytest.Config) -> None:
    """An xdist worker is a host of its own: the state a host's processes share (the rate
    bucket and the backfill's shared replies under ``api/ratelimit.host_dir``) lives in the
    temporary directory, and two tests side by side must not pace or answer each other."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        own = Path(tempfile.gettempdir()) / f"booker-assets-tests-{worker}"
        own.mkdir(exist_ok=True)
        os.environ["TMPDIR"] = str(own)  # the subprocesses' too
        tempfile.tempdir = None  # read again from TMPDIR


# The files whose tests read the session's loaded warehouse (``loaded_warehouse``): one xdist
# work unit, so that one worker builds it once (~30 s each time), not each worker that runs one.
WAREHOUSE_FILES = frozenset({"test_assets.py", "test_concurrency.py", "test_metrics.py",
                             "test_variants_load.py"})
WAREHOUSE_UNIT = "the files of loaded_warehouse"


class FilesAndWarehouseScheduling(LoadScopeScheduling):
    """xdist's ``--dist loadfile`` (a work unit per file), the WAREHOUSE_FILES one unit."""

    def _split_scope(self, nodeid: str) -> str:  # how LoadFileScheduling itself is written
        path = nodeid.split("::", 1)[0]
        return WAREHOUSE_UNIT if Path(path).name in WAREHOUSE_FILES else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    if config.getvalue("dist") == "loadfile":
        return FilesAndWarehouseScheduling(config, log)
    return None  # xdist's own


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: else as found
    readers = {item.path.name for item in items
               if "loaded_warehouse" in getattr(item, "fixturenames", ())}
    if missing := sorted(readers - WAREHOUSE_FILES):  # each would build it once more
        raise pytest.UsageError(f"conftest.WAREHOUSE_FILES lacks {missing}: they use "
                                f"loaded_warehouse")


@pytest.fixture(autouse=True)
def no_booker_environment() -> Iterator[None]:
    """Each test starts without BOOKER_* variables and leaves the environment as it found it:
    the developer's shell must not steer a test, and the code location writes the sandbox's
    defaults into this process's environment (``apply_account_defaults``)."""
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith("BOOKER_")]:
        del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[BookerSandbox]:
    with BookerSandbox(SANDBOX_SETTINGS) as sb:
        yield sb


# The loaded warehouse's days, shared by the grain tests and the metrics' reconciliation.
LOADED_LOCATIONS = ("1001", "1004")  # Eastern and Pacific
LOADED_DAYS = (date(2025, 3, 8), date(2025, 3, 9))  # 2025-03-09: the spring-forward 23-hour day
# The sandbox's clock stands at 2025-06-30 12:00 UTC: in both zones the 29th has ended less
# than a day ago and the 30th is today, so their snapshots can be observed.
OBSERVED_DAYS = (date(2025, 6, 29), date(2025, 6, 30))
# Every option off but schedule_defaults: the weekday defaults' tables are asked only with it
# on (else their partitions are option_off, empty), so a load with these fills every table.
EVERY_TABLE_OPTIONS = dict.fromkeys(OPTIONS, False) | {"schedule_defaults": True}


@dataclass(frozen=True)
class Loaded:
    """A warehouse loaded once per session: its settings, the sandbox it came from and the
    instance that recorded the loads (the metrics' refresh reads their events there)."""

    settings: Settings
    sandbox: BookerSandbox
    instance: dg.DagsterInstance


@pytest.fixture(scope="session")
def loaded_warehouse(sandbox: BookerSandbox, tmp_path_factory) -> Iterator[Loaded]:
    """Every asset for LOADED_DAYS × LOADED_LOCATIONS (a single run, a backfill of past days),
    then OBSERVED_DAYS (the daily load's days). The deployment gets weekday defaults
    (BOOKER_SCHEDULE_DEFAULTS), so that their tables are loaded too. Tests that write to it
    must leave what it holds unchanged (re-loading a slice of the frozen sandbox does)."""
    settings = make_settings(tmp_path_factory.mktemp("loaded"), LOADED_LOCATIONS,
                             options=EVERY_TABLE_OPTIONS)
    defs = make_defs(sandbox, settings, page_size=10)
    with dg.DagsterInstance.ephemeral() as instance:
        assert load_warehouse_days(defs, instance)
        yield Loaded(settings, sandbox, instance)


def load_warehouse_days(defs: dg.Definitions, instance: dg.DagsterInstance) -> bool:
    """The loaded warehouse's runs with ``defs``: LOADED_DAYS, then OBSERVED_DAYS, over
    LOADED_LOCATIONS. Whether both succeeded."""
    return all(load_range(defs, LOADED_LOCATIONS, *days, instance=instance).success
               for days in (LOADED_DAYS, OBSERVED_DAYS))


def make_settings(tmp_path: Path, locations: tuple[str, ...], **overrides) -> Settings:
    """Settings whose allow-list (BOOKER_LOCATION_IDS) is ``locations``."""
    values = dict(
        use_sandbox=False,
        allowed_locations=locations,
        start_date=date(2025, 1, 1),
        duckdb_path=str(tmp_path / "booker_assets.duckdb"),
        lookback_days=7,
        grace_hours=2.0,
        catch_up_days=3,
        pii="keep",
    )
    return Settings(**(values | overrides))


# The sandbox has no rate limit unless a test gives it one: at the deployment's default pace
# (10 requests/s) the session's loaded warehouse alone waited ~40 s for its tokens. A test
# about the pace sets its own.
TEST_PACE = {"requests_per_second": 1000, "burst": 100}


def make_defs(sandbox: BookerSandbox, settings: Settings, **resource_fields) -> dg.Definitions:
    """The project's own definitions, with the Booker resource pointed at ``sandbox`` (at
    ``TEST_PACE`` unless ``resource_fields`` say otherwise) and the sandbox's clock (it decides
    which days' snapshots can be observed)."""
    booker = BookerResource(base_url=sandbox.url, **sandbox.credentials,
                            **TEST_PACE | resource_fields)
    frozen = sandbox.settings.now
    return build_definitions(settings, booker, clock=lambda: frozen or datetime.now(timezone.utc))


def table_rows(value: dg.TableMetadataValue) -> list[dict]:
    """The records of a table in metadata, as the UI lists them."""
    return [record.data for record in value.records]


def assert_within_rate(granted: list[float], rate: float, burst: int) -> None:
    """No window of a bucket's schedule holds more than burst + rate × its length.

    The times are the slots the bucket reserved, on its own clock: a loaded machine delays
    when requests go out, never which slots were handed out, so this cannot flake, and it
    fails for a bucket that hands out too many slots (a race on its state, a wrong refill, a
    bucket each client or process keeps to itself)."""
    granted = sorted(granted)
    for i, start in enumerate(granted):
        for window in (0.5, 1.0, 2.0):
            inside = bisect.bisect_left(granted, start + window - 1e-9) - i
            assert inside <= burst + rate * window + 1e-6, (start, window, inside)


def load_range(defs: dg.Definitions, locations: Sequence[str], first: date, last: date, *,
               instance: dg.DagsterInstance | None = None, **run) -> dg.ExecuteInProcessResult:
    """One range run over days ``first``..``last`` × ``locations``, in ``instance`` (default: a
    throwaway one). The locations become partitions first, as the ``booker_locations`` sensor
    makes them in a deployment (these tests choose them, Booker may not know them)."""
    if instance is None:
        with dg.DagsterInstance.ephemeral() as ephemeral:
            return load_range(defs, locations, first, last, instance=ephemeral, **run)
    add_locations(instance, locations)
    return materialize_range(defs, instance, locations, first, last, **run)


def planned_runs(defs: dg.Definitions, wanted: Iterable, instance: dg.DagsterInstance
                 ) -> list[tuple[set[str], list[str]]]:
    """How Dagster's backfill daemon cuts ``wanted`` (``AssetKeyPartitionKey``s) into runs,
    by its own planner: (asset keys, partition keys) per run. Private API, for tests only:
    nothing public plans a backfill without running it."""
    from dagster._core.definitions.automation_tick_evaluation_context import (
        build_run_requests_with_backfill_policies,
    )

    graph = defs.resolve_asset_graph()
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        requests = build_run_requests_with_backfill_policies(list(wanted), graph, instance)
        return [({key.to_user_string() for key in r.asset_selection},
                 graph.get(r.asset_selection[0]).partitions_def.get_partition_keys_in_range(
                     dg.PartitionKeyRange(r.tags[RANGE_START], r.tags[RANGE_END])))
                for r in requests]
