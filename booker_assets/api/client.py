"""The Booker API client (contract: /work/shared/booker-api.md) and its Dagster resource.

One ``BookerClient`` per resource instance owns one pooled ``requests.Session``, the token
cache (one brand token, one token per location), a semaphore bounding requests in flight and the
retry loop; every client of the process with the same base URL and subscription key shares one
token bucket, as the gateway does. Secrets travel only in headers and form
bodies and are scrubbed from every message that quotes the server.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import dagster as dg
import requests
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter

from booker_assets.api.executor import BoundedExecutor
from booker_assets.api.ratelimit import shared_bucket
from booker_assets.errors import (
    BookerCountMismatch,
    BookerCredentialsError,
    BookerError,
    BookerRequestError,
    BookerResponseError,
    BookerStopped,
    BookerTransientError,
)

log = logging.getLogger("booker_assets.api.client")

T = TypeVar("T")
R = TypeVar("R")

TOKEN_PATH = "/v5/auth/connect/token"
CONTEXT_PATH = "/v5/auth/context/update"
LOCATIONS_PATH = "/v4.1/merchant/locations"
LOCATION_PATH = "/v4.1/merchant/location/{id}"

_BRAND = "brand"  # token-cache key of the brand token; location tokens are keyed by location id
_RENEW_EARLY_SECONDS = 60.0
_DEFAULT_TOKEN_SECONDS = 1800.0  # when a token has neither a JWT ``exp`` nor ``expires_in``
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 30.0
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_TOKEN_EXPIRED_CODE = 1000
DEFAULT_BASE_URL = "https://api.booker.com"
# Renewals of one request's token before a refusal counts as a bad credential: on long runs
# tokens expire mid-run, and another thread's renewal can be refused as it races ours.
_MAX_RENEWALS = 3
_ENVELOPE_KEYS = frozenset(
    {"IsSuccess", "ErrorCode", "ErrorMessage", "ArgumentErrors", "DetailedErrorCode",
     "DetailedErrorMessage", "TotalResultsCount"}
)
_SERVER_TEXT_LIMIT = 300
# Anything JWT-shaped in server text is blanked too: it may echo a token we never held.
_JWT_LIKE = re.compile(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
# Credentials in the order the server checks them, and their names in check_connection.
_CREDENTIALS = ("subscription_key", "client_id/client_secret", "personal_access_token")
_CHECK_NAMES = {"subscription_key": "subscription key",
                "client_id/client_secret": "client id/secret",
                "personal_access_token": "personal access token"}
# Fix of every "location not visible" error (403 on a location call, 404 on GET /location/{id}).
_FIX_LOCATION = (
    "correct BOOKER_LOCATION_IDS (or the locations file, BOOKER_LOCATIONS_FILE) and run "
    "`booker-assets discover-locations` to list the locations this token can see"
)


class BookerResource(dg.ConfigurableResource):
    """Credentials and traffic settings for the Booker API; ``get_client()`` does the calls."""

    client_id: str = Field(description="Developer application id (BOOKER_CLIENT_ID).")
    client_secret: str = Field(repr=False, description="BOOKER_CLIENT_SECRET.")
    subscription_key: str = Field(repr=False, description="BOOKER_SUBSCRIPTION_KEY.")
    personal_access_token: str = Field(repr=False, description="BOOKER_PERSONAL_ACCESS_TOKEN.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description='API host; "sandbox" means the embedded Booker sandbox.',
    )
    page_size: int = Field(default=100, description="Rows per Find page (server cap: 100).")
    timeout_seconds: float = Field(default=30.0, description="Connect and read timeout.")
    max_retries: int = Field(default=6, description="Retries of a transient fault.")
    requests_per_second: float = Field(default=10.0, description="Client-side rate limit.")
    burst: int = Field(default=20, description="Requests allowed at once above the rate.")
    max_in_flight: int = Field(default=8, description="Concurrent requests (and pool size).")

    _client: BookerClient | None = PrivateAttr(default=None)
    _client_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.get_client()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def get_client(self) -> BookerClient:
        """The client of this resource instance, created on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = BookerClient(self)
            return self._client


