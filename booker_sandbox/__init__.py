"""A loopback Booker API over deterministic data: the demo, the tests and the benchmarks use it.

    with BookerSandbox(SandboxSettings(seed=7), port=0) as sb:
        sb.url, sb.credentials, sb.location_ids, sb.stats, sb.dataset

``python -m booker_sandbox`` runs one in the foreground.
"""

from booker_assets.api.transport import NAMED_ENDPOINTS
from booker_sandbox.server import BookerSandbox, SandboxStats, embedded_url
from booker_sandbox.settings import (
    DEMO_CREDENTIALS,
    HARD_KINDS,
    TRANSIENT_KINDS,
    FaultProfile,
    SandboxSettings,
)

# BOOKER_BASE_URL=sandbox: the sandbox this process starts on first use (a run worker cannot
# reach one another process started).
NAMED_ENDPOINTS.setdefault("sandbox", embedded_url)

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
