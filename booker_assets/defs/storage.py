"""The warehouse: where the Booker tables live, how each reader and writer connects to it, and
the one way to name a table.

``BOOKER_WAREHOUSE`` picks one of two:

- ``duckdb`` (the default): one DuckDB file. DuckDB lets one process at a time write a file, so
  every writer of ours takes it under a lock (``<db>.lock``) and writers queue. A process
  outside this code holding the file (an analyst's DBeaver, ``duckdb.connect(path,
  read_only=True)`` on it) makes a write wait: the load says at once which PID holds it and
  what to do, says it again every ``LOG_EVERY_S`` and gives up after ``BOOKER_LOCK_WAIT_SECONDS``
  (the fetched rows wait in memory meanwhile, so nothing is fetched twice). Analysts read the
  *read copy* ``<name>.read.duckdb`` instead: after each run, under the writers' lock, the
  copy's spare buffer is brought up to date with the slices written since it was published
  (one transaction) and linked at the copy's name by ``os.replace``; a whole copy of the
  file only when the slices cannot say what changed. A reader holds the file it opened (its
  inode) until it reconnects, never a lock a load needs, and never sees a half-written copy.
- ``ducklake``: DuckDB's lakehouse format, a Postgres catalog plus Parquet files under a data
  path, which many processes and hosts write and read at once (snapshot isolation; readers
  never block writers). Two commits can still conflict (both deleted rows of one data file,
  both created one table); the whole transaction is then retried, ``LAKE_WRITE_ATTEMPTS`` times
  at most. The extensions load from the ``duckdb-ext-*`` wheels' files: nothing is downloaded.

Every reader and writer (the IO manager, the checks, the demo, the CLI) connects through a
``Warehouse`` and names tables with ``qualified`` (or writes SQL with ``{table}`` placeholders
rendered by ``render``), so both warehouses and any accepted ``BOOKER_DUCKDB_PATH`` work for all
of them: DuckDB names a file's catalog after the file, and in a file named ``booker.duckdb`` a
bare ``booker.orders`` is ambiguous.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.util
import logging
import os
import random
import re
import shutil
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb

from booker_assets.errors import BookerError
from booker_assets.settings import DEFAULT_LOCK_WAIT_SECONDS, Settings

SCHEMA = "booker"
LAKE_ALIAS = "booker_lake"  # the DuckLake's catalog name in every connection
LAKE_WRITE_ATTEMPTS = 10  # whole-transaction attempts of a DuckLake write that meets conflicts
LOG_EVERY_S = 30.0  # a load waiting for the file says so again this often
POLL_S = 0.5  # and tries the file again this often
QUEUE_QUIET_S = 5.0  # another Booker writer's turn is normal: said only when it lasts this long
_T = TypeVar("_T")
_LOG = logging.getLogger(__name__)


class Log(Protocol):
    """What a wait reports through: a Dagster context's ``log`` or a ``logging.Logger``."""

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


class BookerStorageError(BookerError):
    """A read or write of the warehouse failed; ``where`` names the database, table and slice."""


class BookerStorageBusy(BookerStorageError):
    """Another process held the database file for the whole wait.

    Not retried by the step: the wait was the patience BOOKER_LOCK_WAIT_SECONDS asked for, and
    a step retry would fetch from Booker again what the step had already fetched."""


class BookerWriteConflict(BookerStorageError):
    """Another writer of the DuckLake committed first; the whole transaction is retried."""


# ---------------------------------------------------------------- the warehouses


