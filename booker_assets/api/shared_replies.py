"""Replies shared by the runs of one backfill: a call that no partition day shapes is asked once.

Dagster's planner cuts a backfill into runs as it sees fit: a day of many locations, or a
month of one location. A call whose reply does not depend on the partition day — a location's
record, an employee's schedule for a whole month, a customer's progress notes — would be asked
again by every day-run that needs it: 30 day-runs, 30 times the same schedule month, and a
customer changed on 5 days asked 5 times. Here the first run that asks keeps the reply; the
backfill's other runs read it. So a backfill costs the requests of the location-days it
covers, however it is cut.

Every run is its own process, so the replies live in one SQLite file of the host (beside the
rate bucket's state; the file and its directory only this user reads), keyed by the
backfill's id, the API host and the call. A reply is kept ``ttl`` seconds at most: within
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
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from booker_assets.api.ratelimit import host_dir

log = logging.getLogger("booker_assets.api.shared_replies")

DEFAULT_TTL_SECONDS = 12 * 3600.0
_FIX = ("the load goes on, each run asking for itself; free space there or delete the file "
        "(it holds nothing the warehouse lacks)")
_SCHEMA = """CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, stored_at REAL NOT NULL, body TEXT NOT NULL)"""


def replies_path() -> Path:
    """The host's file (one per user), beside the rate bucket's state (``ratelimit.py``)."""
    return host_dir() / "shared-replies.sqlite"


class SharedReplies:
    """The replies of one backfill (``scope``: its id) to one API host."""

    def __init__(self, scope: str, host: str, *, ttl: float = DEFAULT_TTL_SECONDS,
                 path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.scope, self.host, self.ttl, self.clock = scope, host, ttl, clock
        self.path = path or replies_path()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # customers' replies: only this user reads them (SQLite gives its -wal and -shm
            # files the database file's mode), even in a directory others can enter
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)
            with self._connect() as db:  # expired replies of every backfill go now
                db.execute(_SCHEMA)
                db.execute("DELETE FROM replies WHERE stored_at < ?",
                           (self.clock() - self.ttl,))
        except (sqlite3.Error, OSError) as exc:
            log.warning("shared replies unavailable (%s: %s): %s", self.path, exc, _FIX)

    def get_or_fetch(self, call: Any, fetch: Callable[[], Any],
                     fresh: Callable[[Any], bool] = lambda reply: True) -> tuple[Any, bool]:
        """The reply to ``call`` (any JSON-able description of it): kept, or ``fetch()``ed
        and kept. Returns it and whether it was kept (no request made). ``fresh``: whether a
        kept reply may still be used (a token: until it is due for renewal)."""
        key = self._key(call)
        try:
            with self._connect() as db:
                found = db.execute("SELECT body FROM replies WHERE key = ? AND stored_at >= ?",
                                   (key, self.clock() - self.ttl)).fetchone()
        except (sqlite3.Error, OSError) as exc:  # a full disk, a locked or broken file: ask Booker
            log.warning("shared replies unreadable (%s: %s), asking Booker: %s", self.path,
                        exc, _FIX)
            found = None
        if found and fresh(kept := json.loads(found[0])):
            return kept, True
        reply = fetch()  # two runs asking at once both fetch: the same answer, kept twice
        try:
            with self._connect() as db:
                db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?)",
                           (key, self.clock(), json.dumps(reply)))
        except (sqlite3.Error, OSError) as exc:
            log.warning("shared replies not kept (%s: %s): %s", self.path, exc, _FIX)
        return reply, False

    def forget(self, call: Any) -> None:
        """Drop the kept reply to ``call`` (a token Booker refused)."""
        try:
            with self._connect() as db:
                db.execute("DELETE FROM replies WHERE key = ?", (self._key(call),))
        except (sqlite3.Error, OSError) as exc:
            log.warning("shared replies: could not drop a reply (%s: %s): %s", self.path, exc,
                        _FIX)

    def _key(self, call: Any) -> str:
        return hashlib.sha256(json.dumps([self.scope, self.host, call], sort_keys=True,
                                         default=str).encode()).hexdigest()

    def _connect(self) -> closing[sqlite3.Connection]:
        # A connection per use: runs' threads and processes share the file; WAL lets readers
        # go on while one writes, and a writer waits for another rather than failing.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return closing(db)

