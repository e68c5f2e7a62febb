"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary directory, ``postgres``
on 127.0.0.1 at a free port, gone when the session ends (or when the test process dies).

Used by the Dagster-on-Postgres end-to-end test and the shared rate bucket's tests; reusable by
any test that needs a Postgres (a DuckLake catalog, say): take the ``postgres_server`` fixture
for the server, ``postgres_dsn`` for a fresh database of its own. Debian's ``postgresql``
package provides the binaries (``make postgres-bin`` installs it; ``make test`` does that first).

PostgreSQL refuses to run as root, and no flag lifts that: as root the server runs as the
``postgres`` system user the package creates (or ``nobody``), in a directory under ``/tmp``
it owns. Not pytest's ``tmp_path``: ``/tmp/pytest-of-root`` is 0700, closed to that user.

Not ``pytest-postgresql`` (10.0 tried): its ``postgresql_proc`` runs ``pg_ctl`` as the test
process's user, which as root (CI, the developers' machines) stops at "pg_ctl: cannot be run as
root"; a ``runuser -u postgres`` wrapper as its executable then fails in ``initdb``, whose data
directory is under that 0700 ``tmp_path``; and its server, started detached by ``pg_ctl``,
outlives a killed pytest, which the parent-death signal below prevents.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

INSTALL_HINT = "run `make postgres-bin` (Debian: apt-get install postgresql)"
START_TIMEOUT_S = 60.0  # initdb + start take 1-5 s on a loaded 2-core machine
_names = itertools.count(1)

# Loaded here, in the parent: the child's preexec_fn runs after the switch to the server's user,
# who may not be allowed to read this interpreter's files (a Python under /root), so it must not
# import or load anything.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG, _SIGINT = 1, 2


def find_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: $PG_BIN, Debian's newest, or PATH's."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
                         key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    base: Path
    port: int
    process: subprocess.Popen
    host: str = "127.0.0.1"
    user: str = "postgres"  # the superuser initdb made; trust authentication on loopback

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (psycopg, DuckDB's postgres and ducklake extensions)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def create_database(self) -> tuple[str, str]:
        """A new empty database: its name and DSN."""
        name = f"test_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name, self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(_SIGINT)  # "fast" shutdown: ends sessions, no recovery
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends the server SIGINT when the test process dies, even by
    SIGKILL, so no postgres outlives a killed pytest. Set after the uid switch, which would
    clear it."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, _SIGINT, 0, 0, 0)


def _as_user() -> dict[str, Any]:
    """Popen arguments that drop root to the server's user (none when not root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise RuntimeError("running as root, and there is no `postgres` or `nobody` user to run "
                       "PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _initdb(pg_bin: Path, base: Path, env: dict[str, str], as_user: dict[str, Any]) -> Path:
    data = base / "data"
    data.mkdir(mode=0o700)
    if as_user:
        for path in (base, data):
            os.chown(path, as_user["user"], as_user["group"])
    subprocess.run([str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
                   check=True, capture_output=True, env=env, cwd=base, **as_user)
    return data


def _launch(pg_bin: Path, data: Path, port: int, env: dict[str, str],
            as_user: dict[str, Any]) -> subprocess.Popen:
    settings = {
        "listen_addresses": "127.0.0.1", "port": port,
        # the default /var/run/postgresql may not exist; a private one keeps servers apart
        "unix_socket_directories": data.parent,
        # a test server holds nothing worth a crash-safe write
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        # a webserver, a daemon and their runs each keep a few connections
        "max_connections": 200,
    }
    args = [str(pg_bin / "postgres"), "-D", str(data)]
    args += [part for key, value in settings.items() for part in ("-c", f"{key}={value}")]
    with (data.parent / "postgres.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=data.parent, preexec_fn=_die_with_parent if _LIBC else None,
                                **as_user)


def _wait_ready(server: PostgresServer, deadline: float) -> bool:
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            psycopg.connect(server.dsn(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


def start_server() -> PostgresServer:
    """A fresh cluster on a free loopback port; raises RuntimeError saying why it cannot."""
    pg_bin = find_bin()
    if pg_bin is None:
        raise RuntimeError(f"the PostgreSQL server binaries are not installed: {INSTALL_HINT}")
    as_user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="booker-pgtest-"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
           "LANG": "C.UTF-8", "TZ": "UTC"}
    deadline = time.monotonic() + START_TIMEOUT_S
    data = _initdb(pg_bin, base, env, as_user)
    for _attempt in range(3):  # the free port may be taken before postgres binds it
        port = _free_port()
        server = PostgresServer(base, port, _launch(pg_bin, data, port, env, as_user))
        if _wait_ready(server, deadline):
            return server
        server.process.kill()
        server.process.wait()
    log = (base / "postgres.log").read_text(errors="replace")[-2000:]
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"postgres did not start:\n{log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the session. Missing binaries fail the test (never a silent skip: CI
    installs them through `make test`), naming the command that installs them."""
    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    name, dsn = postgres_server.create_database()
    try:
        yield dsn
    finally:
        postgres_server.drop_database(name)
