"""Adaptation to 429s: find the quota, pace just under it, and probe above it only now and then.

The tenant's quota is the real limit of a run, so the adaptation's job is to use it well:
nearly all of it, with few requests throttled. It keeps an estimate of the quota and paces
at ``margin`` (97.5%) of it; it learns the estimate from the answers' evidence, which the
runner reports for *every* answer, looked at in consecutive *samples* of at least ``window``
answers spanning at least ``min_window_seconds``:

* **What got through is the quota.** A sample that was throttled too much (see below) cuts
  the rate to ``margin`` x its pass rate, in one step (never below 0.3x the rate, since a
  sample can undercount when workers idle); the pass rate becomes the estimate. When a 429
  states the gateway's limit (``limit:20,time:1 second``), the estimate is never above it,
  unless more than that got through in the last second (a made-up or stale statement).
* **A run of 429s does not wait for the sample.** Past a quota every answer is a 429, so a
  run of them (4-9 in a row, fewer the cleaner the API has been) cuts at once: to the
  stated limit, or to what got through in the last second (at most half the rate). When
  the quota shrinks under a settled pace, the last second cannot tell by how much: the
  rate halves, and while that guess is checked two 429s in a row (more if the API is
  noisy) say it is still above the quota, and what got through since the cut measures it.
* **Random 429s are noise, not a quota.** Some APIs answer a share of requests 429 whatever
  the rate; slowing down helps nothing. The adaptation learns that share from the samples
  that did not cut (prior: 1 in 20) and cuts only on a share clearly above it: above
  ``throttle_threshold`` (25%) until a quota is found, then above the noise plus three
  standard deviations (about 3 in 20 for an API that throttles only past its quota), never
  more than 25%. With 10% random 429s a needless cut comes once in ~90 samples, and the
  probing below undoes it in seconds. A pace a little above the quota gives a trickle of
  429s, too few in any one sample to tell from noise: the samples since the rate last
  changed are judged together too.
* **Probe gently, and only now and then.** Holding at ``margin`` x the estimate, after
  ``probe_after`` seconds the rate goes to the estimate x (1 + ``probe_step``) for one
  sample. If more 429s come than the noise explains, the probe failed: back to the hold, the
  estimate lowered, never raised, by the probe's pass rate (a failed probe says only that
  the quota is below it: raising the estimate on one holds above the quota, with a steady
  trickle of 429s that then pass for noise). If not, the estimate rises to the probe's
  rate, the step doubles and the next probe comes a second later (a quota that grows is
  found in a few probes). A probe that fails clearly (by two 429s more than the noise and
  its spread) doubles the wait before the next, up to a minute: the quota stands, and each
  probe past it costs 429s. A stated limit is never probed past.
* After a cut, answers to slots reserved at the old rate say nothing about the new one: the
  next sample starts once those slots have gone out and ``drain_seconds`` later, or when
  the 429's Retry-After (at most 2 s) says the quota has room again.
* A cut whose sample had nothing through (the quota is spent for longer than a sample)
  leaves no estimate: the rate recovers additively from there, a step a second.
"""

from __future__ import annotations

import math

from batcher.send._adapt_settings import AdaptSettings, Cut

_SLOTS = 50  # the last second of answers that got through, in 20 ms slots
_PRIOR_THROTTLED, _PRIOR_ANSWERS = 1.0, 20.0  # noise before any evidence: 1 in 20
_FORGET = 0.9  # each clean sample keeps 90% of the weight of the ones before


