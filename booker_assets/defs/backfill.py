"""Running a range of partitions in this process: what the command line and the demo do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date

import dagster as dg

from booker_assets.defs.partitions import range_tags


def materialize_range(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    locations: Sequence[str],
    first: date,
    last: date,
    *,
    selection: Sequence[str] | None = None,
    run_config: dict | None = None,
    tags: Mapping[str, str] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One run over days ``first``..``last`` × ``locations[0]``..``locations[-1]`` (a range
    run, as a backfill run is), the asset checks of what it loads evaluated after the load.
    The locations must be partitions of ``instance``."""
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=defs.resources,
        instance=instance,
        run_config=run_config,
        tags={**(tags or {}), **range_tags(first, last, locations[0], locations[-1])},
        raise_on_error=raise_on_error,
    )


def instance_from_env() -> dg.DagsterInstance:
    """The instance ``DAGSTER_HOME`` names (the one ``make dev`` shows), else a throwaway one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()
