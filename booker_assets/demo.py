"""``make demo``: every report for the last N days and every location Booker returns (the
embedded sandbox unless credentials are set), one run for every location and up to 31 days
(``range_slices``: each run repeats Dagster's fixed work), then the salon metrics over
them (dbt, defs/metrics.py), then what the warehouse holds and each location's last days of
sales, read where analysts read (the DuckDB file's read copy, or the DuckLake).

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
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from booker_assets.catalogue.reports import GROUPS, TABLES
from booker_assets.cli import seed_locations
from booker_assets.definitions import build_definitions, deployed_settings
from booker_assets.defs.backfill import range_slices, run_slices
from booker_assets.defs.metrics import metrics_definitions
from booker_assets.defs.partitions import LOCATIONS_PARTITIONS
from booker_assets.defs.storage import (
    BookerStorageError,
    Warehouse,
    qualified,
    warehouse_of,
)
from booker_assets.errors import BookerConfigError, BookerError
from booker_assets.settings import Settings

DEMO_TAG = "booker/demo"
# The run's own console logger prints nothing (an error with its stack runs to hundreds of
# lines): the terminal gets each warning's and failure's first line (``Watcher``), the log file
# everything.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
POLL_SECONDS = 0.3
SUMMARY_DAYS = 7  # the last loaded days the per-location summary adds up
_SKIPPED = "Dependencies for step "
TABLES_REPORT = {table.name: group.name for group in GROUPS for table in group.tables}
NAME_WIDTH = max(map(len, TABLES_REPORT))  # the stored lines' columns line up


def table_counts(warehouse: Warehouse) -> dict[str, int]:
    """Rows per table the read path holds (a table no run has stored yet is not listed)."""
    with warehouse.connect_reader() as conn:
        stored = {name for (name,) in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            " AND schema_name = 'booker'").fetchall()}
        return {name: conn.execute(f"select count(*) from {qualified(conn, name)}").fetchone()[0]
                for name in TABLES if name in stored}


@dataclass
class Tally:
    """What the runs' events said so far: per table, partitions stored and rows; per table,
    the requests of its report (a report's tables share its fetch, e.g. orders and items);
    each check's latest result (with several runs, an early run's check sees the locations
    still to come as missing)."""

    partitions: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    latest_checks: dict[str, bool] = field(default_factory=dict)

    @property
    def checks(self) -> Counter[bool]:
        return Counter(self.latest_checks.values())

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, passed in self.latest_checks.items() if not passed]

    def add(self, event: dg.DagsterEvent) -> str | None:
        """Count a materialization or a check result; the table's name when it is one."""
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            table = materialization.asset_key.path[-1]
            if table not in TABLES_REPORT:  # a metric: not a table the loads store
                return None
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            self.partitions[table] += 1
            self.rows[table] += int(metadata.get("dagster/row_count", 0))
            # the run's figures ride on one partition of each table (assets.py _outputs)
            self.requests[table] += int(metadata.get("booker/run_requests", 0))
            return table
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}"
            self.latest_checks[name] = evaluation.passed
        return None


def _log_line(entry: dg.EventLogEntry) -> str:
    stamp = datetime.fromtimestamp(entry.timestamp).astimezone().isoformat(timespec="seconds")
    kind = entry.dagster_event.event_type.name if entry.dagster_event else "LOG"
    return (f"{stamp} - {logging.getLevelName(entry.level)} - {entry.step_key or '-'} - "
            f"{kind} - {entry.message}\n")


class Watcher:
    """Follows the demo's runs in the instance (by their tag) from a thread: every event to the
    log file, a line per table once all its partitions are stored, the bar."""

    def __init__(self, instance: dg.DagsterInstance, token: str, partitions_per_table: int,
                 log: TextIO, progress: Progress) -> None:
        self.instance, self.token, self.log, self.progress = instance, token, log, progress
        self.per_table = partitions_per_table
        self.tally = Tally()
        self.bar = progress.add_task("tables stored", total=len(TABLES))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo-watcher", daemon=True)
        self._cursors: dict[str, str | None] = {}  # run id -> where its events were read to
        self._said: list[str] = []  # the warnings and failures shown on the terminal

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
        runs = self.instance.get_runs(dg.RunsFilter(tags={DEMO_TAG: self.token}))
        for run in sorted(runs, key=lambda r: r.run_id not in self._cursors):
            self._cursors.setdefault(run.run_id, None)
        for run_id in self._cursors:
            while True:
                batch = self.instance.get_records_for_run(
                    run_id, cursor=self._cursors[run_id], limit=500)
                self._cursors[run_id] = batch.cursor
                for record in batch.records:
                    self._show(record.event_log_entry)
                if not batch.has_more:
                    break

    def _show(self, entry: dg.EventLogEntry) -> None:
        self.log.write(_log_line(entry))
        said = _first_line(entry)
        if said and not any(said in line for line in self._said):  # one cause, once
            self._said.append(said)
            self.progress.console.print(f"  {said}", markup=False)
        if entry.dagster_event is None:
            return
        table = self.tally.add(entry.dagster_event)
        if table and self.tally.partitions[table] == self.per_table:
            self.progress.console.print(
                f"  stored booker.{table:<{NAME_WIDTH}} {self.tally.rows[table]:>8,} rows   "
                f"report {TABLES_REPORT[table]}: {self.tally.requests[table]:,} requests")
            self.progress.advance(self.bar)


