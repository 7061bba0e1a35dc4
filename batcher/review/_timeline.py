"""Report lines over time, in a bounded number of time buckets (for the HTML page).

Every line is an outcome at its ``finished_at``: per bucket we count lines by status, the
ones that ended on a 429, the extra attempts (retries) they took, and the API's time and
the rate limiter's wait they add up to. Buckets start one second wide and, whenever there
would be more than :data:`MAX_BUCKETS`, merge into the next wider width (1 s, 2 s, 10 s,
30 s, 1 min, 5 min ... each a multiple of the last), so a million lines over a month still
make at most that many.

>>> t = Timeline()
>>> t.add({"status": "succeeded", "finished_at": "2026-11-24T13:00:00.500Z", "attempts": 2})
>>> t.add({"status": "failed", "finished_at": "2026-11-24T13:00:01.250Z", "http_status": 429})
>>> t.width, [row[1:4] for row in t.rows()]
(1, [[1, 0, 0], [0, 1, 0]])
"""

from __future__ import annotations

from typing import Any

from batcher.journal.times import epoch

MAX_BUCKETS = 2400
#: Bucket widths in seconds; each divides the next.
WIDTHS = (1, 2, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400, 604800)
_STATUS = {"succeeded": 0, "failed": 1, "skipped": 2}
# A bucket: succeeded, failed, skipped, ended on 429, retries, API ms (sum, count), wait ms
# (sum, count).
_FIELDS = 9


class Timeline:
    """Counts per time bucket; :meth:`rows` gives them as ``[start, *counts]``."""

    def __init__(self) -> None:
        self.width = WIDTHS[0]
        self._level = 0
        self._buckets: dict[int, list[float]] = {}

    def add(self, line: dict[str, Any]) -> None:
        when = epoch(line.get("finished_at"))
        if when is None:
            return
        index = int(when // self.width)
        bucket = self._buckets.get(index)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._coarsen()
                index = int(when // self.width)
                bucket = self._buckets.get(index)
            if bucket is None:
                bucket = self._buckets[index] = [0.0] * _FIELDS
        bucket[_STATUS[line["status"]]] += 1
        if line.get("http_status") == 429:
            bucket[3] += 1
        attempts = line.get("attempts")
        if attempts.__class__ is int and attempts > 1:
            bucket[4] += attempts - 1
        if line["status"] != "skipped":
            duration = line.get("duration_ms")
            if duration.__class__ in (int, float):
                bucket[5] += duration
                bucket[6] += 1
            wait = line.get("wait_ms")
            if wait.__class__ in (int, float):
                bucket[7] += wait
                bucket[8] += 1

    def _coarsen(self) -> None:
        while len(self._buckets) >= MAX_BUCKETS and self._level + 1 < len(WIDTHS):
            self._level += 1
            factor = WIDTHS[self._level] // self.width
            self.width = WIDTHS[self._level]
            merged: dict[int, list[float]] = {}
            for index, counts in self._buckets.items():
                into = merged.get(index // factor)
                if into is None:
                    merged[index // factor] = counts
                else:
                    for i, value in enumerate(counts):
                        into[i] += value
            self._buckets = merged

    def rows(self) -> list[list[Any]]:
        """``[start (epoch s), succeeded, failed, skipped, ended on 429, retries, mean API
        ms, mean wait ms]`` per bucket, in time order; an empty bucket between two others is
        a row of zeros (no outcome then), so lines in a chart do not bridge gaps."""
        out: list[list[Any]] = []
        previous: int | None = None
        for index in sorted(self._buckets):
            if previous is not None and index > previous + 1:
                out.append([(previous + 1) * self.width, 0, 0, 0, 0, 0, None, None])
                if index > previous + 2:
                    out.append([(index - 1) * self.width, 0, 0, 0, 0, 0, None, None])
            c = self._buckets[index]
            out.append(
                [
                    index * self.width,
                    *(int(v) for v in c[:5]),
                    round(c[5] / c[6], 1) if c[6] else None,
                    round(c[7] / c[8], 1) if c[8] else None,
                ]
            )
            previous = index
        return out