@dataclass(frozen=True)
class FindResult:
    """All rows of a paged Find call, in server order."""

    rows: list[dict]
    total: int | None
    pages: int
    requests: int


class ConnectionCheck(NamedTuple):
    name: str
    ok: bool
    message: str


class ClientStats:
    """Thread-safe counters of one client's traffic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.pages = 0
        self.retries: Counter[str] = Counter()
        self.http_seconds = 0.0
        self.tokens = 0

    def add(self, *, requests: int = 0, pages: int = 0, seconds: float = 0.0, tokens: int = 0,
            retry: str | None = None) -> None:
        with self._lock:
            self.requests += requests
            self.pages += pages
            self.http_seconds += seconds
            self.tokens += tokens
            if retry:
                self.retries[retry] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "pages": self.pages,
                "retries": dict(self.retries),
                "http_seconds": round(self.http_seconds, 3),
                "tokens": self.tokens,
            }


class _Tally:
    """Requests sent on behalf of one ``find`` (its pages run on several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


class _Retryable(Exception):
    """A transient fault: ``kind`` feeds the stats, ``final`` is raised once retries run out."""

    def __init__(self, kind: str, cause: str, *, retry_after: float | None = None,
                 final: type[BookerError] = BookerTransientError) -> None:
        super().__init__(cause)
        self.kind, self.cause, self.retry_after, self.final = kind, cause, retry_after, final


class _Expired(Exception):
    """HTTP 401 or ErrorCode 1000 on a data call: renew the token and replay."""


class _NotFound(BookerRequestError):
    """HTTP 404 or a "not found" envelope: ``location()`` turns it into its own message."""


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float


class _TokenCache:
    """Tokens by key, each renewed by one thread while the others wait for it (no stampede)."""

    def __init__(self, fetch: Callable[[str], _Token], clock: Callable[[], float]) -> None:
        self._fetch, self._clock = fetch, clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str) -> str:
        with self._lock(key):
            token = self._tokens.get(key)
            if token is None or self._clock() >= token.renew_at:
                token = self._tokens[key] = self._fetch(key)
            return token.value

    def invalidate(self, key: str, stale: str) -> None:
        """Drop ``stale`` unless another thread already replaced it."""
        with self._lock(key):
            token = self._tokens.get(key)
            if token is not None and token.value == stale:
                del self._tokens[key]


