"""The jobs a status SOURCE names: a report's, a manifest's, or a List query's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batcher.errors import UsageError
from batcher.journal.reader import iter_report
from batcher.read import Manifests
from batcher.select.query import JobQuery

#: Keys of the jobs named: ``(job_id, project_id)``, in the order first named.
JobKeys = dict[tuple[str, str], None]

#: Manifest entries need a command to be valid; status sends none, so one that names none
#: is read as if it named this (any known command would do).
_ANY_COMMAND = "GET_MULTIPART_UPLOADED"


@dataclass(slots=True)
class Targets:
    """Either the jobs named by id (a report, a manifest) or a query to list them by."""

    source: str
    project_id: str
    query: JobQuery | None = None
    jobs: JobKeys = field(default_factory=dict)


def is_report(path: str) -> bool:
    """Reports are JSON lines; everything else (``-`` too) is read as a manifest."""
    return Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson")


def named_jobs(path: str, *, project_id: str) -> Targets:
    """The jobs a report or a manifest names; ``project_id`` for entries that name none.

    A report's unreadable lines are warned about and passed over, as ``batcher report``
    does; a manifest with any problem is refused, naming file, line and field.
    """
    targets = Targets(source=path, project_id=project_id)
    jobs = targets.jobs
    if is_report(path):
        report = Path(path)
        if not report.is_file():
            raise UsageError(
                f"report {path} " + ("is not a file" if report.exists() else "does not exist")
            )
        for _, line in iter_report(report):
            jobs[line.job_id, line.project_id or project_id] = None
        return targets
    with Manifests([path], default_command=_ANY_COMMAND, project_id=project_id) as manifests:
        manifests.check()
        for entry in manifests.entries():
            if entry is not None:
                jobs[entry.job_id, entry.project_id or project_id] = None
    return targets
