"""The Booker API client and its Dagster resource (contract: ``docs/booker-api.md``).

A client is built in named stages, one module each, the way the Singer SDK names its override
points. The path of one request:

    resource  ``BookerResource`` (this module): settings and credentials, one client each
    → view    ``view.ReportView``: ``find``/``get``/``location``, counted per report
    → paginator ``paging.Paginator``: page 1, the rest side by side, re-read if the list moved
    → retry   ``retry.with_retries``: backoff with jitter, ``Retry-After``, bounded
    → auth    ``auth.BookerAuth``: the brand or location Bearer token, renewed when refused
    → send    ``transport.Transport``: in-flight slots, the key's token bucket, the session
    → classify ``replies.classify``: ok, retriable, expired or fatal (the error to raise)

All concurrency of a client runs on its one ``executor.BoundedExecutor`` (``max_in_flight``
threads at most, nested ``map`` calls included). A ``BookerClient`` is the root view: it
creates the shared parts (``view.Shared``) and hands out further views, each with stats of its
own. Secrets travel only in headers and form bodies and are scrubbed from every message that
quotes the server.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import dagster as dg
from pydantic import Field, PrivateAttr

from booker_assets.api.auth import (
    BRAND,
    CONTEXT_PATH,
    TOKEN_PATH,
    Credentials,
    TokenCache,
    TokenIssuer,
)
from booker_assets.api.executor import BoundedExecutor
from booker_assets.api.paging import FindResult
from booker_assets.api.ratelimit import RateBudget
from booker_assets.api.replies import TRANSPORT_FAULTS, Scrubber, fault
from booker_assets.api.retry import RetryPolicy
from booker_assets.api.transport import Transport
from booker_assets.api.view import (
    LOCATION_PATH,
    LOCATIONS_PATH,
    ClientStats,
    ReportView,
    Shared,
)
from booker_assets.errors import BookerCredentialsError, BookerError
from booker_assets.settings import DEFAULT_REQUESTS_PER_SECOND

__all__ = [
    "CONTEXT_PATH", "DEFAULT_BASE_URL", "LOCATIONS_PATH", "LOCATION_PATH", "TOKEN_PATH",
    "BookerClient", "BookerResource", "ClientStats", "ConnectionCheck", "FindResult",
    "ReportView",
]

DEFAULT_BASE_URL = "https://api.booker.com"
# Credentials in the order the server checks them, and their names in check_connection.
_CREDENTIALS = ("subscription_key", "client_id/client_secret", "personal_access_token")
_CHECK_NAMES = {"subscription_key": "subscription key",
                "client_id/client_secret": "client id/secret",
                "personal_access_token": "personal access token"}


class BookerResource(dg.ConfigurableResource):
    """Credentials and traffic settings for the Booker API; ``get_client()`` does the calls."""

    client_id: str = Field(description="Booker's developer application id. Set by the "
                           "deployment: BOOKER_CLIENT_ID.")
    client_secret: str = Field(repr=False, description="The application's secret. Set by the "
                               "deployment: BOOKER_CLIENT_SECRET.")
    subscription_key: str = Field(repr=False, description="The API gateway's subscription key "
                                  "(its rate budget). Set by the deployment: "
                                  "BOOKER_SUBSCRIPTION_KEY.")
    personal_access_token: str = Field(repr=False, description="The brand's personal access "
                                       "token: every call's token is issued from it. Set by "
                                       "the deployment: BOOKER_PERSONAL_ACCESS_TOKEN.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="The Booker API's address (e.g. https://api-staging.booker.com). Set by the "
        "deployment: BOOKER_BASE_URL.",
    )
    page_size: int = Field(default=100, description="Records per page of a list call (Booker "
                           "allows at most 100): fewer pages, fewer requests. Leave it.")
    timeout_seconds: float = Field(default=30.0, description="Seconds to wait for Booker to "
                                   "connect and answer a request before retrying it.")
    max_retries: int = Field(default=6, description="Times a request is retried after a fault "
                             "that heals by waiting (429, 503, a timeout) before the report "
                             "fails.")
    requests_per_second: float = Field(
        default=DEFAULT_REQUESTS_PER_SECOND, description="The pace of requests to Booker, "
        "shared by every run of this subscription key. Set by the deployment: "
        "BOOKER_REQUESTS_PER_SECOND.")
    burst: int = Field(default=20, description="Requests that may go at once after a pause, "
                       "above the pace. Leave it.")
    rate_bucket: str = Field(
        default="host", description='Where the pace is shared: "host" (this machine\'s '
        'processes) or "postgres" (every machine). Set by the deployment: BOOKER_RATE_BUCKET.')
    rate_postgres_dsn: str = Field(default="", repr=False, description="The database of the "
                                   '"postgres" pace. Set by the deployment: '
                                   "BOOKER_RATE_POSTGRES_DSN.")
    rate_mode: str = Field(
        default="fixed", description='"fixed" keeps requests_per_second; "adaptive" rises from '
        "it while Booker answers and slows at each 429. Set by the deployment: "
        "BOOKER_RATE_MODE.")
    max_requests_per_second: float = Field(
        default=0.0, description='Only with rate_mode "adaptive": the fastest pace it may reach '
        "(0 means 5 × requests_per_second). Set by the deployment: BOOKER_RATE_CEILING.")
    max_in_flight: int = Field(default=8, description="Requests of one run waiting for Booker "
                               "at once. Leave it.")

    _client: BookerClient | None = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.get_client()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def endpoint(self) -> str:
        """The base URL requests go to (the embedded sandbox's resource starts it here)."""
        return self.base_url

    def rate_budget(self) -> RateBudget:
        return RateBudget(self.requests_per_second, self.burst, bucket=self.rate_bucket,
                          postgres_dsn=self.rate_postgres_dsn, mode=self.rate_mode,
                          ceiling=self.max_requests_per_second or None)

    def get_client(self) -> BookerClient:
        """The client of this resource instance, created on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = BookerClient(self)
            return self._client


class ConnectionCheck(NamedTuple):
    name: str
    ok: bool
    message: str


class BookerClient(ReportView):
    """The root view of one set of credentials: it owns what its views share."""

    def __init__(
        self,
        settings: BookerResource,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        scrubber = Scrubber({settings.client_secret, settings.subscription_key,
                             settings.personal_access_token})
        issuer = TokenIssuer(
            Credentials(settings.client_id, settings.client_secret,
                        settings.personal_access_token),
            lambda *args, **kwargs: self._call(*args, **kwargs),  # token calls count here
            scrubber=scrubber, clock=clock, on_issued=lambda: self.stats.add(tokens=1),
        )
        self.budget = settings.rate_budget()  # the shared replies live where its bucket does
        transport = Transport(
            settings.endpoint(), settings.subscription_key, max_in_flight=settings.max_in_flight,
            timeout=settings.timeout_seconds, budget=self.budget,
            monotonic=monotonic, sleep=sleep,
        )
        super().__init__(Shared(
            page_size=settings.page_size,
            transport=transport,
            tokens=TokenCache(issuer.issue, clock),
            executor=BoundedExecutor(settings.max_in_flight, name="booker"),
            retry=RetryPolicy(settings.max_retries, rng or random.Random(), sleep),
            scrubber=scrubber,
        ))
        self.base_url = transport.base_url

    def close(self) -> None:
        self.shared.transport.close()
        self.shared.executor.shutdown()

    def check_connection(self) -> list[ConnectionCheck]:
        """Base URL, each credential, then whether the brand token can list locations."""
        reachable = self._check_reachable()
        if not reachable.ok:
            return [reachable]
        credentials = self._check_credentials()
        checks = [reachable, *credentials]
        if all(check.ok for check in credentials):
            checks.append(self._check_locations())
        return checks

    def _check_reachable(self) -> ConnectionCheck:
        try:
            response = self.shared.transport.send(
                "GET", "/", on_sent=lambda seconds: self.stats.add(requests=1, seconds=seconds))
        except TRANSPORT_FAULTS as exc:
            reply = fault(exc)
            return ConnectionCheck("base URL", False, f"{self.base_url}: {reply.cause}. Fix: "
                                   f"{reply.fix or 'check BOOKER_BASE_URL and the network'}")
        return ConnectionCheck("base URL", True, f"{self.base_url} answered HTTP "
                               f"{response.status_code}")

    def _check_credentials(self) -> list[ConnectionCheck]:
        """One token request checks all three: the gateway, then the app, then the grant."""
        try:
            self.shared.tokens.get(BRAND)
        except BookerCredentialsError as exc:
            failed, error = _CREDENTIALS.index(exc.credential), str(exc)
        except BookerError as exc:
            return [ConnectionCheck("token", False, f"could not get a token: {exc}")]
        else:
            return [ConnectionCheck(_CHECK_NAMES[key], True, "accepted") for key in _CREDENTIALS]
        checks = []
        for index, key in enumerate(_CREDENTIALS):
            if index < failed:
                checks.append(ConnectionCheck(_CHECK_NAMES[key], True, "accepted"))
            elif index == failed:
                checks.append(ConnectionCheck(_CHECK_NAMES[key], False, error))
            else:
                blocker = _CHECK_NAMES[_CREDENTIALS[failed]]
                checks.append(ConnectionCheck(_CHECK_NAMES[key], False,
                                              f"not checked: fix the {blocker} first"))
        return checks

    def _check_locations(self) -> ConnectionCheck:
        try:
            count = len(self.locations())
        except BookerError as exc:
            return ConnectionCheck("locations", False, str(exc))
        return ConnectionCheck("locations", True, f"the brand token sees {count} locations")
