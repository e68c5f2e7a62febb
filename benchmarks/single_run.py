"""``make bench``'s single-run case: one run of every report over D days × L locations at
Booker's pace, beside a minimal loader (``baseline.py``) at the same pace.

One run is what a daily load, a demo's location, a one-location backfill or days back is: no
other run fills the budget it leaves idle. Each loader runs in a fresh process (as Dagster's
run launcher starts a run), one after the other, against one rate-limited sandbox in a child
process. Printed per loader: requests, wall (launch → success), the bound requests ÷ rate and
wall ÷ bound, the fixed costs (launch → first request, last request → success) and the
requests per second between the first and the last request; then each one's timeline, the
requests sent in each second from the launch, and for booker-assets the run's Dagster events
by type (count, first and last stored): where the fixed cost goes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from datetime import time as day_time
from pathlib import Path
from typing import Any

import baseline
from backfill import QUIET, RemoteSandbox, Target, case_arguments

from booker_sandbox import SandboxSettings

FIRST_DAY = date(2025, 1, 1)


@dataclass(frozen=True)
class Case:
    days: int
    locations: int
    latency_ms: float
    rate: float
    burst: int

    @property
    def last_day(self) -> date:
        return FIRST_DAY + timedelta(days=self.days - 1)

    @property
    def now(self) -> datetime:
        """The sandbox's clock: the morning after the last day (UTC), as a daily load runs;
        the last day is then yesterday or today in every zone, so the lists are asked."""
        return datetime.combine(self.last_day + timedelta(days=1), day_time(12), timezone.utc)


def ours(target: Target, case: Case, work: str, launched: float) -> dict[str, Any]:
    """A run of booker-assets over the case, in this (fresh) process."""
    import dagster as dg
    import requests

    from booker_assets.api.client import BookerResource
    from booker_assets.definitions import build_definitions
    from booker_assets.defs.backfill import materialize_range
    from booker_assets.defs.partitions import add_locations
    from booker_assets.settings import Settings

    sent = _stamp_sends(requests.Session)
    settings = Settings(use_sandbox=False, allowed_locations=target.locations,
                        start_date=FIRST_DAY, duckdb_path=f"{work}/ours.duckdb",
                        lookback_days=7, grace_hours=2.0, catch_up_days=3, pii="keep")
    booker = BookerResource(base_url=target.url, **target.credentials,
                            requests_per_second=case.rate, burst=case.burst)
    imported = time.time()
    defs = build_definitions(settings, booker, clock=lambda: case.now)
    Path(work, "dagster_home").mkdir(exist_ok=True)
    with dg.DagsterInstance.local_temp(f"{work}/dagster_home") as instance:
        add_locations(instance, target.locations)
        started = time.time()
        result = materialize_range(defs, instance, list(target.locations), FIRST_DAY,
                                   case.last_day, run_config=QUIET, raise_on_error=False)
        ended = time.time()
        events = _event_spans(instance, result.run_id)
    return {"launched": launched, "imported": imported, "started": started, "ended": ended,
            "sent": sent, "success": result.success, "events": events}


def _event_spans(instance: Any, run_id: str) -> dict[str, tuple[int, float, float]]:
    """Per type of the run's Dagster events: how many, when the first and the last were
    stored (where the fixed cost goes: each is a write to the instance's storage)."""
    spans: dict[str, tuple[int, float, float]] = {}
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        if entry.dagster_event_type is not None:
            count, first, _ = spans.get(entry.dagster_event_type.value, (0, entry.timestamp, 0))
            spans[entry.dagster_event_type.value] = (count + 1, first, entry.timestamp)
    return spans


def minimal(target: Target, case: Case, work: str, launched: float) -> dict[str, Any]:
    """``baseline.py`` over the case, in this (fresh) process."""
    started = time.time()
    sent = baseline.load(target.url, target.credentials, [int(x) for x in target.locations],
                         FIRST_DAY, case.last_day, case.now, case.rate, case.burst,
                         f"{work}/minimal.sqlite")
    return {"launched": launched, "imported": started, "started": started,
            "ended": time.time(), "sent": sent, "success": True, "events": {}}


def _stamp_sends(session: type) -> list[float]:
    """When each request of this process goes on the wire (time.time())."""
    sent: list[float] = []
    original = session.send

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(time.time())
        return original(self, *args, **kwargs)

    session.send = send
    return sent


def measure(sandbox: RemoteSandbox, case: Case, loader: Callable[..., dict[str, Any]],
            work: Path) -> dict[str, Any]:
    before = sandbox.stats()["requests"]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        run = pool.submit(loader, sandbox.target, case, str(work), time.time()).result()
    requests = sandbox.stats()["requests"] - before
    sent = sorted(run["sent"])
    first, last = sent[0], sent[-1]
    wall = run["ended"] - run["launched"]
    bound = requests / case.rate
    return {
        "loader": loader.__name__, "success": run["success"], "requests": requests,
        "wall_s": wall, "bound_s": bound, "wall_over_bound": wall / bound,
        "imports_s": run["imported"] - run["launched"],
        "launch_to_first_s": first - run["launched"],
        "run_start_to_first_s": first - run["started"],
        "last_to_success_s": run["ended"] - last,
        "span_s": last - first,
        "span_requests_per_s": (len(sent) - 1) / (last - first),
        "timeline": _per_second(sent, run["launched"], run["ended"]),
        "events": {kind: (count, start - run["launched"], end - run["launched"])
                   for kind, (count, start, end) in run["events"].items()},
    }


def _per_second(sent: list[float], launched: float, ended: float) -> list[int]:
    counts = Counter(int(at - launched) for at in sent)
    return [counts[second] for second in range(int(ended - launched) + 1)]


def table(case: Case, results: list[dict[str, Any]]) -> str:
    head = (f"single run: {case.days} days × {case.locations} locations, {case.rate:g} "
            f"requests/s (burst {case.burst}), latency {case.latency_ms:g} ms")
    columns = ("loader", "requests", "wall s", "bound s", "wall÷bound", "launch→1st s",
               "last→done s", "span s", "req/s in span")
    rows = [(r["loader"], f"{r['requests']}", f"{r['wall_s']:.1f}", f"{r['bound_s']:.1f}",
             f"{r['wall_over_bound']:.3f}", f"{r['launch_to_first_s']:.1f}",
             f"{r['last_to_success_s']:.1f}", f"{r['span_s']:.1f}",
             f"{r['span_requests_per_s']:.2f}") for r in results]
    lines = [head, "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    for r in results:
        lines.append(f"timeline of {r['loader']}: requests in each second from the launch"
                     f" (imports {r['imports_s']:.1f} s, run start → first request"
                     f" {r['run_start_to_first_s']:.1f} s)")
        seconds = r["timeline"]
        lines += [f"  {start:4d} s  " + " ".join(f"{n:2d}" for n in seconds[start:start + 20])
                  for start in range(0, len(seconds), 20)]
        if r["events"]:
            lines.append(f"Dagster's events of {r['loader']}'s run: type, count, first..last "
                         "stored (s from the launch)")
            lines += [f"  {kind:<34} {count:5d}  {start:6.1f} .. {end:6.1f}" for kind, (
                count, start, end) in sorted(r["events"].items(), key=lambda kv: kv[1][1])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = case_arguments(__doc__, days=10, rate=10.0)
    parser.add_argument("--skip-minimal", action="store_true", help="only booker-assets' run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    case = Case(args.days, args.locations, args.latency_ms, args.rate, args.burst)
    sandbox = RemoteSandbox(SandboxSettings(
        location_count=case.locations, start_date=FIRST_DAY, end_date=case.last_day,
        now=case.now, latency_ms=case.latency_ms, rate_per_second=case.rate,
        burst=case.burst))
    loaders = [ours] if args.skip_minimal else [minimal, ours]
    try:
        with tempfile.TemporaryDirectory(prefix="booker-single-") as tmp:
            results = []
            for loader in loaders:
                time.sleep(case.burst / case.rate)  # the sandbox's bucket refills between
                results.append(measure(sandbox, case, loader, Path(tmp)))
    finally:
        sandbox.stop()
    if args.json:
        json.dump({"case": asdict(case), "results": results}, sys.stdout, indent=2)
        print()
    else:
        print(table(case, results))


if __name__ == "__main__":
    main()
