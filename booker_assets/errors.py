"""Typed errors: each names what failed (report, location, page) and the fix, never a secret.

``transient`` says whether waiting can heal the cause (a 429 storm, a 5xx, a timeout, a list
that moved while it was paged, a lock another writer holds). Only those are retried by the
step's retry policy; everything else fails at once, because retrying it only delays the
message the user needs.
"""

from __future__ import annotations

from typing import ClassVar


class BookerError(Exception):
    """Base class. ``where`` says which call failed; ``fix`` tells the user what to do."""

    transient: ClassVar[bool] = False

    def __init__(self, cause: str, *, where: str = "", fix: str = "") -> None:
        self.cause, self.where, self.fix = cause, where, fix
        parts = [f"{where}: {cause}" if where else cause]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class BookerCredentialsError(BookerError):
    """Booker rejected a credential. ``credential`` names which one (e.g. ``subscription_key``)."""

    def __init__(self, cause: str, *, credential: str, where: str = "", fix: str = "") -> None:
        self.credential = credential
        super().__init__(cause, where=where, fix=fix)


class BookerRequestError(BookerError):
    """Booker refused the request itself (400, 403, argument errors): retrying will not help."""


class BookerTransientError(BookerError):
    """429, 503/504, ``{}`` bodies, connection errors and timeouts: retried, then raised."""

    transient = True


class BookerResponseError(BookerError):
    """A reply that is not what the contract says (HTML, truncated JSON, wrong shape)."""


class BookerCountMismatch(BookerError):
    """Rows read differ from the ``TotalResultsCount`` Booker announced: never a short table.

    The list moved while it was paged; it heals when Booker's data stops moving."""

    transient = True


class BookerConfigError(BookerError):
    """A bad setting (location ids, dates, paths): raised at load or launch time."""
