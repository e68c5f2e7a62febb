"""Concurrency is invisible in the data, and never pushes the gateway past its rate."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, replace
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.api.bucket import BucketState
from booker_assets.api.client import BookerResource
from booker_assets.api.ratelimit import _STATE, TokenBucket
from booker_assets.catalogue.reports import TABLES
from booker_assets.defs.storage import connect_locked
from booker_assets_tests.conftest import (
    SANDBOX_SETTINGS,
    Loaded,
    assert_within_rate,
    load_warehouse_days,
    make_defs,
)
from booker_sandbox import BookerSandbox

RATE, BURST = 20, 5


def _contents(database: str) -> dict[str, list[tuple]]:
    with connect_locked(database, read_only=True) as conn:
        tables = {name: conn.execute(f"SELECT * EXCLUDE (_loaded_at) FROM booker.{name}"
                                     " ORDER BY ALL").fetchall() for name in TABLES}
        tables["_loads"] = conn.execute("SELECT * EXCLUDE (loaded_at) FROM booker._loads"
                                        " ORDER BY ALL").fetchall()
    return tables


def test_rows_identical_with_1_and_8_requests_in_flight(loaded_warehouse: Loaded, tmp_path):
    """The session's loaded warehouse came 8 requests in flight (the resource's default; page
    size 10: orders and customers span pages fetched side by side, every table asked): the
    same runs one request at a time store the same rows."""
    assert BookerResource.model_fields["max_in_flight"].default == 8
    settings = replace(loaded_warehouse.settings, duckdb_path=str(tmp_path / "serial.duckdb"))
    defs = make_defs(loaded_warehouse.sandbox, settings, page_size=10, max_in_flight=1)
    with dg.DagsterInstance.ephemeral() as instance:
        assert load_warehouse_days(defs, instance)
    serial = _contents(settings.duckdb_path)
    concurrent = _contents(loaded_warehouse.settings.duckdb_path)

    assert all(serial[name] for name in TABLES), "every table should hold rows"
    for name, rows in serial.items():
        assert concurrent[name] == rows, f"{name} differs with 8 requests in flight"


@pytest.fixture
def counting_sandbox() -> Iterator[BookerSandbox]:
    """No server-side limit: the sandbox counts every request the clients send."""
    with BookerSandbox(replace(SANDBOX_SETTINGS, rate_per_second=0.0)) as sb:
        yield sb


def test_limiter_never_exceeds_the_rate_across_threads_and_clients(counting_sandbox):
    # Two clients (two runs, one after the other or side by side) share the key's one bucket.
    clients = [BookerResource(base_url=counting_sandbox.url, **counting_sandbox.credentials,
                              requests_per_second=RATE, burst=BURST, max_in_flight=8).get_client()
               for _ in range(2)]
    bucket = clients[0].shared.transport.limiter
    assert clients[1].shared.transport.limiter is bucket
    granted: list[float] = []
    calls = 3 * RATE
    bucket.on_grant = granted.append
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda i: clients[i % 2].locations(), range(calls)))
        finished = time.monotonic()
    finally:
        bucket.on_grant = None

    assert len(granted) == calls + 2  # and each client's token request
    assert sum(counting_sandbox.stats.per_second.values()) >= calls
    assert_within_rate(granted, RATE, BURST)
    # and the callers really waited for their slots: none returned before the last was due
    assert finished >= max(granted) >= min(granted) + (calls - BURST) / RATE - 1e-6


def _call_locations(url: str, credentials: dict[str, str], calls: int, out: str) -> None:
    """One run's process: its own client, the host's one bucket; writes the slots it got."""
    client = BookerResource(base_url=url, **credentials, requests_per_second=RATE, burst=BURST,
                            max_in_flight=8).get_client()
    granted: list[float] = []
    client.shared.transport.limiter.on_grant = granted.append
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: client.locations(), range(calls)))
    granted.append(time.monotonic())  # last: when this process was done
    Path(out).write_text(json.dumps(granted))


def test_limiter_never_exceeds_the_rate_across_processes(counting_sandbox, tmp_path):
    # Concurrent runs are separate processes (the run launcher): they share the bucket's file.
    spawn = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"run-{n}.json" for n in range(2)]
    runs = [spawn.Process(target=_call_locations, args=(
                counting_sandbox.url, counting_sandbox.credentials, 2 * RATE, str(out)))
            for out in outs]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    assert [run.exitcode for run in runs] == [0, 0]

    per_run = [json.loads(out.read_text()) for out in outs]
    granted = [t for slots in per_run for t in slots[:-1]]
    assert [len(slots) - 1 for slots in per_run] == [2 * RATE + 1] * 2  # + the token request
    assert sum(counting_sandbox.stats.per_second.values()) >= 4 * RATE
    assert_within_rate(granted, RATE, BURST)  # one schedule for both processes: the file is shared
    assert all(slots[-1] >= max(slots[:-1]) for slots in per_run)


def test_a_bucket_file_from_before_a_reboot_starts_full(tmp_path):
    # time.monotonic restarts at boot: a saved queue of 40 "in the future" must not be honoured
    state = tmp_path / "bucket"
    state.write_bytes(_STATE.pack(*astuple(BucketState(-40.0, time.monotonic() + 1e6, 10))))
    bucket = TokenBucket(10, 5, path=state)
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.acquire() > 0  # then the rate holds
