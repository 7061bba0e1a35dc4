"""Helpers shared by the manifest tests: write a file, load it, collect its problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from batcher.entry import Entry
from batcher.errors import ManifestError, Problem
from batcher.read import Manifests, ManifestSummary

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"
JOB_A = "f5ff24e3ecb1bf8fd534de6c48c261bf"
JOB_B = "0163a752b5493159d80902402d1f09be"


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def load(paths: list[str], **options: object) -> tuple[ManifestSummary, list[Entry]]:
    with Manifests(paths, **options) as manifests:  # type: ignore[arg-type]
        summary = manifests.check()
        return summary, list(manifests.entries())


def problems(paths: list[str], **options: object) -> list[Problem]:
    with Manifests(paths, **options) as manifests, pytest.raises(ManifestError) as caught:  # type: ignore[arg-type]
        manifests.check()
    return caught.value.problems


def where(found: list[Problem]) -> list[tuple[int | None, str | None]]:
    return [(problem.line, problem.field) for problem in found]
