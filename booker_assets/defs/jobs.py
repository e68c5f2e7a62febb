"""The named job every load runs in: the demo's, the command line's and the sensors' runs.

Without one, Dagster names a run after its launch path: ``__ephemeral_asset_job__`` for an
in-process run, no job at all in a sensor's tick list. One job over every report asset (and so
their checks) lets each run select the reports and partitions it loads, and reads the same
in the Runs list whoever launched it.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

LOAD_JOB = "booker_load"


def load_job(assets: Sequence[dg.AssetsDefinition]) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        LOAD_JOB,
        selection=dg.AssetSelection.assets(*assets),
        description="Loads Booker's reports (the run's asset selection) for its partitions: "
        "the day × location range of its tags. The demo, `booker-assets backfill` and the "
        "sensors launch it.",
    )


def load_selection(selection: Sequence[str] | None) -> list[dg.AssetKey] | None:
    """``["booker/orders", ...]`` (None: every report) as the job's asset selection."""
    return None if selection is None else [dg.AssetKey.from_user_string(s) for s in selection]
