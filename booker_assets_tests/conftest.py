"""Shared fixtures: a sandbox on a free port, settings and definitions pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from booker_assets.api.client import BookerResource
from booker_assets.definitions import build_definitions
from booker_assets.sandbox import BookerSandbox, SandboxSettings
from booker_assets.settings import Settings
from booker_assets_tests.postgres import postgres_dsn, postgres_server  # noqa: F401 (fixtures)

# The sandbox's clock is frozen so that refunds "not made yet" are the same on every run.
SANDBOX_NOW = datetime(2025, 6, 30, 12, tzinfo=timezone.utc)
SANDBOX_SETTINGS = SandboxSettings(start_date=date(2025, 1, 1), end_date=date(2025, 6, 30),
                                   now=SANDBOX_NOW)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[BookerSandbox]:
    with BookerSandbox(SANDBOX_SETTINGS) as sb:
        yield sb


def make_settings(tmp_path: Path, locations: tuple[str, ...], **overrides) -> Settings:
    values = dict(
        use_sandbox=False,
        location_ids=locations,
        start_date=date(2025, 1, 1),
        duckdb_path=str(tmp_path / "booker_assets.duckdb"),
        lookback_days=7,
        grace_hours=2.0,
        catch_up_days=3,
        pii="keep",
    )
    return Settings(**(values | overrides))


def make_defs(sandbox: BookerSandbox, settings: Settings, **resource_fields) -> dg.Definitions:
    """The project's own definitions, with the Booker resource pointed at ``sandbox`` and the
    sandbox's clock (it decides which days' snapshots can be observed)."""
    booker = BookerResource(base_url=sandbox.url, **sandbox.credentials, **resource_fields)
    frozen = sandbox.settings.now
    return build_definitions(settings, booker, clock=lambda: frozen or datetime.now(timezone.utc))
