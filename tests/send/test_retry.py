"""The retry rule, a pure function: how long to wait after a failed attempt, or give up."""

from __future__ import annotations

import pytest

from batcher.entry import Outcome
from batcher.send.retry import RetryPolicy, next_delay

TRANSIENT = Outcome(succeeded=False, retryable=True, http_status=500)
THROTTLED = Outcome(succeeded=False, retryable=True, throttled=True, http_status=429)


def top(low: float, high: float) -> float:
    return high


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(succeeded=True),
        Outcome(succeeded=False, retryable=False, http_status=400),
        Outcome(succeeded=False, auth_refused=True, http_status=401),
    ],
)
def test_only_retryable_failures_are_retried(outcome: Outcome) -> None:
    assert next_delay(RetryPolicy(), outcome, attempts=1, throttled=0) is None


def test_the_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=3.0, max_attempts=10)
    ceilings = [
        next_delay(policy, TRANSIENT, attempts=n, throttled=0, draw=top) for n in range(1, 7)
    ]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    drawn: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        drawn.append((low, high))
        return low

    assert next_delay(RetryPolicy(), TRANSIENT, attempts=3, throttled=0, draw=record) == 0
    assert drawn == [(0, 2.0)]


def test_retry_after_is_a_floor_but_not_believed_beyond_the_limit() -> None:
    policy = RetryPolicy(max_retry_after=300)
    asks = Outcome(succeeded=False, retryable=True, retry_after=7.5)
    assert next_delay(policy, asks, attempts=1, throttled=0, draw=top) == 7.5
    absurd = Outcome(succeeded=False, retryable=True, retry_after=86_400)
    assert next_delay(policy, absurd, attempts=1, throttled=0, draw=top) == 300


def test_attempts_run_out() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert next_delay(policy, TRANSIENT, attempts=2, throttled=0) is not None
    assert next_delay(policy, TRANSIENT, attempts=3, throttled=0) is None


def test_429s_do_not_use_up_attempts_but_are_bounded_on_their_own() -> None:
    policy = RetryPolicy(max_attempts=3, max_throttled_attempts=10)
    # Ten attempts, eight of them 429: two counted, so one more is allowed...
    assert next_delay(policy, THROTTLED, attempts=10, throttled=8) is not None
    # ...but never more than max_attempts + max_throttled_attempts in all.
    assert next_delay(policy, THROTTLED, attempts=13, throttled=12) is None


def test_a_429_backs_off_from_the_base_whatever_came_before() -> None:
    policy = RetryPolicy(backoff_base=0.5, max_attempts=10)
    assert next_delay(policy, THROTTLED, attempts=6, throttled=1, draw=top) == 0.5
    assert next_delay(policy, TRANSIENT, attempts=6, throttled=1, draw=top) == 8.0
