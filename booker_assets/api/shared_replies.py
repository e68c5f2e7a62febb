"""Replies shared by the runs of one backfill: a call that no partition day shapes is asked once.

Dagster's planner cuts a backfill into runs as it sees fit: a day of many locations, or a
month of one location. A call whose reply does not depend on the partition day — a location's
record, an employee's schedule for a whole month, a customer's progress notes — would be asked
again by every day-run that needs it: 30 day-runs, 30 times the same schedule month, and a
customer changed on 5 days asked 5 times. Here the first run that asks keeps the reply; the
backfill's other runs read it. So a backfill costs the requests of the location-days it
covers, however it is cut.

Every run is its own process, so the replies live where the rate budget does
(``BOOKER_RATE_BUCKET``): with a host bucket, in one SQLite file of the host (beside the
bucket's state; the file and its directory only this user reads); with the Postgres bucket,
in table ``booker_shared_replies`` of the same database (``BOOKER_RATE_POSTGRES_DSN``), so the
runs of one backfill share across hosts as they share the budget. Keyed by the backfill's id,
the API host and the call (hashed). A reply is kept ``ttl`` seconds at most: within
one backfill, a schedule month is Booker's answer of less than ``ttl`` ago, as a run would
have asked it.
Only what the extractor marks as shared is kept (``extract.shared_by_backfill``): schedule
months, location records, a customer's memberships and progress notes, the employees list
under the schedules. Never a day's window, never a reply feeding a table whose columns
BOOKER_PII hashes or drops: what is kept here the warehouse holds too, in every BOOKER_PII
mode. Never a token: a credential stays in the memory of the run that asked it (``auth.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

from booker_assets.api.ratelimit import RateBudget, host_dir

log = logging.getLogger("booker_assets.api.shared_replies")

DEFAULT_TTL_SECONDS = 12 * 3600.0
_FIX = ("the load goes on, each run asking for itself; free space there or delete the file "
        "(it holds nothing the warehouse lacks)")
_PG_FIX = ("the load goes on, each run asking for itself; check that BOOKER_RATE_POSTGRES_DSN"
           " reaches the database (table booker_shared_replies holds nothing the warehouse"
           " lacks)")
_SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, stored_at REAL NOT NULL, body TEXT NOT NULL)"""
PG_TABLE = "booker_shared_replies"
_PG_SCHEMA = (f"CREATE TABLE IF NOT EXISTS {PG_TABLE} (key text PRIMARY KEY,"
              " stored_at double precision NOT NULL, body text NOT NULL)")


def replies_path() -> Path:
    """The host's file (one per user), beside the rate bucket's state (``ratelimit.py``)."""
    return host_dir() / "shared-replies.sqlite"


class Store(Protocol):
    """Where the replies are kept; ``where`` names it in messages, ``errors`` what it raises."""

    where: str
    errors: tuple[type[Exception], ...]
    fix: str

    def open(self) -> None: ...

    def purge(self, before: float) -> None: ...

    def get(self, key: str, since: float) -> str | None: ...

    def put(self, key: str, at: float, body: str) -> None: ...

    def drop(self, key: str) -> None: ...


