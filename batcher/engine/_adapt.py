"""Adaptation to 429s: decide on samples of answers, cut multiplicatively, recover additively.

Some APIs answer a share of requests 429 at random, whatever the rate; cutting on each of
them (even once per second) drives the rate down to a crawl while sending slower helps
nothing. So the runner reports *every* answer, and the adaptation looks at them in
consecutive *samples* of at least ``window`` answers spanning at least
``min_window_seconds``. A sample whose share of 429s is above the threshold cuts the
effective rate (x0.7 at most, or straight to what got through); one at or below it changes
nothing. Once a cut has found a quota, probing above it is judged against the smaller
``probe_threshold``. Between cuts the rate recovers additively, never above the configured
rate.

Why these numbers:

* Samples do not overlap, so every decision is an independent test with a known
  false-alarm rate: with 10% random 429s, P(more than 25% of 20 answers) = P(>= 6) ~ 1.1%,
  i.e. one needless cut every ~90 samples, which the additive recovery undoes in seconds.
* A sample also lasts at least a second, so at high rates it holds hundreds of answers and
  the noise all but vanishes (false alarms per *second* stay bounded whatever the rate),
  and 429s from one calendar second of a per-second quota count once.
* At low rates a sample takes longer: with a quota of 2/s and ``--rate 6`` a decision
  needs 20 answers, about 4-7 s each. That is slow but acceptable: Retry-After (honoured
  per request by the runner) keeps every individual call correct meanwhile.
* After a cut, answers to slots reserved at the old rate say nothing about the new one:
  the next sample only starts once those slots have gone out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AdaptSettings:
    """The adaptation's knobs (see the module's notes for why these defaults)."""

    decrease_factor: float = 0.7
    #: Recovery per second; None: a share (``recovery_fraction``) of the rate the last cut set.
    increase_per_second: float | None = None
    min_rate: float = 0.5
    window: int = 20
    min_window_seconds: float = 1.0
    throttle_threshold: float = 0.25
    probe_threshold: float = 0.15
    recovery_fraction: float = 0.03
    drain_seconds: float = 0.5
    #: Cut straight to (just under) what got through, when that is lower than x0.7.
    proportional_cut: bool = True


@dataclass(frozen=True, slots=True)
class Cut:
    """A decision to slow down: the new rate, and the sample that called for it."""

    rate: float
    throttled_share: float
    passed_per_second: float


class Adaptation:
    """The state of the evidence: the current sample, the quota found, the recovery.

    A second of answers, every one a 429: nothing got through, so one cut, of the most
    one step may cut (to 0.3x).

    >>> adapt = Adaptation(AdaptSettings(), max_rate=20, now=0.0)
    >>> cuts = [adapt.observe(throttled=True, now=i / 20, rate=20) for i in range(21)]
    >>> [round(c.rate, 1) for c in cuts if c]
    [6.0]
    """

    __slots__ = (
        "_after_cut", "_cut_effective_at", "_holding", "_last_cut", "_last_raise",
        "_quota_estimate", "_sample_start", "_sample_throttled", "_sample_total", "max_rate",
        "settings",
    )  # fmt: skip

    def __init__(self, settings: AdaptSettings, *, max_rate: float, now: float) -> None:
        if settings.window < 1:
            raise ValueError("window must be >= 1")
        self.settings = settings
        self.max_rate = max_rate  # 0 = unlimited until the API pushes back
        # What got through in the sample that last cut the rate: under a quota, the quota.
        self._quota_estimate: float | None = None
        self._holding = False  # after a cut, until a sample at the new rate comes back clean
        self._after_cut = max_rate  # the rate the last cut set: sizes the recovery step
        self._last_cut = -math.inf
        self._cut_effective_at = -math.inf
        self._last_raise = now
        self._sample_start: float | None = None
        self._sample_total = 0
        self._sample_throttled = 0

    def observe(
        self, *, throttled: bool, now: float, rate: float, observed_rate: float = 0.0
    ) -> Cut | None:
        """Add one answer to the evidence; return a :class:`Cut` when a sample calls for one.

        ``rate`` is the effective rate now (0 = unlimited), ``observed_rate`` the calls per
        second lately (used to start from when an unlimited run is throttled).
        """
        s = self.settings
        if now < self._cut_effective_at + s.drain_seconds:
            return None  # an answer to a slot reserved at the old rate: no evidence about the new
        if self._sample_start is None:
            self._sample_start = now
        self._sample_total += 1
        self._sample_throttled += throttled
        if self._sample_total < s.window or now - self._sample_start < s.min_window_seconds:
            return None
        share = self._sample_throttled / self._sample_total
        passed_per_second = (self._sample_total - self._sample_throttled) / max(
            now - self._sample_start, 1e-9
        )
        self._sample_start, self._sample_total, self._sample_throttled = None, 0, 0
        if share > self._threshold(rate):
            return self._cut(now, rate, share, passed_per_second, observed_rate)
        if self._holding:
            self._holding = False
            self._last_raise = now
        return None

    def _threshold(self, rate: float) -> float:
        """The share of 429s that calls for a cut.

        Above a quota already found, 429s are expected evidence rather than noise, so a
        smaller share counts: probing past the quota stops at ~1.18x it instead of ~1.33x,
        which roughly halves the share of throttled requests under a quota. Below it (and
        before any cut) random 429s must not cut, so the threshold stays high there.
        """
        estimate = self._quota_estimate
        if estimate is not None and rate > estimate:
            return self.settings.probe_threshold
        return self.settings.throttle_threshold

    def _cut(
        self, now: float, rate: float, share: float, passed_per_second: float, observed_rate: float
    ) -> Cut:
        s = self.settings
        current = rate if rate > 0 else max(observed_rate, 1.0)
        # Under a quota, what got through in the sample *is* the quota: go (just under) there
        # in one step rather than in several x0.7 steps that each cost a second of 429s.
        # Random 429s never reach the threshold, so this does not fire on them.
        # Never below 0.3x in one step: a sample's pass rate can undercount (idle workers).
        new_rate = current * s.decrease_factor
        if s.proportional_cut:
            new_rate = min(new_rate, max(0.95 * passed_per_second, 0.3 * current))
        new_rate = max(s.min_rate, new_rate)
        self._quota_estimate = passed_per_second
        self._after_cut = new_rate
        self._last_cut = now
        self._last_raise = now
        self._holding = True
        return Cut(new_rate, share, passed_per_second)

    def cut_takes_effect_at(self, when: float) -> None:
        """Answers before ``when`` (plus the drain) are to calls sent at the old rate."""
        self._cut_effective_at = when

    def recover(self, *, now: float, rate: float) -> float:
        """The rate after additive recovery up to ``now`` (``rate`` when none is due)."""
        ceiling = self.max_rate if self.max_rate > 0 else math.inf
        if rate <= 0 or rate >= ceiling:
            return rate
        # Hold still after a cut until a sample at the new rate has come back clean: the
        # evidence first, then the probing (else at low rates, where a sample takes several
        # seconds, the rate climbs back before the cut is ever judged).
        if now - self._last_cut < 1.0 or self._holding:
            self._last_raise = now
            return rate
        step = self.settings.increase_per_second
        if step is None:
            # Additive: a fixed step per second, sized from the rate the last cut set (not
            # from --rate, which may be far above the quota the rate now hovers at).
            step = max(0.5, self.settings.recovery_fraction * self._after_cut)
        # Count from the end of the hold even when no call came during it.
        since = max(self._last_raise, self._last_cut + 1.0)
        self._last_raise = now
        return min(ceiling, rate + step * (now - since))
