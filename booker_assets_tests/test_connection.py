"""The connection-check job names the wrong credential, against the sandbox over HTTP; the
resource built from the environment."""

from __future__ import annotations

import dagster as dg
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.defs.connection import (
    CREDENTIAL_FIELDS,
    DEFAULT_BASE_URL,
    apply_account_defaults,
    booker_check_connection,
    booker_resource_from_env,
)
from booker_assets.errors import BookerTransientError
from booker_assets.settings import load_settings
from booker_sandbox import DEMO_CREDENTIALS, BookerSandbox


def _run(sandbox: BookerSandbox, **wrong: str):
    booker = BookerResource(base_url=sandbox.url, **(sandbox.credentials | wrong))
    return booker_check_connection.execute_in_process(resources={"booker": booker},
                                                      raise_on_error=False)


def test_connection_check_passes_with_the_right_credentials(sandbox):
    assert _run(sandbox).success


@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("client_secret", "BOOKER_CLIENT_SECRET"),
        ("subscription_key", "BOOKER_SUBSCRIPTION_KEY"),
        ("personal_access_token", "BOOKER_PERSONAL_ACCESS_TOKEN"),
    ],
)
def test_connection_check_names_the_wrong_credential(sandbox, field, named):
    result = _run(sandbox, **{field: "wrong-value-123"})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert named in message
    assert "wrong-value-123" not in message


def test_connection_check_names_an_unreachable_base_url():
    booker = BookerResource(base_url="http://127.0.0.1:9", client_id="a", client_secret="b",
                            subscription_key="c", personal_access_token="d", max_retries=0,
                            timeout_seconds=1)
    result = booker_check_connection.execute_in_process(resources={"booker": booker},
                                                        raise_on_error=False)
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "BOOKER_BASE_URL" in failure.step_failure_data.error.message


def test_an_unreachable_booker_is_named_with_its_url_and_what_to_check():
    """Issue 21: it ended "connection error (ConnectionError) after 7 attempts", no fix."""
    booker = BookerResource(base_url="http://127.0.0.1:9/v4.1", client_id="a",
                            client_secret="b", subscription_key="c",
                            personal_access_token="d", max_retries=1, timeout_seconds=1)
    with pytest.raises(BookerTransientError) as caught:
        booker.get_client().locations()
    message = str(caught.value)
    print(f"\n[measured] unreachable Booker: {message}")
    assert "\n" not in message
    assert "cannot connect to http://127.0.0.1:9 (Connection refused) after 2 attempts" in message
    assert "Fix: check that BOOKER_BASE_URL" in message and "check-connection" in message


# ----- the resource from the environment (code location and command line) ------------------

CREDENTIALS = {"BOOKER_CLIENT_ID": "cid", "BOOKER_CLIENT_SECRET": "csecret",
               "BOOKER_SUBSCRIPTION_KEY": "skey", "BOOKER_PERSONAL_ACCESS_TOKEN": "pat"}


@pytest.fixture
def booker_env(monkeypatch):
    for var, value in CREDENTIALS.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("BOOKER_BASE_URL", raising=False)


def test_resource_from_env_defers_credentials_and_url_to_run_start(booker_env):
    booker = booker_resource_from_env()
    for field, var in {**CREDENTIAL_FIELDS, "base_url": "BOOKER_BASE_URL"}.items():
        value = getattr(booker, field)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == var


def test_resource_from_env_resolved_now_reads_every_variable(booker_env, monkeypatch):
    monkeypatch.setenv("BOOKER_BASE_URL", "http://booker.test")
    booker = booker_resource_from_env(resolve_now=True)
    assert {var: getattr(booker, field) for field, var in CREDENTIAL_FIELDS.items()} == CREDENTIALS
    assert booker.base_url == "http://booker.test"


def test_resource_from_env_treats_an_empty_base_url_as_unset(booker_env, monkeypatch):
    monkeypatch.setenv("BOOKER_BASE_URL", "")
    assert booker_resource_from_env(resolve_now=True).base_url == DEFAULT_BASE_URL
    env = dict(CREDENTIALS, BOOKER_BASE_URL="", BOOKER_LOCATION_IDS="1001")
    assert apply_account_defaults(load_settings(env), env) == {"BOOKER_BASE_URL": DEFAULT_BASE_URL}


def test_resource_from_env_reads_the_rate_bucket_and_defers_its_dsn(booker_env, monkeypatch):
    dsn = "postgresql://booker:pw@db/dagster"
    for var, value in {"BOOKER_RATE_BUCKET": "postgres", "BOOKER_RATE_POSTGRES_DSN": dsn,
                       "BOOKER_REQUESTS_PER_SECOND": "4.5", "BOOKER_RATE_MODE": "adaptive",
                       "BOOKER_RATE_CEILING": "30"}.items():
        monkeypatch.setenv(var, value)
    deferred, now = booker_resource_from_env(), booker_resource_from_env(resolve_now=True)
    assert (deferred.rate_bucket, deferred.requests_per_second) == ("postgres", 4.5)
    assert (deferred.rate_mode, deferred.rate_budget().top) == ("adaptive", 30)
    assert isinstance(deferred.rate_postgres_dsn, dg.EnvVar)  # never in the run's config
    assert now.rate_postgres_dsn == dsn and "pw" not in repr(now)



def test_account_defaults_fill_only_what_the_environment_leaves_unset(tmp_path):
    """The sandbox is the defaults of a real account's variables, never an override."""
    database = {"BOOKER_DUCKDB_PATH": str(tmp_path / "b.duckdb")}
    env = dict(database)
    sandbox = load_settings(env)
    assert sandbox.use_sandbox
    assert apply_account_defaults(sandbox, env) == {
        "BOOKER_BASE_URL": "sandbox",
        **{CREDENTIAL_FIELDS[field]: value for field, value in DEMO_CREDENTIALS.items()}}
    again = load_settings(env)  # a run worker loading the code location in that environment
    assert again.use_sandbox and again.allowed_locations == sandbox.allowed_locations
    assert apply_account_defaults(again, env) == {}

    real = dict(database, **CREDENTIALS, BOOKER_LOCATION_IDS="1001")
    assert apply_account_defaults(load_settings(real), real) == {
        "BOOKER_BASE_URL": DEFAULT_BASE_URL}
    assert {var: real[var] for var in CREDENTIALS} == CREDENTIALS  # never overridden