class FileStore:
    """The host's SQLite file: runs' threads and processes share it, a connection per use; WAL
    lets readers go on while one writes, and a writer waits for another rather than failing."""

    errors = (sqlite3.Error, OSError)
    fix = _FIX

    def __init__(self, path: Path) -> None:
        self.path, self.where = path, str(path)

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # customers' replies: only this user reads them (SQLite gives its -wal and -shm
        # files the database file's mode), even in a directory others can enter
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def purge(self, before: float) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM replies WHERE stored_at < ?", (before,))

    def get(self, key: str, since: float) -> str | None:
        with self._connect() as db:
            found = db.execute("SELECT body FROM replies WHERE key = ? AND stored_at >= ?",
                               (key, since)).fetchone()
        return found[0] if found else None

    def put(self, key: str, at: float, body: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, at, body))

    def drop(self, key: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM replies WHERE key = ?", (key,))

    def _connect(self) -> closing[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return closing(db)


class PostgresStore:
    """Table ``booker_shared_replies`` of the rate budget's database: every host's runs share
    it. One autocommit connection per run, shared by its threads under a lock."""

    fix = _PG_FIX

    def __init__(self, dsn: str) -> None:
        import psycopg  # only when chosen, as the Postgres bucket

        self.errors = (psycopg.Error,)
        self.where = f"PostgreSQL table {PG_TABLE}"
        self.dsn, self._lock = dsn, threading.Lock()

    def open(self) -> None:
        import psycopg

        self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        with self._lock, self._conn.transaction():
            # concurrent CREATE TABLE IF NOT EXISTS can collide in pg_type: serialize it
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (PG_TABLE,))
            self._conn.execute(_PG_SCHEMA)

    def purge(self, before: float) -> None:
        self._run(f"DELETE FROM {PG_TABLE} WHERE stored_at < %s", (before,))

    def get(self, key: str, since: float) -> str | None:
        found = self._run(f"SELECT body FROM {PG_TABLE} WHERE key = %s AND stored_at >= %s",
                          (key, since))
        return found[0] if found else None

    def put(self, key: str, at: float, body: str) -> None:
        self._run(f"INSERT INTO {PG_TABLE} VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
                  " stored_at = EXCLUDED.stored_at, body = EXCLUDED.body", (key, at, body))

    def drop(self, key: str) -> None:
        self._run(f"DELETE FROM {PG_TABLE} WHERE key = %s", (key,))

    def _run(self, sql: str, params: tuple) -> tuple | None:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            return cursor.fetchone() if cursor.description else None


def store_for(budget: RateBudget) -> Store:
    """The store beside the rate budget: Postgres when its bucket is, else the host's file."""
    if budget.bucket == "postgres":
        return PostgresStore(budget.postgres_dsn)
    return FileStore(replies_path())


class SharedReplies:
    """The replies of one backfill (``scope``: its id) to one API host, in ``store`` (by
    default the host's file; ``store_for`` picks the one beside the rate budget)."""

    def __init__(self, scope: str, host: str, *, ttl: float = DEFAULT_TTL_SECONDS,
                 store: Store | None = None, clock: Callable[[], float] = time.time) -> None:
        self.scope, self.host, self.ttl, self.clock = scope, host, ttl, clock
        self.store = store or FileStore(replies_path())
        try:
            self.store.open()
            self.store.purge(self.clock() - self.ttl)  # expired replies of every backfill go
            self.usable = True
        except self.store.errors as exc:  # said once: this run then asks for itself
            self._warn("unavailable", exc)
            self.usable = False

    def get_or_fetch(self, call: Any, fetch: Callable[[], Any],
                     fresh: Callable[[Any], bool] = lambda reply: True) -> tuple[Any, bool]:
        """The reply to ``call`` (any JSON-able description of it): kept, or ``fetch()``ed
        and kept. Returns it and whether it was kept (no request made). ``fresh``: whether a
        kept reply may still be used (a token: until it is due for renewal)."""
        if not self.usable:
            return fetch(), False
        key = self._key(call)
        try:
            found = self.store.get(key, self.clock() - self.ttl)
        except self.store.errors as exc:  # a full disk, a locked or broken file, a lost server
            self._warn("unreadable, asking Booker", exc)
            found = None
        if found and fresh(kept := json.loads(found)):
            return kept, True
        reply = fetch()  # two runs asking at once both fetch: the same answer, kept twice
        try:
            self.store.put(key, self.clock(), json.dumps(reply))
        except self.store.errors as exc:
            self._warn("not kept", exc)
        return reply, False

    def forget(self, call: Any) -> None:
        """Drop the kept reply to ``call`` (a token Booker refused)."""
        if not self.usable:
            return
        try:
            self.store.drop(self._key(call))
        except self.store.errors as exc:
            self._warn("could not drop a reply", exc)

    def _warn(self, what: str, exc: Exception) -> None:
        log.warning("shared replies %s (%s: %s): %s", what, self.store.where,
                    " ".join(str(exc).split()), self.store.fix)

    def _key(self, call: Any) -> str:
        return hashlib.sha256(json.dumps([self.scope, self.host, call], sort_keys=True,
                                         default=str).encode()).hexdigest()
