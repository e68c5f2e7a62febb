"""Bad credentials and settings: each a clear message naming the cause and the fix, at load
time (``load_settings``) or at launch (the run's failure), never a bare stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.defs import io_manager
from booker_assets.errors import BookerConfigError
from booker_assets.settings import load_settings
from booker_assets_tests.conftest import load_range, make_defs, make_settings

DAY = date(2025, 3, 5)
ROOT = Path(__file__).resolve().parents[1]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's (else the run's) message with its causes, as the run page shows it."""
    assert not result.success
    failed = [e for e in result.all_events if e.is_step_failure] or [
        result.get_run_failure_event()]
    error = failed[0].event_specific_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return " <- ".join(messages)


def _load_orders(defs: dg.Definitions, location: str) -> str:
    return _failure(load_range(defs, [location], DAY, DAY, selection=["booker/orders"],
                               raise_on_error=False))


@pytest.mark.parametrize(("credential", "named", "fix"), [
    ("client_secret", "client id or secret", "BOOKER_CLIENT_SECRET"),
    ("subscription_key", "subscription key", "BOOKER_SUBSCRIPTION_KEY"),
    ("personal_access_token", "personal access token", "BOOKER_PERSONAL_ACCESS_TOKEN"),
])
def test_wrong_credential_is_named_in_the_run_failure(sandbox, tmp_path, credential, named, fix):
    wrong = "wrong-" + credential
    booker = BookerResource(base_url=sandbox.url, **{**sandbox.credentials, credential: wrong})
    message = _load_orders(build_definitions(make_settings(tmp_path, ("1001",)), booker), "1001")
    print(f"\n{credential}: {message}")
    assert f"rejected the {named}" in message and "Fix: " in message and fix in message
    assert wrong not in message


def test_location_the_token_cannot_see_says_how_to_fix_the_list(sandbox, tmp_path):
    message = _load_orders(make_defs(sandbox, make_settings(tmp_path, ("1999",))), "1999")
    print(f"\nlocation 1999: {message}")
    assert "location 1999" in message
    assert "BOOKER_LOCATION_IDS" in message and "discover-locations" in message


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A real-account environment (credentials set, so no sandbox defaults)."""
    base = {"BOOKER_CLIENT_ID": "id", "BOOKER_LOCATION_IDS": "1001",
            "BOOKER_LOCATIONS_FILE": str(tmp_path / "none.txt"),
            "BOOKER_DUCKDB_PATH": str(tmp_path / "booker_assets.duckdb")}
    return base | values


def _ids_file(tmp_path: Path, *ids: str) -> str:
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in ids))
    return str(tmp_path / "ids.txt")


def _file(tmp_path: Path) -> str:
    (tmp_path / "plain_file").write_text("not a directory")
    return str(tmp_path / "plain_file" / "booker_assets.duckdb")


TOMORROW = (date.today() + timedelta(days=1)).isoformat()
BAD_SETTINGS = {
    "location name instead of id": (
        {"BOOKER_LOCATION_IDS": "1001,Downtown"},
        "numeric ids, got ['Downtown']", "BOOKER_LOCATION_IDS=1001,1002"),
    "location name in the locations file": (
        {"BOOKER_LOCATION_IDS": "", "BOOKER_LOCATIONS_FILE": lambda tmp: _ids_file(tmp, "Spa")},
        "numeric ids, got ['Spa'] from ", "leave it unset to load every location"),
    "start date in the future": (
        {"BOOKER_START_DATE": TOMORROW},
        f"BOOKER_START_DATE={TOMORROW} is in the future", "today or earlier"),
    "start date not a date": (
        {"BOOKER_START_DATE": "01/02/2025"},
        "BOOKER_START_DATE='01/02/2025' is not a date", "YYYY-MM-DD"),
    "duckdb path under a file": (
        {"BOOKER_DUCKDB_PATH": _file},
        "cannot be written: ", "point BOOKER_DUCKDB_PATH at a file in a writable directory"),
    "duckdb path is a directory": (
        {"BOOKER_DUCKDB_PATH": str},
        "cannot be written: it is a directory", "point BOOKER_DUCKDB_PATH"),
    "pii mode unknown": (
        {"BOOKER_PII": "mask"},
        "BOOKER_PII='mask' is not one of keep, hash, drop", "set BOOKER_PII to keep"),
    "grace hours not a number": (
        {"BOOKER_GRACE_HOURS": "two"},
        "BOOKER_GRACE_HOURS='two' is not a number", "set BOOKER_GRACE_HOURS=2"),
    "lookback not a whole number": (
        {"BOOKER_LOOKBACK_DAYS": "7.5"},
        "BOOKER_LOOKBACK_DAYS='7.5' is not a whole number", "set BOOKER_LOOKBACK_DAYS=7"),
    "no requests a second": (
        {"BOOKER_REQUESTS_PER_SECOND": "0"},
        "BOOKER_REQUESTS_PER_SECOND=0 would send nothing", "set it to 10 or more"),
    "unknown rate bucket": (
        {"BOOKER_RATE_BUCKET": "redis"},
        "BOOKER_RATE_BUCKET='redis' is not one of host, postgres",
        "set BOOKER_RATE_BUCKET to host"),
    "postgres rate bucket without its database": (
        {"BOOKER_RATE_BUCKET": "Postgres"},
        "BOOKER_RATE_POSTGRES_DSN is not set", "set BOOKER_RATE_POSTGRES_DSN to a libpq DSN"),
    "unknown rate mode": (
        {"BOOKER_RATE_MODE": "turbo"},
        "BOOKER_RATE_MODE='turbo' is not one of fixed, adaptive", "set BOOKER_RATE_MODE to fixed"),
    "rate ceiling below the rate": (
        {"BOOKER_RATE_MODE": "adaptive", "BOOKER_RATE_CEILING": "5"},
        "the rate ceiling 5 is below the rate 10",
        "set BOOKER_RATE_CEILING at or above BOOKER_REQUESTS_PER_SECOND"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_setting_fails_at_load_with_cause_and_fix(tmp_path, case):
    values, cause, fix = BAD_SETTINGS[case]
    env = _env(tmp_path, **{k: v(tmp_path) if callable(v) else v for k, v in values.items()})
    with pytest.raises(BookerConfigError) as info:
        load_settings(env)
    print(f"\n{case}: {info.value}")
    assert cause in str(info.value)
    assert f"Fix: {fix}" in str(info.value) or fix in info.value.fix


def test_good_settings_load(tmp_path):
    settings = load_settings(_env(tmp_path, BOOKER_GRACE_HOURS="1.5", BOOKER_PII="Hash",
                                  BOOKER_PII_KEY="k" * 64))
    assert (settings.allowed_locations, settings.grace_hours) == (("1001",), 1.5)
    assert settings.pii == "hash" and settings.pii_key is not None
    assert not settings.use_sandbox


@pytest.mark.parametrize("listed", ["", " , "])
def test_no_location_listed_means_every_location_booker_returns(tmp_path, listed):
    """Domo's "all locations": no allow-list, the locations are discovered (defs/locations)."""
    assert load_settings(_env(tmp_path, BOOKER_LOCATION_IDS=listed)).allowed_locations == ()


