"""The asset factory: one Dagster multi-asset per report group of the catalogue.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` parameter's type
from the annotation at definition time, and each group has its own options class.
"""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import dagster as dg
import pandas as pd

from booker_assets.client import BookerResource
from booker_assets.errors import (
    BookerConfigError,
    BookerCredentialsError,
    BookerError,
    BookerRequestError,
)
from booker_assets.extract import extract
from booker_assets.flatten import PiiPolicy
from booker_assets.io_manager import ReportFrame
from booker_assets.partitions import BookerPartitions, days_by_location
from booker_assets.reports import GROUPS, ReportGroup
from booker_assets.settings import Settings

GROUP_NAME = "booker"
API_POOL = "booker_api"  # dagster.yaml caps concurrent steps calling Booker (rate budget)
# Step retries for what the client's own retries could not absorb (a long 503 storm).
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
# Errors that a retry cannot fix: bad credentials, refused requests, bad settings.
FATAL = (BookerCredentialsError, BookerRequestError, BookerConfigError)
LOCATION_WORKERS = 4


def build_report_assets(settings: Settings, partitions: BookerPartitions) -> list:
    """Every report group of the catalogue as a multi-asset, one output per table."""
    return [_report_asset(group, settings, partitions) for group in GROUPS]


def _report_asset(group: ReportGroup, settings: Settings, partitions: BookerPartitions):
    outs = {
        table.name: dg.AssetOut(
            key=dg.AssetKey([GROUP_NAME, table.name]),
            description=table.description,
            is_required=False,
            group_name=GROUP_NAME,
            kinds={"booker", "duckdb"},
            metadata={
                "booker/report": group.name,
                "booker/key": list(table.key),
                "booker/entity_key": list(table.entity_key),
            },
        )
        for table in group.tables
    }
    options_type = group.options

    @dg.multi_asset(
        name=f"booker_{group.name}",
        outs=outs,
        partitions_def=(
            partitions.daily if group.scope == "brand" else partitions.daily_by_location
        ),
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
        retry_policy=RETRY,
        pool=API_POOL,
    )
    def report(
        context: dg.AssetExecutionContext, booker: BookerResource, config: options_type
    ) -> Iterator[dg.Output]:
        yield from _materialize(context, booker, group, config.model_dump(), settings.pii)

    return report


def _materialize(
    context: dg.AssetExecutionContext,
    booker: BookerResource,
    group: ReportGroup,
    options: dict,
    pii: PiiPolicy,
) -> Iterator[dg.Output]:
    tables = [t for t in group.tables if t.name in context.selected_output_names]
    slices = days_by_location(context.partition_keys)
    client = booker.get_client()
    before = client.stats.snapshot()

    def one_location(item: tuple[str | None, list[date]]) -> dict[str, ReportFrame]:
        location_id, days = item
        return extract(client, group, tables, location_id, days, options, pii)

    try:
        with ThreadPoolExecutor(max_workers=min(LOCATION_WORKERS, len(slices))) as pool:
            per_location = list(pool.map(one_location, slices.items()))
    except BookerError as exc:
        # A Failure's description is what the UI shows, also under "Exceeded max_retries".
        raise dg.Failure(description=str(exc), allow_retries=not isinstance(exc, FATAL),
                         metadata={"booker/error": type(exc).__name__}) from exc
    used = _delta(before, client.stats.snapshot())
    all_days = sorted({d for days in slices.values() for d in days})
    for table in tables:
        value = _combine([frames[table.name] for frames in per_location])
        yield dg.Output(
            value,
            output_name=table.name,
            metadata={
                "booker/window": f"{all_days[0]} to {all_days[-1]} (location-local days)",
                "booker/locations": ", ".join(str(loc) for loc in slices if loc) or "brand",
                "booker/options": dg.MetadataValue.json(options),
                **{f"booker/{name}": value for name, value in used.items()},
            },
        )


def _delta(before: dict, after: dict) -> dict[str, float]:
    """What this step cost in API terms (requests, pages, retries, seconds in HTTP)."""
    used = {name: round(after[name] - before.get(name, 0), 3)
            for name in after if isinstance(after[name], int | float)}
    retries = Counter(after["retries"]) - Counter(before.get("retries", {}))
    used["retries"] = sum(retries.values())
    used.update({f"retries_{cause}": count for cause, count in sorted(retries.items())})
    return used


def _combine(frames: list[ReportFrame]) -> ReportFrame:
    with_rows = [f.frame for f in frames if len(f.frame)] or [frames[0].frame]
    return ReportFrame(
        frame=pd.concat(with_rows, ignore_index=True),
        partitions=[p for f in frames for p in f.partitions],
        loads=[load for f in frames for load in f.loads],
    )
