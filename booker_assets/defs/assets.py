"""The asset factory: the report catalogue as one Dagster multi-asset, one asset per table.

Every table is partitioned by day × location. One step fetches every selected report for
every location of the run at once, a single stream of requests paced by the rate limit, and
stores each report as soon as it is complete, all its tables in one transaction; at the end,
it publishes the analysts' read copy. A report that fails (bad data, a refused
call, a bug) does not stop the others: they are stored, and the step then fails naming each
failed report, location and days with its cause. Only a failure that heals by waiting (see
``BookerError.transient``) lets the step retry.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` parameter's type
from the annotation at definition time, and it is built from the catalogue's options.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from datetime import date, datetime

import dagster as dg
import pandas as pd
import pydantic

from booker_assets.api.client import BookerClient, BookerResource
from booker_assets.api.shared_replies import SharedReplies, store_for
from booker_assets.api.view import ReportView
from booker_assets.catalogue.options import OPTIONS, table_options
from booker_assets.catalogue.reports import GROUPS, ReportGroup, Table
from booker_assets.defs.checks import evaluations_after_failure
from booker_assets.defs.io_manager import ReportWrite, TablePart, TableSlice
from booker_assets.defs.locations import (
    CHECK_OP,
    DRIFT_CHECK_KEY,
    LOCATIONS_KEY,
    drift_result_or_warning,
    refuse_unreturned,
)
from booker_assets.defs.metadata_tables import metadata_table
from booker_assets.defs.partitions import BookerPartitions, days_by_location
from booker_assets.errors import BookerError
from booker_assets.load.columns import code_version, declared_columns
from booker_assets.load.extract import extract
from booker_assets.load.frames import PartitionLoad, ReportFrame
from booker_assets.load.pii import PiiPolicy
from booker_assets.settings import Settings

GROUP_NAME = "booker"
API_POOL = "booker_api"  # dagster.yaml caps the runs calling Booker at once (rate budget)
STEP_NAME = "booker_reports"
# Step retries only for what the client's own retries could not absorb (a long 503 storm).
RETRY = dg.RetryPolicy(
    max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
# A backfill is cut into runs of at most a month of days (per location): a run holds its days'
# rows until the step ends, so this bounds a run's memory however long the backfill.
RUN_DAYS = 31
# The tags naming the backfill a run belongs to: Dagster's (UI, days back, sensors' backfills)
# and the command line's. Its runs share the replies no partition day shapes.
BACKFILL_TAGS = ("dagster/backfill", "booker/backfill")


# Where the UI says "UTC" (the daily dimension's label is Dagster's, and cannot be changed).
LOCAL_DAY = ("Partitions are location-local days: day D of a location is [D 00:00, D+1 00:00) "
             "in that location's own time zone (the UI's \"UTC\" on the date dimension is "
             "Dagster's label, not the window).")


def option_description(name: str) -> str:
    option = OPTIONS[name]
    return (f"Domo '{option.domo_name}' {option.description} Changes: "
            f"{', '.join(option.tables)}; the other tables ignore it.")


def report_options_config(settings: Settings) -> type[dg.Config]:
    """Domo's options as the step's config. Each defaults to the deployment's setting, so a
    run launched with no config (a sensor's, a backfill's, the CLI's) loads with it, and the
    launchpad shows it; each option says which tables it changes."""
    fields = {name: (bool, pydantic.Field(settings.options[name], description=(
        f"{option_description(name)} Default: the deployment's {OPTIONS[name].setting} "
        f"({str(settings.options[name]).lower()}).")))
              for name in OPTIONS}
    return pydantic.create_model(
        "ReportOptions", __base__=dg.Config, __doc__=(
            "Domo's connector options under ops.booker_reports.config, each defaulting to "
            "its BOOKER_* setting: set one here to override it for this run only."), **fields)


def build_report_assets(settings: Settings, partitions: BookerPartitions,
                        clock: Callable[[], datetime]) -> list:
    """The catalogue as one multi-asset, one output (asset) per table. ``clock`` tells which
    days' snapshots can still be observed."""
    outs = {table.name: _out(group, table, settings) for group in GROUPS
            for table in group.tables}
    report_options = report_options_config(settings)

    @dg.multi_asset(
        name=STEP_NAME,
        outs=outs,
        partitions_def=partitions.daily_by_location,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=RUN_DAYS),
        can_subset=True,
        retry_policy=RETRY,
        pool=API_POOL,
    )
    def booker_reports(
        context: dg.AssetExecutionContext, booker: BookerResource, config: report_options
    ) -> Iterator[dg.Output]:
        client = booker.get_client()
        drift = {DRIFT_CHECK_KEY: lambda: drift_result_or_warning(client, context.instance,
                                                                  settings)}
        try:
            yield from _materialize(context, client, config.model_dump(), settings, clock())
        except LoadFailed as failure:
            # Checks fail only on data: the run's checks are evaluated here (defs/checks.py)
            yield from evaluations_after_failure(context, settings, failure.stored,
                                                 failure.cause, drift)
            raise failure.failure from None

    return [booker_reports]


