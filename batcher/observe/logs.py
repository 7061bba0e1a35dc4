"""Logging setup: structlog, readable on a TTY, JSON lines otherwise.

Library modules only call ``structlog.get_logger()``; the CLI calls :func:`configure` once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, Literal, TextIO

import structlog

from batcher.redact import Redactor

LogFormat = Literal["console", "json"]

LEVELS = ("debug", "info", "warning", "error")


class SecretScrubber:
    """A structlog processor that masks known secrets in every event (see :mod:`.redact`)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor(secrets)

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if not self._redactor:
            return event_dict
        return {k: self._redactor.deep(v) for k, v in event_dict.items()}


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
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty()))
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
