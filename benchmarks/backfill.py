"""``make bench``: a backfill of every Booker report against a rate-limited sandbox.

Backfills D days × L locations in the runs Dagster's backfill daemon makes of it (``--planner
dagster``, the default: its planner applies the assets' backfill policy, cutting by whichever
dimension has fewer keys, as a UI backfill is cut) or in those ``booker-assets backfill`` makes
(``--planner cli``: a run per location and up to 31 days), into a fresh DuckDB file, and prints
one table: wall time, requests, rows, the rate-limit and latency bounds, the naive way (one run
per partition, one request in flight) and where the time went.

Each run is a fresh process, as the run launcher makes it, and two run at once: dagster.yaml's
``dagster/backfill`` run limit and ``booker_api`` pool slots. Their clients share the host's one
token bucket (ratelimit.py), paced at the whole budget. The sandbox runs in a child process too,
like a remote API, so its CPU and memory are not counted as ours.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import requests
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey

from booker_assets.api.client import BookerResource
from booker_assets.catalogue.reports import TABLES
from booker_assets.definitions import build_definitions
from booker_assets.defs import assets as assets_module
from booker_assets.defs import io_manager as io_module
from booker_assets.defs.backfill import location_slices
from booker_assets.defs.partitions import add_locations
from booker_assets.defs.storage import connect_locked
from booker_assets.load import extract as extract_module
from booker_assets.settings import Settings
from booker_sandbox import BookerSandbox, SandboxSettings

FIRST_DAY = date(2025, 1, 1)
RUN_SLOTS = 2  # dagster.yaml: backfill runs at once, and booker_api pool slots
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ----- the sandbox, in a child process -----------------------------------------------------------

def _serve(settings: SandboxSettings, conn: Connection) -> None:
    with BookerSandbox(settings) as sandbox:
        conn.send((sandbox.url, sandbox.credentials, sandbox.location_ids))
        while conn.recv() == "stats":
            stats = sandbox.stats
            conn.send({"requests": stats.requests, "throttled": stats.throttled,
                       "by_route": dict(stats.by_route),
                       "per_second": dict(stats.per_second),
                       "throttled_per_second": dict(stats.throttled_per_second)})


class RemoteSandbox:
    """A ``BookerSandbox`` in a child process, asked for its request counters over a pipe."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.target: Target
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(settings, child), daemon=True)
        self._process.start()
        url, credentials, location_ids = self._conn.recv()
        self.target = Target(url, credentials, tuple(str(loc) for loc in location_ids))

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


# ----- cheap instrumentation: intervals of our own code, everything else is Dagster's -----------

