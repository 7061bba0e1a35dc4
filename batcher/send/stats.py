"""A run's options and its counters, shared by the runner, progress and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from batcher.send.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class RunOptions(RetryPolicy):
    """How a run behaves, its retry rule's settings included; the CLI builds this from flags.

    >>> RunOptions(concurrency=4).retry.max_attempts
    5
    """

    concurrency: int = 16
    max_failures: int | None = None
    max_failure_rate: float | None = None
    #: The failure rate is judged only after this many entries have finished.
    failure_rate_min_sample: int = 50
    grace_period: float = 10.0
    handle_signals: bool = True
    #: How many entries may wait behind busy jobs before the producer pauses.
    max_waiting: int = 1024
    #: Run at most this many entries not yet done, then stop (a canary); None = all.
    limit: int | None = None
    #: After a lost answer, how long the request may still take to arrive and run before
    #: the job's record is believed when it says "did not" (the run sets --timeout).
    settle: float = 0.0

    @property
    def retry(self) -> RetryPolicy:
        return self


@dataclass(slots=True)
class RunStats:
    """Counters the runner keeps; progress and the summary read them."""

    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    #: Command requests sent (retries included); Show requests are ``checks``.
    attempts: int = 0
    #: Requests the API answered 429 (commands and reads).
    throttled: int = 0
    #: Attempts after the first, for all entries.
    retries: int = 0
    #: Show requests made to decide an outcome after a lost answer.
    checks: int = 0
    #: Entries decided from the job's record (``confirmed_by``), and failures left in doubt.
    confirmed: int = 0
    ambiguous: int = 0
    #: Entries not run because ``--limit`` was reached (known only when the feed ended).
    left_by_limit: bool = False
    in_flight: int = 0
    started: float = 0.0
    finished: float | None = None
    halted_reason: str | None = None
    interrupted: bool = False

    @property
    def finished_entries(self) -> int:
        return self.succeeded + self.failed + self.skipped

    @property
    def done(self) -> int:
        return self.finished_entries + self.already_done


def utc_stamp(moment: datetime | None = None) -> str:
    """``2026-11-24T13:00:00.123Z``: the report's time format (UTC, milliseconds).

    >>> utc_stamp(datetime(2026, 11, 24, 13, 0, 0, 123456, tzinfo=UTC))
    '2026-11-24T13:00:00.123Z'
    """
    moment = moment or datetime.now(UTC)
    # Three stamps an entry: the part down to the second is formatted once a second. The
    # cache is one (second, text) pair, read and replaced whole: safe from any thread.
    second = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    cached = _last_second[0]
    if cached[0] != second:
        cached = _last_second[0] = (second, moment.replace(microsecond=0, tzinfo=None).isoformat())
    return f"{cached[1]}.{moment.microsecond // 1000:03d}Z"


_last_second: list[tuple[tuple[int, ...], str]] = [((), "")]


def threshold_crossed(options: RunOptions, stats: RunStats) -> str | None:
    """Why ``--max-failures`` or ``--max-failure-rate`` halts the run now, or None.

    >>> threshold_crossed(RunOptions(max_failures=3), RunStats(succeeded=9, failed=3))
    '3 entries failed, reaching --max-failures 3'
    """
    if options.max_failures is not None and stats.failed >= options.max_failures:
        return f"{stats.failed} entries failed, reaching --max-failures {options.max_failures}"
    finished = stats.succeeded + stats.failed
    if (
        options.max_failure_rate is not None
        and finished >= options.failure_rate_min_sample
        and stats.failed / finished > options.max_failure_rate
    ):
        return (
            f"failure rate {stats.failed / finished:.1%} over {finished} entries is above "
            f"--max-failure-rate {options.max_failure_rate:g}"
        )
    return None
