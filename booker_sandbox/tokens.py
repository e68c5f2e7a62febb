"""Signed JWTs for brand and location context, and the per-key token bucket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time

BRAND_ID = 501


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """HS256 JWTs with a per-server secret: a token from another sandbox is rejected."""

    def __init__(self, lifetime_s: int) -> None:
        self.lifetime_s = lifetime_s
        self._secret = secrets.token_bytes(32)

    def issue(self, location_id: int | None = None) -> str:
        now = int(time.time())
        claims = {"iat": now, "exp": now + self.lifetime_s, "scope": "merchant",
                  "brand_id": BRAND_ID, "jti": secrets.token_hex(8)}
        if location_id is not None:
            claims["location_id"] = location_id
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(f'{header}.{payload}')}"

    def verify(self, token: str) -> dict | None:
        """The claims of a genuine, unexpired token; None otherwise."""
        parts = token.split(".")
        if len(parts) != 3 or not hmac.compare_digest(
            self._sign(f"{parts[0]}.{parts[1]}"), parts[2]
        ):
            return None
        claims = json.loads(_unb64(parts[1]))
        return claims if claims["exp"] > time.time() else None

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._secret, signing_input.encode(), hashlib.sha256).digest())


class RateLimiter:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int:
        """0 when the request may go; else the whole seconds to wait (for ``Retry-After``)."""
        if self.rate <= 0:
            return 0
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
