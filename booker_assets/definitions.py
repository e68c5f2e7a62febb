"""The code location: every Booker report asset, the Booker resource and the DuckDB IO manager.

With no Booker credentials in the environment, everything runs against the embedded sandbox.
"""

from __future__ import annotations

import dagster as dg

from booker_assets.api.client import BookerResource
from booker_assets.defs.assets import build_report_assets
from booker_assets.defs.automation import Clock, build_automation, utc_now
from booker_assets.defs.checks import build_checks
from booker_assets.defs.connection import booker_check_connection, booker_resource_from_env
from booker_assets.defs.io_manager import BookerDuckDBIOManager
from booker_assets.defs.partitions import build_partitions
from booker_assets.settings import Settings, load_settings


def booker_resource(settings: Settings) -> BookerResource:
    """Credentials are EnvVars: resolved when a run starts, never shown in the UI."""
    if settings.use_sandbox:
        from booker_assets.sandbox import DEMO_CREDENTIALS

        # The embedded sandbox has no rate limit: don't pace it like the real gateway.
        return BookerResource(base_url="sandbox", requests_per_second=200, burst=50,
                              **DEMO_CREDENTIALS)
    return booker_resource_from_env()


def build_definitions(settings: Settings, booker: BookerResource | None = None,
                      clock: Clock = utc_now) -> dg.Definitions:
    """The code location for ``settings``; tests and benchmarks pass their own ``booker`` (and
    a ``clock`` when their sandbox's is frozen: it decides which days can be observed)."""
    partitions = build_partitions(settings)
    assets = build_report_assets(settings, partitions, clock)
    automation = build_automation(settings, partitions, assets, clock)
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(settings),
        # A run's steps wait on one API budget, not on CPU: run them in the run's process
        # (a process per step costs ~2 s of imports each); runs overlap each other instead.
        executor=dg.in_process_executor,
        jobs=[*automation["jobs"], booker_check_connection],
        schedules=automation["schedules"],
        sensors=automation["sensors"],
        resources={
            "booker": booker or booker_resource(settings),
            "io_manager": BookerDuckDBIOManager.from_settings(settings),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev`` loads: the environment is read here, when Dagster asks, never at
    import (tests import this module and build their own with ``build_definitions``)."""
    return build_definitions(load_settings())
