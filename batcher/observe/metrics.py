"""A run's metrics in Prometheus text format, for node_exporter's textfile collector.

Written during the run (every few seconds) and at the end, each time atomically (a temp
file renamed over the old one, prometheus_client's ``write_to_textfile``), so the
collector never reads half a file. Every series carries the labels ``manifest`` (the
manifests' names) and ``report``, which tell runs of different manifests apart on one host;
``batcher_run_info`` carries the run id and the version.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from batcher.errors import UsageError
from batcher.observe.version import version
from batcher.send.stats import RunStats


class RunMetrics:
    """The run's gauges in their own registry, written to ``path`` on :meth:`write`.

    >>> metrics = RunMetrics(Path("m.prom"), manifests=["a.csv"], report=Path("r.jsonl"),
    ...                      run_id="r1", rate_limit=10)  # doctest: +SKIP
    >>> metrics.write(stats, settled_rate=9.5)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: Path,
        *,
        manifests: Sequence[str],
        report: Path,
        run_id: str,
        rate_limit: float,
    ) -> None:
        if not path.parent.is_dir():
            raise UsageError(f"--metrics-file {path}: no directory {path.parent}")
        self.path = path
        labels = {
            "manifest": ",".join(os.path.basename(m) for m in manifests),
            "report": str(report),
        }
        names = list(labels)
        self._registry = registry = CollectorRegistry()

        def gauge(name: str, doc: str, extra: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, [*names, *extra], registry=registry)

        info = gauge("batcher_run_info", "The run: its id and batcher's version.",
                     ("run_id", "version"))  # fmt: skip
        info.labels(**labels, run_id=run_id, version=version()).set(1)
        self._entries = gauge("batcher_entries", "Entries by status so far.", ("status",))
        self._attempts = gauge("batcher_attempts", "Command requests sent, retries included.")
        self._throttled = gauge("batcher_throttled", "Requests the API answered 429.")
        self._confirmed = gauge(
            "batcher_confirmed", "Entries decided from the job's record after a lost answer."
        )
        self._ambiguous = gauge(
            "batcher_ambiguous", "Failures whose earlier attempt may have executed."
        )
        self._rate_limit = gauge("batcher_rate_limit", "The rate asked for (0 = unlimited).")
        self._settled = gauge("batcher_settled_rate", "The rate the limiter is running at.")
        self._start = gauge("batcher_run_start_timestamp_seconds", "When the run started.")
        self._end = gauge("batcher_run_end_timestamp_seconds", "When the run ended (0: running).")
        self._duration = gauge("batcher_run_duration_seconds", "How long the run has taken.")
        self._exit = gauge("batcher_run_exit_code", "The run's exit code (-1 while it is running).")
        self._labels = labels
        self._started = time.time()
        self._rate_limit.labels(**labels).set(rate_limit)
        self._start.labels(**labels).set(self._started)
        self._end.labels(**labels).set(0)
        self._exit.labels(**labels).set(-1)

    def write(self, stats: RunStats, *, settled_rate: float, exit_code: int | None = None) -> None:
        """Update every gauge from ``stats`` and write the file atomically."""
        labels = self._labels
        for status in ("succeeded", "failed", "skipped", "already_done"):
            self._entries.labels(**labels, status=status).set(getattr(stats, status))
        self._attempts.labels(**labels).set(stats.attempts)
        self._throttled.labels(**labels).set(stats.throttled)
        self._confirmed.labels(**labels).set(stats.confirmed)
        self._ambiguous.labels(**labels).set(stats.ambiguous)
        self._settled.labels(**labels).set(settled_rate)
        now = time.time()
        self._duration.labels(**labels).set(now - self._started)
        if exit_code is not None:
            self._end.labels(**labels).set(now)
            self._exit.labels(**labels).set(exit_code)
        write_to_textfile(str(self.path), self._registry)
