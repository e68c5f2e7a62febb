"""Auth: the brand token, one token per location, and the Bearer header of data calls
(contract ``docs/booker-api.md`` §2).

A request's path — resource → view → paginator → retry → **auth** → send → classify.

- ``TokenIssuer`` gets a token: the brand token by the personal-access-token grant (a form
  post, retried like any call), a location token by a context update with the brand token.
- ``TokenCache`` keeps them, one per scope ("brand" or a location id), renewed about 60 s
  before the JWT's ``exp`` (``expires_in`` when the token is not a JWT), one thread per scope
  renewing while the others wait for it (no stampede). In this process's memory only: a
  token is a credential, never written to disk, not even to share it with the other runs of
  a backfill (each run asks its own: about one request per location a run covers).
- ``BookerAuth`` is the ``requests`` auth of one scope: it attaches ``Authorization: Bearer``
  and, when Booker refuses the token (``expired`` replies), drops it, renews and replays, up to
  three renewals; then the refusal is a credentials error.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.auth import AuthBase

from booker_assets.api.replies import Reply, Scrubber, seconds
from booker_assets.errors import BookerCredentialsError, BookerResponseError

log = logging.getLogger("booker_assets.api.client.auth")

TOKEN_PATH = "/v5/auth/connect/token"
CONTEXT_PATH = "/v5/auth/context/update"
BRAND = "brand"  # scope of the brand token; location tokens are scoped by location id
RENEW_EARLY_SECONDS = 60.0
DEFAULT_TOKEN_SECONDS = 1800.0  # when a token has neither a JWT ``exp`` nor ``expires_in``
# Renewals of one request's token before a refusal counts as a bad credential: on long runs
# tokens expire mid-run, and another thread's renewal can be refused as it races ours.
MAX_RENEWALS = 3


class CallPipeline(Protocol):
    """The client's call pipeline (retry → auth → send → classify), as the issuer uses it."""

    def __call__(self, method: str, path: str, *, where: str, scope: str | None,
                 location_id: int | str | None = None, token_call: bool = False,
                 **fields: Any) -> Reply: ...


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    personal_access_token: str


@dataclass(frozen=True)
class Token:
    value: str
    renew_at: float


class TokenIssuer:
    """New tokens: ``issue("brand")`` or ``issue(location_id)``; each one counted and scrubbed."""

    def __init__(self, credentials: Credentials, call: CallPipeline, *, scrubber: Scrubber,
                 clock: Callable[[], float], on_issued: Callable[[], None]) -> None:
        self._credentials, self._call = credentials, call
        self._scrubber, self._clock, self._on_issued = scrubber, clock, on_issued

    def issue(self, scope: str) -> Token:
        value, expires_in = self._brand() if scope == BRAND else self._location(scope)
        self._scrubber.add(value)
        self._on_issued()
        now = self._clock()
        expires = jwt_exp(value) or now + (expires_in or DEFAULT_TOKEN_SECONDS)
        margin = min(RENEW_EARLY_SECONDS, max(0.0, expires - now) / 2)
        log.debug("issued %s token, valid for %.0f s", scope, expires - now)
        return Token(value, expires - margin)

    def _brand(self) -> tuple[str, float | None]:
        form = {
            "grant_type": "personal_access_token",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
            "personal_access_token": self._credentials.personal_access_token,
            "scope": "merchant",
        }
        body = self._call("POST", TOKEN_PATH, where="token", scope=None, token_call=True,
                          data=form).value()
        return body["access_token"], seconds(body.get("expires_in"))

    def _location(self, location_id: str) -> tuple[str, float | None]:
        where = f"location token, location {location_id}"
        body = self._call("POST", CONTEXT_PATH, where=where, scope=BRAND,
                          location_id=location_id, params={"locationId": location_id}).value()
        if isinstance(body, str) and body:
            return body, None
        if isinstance(body, dict) and isinstance(body.get("access_token"), str):
            return body["access_token"], seconds(body.get("expires_in"))
        raise BookerResponseError(
            f"context update answered {type(body).__name__}, not a token", where=where
        )


class TokenCache:
    """Tokens by scope, each renewed by one thread while the others wait for it (no stampede)."""

    def __init__(self, issue: Callable[[str], Token], clock: Callable[[], float]) -> None:
        self._issue, self._clock = issue, clock
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, scope: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(scope, threading.Lock())

    def get(self, scope: str) -> str:
        with self._lock(scope):
            token = self._tokens.get(scope)
            if token is None or self._clock() >= token.renew_at:
                token = self._tokens[scope] = self._issue(scope)
            return token.value

    def invalidate(self, scope: str, stale: str) -> None:
        """Drop ``stale`` unless another thread already replaced it."""
        with self._lock(scope):
            token = self._tokens.get(scope)
            if token is not None and token.value == stale:
                del self._tokens[scope]


class BookerAuth(AuthBase):
    """Bearer auth of one scope over the client's ``TokenCache``; ``token`` pins the value
    (``renewing`` pins it, so that a refusal drops exactly the token that was sent)."""

    def __init__(self, tokens: TokenCache, scope: str = BRAND, token: str | None = None) -> None:
        self.tokens, self.scope, self.token = tokens, scope, token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token or self.tokens.get(self.scope)}"
        return request

    def renewing(self, where: str, attempt: Callable[[BookerAuth], Reply]) -> Reply:
        """``attempt`` with this scope's token, renewed and replayed while Booker refuses it
        (``MAX_RENEWALS`` times at most, then a fatal credentials error)."""
        renewals = 0
        while True:
            token = self.tokens.get(self.scope)
            reply = attempt(BookerAuth(self.tokens, self.scope, token))
            if reply.outcome != "expired":
                return reply
            if renewals == MAX_RENEWALS:
                return Reply.fatal(_refused_token(where, renewals, reply.cause))
            renewals += 1
            log.info("%s: token rejected (%s); renewal %d/%d", where, reply.cause, renewals,
                     MAX_RENEWALS)
            self.tokens.invalidate(self.scope, token)


def _refused_token(where: str, renewals: int, cause: str) -> BookerCredentialsError:
    return BookerCredentialsError(
        f"Booker refused the token {renewals + 1} times in a row, renewing it after each "
        f"refusal ({cause})", credential="personal_access_token", where=where,
        fix="check that BOOKER_PERSONAL_ACCESS_TOKEN belongs to a user with access "
            "to this brand and location",
    )


def jwt_exp(token: str) -> float | None:
    """``exp`` from the unverified JWT payload (the gem trusts it too), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        return None
