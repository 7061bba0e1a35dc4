"""Compact in-memory structures, for counting over millions of report lines in bounded memory.

A histogram that answers quantiles, an interner that turns a capped number of names into
small ints, and the time span of a run's lines. (Tables of key digests are in
:mod:`batcher.entry`; the report's index in :mod:`batcher.journal.index`.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from batcher.journal.times import epoch, is_canonical


class LogHistogram:
    """Quantiles of non-negative numbers in fixed memory, within ``relative_error`` of exact.

    A log-bucketed histogram (the DDSketch idea): bucket ``i`` counts the values in
    ``(gamma**(i-1), gamma**i]`` and answers with the bucket's midpoint, so every answer is
    within ``relative_error`` of the exact nearest-rank value. Durations from 1 µs to a day
    need under 2,000 buckets, however many values are added.

    >>> h = LogHistogram()
    >>> for v in range(1, 101):
    ...     h.add(float(v))
    >>> abs(h.quantile(0.9) - 90) <= 0.9
    True
    """

    def __init__(self, relative_error: float = 0.01) -> None:
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0  # values too small to have a logarithm worth keeping
        self.count = 0
        self.total = 0.0
        self.max: float | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.max is None or value > self.max:
            self.max = value
        if value < 1e-9:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def add_many(self, values: Iterable[float], *, missing: float = math.nan) -> None:
        """:meth:`add` each of ``values``, in one tight loop; values equal to ``missing``
        (and NaN) are left out.

        >>> h = LogHistogram(); h.add_many([1.0, -math.inf, 3.0], missing=-math.inf)
        >>> (h.count, h.total, h.max)
        (2, 4.0, 3.0)
        """
        buckets, log_gamma = self._buckets, self._log_gamma
        get, log, ceil = buckets.get, math.log, math.ceil
        count, total, zeros = self.count, self.total, self._zeros
        top = -math.inf if self.max is None else self.max
        for value in values:
            if value < 1e-9:  # zero, negative (as zero), or missing
                if value == missing:
                    continue
                value = 0.0
                zeros += 1
            elif value != value:
                continue
            else:
                index = ceil(log(value) / log_gamma)
                buckets[index] = get(index, 0) + 1
            count += 1
            total += value
            if value > top:
                top = value
        self.count, self.total, self._zeros = count, total, zeros
        self.max = None if top == -math.inf else top

    def buckets(self) -> list[tuple[float, float, int]]:
        """The histogram itself: ``(low, high, count)`` per non-empty bucket, ascending
        (values below 1e-9 count in a first bucket from 0).

        >>> h = LogHistogram(); h.add_many([1.0, 1.0, 100.0]); [c for _, _, c in h.buckets()]
        [2, 1]
        """
        out = [(0.0, 1e-9, self._zeros)] if self._zeros else []
        gamma = self._gamma
        out += [(gamma ** (i - 1), gamma**i, self._buckets[i]) for i in sorted(self._buckets)]
        return out

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (``0 < q <= 1``), or None when empty."""
        if not self.count:
            return None
        # round() keeps 0.9 * 10 from becoming rank 10 through float noise.
        rank = max(1, math.ceil(round(q * self.count, 9)))
        seen = self._zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * self._gamma**index / (self._gamma + 1)
                return min(estimate, self.max) if self.max is not None else estimate
        return self.max


class Interner:
    """Names to small ints, at most ``cap`` of them; the rest share one overflow index.

    ``names[i]`` is the name behind index ``i``; the overflow index's name is None.

    >>> intern = Interner(cap=2)
    >>> [intern(name) for name in ("a", "b", "a", "c", "d")], intern.names
    ([0, 1, 0, 2, 2], ['a', 'b', None])
    """

    def __init__(self, cap: int) -> None:
        self._index: dict[Any, int] = {}
        self.names: list[Any] = []
        self._cap = cap
        self._other: int | None = None

    def __call__(self, name: Any) -> int:
        index = self._index.get(name)
        if index is None:
            if len(self.names) >= self._cap:
                if self._other is None:
                    self._other = len(self.names)
                    self.names.append(None)  # marks the overflow bucket
                return self._other
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index


@dataclass(slots=True)
class RunSpan:
    """Every line a run wrote (not only latest ones): how many, and over what time."""

    lines: int = 0
    first_started_at: str | None = None
    last_finished_at: str | None = None

    def add(self, started_at: Any, finished_at: Any) -> None:
        """Count a line and widen the span to its times (the texts kept as written)."""
        self.lines += 1
        self._widen(started_at, finished_at)

    def merge(self, other: RunSpan) -> None:
        """Take in another span's lines and times."""
        self.lines += other.lines
        self._widen(other.first_started_at, other.last_finished_at)

    def _widen(self, started_at: Any, finished_at: Any) -> None:
        # Most stamps are the writer's, which order as text: compare them so first.
        first, last = self.first_started_at, self.last_finished_at
        if started_at.__class__ is str and not (
            first is not None and first[-1:] == started_at[-1:] == "Z"
            and len(first) == len(started_at) == 24 and started_at >= first
        ) and _wins(started_at, first, -1):  # fmt: skip
            self.first_started_at = started_at
        if finished_at.__class__ is str and not (
            last is not None and last[-1:] == finished_at[-1:] == "Z"
            and len(last) == len(finished_at) == 24 and finished_at <= last
        ) and _wins(finished_at, last, 1):  # fmt: skip
            self.last_finished_at = finished_at

    @property
    def first(self) -> float | None:
        return epoch(self.first_started_at)

    @property
    def last(self) -> float | None:
        return epoch(self.last_finished_at)

    def seconds(self) -> float | None:
        first, last = self.first, self.last
        if first is None or last is None:
            return None
        return max(0.0, last - first)

    def rate(self) -> float | None:
        seconds = self.seconds()
        return self.lines / seconds if seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "first_started_at": self.first_started_at,
            "last_finished_at": self.last_finished_at,
            "seconds": round3(self.seconds()),
            "rate_per_second": round3(self.rate()),
        }


def _wins(candidate: str, current: str | None, sign: int) -> bool:
    """Whether ``candidate`` should replace ``current``: earlier (``sign`` -1) or later (+1).
    A text that is no time never wins; any time beats none."""
    if current is not None and is_canonical(candidate) and is_canonical(current):
        return candidate < current if sign < 0 else candidate > current
    new = epoch(candidate)
    if new is None:
        return False
    old = epoch(current)
    return old is None or (new < old if sign < 0 else new > old)


def round3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
