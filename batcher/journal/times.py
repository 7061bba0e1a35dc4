"""Times: the one RFC 3339 parser (:func:`parse_time`), and report stamps read fast.

The writer stamps lines as ``2026-11-24T13:00:00.123Z`` (UTC, milliseconds). Such stamps
order as text and turn into epoch seconds with one dict lookup per hour (a million of them
are read for a summary or a page); any other time is read by :func:`parse_time`.
"""

from __future__ import annotations

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