def test_the_locations_file_is_an_allow_list(tmp_path):
    env = _env(tmp_path, BOOKER_LOCATION_IDS="",
               BOOKER_LOCATIONS_FILE=_ids_file(tmp_path, "1002", "1001"))
    assert load_settings(env).allowed_locations == ("1002", "1001")


def test_unwritable_database_fails_the_run_naming_path_and_setting(sandbox, tmp_path):
    before = sandbox.stats.requests
    # make_settings skips load_settings' check: the run itself must refuse at start.
    settings = make_settings(tmp_path, ("1001",), duckdb_path=_file(tmp_path))
    message = _load_orders(make_defs(sandbox, settings), "1001")
    print(f"\nunwritable DuckDB path at run time: {message}")
    assert settings.duckdb_path in message and "Fix: point BOOKER_DUCKDB_PATH" in message
    assert sandbox.stats.requests == before  # refused at start, not after the fetch


def test_a_full_disk_during_the_write_is_said_once_first_with_what_to_free(
        sandbox, tmp_path, monkeypatch):
    """Issue 21: raised as a write conflict (and retried), then DuckDB's checkpoint error, then
    "no read copy". The commit's failure is replayed as DuckDB words it on a full tmpfs."""
    settings = make_settings(tmp_path, ("1001",))
    wal = f"{settings.duckdb_path}.wal"

    def full(conn, schema, table):
        raise duckdb.TransactionException(
            f'TransactionContext Error: Failed to commit: Could not write file "{wal}": No space'
            " left on device")

    monkeypatch.setattr(io_manager, "_record_loads", full)
    result = load_range(make_defs(sandbox, settings), ["1001"], DAY, DAY,
                        selection=["booker/orders"], raise_on_error=False)
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1 and not [e for e in result.all_events if e.event_type_value
                                       == "STEP_RESTARTED"]  # not retried: waiting cannot heal
    first = failures[0].step_failure_data.user_failure_data.description.splitlines()[0]
    print(f"\n[measured] full disk while writing, first line: {first}")
    assert first.startswith('writing "booker_assets"."booker"."orders" (1 partition(s): ')
    assert (f": the disk of {tmp_path} is full (No space left on device): the write needs about "
            in first)
    assert "free; nothing was changed Fix: free at least " in first
    assert "booker_assets.duckdb" in first and "BOOKER_DUCKDB_PATH" in first
    assert "conflict" not in first and "another writer" not in first


def test_a_bad_setting_ends_the_demo_with_its_message_not_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKER_")}
    done = subprocess.run([sys.executable, "-m", "booker_assets.demo"], cwd=ROOT,
                          env=env | {"BOOKER_PII": "mask"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()  # one line, no traceback
    assert line.startswith("booker-assets demo: BOOKER_PII='mask' is not one of keep, hash, drop"
                           " Fix: set BOOKER_PII to keep"), line