@dataclass
class Timeline:
    """Thread-safe (kind, start, end) intervals, and rows written per table."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    written: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, owner: Any, name: str, kind: str) -> Callable[[], None]:
        """Time every call of ``owner.name``; returns the undo."""
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.spans[kind].append((started, time.perf_counter()))

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def wrap_writes(self) -> Callable[[], None]:
        """Each table's part of its report's transaction (the commit, shared by the report's
        tables, is not counted in any)."""
        original = io_module._write_table

        def timed(conn: Any, schema: str, part: Any) -> Any:
            started = time.perf_counter()
            result = original(conn, schema, part)
            with self.lock:
                self.written[part.table].append((len(part.report.frame),
                                                 time.perf_counter() - started))
            return result

        io_module._write_table = timed
        return lambda: setattr(io_module, "_write_table", original)

    def busy(self, *kinds: str, start: float = 0.0) -> float:
        """Wall seconds during which at least one span of ``kinds`` was running."""
        spans = sorted(s for kind in kinds for s in self.spans[kind] if s[0] >= start)
        total, reach = 0.0, 0.0
        for begin, end in spans:
            if end > reach:
                total += end - max(begin, reach)
                reach = end
        return total

    def summed(self, kind: str) -> float:
        return sum(end - begin for begin, end in self.spans[kind])


@contextmanager
def instrumented(timeline: Timeline) -> Iterator[Timeline]:
    undo = [
        timeline.wrap(requests.Session, "send", "http"),  # the wire only, not the limiter
        timeline.wrap(assets_module, "extract", "extract"),
        timeline.wrap(extract_module, "flatten", "flatten"),
        timeline.wrap(extract_module, "build_frame", "flatten"),
        timeline.wrap(io_module.BookerDuckDBIOManager, "handle_output", "duckdb"),
        timeline.wrap_writes(),
    ]
    try:
        yield timeline
    finally:
        for restore in reversed(undo):
            restore()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# ----- the backfill --------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    days: int
    locations: int
    latency_ms: float
    rate: float
    burst: int
    in_flight: int
    planner: str  # "dagster" (the daemon's cut, as the UI's backfills) or "cli"

    @property
    def last_day(self) -> date:
        return FIRST_DAY + timedelta(days=self.days - 1)


def sandbox_settings(plan: Plan) -> SandboxSettings:
    now = datetime.combine(plan.last_day + timedelta(days=2), datetime.min.time(), timezone.utc)
    return SandboxSettings(location_count=plan.locations, start_date=FIRST_DAY,
                           end_date=plan.last_day, now=now, latency_ms=plan.latency_ms,
                           rate_per_second=plan.rate, burst=plan.burst)


@dataclass(frozen=True)
class Target:
    """What a run's process needs to reach the sandbox (a RemoteSandbox does not pickle)."""

    url: str
    credentials: dict[str, str]
    locations: tuple[str, ...]


def definitions(target: Target, plan: Plan, database: Path, in_flight: int) -> dg.Definitions:
    settings = Settings(use_sandbox=False, allowed_locations=target.locations,
                        start_date=FIRST_DAY, duckdb_path=str(database), lookback_days=7,
                        grace_hours=2.0, catch_up_days=3, pii="keep")
    booker = BookerResource(base_url=target.url, **target.credentials,
                            requests_per_second=plan.rate, burst=plan.burst,
                            max_in_flight=in_flight)
    return build_definitions(settings, booker)


def backfill_runs(target: Target, plan: Plan, database: Path) -> list[tuple[list[str], dict]]:
    """The runs of every asset × every partition of the plan, (asset keys, range tags) each:
    as Dagster's backfill daemon cuts them (its own planner, applying the assets' backfill
    policy), or as ``booker-assets backfill`` does."""
    defs = definitions(target, plan, database, plan.in_flight)
    if plan.planner == "cli":
        every = [key.to_user_string() for asset in defs.assets for key in asset.keys]
        return [(every, piece.tags)
                for piece in location_slices(target.locations, FIRST_DAY, plan.last_day)]
    graph = defs.resolve_asset_graph()
    last = plan.last_day.isoformat()
    with dg.DagsterInstance.ephemeral() as instance:
        add_locations(instance, target.locations)
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            wanted = [AssetKeyPartitionKey(key, partition)
                      for asset in defs.assets for key in asset.keys
                      for partition in asset.partitions_def.get_partition_keys()
                      if partition[:10] <= last]
            requests = build_run_requests_with_backfill_policies(wanted, graph, instance)
    return [([key.to_user_string() for key in r.asset_selection], dict(r.tags))
            for r in requests]


def instance_home(database: Path) -> Path:
    """The backfill's Dagster instance (runs, events): on disk beside its DuckDB file."""
    home = database.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    return home


def one_run(target: Target, plan: Plan, database: Path, selection: list[str],
            tags: dict) -> dict[str, Any]:
    """One backfill run, in its own process: its timeline, rows written and peak memory."""
    defs = definitions(target, plan, database, plan.in_flight)
    assets = [a for a in defs.assets if any(k.to_user_string() in selection for k in a.keys)]
    timeline = Timeline()
    with dg.DagsterInstance.local_temp(str(instance_home(database))) as instance, \
            instrumented(timeline):
        started = time.perf_counter()
        dg.materialize(assets, selection=selection, resources=defs.resources,
                       instance=instance, run_config=QUIET, tags=tags)
        ended = time.perf_counter()
    return {"spans": dict(timeline.spans), "written": dict(timeline.written),
            "started": started, "ended": ended, "peak_rss_mb": peak_rss_mb()}


