"""`batcher report` (to be written)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="(not yet available)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    raise NotImplementedError
