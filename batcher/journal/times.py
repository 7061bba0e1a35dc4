"""Times: the one RFC 3339 parser (:func:`parse_time`), and report stamps read fast.

The writer stamps lines as ``2026-11-24T13:00:00.123Z`` (UTC, milliseconds). Such stamps
order as text and turn into epoch seconds with one dict lookup per hour (a million of them
are read for a summary or a page); any other time is read by :func:`parse_time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_HOURS: dict[str, float] = {}


def parse_time(value: Any, *, naive: bool = True) -> datetime | None:
    """An RFC 3339 time (``2020-07-30T10:43:17Z``, any fraction, any offset, ``t``/``z`` in
    either case), in UTC; None if it is none. A time without an offset is taken as UTC
    (None with ``naive=False``, for input that must say its zone).

    >>> parse_time("2020-07-30t10:43:17.5+08:00").isoformat()
    '2020-07-30T02:43:17.500000+00:00'
    >>> parse_time("2020-07-30T10:43:17.123456789z").isoformat()
    '2020-07-30T10:43:17.123456+00:00'
    >>> parse_time("yesterday") is None, parse_time(None) is None
    (True, True)
    """
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        return None
    text = value.upper() if "t" in value or "z" in value else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not naive:
            return None
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def is_canonical(stamp: str) -> bool:
    """The writer's own form: ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    >>> is_canonical("2026-11-24T13:00:00.123Z"), is_canonical("2026-11-24T13:00:00+00:00")
    (True, False)
    """
    return len(stamp) == 24 and stamp[23] == "Z" and stamp[10] == "T" and stamp[19] == "."


def epoch(stamp: Any) -> float | None:
    """Epoch seconds of a line's timestamp, or None if it is not one (naive means UTC).

    >>> epoch("1970-01-01T01:00:01.500Z"), epoch("1970-01-01T01:00:01.5+01:00"), epoch("x")
    (3601.5, 1.5, None)
    """
    if not isinstance(stamp, str):
        return None
    if is_canonical(stamp):
        hour = _HOURS.get(stamp[:13])
        try:
            if hour is None:
                hour = _HOURS[stamp[:13]] = datetime.fromisoformat(stamp[:13] + ":00Z").timestamp()
            return hour + int(stamp[14:16]) * 60 + float(stamp[17:23])
        except ValueError:
            return None
    moment = parse_time(stamp)
    return None if moment is None else moment.timestamp()


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
