"""Fault injection: draws per request from a seeded RNG and applies one ``FaultProfile`` kind.

Transient kinds replace the reply (or delay it); hard kinds corrupt a good reply; the reshaping
switches (extra fields, missing optional values, shuffled keys) rewrite records on every reply.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from booker_sandbox.api import TOKEN_ERROR, Reply, failure, gateway_error
from booker_sandbox.settings import FaultProfile

# Kinds that replace the whole reply before the request is served.
REPLACING = frozenset({"http_429", "http_503", "http_504", "empty_body", "expired_token",
                       "html_body"})
HTML_PAGE = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             "<body><h1>Bad Gateway</h1><p>The proxy received an invalid response.</p></body>"
             "</html>")


class FaultInjector:
    """Thread-safe: one seeded RNG behind a lock, so a run's fault sequence is reproducible."""

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self._lock = threading.Lock()
        self._expired_contexts: set[int | None] = set()  # location ids; None: the brand

    @property
    def active(self) -> bool:
        return self.profile.rate > 0 and bool(self.profile.kinds)

    def draw(self, auth_call: bool, token: dict | None = None, newest: bool = False) -> str | None:
        """The fault kind for this request, if any (``token``: its claims, when it has one)."""
        if not self.active or (auth_call and not self.profile.auth_faults):
            return None
        with self._lock:
            if self._rng.random() >= self.profile.rate:
                return None
            kind = self._rng.choice(self.profile.kinds)
            if kind == "expired_token" and not self._may_expire(token, newest):
                return None
            return kind

    def _may_expire(self, token: dict | None, newest: bool) -> bool:
        """Only as a real token expires: the current token of its context, and, once that
        context saw an expiry, only tokens past half their life. A token issued to replace an
        expired one is never refused during the replay (the contract says "renew once, replay";
        the client renews up to 3 times before calling it a credentials error)."""
        if token is None or not newest:
            return False
        context = token.get("location_id")
        half_life = (token["exp"] - token["iat"]) / 2
        if context in self._expired_contexts and time.time() - token["iat"] < half_life:
            return False
        self._expired_contexts.add(context)
        return True

    def replacement(self, kind: str) -> Reply:
        """The reply that stands in for the real one (``REPLACING`` kinds)."""
        if kind == "http_429":
            return gateway_error(429, "Rate limit is exceeded. Try again in 1 seconds.",
                                 {"Retry-After": "1"})
        if kind in ("http_503", "http_504"):
            status = 503 if kind == "http_503" else 504
            return gateway_error(status, "The service is temporarily unavailable.")
        if kind == "empty_body":
            return Reply(200, {})
        if kind == "expired_token":
            with self._lock:
                status = self._rng.choice((401, 200))  # Booker says "expired" both ways
            return failure(status, TOKEN_ERROR, "The access token has expired.")
        return Reply(200, HTML_PAGE, content_type="text/html; charset=utf-8")

    def corrupt(self, kind: str, reply: Reply) -> bool:
        """Apply ``wrong_shape`` or ``lossy_page`` in place; False when the reply has no rows."""
        rows = reply.body.get(reply.rows_key) if reply.rows_key else None
        if kind == "wrong_shape" and rows is not None:
            reply.body = {**reply.body, reply.rows_key: len(rows)}
            return True
        if kind == "lossy_page" and reply.paged and rows:
            with self._lock:
                dropped = self._rng.randrange(len(rows))
            reply.body = {**reply.body, reply.rows_key: rows[:dropped] + rows[dropped + 1:]}
            return True
        return False

    def reshape(self, reply: Reply) -> list[str]:
        """Rewrite the records of a good data reply; returns the switches applied."""
        profile, applied = self.profile, []
        with self._lock:
            rng = random.Random(self._rng.random())
        if profile.extra_fields:
            applied.append("extra_fields")
            reply.body = _map_records(reply, _with_extra_fields)
        if profile.missing_optional:
            applied.append("missing_optional")
            reply.body = _map_records(reply, _without_optional)
        if profile.shuffle_keys:
            applied.append("shuffle_keys")
            reply.body = _shuffled(reply.body, rng)
        return applied


def _map_records(reply: Reply, change: Any) -> Any:
    body = reply.body
    if reply.record_body:
        return change(body)
    if reply.rows_key and isinstance(body.get(reply.rows_key), list):
        return {**body, reply.rows_key: [change(row) for row in body[reply.rows_key]]}
    return body


def _with_extra_fields(record: dict) -> dict:
    # Booker adds fields over time; a client must keep what it does not know.
    return {**record, "LoyaltyTier2027": "Gold", "Flags2027": {"IsVip": True, "Tags": ["new"]}}


def _without_optional(value: Any) -> Any:
    """Drop null values and the ISO ``...Offset`` twin of each legacy date (the legacy stays)."""
    if isinstance(value, list):
        return [_without_optional(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        key: _without_optional(v) for key, v in value.items()
        if v is not None and not (key.endswith("Offset") and key[:-6] in value)
    }


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    if not isinstance(value, dict):
        return value
    keys = list(value)
    rng.shuffle(keys)
    return {key: _shuffled(value[key], rng) for key in keys}