def _out(group: ReportGroup, table: Table, settings: Settings) -> dg.AssetOut:
    pii = PiiPolicy.of_settings(settings)
    columns = declared_columns(group, table, pii)
    options = table_options(table.name)
    return dg.AssetOut(
        key=dg.AssetKey([GROUP_NAME, table.name]),
        description=f"{table.description} {LOCAL_DAY} " + (
            f"Options it reads (settings {', '.join(OPTIONS[o].setting for o in options)}; "
            f"for one run, config ops.booker_reports.config): {', '.join(options)}."
            if options else "It reads no option."),
        is_required=False,
        group_name=GROUP_NAME,
        kinds={"booker", "duckdb"},
        owners=list(settings.owners),
        code_version=code_version(group, table, pii),
        metadata={
            "booker/day": LOCAL_DAY,
            "booker/options": _options_table(options, settings),
            "booker/options_override": dg.MetadataValue.md(_options_override(options, settings)),
            "booker/report": group.name,
            "booker/key": list(table.key),
            "booker/entity_key": list(table.entity_key),
            "booker/history": table.history,
            "dagster/table_name": f"{GROUP_NAME}.{table.name}",
            "dagster/column_schema": dg.TableSchema(columns=[
                dg.TableColumn(c.name, c.type, description=c.description) for c in columns]),
        },
    )


def _options_table(options: Sequence[str], settings: Settings) -> dg.TableMetadataValue:
    """The options this table reads: each one's setting, this deployment's value, its effect."""
    return metadata_table(
        [{"option": name, "setting": OPTIONS[name].setting,
          "this_deployment": settings.options[name], "what_it_does": option_description(name)}
         for name in options],
        {"option": "string", "setting": "string", "this_deployment": "bool",
         "what_it_does": "string"}, cell=None)


def _options_override(options: Sequence[str], settings: Settings) -> str:
    """How to load this table under other options for one run (prose and YAML, so markdown)."""
    if not options:
        return ("None: Domo's options (`BOOKER_INCLUDE_EXPIRED`…, or "
                "`ops.booker_reports.config` for one run) change other tables, not this one.")
    example = "\n".join(f"        {name}: {str(not settings.options[name]).lower()}"
                        for name in options)
    return "\n".join(["Every load uses the deployment's settings (set in the environment of "
                      "the code location, e.g. before `make dev`). To override one for one "
                      "run, in *Materialize… → Config → Add config* or the launchpad:", "",
                      "```yaml", "ops:", "  booker_reports:", "    config:", example, "```"])


