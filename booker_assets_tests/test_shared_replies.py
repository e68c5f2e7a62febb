"""The runs of one backfill share what no partition day shapes (issue 16): a backfill cut into
day-runs asks each schedule month and location record once, as one range run would, and
stores the same rows. Runs outside a backfill share nothing.

The runs here are the shipped code location's (its assets, IO manager and resources) against
the sandbox, tagged as Dagster's backfill daemon tags a backfill's runs.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from booker_assets.api import auth
from booker_assets.api.ratelimit import RateBudget
from booker_assets.api.shared_replies import (
    PG_TABLE,
    FileStore,
    PostgresStore,
    SharedReplies,
    Store,
    store_for,
)
from booker_assets.catalogue.reports import GROUPS, Call, DateRange, PerParent
from booker_assets.defs.storage import connect_locked
from booker_assets.load.extract import FetchJob, observable_days, shared_by_backfill
from booker_assets_tests.conftest import load_range, make_defs, make_settings
from booker_sandbox import BookerSandbox

LOC = "1001"
FIRST = date(2025, 3, 3)
DAYS = [FIRST + timedelta(days=n) for n in range(3)]
SCHEDULES = ("GET /v4.1/merchant/employee/{EmployeeID}/schedule",
             "GET /v4.1/merchant/location/{ID}/schedule")
LOCATION = "GET /v4.1/merchant/location/{ID}"
TOKENS = ("POST /v5/auth/connect/token", "POST /v5/auth/context/update")
# no day window shapes these: a customer's calls, the employees list under the schedules
UNDATED = ("GET /v4.1/merchant/customer/{CustomerID}/memberships",
           "GET /v4.1/merchant/customer/{CustomerID}/progress_notes",
           "POST /v4.1/merchant/employees")
CUSTOMERS = "POST /v4.1/merchant/customers"  # a window per partition day: never shared
SELECTION = ["booker/employee_schedules", "booker/location_schedules",
             "booker/customer_memberships", "booker/notes"]


# ---------------------------------------------------------------- the store itself


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["file", "postgres"])
def store(request, tmp_path: Path) -> Store:
    """Each store, as ``BOOKER_RATE_BUCKET`` picks it: the host's file, the Postgres table."""
    if request.param == "file":
        return FileStore(tmp_path / "r.sqlite")
    return PostgresStore(request.getfixturevalue("postgres_dsn"))


def _kept(store: Store) -> int:
    if isinstance(store, FileStore):
        with sqlite3.connect(store.path) as db:
            return db.execute("select count(*) from replies").fetchone()[0]
    with psycopg.connect(store.dsn) as db:
        return db.execute(f"select count(*) from {PG_TABLE}").fetchone()[0]


def test_a_reply_is_fetched_once_per_backfill_and_host(store: Store):
    clock, asked = Clock(), Counter()

    def fetch(name: str):
        def call() -> list:
            asked[name] += 1
            return [{"Date": "2025-03-03", "name": name}]
        return call

    first = SharedReplies("bf-1", "http://a", store=store, clock=clock)
    assert first.get_or_fetch(["GET", "/x", {"q": 1}], fetch("x")) == (
        [{"Date": "2025-03-03", "name": "x"}], False)
    again = SharedReplies("bf-1", "http://a", store=store, clock=clock)
    assert again.get_or_fetch(["GET", "/x", {"q": 1}], fetch("x"))[1] is True
    assert asked == {"x": 1}
    # another call, another backfill, another host: each asks for itself
    for replies, call in ((again, ["GET", "/x", {"q": 2}]),
                          (SharedReplies("bf-2", "http://a", store=store),
                           ["GET", "/x", {"q": 1}]),
                          (SharedReplies("bf-1", "http://b", store=store),
                           ["GET", "/x", {"q": 1}])):
        assert replies.get_or_fetch(call, fetch("x"))[1] is False
    assert asked == {"x": 4}


def test_a_reply_older_than_its_ttl_is_asked_again_and_purged(store: Store):
    clock = Clock()
    replies = SharedReplies("bf", "h", ttl=60, store=store, clock=clock)
    replies.get_or_fetch(["a"], lambda: 1)
    clock.now += 61
    assert replies.get_or_fetch(["a"], lambda: 2) == (2, False)
    clock.now += 61
    assert _kept(store) == 1
    SharedReplies("bf", "h", ttl=60, store=store, clock=clock)  # a new run purges what expired
    assert _kept(store) == 0


def test_only_this_user_reads_the_replies(tmp_path: Path):
    path = tmp_path / "open" / "r.sqlite"
    path.parent.mkdir(mode=0o755)  # a directory others may enter (made before us)
    path.touch(mode=0o644)  # and a file an older version left readable
    replies = SharedReplies("bf", "h", store=FileStore(path))
    replies.get_or_fetch(["a"], lambda: [{"Text": "a note"}])
    for kept in path.parent.iterdir():  # the database and its -wal, -shm
        assert kept.stat().st_mode & 0o077 == 0, kept


