"""The adaptive rate (``BOOKER_RATE_MODE=adaptive``): up while requests succeed, cut by 429s,
from the configured rate and never above the ceiling; then against the sandbox over HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from booker_assets.api.adaptive import BETA, MIN_RATE, SCALE, AdaptiveRate
from booker_assets.api.bucket import BucketState
from booker_assets.api.client import BookerResource
from booker_assets.api.ratelimit import MemoryStore, RateBudget, TokenBucket
from booker_assets.errors import BookerConfigError
from booker_assets_tests.conftest import SANDBOX_SETTINGS
from booker_sandbox import BookerSandbox

RULE = AdaptiveRate(start=10, ceiling=40)


def _state(now: float = 0.0, **fields: float) -> BucketState:
    """A bucket's state; unless ``tick`` is given, no half second ends and ``measured`` stays
    as set (the measurement has its own test)."""
    initial = BucketState(tokens=0, updated=now, **RULE.initial(now) | {"tick": 1e12})
    return replace(initial, **fields)


def test_success_climbs_the_cubic_from_the_configured_rate():
    state = RULE.on_reply(_state(), 2.0, reserved=1.9, throttled=False)
    assert state.rate == pytest.approx(10 + SCALE * 2**3)  # from the start, no cut yet


def test_it_never_exceeds_the_ceiling():
    state = _state(measured=1000)
    for now in range(1, 30):
        state = RULE.on_reply(state, float(now), reserved=now - 0.1, throttled=False)
        assert state.rate <= RULE.ceiling
    assert state.rate == RULE.ceiling


def test_replies_are_measured_per_half_second_and_smoothed():
    state = _state(tick=0.0, measured=10)
    for now in (0.1, 0.2, 0.3, 0.4):  # 4 replies in the first half second, counted
        state = RULE.on_reply(state, now, reserved=now, throttled=False)
    state = RULE.on_reply(state, 0.6, reserved=0.6, throttled=False)  # the 5th ends it
    assert state.measured == pytest.approx(0.8 * 5 / 0.5 + 0.2 * 10)


def test_a_quiet_period_banks_no_rate():
    # hours without a request: the curve says "far above", the replies seen say "little"
    state = RULE.on_reply(_state(tick=0.0), 3600.0, reserved=3599.9, throttled=False)
    assert state.measured < 3
    assert state.rate == RULE.start  # twice what is being sent, but never below the start


def test_a_429_cuts_to_beta_of_what_was_sent_once_per_event():
    state = _state(rate=20, measured=20, tokens=-6)
    cut = RULE.on_reply(state, 5.0, reserved=4.9, throttled=True)
    assert (cut.rate, cut.w_max, cut.cut_at) == (pytest.approx(20 * BETA), 20, 5.0)
    assert cut.tokens == 0  # the queue reserved at 20/s reserves again at 14/s
    # another 429 for a request reserved before that cut was paced at 20/s: no news
    assert RULE.on_reply(cut, 5.1, reserved=4.95, throttled=True).rate == cut.rate
    # one reserved after it was paced at 14/s, and still refused: cut again
    assert RULE.on_reply(cut, 5.2, reserved=5.05, throttled=True).rate == pytest.approx(
        14 * BETA)


def test_after_a_cut_the_curve_is_back_at_the_refused_rate_after_k():
    cut = RULE.on_reply(_state(rate=20, measured=30), 5.0, reserved=4.9, throttled=True)
    back = RULE.on_reply(replace(cut, measured=30), 5.0 + cut.k, reserved=5.0 + cut.k,
                         throttled=False)
    assert cut.k == pytest.approx((20 * (1 - BETA) / SCALE) ** (1 / 3))
    assert back.rate == pytest.approx(20)


def test_however_many_429s_it_keeps_probing():
    state = _state()
    for n in range(40):
        state = RULE.on_reply(state, float(n), reserved=float(n), throttled=True)
    assert state.rate == MIN_RATE


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.during_sleep = lambda: None

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.during_sleep()


def test_a_slot_that_waited_through_a_cut_is_reserved_again_at_the_new_rate():
    clock = _Clock()
    bucket = TokenBucket(10, 1, sleep=clock.sleep, store=MemoryStore(lambda: clock.now),
                         adaptive=AdaptiveRate(10, 40))
    first = bucket.reserve()
    assert first.wait == 0
    # while the second caller waits for its slot, the first one's reply is a 429
    clock.during_sleep = lambda: (setattr(clock, "during_sleep", lambda: None),
                                  bucket.feedback(first, throttled=True))
    second = bucket.reserve()
    assert second.reserved > first.reserved  # given up and reserved again, after the cut
    assert bucket.rate == pytest.approx(10 * BETA)


def test_a_fixed_bucket_learns_nothing():
    bucket = TokenBucket(10, 5, store=MemoryStore(lambda: 0.0))
    bucket.feedback(bucket.reserve(), throttled=True)
    assert bucket.rate == 10


def test_the_ceiling_is_never_below_the_rate():
    assert RateBudget(10, 5, mode="adaptive").top == 50  # default: 5 × the rate
    with pytest.raises(BookerConfigError, match="ceiling 8 is below the rate 10"):
        RateBudget(10, 5, mode="adaptive", ceiling=8)


def test_it_learns_the_sandbox_limit_over_http(postgres_dsn):
    # The gateway allows 10/s; the client starts at 3/s and may go up to 40/s. (A low limit:
    # even a loaded machine sends faster, so the probes past it, and their 429s, happen.)
    limited = replace(SANDBOX_SETTINGS, rate_per_second=10, burst=5)
    with BookerSandbox(limited) as sandbox:
        client = BookerResource(
            base_url=sandbox.url, **sandbox.credentials, requests_per_second=3, burst=5,
            max_in_flight=8, rate_bucket="postgres", rate_postgres_dsn=postgres_dsn,
            rate_mode="adaptive", max_requests_per_second=40).get_client()
        bucket = client.shared.transport.limiter
        with ThreadPoolExecutor(max_workers=8) as pool:
            rates = list(pool.map(lambda _: (client.locations(), bucket.rate)[1], range(100)))
        stats = sandbox.stats
    print(f"\nlearned rates: {[round(r, 1) for r in rates[::10]]}; "
          f"429s: {stats.throttled} of {stats.requests}")
    assert max(rates) > 10  # it rose from the start, and probed past the limit
    assert max(rates) <= 40 and min(rates) >= MIN_RATE
    assert stats.throttled <= 0.2 * stats.requests  # the probes cost a few 429s, not a storm
