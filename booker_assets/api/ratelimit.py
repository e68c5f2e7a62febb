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
state lives and how it is locked, and which clock its users share. In ``adaptive`` mode the
rate is part of that state, learned from the gateway's answers (``adaptive.py``).
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
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from booker_assets.api.adaptive import AdaptiveRate
from booker_assets.api.bucket import FIELDS, BucketState, Held
from booker_assets.errors import BookerConfigError
from booker_assets.settings import BUCKETS, MODES


@dataclass(frozen=True)
class Slot:
    """A reserved request: when it was reserved and when it may go (store clock), and how
    long its caller slept."""

    reserved: float
    at: float
    wait: float


def refill(state: BucketState, now: float, burst: float) -> BucketState:
    """The tokens the rate added since ``updated``, up to ``burst``."""
    tokens = min(burst, state.tokens + (now - state.updated) * state.rate)
    return replace(state, tokens=tokens, updated=now)


def take(state: BucketState, now: float, burst: float) -> tuple[BucketState, Slot]:
    """Refill, then reserve the next token."""
    state = refill(state, now, burst)
    tokens = state.tokens - 1.0
    wait = -tokens / state.rate if tokens < 0 else 0.0
    return replace(state, tokens=tokens), Slot(now, now + wait, wait)


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
        adaptive: AdaptiveRate | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self._rate, self._burst = rate, float(burst)
        self._sleep = sleep
        self._adaptive = adaptive
        self._store = store or (FileStore(path) if path else MemoryStore(clock))
        self.on_grant: Callable[[float], None] | None = None

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the time slept."""
        return self.reserve().wait

    def reserve(self) -> Slot:
        """Take one token, sleeping until it is due; returns its slot. In an adaptive bucket,
        a slot that waited through a cut of the rate is given up for one at the new rate."""
        slot = self._reserve()
        while self._adaptive is not None and slot.wait > 0 and self._cut_since(slot):
            slot = self._reserve()
        return slot

    def _reserve(self) -> Slot:
        with self._store.locked() as held:
            held.state, slot = take(self._current(held), held.now, self._burst)
            if self.on_grant is not None:
                self.on_grant(slot.at)
        if slot.wait > 0:
            self._sleep(slot.wait)
        return slot

    def _cut_since(self, slot: Slot) -> bool:
        with self._store.locked() as held:
            held.state = self._current(held)
            return held.state.cut_at > slot.reserved

    def feedback(self, slot: Slot, throttled: bool) -> None:
        """How the gateway answered the request of ``slot``: an adaptive bucket learns from
        it (a 429 is ``throttled``); a fixed one ignores it, without taking the lock."""
        if self._adaptive is None:
            return
        with self._store.locked() as held:
            state = refill(self._current(held), held.now, self._burst)  # at the old rate
            held.state = self._adaptive.on_reply(state, held.now, slot.reserved, throttled)

    @property
    def rate(self) -> float:
        """The rate now: the configured one, or what the adaptive bucket has learned."""
        with self._store.locked() as held:
            held.state = self._current(held)
            return held.state.rate

    def _current(self, held: Held) -> BucketState:
        """The shared state, or a full bucket for its first user. So is a state from the
        future: a file written before a reboot, when the monotonic clock restarted."""
        if held.state is None or held.state.updated > held.now:
            learned = self._adaptive.initial(held.now) if self._adaptive else {}
            return BucketState(**{"tokens": self._burst, "updated": held.now,
                                  "rate": self._rate} | learned)
        return held.state


CEILING_FACTOR = 5  # adaptive, no ceiling given: up to 5 × the configured rate


@dataclass(frozen=True)
class RateBudget:
    """How a client paces itself, and where its key's bucket lives: ``host`` (a file under the
    temp directory) or ``postgres`` (a row in the database at ``postgres_dsn``). ``fixed``
    paces at ``requests_per_second``; ``adaptive`` starts there and learns, up to ``ceiling``
    (None: ``CEILING_FACTOR`` times the rate)."""

    requests_per_second: float
    burst: int
    bucket: str = "host"
    postgres_dsn: str = field(default="", repr=False)  # may hold a password
    mode: str = "fixed"
    ceiling: float | None = None

    def __post_init__(self) -> None:
        for name, value, choices in (("bucket", self.bucket, BUCKETS),
                                     ("mode", self.mode, MODES)):
            if value not in choices:
                raise BookerConfigError(f"unknown rate {name} {value!r}",
                                        fix=f"use one of {', '.join(choices)}")
        if self.bucket == "postgres" and not self.postgres_dsn:
            raise BookerConfigError("the postgres rate bucket needs a database",
                                    fix="set BOOKER_RATE_POSTGRES_DSN (a libpq DSN or URL)")
        if self.top < self.requests_per_second:
            raise BookerConfigError(
                f"the rate ceiling {self.top:g} is below the rate {self.requests_per_second:g}",
                fix="set BOOKER_RATE_CEILING at or above BOOKER_REQUESTS_PER_SECOND")

    @property
    def top(self) -> float:
        """The most the rate may reach."""
        if self.mode == "fixed":
            return self.requests_per_second
        return self.ceiling or CEILING_FACTOR * self.requests_per_second

    def adaptive(self) -> AdaptiveRate | None:
        if self.mode == "fixed":
            return None
        return AdaptiveRate(self.requests_per_second, self.top)


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
                budget.requests_per_second, budget.burst, clock=clock, sleep=sleep, store=store,
                adaptive=budget.adaptive())
        return _shared[key, budget, clock, sleep]


def _store(key: str, budget: RateBudget) -> Store:
    if budget.bucket == "postgres":
        from booker_assets.api.pgbucket import PostgresStore  # psycopg only when chosen

        return PostgresStore(budget.postgres_dsn, bucket_name(key, budget))
    return FileStore(bucket_path(key, budget))


def bucket_name(key: str, budget: RateBudget) -> str:
    """The bucket's name: a hash of the key and the pacing, never the key itself. Users with
    another pacing have another bucket (its state would not mean the same)."""
    pacing = f"{budget.requests_per_second}\0{budget.burst}\0{budget.mode}\0{budget.top}"
    return hashlib.sha256(f"{key}\0{pacing}\0{_STATE.size}".encode()).hexdigest()[:24]


def host_dir() -> Path:
    """This user's directory of the host for state its processes share (created 0700)."""
    return Path(tempfile.gettempdir()) / f"booker-assets-{os.getuid()}"


def bucket_path(key: str, budget: RateBudget) -> Path:
    """Where the host keeps the bucket's state."""
    return host_dir() / f"bucket-{bucket_name(key, budget)}"
