"""The rate bucket's state in one row of the deployment's PostgreSQL: one budget per
subscription key for every process on every host (``BOOKER_RATE_BUCKET=postgres``; contract
``docs/booker-api.md`` §3: the gateway's bucket is per key, whoever calls).

A reservation is one short transaction: ``SELECT ... FOR UPDATE`` takes the row's lock (every
host queues there, in order), the time is read from the server's clock after the lock is held
(so hosts' clocks never meet), ``ratelimit.take`` reserves the next slot, the row is written
and the transaction commits. The caller then sleeps outside any lock. A process that dies
after reserving wastes its slot, which errs on the safe side.

Why not pyrate-limiter's ``PostgresBucket``, though it is well kept: it keeps a row per request
(a sliding-window log) and refuses at once when another client holds its table lock, so its
blocking callers poll. Measured with two processes at 10/s, it admitted bursts of 10 and then
made everyone wait about a second, and in 3 of 9 runs starved one process for more than 5 s.
It also stores ``timestamp without time zone`` values written in each session's time zone,
so one host with another ``TimeZone`` doubled the rate. The row lock here queues callers in
order, paces them evenly, and has no time zone (epoch seconds from ``clock_timestamp()``).
An advisory lock would do what the row lock does, in a key space shared with other users.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from booker_assets.api.bucket import FIELDS, BucketState, Held
from booker_assets.errors import BookerTransientError

TABLE = "booker_rate_bucket"
# A column per BucketState field, added if missing (a table from an older version). They may be
# NULL: a row inserted by the first user of a key, before its first reservation.
_DDL = [f"CREATE TABLE IF NOT EXISTS {TABLE} (key text PRIMARY KEY)"] + [
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {name} double precision" for name in FIELDS]
_INSERT = f"INSERT INTO {TABLE} (key) VALUES (%s) ON CONFLICT (key) DO NOTHING"
_LOCK = f"SELECT {', '.join(FIELDS)} FROM {TABLE} WHERE key = %s FOR UPDATE"
_NOW = "SELECT extract(epoch FROM clock_timestamp())::double precision"
_WRITE = (f"INSERT INTO {TABLE} (key, {', '.join(FIELDS)}) VALUES (%s{', %s' * len(FIELDS)})"
          " ON CONFLICT (key) DO UPDATE SET "
          + ", ".join(f"{name} = EXCLUDED.{name}" for name in FIELDS))
FIX = ("check that BOOKER_RATE_POSTGRES_DSN reaches the deployment's PostgreSQL (or set "
       "BOOKER_RATE_BUCKET=host to pace each host alone)")


class RateBucketUnavailable(BookerTransientError):
    """The shared bucket's database cannot be reached: no request goes unpaced."""


class PostgresStore:
    """A ``ratelimit.Store`` in the row ``key`` of table ``booker_rate_bucket``, created on
    first use. One connection per process, shared by its threads under a lock."""

    def __init__(self, dsn: str, key: str) -> None:
        self._dsn, self._key = dsn, key
        self._lock = threading.Lock()
        self._conn = self._connect()
        with self._guard(), self._conn.transaction():
            # concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type: serialize it
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
            for statement in _DDL:
                self._conn.execute(statement)
            # the row exists before anyone locks it, so the first reservations queue on it too
            self._conn.execute(_INSERT, (key,))

    def _connect(self) -> psycopg.Connection:
        with self._guard():
            return psycopg.connect(self._dsn, connect_timeout=10)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """psycopg's errors as ours; their text names the host, never the DSN's password."""
        try:
            yield
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise RateBucketUnavailable(f"the shared rate bucket's PostgreSQL failed: "
                                        f"{type(exc).__name__}: {message}", fix=FIX) from None

    @contextmanager
    def locked(self) -> Iterator[Held]:
        with self._lock, self._guard():
            if self._conn.closed or self._conn.broken:  # the server restarted since
                self._conn = self._connect()
            with self._conn.transaction():
                row = self._conn.execute(_LOCK, (self._key,)).fetchone()
                (now,) = self._conn.execute(_NOW).fetchone()
                state = BucketState(*row) if row and row[0] is not None else None
                held = Held(state, now)
                yield held
                if held.state is not None:
                    self._conn.execute(_WRITE, (self._key, *_values(held.state)))

    def close(self) -> None:
        self._conn.close()


def _values(state: BucketState) -> tuple[float, ...]:
    return tuple(getattr(state, name) for name in FIELDS)
