"""Personal columns under ``BOOKER_PII``: kept, dropped, or replaced by a keyed hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from booker_assets.settings import PiiKey, Settings, check_pii


@dataclass(frozen=True)
class PiiPolicy:
    """What ``BOOKER_PII`` (and ``BOOKER_PII_KEY`` for ``hash``) do with personal columns."""

    mode: str = "keep"
    key: PiiKey | None = None

    def __post_init__(self) -> None:
        check_pii(self.mode, self.key)

    @classmethod
    def of_settings(cls, settings: Settings) -> PiiPolicy:
        """The deployment's policy: BOOKER_PII and BOOKER_PII_KEY as settings.py read them."""
        return cls(settings.pii, settings.pii_key)

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
