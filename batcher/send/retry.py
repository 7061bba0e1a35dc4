"""The retry rule: after an attempt that did not succeed, how long to wait, or give up.

Exponential backoff with full jitter, never shorter than the API's ``Retry-After``. A 429
was not executed: it does not use up ``max_attempts`` (it has its own bound), and its backoff
does not grow with the attempts already spent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from batcher.entry import Outcome

#: Draws the jittered delay from ``[low, high]``; ``random.uniform`` by default.
Draw = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How persistent a run is.

    >>> RetryPolicy().max_attempts
    5
    """

    max_attempts: int = 5
    #: 429s do not use up ``max_attempts`` (they were not executed), up to this many in all.
    max_throttled_attempts: int = 50
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    #: A Retry-After longer than this is not believed.
    max_retry_after: float = 300.0


def next_delay(
    policy: RetryPolicy,
    outcome: Outcome,
    *,
    attempts: int,
    throttled: int,
    draw: Draw = random.uniform,
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    ``attempts`` counts every attempt so far (the last one included), ``throttled`` those
    answered 429. Only a retryable outcome is retried, or an ambiguous one (its answer was
    lost; the caller checks the job's record before sending it again).

    >>> fail = Outcome(succeeded=False, retryable=True)
    >>> next_delay(RetryPolicy(), fail, attempts=1, throttled=0, draw=lambda lo, hi: hi)
    0.5
    >>> next_delay(RetryPolicy(), fail, attempts=5, throttled=0) is None
    True
    >>> next_delay(RetryPolicy(), Outcome(succeeded=False), attempts=1, throttled=0) is None
    True
    """
    if outcome.succeeded or not (outcome.retryable or outcome.ambiguous):
        return None
    counted = attempts - throttled
    if counted >= policy.max_attempts or attempts >= (
        policy.max_attempts + policy.max_throttled_attempts
    ):
        return None
    exponent = 1 if outcome.throttled else counted
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2 ** (exponent - 1))
    delay = draw(0, ceiling)
    if outcome.retry_after is not None:
        delay = max(delay, min(outcome.retry_after, policy.max_retry_after))
    return delay
