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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from booker_assets.api.ratelimit import RateBudget, TokenBucket, shared_bucket
from booker_assets.errors import BookerConfigError


@dataclass(frozen=True)
class NamedEndpoint:
    """A Booker served by this process, named in BOOKER_BASE_URL (``sandbox``). The package
    that serves it registers it in ``NAMED_ENDPOINTS``: api/ imports no layer above it and
    knows no server of its own."""

    url: Callable[[], str]  # resolved in the process that sends (a run worker starts its own)
    credentials: Mapping[str, str]  # the account it opens, by BookerResource field
    # The least pace (requests a second, burst): a server with no gateway limit, paced like
    # Booker's, only slows its user. The endpoint's, so that no such pace sits in run config.
    pace: tuple[float, int]


NAMED_ENDPOINTS: dict[str, NamedEndpoint] = {}


class Transport:
    """One pooled ``requests.Session``, ``max_in_flight`` slots, the key's shared bucket."""

    def __init__(self, base_url: str, subscription_key: str, *, max_in_flight: int,
                 timeout: float, budget: RateBudget,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if "://" not in base_url:
            endpoint = named_endpoint(base_url)
            rate, burst = endpoint.pace
            budget = replace(budget, requests_per_second=max(budget.requests_per_second, rate),
                             burst=max(budget.burst, burst))
            base_url = endpoint.url()
        self.base_url = base_url.rstrip("/")
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


def named_endpoint(name: str) -> NamedEndpoint:
    """The endpoint registered in this process under ``name`` (BOOKER_BASE_URL not a URL)."""
    endpoint = NAMED_ENDPOINTS.get(name)
    if endpoint is None:
        raise BookerConfigError(
            f"BOOKER_BASE_URL={name!r} is not a URL nor an endpoint of this process "
            f"(named: {', '.join(map(repr, NAMED_ENDPOINTS)) or 'none'})",
            fix="set it to https://api.booker.com (or the staging host), or to 'sandbox' for "
                "the embedded sandbox (the booker_sandbox package, installed by make install)")
    return endpoint


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
