"""The latest line of each report entry, chosen by status, without keeping whole lines.

The LATEST line per ``(job_id, command)`` is the entry's state (see :mod:`.index`, which
keeps where it is, its status and flags). A selection adds each entry's job and project in
the same pass, and reads the chosen lines themselves again afterwards.

What is chosen, beyond the statuses asked for:

* ``retryable_only``: failed entries whose failure is retryable, and the ``skipped``
  entries of the same jobs (they were skipped because of that failure, and must run after
  it);
* ``include_ambiguous=False``: entries marked ``ambiguous`` (an earlier attempt may have
  executed: a failed line, or a skipped one of an entry still in doubt) are left out, with
  the skipped entries of their jobs, and counted.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from batcher.entry import STATUSES, KeyTable, local_job_digest
from batcher.errors import UsageError
from batcher.journal.index import AMBIGUOUS as _AMBIGUOUS
from batcher.journal.index import FAILED as _FAILED
from batcher.journal.index import RETRYABLE as _RETRYABLE
from batcher.journal.index import SKIPPED as _SKIPPED
from batcher.journal.index import STATUS_CODE, ReportIndex
from batcher.journal.line import ReportLine
from batcher.journal.reader import BadLineHandler, reading, warn_bad_line

_MANY_PROJECTS = 0xFFFF
#: Fields a manifest entry is rebuilt from: a line with one of them unreadable cannot be
#: exported as it was sent.
_REQUEST_FIELDS = frozenset(
    {"job_id", "command", "command_message", "operation_reason", "comment_data",
     "app_user_id", "project_id"}
)  # fmt: skip


class Selection:
    """The latest line of each entry whose status is selected, found in two passes.

    Pass 1 (on construction) keeps per entry where its latest line is, its status and
    flags, and its job; iterating reads exactly the chosen lines again. ``order="report"``
    yields them in report order (of their latest lines); ``order="manifest"`` in the order
    the report first met each entry, which keeps each job's commands in manifest order (what
    an exported manifest needs). Unreadable lines go to ``on_bad_line`` (default: a warning
    in the log).

    >>> failed = Selection(Path("out.jsonl"), statuses={"failed"})  # doctest: +SKIP
    >>> failed.count, [line.job_id for line in failed][:2]  # doctest: +SKIP
    (2, ['job-7', 'job-9'])
    """

    def __init__(
        self,
        path: Path,
        *,
        statuses: Iterable[str] = ("failed", "skipped"),
        retryable_only: bool = False,
        include_ambiguous: bool = True,
        order: str = "report",
        on_bad_line: BadLineHandler | None = None,
    ) -> None:
        self.path = path
        self.statuses = frozenset(statuses)
        unknown = self.statuses - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)}")
        if order not in ("report", "manifest"):
            raise ValueError(f"unknown order {order!r}")
        self.retryable_only = retryable_only
        self.include_ambiguous = include_ambiguous
        self.order = order
        self.by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.count = 0
        #: Failed entries left out because they are ambiguous (``include_ambiguous=False``).
        self.left_out_ambiguous = 0
        #: Skipped entries left out with them (same job).
        self.left_out_dependents = 0
        self.job_id_width = len("job_id")
        self.command_width = len("command")
        self._job = array("Q")  # per entry: a hash of (project_id, job_id)
        self._project = array("H")  # ... its project_id, interned (0 = none)
        self._projects: dict[str | None, int] = {None: 0}
        self._pass_one(on_bad_line or warn_bad_line)
        self._state, self._offset, self._lineno = (
            self._index.state, self._index.offset, self._index.lineno,
        )  # fmt: skip
        self._chosen = self._choose()

    def _pass_one(self, on_bad_line: BadLineHandler) -> None:
        job_of, project_of, projects = self._job, self._project, self._projects

        def keep(row: int, state: int, line: dict[str, Any]) -> None:
            job_id, command = line["job_id"], line["command"]
            project = line.get("project_id")
            project = project if isinstance(project, str) and project else None
            index = projects.get(project)
            if index is None:
                index = min(len(projects), _MANY_PROJECTS)
                if index < _MANY_PROJECTS:
                    projects[project] = index
            if row == len(job_of):
                job_of.append(local_job_digest(job_id, project))
                project_of.append(index)
            else:
                project_of[row] = index
            self.job_id_width = max(self.job_id_width, len(job_id))
            self.command_width = max(self.command_width, len(command))

        self._index = ReportIndex.read(self.path, on_bad_line=on_bad_line, hook=keep)

    def _choose(self) -> array[int]:
        """The rows chosen, in the order they are to be yielded."""
        wanted = {STATUS_CODE[s] for s in self.statuses}
        chosen = bytearray(len(self._state))
        failed_jobs = KeyTable()  # jobs with a chosen failure (for retryable_only)
        ambiguous_jobs = KeyTable()  # jobs with an ambiguous failure left out
        for row, state in enumerate(self._state):
            if state & 3 == _SKIPPED and state & _AMBIGUOUS and not self.include_ambiguous:
                # Skipped by a halt while an earlier run's attempt of it may have executed:
                # in doubt as much as an ambiguous failure, and so are its job's later ones.
                ambiguous_jobs[self._job[row]] = 1
                continue
            if state & 3 != _FAILED:
                continue
            if _FAILED not in wanted or (self.retryable_only and not state & _RETRYABLE):
                continue
            if state & _AMBIGUOUS and not self.include_ambiguous:
                self.left_out_ambiguous += 1
                ambiguous_jobs[self._job[row]] = 1
            else:
                chosen[row] = 1
                failed_jobs[self._job[row]] = 1
        for row, state in enumerate(self._state):
            status = state & 3
            if status == _FAILED:
                continue
            job = self._job[row]
            if self.retryable_only:  # the skipped commands that follow a chosen failure
                take = status == _SKIPPED and (job in failed_jobs or job in ambiguous_jobs)
            else:
                take = status in wanted
            if take and status == _SKIPPED and job in ambiguous_jobs:
                if state & _AMBIGUOUS:
                    self.left_out_ambiguous += 1
                else:
                    self.left_out_dependents += 1
                take = False
            chosen[row] = take
        rows = array("I", (row for row, take in enumerate(chosen) if take))
        projects: set[int] = set()
        for row in rows:
            self.by_status[STATUSES[self._state[row] & 3]] += 1
            projects.add(self._project[row])
        self.count = len(rows)
        names = {index: name for name, index in self._projects.items()}
        #: The project ids of the chosen entries (None: an entry without one); None when
        #: there are too many to keep.
        self.project_ids: frozenset[str | None] | None = (
            None if _MANY_PROJECTS in projects else frozenset(names[i] for i in projects)
        )
        return rows

    def __iter__(self) -> Iterator[ReportLine]:
        for _, line in self.numbered():
            yield line

    def numbered(self) -> Iterator[tuple[int, ReportLine]]:
        """Like iterating, with each line's number in the report."""
        if self.order == "report":  # one sequential read, picking the chosen lines
            wanted = bytearray(len(self._lineno) and max(self._lineno) + 1)
            for row in self._chosen:
                wanted[self._lineno[row]] = 1
            with reading(self.path) as stream:
                for lineno, raw in enumerate(stream, start=1):
                    if lineno < len(wanted) and wanted[lineno]:
                        yield lineno, self._line(lineno, raw)
            return
        with reading(self.path) as stream:
            for row in self._chosen:
                stream.seek(self._offset[row])
                yield self._lineno[row], self._line(self._lineno[row], stream.readline())

    def _line(self, lineno: int, raw: bytes) -> ReportLine:
        """The line as a model. A field of the wrong type is dropped (the first pass only
        checked key and status); one the entry's request depends on is an error."""
        try:
            return ReportLine.model_validate_json(raw)
        except ValidationError as error:
            record = orjson.loads(raw)
            problems = error.errors(include_url=False)
            for problem in problems:
                name = str(problem["loc"][0]) if problem["loc"] else ""
                if name in _REQUEST_FIELDS:
                    where = ".".join(str(p) for p in problem["loc"])
                    raise UsageError(
                        f"{self.path}:{lineno}: {where}: {problem['msg']}: the entry's request "
                        "cannot be read from this line"
                    ) from None
                record.pop(name, None)
            return ReportLine.model_validate(record)
