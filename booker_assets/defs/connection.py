"""Connecting to Booker: the resource built from the BOOKER_* environment, and the connection
check as a Dagster job (the launchpad's way to ask "are my settings right?").

A real account and the sandbox take the same path: every value of the resource that depends on
the account is an ``EnvVar``, so the launchpad, a run's config and a re-execution hold variable
names, never values. A server restarted with a real account's environment therefore runs with
that account, whatever config a launchpad kept from the sandbox. The sandbox is only the
defaults those variables take when the environment leaves them unset (``account_defaults``).
"""

import os
from collections.abc import Mapping, MutableMapping

import dagster as dg

from booker_assets.api.client import DEFAULT_BASE_URL, BookerResource
from booker_assets.api.transport import named_endpoint
from booker_assets.errors import BookerConfigError
from booker_assets.settings import (
    BASE_URL_VAR,
    CREDENTIAL_VARS,
    SANDBOX_BASE_URL,
    RateSettings,
    Settings,
    rate_settings,
)

# BookerResource field -> its environment variable, e.g. client_id -> BOOKER_CLIENT_ID
CREDENTIAL_FIELDS = {var.removeprefix("BOOKER_").lower(): var for var in CREDENTIAL_VARS}
DSN_VAR = "BOOKER_RATE_POSTGRES_DSN"  # may hold a password: read when the run starts


def booker_resource_from_env(*, resolve_now: bool = False,
                             rate: RateSettings | None = None) -> BookerResource:
    """A ``BookerResource`` for the BOOKER_* environment variables (``rate``: the loaded
    settings' pace, else read from the environment here).

    By default the credentials, the base URL and the rate bucket's DSN are ``EnvVar``s:
    resolved when a run starts, never shown in the UI (the code location's way;
    ``apply_account_defaults`` fills in what the environment leaves unset). ``resolve_now``
    reads them at once and raises ``BookerConfigError`` naming every missing credential (the
    command line's way).
    """
    if resolve_now:
        missing = [var for var in CREDENTIAL_FIELDS.values() if not os.environ.get(var)]
        if missing:
            raise BookerConfigError(f"missing environment variables: {', '.join(missing)}",
                                    fix="export them (see the README) and try again")
        credentials = {field: os.environ[var] for field, var in CREDENTIAL_FIELDS.items()}
        base_url = os.environ.get(BASE_URL_VAR) or DEFAULT_BASE_URL
    else:
        credentials = {field: dg.EnvVar(var) for field, var in CREDENTIAL_FIELDS.items()}
        base_url = dg.EnvVar(BASE_URL_VAR)
    return BookerResource(base_url=base_url, **credentials,
                          **_rate_fields(rate or rate_settings(os.environ), resolve_now))


def _rate_fields(rate: RateSettings, resolve_now: bool) -> dict:
    fields: dict = {"requests_per_second": rate.requests_per_second, "rate_bucket": rate.bucket,
                    "rate_mode": rate.mode, "max_requests_per_second": rate.ceiling}
    if rate.bucket == "postgres":
        fields["rate_postgres_dsn"] = (os.environ[DSN_VAR] if resolve_now
                                       else dg.EnvVar(DSN_VAR))
    return fields


def account_defaults(settings: Settings) -> dict[str, str]:
    """What the resource's variables mean when the environment leaves them unset: the embedded
    sandbox's name and the credentials it opens (nothing but the sandbox), or Booker's host.
    The sandbox is an endpoint registered by name (api/transport.py), never imported here."""
    if not settings.use_sandbox:
        return {BASE_URL_VAR: DEFAULT_BASE_URL}
    credentials = named_endpoint(SANDBOX_BASE_URL).credentials
    return {BASE_URL_VAR: SANDBOX_BASE_URL,
            **{CREDENTIAL_FIELDS[field]: value for field, value in credentials.items()}}


def apply_account_defaults(settings: Settings,
                           env: MutableMapping[str, str] | None = None) -> Mapping[str, str]:
    """Set each unset (or empty) variable of ``account_defaults`` in this process's
    environment, where the ``EnvVar``s are resolved: the code server's, and so the run workers
    it starts. Variables already set are never touched. Returns what it set."""
    env = os.environ if env is None else env
    unset = {name: value for name, value in account_defaults(settings).items()
             if not env.get(name, "").strip()}
    env.update(unset)
    return unset


@dg.op(description="Checks the base URL and each of the four Booker credentials.")
def check_booker_connection(context: dg.OpExecutionContext, booker: BookerResource) -> None:
    checks = booker.get_client().check_connection()
    for check in checks:
        context.log.info(f"{'OK' if check.ok else 'FAILED'} {check.name}: {check.message}")
    failed = [check for check in checks if not check.ok]
    if failed:
        raise dg.Failure(
            description="; ".join(f"{c.name}: {c.message}" for c in failed),
            allow_retries=False,
        )


@dg.job(description="Validate the Booker credentials and base URL (no data is loaded).")
def booker_check_connection() -> None:
    check_booker_connection()
