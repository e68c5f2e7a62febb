"""A loopback Booker API over deterministic data: the demo, the tests and the benchmarks use it.

    with BookerSandbox(SandboxSettings(seed=7), port=0) as sb:
        sb.url, sb.credentials, sb.location_ids, sb.stats, sb.dataset

``python -m booker_sandbox`` runs one in the foreground.
"""

from booker_assets.api.transport import NAMED_ENDPOINTS, NamedEndpoint
from booker_assets.settings import SANDBOX_BASE_URL
from booker_sandbox.server import BookerSandbox, SandboxStats, embedded_url
from booker_sandbox.settings import (
    DEMO_CREDENTIALS,
    HARD_KINDS,
    TRANSIENT_KINDS,
    FaultProfile,
    SandboxSettings,
)

# BOOKER_BASE_URL=sandbox: the sandbox this process starts on first use (a run worker cannot
# reach one another process started), opened by the demo credentials, unpaced (it has no
# gateway limit). The runtime knows it only by this registration (booker_assets/definitions.py
# imports this package when the environment names no Booker account).
NAMED_ENDPOINTS.setdefault(SANDBOX_BASE_URL, NamedEndpoint(
    url=embedded_url, credentials=DEMO_CREDENTIALS, pace=(200.0, 50)))

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
