"""The README's Python API example runs as it is written (a doctest over README.md)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples name files relative to the checkout
    structlog.reset_defaults()
    failures, tried = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert tried >= 8  # the Python API section really was found and run
    assert failures == 0
