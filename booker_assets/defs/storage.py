"""The warehouse file: connections under one lock, and the one way to name a table.

Every reader and writer of the DuckDB file (the IO manager, the checks, the demo, the CLI)
takes its connection from ``connect_locked`` and names tables with ``qualified`` (or writes SQL
with ``{table}`` placeholders rendered by ``render``), so any accepted ``BOOKER_DUCKDB_PATH``
works for all of them: DuckDB names the catalog after the file, and in a file named
``booker.duckdb`` a bare ``booker.orders`` is ambiguous.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource

from booker_assets.errors import BookerError

SCHEMA = "booker"


class BookerStorageError(BookerError):
    """A DuckDB read or write failed; ``where`` names the database, table and slice."""


class BookerStorageBusy(BookerStorageError):
    """Another process holds the database file: waiting heals it."""

    transient = True


_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def connect_locked(
    database: str, read_only: bool = False, timeout_seconds: float = 600
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection held under the lock every Booker reader and writer takes.

    Not re-entrant: do not call it again (same database) while holding its connection.
    """
    path = prepare_path(database, read_only)
    deadline = time.monotonic() + timeout_seconds
    with _thread_lock(path, deadline), _file_lock(path, deadline, timeout_seconds):
        config = {"access_mode": "READ_ONLY"} if read_only else {}
        with DuckDBResource(database=str(path), connection_config=config).get_connection() as conn:
            try:
                yield conn
            finally:  # get_connection skips close() when the body raises
                conn.close()


def prepare_path(database: str, read_only: bool) -> Path:
    path = Path(database).expanduser().resolve()
    if read_only and not path.exists():
        # checked here: DuckDB's "file not found" would be retried by backoff for ~100 s
        raise BookerStorageError(
            "the file does not exist", where=f"DuckDB {path}", fix="materialize an asset first"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f"{path.name}.lock").touch()
    except OSError as exc:
        raise BookerStorageError(
            f"cannot create the database or its lock file: {exc}",
            where=f"DuckDB {path}",
            fix="point BOOKER_DUCKDB_PATH (the IO manager's `database`) at a writable directory",
        ) from exc
    if path.exists() and not read_only and not os.access(path, os.W_OK):
        raise BookerStorageError(
            "the database file is not writable",
            where=f"DuckDB {path}",
            fix="fix its permissions or point BOOKER_DUCKDB_PATH (`database`) elsewhere",
        )
    return path


@contextmanager
def _thread_lock(path: Path, deadline: float) -> Iterator[None]:
    # flock is per open file, so threads would also exclude each other; this lock just
    # makes them wait in-process and keeps DuckDB's same-process instance cache consistent.
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(path, threading.Lock())
    if not lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
        raise BookerStorageError(
            "another thread of this process holds the DuckDB file", where=f"DuckDB {path}"
        )
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _file_lock(path: Path, deadline: float, timeout_seconds: float) -> Iterator[None]:
    lock_path = path.parent / f"{path.name}.lock"
    with open(lock_path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BookerStorageBusy(
                        f"another process holds the DuckDB file (lock {lock_path}) for more"
                        f" than {timeout_seconds:g} s",
                        where=f"DuckDB {path}",
                        fix="wait for the other run or raise lock_timeout_seconds",
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(conn: duckdb.DuckDBPyConnection, table: str | None = None,
              schema: str = SCHEMA) -> str:
    """``catalog.schema[.table]``, quoted: the one way every module names a table."""
    # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unfinished
    ((catalog,),) = conn.execute("SELECT current_database()").fetchall()
    return ".".join(map(quote, (catalog, schema, *([table] if table else []))))


class _Names(dict):
    def __init__(self, conn: duckdb.DuckDBPyConnection, schema: str) -> None:
        super().__init__()
        self._conn, self._schema = conn, schema

    def __missing__(self, table: str) -> str:
        self[table] = qualified(self._conn, table, self._schema)
        return self[table]


def render(conn: duckdb.DuckDBPyConnection, sql: str, schema: str = SCHEMA) -> str:
    """``sql`` with each ``{table}`` placeholder replaced by that table's qualified name."""
    return sql.format_map(_Names(conn, schema))


def markdown_table(frame: pd.DataFrame, cell: int = 40, limit: int = 2000) -> str:
    """A GitHub-style markdown table of ``frame`` (``tabulate`` is not installed), bounded:
    cells cut at ``cell`` characters and the whole at ``limit`` bytes, since Dagster keeps it in
    every event that carries it (a 2 MB note must not become a 2 MB event)."""

    def text(value: object) -> str:
        shown = str(value).replace("|", "\\|").replace("\n", " ")
        return shown if len(shown) <= cell else shown[: cell - 1] + "…"

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(map(text, cells)) + " |"

    header = [line(frame.columns), line(["---"] * len(frame.columns))]
    table = "\n".join(header + [line(row) for row in frame.itertuples(index=False)])
    if len(table.encode()) <= limit:
        return table
    return table.encode()[:limit].decode(errors="ignore") + " …"
