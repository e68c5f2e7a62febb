"""``backfill.py --adaptive``: how close the adaptive rate gets to a budget it is not told.

For each true limit (10, 20 and 50 requests/s by default) a sandbox enforces it (a token bucket
per subscription key, burst as the client's, 429 with ``Retry-After`` beyond it). Two "hosts"
(processes with their own temp directories) share one adaptive bucket through a throwaway
PostgreSQL, each starting at the configured 10 requests/s with a ceiling of 100, and call
``locations`` as fast as their ``max_in_flight`` threads allow for a fixed time. The sandbox
counts, per second, what it answered and what it refused.

Printed per limit: the share of the true rate reached (requests answered 200 per second ÷ the
limit) over the second half of the run, once learned, and over the whole run, learning
included; the share of requests answered 429; and each host's learned rate at the end.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from backfill import RemoteSandbox, Target

from booker_assets.api.client import BookerResource
from booker_sandbox import SandboxSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the throwaway Postgres
from booker_assets_tests.postgres import start_server  # noqa: E402

LIMITS = (10.0, 20.0, 50.0)
HOSTS = 2


@dataclass(frozen=True)
class Load:
    start: float  # the configured rate: where the bucket starts
    ceiling: float
    burst: int
    in_flight: int  # threads (and requests in flight) per host
    seconds: float
    latency_ms: float


def host(target: Target, dsn: str, load: Load, start: Barrier, done: Queue) -> None:
    """One host: its own temp directory (no host bucket in common), one client on the shared
    adaptive bucket; puts its learned rate on ``done``."""
    tempfile.tempdir = tempfile.mkdtemp(prefix="booker-bench-host-")
    try:
        done.put(_calls(target, dsn, load, start))
    finally:
        shutil.rmtree(tempfile.tempdir, ignore_errors=True)


def _calls(target: Target, dsn: str, load: Load, start: Barrier) -> float:
    client = BookerResource(
        base_url=target.url, **target.credentials, requests_per_second=load.start,
        burst=load.burst, max_in_flight=load.in_flight, max_retries=30, rate_bucket="postgres",
        rate_postgres_dsn=dsn, rate_mode="adaptive", max_requests_per_second=load.ceiling,
    ).get_client()
    start.wait(timeout=120)
    deadline = time.monotonic() + load.seconds

    def calls() -> None:
        while time.monotonic() < deadline:
            client.locations()

    with ThreadPoolExecutor(load.in_flight) as pool:
        for future in [pool.submit(calls) for _ in range(load.in_flight)]:
            future.result()
    return client.shared.transport.limiter.rate


def measure(limit: float, load: Load, dsn: str) -> dict[str, Any]:
    """One true limit: the hosts' run, then the sandbox's counts per second."""
    sandbox = RemoteSandbox(SandboxSettings(rate_per_second=limit, burst=load.burst,
                                            latency_ms=load.latency_ms))
    spawn = multiprocessing.get_context("spawn")
    start, done = spawn.Barrier(HOSTS), spawn.Queue()
    try:
        hosts = [spawn.Process(target=host, args=(sandbox.target, dsn, load, start, done))
                 for _ in range(HOSTS)]
        for process in hosts:
            process.start()
        learned = [done.get(timeout=load.seconds + 180) for _ in hosts]
        for process in hosts:
            process.join(timeout=30)
        stats = sandbox.stats()
    finally:
        sandbox.stop()
    return {"limit": limit, "learned": learned} | shares(stats, limit)


def shares(stats: dict[str, Any], limit: float) -> dict[str, float]:
    """Rate reached (answered ÷ limit per second) late and overall; the 429 share."""
    per_second, refused = stats["per_second"], stats["throttled_per_second"]
    seconds = sorted(per_second)[1:-1]  # the first and last are partial
    late = seconds[len(seconds) // 2:]

    def reached(span: list[int]) -> float:
        answered = sum(per_second[s] - refused.get(s, 0) for s in span)
        return answered / (len(span) * limit)

    return {"reached_late": reached(late), "reached_all": reached(seconds),
            "throttled_share": stats["throttled"] / stats["requests"],
            "requests": stats["requests"]}


def run(load: Load, limits: tuple[float, ...] = LIMITS) -> list[dict[str, Any]]:
    server = start_server()
    try:
        return [measure(limit, load, server.dsn()) for limit in limits]
    finally:
        server.stop()


def table(load: Load, results: list[dict[str, Any]]) -> str:
    lines = [f"adaptive rate: {HOSTS} hosts sharing one Postgres bucket, each from "
             f"{load.start:g}/s (ceiling {load.ceiling:g}), {load.in_flight} in flight, "
             f"{load.seconds:g} s, latency {load.latency_ms:g} ms, burst {load.burst}",
             "true limit | rate reached, 2nd half | whole run | HTTP 429 | requests | learned",
             "--- | --- | --- | --- | --- | ---"]
    for r in results:
        learned = ", ".join(f"{rate:.1f}" for rate in r["learned"])
        lines.append(f"{r['limit']:g}/s | {r['reached_late']:.0%} | {r['reached_all']:.0%} | "
                     f"{r['throttled_share']:.1%} | {r['requests']} | {learned}")
    return "\n".join(lines)

