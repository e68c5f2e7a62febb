"""The asset factory: the report catalogue as two Dagster multi-assets, one asset per table.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` parameter's type
from the annotation at definition time, and it is built from the reports' options classes.
"""

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date

import dagster as dg
import pandas as pd

from booker_assets.api.client import BookerResource
from booker_assets.catalogue.reports import GROUPS, ReportGroup, Table
from booker_assets.defs.partitions import BookerPartitions, days_by_location
from booker_assets.errors import (
    BookerConfigError,
    BookerCredentialsError,
    BookerError,
    BookerRequestError,
)
from booker_assets.load.extract import extract
from booker_assets.load.frames import ReportFrame
from booker_assets.load.pii import PiiPolicy
from booker_assets.settings import Settings

GROUP_NAME = "booker"
API_POOL = "booker_api"  # dagster.yaml caps concurrent steps calling Booker (rate budget)
# Step retries for what the client's own retries could not absorb (a long 503 storm).
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
# Errors that a retry cannot fix: bad credentials, refused requests, bad settings.
FATAL = (BookerCredentialsError, BookerRequestError, BookerConfigError)
# A backfill is cut into runs of at most a month of days (per location): a run holds its days'
# rows until the step ends, so this bounds a run's memory however long the backfill.
RUN_DAYS = 31
FETCH_WORKERS = 16  # (report, location) fetches of a step in flight; requests are bounded apart
SCOPES = ("brand", "location")


def build_report_assets(settings: Settings, partitions: BookerPartitions) -> list:
    """The catalogue as two multi-assets, one output (asset) per table: the brand-level reports
    (partitioned by day) and the location-scoped ones (by day × location)."""
    return [_report_asset([g for g in GROUPS if g.scope == scope], settings, partitions)
            for scope in SCOPES]


def _report_asset(groups: list[ReportGroup], settings: Settings, partitions: BookerPartitions):
    """One step fetches every selected report at once, a single stream of requests paced by the
    rate limit, and stores each table as soon as its report is complete. (A step per report
    left the budget idle while Dagster and DuckDB finished each step.)"""
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
        for group in groups
        for table in group.tables
    }
    scope = groups[0].scope
    options_type = _options_type(groups)

    @dg.multi_asset(
        name=f"booker_{scope}_reports",
        outs=outs,
        partitions_def=partitions.daily if scope == "brand" else partitions.daily_by_location,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=RUN_DAYS),
        can_subset=True,
        retry_policy=RETRY,
        pool=API_POOL,
    )
    def reports(
        context: dg.AssetExecutionContext, booker: BookerResource, config: options_type
    ) -> Iterator[dg.Output]:
        yield from _materialize(context, booker, groups, config.model_dump(), settings.pii)

    return reports


def _options_type(groups: list[ReportGroup]) -> type[dg.Config]:
    """Every Domo option of these reports in one config (each report reads its own)."""
    bases = tuple(dict.fromkeys(group.options for group in groups))
    return type("ReportOptions", bases, {"__doc__": "Domo's options, per report."})


def _materialize(
    context: dg.AssetExecutionContext,
    booker: BookerResource,
    groups: list[ReportGroup],
    options: dict,
    pii: PiiPolicy,
) -> Iterator[dg.Output]:
    selected = set(context.selected_output_names)
    wanted = {g.name: (g, [t for t in g.tables if t.name in selected]) for g in groups}
    wanted = {name: (group, tables) for name, (group, tables) in wanted.items() if tables}
    slices = days_by_location(context.partition_keys)
    client = booker.get_client()
    views = {name: client.counted() for name in wanted}  # each report counts its own requests
    pool = ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="booker-report")
    try:
        fetches = {
            name: [pool.submit(extract, views[name], group, tables, location_id, days,
                               _own(group, options), pii)
                   for location_id, days in slices.items()]
            for name, (group, tables) in wanted.items()
        }
        for name, futures in _as_completed(fetches):
            group, tables = wanted[name]
            per_location = [future.result() for future in futures]
            yield from _outputs(group, tables, per_location, slices, _own(group, options),
                                views[name].stats.snapshot())
    except BookerError as exc:
        # A Failure's description is what the UI shows, also under "Exceeded max_retries".
        raise dg.Failure(description=str(exc), allow_retries=not isinstance(exc, FATAL),
                         metadata={"booker/error": type(exc).__name__}) from exc
    finally:  # after a failure, the other reports' fetches send nothing more
        for view in views.values():
            view.stop()
        pool.shutdown(wait=False, cancel_futures=True)


def _own(group: ReportGroup, options: dict) -> dict:
    """The options this report reads."""
    return {name: options[name] for name in group.options.model_fields}


def _as_completed(fetches: dict[str, list[Future]]) -> Iterator[tuple[str, list[Future]]]:
    """Each report once all its locations are fetched, or one of them failed; soonest first."""
    pending = dict(fetches)
    while pending:
        running = [f for futures in pending.values() for f in futures if not f.done()]
        wait(running, return_when=FIRST_COMPLETED)
        for name in [name for name, futures in pending.items() if _settled(futures)]:
            yield name, pending.pop(name)


def _settled(futures: list[Future]) -> bool:
    return all(f.done() for f in futures) or any(f.done() and f.exception() for f in futures)


def _outputs(group: ReportGroup, tables: list[Table], per_location: list[dict[str, ReportFrame]],
             slices: dict[str | None, list[date]], options: dict, stats: dict
             ) -> Iterator[dg.Output]:
    all_days = sorted({d for days in slices.values() for d in days})
    for table in tables:
        yield dg.Output(
            _combine([frames[table.name] for frames in per_location]),
            output_name=table.name,
            metadata={
                "booker/window": f"{all_days[0]} to {all_days[-1]} (location-local days)",
                "booker/locations": ", ".join(str(loc) for loc in slices if loc) or "brand",
                "booker/options": dg.MetadataValue.json(options),
                **{f"booker/{name}": value for name, value in _cost(stats).items()},
            },
        )


def _cost(stats: dict) -> dict[str, float]:
    """A report's cost in API terms: requests, pages, seconds in HTTP, retries by cause."""
    cost = {name: value for name, value in stats.items() if isinstance(value, int | float)}
    cost["retries"] = sum(stats["retries"].values())
    cost.update({f"retries_{cause}": n for cause, n in sorted(stats["retries"].items())})
    return cost


def _combine(frames: list[ReportFrame]) -> ReportFrame:
    with_rows = [f.frame for f in frames if len(f.frame)] or [frames[0].frame]
    return ReportFrame(
        frame=pd.concat(with_rows, ignore_index=True),
        partitions=[p for f in frames for p in f.partitions],
        loads=[load for f in frames for load in f.loads],
    )
