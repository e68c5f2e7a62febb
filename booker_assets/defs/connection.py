"""Connecting to Booker: the resource built from the BOOKER_* environment, and the connection
check as a Dagster job (the launchpad's way to ask "are my settings right?")."""

import os

import dagster as dg

from booker_assets.api.client import DEFAULT_BASE_URL, BookerResource
from booker_assets.errors import BookerConfigError
from booker_assets.settings import CREDENTIAL_VARS, RateSettings, rate_settings

# BookerResource field -> its environment variable, e.g. client_id -> BOOKER_CLIENT_ID
CREDENTIAL_FIELDS = {var.removeprefix("BOOKER_").lower(): var for var in CREDENTIAL_VARS}
DSN_VAR = "BOOKER_RATE_POSTGRES_DSN"  # may hold a password: read when the run starts


def booker_resource_from_env(*, resolve_now: bool = False,
                             rate: RateSettings | None = None) -> BookerResource:
    """A ``BookerResource`` for the BOOKER_* environment variables (``rate``: the loaded
    settings' pace, else read from the environment here).

    By default the credentials and the rate bucket's DSN are ``EnvVar``s: resolved when a run
    starts, never shown in the UI (the code location's way). ``resolve_now`` reads them at
    once and raises ``BookerConfigError`` naming every missing credential (the command line's
    way).
    """
    if resolve_now:
        missing = [var for var in CREDENTIAL_FIELDS.values() if not os.environ.get(var)]
        if missing:
            raise BookerConfigError(f"missing environment variables: {', '.join(missing)}",
                                    fix="export them (see the README) and try again")
        credentials = {field: os.environ[var] for field, var in CREDENTIAL_FIELDS.items()}
    else:
        credentials = {field: dg.EnvVar(var) for field, var in CREDENTIAL_FIELDS.items()}
    base_url = os.environ.get("BOOKER_BASE_URL") or DEFAULT_BASE_URL
    return BookerResource(base_url=base_url, **credentials,
                          **_rate_fields(rate or rate_settings(os.environ), resolve_now))


def _rate_fields(rate: RateSettings, resolve_now: bool) -> dict:
    fields: dict = {"requests_per_second": rate.requests_per_second, "rate_bucket": rate.bucket,
                    "rate_mode": rate.mode, "max_requests_per_second": rate.ceiling}
    if rate.bucket == "postgres":
        fields["rate_postgres_dsn"] = (os.environ[DSN_VAR] if resolve_now
                                       else dg.EnvVar(DSN_VAR))
    return fields


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
