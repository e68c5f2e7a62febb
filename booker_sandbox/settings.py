"""What a sandbox serves and how it misbehaves: ``SandboxSettings`` and ``FaultProfile``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

DEMO_CREDENTIALS: dict[str, str] = {
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
    "subscription_key": "sandbox-subscription-key",
    "personal_access_token": "sandbox-personal-access-token",
}

# A correct client retries these and ends with identical rows.
TRANSIENT_KINDS: tuple[str, ...] = (
    "http_429", "http_503", "http_504", "empty_body", "expired_token", "connection_reset",
    "read_timeout",
)
# These must surface as a clear error; only tests that expect one enable them.
HARD_KINDS: tuple[str, ...] = ("html_body", "truncated_json", "wrong_shape", "lossy_page")


@dataclass(frozen=True)
class FaultProfile:
    """Per-request faults drawn from a seeded RNG, plus always-on reshaping of records.

    ``page_cap`` lowers the server's page size cap (short pages); ``extra_fields``,
    ``missing_optional`` and ``shuffle_keys`` change records in ways a correct client absorbs.
    The token call gets faults only with ``auth_faults=True``.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = TRANSIENT_KINDS
    page_cap: int | None = None
    extra_fields: bool = False
    missing_optional: bool = False
    shuffle_keys: bool = False
    timeout_sleep_s: float = 3.0
    seed: int = 1
    auth_faults: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(TRANSIENT_KINDS) - set(HARD_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: "
                             f"{TRANSIENT_KINDS + HARD_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("FaultProfile.rate must be within [0, 1]")
        if self.page_cap is not None and self.page_cap < 1:
            raise ValueError("FaultProfile.page_cap must be at least 1")

    @classmethod
    def hostile(cls) -> FaultProfile:
        """Everything a correct client must survive, at once."""
        return cls(rate=0.15, kinds=TRANSIENT_KINDS, page_cap=37, extra_fields=True,
                   missing_optional=True, shuffle_keys=True)


@dataclass(frozen=True)
class SandboxSettings:
    """The dataset (seed, locations, span, clock) and the server's behaviour."""

    seed: int = 7
    location_count: int = 4
    start_date: date = date(2025, 1, 1)
    end_date: date | None = None  # None: today in UTC
    now: datetime | None = None  # aware; None: the real clock
    latency_ms: float = 0.0
    rate_per_second: float = 0.0  # token bucket per subscription key; 0 = unlimited
    burst: int = 20
    token_lifetime_s: int = 1800
    page_cap: int = 100
    context_reply: str = "string"  # or "object": {"access_token": ...}
    credentials: dict[str, str] = field(default_factory=lambda: dict(DEMO_CREDENTIALS))
    faults: FaultProfile = field(default_factory=FaultProfile)
    # Seed of contract-legal variants of every good data reply (variants.py), drawn
    # per request and a short page size per query; None: the canonical replies.
    variants: int | None = None
    # With ``variants``: also serve every field that places nothing in another shape than the
    # catalogue declares (shapes.py): not contract-legal forms, what another Booker
    # may send all the same.
    shapes: bool = False

    def __post_init__(self) -> None:
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("SandboxSettings.now must be timezone-aware")
        if self.context_reply not in ("string", "object"):
            raise ValueError('SandboxSettings.context_reply must be "string" or "object"')
        if self.page_cap < 1 or self.burst < 1:
            raise ValueError("SandboxSettings.page_cap and burst must be at least 1")
        missing = set(DEMO_CREDENTIALS) - set(self.credentials)
        if missing:
            raise ValueError(f"SandboxSettings.credentials lacks {sorted(missing)}")
