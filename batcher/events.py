"""A run told to the outside while it happens: log events, and the metrics file.

``run_started`` and the final ``run_finished`` (or ``run_halted_early``) event carry
everything needed to follow a run from its log alone — run id, version, manifests and
their SHA-256, entries, endpoint, project, pace, and at the end every count, the elapsed
time, the rates and the exit code — and every event of the run carries its ``run_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from . import __version__
from .engine.stats import RunStats
from .manifest import ManifestSummary
from .redact import Redactor
from .results import exit_code_for
from .settings import RunSettings

if TYPE_CHECKING:  # prometheus_client is imported only when a metrics file is asked for
    from .metrics import RunMetrics

log = structlog.get_logger("batcher")


def manifests_of(summary: ManifestSummary) -> list[dict[str, Any]]:
    """The manifests as the run record and the events list them."""
    digests = getattr(summary, "sha256", None) or (None,) * len(summary.files)
    return [
        {"path": path, "sha256": digest}
        for path, digest in zip(summary.files, digests, strict=False)
    ]


class RunEvents:
    """Logs the run's start and end, and keeps the metrics file (if any) up to date."""

    def __init__(
        self,
        *,
        run_id: str,
        summary: ManifestSummary,
        settings: RunSettings,
        report: Path,
        resume: bool,
        redactor: Redactor,
        metrics: RunMetrics | None = None,
    ) -> None:
        self._run_id = run_id
        self._summary = summary
        self._settings = settings
        self._report = report
        self._resume = resume
        self._redactor = redactor
        self._metrics = metrics
        self.exit_code: int | None = None

    def started(self, stats: RunStats) -> None:
        settings = self._settings
        log.info(
            "run_started",
            version=__version__,
            manifests=manifests_of(self._summary),
            entries=self._summary.total,
            report=str(self._report),
            endpoint="simulator" if settings.simulate else str(settings.endpoint),
            project_id=settings.project_id,
            rate=settings.rate,
            burst=settings.burst,
            concurrency=settings.options.concurrency,
            max_attempts=settings.options.max_attempts,
            resume=self._resume,
            limit=settings.options.limit,
        )
        if self._metrics is not None:
            self._metrics.write(stats, settled_rate=settings.rate)

    def tick(self, stats: RunStats, settled_rate: float) -> None:
        if self._metrics is not None:
            self._metrics.write(stats, settled_rate=settled_rate)

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
            "rate_limit": self._settings.rate,
            "settled_rate": round(settled_rate, 2),
        }
        if halted is not None:
            log.warning(
                "run_halted_early",
                halted=self._redactor.text(halted),
                hint="continue with the same command plus --resume",
                **fields,
            )
        else:
            log.info("run_finished", **fields)
        if self._metrics is not None:
            self._metrics.write(stats, settled_rate=settled_rate, exit_code=self.exit_code)
