"""Client-side token bucket matching the gateway's per-subscription-key limiter (contract
``docs/booker-api.md`` §3).

The gateway keeps one bucket per subscription key, whoever calls. So does this module: every
client of a key draws from one bucket, whose state lives where all of its users see it. That is
a small file under the temp directory, updated under ``flock``, for every process of the host
(``BOOKER_RATE_BUCKET=host``, the default); one row of the deployment's PostgreSQL for every
host (``postgres``, ``pgbucket.py``); or memory, for a test's fake clock. Concurrent
runs (a backfill's runs, the daily sensor's) then share one budget instead of each pacing itself
at the whole of it and drawing HTTP 429s.

The arithmetic is one pure function of the shared state (``take``); a store only says where the
state lives and how it is locked, and which clock its users share.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple, dataclass, field, fields, replace
from pathlib import Path
from typing import Protocol

from booker_assets.errors import BookerConfigError


@dataclass(frozen=True)
class BucketState:
    """What every user of one bucket shares; times are on its store's clock."""

    tokens: float  # may be negative: the queue of reservations not yet due
    updated: float
    rate: float  # requests a second


FIELDS = tuple(f.name for f in fields(BucketState))


@dataclass(frozen=True)
class Slot:
    """A reserved request: when it may go (store clock) and how long its caller slept."""

    at: float
    wait: float


def take(state: BucketState, now: float, burst: float) -> tuple[BucketState, Slot]:
    """Refill for the time since ``updated``, then reserve the next token."""
    tokens = min(burst, state.tokens + (now - state.updated) * state.rate) - 1.0
    wait = -tokens / state.rate if tokens < 0 else 0.0
    return replace(state, tokens=tokens, updated=now), Slot(now + wait, wait)


@dataclass
class Held:
    """The state as read under a store's lock (None: nobody used the bucket yet) and the
    store clock's time, read after the lock was taken. Set ``state`` to write it back."""

    state: BucketState | None
    now: float


class Store(Protocol):
    def locked(self) -> AbstractContextManager[Held]:
        """Holds the bucket's lock for the block; writes ``state`` back unless it raises."""
        ...


class MemoryStore:
    """One process's bucket, on any clock (a test's fake one)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BucketState | None = None

    @contextmanager
    def locked(self) -> Iterator[Held]:
        with self._lock:
            held = Held(self._state, self._clock())
            yield held
            self._state = held.state


_STATE = struct.Struct("<" + "d" * len(FIELDS))


class FileStore:
    """One host's bucket: a file every process opens, locked with ``flock``, on the host's
    monotonic clock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock = threading.Lock()  # flock is per open file, not per thread

    @contextmanager
    def locked(self) -> Iterator[Held]:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(self._fd, _STATE.size, 0)
                state = BucketState(*_STATE.unpack(raw)) if len(raw) == _STATE.size else None
                held = Held(state, time.monotonic())
                yield held
                if held.state is not None:
                    os.pwrite(self._fd, _STATE.pack(*astuple(held.state)), 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


class TokenBucket:
    """``rate`` requests a second on average, at most ``burst`` at once, shared by every user
    of its store (all threads; every process that opens the same file).

    Each ``acquire`` reserves the next free slot under the lock and sleeps outside it, so
    waiting callers queue in order and the lock is never held while sleeping. ``on_grant``,
    when set, is told each reserved slot (on the store's clock) as it is reserved: the tests
    check the schedule there, free of the thread scheduling that delays the requests.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        path: Path | None = None,
        store: Store | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self._rate, self._burst = rate, float(burst)
        self._sleep = sleep
        self._store = store or (FileStore(path) if path else MemoryStore(clock))
        self.on_grant: Callable[[float], None] | None = None

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the time slept."""
        return self.reserve().wait

    def reserve(self) -> Slot:
        """Take one token, sleeping until it is due; returns its slot."""
        with self._store.locked() as held:
            held.state, slot = take(self._current(held), held.now, self._burst)
            if self.on_grant is not None:
                self.on_grant(slot.at)
        if slot.wait > 0:
            self._sleep(slot.wait)
        return slot

    def _current(self, held: Held) -> BucketState:
        """The shared state, or a full bucket for its first user. So is a state from the
        future: a file written before a reboot, when the monotonic clock restarted."""
        if held.state is None or held.state.updated > held.now:
            return BucketState(tokens=self._burst, updated=held.now, rate=self._rate)
        return held.state


BUCKETS = ("host", "postgres")
DEFAULT_REQUESTS_PER_SECOND = 10.0  # the contract's sandbox default (Booker publishes none)


@dataclass(frozen=True)
class RateBudget:
    """How a client paces itself, and where its key's bucket lives: ``host`` (a file under the
    temp directory) or ``postgres`` (a row in the database at ``postgres_dsn``)."""

    requests_per_second: float
    burst: int
    bucket: str = "host"
    postgres_dsn: str = field(default="", repr=False)  # may hold a password

    def __post_init__(self) -> None:
        if self.bucket not in BUCKETS:
            raise BookerConfigError(f"unknown rate bucket {self.bucket!r}",
                                    fix=f"use one of {', '.join(BUCKETS)}")
        if self.bucket == "postgres" and not self.postgres_dsn:
            raise BookerConfigError("the postgres rate bucket needs a database",
                                    fix="set BOOKER_RATE_POSTGRES_DSN (a libpq DSN or URL)")


_shared: dict[tuple, TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(
    key: str,
    budget: RateBudget,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenBucket:
    """The one bucket for ``key`` (e.g. base URL + subscription key) at this budget.

    Clients created one after the other (a run per location) or side by side (concurrent runs)
    must share the gateway bucket's state, or each bursts into an emptied gateway bucket and
    gets HTTP 429 (Retry-After: at least 1 s). A test's fake clock keeps its bucket in memory.
    """
    with _shared_lock:
        if (key, budget, clock, sleep) not in _shared:
            store = _store(key, budget) if clock is time.monotonic else None
            _shared[key, budget, clock, sleep] = TokenBucket(
                budget.requests_per_second, budget.burst, clock=clock, sleep=sleep, store=store)
        return _shared[key, budget, clock, sleep]


def _store(key: str, budget: RateBudget) -> Store:
    if budget.bucket == "postgres":
        from booker_assets.api.pgbucket import PostgresStore  # psycopg only when chosen

        return PostgresStore(budget.postgres_dsn, bucket_name(key, budget))
    return FileStore(bucket_path(key, budget))


def bucket_name(key: str, budget: RateBudget) -> str:
    """The bucket's name: a hash of the key and the pacing, never the key itself. Users with
    another pacing have another bucket (its state would not mean the same)."""
    pacing = f"{budget.requests_per_second}\0{budget.burst}"
    return hashlib.sha256(f"{key}\0{pacing}\0{_STATE.size}".encode()).hexdigest()[:24]


def bucket_path(key: str, budget: RateBudget) -> Path:
    """Where the host keeps the bucket's state."""
    return (Path(tempfile.gettempdir()) / f"booker-assets-{os.getuid()}"
            / f"bucket-{bucket_name(key, budget)}")
