"""The Booker resource of the embedded sandbox: the demo's and a fresh `dagster dev`'s Booker.

Each process that runs a load starts its own sandbox on loopback on first use (a run worker
cannot reach a server another process started), so the URL is known only then.
"""

from __future__ import annotations

from booker_assets.api.client import BookerResource
from booker_assets.sandbox.server import embedded_url


class EmbeddedSandboxResource(BookerResource):
    """``BookerResource`` against this process's embedded sandbox."""

    def endpoint(self) -> str:
        return embedded_url()
