"""``make demo``: the main job, as a range run of every report for the last N days and
every configured location (the embedded sandbox unless credentials are set), then a row count
per DuckDB table.

The terminal shows a line per table as it is stored (its rows and requests) and a bar, then the
summary; Dagster's event stream, DEBUG included, goes to a log file the summary names.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from booker_assets.catalogue.reports import GROUPS, TABLES
from booker_assets.definitions import build_definitions, deployed_settings
from booker_assets.defs.partitions import RANGE_END, RANGE_START
from booker_assets.defs.runs import reap_unwatched_runs, worker_tags
from booker_assets.defs.storage import connect_locked, qualified

DEMO_TAG = "booker/demo"
# The run's own console logger shows errors only: the rest is in the log file.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
POLL_SECONDS = 0.3
TABLES_REPORT = {table.name: group.name for group in GROUPS for table in group.tables}


def materialize_range(
    defs: dg.Definitions,
    locations: Sequence[str],
    first: date,
    last: date,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: Sequence[str] | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    tags: dict[str, str] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Days ``first``..``last`` × ``locations`` in one run (a backfill run over a key range),
    the asset checks of what it loads evaluated after the load.

    The run is executed here, so it records this process (``worker_tags``): if the process is
    killed, the reaper (defs/runs.py) marks the run failed and frees its slots."""
    return [dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=defs.resources,
        instance=instance,
        run_config=run_config,
        tags={**(tags or {}), RANGE_START: f"{first}|{locations[0]}",
              RANGE_END: f"{last}|{locations[-1]}", **worker_tags()},
        raise_on_error=raise_on_error,
    )]


def table_counts(database: str) -> dict[str, int]:
    with connect_locked(database, read_only=True) as conn:
        return {name: conn.execute(f"select count(*) from {qualified(conn, name)}").fetchone()[0]
                for name in TABLES}


@dataclass
class Tally:
    """What the run's events said so far: per table, partitions stored and rows; per table,
    the requests of its report (a report's tables share its fetch, e.g. orders and items)."""

    partitions: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    checks: Counter[bool] = field(default_factory=Counter)
    failed_checks: list[str] = field(default_factory=list)

    def add(self, event: dg.DagsterEvent) -> str | None:
        """Count a materialization or a check result; the table's name when it is one."""
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            table = materialization.asset_key.path[-1]
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            self.partitions[table] += 1
            self.rows[table] += int(metadata.get("dagster/row_count", 0))
            # the run's figures ride on one partition of each table (assets.py _outputs)
            self.requests[table] += int(metadata.get("booker/run_requests", 0))
            return table
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            self.checks[evaluation.passed] += 1
            if not evaluation.passed:
                self.failed_checks.append(
                    f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}")
        return None


def _log_line(entry: dg.EventLogEntry) -> str:
    stamp = datetime.fromtimestamp(entry.timestamp).astimezone().isoformat(timespec="seconds")
    kind = entry.dagster_event.event_type.name if entry.dagster_event else "LOG"
    return (f"{stamp} - {logging.getLevelName(entry.level)} - {entry.step_key or '-'} - "
            f"{kind} - {entry.message}\n")


class Watcher:
    """Follows the demo's run in the instance (by its tag) from a thread: every event to the
    log file, a line per table once all its partitions are stored, the bar."""

    def __init__(self, instance: dg.DagsterInstance, token: str, partitions_per_table: int,
                 log: TextIO, progress: Progress) -> None:
        self.instance, self.token, self.log, self.progress = instance, token, log, progress
        self.per_table = partitions_per_table
        self.tally = Tally()
        self.bar = progress.add_task("tables stored", total=len(TABLES))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo-watcher", daemon=True)
        self._run_id: str | None = None
        self._cursor: str | None = None

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()  # whatever came after the last poll

    def _follow(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self._read()

    def _read(self) -> None:
        if self._run_id is None:
            runs = self.instance.get_runs(dg.RunsFilter(tags={DEMO_TAG: self.token}), limit=1)
            if not runs:
                return
            self._run_id = runs[0].run_id
        while True:
            batch = self.instance.get_records_for_run(self._run_id, cursor=self._cursor,
                                                      limit=500)
            self._cursor = batch.cursor
            for record in batch.records:
                self._show(record.event_log_entry)
            if not batch.has_more:
                return

    def _show(self, entry: dg.EventLogEntry) -> None:
        self.log.write(_log_line(entry))
        if entry.dagster_event is None:
            return
        table = self.tally.add(entry.dagster_event)
        if table and self.tally.partitions[table] == self.per_table:
            self.progress.console.print(
                f"  stored booker.{table:<22} {self.tally.rows[table]:>8,} rows   "
                f"report {TABLES_REPORT[table]}: {self.tally.requests[table]:,} requests")
            self.progress.advance(self.bar)


@contextmanager
def _instance() -> Iterator[dg.DagsterInstance]:
    """``$DAGSTER_HOME``'s instance (``make demo``: the UI of ``make dev`` then shows the run),
    else one in a temporary directory."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.local_temp() as instance:
            yield instance


def summary(counts: dict[str, int], tally: Tally) -> Table:
    table = Table(title="What DuckDB holds", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("this run: rows", justify="right")
    table.add_column("report's requests", justify="right")
    for name, count in counts.items():
        table.add_row(f"booker.{name}", f"{count:,}", f"{tally.rows[name]:,}",
                      f"{tally.requests[name]:,}")
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m booker_assets.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=7, help="days back from yesterday (7)")
    parser.add_argument("--log", type=Path, default=None,
                        help="Dagster's event log (default: demo.log beside the database)")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error(f"--days {args.days}: load at least 1 day, e.g. --days 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = deployed_settings()
    console = Console(highlight=False, soft_wrap=True)  # a line stays one line in a log
    log_path = args.log or Path(settings.duckdb_path).parent / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last = date.today() - timedelta(days=1)
    first = max(last - timedelta(days=args.days - 1), settings.start_date)
    days = (last - first).days + 1
    source = "the embedded Booker sandbox" if settings.use_sandbox else "the Booker API"
    console.print(f"Loading {days} days ({first} to {last}) × locations "
                  f"{', '.join(settings.location_ids)} from {source} into {settings.duckdb_path}")
    token = uuid.uuid4().hex
    started = time.perf_counter()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    with _instance() as instance, log_path.open("w") as log, progress, Watcher(
            instance, token, days * len(settings.location_ids), log, progress) as watcher:
        # With no daemon running, nothing else frees what a killed earlier demo still holds.
        for run_id in reap_unwatched_runs(instance):
            console.print(f"Marked dead run {run_id} failed and freed its pool slots")
        result = materialize_range(
            build_definitions(settings), settings.location_ids, first, last, instance=instance,
            run_config=QUIET, raise_on_error=False, tags={DEMO_TAG: token})[0]
    tally = watcher.tally
    console.print(summary(table_counts(settings.duckdb_path), tally))
    console.print(f"Checks: {tally.checks[True]} passed, {tally.checks[False]} failed"
                  + "".join(f"\n  failed: {name}" for name in tally.failed_checks))
    outcome = "Done" if result.success else "FAILED (the cause is in the log)"
    console.print(f"{outcome} in {time.perf_counter() - started:.1f} s. Dagster's event log: "
                  f"{log_path}. See it all in the UI: make dev")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
