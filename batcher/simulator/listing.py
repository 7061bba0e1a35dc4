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
_TEXT_FILTERS = ("batch_name", "tag", "job_id", "name", "model_resolution", "train_location")
_BOOL_FILTERS = ("is_flexus", "is_live_copy", "is_ondemand_resource")
_TIMES = ("create_since", "create_until", "update_since", "update_until")


class BadQuery(ValueError):
    """A List parameter is invalid; the message says which and why (for the log)."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A checked List query."""

    offset: int = 0
    limit: int = LIMIT_DEFAULT
    states: frozenset[JobState] | None = None
    sort_key: str = "create_time"
    descending: bool = False
    create_since: datetime | None = None
    create_until: datetime | None = None
    update_since: datetime | None = None
    update_until: datetime | None = None
    batch_name: str | None = None
    tag: str | None = None
    job_id: str | None = None
    name: str | None = None
    model_resolution: str | None = None
    train_location: str | None = None
    is_flexus: bool | None = None
    is_live_copy: bool | None = None
    is_ondemand_resource: bool | None = None
    query_project_id: str | None = None


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
    fields: dict[str, Any] = {}
    if "offset" in params:
        fields["offset"] = _int("offset", params["offset"], 0, 10**9)
    if "limit" in params:
        fields["limit"] = _int("limit", params["limit"], 1, LIMIT_MAX)
    if params.get("state"):
        names = [s.strip() for s in params["state"].split(",") if s.strip()]
        unknown = [s for s in names if s not in JobState.__members__]
        if unknown:
            raise BadQuery(f"state {unknown[0]!r} is not a job state")
        fields["states"] = frozenset(JobState(s) for s in names) or None
    if "sort_key" in params:
        if params["sort_key"] not in SORT_KEYS:
            raise BadQuery(f"sort_key must be one of {', '.join(SORT_KEYS)}")
        fields["sort_key"] = params["sort_key"]
    if "sort_dir" in params:
        if params["sort_dir"] not in ("asc", "desc"):
            raise BadQuery("sort_dir must be asc or desc")
        fields["descending"] = params["sort_dir"] == "desc"
    for name in _TIMES:
        if name in params:
            try:
                fields[name] = parse_rfc3339(params[name])
            except ValueError:
                raise BadQuery(f"{name} is not an RFC 3339 time (2020-07-30T10:43:17Z)") from None
    for name in _BOOL_FILTERS:
        if name in params:
            if params[name].lower() not in ("true", "false"):
                raise BadQuery(f"{name} must be true or false")
            fields[name] = params[name].lower() == "true"
    for name in _TEXT_FILTERS:
        if params.get(name):
            fields[name] = params[name]
    if params.get("query_project_id"):
        if not PATH_ID_RE.match(params["query_project_id"]):
            raise BadQuery("query_project_id is not 1-64 of [A-Za-z0-9_-]")
        fields["query_project_id"] = params["query_project_id"]
    return ListQuery(**fields)


def _predicates(q: ListQuery) -> list[Callable[[Job], bool]]:
    checks: list[Callable[[Job], bool]] = []
    add = checks.append
    if q.states is not None:
        add(lambda j: j.state in q.states)  # type: ignore[operator]
    for bound, attr, after in (
        (q.create_since, "create_time", True),
        (q.create_until, "create_time", False),
        (q.update_since, "last_update_time", True),
        (q.update_until, "last_update_time", False),
    ):
        if bound is not None:
            add(_time_check(attr, bound, after))
    for attr in ("batch_name", "job_id", "model_resolution", *_BOOL_FILTERS):
        if (wanted := getattr(q, attr)) is not None:
            add(_equals(attr, wanted))
    if q.tag is not None:
        add(lambda j: q.tag in j.tags)
    if q.name is not None:
        add(lambda j: j.name is not None and q.name in j.name)  # type: ignore[operator]
    if q.train_location is not None:
        add(lambda j: q.train_location in j.optional_training_location)
    if q.query_project_id is not None:
        add(lambda j: j.project_id == q.query_project_id)
    return checks


def _equals(attr: str, wanted: object) -> Callable[[Job], bool]:
    return lambda job: bool(getattr(job, attr) == wanted)


def _time_check(attr: str, bound: datetime, after: bool) -> Callable[[Job], bool]:
    if after:
        return lambda job: getattr(job, attr) >= bound
    return lambda job: getattr(job, attr) <= bound


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
    checks = _predicates(query)
    matched = [job for job in jobs if all(check(job) for check in checks)]
    matched.sort(key=_sort_key(query.sort_key), reverse=query.descending)
    return len(matched), matched[query.offset : query.offset + query.limit]
