"""The List API's filters and sort options, as ``batcher select`` offers them.

One table (:data:`FILTERS`) says, for each filter, its query parameter, its flag, the kind of
value it takes and the listed job's field batcher checks it against itself: the query's
parameters, its checks, the re-check of each listed job and the CLI's flags all come from it.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from batcher.journal import times
from batcher.send.vocabulary import JOB_STATES

Kind = Literal["states", "text", "time", "bool"]


@dataclass(frozen=True, slots=True)
class Filter:
    """One List filter: ``name`` as batcher calls it (keyword argument; flag with dashes),
    what it takes, the listed job's ``field`` it is re-checked against (None: the server's
    alone to apply), and ``param`` as the API names it (by default, ``name``)."""

    name: str
    kind: Kind
    field: str | None
    help: str
    param: str = ""
    #: For a time: True for a lower bound (since), False for an upper one (until).
    lower: bool = True
    #: The flag, when it is not ``name`` with dashes (``--state``, one or more states).
    cli: str = ""

    @property
    def flag(self) -> str:
        return self.cli or "--" + self.name.replace("_", "-")

    @property
    def api_name(self) -> str:
        return self.param or self.name


FILTERS: tuple[Filter, ...] = (
    Filter("states", "states", "state", "job states, separated by commas", "state", cli="--state"),
    Filter("batch_name", "text", "batch_name", "the jobs' batch name"),
    Filter("tag", "text", "tags", "a job tag"),
    Filter("job_id", "text", "job_id", "one job"),
    # The API matches names as it likes (the simulator: a part of the name).
    Filter("name", "text", None, "the model name"),
    # Assumption: the API matches these exactly (the reference says no more), as the re-check.
    Filter("model_resolution", "text", "model_resolution", "e.g. 1080"),
    # Assumption: a listed job carries optional_training_location, whose relation to this
    # filter the reference does not give, so the server alone applies it.
    Filter("train_location", "text", None, "the training location"),
    Filter("is_flexus", "bool", "is_flexus", "Flexus jobs, or not"),
    Filter("is_live_copy", "bool", "is_live_copy", "live-copy jobs, or not"),
    Filter("is_ondemand_resource", "bool", "is_ondemand_resource", "on-demand jobs, or not"),
    # Assumption: "tenant id to query" is not checked against a listed job's project_id.
    Filter("query_project_id", "text", None, "the tenant id to query"),
    Filter("created_since", "time", "create_time", "created at or after", "create_since"),
    Filter("created_until", "time", "create_time", "created at or before", "create_until", False),
    Filter("updated_since", "time", "last_update_time", "updated at or after", "update_since"),
    Filter(
        "updated_until", "time", "last_update_time", "updated at or before", "update_until", False
    ),
)

SORT_KEYS = ("create_time", "update_time", "asset_order")
SORT_DIRS = ("asc", "desc")


@dataclass(frozen=True, slots=True)
class JobQuery:
    """The filters given (by :attr:`Filter.name`) and the order asked for.

    >>> JobQuery({"states": ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"),
    ...           "batch_name": "b1", "is_flexus": False}).params()
    {'state': 'AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED', 'batch_name': 'b1', 'is_flexus': 'false'}
    """

    values: dict[str, Any] = field(default_factory=dict)
    sort_key: str | None = None
    sort_dir: str | None = None

    def given(self) -> list[tuple[Filter, Any]]:
        """The filters given a value, in the table's order."""
        return [
            (f, self.values[f.name])
            for f in FILTERS
            if self.values.get(f.name) not in (None, "", ())
        ]

    def params(self) -> dict[str, str]:
        """The query parameters, as the API names them."""
        return {f.api_name: _text(f, value) for f, value in self.given()}

    @property
    def since(self) -> datetime | None:
        """The earliest creation time asked for: where the listing starts."""
        return parse_time(self.values.get("created_since"))

    def admits(self, job: dict[str, Any]) -> bool:
        """Whether ``job`` (as List shows it) meets every filter batcher can check itself.
        A server that ignored one must not put a job into the manifest; a job that lacks a
        field a filter needs is not admitted either.

        >>> query = JobQuery({"states": ("AUTO_VERIFY_FAILED",), "is_flexus": True})
        >>> query.admits({"state": "AUTO_VERIFY_FAILED", "is_flexus": True})
        True
        >>> query.admits({"state": "AUTO_VERIFY_FAILED", "is_flexus": "true"})
        False
        """
        return all(_meets(f, value, job.get(f.field)) for f, value in self.given() if f.field)

    def problems(self) -> list[str]:
        """What is wrong with the filters and the order, checked before anything is sent."""
        found = [*self._empty(), *self._bounds_reversed()]
        for f, value in self.given():
            if f.kind == "states":
                found += [_unknown_state(s) for s in value if s.strip() and s not in JOB_STATES]
            elif f.kind == "time" and not _is_rfc3339(value):
                found.append(
                    f"{f.flag} {value!r} is not an RFC 3339 time (e.g. 2026-11-24T00:00:00Z)"
                )
            elif f.kind == "bool" and not isinstance(value, bool):
                found.append(f"{f.flag} takes true or false, not {value!r}")
        if self.sort_key not in (None, *SORT_KEYS):
            found.append(f"--sort-key must be one of {', '.join(SORT_KEYS)}")
        elif self.sort_key == "asset_order":  # select lists by creation time, and sorts after
            found.append("--sort-key asset_order: listed jobs do not carry their asset order")
        if self.sort_dir not in (None, *SORT_DIRS):
            found.append("--sort-dir must be asc or desc")
        return found

    def _empty(self) -> list[str]:
        """Filters given an empty value: sent as none at all, it would select every job."""
        found = []
        for f in FILTERS:
            value = self.values.get(f.name)
            if f.kind == "states" and value is not None and any(not s.strip() for s in value):
                found.append(
                    "--state: an empty state ('' or A,,B) would select jobs in every state; "
                    "leave --state out to mean every state"
                )
            elif isinstance(value, str) and not value.strip():
                found.append(
                    f"{f.flag} is empty: it would select every job; leave it out to mean all"
                )
        return found

    def _bounds_reversed(self) -> list[str]:
        """A lower time bound later than the upper one on the same field: no job can match."""
        bounds = {
            (f.field, f.lower): (f, parse_time(v)) for f, v in self.given() if f.kind == "time"
        }
        found = []
        for (name, lower), (since, start) in bounds.items():
            until, end = bounds.get((name, False), (None, None))
            if lower and until is not None and start and end and start > end:
                found.append(
                    f"{since.flag} {self.values[since.name]} is later than {until.flag} "
                    f"{self.values[until.name]}: no job can match"
                )
        return found

    def order(self) -> tuple[str, bool] | None:
        """The job field the manifest is sorted on after listing, and whether descending;
        None when the listing's own order (creation time, ascending) is the one asked for."""
        key, descending = self.sort_key or "create_time", self.sort_dir == "desc"
        if key == "create_time" and not descending:
            return None
        return ("last_update_time" if key == "update_time" else "create_time"), descending


