"""The connection check as a Dagster job: the launchpad's way to ask "are my settings right?"."""

import dagster as dg

from booker_assets.client import BookerResource


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