@dataclass(frozen=True)
class Failed:
    """A report that could not be loaded for a location."""

    report: str
    location: str
    days: list[date]
    error: Exception

    @property
    def transient(self) -> bool:
        return isinstance(self.error, BookerError) and self.error.transient

    def __str__(self) -> str:
        span = f"{self.days[0]}" + (f"..{self.days[-1]}" if len(self.days) > 1 else "")
        return f"{self.report}, location {self.location}, {span}: {self.error}"


def _materialize(
    context: dg.AssetExecutionContext, client: BookerClient, options: dict, settings: Settings,
    now: datetime,
) -> Iterator[dg.Output]:
    selected = set(context.selected_output_names)
    wanted = {g.name: (g, [t for t in g.tables if t.name in selected])
              for g in asking_order(GROUPS)}
    wanted = {name: (group, tables) for name, (group, tables) in wanted.items() if tables}
    slices = days_by_location(context.partition_keys)
    _verify_locations(context, client, [loc for loc in slices if loc])
    replies = _backfill_replies(context, client)
    views = {name: client.view(name, replies) for name in wanted}  # each counts its requests
    if _drift_checked(context, selected):
        client.locations_soon()  # first in the queue: the check reads it after the step
    failed: list[Failed] = []
    # Every fetch runs on the client's one bounded executor, as do their pages and
    # per-parent calls; this thread only waits, and stores each report as it completes.
    fetches = {
        client.executor.submit(extract, views[name], group, tables, location, days,
                               _own(group, options), PiiPolicy.of_settings(settings), now,
                               settings.lookahead_days): (name, location, days)
        for name, (group, tables) in wanted.items() for location, days in slices.items()
    }
    done: dict[str, list[dict[str, ReportFrame]]] = {name: [] for name in wanted}
    names: dict[str, str] = {}
    stored: set[dg.AssetKey] = set()
    for future in as_completed(fetches):
        name, location, days = fetches[future]
        if not _collect(future, done[name], failed, name, location, days, context):
            continue
        if len(done[name]) == len(slices):  # every location of this report is fetched
            group, tables = wanted[name]
            # Named through this report's view: a location whose record no fetch has read yet
            # (a report that needs no zone can finish first) costs a request, and any retry
            # of it is then counted in this report's figures, not lost between reports.
            names = names or _location_names(views[name], slices)
            yield from _outputs(context, tables, done.pop(name), slices, _own(group, options),
                                views[name].stats.snapshot(), names)
            stored.update(dg.AssetKey([GROUP_NAME, t.name]) for t in tables)
    unpublished = _publish(context)
    if failed or unpublished:
        raise _failure(stored, failed, unpublished)


def asking_order(groups: Sequence[ReportGroup]) -> list[ReportGroup]:
    """The order a step submits its reports in, which the client's executor serves them in:
    the reports that fan out per record (most of a run's requests: customers) last, so every
    other report is stored, and its Dagster events written, while they fetch, rather than all
    after the last request (issue 24: 130 s → 45 s from the last request to success)."""
    return sorted(groups, key=lambda group: group.fan_outs)


def _publish(context: dg.AssetExecutionContext) -> BookerError | None:
    """Bring the analysts' read copy up to what this step stored; the error if it could not
    be (a full disk, the file held): the step then fails, since analysts would otherwise read
    the previous copy as if it were this run's."""
    try:
        context.resources.io_manager.store().publish(log=context.log)
    except BookerError as exc:  # said by the step's failure, once
        return exc
    return None


def _failure(stored: set[dg.AssetKey], failed: list[Failed],
             unpublished: BookerError | None) -> "LoadFailed":
    """The step's failure: its first line is what the UI shows first, the cause itself."""
    causes = [str(f) for f in failed]
    if unpublished:
        causes.insert(0, f"the analysts' read copy was not published (it still holds the"
                         f" previous run's data): {unpublished}")
    more = [f"- {cause}" for cause in causes[1:]]
    return LoadFailed(stored, causes[0].splitlines()[0], dg.Failure(
        description="\n".join([causes[0], *([f"{len(more)} more:", *more] if more else []),
                               "The step's other reports were stored." if failed else
                               "The step's reports were stored in the live file."]),
        allow_retries=any(f.transient for f in failed),
        metadata={"booker/failed": [f"{f.report}/{f.location}" for f in failed]},
    ))


