"""Send: one HTTP request inside the client's in-flight bound and its key's rate bucket
(contract ``docs/booker-api.md`` §1, §3); an adaptive bucket is told each answer.

A request's path — resource → view → paginator → retry → auth → **send** → classify. The
request is prepared first: that is when ``auth.BookerAuth`` attaches its Bearer token (the
token the renewal loop pinned; an auth without one reads the cache and may issue a token).
Only then does it take one of ``max_in_flight`` slots and a slot of the rate limiter, so a
token request never waits for a slot held by the request that needs the token. Every call
carries the subscription key; retries are ``retry.py``'s (the adapter never retries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from booker_assets.api.ratelimit import RateBudget, TokenBucket, shared_bucket
from booker_assets.errors import BookerConfigError
from booker_assets.settings import SANDBOX_BASE_URL

# The embedded sandbox has no rate limit: pacing it like Booker's gateway only slows the demo.
# Decided here, from the URL, so that no pace meant for the sandbox sits in run config.
SANDBOX_PACE = (200.0, 50)
# Base URLs given by name, resolved in the process that sends: the embedded sandbox registers
# "sandbox" (booker_sandbox/__init__.py) with the URL of the server it starts there.
# A registry, so that api/ imports no layer above it.
NAMED_ENDPOINTS: dict[str, Callable[[], str]] = {}


class Transport:
    """One pooled ``requests.Session``, ``max_in_flight`` slots, the key's shared bucket."""

    def __init__(self, base_url: str, subscription_key: str, *, max_in_flight: int,
                 timeout: float, budget: RateBudget,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if base_url == SANDBOX_BASE_URL:
            budget = replace(budget, requests_per_second=max(budget.requests_per_second,
                                                             SANDBOX_PACE[0]),
                             burst=max(budget.burst, SANDBOX_PACE[1]))
        self.base_url = resolve_base_url(base_url)
        self.limiter: TokenBucket = shared_bucket(
            f"{self.base_url} {subscription_key}", budget, clock=monotonic, sleep=sleep)
        self._session = _session(subscription_key, max_in_flight)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._timeout = timeout
        self._monotonic = monotonic

    def close(self) -> None:
        self._session.close()

    def send(self, method: str, path: str, *, on_sent: Callable[[float], None],
             auth: AuthBase | None = None, **fields: Any) -> requests.Response:
        """The response, or a ``requests`` exception. ``on_sent`` gets the seconds of every
        request that went on the wire."""
        session = self._session
        prepared = session.prepare_request(
            requests.Request(method, self.base_url + path, auth=auth, **fields))
        environment = session.merge_environment_settings(prepared.url, {}, None, None, None)
        with self._slots:
            slot = self.limiter.reserve()
            started = self._monotonic()
            try:
                response = session.send(prepared, timeout=self._timeout, allow_redirects=True,
                                        **environment)
            finally:
                on_sent(self._monotonic() - started)
        # an adaptive bucket learns from each answer; no answer (a reset) says nothing of it
        self.limiter.feedback(slot, throttled=response.status_code == 429)
        return response


def resolve_base_url(base_url: str) -> str:
    """A URL as it is, or the URL a named endpoint (``sandbox``) stands for in this process."""
    if "://" in base_url:
        return base_url.rstrip("/")
    resolver = NAMED_ENDPOINTS.get(base_url)
    if resolver is None:
        raise BookerConfigError(
            f"BOOKER_BASE_URL={base_url!r} is not a URL",
            fix="set it to https://api.booker.com (or the staging host), or to 'sandbox' for "
                "the embedded sandbox")
    return resolver().rstrip("/")


def _session(subscription_key: str, pool_size: int) -> requests.Session:
    """One pooled session; retries are ours (the adapter never retries)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({
        "Ocp-Apim-Subscription-Key": subscription_key,
        "Accept": "application/json",
        "User-Agent": "booker-assets",
    })
    return session
