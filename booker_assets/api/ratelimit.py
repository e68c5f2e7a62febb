"""Client-side token bucket matching the gateway's per-subscription-key limiter (contract §3).

The gateway keeps one bucket per subscription key, whoever calls. So does this module, for every
process of the host: the bucket's state lives in a small file under the temp directory, updated
under ``flock``. Concurrent runs (a backfill's runs, the daily sensor's) then share one budget
instead of each pacing itself at the whole of it and drawing HTTP 429s.
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
from contextlib import contextmanager
from pathlib import Path

_STATE = struct.Struct("<dd")  # tokens, updated (time.monotonic: one clock for the whole host)


class TokenBucket:
    """``rate`` requests a second on average, at most ``burst`` at once, shared by all threads
    (and, with a ``path``, by every process that opens the same file).

    Each ``acquire`` reserves the next free slot under the lock and sleeps outside it, so
    waiting callers queue in order and the lock is never held while sleeping. The token
    count may go negative: that is the queue of reservations not yet due. ``on_grant``, when
    set, is told each reserved slot (on the bucket's clock) as it is reserved: the tests
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
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self._rate, self._burst = rate, float(burst)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._memory = [float(burst), clock()]
        self._fd = _open_state(path, self._memory) if path else None
        self.on_grant: Callable[[float], None] | None = None

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the time slept."""
        with self._lock, self._state() as state:
            tokens, updated = state
            now = self._clock()
            if now < updated:  # a state file from before a reboot (the clock restarted)
                tokens, updated = self._burst, now
            tokens = min(self._burst, tokens + (now - updated) * self._rate) - 1.0
            state[:] = [tokens, now]
            wait = -tokens / self._rate if tokens < 0 else 0.0
            if self.on_grant is not None:
                self.on_grant(now + wait)
        if wait > 0:
            self._sleep(wait)
        return wait

    @contextmanager
    def _state(self) -> Iterator[list[float]]:
        if self._fd is None:
            yield self._memory
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            state = list(_STATE.unpack(os.pread(self._fd, _STATE.size, 0)))
            yield state
            os.pwrite(self._fd, _STATE.pack(*state), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _open_state(path: Path, initial: list[float]) -> int:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        if os.fstat(fd).st_size < _STATE.size:  # first user of this bucket on the host
            os.pwrite(fd, _STATE.pack(*initial), 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return fd


_shared: dict[tuple, TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(
    key: str,
    rate: float,
    burst: int,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenBucket:
    """The host's one bucket for ``key`` (e.g. base URL + subscription key) at this rate.

    Clients created one after the other (a run per location) or side by side (concurrent runs)
    must share the gateway bucket's state, or each bursts into an emptied gateway bucket and
    gets HTTP 429 (Retry-After: at least 1 s). A test's fake clock keeps its bucket in memory.
    """
    with _shared_lock:
        if (key, rate, burst, clock, sleep) not in _shared:
            path = bucket_path(key, rate, burst) if clock is time.monotonic else None
            _shared[key, rate, burst, clock, sleep] = TokenBucket(
                rate, burst, clock=clock, sleep=sleep, path=path)
        return _shared[key, rate, burst, clock, sleep]


def bucket_path(key: str, rate: float, burst: int) -> Path:
    """Where the host keeps the bucket's state; the name is a hash, never the key itself."""
    digest = hashlib.sha256(f"{key}\0{rate}\0{burst}".encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"booker-assets-{os.getuid()}" / f"bucket-{digest}"
