"""A token bucket kept as a theoretical arrival time (GCRA).

Each reservation takes the next slot and says how long to wait for it, so callers are
served in arrival order with one timer each and nothing polls. ``burst`` slots may be used
at once after an idle spell. A rate of 0 means unlimited: every reservation goes at once.
"""

from __future__ import annotations

import math


class TokenBucket:
    """Slots ``1/rate`` apart, up to ``burst`` at once after an idle spell.

    >>> bucket = TokenBucket(rate=10, burst=1)
    >>> [round(bucket.reserve(now=0.0), 2) for _ in range(3)]
    [0.0, 0.1, 0.2]
    """

    __slots__ = ("_tat", "burst", "rate")

    def __init__(self, *, rate: float, burst: int = 1) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        #: Slots per second; 0 = unlimited. Changing it spaces later reservations anew and
        #: keeps the slots already handed out.
        self.rate = rate
        self.burst = burst
        self._tat = -math.inf  # theoretical arrival time of the next call

    def reserve(self, *, now: float) -> float:
        """Take the next slot; return how long to wait for it (0 = go now)."""
        if self.rate <= 0:
            return 0.0
        interval = 1.0 / self.rate
        tat = max(self._tat, now)
        allowed_at = tat - (self.burst - 1) * interval
        self._tat = tat + interval
        return max(0.0, allowed_at - now)

    def void_queue(self, *, now: float) -> float:
        """Forget slots handed out beyond the next one (after a cut, callers asleep on
        them take new ones at the new rate); return when the next slot is due."""
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        self._tat = min(self._tat, now + interval)
        return max(self._tat, now)

    def hold_until(self, when: float) -> float:
        """Hand out no slot before ``when`` (the quota has no room until then); return it."""
        self._tat = max(self._tat, when)
        return self._tat
