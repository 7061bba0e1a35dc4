"""A run told to the outside while it happens: log events, the run record, the metrics.

``run_started`` and the final ``run_finished`` (or ``run_halted_early``) event carry
everything needed to follow a run from its log alone — run id, version, manifests and
their SHA-256, entries, endpoint, project, pace, and at the end every count, the elapsed
time, the rates and the exit code — and every event of the run carries its ``run_id``.
The same goes to the run record beside the report (``REPORT.runs.jsonl``, see
:mod:`batcher.journal.runs`), and, with ``--metrics-file``, to Prometheus.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from batcher.config import RunConfig
from batcher.errors import ReportWriteError, exit_code_for
from batcher.journal import ManifestInfo, ReportWriter, RunRecord, finish_run, start_run
from batcher.observe.version import version
from batcher.read import ManifestSummary
from batcher.redact import Redactor
from batcher.send.stats import RunStats

if TYPE_CHECKING:  # prometheus_client is imported only when a metrics file is asked for
    from batcher.observe.metrics import RunMetrics

log = structlog.get_logger("batcher")


def manifests_of(summary: ManifestSummary) -> list[ManifestInfo]:
    """The manifests as the run record and the events list them: path, the SHA-256 of
    exactly the bytes checked, and their entries."""
    count = len(summary.files)
    digests = summary.sha256 or (None,) * count
    entries = summary.entries or (None,) * count
    return [
        ManifestInfo(
            path=path if path == "-" or path.startswith("<") else os.path.abspath(path),
            sha256=digest,
            entries=n,
        )
        for path, digest, n in zip(summary.files, digests, entries, strict=False)
    ]


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunEvents:
    """Logs the run's start and end, keeps its run record, and the metrics file (if any)."""

    def __init__(
        self,
        *,
        run_id: str,
        summary: ManifestSummary,
        config: RunConfig,
        redactor: Redactor,
        metrics: RunMetrics | None = None,
    ) -> None:
        self._run_id = run_id
        self._summary = summary
        self._config = config
        assert config.report is not None
        self._report: Path = config.report
        self._redactor = redactor
        self._metrics = metrics
        self._writer: ReportWriter | None = None
        self._record: RunRecord | None = None
        self.exit_code: int | None = None

    def _options(self) -> dict[str, Any]:
        c = self._config
        return {
            "rate": c.rate,
            "read_rate": c.read_rate,
            "burst": c.burst,
            "concurrency": c.concurrency,
            "max_attempts": c.max_attempts,
            "timeout": c.timeout,
            "max_failures": c.max_failures,
            "max_failure_rate": c.max_failure_rate,
            "grace_period": c.grace_period,
            "limit": c.limit,
            "resume": c.resume,
            "simulate": c.simulate,
        }

    def started(self, stats: RunStats, writer: ReportWriter) -> None:
        """The run is about to send: log it and add its line to the run record (a record
        that cannot be written stops the run here, before anything is sent)."""
        settings = self._config
        manifests = manifests_of(self._summary)
        endpoint = "simulator" if settings.simulate else str(settings.url)
        # Where the entries go: the default project only says where those naming none go.
        projects = {str(p): n for p, n in self._summary.projects.items()}
        only = next(iter(projects)) if len(projects) == 1 and "" not in projects else None
        self._writer = writer
        self._record = RunRecord(
            run_id=self._run_id,
            version=version(),
            started_at=_stamp(),
            endpoint=endpoint,
            project_id=only,
            manifests=manifests,
            options=self._options(),
            rate_limit=settings.rate,
        )
        start_run(writer, self._record)
        log.info(
            "run_started",
            version=version(),
            manifests=[m.to_dict() for m in manifests],
            entries=self._summary.total,
            report=str(self._report),
            endpoint=endpoint,
            project_id=only,
            projects=projects,
            rate=settings.rate,
            rate_source=settings.rate_source,
            read_rate=settings.read_rate,
            read_rate_source=settings.read_rate_source,
            burst=settings.burst,
            concurrency=settings.concurrency,
            max_attempts=settings.max_attempts,
            resume=settings.resume,
            limit=settings.limit,
        )
        self._write_metrics(stats, settings.paces[0])

    def tick(self, stats: RunStats, settled_rate: float) -> None:
        self._write_metrics(stats, settled_rate)

    def _write_metrics(
        self, stats: RunStats, settled_rate: float, exit_code: int | None = None
    ) -> None:
        """Metrics are for watching the run, not part of it: a file that cannot be written
        is said once (a warning) and the run goes on."""
        if self._metrics is None:
            return
        try:
            self._metrics.write(stats, settled_rate=settled_rate, exit_code=exit_code)
        except OSError as error:
            log.warning(
                "metrics_not_written",
                path=str(self._metrics.path),
                reason=error.strerror or str(error),
                hint="the run goes on; metrics are not written any more",
            )
            self._metrics = None

    def finished(self, stats: RunStats, settled_rate: float) -> None:
        halted = stats.halted_reason
        self.exit_code = exit_code_for(
            halted=halted is not None, failed=stats.failed, skipped=stats.skipped
        )
        elapsed = (stats.finished or stats.started) - stats.started
        attempted = stats.succeeded + stats.failed
        fields: dict[str, Any] = {
            "report": str(self._report),
            "exit_code": self.exit_code,
            "succeeded": stats.succeeded,
            "failed": stats.failed,
            "skipped": stats.skipped,
            "already_done": stats.already_done,
            "attempts": stats.attempts,
            "retries": stats.retries,
            "throttled": stats.throttled,
            "confirmed": stats.confirmed,
            "ambiguous": stats.ambiguous,
            "checks": stats.checks,
            "left_by_limit": stats.left_by_limit,
            "elapsed_s": round(elapsed, 3),
            "entries_per_s": round(attempted / elapsed, 2) if elapsed > 0 else None,
            "rate_limit": self._config.rate,
            "settled_rate": round(settled_rate, 2),
        }
        if self._writer is not None and self._record is not None:
            counts = {name: value for name, value in fields.items() if isinstance(value, int)
                      and not isinstance(value, bool) and name != "exit_code"}  # fmt: skip
            try:
                finish_run(
                    self._writer,
                    dataclasses.replace(
                        self._record,
                        finished_at=_stamp(),
                        exit_code=self.exit_code,
                        counts=counts,
                        settled_rate=round(settled_rate, 3),
                        halted_reason=None if halted is None else self._redactor.text(halted),
                    ),
                )
            except ReportWriteError as error:
                # Every entry's line is in the report: the run's outcome stands.
                log.error("run_record_not_written", reason=str(error))
        if halted is not None:
            log.warning(
                "run_halted_early",
                halted=self._redactor.text(halted),
                hint="continue with the same command plus --resume",
                **fields,
            )
        else:
            log.info("run_finished", **fields)
        self._write_metrics(stats, settled_rate, self.exit_code)