def split_states(texts: Iterable[str]) -> tuple[str, ...]:
    """The states of ``--state`` flags, each a list separated by commas, empty ones kept:
    for :meth:`JobQuery.problems` to refuse, as an empty state would widen the selection.

    >>> split_states(["AUTO_VERIFY_FAILED, WAIT_FILE_UPLOAD", "TRAINING"])
    ('AUTO_VERIFY_FAILED', 'WAIT_FILE_UPLOAD', 'TRAINING')
    """
    return tuple(state.strip() for text in texts for state in text.split(","))


def _text(f: Filter, value: Any) -> str:
    if f.kind == "states":
        return ",".join(value)
    if f.kind == "bool":
        return "true" if value else "false"
    return str(value)


def _meets(f: Filter, wanted: Any, have: Any) -> bool:
    if f.kind == "states":
        return have in wanted
    if f.kind == "time":
        when, bound = parse_time(have), parse_time(wanted)
        if when is None or bound is None:
            return False
        return when >= bound if f.lower else when <= bound
    if f.field == "tags":
        return isinstance(have, list) and wanted in have
    if f.kind == "bool":
        return have is wanted  # JSON true/false, not a text saying so
    return bool(have == wanted)


def _unknown_state(state: str) -> str:
    return f"--state: unknown job state {state!r}{near_miss(state, JOB_STATES)}"


def near_miss(word: str, known: tuple[str, ...]) -> str:
    """``; did you mean 'X'?`` for the known word closest to ``word`` (any case)."""
    close = difflib.get_close_matches(word.upper(), known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else " (see --help for the list)"


def _is_rfc3339(value: Any) -> bool:
    return isinstance(value, str) and "T" in value.upper() and parse_time(value) is not None


#: A time as the API writes it: also none without a zone, which would be read in some zone
#: or other (a page walked from the wrong hour skips jobs).
parse_time = functools.partial(times.parse_time, naive=False)