def _verify_locations(context: dg.AssetExecutionContext, client: BookerClient,
                      locations: list[str]) -> None:
    """Nothing is fetched for a location Booker does not return (a partition added by hand)."""
    try:
        refusal = refuse_unreturned(client, context.instance, locations)
    except BookerError as exc:
        refusal, retry = f"Booker's list of locations could not be read: {exc}", exc.transient
    else:
        retry = False
    if refusal:
        raise LoadFailed(set(), refusal.split(". Fix:")[0], dg.Failure(
            description=refusal, allow_retries=retry))


@dataclass
class LoadFailed(Exception):
    """Some reports failed: the tables stored anyway, the first cause, the step's failure."""

    stored: set[dg.AssetKey]
    cause: str
    failure: dg.Failure


def _drift_checked(context: dg.AssetExecutionContext, selected: set[str]) -> bool:
    """Whether the run's drift check (on ``booker/locations``) runs after this step: then its
    locations list is asked during the step (``ReportView.locations_soon``)."""
    if LOCATIONS_KEY.path[-1] not in selected:
        return False
    checks = context.run.asset_check_selection  # None: the job's checks of selected assets
    if checks is not None:
        return DRIFT_CHECK_KEY in checks
    return CHECK_OP in {node.name for node in context.job_def.all_node_defs}


def _collect(future: Future, frames: list, failed: list[Failed], name: str, location: str,
             days: list[date], context: dg.AssetExecutionContext) -> bool:
    """Keep a fetch's frames, or log its failure at once (the UI shows it while the other
    reports go on); True when the fetch succeeded."""
    try:
        frames.append(future.result())
        return True
    except Exception as exc:  # noqa: BLE001 - one report's failure, whatever it is, stays in it
        failed.append(Failed(name, location, days, exc))
        context.log.error(f"report failed: {failed[-1]}")
        return False


def _backfill_replies(context: dg.AssetExecutionContext,
                      client: BookerClient) -> SharedReplies | None:
    """The replies this run shares with the other runs of its backfill (None: not in one)."""
    backfill = next((context.run.tags[t] for t in BACKFILL_TAGS if t in context.run.tags), None)
    if not backfill:
        return None
    return SharedReplies(backfill, client.base_url, store=store_for(client.budget))


def _location_names(view: ReportView, slices: Mapping[str, list[date]]) -> dict[str, str]:
    """"1001 Café Lumière Spa & Salon" for the UI; the partition keys stay ids."""
    names = {}
    for location in slices:
        record = view.location(location)
        names[location] = f"{location} {record.get('BusinessName') or ''}".strip()
    return names


def _own(group: ReportGroup, options: Mapping[str, bool]) -> dict:
    """The options this report reads."""
    return {name: options[name] for name in group.options}


def _outputs(context: dg.AssetExecutionContext, tables: list[Table],
             per_location: list[dict[str, ReportFrame]], slices: dict[str, list[date]],
             options: dict, stats: dict, names: Mapping[str, str]) -> Iterator[dg.Output]:
    """Each table's output, its partitions' own figures on each partition, and the run's
    figures once, on its last partition (Dagster copies an output's metadata into every
    partition's event: a month of partitions would carry 31 copies). The report's tables are
    one write: the first output stores them all in one transaction (``ReportWrite``)."""
    all_days = sorted({d for days in slices.values() for d in days})
    write = ReportWrite([
        TableSlice(table.name, _combine([frames[table.name] for frames in per_location]),
                   table.entity_key) for table in tables])
    for table, part in zip(tables, write.slices, strict=True):
        report, key = part.report, dg.AssetKey([GROUP_NAME, part.table])
        shares = _shares(table, report.frame)
        for load in report.loads:
            context.add_asset_metadata(
                _partition_metadata(load, names) | shares.get(_partition_key(load), {}),
                asset_key=key, partition_key=_partition_key(load))
        context.add_asset_metadata({
            "booker/run_partitions": len(report.loads),
            **_no_history(report.loads),
            "booker/run_window": f"{all_days[0]} to {all_days[-1]} (location-local days)",
            "booker/run_locations": ", ".join(slices),
            "booker/run_options": dg.MetadataValue.json(options),
            "booker/run_preview": table_preview(report.frame,
                                                {c.name: c.type for c in report.columns}),
            **{f"booker/run_{name}": value for name, value in _cost(stats).items()},
        }, asset_key=key, partition_key=_partition_key(report.loads[-1]))
        yield dg.Output(TablePart(write, part.table), output_name=part.table)


