"""Each entry's one report line, written and counted here so the counters and the report
agree; a line that cannot be written stops the run (``on_write_error``) before it goes up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from batcher.entry import Entry, Outcome, key_digest
from batcher.journal.line import line_from_outcome, skipped_line
from batcher.send.attempts import Attempts
from batcher.send.stats import RunStats, utc_stamp

log = structlog.get_logger("batcher.runner")

#: Where report lines go (see :mod:`batcher.journal.line`); the report writer's ``write``.
WriteLine = Callable[[dict[str, Any]], None]


class Recorder:
    """Writes entries' lines and counts them in ``stats``.

    ``doubts`` maps entries an earlier run may have executed without hearing back to when
    that attempt was sent; :attr:`doubts_lined` collects those that got a line here.
    """

    def __init__(
        self,
        write: WriteLine,
        *,
        run_id: str,
        project_id: str | None,
        stats: RunStats,
        doubts: Mapping[int, datetime] | None,
        on_write_error: Callable[[BaseException], None],
    ) -> None:
        self._write_line = write
        self._run_id = run_id
        self._project_id = project_id
        self.stats = stats
        self._doubts = doubts if doubts else None
        self._on_write_error = on_write_error
        self.doubts_lined: set[int] = set()

    def _write(self, line: dict[str, Any]) -> None:
        try:
            self._write_line(line)
        except BaseException as error:
            self._on_write_error(error)
            raise

    def record(self, entry: Entry, result: Attempts) -> bool:
        """Write the entry's line and count it; return whether it succeeded."""
        # Decided from the job's record: no answer said so, so the line quotes none.
        confirmed_by = result.confirmed_by
        outcome = Outcome(succeeded=True) if confirmed_by is not None else result.outcome
        assert outcome is not None
        succeeded = outcome.succeeded
        ambiguous = not succeeded and result.ambiguous
        if ambiguous:
            # Sent again blindly (--export-manifest --retryable-only), it could run twice.
            outcome = dataclasses.replace(outcome, retryable=False)
        since = (result.doubt_since or result.first_sent) if ambiguous else None
        stats = self.stats
        if result.count > 1:
            stats.retries += result.count - 1
        self._write(
            line_from_outcome(
                entry,
                outcome,
                run_id=self._run_id,
                attempts=result.count,
                started_at=None if result.first_sent is None else utc_stamp(result.first_sent),
                finished_at=utc_stamp(),
                duration_ms=round(result.api_s * 1000, 3) if result.count else None,
                wait_ms=None if result.wait_s is None else round(result.wait_s * 1000, 3),
                project_id=self._project_id,
                note=result.note,
                confirmed_by=confirmed_by,
                ambiguous=ambiguous,
                doubt_since=None if since is None else utc_stamp(since),
            )
        )
        if confirmed_by is not None:
            stats.confirmed += 1
        if succeeded:
            stats.succeeded += 1
            return True
        stats.failed += 1
        stats.ambiguous += ambiguous
        log.warning(
            "entry_failed",
            job_id=entry.job_id,
            command=entry.command,
            source=entry.source,
            reason=(outcome.reason or "failed") + result.note,
            attempts=result.count,
            ambiguous=ambiguous,
        )
        return False

    def skip(self, entry: Entry, reason: str) -> None:
        doubt = self.doubt_of(entry)
        if doubt is not None:
            reason += (
                " (an earlier run's attempt may have executed: --resume reads the job's "
                "record first)"
            )
        self._write(
            skipped_line(
                entry,
                reason,
                run_id=self._run_id,
                at=utc_stamp(),
                project_id=self._project_id,
                doubt_since=None if doubt is None else utc_stamp(doubt),
            )
        )
        self.stats.skipped += 1

    def doubt_of(self, entry: Entry) -> datetime | None:
        """When an earlier run may have sent ``entry`` without hearing back (None: no doubt);
        the entry's digest is noted as having its line in this run."""
        if self._doubts is None:
            return None
        digest = key_digest(entry.job_id, entry.command)
        doubt = self._doubts.get(digest)
        if doubt is not None:
            self.doubts_lined.add(digest)
        return doubt
