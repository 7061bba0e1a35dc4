"""Seeded fault decisions, and the counters tests read.

Every request to the command endpoint draws the same six numbers in the same order,
whatever happens to it afterwards, so a seed replays the same fault sequence for the
same sequence of requests. List and Show draw from a stream of their own (four numbers
each: no execute-then-drop or late answer, as they change nothing), so reading jobs does
not shift the commands' faults.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from batcher.simulator.config import SimulatorConfig


@dataclass(frozen=True, slots=True)
class Faults:
    """What is to go wrong with one request (decided before anything runs)."""

    delay_seconds: float = 0.0
    drop: bool = False
    drop_after_execute: bool = False
    throttle: bool = False
    error: bool = False
    #: Seconds to hold an executed command's answer back (0: answer at once).
    late_seconds: float = 0.0


class FaultPlanner:
    """Draws :class:`Faults` from one ``random.Random(seed)``.

    >>> planner = FaultPlanner(SimulatorConfig(seed=1, error_rate=1.0))
    >>> planner.draw().error
    True
    """

    __slots__ = ("_config", "_reads", "_rng")

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._reads = random.Random(None if config.seed is None else f"reads/{config.seed}")

    def draw(self) -> Faults:
        """The faults of one command request."""
        drop, drop_after, throttle, error, jitter, late = (self._rng.random() for _ in range(6))
        c = self._config
        return Faults(
            delay_seconds=(c.latency_ms + jitter * c.latency_jitter_ms) / 1000.0,
            drop=drop < c.drop_rate,
            drop_after_execute=drop_after < c.drop_after_execute_rate,
            throttle=throttle < c.throttle_rate,
            error=error < c.error_rate,
            late_seconds=c.late_answer_ms / 1000.0 if late < c.late_answer_rate else 0.0,
        )

    def draw_read(self) -> Faults:
        """The faults of one List, Show or Update request (latency, drop, 429, 500)."""
        drop, throttle, error, jitter = (self._reads.random() for _ in range(4))
        c = self._config
        return Faults(
            delay_seconds=(c.latency_ms + jitter * c.latency_jitter_ms) / 1000.0,
            drop=drop < c.drop_rate,
            throttle=throttle < c.throttle_rate,
            error=error < c.error_rate,
        )


@dataclass(slots=True)
class ReadStats:
    """Counters over one endpoint (List, Show, Update; the command's are in its subclass)."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (``GET /__simulator/stats``): statuses as strings, and each
        ``(job_id, command)`` counter nested as ``{job_id: {command: n}}``::

            {"requests": 12, "by_status": {"200": 10, "429": 1}, "dropped": 1,
             "results": {"EXCUTE_SUCCESS": 9, "EXCUTE_FAILED": 1},
             "executions": {"job-1": {"CONFIRM_MULTIPART_UPLOADED": 1}},
             "reads": {"job-1": {"GET_MULTIPART_UPLOADED": 2}},
             "dropped_after_execute": 0, "late_answers": 0,
             "list": {"requests": 3, "by_status": {"200": 3}, "dropped": 0}, "show": ...}
        """
        shown: dict[str, Any] = {}
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, ReadStats):
                value = value.as_dict()
            elif name == "by_status":
                value = {str(k): v for k, v in sorted(value.items())}
            elif name in ("executions", "reads"):
                value = _nest(value)
            shown[_SHOWN_AS.get(name, name)] = dict(value) if isinstance(value, Counter) else value
        return shown


_SHOWN_AS = {"lists": "list", "shows": "show", "updates": "update"}


@dataclass(slots=True)
class SimulatorStats(ReadStats):
    """Counters over the command endpoint, and apart from it List (``lists``), Show
    (``shows``) and Update (``updates``); ``/__simulator/*`` is not counted.

    ``executions`` counts, per ``(job_id, command)``, the runs that took effect (read-only
    commands such as GET_MULTIPART_UPLOADED are in ``reads``), so a test can assert that no
    entry was executed twice: ``assert not sim.stats.duplicates()``. ``dropped`` counts
    every command connection closed unanswered, ``dropped_after_execute`` those of them
    that had reached the job (a 200: executed, or refused by the state machine);
    ``late_answers`` the 200 answers held back (the command had already run).
    """

    results: Counter[str] = field(default_factory=Counter)
    executions: Counter[tuple[str, str]] = field(default_factory=Counter)
    reads: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped_after_execute: int = 0
    late_answers: int = 0
    lists: ReadStats = field(default_factory=ReadStats)
    shows: ReadStats = field(default_factory=ReadStats)
    updates: ReadStats = field(default_factory=ReadStats)

    def duplicates(self) -> dict[tuple[str, str], int]:
        """``(job_id, command)`` keys executed more than once."""
        return {key: n for key, n in self.executions.items() if n > 1}


def _nest(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (job_id, command), n in sorted(counter.items()):
        nested.setdefault(job_id, {})[command] = n
    return nested
