"""An adaptive rate (``BOOKER_RATE_MODE=adaptive``): the bucket learns the gateway's budget from
its answers, since Booker publishes none (contract ``docs/booker-api.md`` §3: HTTP 429 with
``Retry-After`` when a key's bucket is empty).

The rule is the AWS SDKs' "adaptive" retry mode (botocore ``retries/adaptive.py`` and
``throttling.py``, after TCP CUBIC). A 429 cuts the rate to ``BETA`` of what was being sent.
Every success lets it climb the cubic curve ``w_max + SCALE * (t - k)**3``, ``t`` the seconds
since the cut and ``k`` when the curve is back at ``w_max``, the rate of the cut: slowly near
the rate that was refused, then faster, probing for more. The rate may not exceed twice the
rate of replies actually seen (a smoothed count per half second), so a quiet period does not
bank a burst; nor the configured ``ceiling``.

Two choices differ from botocore. The rate starts at the configured one, not unlimited, and
the twice-the-measured cap never goes below it: that rate was chosen as safe, and only 429s
take the bucket under it. And one cut per congestion event: a 429 for a request reserved
before the last cut was sent at the old rate and says nothing new (a burst of them would
otherwise cut the rate to 0.7ⁿ). The state lives in the bucket's store, so in the Postgres
bucket every host learns, and paces at, one rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from booker_assets.api.bucket import BucketState

BETA = 0.7  # a 429 leaves this share of the rate
SCALE = 0.4  # the cubic's C: requests/s per s³
TICK_S = 0.5  # the reply rate is counted per half second...
SMOOTHING = 0.8  # ...and smoothed: this weight on the newest half second
MIN_RATE = 0.5  # requests/s: however many 429s, keep probing


@dataclass(frozen=True)
class AdaptiveRate:
    """Learns the rate between ``MIN_RATE`` and ``ceiling``, from ``start``."""

    start: float
    ceiling: float

    def initial(self, now: float) -> dict[str, float]:
        """The learning fields of a new bucket: the curve rises from ``start`` at once."""
        return {"rate": self.start, "w_max": self.start, "cut_at": now, "k": 0.0,
                "measured": self.start, "counted": 0.0, "tick": _tick(now)}

    def on_reply(self, state: BucketState, now: float, reserved: float,
                 throttled: bool) -> BucketState:
        """The state after a reply to the request reserved at ``reserved``."""
        state = _measure(state, now)
        if not throttled:
            return replace(state, rate=self._clamp(min(_cubic(state, now),
                                                       max(self.start, 2 * state.measured))))
        if reserved < state.cut_at:
            return state  # paced at the rate before the last cut, which answered it
        return self._cut(state, now)

    def _cut(self, state: BucketState, now: float) -> BucketState:
        sending = min(state.measured, state.rate)
        k = (sending * (1 - BETA) / SCALE) ** (1 / 3)
        # the queue, reserved at the old rate, is forgiven: its callers reserve again at the
        # new one rather than go at the pace the gateway just refused
        return replace(state, rate=self._clamp(sending * BETA), w_max=sending, cut_at=now, k=k,
                       tokens=max(state.tokens, 0.0))

    def _clamp(self, rate: float) -> float:
        return min(self.ceiling, max(MIN_RATE, rate))


def _cubic(state: BucketState, now: float) -> float:
    return state.w_max + SCALE * (now - state.cut_at - state.k) ** 3


def _tick(now: float) -> float:
    return math.floor(now / TICK_S) * TICK_S


def _measure(state: BucketState, now: float) -> BucketState:
    """Counts the reply; at each new half second, folds the count into ``measured``."""
    tick, counted = _tick(now), state.counted + 1
    if tick <= state.tick:
        return replace(state, counted=counted)
    current = counted / (tick - state.tick)
    measured = SMOOTHING * current + (1 - SMOOTHING) * state.measured
    return replace(state, measured=measured, counted=0.0, tick=tick)
