"""Client-side token bucket matching the gateway's per-subscription-key limiter (contract §3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` requests a second on average, at most ``burst`` at once, shared by all threads.

    Each ``acquire`` reserves the next free slot under the lock and sleeps outside it, so
    waiting threads queue in order and the lock is never held while sleeping. The token
    count may go negative: that is the queue of reservations not yet due.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self._rate, self._burst = rate, float(burst)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; returns the time slept."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate) - 1.0
            self._updated = now
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


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
    """The process's one bucket for ``key`` (e.g. base URL + subscription key) at this rate.

    The gateway keeps one bucket per subscription key: clients created one after the other (a
    run per location) must inherit its state, or each new client bursts into an empty bucket
    and gets HTTP 429 (Retry-After: at least 1 s).
    """
    with _shared_lock:
        return _shared.setdefault((key, rate, burst, clock, sleep),
                                  TokenBucket(rate, burst, clock=clock, sleep=sleep))
