"""What the public API returns: a run's result, a dry run's plan, a selection's result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ExitCode


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run would do: the entries per command, where they go, and at what pace."""

    files: tuple[str, ...]
    total: int
    commands: dict[str, int]
    endpoint: str | None
    project_id: str | None
    auth: str
    rate: float
    burst: int
    concurrency: int
    #: With ``resume``: entries an earlier run finished, and those it may have executed
    #: without hearing back (their job's record is read first).
    already_done: int = 0
    in_doubt: int = 0
    #: Entries the run would send (``limit`` caps them), and the limit.
    to_run: int = 0
    limit: int | None = None

    @property
    def expected_seconds(self) -> float | None:
        """At least this long at ``rate`` (one attempt per entry); None when unlimited."""
        return self.to_run / self.rate if self.rate > 0 else None


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


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did. ``exit_code`` is the one the ``batcher`` command exits with.

    >>> RunResult(run_id="r", report=None, succeeded=3).exit_code
    0
    """

    run_id: str
    report: Path | None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    #: Entries not sent because an earlier run of the report had them succeed (``resume``).
    already_done: int = 0
    attempts: int = 0
    #: Requests the API answered 429.
    throttled: int = 0
    #: Entries decided from the job's record after a lost answer, failures left in doubt
    #: (``ambiguous``), and the Show requests made to decide them.
    confirmed: int = 0
    ambiguous: int = 0
    checks: int = 0
    #: True when ``limit`` stopped the run with entries left for ``resume``.
    left_by_limit: bool = False
    elapsed: float = 0.0
    #: The rate asked for (0 = unlimited) and the rate the limiter ended at.
    rate_limit: float = 0.0
    settled_rate: float = 0.0
    #: Why the run stopped early (401/403, a failure threshold, a signal), else None.
    halted_reason: str | None = None
    #: A dry run's plan (nothing was sent); None for real runs.
    plan: Plan | None = None

    @property
    def exit_code(self) -> int:
        return exit_code_for(
            halted=self.halted_reason is not None, failed=self.failed, skipped=self.skipped
        )

    @property
    def entries_per_second(self) -> float | None:
        """Entries attempted (succeeded or failed) per second; skipped lines are not work."""
        attempted = self.succeeded + self.failed
        return attempted / self.elapsed if self.elapsed > 0 else None


@dataclass(frozen=True, slots=True)
class SelectResult:
    """What :func:`select` wrote: jobs matched (per state), entries written, and where."""

    jobs: int
    entries: int
    by_state: dict[str, int]
    #: The number of matches the API reported (it can change while paging).
    count: int | None
    pages: int
    output: Path | None
    format: str
    #: Jobs the API listed that do not meet the filters (it ignored one): left out.
    not_matching: int = 0