class BookerClient:
    """Paged Find, Get, token handling, retries and limits for one set of credentials."""

    def __init__(
        self,
        settings: BookerResource,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self.base_url = _resolve_base_url(settings.base_url)
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._rng = rng or random.Random()
        self._session = _session(settings.subscription_key, settings.max_in_flight)
        self._limiter = shared_bucket(
            f"{self.base_url} {settings.subscription_key}", settings.requests_per_second,
            settings.burst, clock=monotonic, sleep=sleep,
        )
        self._in_flight = threading.BoundedSemaphore(settings.max_in_flight)
        self._tokens = _TokenCache(self._issue_token, clock)
        self._secrets = {settings.client_secret, settings.subscription_key,
                         settings.personal_access_token} - {""}
        self._secrets_lock = threading.Lock()
        self._locations: dict[str, dict] = {}
        self._locations_lock = threading.Lock()
        self.stats = ClientStats()
        self._stopped = threading.Event()
        self.executor = BoundedExecutor(settings.max_in_flight, name="booker")

    def close(self) -> None:
        self._session.close()
        self.executor.shutdown()

    def counted(self) -> BookerClient:
        """This client (session, tokens, limiter, caches) with ``stats`` of its own, so that
        reports fetched side by side each report their own requests and retries."""
        view = copy.copy(self)
        view.stats = ClientStats()
        view._stopped = threading.Event()
        return view

    def stop(self) -> None:
        """Send no more requests from this client (a step failed: its other fetches stop)."""
        self._stopped.set()

    # ----- public calls -------------------------------------------------------------------

    def find(self, path: str, results_key: str, body: dict | None = None, *,
             location_id: int | str | None = None, report: str = "") -> FindResult:
        """Every row of a paged POST Find call (contract §4: a short page is not the end)."""
        tally = _Tally()

        def page(number: int) -> list[dict]:
            return self._find_page(path, results_key, body, number, location_id, report, tally)[0]

        rows, total = self._find_page(path, results_key, body, 1, location_id, report, tally)
        pages = 1
        if rows and total is not None and len(rows) < total:
            last = math.ceil(total / self._settings.page_size)
            for chunk in self.map(page, range(2, last + 1)):
                rows.extend(chunk)
            pages = last
        while rows and (total is None or len(rows) < total):
            pages += 1
            chunk = page(pages)
            if not chunk:
                break
            rows.extend(chunk)
        if total is not None and len(rows) != total:
            raise BookerCountMismatch(
                f"read {len(rows)} rows in {pages} pages but Booker announced "
                f"TotalResultsCount {total} (data changed while paging?)",
                where=_where(report or path, location_id),
                fix="re-run the partition; if it persists, lower page_size",
            )
        return FindResult(rows=rows, total=total, pages=pages, requests=tally.count)

    def get(self, path: str, results_key: str | None, params: dict | None = None, *,
            location_id: int | str | None = None, report: str = "") -> list[dict] | dict:
        """A GET call: the rows under ``results_key``, or the (unwrapped) body when it is None."""
        where = _where(report or path, location_id)
        query = dict(params or {})
        if location_id is not None:
            query["LocationID"] = _location_value(location_id)
        body = _object(self._request("GET", path, where=where, location_id=location_id,
                                     params=query), where)
        if results_key is None:
            return _unwrap(body)
        return _results(body, results_key, where, allow_object=True)

    def locations(self) -> list[dict]:
        """Every location the brand token sees."""
        return self.find(LOCATIONS_PATH, "Results", report="locations").rows

    def location(self, location_id: int | str) -> dict:
        """One location's record (brand token), cached for the life of the client."""
        key = str(location_id)
        with self._locations_lock:
            cached = self._locations.get(key)
        if cached is None:
            where = _where("location", location_id)
            try:
                body = self._request("GET", LOCATION_PATH.format(id=key), where=where,
                                     location_id=location_id, token_key=_BRAND)
            except _NotFound as missing:
                raise _invisible_location(location_id, where, missing.cause) from None
            cached = _unwrap(_object(body, where))
            with self._locations_lock:
                self._locations[key] = cached
        return cached

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the client's one executor (``max_in_flight`` threads);
        results in input order. Safe inside another ``map``: see ``executor.py``."""
        return self.executor.map(fn, items)

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

    # ----- connection checks --------------------------------------------------------------

    def _check_reachable(self) -> ConnectionCheck:
        try:
            response = self._send("GET", "/")
        except _Retryable as fault:
            return ConnectionCheck("base URL", False, f"cannot reach {self.base_url} "
                                   f"({fault.cause}): check BOOKER_BASE_URL and the network")
        return ConnectionCheck("base URL", True, f"{self.base_url} answered HTTP "
                               f"{response.status_code}")

    def _check_credentials(self) -> list[ConnectionCheck]:
        """One token request checks all three: the gateway, then the app, then the grant."""
        try:
            self._tokens.get(_BRAND)
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

    # ----- paging -------------------------------------------------------------------------

    def _find_page(self, path: str, results_key: str, body: dict | None, number: int,
                   location_id: int | str | None, report: str,
                   tally: _Tally) -> tuple[list[dict], int | None]:
        where = _where(report or path, location_id, number)
        payload = {**(body or {}), "UsePaging": True, "PageNumber": number,
                   "PageSize": self._settings.page_size}
        if location_id is not None:
            payload["LocationID"] = _location_value(location_id)
        reply = _object(self._request("POST", path, where=where, location_id=location_id,
                                      json_body=payload, tally=tally), where)
        rows = _results(reply, results_key, where, allow_object=False)
        total = reply.get("TotalResultsCount")
        if total is not None and not isinstance(total, int):
            raise BookerResponseError(f"TotalResultsCount is {type(total).__name__}, not int",
                                      where=where)
        self.stats.add(pages=1)
        return rows, total

    # ----- data calls: token, renewal, retries --------------------------------------------

    def _request(self, method: str, path: str, *, where: str, location_id: int | str | None,
                 token_key: str | None = None, params: dict | None = None,
                 json_body: dict | None = None, tally: _Tally | None = None) -> Any:
        """A data call with a Bearer token, renewed on 401 or ErrorCode 1000 (``_MAX_RENEWALS``
        times at most, then a credentials error)."""
        if token_key is None:
            token_key = _BRAND if location_id is None else str(location_id)

        def call(token: str) -> Any:
            headers = {"Authorization": f"Bearer {token}"}
            return self._attempts(
                where,
                lambda: self._send(method, path, headers=headers, params=params, json=json_body,
                                   tally=tally),
                lambda response: self._data_reply(response, where, location_id),
            )

        renewals = 0
        while True:
            token = self._tokens.get(token_key)
            try:
                return call(token)
            except _Expired as expired:
                if renewals == _MAX_RENEWALS:
                    raise _refused_token(where, renewals, expired) from None
                renewals += 1
                log.info("%s: token rejected (%s); renewal %d/%d", where, expired, renewals,
                         _MAX_RENEWALS)
                self._tokens.invalidate(token_key, token)

    def _attempts(self, where: str, send: Callable[[], requests.Response],
                  classify: Callable[[requests.Response], T]) -> T:
        """Send until ``classify`` accepts the reply; transient faults back off and retry."""
        attempt = 1
        while True:
            try:
                return classify(send())
            except _Retryable as fault:
                if attempt > self._settings.max_retries:
                    raise fault.final(f"{fault.cause} after {attempt} attempts",
                                      where=where) from None
                wait = self._backoff(attempt, fault.retry_after)
                self.stats.add(retry=fault.kind)
                log.info("%s: %s; retry %d/%d in %.2f s", where, fault.cause, attempt,
                         self._settings.max_retries, wait)
                self._sleep(wait)
                attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """``Retry-After`` when the gateway gives one, else full jitter (capped exponential)."""
        if retry_after is not None:
            return retry_after
        return self._rng.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1)))

    def _send(self, method: str, path: str, *, tally: _Tally | None = None,
              **kwargs: Any) -> requests.Response:
        """One HTTP request inside the in-flight bound and the rate limit."""
        with self._in_flight:
            self._limiter.acquire()
            if self._stopped.is_set():  # checked after the wait: it may have been long
                raise BookerStopped("stopped: another report of this step failed", where=path)
            started = self._monotonic()
            try:
                return self._session.request(method, self.base_url + path,
                                             timeout=self._settings.timeout_seconds, **kwargs)
            except requests.Timeout as exc:
                raise _Retryable("timeout", f"timeout ({type(exc).__name__})") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable("connection", f"connection error ({type(exc).__name__})") from None
            finally:
                self.stats.add(requests=1, seconds=self._monotonic() - started)
                if tally is not None:
                    tally.add()

    def _data_reply(self, response: requests.Response, where: str,
                    location_id: int | str | None) -> Any:
        """The JSON of a data reply, or the contract's exception for it (§3)."""
        status = response.status_code
        _raise_if_transient(response)
        body = _json(response)
        if status == 401:
            if _is_subscription_key_error(body):
                raise self._subscription_key_error(where)
            raise _Expired(f"HTTP 401: {self._server_text(body)}")
        if status == 403:
            raise self._forbidden(body, where, location_id)
        if status >= 400:
            raise _refusal(status, body)(f"HTTP {status}: {self._server_text(body)}",
                                         where=where)
        _raise_if_malformed(body)
        if isinstance(body, dict) and body.get("IsSuccess") is False:
            if body.get("ErrorCode") == _TOKEN_EXPIRED_CODE:
                raise _Expired(f"ErrorCode 1000: {self._server_text(body)}")
            raise _refusal(status, body)(
                f"Booker refused the request: {self._server_text(body)}", where=where)
        return body

    def _forbidden(self, body: Any, where: str,
                   location_id: int | str | None) -> BookerRequestError:
        text = f"HTTP 403: {self._server_text(body)}"
        if location_id is not None:
            return _invisible_location(location_id, where, text)
        return BookerRequestError(
            text, where=where,
            fix="the subscription (BOOKER_SUBSCRIPTION_KEY) needs Merchant API access and the "
                "personal access token a brand-level user",
        )

    # ----- tokens -------------------------------------------------------------------------

    def _issue_token(self, key: str) -> _Token:
        """A new brand token (PAT grant) or location token (context update)."""
        if key == _BRAND:
            value, expires_in = self._brand_token()
        else:
            value, expires_in = self._location_token(key)
        with self._secrets_lock:
            self._secrets.add(value)
        self.stats.add(tokens=1)
        now = self._clock()
        expires = _jwt_exp(value) or now + (expires_in or _DEFAULT_TOKEN_SECONDS)
        margin = min(_RENEW_EARLY_SECONDS, max(0.0, expires - now) / 2)
        log.debug("issued %s token, valid for %.0f s", key, expires - now)
        return _Token(value, expires - margin)

    def _brand_token(self) -> tuple[str, float | None]:
        form = {
            "grant_type": "personal_access_token",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
            "personal_access_token": self._settings.personal_access_token,
            "scope": "merchant",
        }
        body = self._attempts(
            "token",
            lambda: self._send("POST", TOKEN_PATH, data=form),
            self._token_reply,
        )
        return body["access_token"], _seconds(body.get("expires_in"))

    def _location_token(self, location_id: str) -> tuple[str, float | None]:
        where = _where("location token", location_id)
        body = self._request("POST", CONTEXT_PATH, where=where, location_id=location_id,
                             token_key=_BRAND, params={"locationId": location_id})
        if isinstance(body, str) and body:
            return body, None
        if isinstance(body, dict) and isinstance(body.get("access_token"), str):
            return body["access_token"], _seconds(body.get("expires_in"))
        raise BookerResponseError(
            f"context update answered {type(body).__name__}, not a token", where=where
        )

    def _token_reply(self, response: requests.Response) -> dict:
        """The token endpoint's JSON, or a credentials error naming the credential (§2)."""
        _raise_if_transient(response)
        body = _json(response)
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 400 and error == "invalid_client":
            raise BookerCredentialsError(
                f"Booker rejected the client id or secret (invalid_client: "
                f"{self._server_text(body)})", credential="client_id/client_secret",
                where="token", fix="check BOOKER_CLIENT_ID and BOOKER_CLIENT_SECRET",
            )
        if response.status_code == 400 and error == "invalid_grant":
            raise BookerCredentialsError(
                f"Booker rejected the personal access token (invalid_grant: "
                f"{self._server_text(body)})", credential="personal_access_token",
                where="token", fix="generate a new personal access token and set "
                                   "BOOKER_PERSONAL_ACCESS_TOKEN",
            )
        if response.status_code == 401:
            raise self._subscription_key_error("token")
        if response.status_code >= 400:
            raise BookerRequestError(f"HTTP {response.status_code}: {self._server_text(body)}",
                                     where="token")
        _raise_if_malformed(body)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise BookerResponseError("token reply has no access_token", where="token")
        return body

    def _subscription_key_error(self, where: str) -> BookerCredentialsError:
        return BookerCredentialsError(
            "the API gateway rejected the subscription key (HTTP 401)",
            credential="subscription_key", where=where,
            fix="set BOOKER_SUBSCRIPTION_KEY to the key of a subscription with Merchant access",
        )

    def _server_text(self, body: Any) -> str:
        """What the server said, shortened, with any secret or token we hold blanked out."""
        text = _describe(body)
        with self._secrets_lock:
            secrets = tuple(self._secrets)
        for secret in secrets:
            text = text.replace(secret, "***")
        return _JWT_LIKE.sub("***", text)[:_SERVER_TEXT_LIMIT]


# ----- module helpers (pure) ------------------------------------------------------------------

_MALFORMED = object()  # sentinel for a body that is not JSON (HTML, truncated)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return _MALFORMED


def _raise_if_transient(response: requests.Response) -> None:
    status = response.status_code
    if status == 429:
        raise _Retryable("http_429", "HTTP 429", retry_after=_seconds(
            response.headers.get("Retry-After")))
    if status in _RETRY_STATUSES:
        raise _Retryable(f"http_{status}", f"HTTP {status}")


def _raise_if_malformed(body: Any) -> None:
    """Non-JSON (HTML, truncated) and ``{}`` bodies are known transient faults (§3)."""
    if body is _MALFORMED:
        raise _Retryable("malformed", "malformed JSON body", final=BookerResponseError)
    if body == {}:
        raise _Retryable("empty_body", "empty {} body")


def _refusal(status: int, body: Any) -> type[BookerRequestError]:
    """``_NotFound`` for a 404, or an envelope that says "not found" whatever the status."""
    envelope = body if isinstance(body, dict) else {}
    message = str(envelope.get("ErrorMessage") or "").lower()
    if status == 404 or envelope.get("ErrorCode") == 404 or "not found" in message:
        return _NotFound
    return BookerRequestError


def _invisible_location(location_id: int | str, where: str, detail: str) -> BookerRequestError:
    return BookerRequestError(
        f"location {location_id} is not visible to this token (or does not exist): {detail}",
        where=where, fix=_FIX_LOCATION,
    )


def _refused_token(where: str, renewals: int, expired: _Expired) -> BookerCredentialsError:
    return BookerCredentialsError(
        f"Booker refused the token {renewals + 1} times in a row, renewing it after each "
        f"refusal ({expired})", credential="personal_access_token", where=where,
        fix="check that BOOKER_PERSONAL_ACCESS_TOKEN belongs to a user with access "
            "to this brand and location",
    )


def _is_subscription_key_error(body: Any) -> bool:
    return "subscription key" in _describe(body).lower()


def _describe(body: Any) -> str:
    """A one-line account of an error body: argument errors first, then any message."""
    if body is _MALFORMED:
        return "non-JSON body"
    if not isinstance(body, dict):
        return f"{type(body).__name__} body"
    parts = [
        f"argument {err.get('ArgumentName')}: {err.get('ErrorMessage')}"
        for err in body.get("ArgumentErrors") or []
        if isinstance(err, dict)
    ]
    for key in ("ErrorMessage", "message", "error_description", "error"):
        if body.get(key):
            parts.append(str(body[key]))
            break
    if body.get("ErrorCode"):
        parts.append(f"ErrorCode {body['ErrorCode']}")
    return "; ".join(parts) or "no error message"


def _object(body: Any, where: str) -> dict:
    if not isinstance(body, dict):
        raise BookerResponseError(f"expected a JSON object, got {type(body).__name__}",
                                  where=where)
    return body


def _results(body: dict, key: str, where: str, *, allow_object: bool) -> Any:
    """The rows under ``key``: a list (null reads as empty), or an object for single Gets."""
    if key not in body:
        raise BookerResponseError(
            f"reply has no {key!r} (keys: {', '.join(sorted(body))[:200]})", where=where,
            fix="correct the results key of this report in the catalogue",
        )
    rows = body[key]
    if rows is None:
        return []
    if isinstance(rows, list) or (allow_object and isinstance(rows, dict)):
        return rows
    raise BookerResponseError(f"{key!r} is {type(rows).__name__}, not a list", where=where)


def _unwrap(body: dict) -> dict:
    """A Get body: flat, or the one object it wraps (``{"Location": {...}}``)."""
    payload = [key for key in body if key not in _ENVELOPE_KEYS]
    if len(payload) == 1 and isinstance(body[payload[0]], dict):
        return body[payload[0]]
    return body


def _jwt_exp(token: str) -> float | None:
    """``exp`` from the unverified JWT payload (the gem trusts it too), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        return None


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _where(report: str, location_id: int | str | None, page: int | None = None) -> str:
    parts = [report]
    if location_id is not None:
        parts.append(f"location {location_id}")
    if page is not None:
        parts.append(f"page {page}")
    return ", ".join(parts)


def _location_value(location_id: int | str) -> int | str:
    """Booker wants numeric ids as numbers; ids read from files arrive as strings."""
    text = str(location_id).strip()
    return int(text) if text.isdigit() else text


def _resolve_base_url(base_url: str) -> str:
    if base_url == "sandbox":
        from booker_assets.sandbox import embedded_url  # lazy: the sandbox is optional

        base_url = embedded_url()
    return base_url.rstrip("/")


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
