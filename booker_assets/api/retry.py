"""Retry: one function that repeats an attempt while its reply is retriable (contract
``docs/booker-api.md`` §3: exponential backoff with jitter, honouring ``Retry-After``, a bounded
number of times; the final error names the report, location, page and cause).

A request's path — resource → view → paginator → **retry** → auth → send → classify. An
attempt is auth + send + classify and returns a ``Reply``; ``with_retries`` asks its predicate
(``retriable``, by default ``reply.outcome == "retriable"``) whether to wait and go again.

Why our own 40 lines and not ``tenacity``: tenacity is well kept, but every part we need would
be custom code around it. Its waits know nothing of ``Retry-After``, so the wait would be a
callable reading the last outcome; its jittered wait draws from the global ``random`` while the
tests inject a seeded ``rng`` and a fake ``sleep`` (tenacity takes ``sleep=``, not an rng); the
stats by cause and the log line ("where: cause; retry n/max in s") would be a ``before_sleep``
hook; and when attempts run out, tenacity raises ``RetryError`` (or re-raises), whereas we
return the reply's own final error, "<cause> after <n> attempts". Attempts here return
replies rather than raise, which tenacity supports only through ``retry_if_result``. It would
also be one more dependency of the install. The loop below is the whole policy.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from booker_assets.api.replies import Reply

log = logging.getLogger("booker_assets.api.client.retry")

BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0


def is_retriable(reply: Reply) -> bool:
    return reply.outcome == "retriable"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long: ``max_retries`` retries after the first attempt."""

    max_retries: int
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    retriable: Callable[[Reply], bool] = is_retriable

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """``Retry-After`` when the gateway gives one, else full jitter (capped exponential)."""
        if retry_after is not None:
            return retry_after
        return self.rng.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))


def with_retries(attempt: Callable[[], Reply], *, where: str, policy: RetryPolicy,
                 on_retry: Callable[[str], None] = lambda kind: None) -> Reply:
    """``attempt()`` until its reply is not retriable; when retries run out, a fatal reply
    with the reply's final error ("<cause> after <n> attempts"). ``on_retry`` gets the kind."""
    number = 1
    while True:
        reply = attempt()
        if not policy.retriable(reply):
            return reply
        if number > policy.max_retries:
            return Reply.fatal(reply.final(f"{reply.cause} after {number} attempts",
                                           where=where, fix=reply.fix))
        wait = policy.wait(number, reply.retry_after)
        on_retry(reply.kind)
        log.info("%s: %s; retry %d/%d in %.2f s", where, reply.cause, number,
                 policy.max_retries, wait)
        policy.sleep(wait)
        number += 1