def _first_line(entry: dg.EventLogEntry) -> str | None:
    """What the terminal shows of an entry: a warning's or error's first line (a load waiting
    for a held file, a failed report), a failed step's cause; None for the rest."""
    event = entry.dagster_event
    if event is None:
        lines = entry.user_message.splitlines()
        # Dagster's "Dependencies for step X failed" follows a failure already shown
        if entry.level < logging.WARNING or not lines or lines[0].startswith(_SKIPPED):
            return None
        return f"{logging.getLevelName(entry.level).lower()}: {lines[0]}"
    if not event.is_step_failure:
        return None
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        text = data.user_failure_data.description
    else:  # an exception: its innermost cause says what happened
        error = data.error
        while error.cause is not None:
            error = error.cause
        text = error.message
    return f"failed: {text.splitlines()[0]}"


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
    table.add_column("table", no_wrap=True)  # a name cut short could not be read, or copied
    table.add_column("rows", justify="right")
    table.add_column("this run: rows", justify="right")
    table.add_column("report's requests", justify="right")
    for name, count in counts.items():
        table.add_row(f"booker.{name}", f"{count:,}", f"{tally.rows[name]:,}",
                      f"{tally.requests[name]:,}")
    return table


def read_back(warehouse: Warehouse, tally: Tally, console: Console) -> None:
    """The summary, read from the file (or lake) it names; a stale copy is said to be one,
    before its counts, and a missing one is not counted at all."""
    console.print(f"Read from {warehouse.reads_from}", markup=False)
    stale = warehouse.stale()
    if stale:
        console.print(f"STALE: {stale}", markup=False)
    try:
        counts = table_counts(warehouse)
    except BookerStorageError as exc:
        if not stale:  # else it is said already
            console.print(f"Nothing to read: {exc}", markup=False)
        return
    console.print(summary(counts, tally))


def build_metrics(settings: Settings, instance: dg.DagsterInstance, tags: dict[str, str]
                  ) -> bool:
    """The salon metrics over what was loaded (dbt, defs/metrics.py), as a run the Watcher
    follows (its dbt tests are checks); whether it succeeded."""
    metrics = metrics_definitions(settings)
    return dg.materialize(metrics.assets, resources=metrics.resources, instance=instance,
                          run_config=QUIET, tags=tags, raise_on_error=False).success


# The summary's query: each location's last {days} days with loaded orders, from the marts.
MARTS = ("location_day_sales", "location_day_appointments", "employee_day_utilization",
         "room_day_utilization")
SUMMARY_SQL = """
    with last as (
        select * from {location_day_sales}
        where orders_loaded  -- not a day with only a refund of an older order
        qualify row_number() over (partition by location_id order by sales_date desc)
                <= {days}),
    sales as (
        select location_id, count(*) as days, sum(orders) as orders,
               sum(net_sales) as net_sales,
               sum(average_ticket * orders) / nullif(sum(orders), 0) as ticket,
               sum(refunds) as refunds
        from last group by all),
    appointments as (
        select a.location_id, sum(a.booked) as booked, sum(a.no_shows) as no_shows,
               sum(a.checkouts) as checkouts, sum(a.rebooked) as rebooked
        from {location_day_appointments} as a
        join last as l
          on l.location_id = a.location_id and l.sales_date = a.appointment_date
        group by all),
    staff as (
        select u.location_id,
               sum(u.booked_minutes) / nullif(sum(u.scheduled_minutes), 0) as staff
        from {employee_day_utilization} as u
        join last as l on l.location_id = u.location_id and l.sales_date = u.work_date
        group by all),
    rooms as (
        select u.location_id,
               sum(u.booked_minutes) / nullif(sum(u.available_minutes), 0) as rooms
        from {room_day_utilization} as u
        join last as l on l.location_id = u.location_id and l.sales_date = u.room_date
        where u.available_minutes is not null
        group by all)
    select s.location_id, s.days, s.orders, s.net_sales, s.ticket, s.refunds,
           a.booked, a.no_shows, a.checkouts, a.rebooked, t.staff, r.rooms
    from sales as s
    left join appointments as a using (location_id)
    left join staff as t using (location_id)
    left join rooms as r using (location_id)
    order by all"""


