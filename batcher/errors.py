"""Exit codes and the errors that map onto them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes, a contract with cron jobs and scripts (see README)."""

    OK = 0  #: every entry succeeded (or was already done)
    INCOMPLETE = 1  #: some entries failed or were skipped
    USAGE = 2  #: usage or manifest error; nothing was sent
    HALTED = 3  #: halted early: authentication refused, failure threshold, SIGINT/SIGTERM
    LOCKED = 4  #: another run holds the report's lock


def exit_code_for(*, halted: bool, failed: int, skipped: int) -> int:
    """The exit code of a run: 3 halted, 1 some entries failed or were skipped, else 0.

    >>> exit_code_for(halted=False, failed=0, skipped=2)
    1
    """
    if halted:
        return int(ExitCode.HALTED)
    if failed or skipped:
        return int(ExitCode.INCOMPLETE)
    return int(ExitCode.OK)


class BatcherError(Exception):
    """An error meant for the user: its message is complete and carries no secret."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(BatcherError):
    """Bad flags, environment or files: exit 2, nothing sent."""


class SettingsError(UsageError):
    """Several settings are missing or invalid: every one of them, at once (exit 2)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest, pointing at its file, line and field."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {field}{self.message}"


class ManifestError(UsageError):
    """A manifest (or several) failed validation. Holds every problem found, up to a cap."""

    def __init__(self, problems: list[Problem], *, truncated: bool = False) -> None:
        self.problems = problems
        self.truncated = truncated
        #: Problems with the settings found in the same preflight, if any.
        self.settings_problems: list[str] = []
        more = " (more problems not shown)" if truncated else ""
        super().__init__(f"{len(problems)} problem(s) in the manifest{more}")


class ReportLockedError(BatcherError):
    """Another run holds the report's lock: exit 4, nothing changed."""

    exit_code = ExitCode.LOCKED


class ReportWriteError(BatcherError):
    """The report cannot be written mid-run (disk full, read-only, removed): the run stops
    at once, as a halt does (exit 3); what was finished before is in the report.

    ``cause`` is the short reason (what failed), for the run's events; the message adds what
    to do, and is said once, at the end.
    """

    exit_code = ExitCode.HALTED

    def __init__(self, message: str, *, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause or message
