"""Booker records → flat rows: snake_case names, nested objects joined with ``_``, lists as JSON.

A date-time field and its ISO ``...Offset`` twin become one UTC timestamp column; a lone legacy
``/Date(...)/`` value is re-anchored in the location's zone (contract §4).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from booker_assets.dates import BookerDateError, parse_booker_datetime
from booker_assets.errors import BookerConfigError

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_LEGACY_PREFIX = "/Date("
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
OFFSET = "Offset"
PII_MODES = ("keep", "hash", "drop")
MIN_PII_KEY_CHARS = 32
NEW_PII_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'

Zone = ZoneInfo | timezone


def snake(name: str) -> str:
    """``DateCreated`` → ``date_created``, ``CustomerID`` → ``customer_id``, ``SKU`` → ``sku``."""
    return _CAMEL.sub("_", name).lower()


def _scalar(value: Any, zone: Zone) -> Any:
    if isinstance(value, str):
        if value.startswith(_LEGACY_PREFIX):
            return parse_booker_datetime(None, value, zone)
        if _DATE_ONLY.match(value):
            return date.fromisoformat(value)
    return value


def _iso_or_none(value: str) -> datetime | None:
    """A lone ``...Offset`` value is a date-time if it parses (``UtcOffset: "-05:00"`` does not)."""
    try:
        return parse_booker_datetime(value, None, timezone.utc)
    except BookerDateError:
        return None


def flatten_record(record: dict, zone: Zone, prefix: str = "") -> dict[str, Any]:
    """One flat row from a (possibly nested) Booker record."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key.endswith(OFFSET) and key[: -len(OFFSET)] in record:
            continue  # the twin of a legacy field: read together with it below
        name = prefix + snake(key[: -len(OFFSET)] if key.endswith(OFFSET) else key)
        twin = record.get(key + OFFSET)
        if twin is not None:
            row[name] = parse_booker_datetime(twin, value, zone)
        elif key.endswith(OFFSET) and isinstance(value, str):
            moment = _iso_or_none(value)
            row[name if moment else prefix + snake(key)] = moment or value
        elif isinstance(value, dict):
            row.update(flatten_record(value, zone, prefix=f"{name}_"))
        elif isinstance(value, list):
            row[name] = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        else:
            row[name] = _scalar(value, zone)
    return row


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