def backfill(target: Target, plan: Plan, database: Path,
             runs: list[tuple[list[str], dict]]) -> list[dict[str, Any]]:
    """The backfill's runs, RUN_SLOTS at a time, each in a fresh process, tagged as Dagster's
    daemon tags a backfill's runs (its runs share what no partition day shapes)."""
    with dg.DagsterInstance.local_temp(str(instance_home(database))) as instance:
        add_locations(instance, target.locations)
    backfill_id = {"dagster/backfill": f"bench-{time.time_ns()}"}
    runs = [(selection, {**tags, **backfill_id}) for selection, tags in runs]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(RUN_SLOTS, mp_context=spawn, max_tasks_per_child=1) as pool:
        futures = [pool.submit(one_run, target, plan, database, selection, tags)
                   for selection, tags in runs]
        return [future.result() for future in futures]


def naive_run(target: Target, plan: Plan, database: Path, partition_key: str) -> None:
    """One run for one "date|location" partition, one request in flight."""
    defs = definitions(target, plan, database, in_flight=1)
    with dg.DagsterInstance.ephemeral() as instance:
        add_locations(instance, target.locations)
        dg.materialize(defs.assets, partition_key=partition_key, resources=defs.resources,
                       instance=instance, run_config=QUIET)


def rows_loaded(database: Path) -> dict[str, int]:
    with connect_locked(str(database), read_only=True) as conn:
        return {name: conn.execute(f"select count(*) from booker.{name}").fetchall()[0][0]
                for name in TABLES}


# ----- measuring -----------------------------------------------------------------------------

def merged(runs: list[dict[str, Any]]) -> Timeline:
    """All runs' spans on one clock (perf_counter is the host's monotonic clock on Linux)."""
    timeline = Timeline()
    for run in runs:
        for kind, spans in run["spans"].items():
            timeline.spans[kind].extend(spans)
        for table, writes in run["written"].items():
            timeline.written[table].extend(writes)
    return timeline


def measure_backfill(sandbox: RemoteSandbox, plan: Plan, work: Path) -> dict[str, Any]:
    before = sandbox.stats()
    planned = backfill_runs(sandbox.target, plan, work / "backfill.duckdb")
    started = time.perf_counter()
    runs = backfill(sandbox.target, plan, work / "backfill.duckdb", planned)
    wall = time.perf_counter() - started
    after = sandbox.stats()
    timeline = merged(runs)
    requests = after["requests"] - before["requests"]
    rows = rows_loaded(work / "backfill.duckdb")
    items = timeline.written["orders_items"]
    location_days = plan.days * plan.locations
    asked = {route_label(route): n - before["by_route"].get(route, 0)
             for route, n in after["by_route"].items()}
    rate_bound = requests / plan.rate
    latency_bound = requests * plan.latency_ms / 1000 / plan.in_flight
    window = {s: n for s, n in after["per_second"].items()
              if s >= int(time.time() - wall) and s not in before["per_second"]}
    return {
        "wall_s": wall,
        "runs": len(runs),
        "requests": requests,
        "requests_per_location_day": requests / location_days,
        "per_location_day_by_route": {route: n / location_days
                                      for route, n in sorted(asked.items()) if n},
        "duckdb_mb": (work / "backfill.duckdb").stat().st_size / 1e6,
        "instance_mb": sum(f.stat().st_size for f in instance_home(work / "backfill.duckdb")
                           .rglob("*") if f.is_file()) / 1e6,
        "throttled": after["throttled"] - before["throttled"],
        "max_requests_in_a_second": max(window.values(), default=0),
        "rows": sum(rows.values()),
        "rows_by_table": rows,
        "rows_per_s": sum(rows.values()) / wall,
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "bound_rate_s": rate_bound,
        "bound_latency_s": latency_bound,
        "wall_over_bound": wall / max(rate_bound, latency_bound),
        "http_busy_s": timeline.busy("http", start=started),
        "http_request_s": timeline.summed("http"),
        "flatten_s": timeline.summed("flatten"),
        "duckdb_s": timeline.summed("duckdb"),
        "dagster_overhead_s": wall - timeline.busy("extract", "duckdb", start=started),
        "dagster_summed_s": sum(run["ended"] - run["started"]
                                - merged([run]).busy("extract", "duckdb") for run in runs),
        "run_startup_s": min(run["started"] for run in runs) - started,
        "orders_items_rows_per_s": sum(n for n, _ in items) / max(sum(s for _, s in items), 1e-9),
        "orders_items_rows_per_write": sum(n for n, _ in items) / max(len(items), 1),
    }