class Warehouse(ABC):
    """Where the tables live; ``where`` names it in messages."""

    where: str

    @abstractmethod
    def connect(self, read_only: bool = False,
                log: Log | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection for this code's own writes and reads, which must see the newest data."""

    @abstractmethod
    def connect_reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """The analysts' read path: read-only, and never in a load's way."""

    def write(self, work: Callable[[duckdb.DuckDBPyConnection], _T],
              log: Log | None = None, needs: int = 0) -> _T:
        """``work`` (one transaction) on a writing connection; ``needs``: about how many bytes
        it writes (a full disk's message says it)."""
        with self.connect(log=log) as conn:
            return work(conn)

    def exclusive(self, log: Log | None = None) -> AbstractContextManager[None]:
        """The writers' turn without a connection, for a writer in another process (dbt)."""
        return nullcontext()  # a DuckLake takes many writers at once

    @abstractmethod
    def publish(self, log: Log | None = None) -> None:
        """Bring the analysts' read path up to date (after a run's writes)."""

    @property
    def reads_from(self) -> str:
        """What analysts read, for messages."""
        return self.where

    def stale(self) -> str | None:
        """Why the analysts' read path is older than the warehouse (None: it is current)."""
        return None

    def __str__(self) -> str:
        return self.where


class DuckDBFile(Warehouse):
    """One DuckDB file, written under ``<db>.lock``; analysts read its published copy."""

    def __init__(self, database: str, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS) -> None:
        self.database, self.lock_wait_seconds = database, lock_wait_seconds
        self.where = f"DuckDB {database}"

    def connect(self, read_only: bool = False,
                log: Log | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return connect_locked(self.database, read_only, self.lock_wait_seconds, log)

    @contextmanager
    def connect_reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        copy = read_copy_path(self.database)
        if not copy.exists():
            raise BookerStorageError("no read copy has been published yet",
                                     where=f"DuckDB {copy}", fix="materialize an asset first")
        conn = duckdb.connect(str(copy), read_only=True)
        try:
            yield conn
        finally:
            conn.close()

    def write(self, work: Callable[[duckdb.DuckDBPyConnection], _T],
              log: Log | None = None, needs: int = 0) -> _T:
        try:
            return super().write(work, log)
        except BookerStorageError as exc:
            if not disk_full(exc):
                raise
            live = Path(self.database).expanduser().resolve()
            raise no_space(live, "the write", needs, exc.where or self.where) from exc

    @contextmanager
    def exclusive(self, log: Log | None = None) -> Iterator[None]:
        """Our writers wait meanwhile; a process outside this code may still hold the file."""
        path = prepare_path(self.database, read_only=False)
        wait = _Wait(f"DuckDB {path}", self.lock_wait_seconds, log or _LOG)
        with _thread_lock(path, wait), _file_lock(path, wait):
            yield

    def publish(self, log: Log | None = None) -> None:
        publish_read_copy(self.database, self.lock_wait_seconds, log)

    @property
    def reads_from(self) -> str:
        return f"DuckDB {read_copy_path(self.database)}"

    def stale(self) -> str | None:
        live, copy = Path(self.database).expanduser().resolve(), read_copy_path(self.database)
        if not live.exists() or _is_current(copy, live):
            return None
        if not copy.exists():
            return f"no read copy {copy} has been published yet"
        published = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(copy.stat().st_mtime))
        return (f"the read copy {copy} was published {published}, before the latest writes to"
                f" {live}: what it holds is not this run's")


class DuckLake(Warehouse):
    """A DuckLake: a Postgres catalog (libpq connection string) and a data path."""

    def __init__(self, catalog: str, data_path: str) -> None:
        self.catalog, self.data_path = catalog, _data_path(data_path)
        self.where = f"DuckLake {LAKE_ALIAS} (catalog {catalog}, data {self.data_path})"

    def connect(self, read_only: bool = False,
                log: Log | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        # this code's readers read what its writers attached: one ATTACH per process
        return self._cursor(attached_read_only=False)

    def connect_reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return self._cursor(attached_read_only=True)

    @contextmanager
    def _cursor(self, attached_read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the process's attached lake (an ATTACH costs about a second)."""
        cursor = _attached_lake(self, attached_read_only).cursor()
        try:
            cursor.execute(f"USE {LAKE_ALIAS}")
            yield cursor
        finally:
            cursor.close()

    def publish(self, log: Log | None = None) -> None:
        """Nothing to publish: readers read the lake's newest snapshot themselves."""

    def write(self, work: Callable[[duckdb.DuckDBPyConnection], _T],
              log: Log | None = None, needs: int = 0) -> _T:
        """``work`` again, on a fresh snapshot, while it meets another writer's commit."""
        log = log or _LOG
        with self.connect() as conn:
            for attempt in range(1, LAKE_WRITE_ATTEMPTS + 1):
                try:
                    return work(conn)
                except (BookerWriteConflict, duckdb.TransactionException) as exc:
                    cause = exc.cause if isinstance(exc, BookerError) else one_line(exc)
                    with suppress(duckdb.Error):
                        conn.rollback()
                    if attempt == LAKE_WRITE_ATTEMPTS:
                        raise BookerStorageError(
                            f"another writer committed first {attempt} times in a row; nothing"
                            f" was changed: {cause}", where=self.where,
                            fix="run fewer loads at once into this DuckLake, then re-run this one",
                        ) from exc
                    log.info(f"{self.where}: another writer committed first ({cause}); retrying "
                             f"the whole transaction (attempt {attempt + 1} of "
                             f"{LAKE_WRITE_ATTEMPTS})")
                    time.sleep(random.uniform(0.05, 0.2) * attempt)  # jitter: both may retry
        raise AssertionError("unreachable")


def warehouse_of(settings: Settings) -> Warehouse:
    """The warehouse ``settings`` choose (BOOKER_WAREHOUSE)."""
    return open_warehouse(settings.warehouse, settings.duckdb_path, settings.ducklake_catalog,
                          settings.ducklake_data_path, settings.lock_wait_seconds)


def open_warehouse(kind: str, database: str, catalog: str = "", data_path: str = "",
                   lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS) -> Warehouse:
    if kind == "ducklake":
        return DuckLake(catalog, data_path)
    return DuckDBFile(database, lock_wait_seconds)


# ---------------------------------------------------------------- the DuckDB file


_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()
# DuckDB's message when another process holds the file: it names the program and its PID.
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_NEWER_FILE = "created with an newer version of DuckDB"
_NO_SPACE = "No space left on device"  # strerror(ENOSPC), as DuckDB's messages quote it
_MARGIN = 2**20  # with a tenth more: DuckDB's WAL and checkpoint write more than the rows


@contextmanager
def connect_locked(database: str, read_only: bool = False,
                   timeout_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
                   log: Log | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection held under the lock every Booker reader and writer takes; waits (and
    says why) while another process holds the file, ``timeout_seconds`` at most.

    Not re-entrant: do not call it again (same database) while holding its connection.
    """
    path = prepare_path(database, read_only)
    wait = _Wait(f"DuckDB {path}", timeout_seconds, log or _LOG)
    with _thread_lock(path, wait), _file_lock(path, wait):
        conn = _connect_file(path, read_only, wait)
        try:
            yield conn
        finally:
            conn.close()


def prepare_path(database: str, read_only: bool) -> Path:
    path = Path(database).expanduser().resolve()
    if read_only and not path.exists():
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


class _Wait:
    """One bounded wait for the file, whoever holds it: says at once who holds it and what to
    do, again every LOG_EVERY_S, and raises BookerStorageBusy when the time is up."""

    def __init__(self, where: str, seconds: float, log: Log) -> None:
        self.where, self.seconds, self.log = where, seconds, log
        self.started = time.monotonic()
        self.said: float | None = None  # when the wait was last reported

    def left(self) -> float:
        return max(self.seconds - (time.monotonic() - self.started), 0.0)

    def pause(self, holder: str, fix: str, quiet: float = 0.0) -> None:
        waited = time.monotonic() - self.started
        if waited >= self.seconds:
            raise BookerStorageBusy(
                f"{holder} held it for the {self.seconds:g} s a load waits; nothing was written,"
                " and the step is not retried (a retry would fetch from Booker again)",
                where=self.where,
                fix=f"{fix}; then re-run these partitions (BOOKER_LOCK_WAIT_SECONDS sets the wait)",
            )
        if waited >= quiet and (self.said is None or time.monotonic() - self.said >= LOG_EVERY_S):
            self.log.warning(f"{self.where} is held by {holder}: waited {waited:.0f} s, waiting "
                             f"up to {self.left():.0f} s more. Fix: {fix}")
            self.said = time.monotonic()
        time.sleep(min(POLL_S, self.left()))

    def over(self) -> None:
        if self.said is not None:
            self.log.info(f"{self.where} is free again after "
                          f"{time.monotonic() - self.started:.1f} s: going on")


@contextmanager
def _thread_lock(path: Path, wait: _Wait) -> Iterator[None]:
    # flock is per open file, so threads would also exclude each other; this lock just
    # makes them wait in-process and keeps DuckDB's same-process instance cache consistent.
    with _thread_locks_guard:
        lock = _thread_locks.setdefault(path, threading.Lock())
    if not lock.acquire(timeout=wait.left()):
        raise BookerStorageBusy(
            f"another thread of this process held the file for the {wait.seconds:g} s a load"
            " waits", where=wait.where)
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _file_lock(path: Path, wait: _Wait) -> Iterator[None]:
    """The writers' queue: an flock on ``<db>.lock``, which holds the PID of its holder."""
    lock_path = path.parent / f"{path.name}.lock"
    with open(lock_path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                wait.pause(f"another process of this project ({_lock_holder(lock_path)}, lock "
                           f"{lock_path})", "writers take turns; if this lasts, see what that"
                           " process is doing", quiet=QUEUE_QUIET_S)
        os.ftruncate(handle.fileno(), 0)
        os.write(handle.fileno(), f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_holder(lock_path: Path) -> str:
    with suppress(OSError):
        pid = lock_path.read_text().strip()
        if pid.isdigit():
            return f"PID {pid}"
    return "PID unknown"


def _connect_file(path: Path, read_only: bool, wait: _Wait) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, waiting while another process holds the file (DuckDB names it)."""
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            held = _HOLDER.search(message)
            if held is None:
                raise _unreadable(path, message) from exc
            wait.pause(_describe_holder(held), _holder_fix(path))
            continue
        wait.over()
        return conn


def _describe_holder(held: re.Match) -> str:
    pid = held["pid"]
    command = ""
    with suppress(OSError):  # the holder may be on this host: its command line says who
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return f"PID {pid} ({command or held['program']})"


def _holder_fix(path: Path) -> str:
    return (f"close that process's connection to the live file (DBeaver: Disconnect; a notebook:"
            f" con.close()). Analysts read {read_copy_path(str(path))} instead, which a load"
            f" never waits for")


def _unreadable(path: Path, message: str) -> BookerStorageError:
    if _NEWER_FILE in message:
        return BookerStorageError(
            "the file was written by a newer DuckDB (2.x) than this version's 1.4.4, the LTS line"
            " the DuckLake extensions are built for, which cannot read it; nothing was changed",
            where=f"DuckDB {path}",
            fix="export it with DuckDB 2 and import it here, as the README's 'A database file"
                " from DuckDB 2' says",
        )
    return BookerStorageError(message.splitlines()[0], where=f"DuckDB {path}")


# ---------------------------------------------------------------- the read copy


def read_copy_path(database: str) -> Path:
    """Where analysts read: ``data/booker_assets.read.duckdb`` beside the file. Its catalog is
    named like the live file's (DuckDB stops at the first dot), so queries read the same."""
    path = Path(database).expanduser().resolve()
    return path.with_name(f"{path.stem}.read{path.suffix}")


# The copy's name links one of two files, its buffers ``.<copy>.a`` and ``.<copy>.b``, in turn.
# A publication brings the other one (the spare, which no new reader can open) up to date and
# then links it at the copy's name: the old cost, a copy of the whole file after every run,
# grew with the warehouse; bringing the spare up to date costs the slices written since it
# was published, two runs ago.
BUFFERS = ("a", "b")
SPARE = "_booker_spare"  # the spare's catalog name while it is attached to the live file
LEDGERS = ("_loads", "_rejects")  # keyed by table_name and slice, written with each slice
# How far the writers' clock may step back between two publications (``_ledgered``)
CLOCK_MARGIN = timedelta(minutes=10)
# What only a copy of the whole file carries over (the slices never rewrite them).
_OTHER_OBJECTS = (
    "SELECT 'sequences' FROM duckdb_sequences() WHERE database_name = $db UNION ALL"
    " SELECT 'macros' FROM duckdb_functions() WHERE database_name = $db AND NOT internal"
    " AND function_type LIKE '%macro%' UNION ALL SELECT 'types' FROM duckdb_types() WHERE"
    " database_name = $db AND NOT internal UNION ALL SELECT 'indexes' FROM duckdb_indexes()"
    " WHERE database_name = $db")


class _WholeCopy(Exception):
    """The spare cannot be brought up to date slice by slice; the message says why."""


def publish_read_copy(database: str, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
                      log: Log | None = None) -> Path | None:
    """Bring the spare buffer up to date and link it at the read copy's name, atomically; the
    copy's path, or None when the copy is already as new as the file (or there is no file)."""
    live, copy = Path(database).expanduser().resolve(), read_copy_path(database)
    if not live.exists() or _is_current(copy, live):
        return None
    # A writing connection: no other process can hold the file, so none can write it while it
    # is read; after CHECKPOINT the file holds every commit and the WAL is gone.
    where = f"publishing the read copy DuckDB {copy}"
    with connect_locked(database, timeout_seconds=lock_wait_seconds, log=log) as conn:
        spare = _spare(copy)
        # what the disk needs, for a full disk's message: the slices, or the whole file
        needs = {"what": "a new read copy", "bytes": live.stat().st_size}
        try:
            conn.execute("CHECKPOINT")
            try:
                _update_spare(conn, spare, needs)
            except _WholeCopy as why:
                (log or _LOG).info(f"{where}: copying the whole file ({why})")
                needs.update(what="a new read copy", bytes=live.stat().st_size)
                _copy_whole(live, spare)
            os.utime(spare)  # its age is the publication's, even when no row changed
            spare.chmod(0o444)  # a reminder to open it read-only
            # A WAL beside the copy would be replayed into it: it can only come from someone
            # who wrote to an old copy, and the copy is replaced after every run.
            Path(f"{copy}.wal").unlink(missing_ok=True)
            _link(spare, copy)
        except (OSError, duckdb.Error) as exc:
            if disk_full(exc):
                raise no_space(live, str(needs["what"]), int(needs["bytes"]), where) from exc
            raise BookerStorageError(f"the copy was not made: {one_line(exc)}", where=where,
                                     fix="see the cause; analysts still read the previous copy"
                                     ) from exc
    return copy


def _spare(copy: Path) -> Path:
    """The buffer not linked at the copy's name (any, when none is)."""
    linked = copy.stat().st_ino if copy.exists() else None
    buffers = [copy.with_name(f".{copy.name}.{name}") for name in BUFFERS]
    return next(b for b in buffers if not (b.exists() and b.stat().st_ino == linked))


def _link(spare: Path, copy: Path) -> None:
    """The copy's name to the spare's file in one rename: a reader opens one or the other."""
    linking = copy.with_name(f".{copy.name}.{os.getpid()}.partial")
    linking.unlink(missing_ok=True)
    os.link(spare, linking)
    os.replace(linking, copy)


def _copy_whole(live: Path, spare: Path) -> None:
    """The checkpointed file copied to the spare's name (a new file: a reader still holding
    the old one keeps it)."""
    partial = spare.with_name(f"{spare.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(live, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        Path(f"{spare}.wal").unlink(missing_ok=True)
        os.replace(partial, spare)
    finally:
        partial.unlink(missing_ok=True)  # first: the space it took is part of the message


def _update_spare(conn: duckdb.DuckDBPyConnection, spare: Path,
                  needs: dict[str, str | int]) -> None:
    """The slices written since the spare was published, in one transaction of the spare (a
    kill leaves it as it was); ``needs``: what that writes, and about how many bytes."""
    if not spare.exists():
        raise _WholeCopy("a new read copy")
    spare.chmod(0o644)
    try:
        conn.execute(f"ATTACH {_literal(str(spare))} AS {SPARE}")
    except duckdb.Error as exc:
        if disk_full(exc):
            raise
        # a reader opened it before the last publication and holds it still (or it is unreadable):
        # a new file, which that reader never sees
        raise _WholeCopy(f"the previous copy is still open: {one_line(exc, 200)}") from exc
    try:
        conn.begin()
        try:
            _sync(conn, needs)
            conn.commit()
        except BaseException as exc:
            conn.rollback()
            if isinstance(exc, duckdb.Error) and not disk_full(exc):
                # a shape the slices cannot carry: the whole file still can
                raise _WholeCopy(f"the slices could not be copied: {one_line(exc, 200)}"
                                 ) from exc
            raise
        conn.execute(f"CHECKPOINT {SPARE}")
    finally:
        conn.execute(f"DETACH {SPARE}")


_Tables = dict[tuple[str, str], tuple[tuple[str, str], ...]]  # (schema, table) → columns


def _sync(conn: duckdb.DuckDBPyConnection, needs: dict[str, str | int]) -> None:
    """The spare made to hold what the live file holds: the slices whose ``_loads`` rows
    differ, other tables whole (dbt's marts, the schema version: small); ``needs`` says first
    about how many bytes that writes."""
    ((live_db,),) = conn.execute("SELECT current_database()").fetchall()
    if others := conn.execute(_OTHER_OBJECTS, {"db": live_db}).fetchall():
        raise _WholeCopy(f"the file holds {others[0][0]}, which the slices do not carry")
    live, spare = _tables(conn, live_db), _tables(conn, SPARE)
    ledgered = _ledgered(conn, live_db, live, spare)
    needs.update(what="the read copy's update", bytes=_bytes(conn, live_db, live, ledgered))
    views = _changed_views(conn, live_db)
    for schema, view in views:
        conn.execute(f"DROP VIEW IF EXISTS {_name(SPARE, schema, view)}")
    for schema, table in spare.keys() - live.keys():
        conn.execute(f"DROP TABLE {_name(SPARE, schema, table)}")
    for schema in sorted({schema for schema, _ in live}):
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(SPARE)}.{quote(schema)}")
    for (schema, table), columns in sorted(live.items()):
        target, source = _name(SPARE, schema, table), _name(live_db, schema, table)
        if (schema, table) in ledgered and spare.get((schema, table)) == columns:
            _copy_slices(conn, schema, table, source, target)
        else:
            conn.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}")
    _check_counts(conn, live_db, ledgered)
    conn.execute(f"USE {quote(SPARE)}")  # a view's SQL names its schema, not its catalog
    try:
        for schema, view in views:  # those the live file has
            for (sql,) in conn.execute(
                    "SELECT sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ?"
                    " AND view_name = ?", [live_db, schema, view]).fetchall():
                conn.execute(sql)
    finally:
        conn.execute(f"USE {quote(live_db)}")


def _tables(conn: duckdb.DuckDBPyConnection, database: str) -> _Tables:
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, kind in conn.execute(
            "SELECT c.schema_name, c.table_name, c.column_name, c.data_type FROM"
            " duckdb_columns() c JOIN duckdb_tables() t USING (database_name, schema_name,"
            " table_name) WHERE c.database_name = ? ORDER BY 1, 2, c.column_index",
            [database]).fetchall():
        found.setdefault((schema, table), []).append((column, kind))
    return {key: tuple(columns) for key, columns in found.items()}


def _ledgered(conn: duckdb.DuckDBPyConnection, live_db: str, live: _Tables,
              spare: _Tables) -> set[tuple[str, str]]:
    """The tables written only in slices that a ``_loads`` records, and the ``_loads``;
    temp table ``_changed`` then holds the slices whose ``_loads`` rows differ between the
    files. A ``_schema_version`` that differs: an upgrade rewrote rows, so the whole file.

    Only the ledgers' rows loaded since the spare's newest (less ``CLOCK_MARGIN``) are
    compared: a write replaces its slices' rows with rows of its own time, so the cost is
    that of the recent loads, not of every partition. A row deleted without a newer one
    (a removed location) leaves the counts apart: ``_check_counts`` then asks for the whole
    file."""
    changed = []
    schemas = sorted({schema for schema, table in live if table == "_loads"})
    for schema in schemas:
        for table in ("_loads", "_schema_version"):
            if (schema, table) in live and live[schema, table] != spare.get((schema, table)):
                raise _WholeCopy(f"{schema}.{table} changed shape")
        if (schema, "_schema_version") in live and conn.execute(
                _differ(_name(live_db, schema, "_schema_version"),
                        _name(SPARE, schema, "_schema_version"), "count(*)")).fetchall()[0][0]:
            raise _WholeCopy(f"the database was upgraded ({schema}._schema_version)")
        spare_ledger = _name(SPARE, schema, "_loads")
        ((since,),) = conn.execute(f"SELECT max(loaded_at) FROM {spare_ledger}").fetchall()
        recent = f" WHERE loaded_at >= TIMESTAMPTZ '{since - CLOCK_MARGIN}'" if since else ""
        changed.append(_differ(f"(FROM {_name(live_db, schema, '_loads')}{recent})",
                               f"(FROM {spare_ledger}{recent})",
                               f"DISTINCT {_literal(schema)} AS schema_name, table_name,"
                               " report_date, location_id"))
    conn.execute("CREATE OR REPLACE TEMP TABLE _changed (schema_name VARCHAR, table_name VARCHAR,"
                 " report_date DATE, location_id BIGINT)")
    for select in changed:
        conn.execute(f"INSERT INTO _changed {select}")
    ledgered = set()
    for schema in schemas:
        ledgered |= {(schema, table) for table in LEDGERS if (schema, table) in live}
        for (name,) in conn.execute(
                f"SELECT DISTINCT table_name FROM {_name(live_db, schema, '_loads')}").fetchall():
            columns = {column for column, _ in live.get((schema, name), ())}
            if {"report_date", "location_id"} <= columns:
                ledgered.add((schema, name))
    return ledgered


def _differ(one: str, other: str, select: str) -> str:
    """``select`` over the rows that are in only one of two tables of the same columns."""
    return (f"SELECT {select} FROM ((FROM {one} EXCEPT ALL FROM {other}) UNION ALL"
            f" (FROM {other} EXCEPT ALL FROM {one}))")


def _copy_slices(conn: duckdb.DuckDBPyConnection, schema: str, table: str, source: str,
                 target: str) -> None:
    """The changed slices of ``table``: deleted from the spare, copied from the live file."""
    # the ledger's and the rejects' slices are those of each row's table_name; a table's,
    # those of its name
    ledger = table in LEDGERS
    mine = " AND c.table_name = x.table_name" if ledger else " AND c.table_name = $table"
    params = {"schema": schema, **({} if ledger else {"table": table})}
    ((count, first, last),) = conn.execute(
        "SELECT count(*), min(report_date), max(report_date) FROM _changed c WHERE"
        f" c.schema_name = $schema{'' if ledger else mine}", params).fetchall()
    if not count:
        return
    # the days as constants: DuckDB then skips the row groups whose days lie outside them
    days = f" AND x.report_date BETWEEN DATE '{first}' AND DATE '{last}'" if first else ""
    slices = (f"c.schema_name = $schema{mine} AND x.report_date = c.report_date"
              " AND x.location_id IS NOT DISTINCT FROM c.location_id")
    conn.execute(f"DELETE FROM {target} x USING _changed c WHERE {slices}{days}", params)
    conn.execute(f"INSERT INTO {target} SELECT * FROM {source} x WHERE EXISTS"
                 f" (SELECT 1 FROM _changed c WHERE {slices}){days}", params)


def _check_counts(conn: duckdb.DuckDBPyConnection, live_db: str,
                  ledgered: set[tuple[str, str]]) -> None:
    """A table changed outside its slices (a write that did not record a ``_loads`` row)
    would leave the spare short or long: then the whole file."""
    for schema, table in sorted(ledgered):
        live, spare = (conn.execute(f"SELECT count(*) FROM {_name(db, schema, table)}"
                                    ).fetchall()[0][0] for db in (live_db, SPARE))
        if live != spare:
            raise _WholeCopy(f"{schema}.{table} holds {live} rows, its slices {spare}")


def _changed_views(conn: duckdb.DuckDBPyConnection, live_db: str) -> list[tuple[str, str]]:
    """The live file's views the spare lacks or defines otherwise, and the spare's views the
    live file lacks (dropped, not made)."""
    return conn.execute(_differ(
        f"(SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name ="
        f" {_literal(live_db)} AND NOT internal)",
        f"(SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name ="
        f" {_literal(SPARE)} AND NOT internal)", "DISTINCT schema_name, view_name")
        + " ORDER BY 1, 2").fetchall()


def _bytes(conn: duckdb.DuckDBPyConnection, database: str, live: _Tables,
           ledgered: set[tuple[str, str]]) -> int:
    """About what the update writes: the changed slices' rows and the tables copied whole,
    at the file's bytes per row."""
    ((path,),) = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?",
                              [database]).fetchall()
    sizes = dict(((schema, table), rows) for schema, table, rows in conn.execute(
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() WHERE"
        " database_name = ?", [database]).fetchall())
    sliced = sum(conn.execute(
        f"SELECT coalesce(sum(l.row_count), 0) FROM {_name(database, schema, '_loads')} l"
        " JOIN _changed c ON c.schema_name = ? AND c.table_name = l.table_name AND"
        " c.report_date = l.report_date AND c.location_id IS NOT DISTINCT FROM l.location_id",
        [schema]).fetchall()[0][0] for schema, table in ledgered if table == "_loads")
    whole = sum(rows for key, rows in sizes.items() if key in live and key not in ledgered)
    return Path(path).stat().st_size * (sliced + whole) // max(sum(sizes.values()), 1)


def _name(database: str, schema: str, table: str) -> str:
    return ".".join(map(quote, (database, schema, table)))


def disk_full(exc: BaseException | None) -> bool:
    """Whether a full disk caused ``exc``: an OSError's errno, or DuckDB's message (it wraps
    the OS error in its own exception, e.g. "Failed to commit: Could not write file ...")."""
    while exc is not None:
        if getattr(exc, "errno", None) == errno.ENOSPC or _NO_SPACE in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def no_space(live: Path, what: str, needs: int, where: str) -> BookerStorageError:
    """A full disk, said once: which disk, how much ``what`` needed, and what to free."""
    folder = live.parent
    free = shutil.disk_usage(folder).free
    ours = [p for p in (live, Path(f"{live}.wal"), read_copy_path(str(live))) if p.exists()]
    sizes = ", ".join(f"{p.name} {_mb(p.stat().st_size)}" for p in ours)
    short = max(needs - free, 0) + needs // 10 + _MARGIN
    return BookerStorageError(
        f"the disk of {folder} is full ({_NO_SPACE}): {what} needs about {_mb(needs)} more and"
        f" {_mb(free)} are free; nothing was changed",
        where=where,
        fix=f"free at least {_mb(short)} on that disk (files you no"
            f" longer need; this project keeps {sizes} there, which it needs), or point"
            f" BOOKER_DUCKDB_PATH at a larger disk; then re-run",
    )


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def _is_current(copy: Path, live: Path) -> bool:
    if not copy.exists():
        return False
    wal = Path(f"{live}.wal")
    changed = max(live.stat().st_mtime_ns, wal.stat().st_mtime_ns if wal.exists() else 0)
    return copy.stat().st_mtime_ns >= changed


# ---------------------------------------------------------------- the DuckLake


_lakes: dict[tuple[str, str, bool], duckdb.DuckDBPyConnection] = {}
_LAKE_CREATED_AT_ONCE = "Failed to initialize DuckLake"
_NO_LAKE_YET = "creating a new DuckLake is explicitly disabled"
_lakes_guard = threading.Lock()


def _data_path(raw: str) -> str:
    """A local data path as an absolute directory; a URL (s3://...) as it is."""
    return raw if "://" in raw else f"{Path(raw).expanduser().resolve()}/"


def _attached_lake(lake: DuckLake, read_only: bool) -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB with the lake attached (once per lake and mode)."""
    key = (lake.catalog, lake.data_path, read_only)
    with _lakes_guard:
        if key not in _lakes:
            _lakes[key] = _attach(lake, read_only)
        return _lakes[key]


def _attach(lake: DuckLake, read_only: bool) -> duckdb.DuckDBPyConnection:
    if "://" not in lake.data_path:
        Path(lake.data_path).mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(":memory:", config={
        "extension_directory": extension_directory(),
        "autoinstall_known_extensions": False,  # never download: the wheels' files only
        "autoload_known_extensions": True,  # ATTACH 'ducklake:postgres:' loads both
    })
    options = [f"DATA_PATH {_literal(lake.data_path)}", *(["READ_ONLY"] if read_only else [])]
    attach = (f"ATTACH {_literal('ducklake:postgres:' + lake.catalog)} AS {LAKE_ALIAS}"
              f" ({', '.join(options)})")
    for attempt in range(1, LAKE_WRITE_ATTEMPTS + 1):
        try:
            conn.execute(attach)
            return conn
        except duckdb.Error as exc:
            # The first ATTACH of a new catalog creates its tables: of two processes doing
            # that at once, one fails (Postgres: duplicate key) and finds them made next time.
            if _LAKE_CREATED_AT_ONCE in str(exc) and attempt < LAKE_WRITE_ATTEMPTS:
                time.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            conn.close()
            if _NO_LAKE_YET in str(exc):  # only a writer creates it
                raise BookerStorageError("the catalog holds no DuckLake yet", where=lake.where,
                                         fix="materialize an asset first: the first load"
                                             " creates it") from exc
            raise BookerStorageError(
                f"cannot attach the DuckLake: {one_line(exc)}", where=lake.where,
                fix="check that the Postgres server of BOOKER_DUCKLAKE_CATALOG is up, that its"
                    " database exists, that PGPASSWORD (or ~/.pgpass) holds its user's password,"
                    " and that BOOKER_DUCKLAKE_DATA_PATH is reachable",
            ) from exc
    raise AssertionError("unreachable")


def one_line(exc: Exception, limit: int = 400) -> str:
    """DuckDB's message on one line (DuckLake's conflicts say what conflicted on the third)."""
    return " ".join(str(exc).split())[:limit]


def extension_directory() -> str:
    """The ``duckdb-ext-*`` wheels' folder, laid out as DuckDB's extension_directory."""
    spec = importlib.util.find_spec("duckdb_ext")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "extensions").is_dir():
            return str(Path(folder) / "extensions")
    raise BookerStorageError(
        "the DuckLake extensions are not installed", where="BOOKER_WAREHOUSE=ducklake",
        fix="run `make install` (pyproject installs duckdb-ext-ducklake and duckdb-ext-postgres)")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------- naming


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


def drop_location(warehouse: Warehouse, location_id: int) -> dict[str, int]:
    """Delete every row of ``location_id`` from every table, in one transaction (a kill leaves
    all of them or none); the rows deleted per table."""

    def work(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
        tables = [name for (name,) in conn.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN"
            " information_schema.tables t USING (table_catalog, table_schema, table_name)"
            " WHERE c.table_catalog = current_database() AND c.table_schema = ?"
            " AND c.column_name = 'location_id' AND t.table_type = 'BASE TABLE' ORDER BY 1",
            [SCHEMA]).fetchall()]
        conn.begin()
        deleted = {table: conn.execute(f"DELETE FROM {qualified(conn, table)} WHERE "
                                       "location_id = ?", [location_id]).fetchall()[0][0]
                   for table in tables}
        conn.commit()
        return {table: n for table, n in deleted.items() if n}

    dropped = warehouse.write(work)
    warehouse.publish()
    return dropped