def test_an_unusable_file_costs_requests_not_the_load(tmp_path: Path, caplog):
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"not a database" * 100)
    replies = SharedReplies("bf", "h", store=FileStore(path))
    assert replies.get_or_fetch(["a"], lambda: [1]) == ([1], False)
    assert replies.get_or_fetch(["a"], lambda: [2]) == ([2], False)
    assert "delete the file" in caplog.text and str(path) in caplog.text


def test_replies_live_where_the_rate_budget_does(postgres_dsn, tmp_path: Path, monkeypatch):
    """Two hosts (each its own temp directory) in one backfill: with host buckets each asks
    for itself; with the Postgres bucket the second reads what the first asked."""
    budgets = {"host": RateBudget(10, 5),
               "postgres": RateBudget(10, 5, bucket="postgres", postgres_dsn=postgres_dsn)}
    asked: Counter[str] = Counter()
    for bucket, budget in budgets.items():
        for host in ("a", "b"):
            (tmp_path / bucket / host).mkdir(parents=True)
            monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / bucket / host))
            replies = SharedReplies("bf", "http://booker", store=store_for(budget))
            replies.get_or_fetch(["GET", "/location/1"], lambda b=bucket: asked.update([b]))
    assert asked == {"host": 2, "postgres": 1}


def test_an_unreachable_database_costs_requests_said_once(caplog):
    replies = SharedReplies("bf", "h", store=PostgresStore("postgresql://nobody@127.0.0.1:9/x"))
    assert [replies.get_or_fetch(["a"], lambda n=n: n) for n in range(2)] == [
        (0, False), (1, False)]
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"shared replies unavailable (PostgreSQL table {PG_TABLE}: ")
    assert "BOOKER_RATE_POSTGRES_DSN" in said and "nobody@" not in said


# ---------------------------------------------------------------- which calls are shared


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _slice(group: str, day: date, options: dict | None = None) -> FetchJob:
    (found,) = [g for g in GROUPS if g.name == group]
    observable = observable_days([day], timezone.utc, datetime.now(timezone.utc))
    return FetchJob(client=None, group=found, location_id=int(LOC), days=[day], zone=timezone.utc,
                 options=options or {}, observable=observable)


def _per_parent(group: str, table: str) -> tuple[Call, bool]:
    (found,) = [t for g in GROUPS if g.name == group for t in g.tables if t.name == table]
    (source,) = [src for src in found.sources if isinstance(src, PerParent)]
    return source.call, bool(found.pii)


@pytest.mark.parametrize(("call", "private", "past", "today"), [
    pytest.param(*_per_parent("customers", "customer_memberships"), True, False,
                 id="memberships"),
    pytest.param(*_per_parent("customers", "notes"), True, False, id="progress notes"),
    pytest.param(*_per_parent("employees", "employee_schedules"), True, True, id="schedules"),
    pytest.param(next(g.root for g in GROUPS if g.name == "employees"), False, True, False,
                 id="employees list"),
])
def test_what_no_partition_day_shapes_is_shared_unless_private_or_now(call, private, past,
                                                                      today):
    """``past``/``today``: shared in a slice of a past day / of today (a snapshot of now is
    stored from a fresh reply). A call feeding a table whose columns BOOKER_PII protects is
    never kept outside the warehouse; a day's window is never shared."""
    group = next(g.name for g in GROUPS if call is g.root or any(
        isinstance(src, PerParent) and src.call is call for t in g.tables for src in t.sources))
    assert shared_by_backfill(_slice(group, FIRST), call, private) is past
    assert shared_by_backfill(_slice(group, _today()), call, private) is today
    schedule = isinstance(call.days, DateRange)
    assert shared_by_backfill(_slice(group, FIRST), call, private=True) is schedule
    # weekday defaults: undated rows, a snapshot of now (their own calls since 6536ae7)
    weekdays, _ = _per_parent("employees", "employee_schedule_defaults")
    location_weekdays = next(g.root for g in GROUPS if g.name == "location_schedule_defaults")
    for defaults in (weekdays, location_weekdays):
        assert shared_by_backfill(_slice(group, _today()), defaults, private=False) is False
    customers = next(g.root for g in GROUPS if g.name == "customers")
    assert shared_by_backfill(_slice("customers", FIRST), customers, private=False) is False
    book = next(g.root for g in GROUPS if g.name == "appointment_book")  # the book seen now
    assert shared_by_backfill(_slice("appointment_book", _today()), book, private=False) is False


# ---------------------------------------------------------------- a backfill's day-runs


def _rows(database: Path, table: str) -> list[tuple]:
    with connect_locked(str(database), read_only=True) as conn:
        frame = conn.execute(f"select * exclude (_loaded_at) from booker.{table}").fetchdf()
    return sorted(frame.astype(str).itertuples(index=False, name=None))