def location_summary(warehouse: Warehouse) -> tuple[Table, Table]:
    """Each location's last SUMMARY_DAYS days with loaded orders, from the marts: its sales
    (the average ticket: the days' tickets weighted by their orders), then its appointments'
    no-shows and rebooked checkouts and the staff's and rooms' utilization (Σ booked ÷ Σ
    available minutes of those days). Two tables: each fits a terminal of 80 columns."""
    with warehouse.connect_reader() as conn:
        rows = conn.execute(SUMMARY_SQL.format(days=SUMMARY_DAYS, **{
            name: qualified(conn, name, "metrics") for name in MARTS})).fetchall()
    sales = _table(f"Sales, each location's last {SUMMARY_DAYS} loaded days at most "
                   "(metrics.location_day_sales)",
                   ("location", "days", "orders", "net sales", "avg ticket", "refunds"))
    visits = _table("Their appointments and utilization (metrics.location_day_appointments, "
                    "employee_day_utilization, room_day_utilization)",
                    ("location", "no-shows", "rebooked", "staff util", "room util"))
    for (location, days, orders, net, ticket, refunds, booked, no_shows, checkouts, rebooked,
         staff, rooms) in rows:
        sales.add_row(str(location), str(days), f"{orders:,}", f"{net:,.2f}",
                      _or_blank(ticket, ",.2f"), f"{refunds:,.2f}")
        visits.add_row(str(location), _share(no_shows, booked), _share(rebooked, checkouts),
                       _or_blank(staff, ".0%"), _or_blank(rooms, ".0%"))
    return sales, visits


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="left" if name == "location" else "right")
    return table


def _or_blank(value: object, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _share(part: int | None, whole: int | None) -> str:
    """``part/whole``: blank when there is nothing to count (no appointments loaded)."""
    return f"{part:,}/{whole:,}" if whole else ""


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
    try:
        return demo(args)
    except BookerError as exc:  # a bad setting, an unusable file: its message, no traceback
        print(f"booker-assets demo: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BookerConfigError) else 1


def demo(args: argparse.Namespace) -> int:
    settings = deployed_settings()
    # a line stays one line in a log; the terminal's stdout, even while dbt's goes to the log
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    log_path = args.log or Path(settings.duckdb_path).parent / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last = date.today() - timedelta(days=1)
    first = max(last - timedelta(days=args.days - 1), settings.start_date)
    days = (last - first).days + 1
    source = "the embedded Booker sandbox" if settings.use_sandbox else "the Booker API"
    token = uuid.uuid4().hex
    started = time.perf_counter()
    with _instance() as instance:
        locations = seed_locations(instance, settings)
        console.print(f"Loading {days} days ({first} to {last}) × locations "
                      f"{', '.join(locations)} from {source} into {warehouse_of(settings)}")
        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        with log_path.open("w") as log, progress, Watcher(
                instance, token, days * len(locations), log, progress) as watcher:
            slices = range_slices(instance.get_dynamic_partitions(LOCATIONS_PARTITIONS),
                                  locations, first, last)
            runs = list(run_slices(build_definitions(settings), instance, slices,
                                   run_config=QUIET, tags={DEMO_TAG: token}))
            with redirect_stdout(log):  # dagster-dbt echoes dbt's own log lines on stdout
                built = build_metrics(settings, instance, {DEMO_TAG: token})
    failed = [str(piece) for piece, result in runs if not result.success]
    failed += [] if built else ["the metrics (dbt build)"]
    tally = watcher.tally
    read_back(warehouse_of(settings), tally, console)
    if built:
        console.print(*location_summary(warehouse_of(settings)))
    console.print(f"Checks: {tally.checks[True]} passed, {tally.checks[False]} failed"
                  + "".join(f"\n  failed: {name}" for name in tally.failed_checks))
    outcome = ("Done" if not failed else
               f"FAILED: {'; '.join(failed)} (the causes are above, the details in the log)")
    console.print(f"{outcome} in {time.perf_counter() - started:.1f} s. Dagster's event log: "
                  f"{log_path}. See it all in the UI: make dev")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