class Adaptation:
    """The state of the evidence: the sample, the quota estimate, the noise, the probing.

    60 calls a second against a quota of 20 a second: 20 get through, then a run of 429s
    cuts at once to just under what got through in the last second.

    >>> adapt = Adaptation(AdaptSettings(), max_rate=60, now=0.0)
    >>> answers = [False] * 20 + [True] * 6
    >>> cuts = [adapt.observe(throttled=t, now=i / 60, rate=60) for i, t in enumerate(answers)]
    >>> [round(c.rate, 1) for c in cuts if c]
    [19.5]
    """

    __slots__ = (
        "_after_cut", "_bucket_slot", "_buckets", "_drain_until", "_guessed", "_held",
        "_holding", "_last_cut", "_last_raise", "_next_probe", "_noise_answers",
        "_noise_throttled", "_prior", "_probe_rate", "_probe_wait", "_quota", "_resumed_at",
        "_retry_after", "_run", "_sample_start", "_sample_throttled", "_sample_total",
        "_stated", "_step", "max_rate", "settings",
    )  # fmt: skip

    def __init__(self, settings: AdaptSettings, *, max_rate: float, now: float) -> None:
        if settings.window < 1:
            raise ValueError("window must be >= 1")
        self.settings = settings
        self.max_rate = max_rate  # 0 = unlimited until the API pushes back
        self._quota: float | None = None  # the estimate: what gets through a second
        self._stated: float | None = None  # the limit the latest 429 stated, per second
        self._holding = False  # after a cut, until a sample at the new rate comes back clean
        self._after_cut = max_rate  # the rate the last cut set: sizes the additive step
        self._last_cut = -math.inf
        self._last_raise = now
        self._drain_until = -math.inf
        self._resumed_at = -math.inf  # when calls went out again after the last cut
        self._guessed = False  # the last cut halved: the next sample checks it
        self._next_probe = math.inf
        self._probe_rate: float | None = None  # the rate being probed, while a probe runs
        self._step = settings.probe_step
        self._probe_wait = settings.probe_after
        # 429s and answers of the samples that did not cut (each older one weighs less),
        # and the weight left to the prior.
        self._noise_throttled, self._noise_answers, self._prior = 0.0, 0.0, 1.0
        self._retry_after: float | None = None
        self._run = 0  # 429s in a row
        self._sample_start: float | None = None
        self._sample_total = 0
        self._sample_throttled = 0
        # Since the rate last changed: (when, answers, 429s) of the samples that did not cut.
        self._held: tuple[float, int, int] | None = None
        self._buckets = [0] * _SLOTS  # answers that got through, per 1/_SLOTS second
        self._bucket_slot = 0

    # ------------------------------------------------------------------ evidence

    def observe(
        self,
        *,
        throttled: bool,
        now: float,
        rate: float,
        observed_rate: float = 0.0,
        stated: float | None = None,
        retry_after: float | None = None,
    ) -> Cut | None:
        """Add one answer to the evidence; return a :class:`Cut` when it calls for one.

        ``rate`` is the effective rate now (0 = unlimited), ``observed_rate`` the calls per
        second lately (to start from when an unlimited run is throttled), ``stated`` the
        per-second limit a 429 stated and ``retry_after`` its Retry-After in seconds.
        """
        if throttled:
            if stated is not None:
                self._stated = stated
            if retry_after is not None:
                self._retry_after = retry_after
        else:
            self._count_pass(now)
        if now < self._drain_until:
            return None  # an answer to a slot reserved at the old rate: no evidence about the new
        if self._sample_start is None:
            self._sample_start = now
        self._sample_total += 1
        if throttled:
            self._sample_throttled += 1
            self._run += 1
            if self.settings.fast_cut and self._run >= self._run_needed(rate or observed_rate):
                return self._cut(now, rate, observed_rate, fast=True)
        else:
            self._run = 0
        s = self.settings
        needed, seconds = s.window, s.min_window_seconds
        if self._probe_rate is not None:
            # Enough answers to expect two 429s more than noise if the probe is past the
            # quota, and a whole calendar second of them whatever the boundaries.
            needed, seconds = max(needed, math.ceil(2.1 / self._step)), 2 * seconds
        if self._sample_total < needed or now - self._sample_start < seconds:
            return None
        return self._judge(now, rate, observed_rate)

    def _judge(self, now: float, rate: float, observed_rate: float) -> Cut | None:
        """A sample is complete: cut, end a probe, or learn the noise from it."""
        total, throttled = self._sample_total, self._sample_throttled
        passed = (total - throttled) / max(now - self._sample_start, 1e-9)  # type: ignore[operator]
        if self._probe_rate is not None:
            return self._end_probe(now, rate, total, throttled, passed)
        guessed, self._guessed = self._guessed, False
        if self._too_many(throttled, total) or (
            # A halving was a guess: the sample after it checks it, strictly (at a rate a
            # little above the quota, 429s come a few a window and make no run).
            guessed and self._more_than_noise(throttled, total)
        ):
            return self._cut(now, rate, observed_rate, fast=False)
        if self._quota is not None:
            start, held_total, held_throttled = self._held or (self._sample_start or now, 0, 0)
            self._held = start, held_total + total, held_throttled + throttled
            if throttled and self._too_many(held_throttled + throttled, held_total + total):
                # A trickle of 429s at a steady pace, too few in any one sample: the pace is
                # a little above the quota. All the samples since the rate last changed make
                # the one the cut is measured from.
                self._sample_start, self._sample_total, self._sample_throttled = self._held
                return self._cut(now, rate, observed_rate, fast=False)
        self._reset_sample()
        self._retry_after = None
        # Learn the noise: freely before a quota is found; after, at half weight upwards,
        # since 429s from a hold a little above the quota must not pass for noise.
        weight = 1.0
        if self._quota is not None and throttled > total * self._noise():
            weight = 0.5
        self._noise_throttled = self._noise_throttled * _FORGET + weight * throttled
        self._noise_answers = self._noise_answers * _FORGET + weight * total
        self._prior *= _FORGET
        if self._holding:
            self._holding = False
            self._last_raise = now
        return None

    def _noise(self) -> float:
        prior = self._prior
        throttled = self._noise_throttled + prior * _PRIOR_THROTTLED
        return throttled / (self._noise_answers + prior * _PRIOR_ANSWERS)

    def _seen_noise(self) -> float:
        """The share of 429s seen in samples that did not cut (no prior): to correct by."""
        return self._noise_throttled / self._noise_answers if self._noise_answers else 0.0

    def _too_many(self, throttled: int, total: int) -> bool:
        """More 429s than noise explains: above 25%, or once a quota is known, above the
        noise by three standard deviations."""
        limit = self.settings.throttle_threshold
        if self._quota is not None:
            noise = self._noise()
            spread = 3 * math.sqrt(max(noise, 0.01) * (1 - noise) / total)
            limit = min(limit, noise + spread + 1 / total)
        return throttled > limit * total

    def _more_than_noise(self, throttled: int, total: int) -> bool:
        """More 429s than noise explains, by a standard deviation: the test of a probe
        (failing one costs little, passing one wrongly a lot)."""
        noise = self._noise()
        mean = total * noise
        return throttled > mean + math.sqrt(mean * (1 - noise))

    def _run_needed(self, rate: float) -> int:
        """429s in a row that noise alone would give less than once in ~3 hours at ``rate``;
        after a halving (a guess, checked by the next couple of seconds), less than once in
        20 such checks: a run there says the guess is above the quota, and what got through
        since the cut measures it."""
        noise = min(max(self._noise(), 0.02), 0.5)
        if self._guessed:
            odds, fewest = 0.05 / max(2 * rate, 1.0), 2
        else:
            odds, fewest = 1e-4 / max(rate, 1.0), 4
        return min(12, max(fewest, math.ceil(math.log(odds) / math.log(noise))))

    def _count_pass(self, now: float) -> None:
        slot = int(now * _SLOTS)
        if slot != self._bucket_slot:
            self._advance(slot)
        self._buckets[slot % _SLOTS] += 1

    def _advance(self, slot: int) -> None:
        for stale in range(max(self._bucket_slot + 1, slot - _SLOTS + 1), slot + 1):
            self._buckets[stale % _SLOTS] = 0
        self._bucket_slot = slot

    def _passed_since(self, now: float, since: float) -> int:
        """Answers that got through in the last second, and since ``since``."""
        slot = int(now * _SLOTS)
        if slot > self._bucket_slot:
            self._advance(slot)
        first = slot - _SLOTS + 1
        if since > now - 1.0:
            first = max(first, math.ceil(since * _SLOTS))
        return sum(self._buckets[older % _SLOTS] for older in range(first, slot + 1))

    def _room_at(self, quota: float) -> float | None:
        """When a window holding the last second's passes has room under ``quota``: once
        all but ``quota - 1`` of them have left it, a second after they got through."""
        leave = sum(self._buckets) - max(1, math.ceil(quota)) + 1
        slot = self._bucket_slot
        for older in range(slot - _SLOTS + 1, slot + 1):
            leave -= self._buckets[older % _SLOTS]
            if leave <= 0:
                return (older + 1) / _SLOTS + 1.0
        return None

    def _reset_sample(self) -> None:
        self._sample_start, self._sample_total, self._sample_throttled = None, 0, 0
        self._run = 0

    # ------------------------------------------------------------------ decisions

    def _cut(self, now: float, rate: float, observed_rate: float, *, fast: bool) -> Cut | None:
        s = self.settings
        total, throttled = self._sample_total, self._sample_throttled
        elapsed = max(now - (self._sample_start or now), 1e-9)
        share = throttled / total if total else 1.0
        current = rate if rate > 0 else max(observed_rate, 1.0)
        # After a cut, count only what got through since: the quota may have just changed.
        # After a cut, count only what got through since: the quota may have just changed.
        # (A calendar window lets up to twice the quota through in a second across its
        # boundary: an estimate too high by that much costs one more cut, one too low a
        # long climb back.)
        recent = self._passed_since(now, self._resumed_at if self._holding else -math.inf)
        stated = self._stated
        if stated is not None and (stated >= current or recent > 2 * stated + 1):
            # Not binding here (another client may share the quota), or more got through
            # than it says (not this quota's limit): the evidence decides alone.
            stated = None
        self._reset_sample()
        if self._probe_rate is not None:
            return self._end_probe(now, rate, total, throttled, recent, failed=True)
        guess = False
        if fast:
            passed = float(recent)
            settled = self._quota is not None and not self._holding
            if stated is not None:
                estimate: float | None = stated
                new_rate = s.margin * stated
            elif settled or passed >= 0.9 * current:
                # Calls at a pace that got through until now: the quota just shrank (another
                # client shares it?), by how much this window cannot tell, since it holds
                # calls from before. Halve, then measure, and probe back soon.
                new_rate = 0.5 * current
                estimate = new_rate / s.margin
                guess = True
            else:
                # Fewer got through in the last second (or since the last cut) than were
                # sent: what got through is the quota.
                new_rate = max(0.1 * current, s.margin * passed)
                estimate = new_rate / s.margin
        else:
            # What got through, or less: a sample across a calendar boundary can count more
            # than a second's worth, and at ``current`` a share ``share`` was refused (less
            # the noise, which refuses some whatever the rate).
            noise = self._seen_noise()
            passed = min(
                (total - throttled) / elapsed / (1 - noise),
                current * (1 - max(0.0, share - noise)),
            )
            new_rate = current * s.decrease_factor
            if s.proportional_cut:
                new_rate = min(current * s.margin, max(s.margin * passed, 0.3 * current))
            estimate = passed if passed > 0 else None
            if stated is not None:
                estimate = min(estimate or stated, stated)
                new_rate = min(new_rate, s.margin * stated)
        new_rate = max(s.min_rate, new_rate)
        self._quota = estimate if estimate is None else max(estimate, new_rate)
        self._after_cut = new_rate
        retry_after = self._retry_after
        self._start_hold(now, guess=guess)
        # A run of 429s: the quota's window is full. Nothing more gets through until the
        # calls that filled it leave it (or, with none of ours in it, the Retry-After).
        resume_at = None
        if fast:
            room = self._room_at(estimate or new_rate / s.margin)
            resume_at = room if room is not None else now + min(retry_after or 0.0, 1.0)
        self._resumed_at = max(now, resume_at or now)
        return Cut(new_rate, share, passed, resume_at)

    def _end_probe(
        self,
        now: float,
        rate: float,
        total: int,
        throttled: int,
        passed: float,
        *,
        failed: bool = False,
    ) -> Cut | None:
        """Judge a probe: 429s more than the noise explains and it failed."""
        probed, estimate = self._probe_rate, self._quota
        assert probed is not None and estimate is not None
        self._reset_sample()
        self._probe_rate = None
        # Failing a probe costs little (back to the hold), passing one wrongly a lot (a hold
        # above the quota): one standard deviation above the noise fails it.
        if not failed and not self._more_than_noise(throttled, total):
            self._quota = probed  # that much got through: the quota is at least that
            self._held = None
            self._step = min(2 * self._step, 0.2)
            self._next_probe = now + 1.0
            return None
        # The quota is below the probe: what got through, or less (a short sample across
        # a calendar boundary can count more than a second's worth), and not above the
        # estimate the hold came back clean at. Noise refused some whatever the rate:
        # count only the 429s above it.
        noise = self._seen_noise()
        excess = max(0.0, throttled / max(total, 1) - noise)
        through = min(passed / (1 - noise), probed * (1 - excess))
        self._quota = min(estimate, through) if passed > 0 else estimate
        new_rate = max(self.settings.min_rate, self.settings.margin * self._quota)
        # A probe failed clearly (by two 429s more than noise and its spread) says the
        # quota stands where it is: the next probe waits twice as long.
        mean = total * self._noise()
        clearly = failed or throttled >= mean + 2 * math.sqrt(mean) + 2
        self._start_hold(now, wait=min(2 * self._probe_wait, 60.0) if clearly else None)
        if new_rate >= rate > 0:
            return None
        return Cut(new_rate, throttled / max(total, 1), passed)

    def _start_hold(self, now: float, *, guess: bool = False, wait: float | None = None) -> None:
        # The 429s' Retry-After says when the quota has room again: until then, answers
        # are still to calls sent before the cut (at most 2 s: a long one is for the call).
        retry_after = min(self._retry_after or 0.0, 2.0)
        self._retry_after = None
        self._drain_until = now + max(self.settings.drain_seconds, retry_after)
        self._held = None
        self._last_cut = now
        self._last_raise = now
        self._holding = True
        # After a guess, check it and probe back up soon in big steps; after a measure,
        # probe gently.
        self._guessed = guess
        self._step = 0.2 if guess else self.settings.probe_step
        self._probe_wait = self.settings.probe_after if wait is None else wait
        self._next_probe = now + (2.0 if guess else self._probe_wait)

    def cut_takes_effect_at(self, when: float) -> None:
        """Answers before ``when`` (plus the drain) are to calls sent at the old rate."""
        self._drain_until = max(self._drain_until, when + self.settings.drain_seconds)

    def recover(self, *, now: float, rate: float) -> float:
        """The rate for a reservation at ``now``: recovering, holding, or starting a probe."""
        ceiling = self.max_rate if self.max_rate > 0 else math.inf
        if rate <= 0 or rate >= ceiling or self._probe_rate is not None:
            return rate
        # Hold still after a cut until a sample at the new rate has come back clean: the
        # evidence first, then the probing (else at low rates, where a sample takes several
        # seconds, the rate climbs back before the cut is ever judged).
        if now - self._last_cut < 1.0 or self._holding:
            self._last_raise = now
            return rate
        quota = self._quota
        target = ceiling if quota is None else min(ceiling, self.settings.margin * quota)
        if rate < target:
            return self._raise(now, rate, target)
        self._last_raise = now
        if quota is None or now < self._next_probe:
            return target  # back to the hold after a probe that passed
        top = ceiling if self._stated is None else min(ceiling, self._stated)
        probe = min(top, quota * (1 + self._step))
        if probe <= rate or quota >= top:
            self._next_probe = now + self.settings.probe_after  # nothing left to probe
            return rate
        self._probe_rate = probe
        self._held = None
        self._reset_sample()
        return probe

    def _raise(self, now: float, rate: float, target: float) -> float:
        step = self.settings.increase_per_second
        if step is None:
            # Additive: a fixed step per second, sized from the rate the last cut set (not
            # from --rate, which may be far above the quota the rate now hovers at).
            step = max(0.5, self.settings.recovery_fraction * self._after_cut)
        # Count from the end of the hold even when no call came during it.
        since = max(self._last_raise, self._last_cut + 1.0)
        self._last_raise = now
        return min(target, rate + step * (now - since))
