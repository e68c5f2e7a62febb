"""Classify: what one HTTP reply means (contract ``docs/booker-api.md`` §2, §3).

The last stage of a request's path — resource → view → paginator → retry → auth → send →
**classify**. ``classify(response)`` turns a data reply or a token reply into one ``Reply``:

- ``ok``: the JSON body, for the caller to read;
- ``retriable``: a transient fault (429 with its ``Retry-After``, 5xx, ``{}``, non-JSON,
  timeouts and connection errors via ``fault``), retried by ``retry.py``;
- ``expired``: the token was refused (HTTP 401, ``ErrorCode`` 1000): ``auth.py`` renews and
  replays;
- ``fatal``: the ``BookerError`` to raise, naming the credential, argument or location.

Each stage above looks at ``Reply.outcome`` only; no stage steers another with exceptions.
Server text is quoted through ``Scrubber``, which blanks every secret and token the client holds.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from booker_assets.errors import (
    BookerCredentialsError,
    BookerError,
    BookerRequestError,
    BookerResponseError,
    BookerTransientError,
)

Outcome = Literal["ok", "retriable", "fatal", "expired"]

# Transport exceptions that are transient faults; others (a bad URL) propagate as they are.
TRANSPORT_FAULTS = (requests.Timeout, requests.ConnectionError,
                    requests.exceptions.ChunkedEncodingError)
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_TOKEN_EXPIRED_CODE = 1000
_ENVELOPE_KEYS = frozenset(
    {"IsSuccess", "ErrorCode", "ErrorMessage", "ArgumentErrors", "DetailedErrorCode",
     "DetailedErrorMessage", "TotalResultsCount"}
)
_SERVER_TEXT_LIMIT = 300
# Anything JWT-shaped in server text is blanked too: it may echo a token we never held.
_JWT_LIKE = re.compile(r"[\w-]{8,}\.[\w-]{8,}\.[\w-]*")
# Fix of every "location not visible" error (403 on a location call, 404 on GET /location/{id}).
FIX_LOCATION = (
    "`booker-assets discover-locations` lists the locations this token can see; remove this "
    "one from BOOKER_LOCATION_IDS (or the locations file, BOOKER_LOCATIONS_FILE) if it is "
    "listed there. A location Booker stopped returning keeps its partitions and rows (see the "
    "check locations_match_booker)"
)
FIX_UNREACHABLE = (
    "check that BOOKER_BASE_URL is Booker's API address (the contract's base URL), that this"
    " host resolves and reaches it (DNS, proxy, firewall, VPN), then run `booker-assets"
    " check-connection`")
_OS_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")  # "[Errno 111] Connection refused"
_MALFORMED = object()  # sentinel for a body that is not JSON (HTML, truncated)


@dataclass(frozen=True)
class Reply:
    """One reply, classified. Only the fields of its ``outcome`` are set."""

    outcome: Outcome
    body: Any = None  # ok
    kind: str = ""  # retriable: the cause in the stats, e.g. "http_429"
    cause: str = ""  # retriable, expired: what happened, for logs and the final error
    retry_after: float | None = None  # retriable: the gateway's Retry-After
    final: type[BookerError] = BookerTransientError  # retriable: raised when retries run out
    fix: str = ""  # retriable: the final error's fix
    error: BookerError | None = None  # fatal
    not_found: bool = False  # fatal: HTTP 404 or a "not found" envelope

    @classmethod
    def ok(cls, body: Any) -> Reply:
        return cls("ok", body=body)

    @classmethod
    def retriable(cls, kind: str, cause: str, *, retry_after: float | None = None,
                  final: type[BookerError] = BookerTransientError, fix: str = "") -> Reply:
        return cls("retriable", kind=kind, cause=cause, retry_after=retry_after, final=final,
                   fix=fix)

    @classmethod
    def expired(cls, cause: str) -> Reply:
        return cls("expired", cause=cause)

    @classmethod
    def fatal(cls, error: BookerError, *, not_found: bool = False) -> Reply:
        return cls("fatal", error=error, not_found=not_found)

    def value(self) -> Any:
        """The body of an ``ok`` reply; a ``fatal`` one raises its error."""
        if self.outcome == "ok":
            return self.body
        if self.error is not None:
            raise self.error
        raise RuntimeError(f"a {self.outcome} reply reached its caller ({self.cause})")


class Scrubber:
    """The secrets and tokens of one client, blanked out of every quote of the server."""

    def __init__(self, secrets: set[str]) -> None:
        self._secrets = set(secrets) - {""}
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def text(self, body: Any) -> str:
        """What the server said, shortened, with any secret or token we hold blanked out."""
        text = describe(body)
        with self._lock:
            secrets = tuple(self._secrets)
        for secret in secrets:
            text = text.replace(secret, "***")
        return _JWT_LIKE.sub("***", text)[:_SERVER_TEXT_LIMIT]


def classify(response: requests.Response, *, where: str, scrub: Scrubber,
             location_id: int | str | None = None, token_call: bool = False) -> Reply:
    """What ``response`` means: a token reply (``token_call``, §2) or a data reply (§3)."""
    transient = _transient(response)
    if transient is not None:
        return transient
    body = _json(response)
    if token_call:
        return _token_reply(response.status_code, body, scrub)
    return _data_reply(response.status_code, body, where, scrub, location_id)


def fault(exc: BaseException) -> Reply:
    """A transport exception (one of ``TRANSPORT_FAULTS``) as a retriable reply."""
    if isinstance(exc, requests.Timeout):
        return Reply.retriable("timeout", f"timeout ({type(exc).__name__})")
    # requests' own text is a paragraph of pool internals: the host and the OS's reason say it
    request = getattr(exc, "request", None)
    origin = urlsplit(getattr(request, "url", None) or "")
    host = f"{origin.scheme}://{origin.netloc}" if origin.netloc else "Booker"
    reasons = _OS_REASON.findall(str(exc))
    reason = reasons[-1].strip() if reasons else type(exc).__name__
    return Reply.retriable("connection", f"cannot connect to {host} ({reason})",
                           fix=FIX_UNREACHABLE)


def _data_reply(status: int, body: Any, where: str, scrub: Scrubber,
                location_id: int | str | None) -> Reply:
    if status == 401:
        if _is_subscription_key_error(body):
            return Reply.fatal(subscription_key_error(where))
        return Reply.expired(f"HTTP 401: {scrub.text(body)}")
    if status == 403:
        return Reply.fatal(_forbidden(f"HTTP 403: {scrub.text(body)}", where, location_id))
    if status >= 400:
        return _refusal(status, body, f"HTTP {status}: {scrub.text(body)}", where)
    malformed = _malformed(body)
    if malformed is not None:
        return malformed
    if isinstance(body, dict) and body.get("IsSuccess") is False:
        if body.get("ErrorCode") == _TOKEN_EXPIRED_CODE:
            return Reply.expired(f"ErrorCode 1000: {scrub.text(body)}")
        return _refusal(status, body, f"Booker refused the request: {scrub.text(body)}", where)
    return Reply.ok(body)


def _token_reply(status: int, body: Any, scrub: Scrubber) -> Reply:
    error = body.get("error") if isinstance(body, dict) else None
    if status == 400 and error == "invalid_client":
        return Reply.fatal(BookerCredentialsError(
            f"Booker rejected the client id or secret (invalid_client: {scrub.text(body)})",
            credential="client_id/client_secret", where="token",
            fix="check BOOKER_CLIENT_ID and BOOKER_CLIENT_SECRET",
        ))
    if status == 400 and error == "invalid_grant":
        return Reply.fatal(BookerCredentialsError(
            f"Booker rejected the personal access token (invalid_grant: {scrub.text(body)})",
            credential="personal_access_token", where="token",
            fix="generate a new personal access token and set BOOKER_PERSONAL_ACCESS_TOKEN",
        ))
    if status == 401:
        return Reply.fatal(subscription_key_error("token"))
    if status >= 400:
        return Reply.fatal(BookerRequestError(f"HTTP {status}: {scrub.text(body)}",
                                              where="token"))
    malformed = _malformed(body)
    if malformed is not None:
        return malformed
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        return Reply.fatal(BookerResponseError("token reply has no access_token", where="token"))
    return Reply.ok(body)


def _transient(response: requests.Response) -> Reply | None:
    status = response.status_code
    if status == 429:
        return Reply.retriable("http_429", "HTTP 429",
                               retry_after=seconds(response.headers.get("Retry-After")))
    if status in _RETRY_STATUSES:
        return Reply.retriable(f"http_{status}", f"HTTP {status}")
    return None


def _malformed(body: Any) -> Reply | None:
    """Non-JSON (HTML, truncated) and ``{}`` bodies are known transient faults (§3)."""
    if body is _MALFORMED:
        return Reply.retriable("malformed", "malformed JSON body", final=BookerResponseError)
    if body == {}:
        return Reply.retriable("empty_body", "empty {} body")
    return None


def _refusal(status: int, body: Any, text: str, where: str) -> Reply:
    """A refused request; ``not_found`` for a 404 or an envelope that says "not found"."""
    envelope = body if isinstance(body, dict) else {}
    message = str(envelope.get("ErrorMessage") or "").lower()
    not_found = status == 404 or envelope.get("ErrorCode") == 404 or "not found" in message
    return Reply.fatal(BookerRequestError(text, where=where), not_found=not_found)


def _forbidden(text: str, where: str, location_id: int | str | None) -> BookerRequestError:
    if location_id is not None:
        return invisible_location(location_id, where, text)
    return BookerRequestError(
        text, where=where,
        fix="the subscription (BOOKER_SUBSCRIPTION_KEY) needs Merchant API access and the "
            "personal access token a brand-level user",
    )


def invisible_location(location_id: int | str, where: str, detail: str) -> BookerRequestError:
    return BookerRequestError(
        f"location {location_id} is not visible to this token (or does not exist): {detail}",
        where=where, fix=FIX_LOCATION,
    )


def subscription_key_error(where: str) -> BookerCredentialsError:
    return BookerCredentialsError(
        "the API gateway rejected the subscription key (HTTP 401)",
        credential="subscription_key", where=where,
        fix="set BOOKER_SUBSCRIPTION_KEY to the key of a subscription with Merchant access",
    )


def _is_subscription_key_error(body: Any) -> bool:
    return "subscription key" in describe(body).lower()


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return _MALFORMED


def describe(body: Any) -> str:
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


# ----- reading an ok body ---------------------------------------------------------------------

def expect_object(body: Any, where: str) -> dict:
    if not isinstance(body, dict):
        raise BookerResponseError(f"expected a JSON object, got {type(body).__name__}",
                                  where=where)
    return body


def results(body: dict, key: str, where: str, *, allow_object: bool) -> Any:
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


def unwrap(body: dict) -> dict:
    """A Get body: flat, or the one object it wraps (``{"Location": {...}}``)."""
    payload = [key for key in body if key not in _ENVELOPE_KEYS]
    if len(payload) == 1 and isinstance(body[payload[0]], dict):
        return body[payload[0]]
    return body


def seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