def _load(sandbox: BookerSandbox, tmp_path: Path, name: str, runs: list[tuple[date, date]],
          tags: dict[str, str]) -> tuple[Path, Counter[str], list[dg.ExecuteInProcessResult]]:
    """``runs`` (first, last day) of the schedules into a DuckDB file of their own."""
    settings = make_settings(tmp_path / name, (LOC,))
    (tmp_path / name).mkdir()
    defs = make_defs(sandbox, settings)
    before = sandbox.stats.by_route
    with dg.DagsterInstance.ephemeral() as instance:
        results = [load_range(defs, [LOC], first, last, instance=instance, selection=SELECTION,
                              tags=tags) for first, last in runs]
    return Path(settings.duckdb_path), sandbox.stats.by_route - before, results


@pytest.mark.parametrize("tag", ["dagster/backfill", "booker/backfill"])
def test_day_runs_of_a_backfill_ask_what_one_range_run_asks(sandbox: BookerSandbox,
                                                           tmp_path: Path, tag: str):
    one, one_asked, _ = _load(sandbox, tmp_path, "range", [(DAYS[0], DAYS[-1])], {})
    split, split_asked, results = _load(sandbox, tmp_path, "days", [(d, d) for d in DAYS],
                                        {tag: f"bf-{tmp_path.name}"})
    for route in (*SCHEDULES, LOCATION, *UNDATED):
        assert split_asked[route] == one_asked[route] > 0, route
    for route in TOKENS:  # a credential is never shared on disk: each run asks its own
        assert split_asked[route] == len(DAYS) * one_asked[route] > 0, route
    assert split_asked[CUSTOMERS] == one_asked[CUSTOMERS] >= len(DAYS)
    assert one_asked[LOCATION] == 1  # the run's reports start at once: one asks, all read
    for table in ("employee_schedules", "location_schedules", "customer_memberships", "notes"):
        assert _rows(split, table) == _rows(one, table) and _rows(one, table)
        with connect_locked(str(split), read_only=True) as conn:
            assert conn.execute("select count(*) from booker._rejects").fetchone() == (0,)
    shared = [event.materialization.metadata["booker/run_shared_replies"].value
              for result in results for event in result.get_asset_materialization_events()
              if event.asset_key.path[-1] == "employee_schedules"]
    assert shared[0] == 0 and all(n > 0 for n in shared[1:]) and len(shared) == len(DAYS)


def test_runs_outside_a_backfill_share_nothing(sandbox: BookerSandbox, tmp_path: Path):
    _, one_asked, _ = _load(sandbox, tmp_path, "range", [(DAYS[0], DAYS[-1])], {})
    _, split_asked, _ = _load(sandbox, tmp_path, "days", [(d, d) for d in DAYS], {})
    for route in (*SCHEDULES, *TOKENS, UNDATED[-1]):
        assert split_asked[route] == len(DAYS) * one_asked[route], route


def test_a_day_run_asks_its_month_and_stores_only_its_day(sandbox: BookerSandbox,
                                                         tmp_path: Path):
    """A schedule asked for its whole month holds the month's other days: other partitions'
    rows, left to their own runs, neither stored here nor rejected."""
    far = date(2025, 3, 20)
    settings = make_settings(tmp_path, (LOC,))
    defs = make_defs(sandbox, settings)
    with dg.DagsterInstance.ephemeral() as instance:
        for day in (DAYS[0], far):
            load_range(defs, [LOC], day, day, instance=instance, selection=SELECTION)
    with connect_locked(settings.duckdb_path, read_only=True) as conn:
        stored = {str(d) for (d,) in conn.execute(
            "select distinct report_date from booker.employee_schedules").fetchall()}
        assert conn.execute("select count(*) from booker._rejects").fetchone() == (0,)
    assert stored == {str(DAYS[0]), str(far)}


def test_no_file_a_backfill_writes_holds_a_token(sandbox: BookerSandbox, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch):
    """Every file of a backfill's day-runs (the warehouse, its read copy, the shared replies,
    the rate bucket, Dagster's instance) searched for every token the runs were issued."""
    issued: list[str] = []
    issue = auth.TokenIssuer.issue

    def recorded(self: auth.TokenIssuer, scope: str) -> auth.Token:
        token = issue(self, scope)
        issued.append(token.value)
        return token

    monkeypatch.setattr(auth.TokenIssuer, "issue", recorded)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "host"))  # the host's state dir
    for folder in ("host", "dagster_home"):
        (tmp_path / folder).mkdir()
    settings = make_settings(tmp_path / "data", (LOC,))
    defs = make_defs(sandbox, settings)
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        for day in DAYS:
            assert load_range(defs, [LOC], day, day, instance=instance, selection=SELECTION,
                              tags={"booker/backfill": "bf-tokens"}).success
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    secrets = [*issued, *sandbox.credentials.values()]
    found = [(str(path.relative_to(tmp_path)), secret[:12]) for path in written
             for secret in secrets if secret.encode() in path.read_bytes()]
    print(f"\n[measured] {len(written)} files written "
          f"({sum(p.stat().st_size for p in written):,} B), searched for {len(issued)} tokens"
          f" and {len(sandbox.credentials)} credentials: {len(found)} found")
    assert len(issued) >= 2 * len(DAYS)  # a brand and a location token per run
    assert any(path.name == "shared-replies.sqlite" for path in written)
    assert found == []
