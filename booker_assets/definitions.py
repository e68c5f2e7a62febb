"""The code location: every Booker report asset, the Booker resource and the DuckDB IO manager.

With no Booker credentials in the environment, everything runs against the embedded sandbox,
through the same ``EnvVar``s a real account uses (defs/connection.py).
"""

from __future__ import annotations

import dagster as dg

from booker_assets.api.client import BookerResource
from booker_assets.defs.assets import build_report_assets
from booker_assets.defs.checks import build_checks
from booker_assets.defs.connection import (
    apply_account_defaults,
    booker_check_connection,
    booker_resource_from_env,
)
from booker_assets.defs.daily import daily_load_sensor, load_keys
from booker_assets.defs.days_back import days_back_job
from booker_assets.defs.io_manager import BookerDuckDBIOManager
from booker_assets.defs.jobs import load_job
from booker_assets.defs.locations import discovery_sensor, drift_check
from booker_assets.defs.metrics import metrics_definitions
from booker_assets.defs.partitions import Clock, build_partitions, utc_now
from booker_assets.settings import Settings, load_settings


def build_definitions(settings: Settings, booker: BookerResource | None = None,
                      clock: Clock = utc_now) -> dg.Definitions:
    """The code location for ``settings``; tests and benchmarks pass their own ``booker`` (and
    a ``clock`` when their sandbox's is frozen: it decides which days can be observed)."""
    partitions = build_partitions(settings)
    assets = build_report_assets(settings, partitions, clock)
    keys = load_keys(assets, partitions)
    return dg.Definitions(
        assets=assets,
        asset_checks=[*build_checks(settings), drift_check(settings)],
        # A run's steps wait on one API budget, not on CPU: run them in the run's process
        # (a process per step costs ~2 s of imports each); runs overlap each other instead.
        executor=dg.in_process_executor,
        jobs=[load_job(assets), days_back_job(settings, partitions, assets, keys, clock),
              booker_check_connection],
        sensors=[discovery_sensor(settings, partitions, clock),
                 daily_load_sensor(settings, partitions, keys, clock)],
        resources={
            "booker": booker or booker_resource_from_env(rate=settings.rate),
            "io_manager": BookerDuckDBIOManager.from_settings(settings),
        },
    )


def deployed_settings() -> Settings:
    """The environment's settings, with the defaults of the account's variables set in this
    process (the sandbox's when no credential is set), where the resource resolves them."""
    settings = load_settings()
    if settings.use_sandbox:
        serve_the_sandbox()
    apply_account_defaults(settings)
    return settings


def serve_the_sandbox() -> None:
    """The environment names no Booker account: the demo's Booker, which the booker_sandbox
    package registers as the ``sandbox`` endpoint when imported (and starts in the process
    that first sends to it). Here, at the top, so that no layer of the runtime imports it."""
    import booker_sandbox  # noqa: F401


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev`` loads: the environment is read here, when Dagster asks, never at
    import (tests import this module and build their own with ``build_definitions``), then
    the salon metrics over what the loads write (dbt, defs/metrics.py)."""
    settings = deployed_settings()
    return dg.Definitions.merge(build_definitions(settings), metrics_definitions(settings))
