"""batcher's version, read from the package metadata (pyproject.toml is where it is written).

A leaf module: the run record, the metrics, the page and the User-Agent name the version
without importing the package root (whose lazy names would close an import cycle).
"""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """The installed distribution's version; ``0+unknown`` when batcher runs from a copy
    that was never installed (a checkout on ``PYTHONPATH``).

    >>> version() != ""
    True
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("batcher")
    except PackageNotFoundError:
        return "0+unknown"
