"""Helpers for tests that drive the real ``batcher`` command against the simulator."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from conftest import TEST_AK, TEST_PROJECT_ID, TEST_SK, TEST_TOKEN

from batcher.cli import main as cli_main

PROJECT = TEST_PROJECT_ID
__all__ = ["TEST_AK", "TEST_SK", "TEST_TOKEN"]

_CREDENTIAL_VARS = (
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "CLOUD_SDK_AK",
    "CLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "METASTUDIO_AUTH_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_REGION",
    "HUAWEICLOUD_SDK_CREDENTIALS_FILE",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any credentials, plus ``extra``."""
    # Nor the SDK's per-region endpoints.
    env = {
        k: v for k, v in os.environ.items()
        if k not in _CREDENTIAL_VARS and not k.startswith("HUAWEICLOUD_SDK_REGION_")
    }  # fmt: skip
    env.update(extra)
    return env


def aksk_env(sk: str = TEST_SK, **extra: str) -> dict[str, str]:
    return clean_env(HUAWEICLOUD_SDK_AK=TEST_AK, HUAWEICLOUD_SDK_SK=sk, **extra)


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def jobs_csv(
    path: Path, count: int, command: str = "GET_MULTIPART_UPLOADED", prefix: str = "job"
) -> Path:
    return write_csv(
        path, ({"job_id": f"{prefix}{i:06d}", "command": command} for i in range(count))
    )


def read_report(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a report (a torn last line is left out)."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_bytes().splitlines(keepends=True):
        if raw.endswith(b"\n") and raw.strip():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue  # a torn line from a crash, left in place by design
    return lines


def latest(lines: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(line["job_id"], line["command"]): line for line in lines}


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_args(sim_url: str, *args: str) -> list[str]:
    return ["--endpoint", sim_url, "--project-id", PROJECT, "--no-progress", *args]


async def spawn(args: Sequence[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start ``python -m batcher ARGS`` (the real entry point) without blocking the loop."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batcher",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def batcher(args: Sequence[str], env: dict[str, str], timeout: float = 120) -> Result:
    process = await spawn(args, env)
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def batcher_in_thread(args: Sequence[str], env: dict[str, str], capsys: Any) -> Result:
    """Run ``batcher.cli.main`` in a worker thread (it starts its own event loop), so the
    simulator on this test's loop keeps serving."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        code = await anyio.to_thread.run_sync(cli_main, list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


async def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while len(read_report(path)) < count:
            await anyio.sleep(0.02)