def route_label(route: str) -> str:
    """"POST /v4.1/merchant/orders" → "orders (find)"; tokens by their grant."""
    method, path = route.split(" ", 1)
    if path.startswith("/v5/auth/"):
        return {"/v5/auth/connect/token": "brand token",
                "/v5/auth/context/update": "location token"}.get(path, path)
    name = path.removeprefix("/v4.1/merchant/")
    return f"{name} ({'find' if method == 'POST' else 'get'})"


def measure_projection(target: Target, plan: Plan, work: Path, days: int) -> dict[str, Any]:
    """What Dagster's planner makes of ``days`` × the plan's locations (runs, seconds to plan,
    this process's peak memory after), without running them."""
    started = time.perf_counter()
    runs = backfill_runs(target, replace(plan, days=days), work / "projection.duckdb")
    return {"project_days": days, "project_runs": len(runs),
            "project_plan_s": time.perf_counter() - started,
            "project_plan_rss_mb": peak_rss_mb()}


def measure_bulk_load(source: Path, work: Path, rows: int = 100_000) -> dict[str, Any]:
    """The IO manager's write of one large orders_items slice (a long range, many locations):
    the backfill's rows, copied under made-up location ids up to ``rows``, replacing a slice."""
    with connect_locked(str(source), read_only=True) as conn:
        items = conn.execute("SELECT * FROM booker.orders_items").fetchdf()
    copies = max(1, -(-rows // max(len(items), 1)))
    frame = pd.concat([items.assign(location_id=items["location_id"] + 100_000 * (i + 1))
                       for i in range(copies)], ignore_index=True)
    counts = frame.groupby(["report_date", "location_id"]).size()
    report = io_module.ReportFrame(frame, list(counts.index), [
        io_module.PartitionLoad(day, loc, int(n)) for (day, loc), n in counts.items()])
    database = str(work / "bulk.duckdb")
    seconds = []
    for _ in range(6):  # the first creates the table, the others replace the slice
        with connect_locked(database) as conn:
            started = time.perf_counter()
            io_module.write_slice(conn, "booker", "orders_items", report)
            seconds.append(time.perf_counter() - started)
    replace = statistics.median(seconds[1:])
    return {"bulk_rows": len(frame), "bulk_partitions": len(counts),
            "bulk_replace_s": replace, "bulk_rows_per_s": len(frame) / replace}


def measure_naive(sandbox: RemoteSandbox, plan: Plan, work: Path, sample_days: int
                  ) -> dict[str, Any]:
    """The naive way on ``sample_days`` days (all locations), extrapolated to the whole range:
    one run per partition, one after the other, in this process (no launch cost), then again
    with a fresh process per run, as Dagster's run launcher starts every run."""
    step = max(1, plan.days // sample_days)
    sample = [FIRST_DAY + timedelta(days=i) for i in range(0, plan.days, step)][:sample_days]
    keys = [f"{day}|{loc}" for day in sample for loc in sandbox.target.locations]
    scale = plan.days / len(sample)
    result: dict[str, Any] = {"sampled_days": len(sample), "runs": plan.days * plan.locations}
    spawn = multiprocessing.get_context("spawn")
    for mode in ("in_process", "launched"):
        database = work / f"naive_{mode}.duckdb"
        before, started = sandbox.stats(), time.perf_counter()
        if mode == "in_process":
            for key in keys:
                naive_run(sandbox.target, plan, database, key)
        else:
            with ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as pool:
                for key in keys:
                    pool.submit(naive_run, sandbox.target, plan, database, key).result()
        wall = time.perf_counter() - started
        requests = sandbox.stats()["requests"] - before["requests"]
        result |= {f"{mode}_sampled_wall_s": wall, f"{mode}_wall_s": wall * scale,
                   "requests": round(requests * scale)}
    return result


# ----- output --------------------------------------------------------------------------------

def table(plan: Plan, fast: dict[str, Any], naive: dict[str, Any] | None) -> str:
    wall = fast["wall_s"]

    def share(seconds: float) -> str:
        return f"{seconds:8.1f} s  ({seconds / wall:4.0%} of wall)"

    lines = [
        ("range", f"{plan.days} days × {plan.locations} locations, latency {plan.latency_ms:g} ms,"
                  f" {plan.rate:g} req/s burst {plan.burst}, {plan.in_flight} in flight"),
        ("runs", f"{fast['runs']:8d}  (cut by the {plan.planner} planner, a process each,"
                 f" {RUN_SLOTS} at once)"),
        ("wall time", f"{wall:8.1f} s"),
        ("requests", f"{fast['requests']:8d}  (HTTP 429: {fast['throttled']}, busiest second:"
                     f" {fast['max_requests_in_a_second']})"),
        ("requests per location-day", f"{fast['requests_per_location_day']:8.2f}"),
        *((f"  {route}", f"{n:8.2f}") for route, n in fast["per_location_day_by_route"].items()),
        ("rows loaded", f"{fast['rows']:8d}"),
        ("rows/s", f"{fast['rows_per_s']:8.0f}"),
        ("peak RSS of a run", f"{fast['peak_rss_mb']:8.0f} MB"),
        ("DuckDB file, Dagster instance", f"{fast['duckdb_mb']:8.1f} MB, "
                                          f"{fast['instance_mb']:.1f} MB"),
        ("bound: requests ÷ rate", f"{fast['bound_rate_s']:8.1f} s"),
        ("bound: requests × latency ÷ in flight", f"{fast['bound_latency_s']:8.1f} s"),
        ("wall ÷ bound", f"{fast['wall_over_bound']:8.2f}"),
    ]
    if naive:
        lines += [("naive: 1 run/partition, 1 in flight",
                   f"{naive['requests']} requests, {naive['runs']} runs (measured on"
                   f" {naive['sampled_days']} of {plan.days} days, extrapolated)")]
        for mode, label in (("in_process", "runs in one process"),
                            ("launched", "a process per run")):
            seconds = naive[f"{mode}_wall_s"]
            lines.append((f"  {label}", f"{seconds:8.1f} s  (÷ backfill: {seconds / wall:.1f}×)"))
    lines += [
        ("HTTP: ≥1 request in flight", share(fast["http_busy_s"])),
        ("HTTP: request-seconds (summed)", f"{fast['http_request_s']:8.1f} s"),
        ("first run's process start", share(fast["run_startup_s"])),
        ("flattening (summed over threads)", share(fast["flatten_s"])),
        ("DuckDB (handle_output)", share(fast["duckdb_s"])),
        ("Dagster overhead (none of ours running)", share(fast["dagster_overhead_s"])),
        ("Dagster time in runs (summed)", f"{fast['dagster_summed_s']:8.1f} s"),
        ("DuckDB load, orders_items, in the runs", f"{fast['orders_items_rows_per_s']:8.0f} rows/s"
                                                   f"  ({fast['orders_items_rows_per_write']:.0f}"
                                                   " rows a write)"),
        ("DuckDB load, orders_items, one big slice", f"{fast['bulk_rows_per_s']:8.0f} rows/s"
                                                     " (median of 5)"
                                                     f"  ({fast['bulk_rows']} rows,"
                                                     f" {fast['bulk_partitions']} partitions)"),
    ]
    if "project_days" in fast:
        years, per_day = fast["project_days"] / 365, fast["requests_per_location_day"]
        total = per_day * fast["project_days"] * plan.locations
        lines += [
            (f"projection: {years:g} years × {plan.locations} locations",
             f"{total:8.0f} requests at {per_day:.2f} per location-day"),
            ("  runs the planner makes of it", f"{fast['project_runs']:8d}  (planned in"
             f" {fast['project_plan_s']:.1f} s, peak RSS {fast['project_plan_rss_mb']:.0f} MB)"),
            *((f"  at {rate} requests/s", f"{total / rate / 3600:8.1f} h of requests")
              for rate in (10, 20)),
        ]
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in lines)


def case_arguments(description: str, days: int, rate: float) -> argparse.ArgumentParser:
    """A parser of what every case of ``make bench`` takes: its days × locations against a
    sandbox with this latency, paced at this rate (sandbox and client)."""
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--locations", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--rate", type=float, default=rate, help="requests/s (sandbox and client)")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_arguments(__doc__, days=30, rate=20.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--planner", choices=("dagster", "cli"), default="dagster",
                        help="cut the runs as Dagster's backfill daemon does (UI backfills) or "
                             "as `booker-assets backfill` does (a run per location and month)")
    parser.add_argument("--naive-days", type=int, default=2,
                        help="days of the naive way actually run (then extrapolated)")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--project-days", type=int, default=0,
                        help="also plan this many days × the locations (e.g. 730: two years) "
                             "and project its requests and hours from this backfill's")
    parser.add_argument("--adaptive", action="store_true",
                        help="instead: the adaptive rate against sandboxes limited at 10, 20"
                             " and 50 requests/s (adaptive_rate.py; starts PostgreSQL)")
    parser.add_argument("--adaptive-seconds", type=float, default=20.0,
                        help="--adaptive: how long the hosts call each sandbox")
    return parser.parse_args(argv)


