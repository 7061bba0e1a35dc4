"""Logging setup: structlog, readable on a TTY, JSON lines otherwise.

Library modules only call ``structlog.get_logger()``; the CLI calls :func:`configure` once.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterable
from typing import Any, Literal, TextIO

import structlog

from batcher.redact import Redactor

LogFormat = Literal["console", "json"]


class SecretScrubber:
    """A structlog processor that masks known secrets in every event (see :mod:`.redact`)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor(secrets)

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if not self._redactor:
            return event_dict
        return {k: self._redactor.deep(v) for k, v in event_dict.items()}


#: ``entry_failed`` events a console shows one by one; the rest are counted.
SHOWN_FAILURES = 5

#: Events that close a run: a console digest of the failures not shown goes with them.
_CLOSING = ("run_finished", "run_halted_early")


class FailureDigest:
    """On a console, the first few failures one line each, then only counted by reason,
    and the count said with the run's last event, so that hundreds of failures do not
    scroll everything else away (JSON logs keep every event; the report has every line)."""

    def __init__(self) -> None:
        self.hidden: dict[str, int] = {}

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event = event_dict.get("event")
        if event == "entry_failed":
            self.hidden[""] = self.hidden.get("", 0) + 1
            if self.hidden[""] <= SHOWN_FAILURES:
                return event_dict
            reason = str(event_dict.get("reason", "failed"))
            self.hidden[reason] = self.hidden.get(reason, 0) + 1
            if self.hidden[""] > SHOWN_FAILURES + 1:
                raise structlog.DropEvent
            return {
                **{k: v for k, v in event_dict.items() if k in ("timestamp", "level")},
                "event": "entry_failed",
                "more": "further failures are counted, not shown: "
                "`batcher report REPORT --status failed` lists them",
            }
        if event in _CLOSING and len(self.hidden) > 1:
            counts = sorted(((n, r) for r, n in self.hidden.items() if r), reverse=True)
            digest = {
                "failures_not_shown": sum(n for n, _ in counts),
                "most_often": f"{counts[0][1]} ({counts[0][0]:,})",
            }
            return {"event": event, **digest, **event_dict}  # first: a terminal cuts the end
        return event_dict


class ConsoleLine:
    """One line per event for people: time, level, event, then ``key=value`` in the order
    logged, values as compact JSON (plain words bare, never a Python repr, never a line
    break), cut to the terminal's width. The run id is said where a run starts and ends."""

    _KEEP_RUN_ID = ("run_started", *_CLOSING)

    def __init__(self, out: Any) -> None:
        self._out = out

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> str:
        fields = dict(event_dict)
        stamp = str(fields.pop("timestamp", ""))[11:19]
        level = str(fields.pop("level", "info"))
        event = str(fields.pop("event", ""))
        if event not in self._KEEP_RUN_ID:
            fields.pop("run_id", None)
        words = [stamp, f"{level:<7}", event] if stamp else [f"{level:<7}", event]
        words += [f"{key}={_value(value)}" for key, value in fields.items()]
        line = " ".join(words)
        width = shutil.get_terminal_size().columns if self._out.isatty() else 0
        return line if not width or len(line) <= width else line[: width - 1] + "…"


def _value(value: Any) -> str:
    """A value as a console shows it.

    >>> _value("plain"), _value("two words"), _value({"p": 3}), _value(None)
    ('plain', '"two words"', '{"p":3}', 'null')
    """
    import json

    if isinstance(value, str) and value and all(c.isalnum() or c in "-_./:@+" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the moment, so a live terminal display that
    redirects it (rich) prints log lines above itself instead of being torn by them."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(
    *,
    fmt: LogFormat | None = None,
    level: str = "info",
    quiet: bool = False,
    secrets: Iterable[str] | None = None,
    stream: TextIO | None = None,
) -> LogFormat:
    """Configure structlog for the process; return the format chosen.

    ``fmt=None`` picks console on a TTY, JSON otherwise (cron, pipes, files). Every secret
    in ``secrets`` (default: every one the environment holds) is masked in every event.
    """
    if secrets is None:
        from batcher.send.credentials import secrets_in_environment

        secrets = secrets_in_environment()
    out: Any = stream or _CurrentStderr()
    if fmt is None:
        fmt = "console" if out.isatty() else "json"
    threshold = logging.WARNING if quiet else getattr(logging, level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        SecretScrubber(secrets),
    ]
    if fmt == "json":
        processors += [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        processors += [FailureDigest(), ConsoleLine(out)]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    return fmt


def ensure_configured() -> None:
    """Give structlog a quiet setup when the program using batcher gave it none.

    Unconfigured, structlog prints every event of every level to standard output, which a
    library must not do to its caller. So the public API calls this first: when nothing
    configured structlog, warnings and errors go to standard error (as console lines on a
    terminal, JSON otherwise). A program that configures structlog itself keeps its own.
    """
    if not structlog.is_configured():
        configure(level="warning")
