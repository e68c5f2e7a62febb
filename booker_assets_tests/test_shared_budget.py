"""One rate budget for the deployment: the bucket shared through PostgreSQL paces every host
together (``BOOKER_RATE_BUCKET=postgres``), where the host bucket paces each host alone."""

from __future__ import annotations

import json
import multiprocessing
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from booker_assets.api.client import BookerResource
from booker_assets.api.pgbucket import TABLE, PostgresStore, RateBucketUnavailable
from booker_assets.api.ratelimit import TokenBucket
from booker_assets_tests.conftest import SANDBOX_SETTINGS, assert_within_rate
from booker_assets_tests.postgres import PostgresServer
from booker_sandbox import BookerSandbox

RATE, BURST = 10, 5
CALLS = 30  # per host: 3 s of the budget each, 6 s together
# A request reaches the sandbox at or after its slot (the bucket's clock is the server's, this
# machine's realtime clock, as is the sandbox's), and on a loaded machine up to about a second
# later. So the sandbox's seconds [s, s+n) hold requests of slots in [s-1, s+n): at most
# BURST + RATE * (n + 1). Two hosts pacing themselves alone send 2 * RATE a second.
LATE_S = 1


@pytest.fixture
def counting_sandbox() -> Iterator[BookerSandbox]:
    """No server-side limit: the sandbox counts every request, by its own seconds."""
    with BookerSandbox(replace(SANDBOX_SETTINGS, rate_per_second=0.0)) as sb:
        yield sb


def _host(url: str, credentials: dict[str, str], bucket: str, dsn: str, start,
          out: Path) -> None:
    """One host: a temp directory of its own (no host bucket file in common), one client."""
    tempfile.tempdir = str(out.parent)
    client = BookerResource(base_url=url, **credentials, requests_per_second=RATE, burst=BURST,
                            rate_bucket=bucket, rate_postgres_dsn=dsn).get_client()
    start.wait(timeout=60)  # both hosts send at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: client.locations(), range(CALLS)))
    Path(out).write_text(json.dumps({"tmp": tempfile.gettempdir()}))


def _two_hosts(sandbox: BookerSandbox, bucket: str, dsn: str, tmp_path: Path) -> Counter[int]:
    """Requests per sandbox second while two hosts each make CALLS calls."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    outs = [tmp_path / f"host-{n}" / "out.json" for n in range(2)]
    for out in outs:
        out.parent.mkdir()
    hosts = [spawn.Process(target=_host, args=(sandbox.url, sandbox.credentials, bucket, dsn,
                                               start, out)) for out in outs]
    for host in hosts:
        host.start()
    for host in hosts:
        host.join(timeout=120)
    assert [host.exitcode for host in hosts] == [0, 0]
    assert len({json.loads(out.read_text())["tmp"] for out in outs}) == 2
    per_second = sandbox.stats.per_second
    assert sum(per_second.values()) == 2 * (CALLS + 1)  # and each host's token request
    return per_second


def _busiest(per_second: Counter[int], seconds: int) -> int:
    """The most requests in ``seconds`` consecutive sandbox seconds."""
    first, last = min(per_second), max(per_second)
    return max(sum(per_second[s + i] for i in range(seconds)) for s in range(first, last + 1))


def _excess(per_second: Counter[int]) -> dict[int, tuple[int, int]]:
    """Windows (length in seconds) whose requests exceed what one budget allows."""
    span = max(per_second) - min(per_second) + 1
    counts = {n: (_busiest(per_second, n), BURST + RATE * (n + LATE_S))
              for n in range(1, span + 1)}
    return {n: (count, bound) for n, (count, bound) in counts.items() if count > bound}


def test_two_hosts_on_the_postgres_bucket_never_exceed_the_rate_together(
        counting_sandbox, postgres_dsn, tmp_path):
    per_second = _two_hosts(counting_sandbox, "postgres", postgres_dsn, tmp_path)
    print(f"\npostgres bucket, requests per sandbox second: {sorted(per_second.items())}")
    assert _excess(per_second) == {}


def test_two_hosts_on_host_buckets_do_exceed_it(counting_sandbox, tmp_path):
    # The check above fails when the hosts do not share a bucket.
    per_second = _two_hosts(counting_sandbox, "host", "", tmp_path)
    print(f"\nhost buckets, requests per sandbox second: {sorted(per_second.items())}")
    assert _excess(per_second) != {}


def test_stores_on_one_row_share_one_schedule(postgres_dsn):
    # Two processes' stores (each its own connection), four threads each: one schedule.
    buckets = [TokenBucket(20, 3, store=PostgresStore(postgres_dsn, "key")) for _ in range(2)]
    granted: list[float] = []
    for bucket in buckets:
        bucket.on_grant = granted.append
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: buckets[i % 2].acquire(), range(30)))
    assert len(granted) == 30
    assert_within_rate(granted, 20, 3)
    assert max(granted) - min(granted) >= (30 - 3) / 20 - 1e-6


def test_stores_of_other_keys_do_not_share(postgres_dsn):
    one, other = (TokenBucket(1, 1, store=PostgresStore(postgres_dsn, key)) for key in "ab")
    assert (one.acquire(), other.acquire()) == (0.0, 0.0)
    assert one.acquire() > 0.5


def test_the_table_holds_hashes_never_the_key(counting_sandbox, postgres_dsn):
    import psycopg

    BookerResource(base_url=counting_sandbox.url, **counting_sandbox.credentials,
                   rate_bucket="postgres", rate_postgres_dsn=postgres_dsn).get_client().locations()
    with psycopg.connect(postgres_dsn) as conn:
        (key,) = conn.execute(f"SELECT key FROM {TABLE}").fetchone()
    assert len(key) == 24 and counting_sandbox.credentials["subscription_key"] not in key


def test_an_unreachable_database_fails_naming_the_setting_not_the_password(
        postgres_server: PostgresServer):
    dsn = postgres_server.dsn().replace(f"port={postgres_server.port}", "port=1")
    with pytest.raises(RateBucketUnavailable) as info:
        PostgresStore(dsn + " password=s3cret-pw", "key")
    assert "BOOKER_RATE_POSTGRES_DSN" in str(info.value) and "s3cret" not in str(info.value)
    assert info.value.transient  # the step's retry policy may wait for the database
