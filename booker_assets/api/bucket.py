"""The state one token bucket's users share, and how a store hands it over under its lock.

The bottom of the rate limit's modules, imported one way only: ``adaptive`` (the rule that
learns the rate) and ``pgbucket`` (the Postgres store) import this module, and ``ratelimit``
(the bucket, its host and memory stores, the budget) imports all three.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class BucketState:
    """What every user of one bucket shares; times are on its store's clock."""

    tokens: float  # may be negative: the queue of reservations not yet due
    updated: float
    rate: float  # requests a second: the configured one, or the learned one (adaptive)
    # adaptive.py's: the last cut (its rate, time, the curve's k), the measured reply rate
    w_max: float = 0.0
    cut_at: float = 0.0
    k: float = 0.0
    measured: float = 0.0
    counted: float = 0.0
    tick: float = 0.0


FIELDS = tuple(f.name for f in fields(BucketState))


@dataclass
class Held:
    """The state as read under a store's lock (None: nobody used the bucket yet) and the
    store clock's time, read after the lock was taken. Set ``state`` to write it back."""

    state: BucketState | None
    now: float
