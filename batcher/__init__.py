"""batcher: run MetaStudio training-job commands in bulk, politely, with an honest report.

The Python API is what the ``batcher`` command calls::

    import batcher

    result = batcher.run(["jobs.csv"], report="r.jsonl", rate=8)       # blocking
    result = await batcher.run_async(["jobs.csv"], report="r.jsonl")   # in an event loop
    summary = batcher.validate(["jobs.csv"])      # raises batcher.ManifestError(.problems)
    stats = batcher.summarize("r.jsonl")
    batcher.select(commands=["CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING"],  # a manifest
                   states=["WAIT_FILE_UPLOAD"], output="nightly.csv")  # from the List API

Options are keyword-only and mirror the CLI's flags; credentials come from the environment
only. Errors meant for the user are :class:`BatcherError` subclasses with an ``exit_code``.

>>> import batcher
>>> batcher.validate(["manifests/example.csv"]).total
8
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from batcher.errors import (
    BatcherError,
    ExitCode,
    ManifestError,
    Problem,
    ReportLockedError,
    ReportWriteError,
    SettingsError,
    UsageError,
)

if TYPE_CHECKING:  # imported on first use, so that ``batcher --help`` starts fast
    from batcher.api import (
        run,
        run_async,
        select,
        select_async,
        status,
        status_async,
        summarize,
        validate,
    )
    from batcher.execution import Plan, RunResult
    from batcher.journal.line import ReportLine
    from batcher.read import ManifestSummary
    from batcher.review.summary import Summary
    from batcher.select.selector import SelectResult
    from batcher.status.check import StatusResult

_LAZY = {
    "Plan": "execution",
    "RunResult": "execution",
    "SelectResult": "select.selector",
    "run": "api",
    "run_async": "api",
    "select": "api",
    "select_async": "api",
    "status": "api",
    "status_async": "api",
    "StatusResult": "status.check",
    "summarize": "api",
    "validate": "api",
    "ManifestSummary": "read",
    "ReportLine": "journal.line",
    "Summary": "review.summary",
}

__all__ = [
    "BatcherError",
    "ExitCode",
    "ManifestError",
    "ManifestSummary",
    "Plan",
    "Problem",
    "ReportLine",
    "ReportLockedError",
    "ReportWriteError",
    "RunResult",
    "SelectResult",
    "SettingsError",
    "StatusResult",
    "Summary",
    "UsageError",
    "__version__",
    "run",
    "run_async",
    "select",
    "select_async",
    "status",
    "status_async",
    "summarize",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # from the package metadata, read when first asked for
        from batcher.observe.version import version

        return version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batcher' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