def table_preview(frame: pd.DataFrame, types: Mapping[str, str], rows: int = 5
                  ) -> dg.TableMetadataValue:
    """The first ``rows`` of ``frame`` as Dagster's table, typed by the declared column
    ``types`` (a column found in the data: its pandas type): a DATE reads 2026-12-05, not
    2026-12-05 00:00:00."""
    head = frame.head(rows)
    kinds = {name: types.get(name) or str(head[name].dtype) for name in head.columns}
    return metadata_table(head.to_dict("records"), kinds)


def _partition_key(load: PartitionLoad) -> str:
    return f"{load.report_date}|{load.location_id}"


def _partition_metadata(load: PartitionLoad, names: Mapping[str, str]) -> dict:
    """What this partition holds: its own rows, Booker's total for it, its own requests."""
    metadata: dict = {"booker/status": load.status}
    if load.status in NOT_OBSERVED:
        # No dagster/row_count: "0 rows" would read as a quiet day; this day was not observed.
        metadata["booker/note"] = NOT_OBSERVED[load.status]
    else:
        metadata["dagster/row_count"] = load.row_count
    metadata.update({
        "booker/rejected": load.rejected,
        "booker/requests": load.requests,
        "booker/location": names.get(str(load.location_id), str(load.location_id)),
    })
    if load.options:  # what these rows mean depends on them (booker._loads keeps them too)
        metadata["booker/loaded_with"] = dg.MetadataValue.json(dict(load.options))
    if load.reported_total is not None:
        metadata["booker/reported_total"] = load.reported_total
    return metadata


def _shares(table: Table, frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per partition key, the share of its rows whose flag is true (``Table.shares``: e.g.
    the no-shows and cancellations of a day's appointments)."""
    if not table.shares or frame.empty:
        return {}
    flags = frame[list(table.shares.values())].fillna(False).astype(bool)
    days = pd.to_datetime(frame["report_date"]).dt.date
    means = flags.groupby([days, frame["location_id"]]).mean()
    return {f"{day}|{location}": {f"booker/share_{name}": round(float(row[column]), 4)
                                  for name, column in table.shares.items()}
            for (day, location), row in means.iterrows()}


# A partition stored empty because nothing was asked of Booker for it: what its note says.
NOT_OBSERVED = {
    "no_history": "Not observed: Booker keeps no history of this list, so a day that can no "
    "longer be observed gets no rows, rather than today's list (not a day with 0 records)",
    "option_off": "Not asked: this table is loaded only with its option on (see "
    "booker/loaded_with)",
}


def _no_history(loads: list[PartitionLoad]) -> dict[str, str]:
    """The run's partitions stored without rows because Booker keeps no history, if any."""
    days = sorted({load.report_date for load in loads if load.status == "no_history"})
    if not days:
        return {}
    count = sum(load.status == "no_history" for load in loads)
    return {"booker/run_no_history": f"{count} of {len(loads)} partitions not observed "
            f"(days {days[0]}..{days[-1]}): Booker keeps no history of this list"}


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
        rejects=[r for f in frames for r in f.rejects],
        columns=frames[0].columns,
    )
