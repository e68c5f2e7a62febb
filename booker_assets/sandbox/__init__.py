"""A loopback Booker API over deterministic data: the demo, the tests and the benchmarks use it.

    with BookerSandbox(SandboxSettings(seed=7), port=0) as sb:
        sb.url, sb.credentials, sb.location_ids, sb.stats, sb.dataset

``python -m booker_assets.sandbox`` runs one in the foreground.
"""

from booker_assets.sandbox.server import BookerSandbox, SandboxStats, embedded_url
from booker_assets.sandbox.settings import (
    DEMO_CREDENTIALS,
    HARD_KINDS,
    TRANSIENT_KINDS,
    FaultProfile,
    SandboxSettings,
)

__all__ = [
    "DEMO_CREDENTIALS",
    "HARD_KINDS",
    "TRANSIENT_KINDS",
    "BookerSandbox",
    "FaultProfile",
    "SandboxSettings",
    "SandboxStats",
    "embedded_url",
]
