"""Types shared by the sub-command modules."""

from __future__ import annotations

import argparse
from typing import TypeAlias

#: What ``add_subparsers`` returns, which each sub-command's ``add_parser`` extends.
#: (A string: ``_SubParsersAction`` is generic only to type checkers.)
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