def main_adaptive(args: argparse.Namespace) -> None:
    import adaptive_rate  # imports this module: only when asked

    load = adaptive_rate.Load(start=10.0, ceiling=100.0, burst=args.burst,
                              in_flight=args.in_flight, seconds=args.adaptive_seconds,
                              latency_ms=args.latency_ms)
    results = adaptive_rate.run(load)
    if args.json:
        json.dump({"load": vars(load), "adaptive": results}, sys.stdout, indent=2)
        print()
    else:
        print(adaptive_rate.table(load, results))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.adaptive:
        main_adaptive(args)
        return
    plan = Plan(args.days, args.locations, args.latency_ms, args.rate, args.burst, args.in_flight,
                args.planner)
    sandbox = RemoteSandbox(sandbox_settings(plan))
    try:
        with tempfile.TemporaryDirectory(prefix="booker-bench-") as tmp:
            fast = measure_backfill(sandbox, plan, Path(tmp))
            fast |= measure_bulk_load(Path(tmp) / "backfill.duckdb", Path(tmp))
            if args.project_days:
                fast |= measure_projection(sandbox.target, plan, Path(tmp), args.project_days)
            naive = None if args.skip_naive else measure_naive(sandbox, plan, Path(tmp),
                                                               args.naive_days)
    finally:
        sandbox.stop()
    if args.json:
        json.dump({"plan": vars(plan), "backfill": fast, "naive": naive}, sys.stdout, indent=2,
                  default=str)
        print()
    else:
        print(table(plan, fast, naive))


if __name__ == "__main__":
    main()
