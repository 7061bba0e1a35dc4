"""Types shared by the sub-command modules."""

from __future__ import annotations

import argparse
from typing import TypeAlias

#: What ``add_subparsers`` returns, which each sub-command's ``add_parser`` extends.
#: (A string: ``_SubParsersAction`` is generic only to type checkers.)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_where(parser: argparse.ArgumentParser, *, simulate: str) -> argparse._ArgumentGroup:
    """The where-to-send flags ``run`` and ``select`` share; ``simulate`` is its help."""
    where = parser.add_argument_group("where")
    where.add_argument("--project-id", help="default: $HUAWEICLOUD_SDK_PROJECT_ID")
    where.add_argument("--region", help="cn-north-4 or cn-east-3; default: $HUAWEICLOUD_SDK_REGION")
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help="base URL, overrides --region (plain http:// only for loopback)",
    )
    where.add_argument("--simulate", action="store_true", help=simulate)
    return where


def add_logging(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The log and progress flags ``run`` and ``select`` share."""
    output = parser.add_argument_group("output")
    output.add_argument(
        "--log-format",
        choices=("console", "json"),
        help="default: console on a terminal, json otherwise",
    )
    output.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    output.add_argument("--quiet", action="store_true", help="only warnings and errors")
    output.add_argument("--no-progress", action="store_true", help="no progress view or lines")
    return output
