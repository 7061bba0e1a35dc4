"""List's query: parse and check its parameters, then filter, sort and page the jobs.

Parameters (all optional): ``offset`` (>= 0, default 0), ``limit`` (1..:data:`LIMIT_MAX`,
default :data:`LIMIT_DEFAULT`), ``state`` (known states, separated by commas),
``sort_key`` (``create_time`` default, ``update_time``, ``asset_order``), ``sort_dir``
(``asc`` default, ``desc``), ``create_since``/``create_until``/``update_since``/
``update_until`` (RFC 3339 with a zone, bounds included), ``batch_name``, ``tag``, ``job_id``
(exact), ``name`` (a part of the name), ``model_resolution`` (exact), ``train_location``
(among the job's ``optional_training_location``), ``is_flexus``/``is_live_copy``/
``is_ondemand_resource`` (``true``/``false``), ``query_project_id`` (jobs of that project:
none unless it is the project asked about).

A bad value — limit above the cap, a negative offset, an unknown state or sort key, a time
that is not RFC 3339, a bool that is not true/false, a parameter given twice — is
:class:`BadQuery` (the app answers 400 MSS.00000003). Unknown parameters are ignored.
Equal sort keys are ordered by ``job_id``, so pages never overlap while nothing changes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batcher.entry import PATH_ID_RE
from batcher.simulator.record import Job, JobState

#: The page-size cap: ``limit`` above it is a 400, not a silently shorter page.
LIMIT_MAX = 100
LIMIT_DEFAULT = 10
SORT_KEYS = ("create_time", "update_time", "asset_order")

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
).fullmatch
_INT = re.compile(r"\d{1,9}").fullmatch

Check = Callable[[Job], bool]


class BadQuery(ValueError):
    """A List parameter is invalid; the message says which and why (for the log)."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A checked List query: the page, the order, and the filters a job must pass."""

    offset: int = 0
    limit: int = LIMIT_DEFAULT
    states: frozenset[JobState] | None = None
    sort_key: str = "create_time"
    descending: bool = False
    checks: tuple[Check, ...] = ()


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 time with its zone (``2020-07-30T10:43:17Z``); ValueError otherwise.

    >>> parse_rfc3339("2020-07-30T10:43:17.5+08:00").isoformat()
    '2020-07-30T10:43:17.500000+08:00'
    """
    if not _RFC3339(value):
        raise ValueError("not an RFC 3339 time with a zone")
    head, _, fraction = value.upper().replace("Z", "+00:00").partition(".")
    if fraction:  # fromisoformat takes 3 or 6 digits only
        digits, zone = fraction[:-6], fraction[-6:]
        head = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(head)


def _int(name: str, value: str, low: int, high: int) -> int:
    if not _INT(value) or not low <= int(value) <= high:
        raise BadQuery(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _one_of(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise BadQuery(f"{name} must be one of {', '.join(allowed)}")
    return value


def _time(name: str, value: str) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise BadQuery(f"{name} is not an RFC 3339 time (2020-07-30T10:43:17Z)") from None


def _states(value: str) -> frozenset[JobState] | None:
    names = [s.strip() for s in value.split(",") if s.strip()]
    if unknown := [s for s in names if s not in JobState.__members__]:
        raise BadQuery(f"state {unknown[0]!r} is not a job state")
    return frozenset(map(JobState, names)) or None


def _filter(name: str, value: str) -> Check | None:
    """The check a filter parameter asks for (None: not a filter)."""
    if name in _TIMES:
        bound, attr = _time(name, value), _TIMES[name]
        if name.endswith("_since"):
            return lambda job: bool(getattr(job, attr) >= bound)
        return lambda job: bool(getattr(job, attr) <= bound)
    if name in _BOOLS:
        wanted = _one_of(name, value.lower(), ("true", "false")) == "true"
        return lambda job: bool(getattr(job, name) is wanted)
    if not value or name not in _TEXTS:
        return None
    if name == "query_project_id" and not PATH_ID_RE.match(value):
        raise BadQuery("query_project_id is not 1-64 of [A-Za-z0-9_-]")
    return functools.partial(_TEXTS[name], value)


#: The text filters: how a job matches the value given.
_TEXTS: dict[str, Callable[[str, Job], bool]] = {
    "batch_name": lambda v, job: job.batch_name == v,
    "tag": lambda v, job: v in job.tags,
    "job_id": lambda v, job: job.job_id == v,
    "name": lambda v, job: job.name is not None and v in job.name,
    "model_resolution": lambda v, job: job.model_resolution == v,
    "train_location": lambda v, job: v in job.optional_training_location,
    "query_project_id": lambda v, job: job.project_id == v,
}
_BOOLS = ("is_flexus", "is_live_copy", "is_ondemand_resource")
_TIMES = {"create_since": "create_time", "create_until": "create_time"}
_TIMES |= {"update_since": "last_update_time", "update_until": "last_update_time"}


def parse_query(pairs: Iterable[tuple[str, str]]) -> ListQuery:
    """Check List's query parameters.

    >>> parse_query([("state", "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED"), ("limit", "50")]).limit
    50
    >>> parse_query([("limit", "101")])
    Traceback (most recent call last):
    batcher.simulator.listing.BadQuery: limit must be an integer from 1 to 100
    """
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise BadQuery(f"{name} is given more than once")
        params[name] = value
    get = params.get
    states = _states(get("state") or "")
    checks = [check for name, value in params.items() if (check := _filter(name, value))]
    if states is not None:
        checks.append(lambda job: job.state in states)
    return ListQuery(
        offset=_int("offset", get("offset", "0"), 0, 10**9),
        limit=_int("limit", get("limit", str(LIMIT_DEFAULT)), 1, LIMIT_MAX),
        states=states,
        sort_key=_one_of("sort_key", get("sort_key", "create_time"), SORT_KEYS),
        descending=_one_of("sort_dir", get("sort_dir", "asc"), ("asc", "desc")) == "desc",
        checks=tuple(checks),
    )


def _sort_key(key: str) -> Callable[[Job], tuple[Any, ...]]:
    if key == "update_time":
        return lambda job: (job.last_update_time, job.job_id)
    if key == "asset_order":  # jobs without an asset first, then by asset id
        return lambda job: (job.asset_id is not None, job.asset_id or "", job.job_id)
    return lambda job: (job.create_time, job.job_id)


def select(jobs: Iterable[Job], query: ListQuery) -> tuple[int, Sequence[Job]]:
    """``(count of all matches, the page)`` for ``query``.

    >>> from datetime import UTC
    >>> from .record import new_job
    >>> jobs = [new_job("p", f"j{n}", now=datetime(2026, 11, n + 1, tzinfo=UTC)) for n in range(5)]
    >>> count, page = select(jobs, ListQuery(offset=1, limit=2, descending=True))
    >>> count, [job.job_id for job in page]
    (5, ['j3', 'j2'])
    """
    matched = [job for job in jobs if all(check(job) for check in query.checks)]
    matched.sort(key=_sort_key(query.sort_key), reverse=query.descending)
    return len(matched), matched[query.offset : query.offset + query.limit]
