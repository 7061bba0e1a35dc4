"""The jobs a status SOURCE names: a report's, a manifest's, or a List query's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batcher.journal.reader import iter_report
from batcher.read import Manifests
from batcher.select.query import JobQuery

#: Keys of the jobs named: ``(job_id, project_id)``, in the order first named.
JobKeys = dict[tuple[str, str], None]


@dataclass(slots=True)
class Targets:
    """Either the jobs named by id (a report, a manifest) or a query to list them by."""

    source: str
    project_id: str
    query: JobQuery | None = None
    jobs: JobKeys = field(default_factory=dict)


def named_jobs(path: str, *, project_id: str) -> Targets:
    """The jobs a report (JSON lines) or a manifest (anything else, ``-`` too) names;
    ``project_id`` for those that name none. A report is read as ``batcher report`` reads
    it (bad lines warned about and passed over); a manifest with any problem is refused."""
    jobs: JobKeys = {}
    if Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for _, line in iter_report(Path(path)):
            jobs[line.job_id, line.project_id or project_id] = None
        return Targets(path, project_id, jobs=jobs)
    # Entries need a command to be valid; status sends none, so any known one stands in.
    with Manifests([path], default_command="GET_MULTIPART_UPLOADED", project_id=project_id) as m:
        m.check()
        for entry in m.entries():
            if entry is not None:
                jobs[entry.job_id, entry.project_id or project_id] = None
    return Targets(path, project_id, jobs=jobs)
