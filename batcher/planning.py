"""What a run would do, without sending anything: the plan ``--dry-run`` prints."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from pathlib import Path

from .entry import Entry
from .keys import key_digest
from .manifest import ManifestSummary
from .report._lock import file_id
from .report.inflight import left_in_flight, report_identity
from .report.resume import read_resume
from .results import Plan
from .settings import RunSettings

#: The manifests' second pass: every entry in order, None for one whose key is in the
#: container (already done: passed over without building it).
EntrySource = Callable[[Container[int]], Iterator[Entry | None]]


def plan_run(
    summary: ManifestSummary,
    settings: RunSettings,
    entries: EntrySource,
    resumed: Path | None,
) -> Plan:
    """What the run would do; with ``resumed`` (the report, under ``--resume``) the entries
    it would not send again and those it would check first."""
    if settings.simulate:
        endpoint: str | None = "an in-process simulator on 127.0.0.1 (throwaway credentials)"
        auth = "AK/SK signing with throwaway simulator keys"
    else:
        endpoint = str(settings.endpoint) if settings.endpoint else None
        auth = settings.credentials.describe() if settings.credentials else "none"
    already_done = in_doubt = 0
    identity = None if resumed is None else file_id(resumed)
    if resumed is not None and identity is not None:
        in_flight, _ = left_in_flight(resumed, report_identity(identity))
        state = read_resume(
            lambda: open(resumed, "rb"),  # noqa: SIM115 - read_resume closes what it reads
            inflight=in_flight,
        )
        for entry in entries(state.done):
            if entry is None:
                already_done += 1
            elif key_digest(entry.job_id, entry.command) in state.doubts:
                in_doubt += 1
    left = summary.total - already_done
    limit = settings.options.limit
    return Plan(
        files=summary.files,
        total=summary.total,
        commands=dict(summary.commands),
        endpoint=endpoint,
        project_id=settings.project_id,
        auth=auth,
        rate=settings.rate,
        burst=settings.burst,
        concurrency=settings.options.concurrency,
        already_done=already_done,
        in_doubt=in_doubt,
        to_run=left if limit is None else min(limit, left),
        limit=limit,
    )
