"""Personal columns under ``BOOKER_PII``: kept, dropped, or replaced by a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from booker_assets.errors import BookerConfigError

PII_MODES = ("keep", "hash", "drop")
MIN_PII_KEY_CHARS = 32
NEW_PII_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


class PiiKey:
    """The secret key of ``BOOKER_PII=hash``. Its repr and str never show it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if len(secret) < MIN_PII_KEY_CHARS:  # never echo the value, not even in part
            raise BookerConfigError(
                f"BOOKER_PII_KEY is shorter than {MIN_PII_KEY_CHARS} characters: a short key "
                "can be guessed, and then every hashed email or phone recovered by trying "
                "candidates",
                fix=f"set BOOKER_PII_KEY to the output of `{NEW_PII_KEY}`",
            )
        self._secret = secret.encode()

    def digest(self, value: Any) -> str:
        """HMAC-SHA256 of the normalised value: the same for the same key, load after load."""
        text = str(value).strip().lower()
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "PiiKey(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PiiKey) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash((PiiKey, self._secret))


def missing_pii_key() -> BookerConfigError:
    """The load-time error for ``BOOKER_PII=hash`` without ``BOOKER_PII_KEY``."""
    return BookerConfigError(
        "BOOKER_PII=hash needs BOOKER_PII_KEY, the secret key of the keyed hash (HMAC-SHA256): "
        "an unkeyed hash of an email or phone is reversed by hashing candidates",
        fix=f"set BOOKER_PII_KEY to the output of `{NEW_PII_KEY}`, keep it secret and keep it "
        "the same (a new key changes every hashed value, so joins across loads break), or set "
        "BOOKER_PII=drop",
    )


@dataclass(frozen=True)
class PiiPolicy:
    """What ``BOOKER_PII`` (and ``BOOKER_PII_KEY`` for ``hash``) do with personal columns."""

    mode: str = "keep"
    key: PiiKey | None = None

    def __post_init__(self) -> None:
        if self.mode not in PII_MODES:
            raise BookerConfigError(
                f"BOOKER_PII={self.mode!r} is not one of {', '.join(PII_MODES)}",
                fix="set BOOKER_PII to keep (default), hash or drop")
        if self.mode == "hash" and self.key is None:
            raise missing_pii_key()

    @classmethod
    def of(cls, policy: PiiPolicy | str) -> PiiPolicy:
        """``policy`` itself, or a bare ``keep``/``drop`` (``hash`` has no key: refused)."""
        return policy if isinstance(policy, PiiPolicy) else cls(policy)


def protect_pii(
    row: dict[str, Any], columns: tuple[str, ...], policy: PiiPolicy | str
) -> dict[str, Any]:
    """Drop or keyed-hash personal columns (``email``, ``address_*``, …) per ``policy``."""
    policy = PiiPolicy.of(policy)
    if policy.mode == "keep" or not columns:
        return row
    digest = policy.key.digest if policy.mode == "hash" and policy.key else None
    protected: dict[str, Any] = {}
    for name, value in row.items():
        if not name.startswith(columns):
            protected[name] = value
        elif digest is not None:  # "hash"; "drop" leaves the column out
            protected[name] = None if value is None else digest(value)
    return protected
