"""Files that are not UTF-8 text as a manifest needs, through the real ``batcher validate``:
each names the file and line and says what to do; exit 2; no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CSV = "job_id,command,operation_reason\nj1,SUBMITVERIFYING,first\nj2,CONFIRM_ACCEPT,second\n"
YAML = (
    "jobs:\n  - job_id: j1\n    command: SUBMITVERIFYING\n"
    "  - job_id: j2\n    command: CONFIRM_ACCEPT\n"
)


def validate(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batcher", "validate", *args],
        input=None if stdin is None else stdin.decode("latin-1"),
        capture_output=True,
        text=True,
        encoding="latin-1",
        check=False,
        timeout=60,
    )


CASES = {
    "CSV with old Mac line endings": (
        "cr.csv",
        CSV.replace("\n", "\r").encode(),
        1,
        "old Mac line endings (CR only), which the CSV reader cannot split into rows; "
        "re-save it as UTF-8 with LF or CRLF line endings",
    ),
    "CSV mixing CRLF lines and a bare CR": (
        "mixed.csv",
        b"job_id,command\r\nj1,SUBMITVERIFYING\rj2,SUBMITVERIFYING\n",
        2,
        "a carriage return (CR) in the middle of a line, outside quotes: the file mixes "
        "line endings; save it with LF or CRLF line endings (or quote the field)",
    ),
    "UTF-16 LE CSV without BOM": (
        "u16.csv",
        CSV.encode("utf-16-le"),
        1,
        "the file looks like UTF-16 (LE); save it as UTF-8",
    ),
    "UTF-16 BE CSV without BOM": (
        "u16.csv",
        CSV.encode("utf-16-be"),
        1,
        "the file looks like UTF-16 (BE); save it as UTF-8",
    ),
    "UTF-16 LE YAML without BOM": (
        "u16.yaml",
        YAML.encode("utf-16-le"),
        1,
        "the file looks like UTF-16 (LE); save it as UTF-8",
    ),
    "UTF-16 BE YAML without BOM": (
        "u16.yaml",
        YAML.encode("utf-16-be"),
        1,
        "the file looks like UTF-16 (BE); save it as UTF-8",
    ),
    "UTF-32 LE CSV without BOM": (
        "u32.csv",
        CSV.encode("utf-32-le"),
        1,
        "the file looks like UTF-32 (LE); save it as UTF-8",
    ),
    "UTF-32 BE YAML without BOM": (
        "u32.yaml",
        YAML.encode("utf-32-be"),
        1,
        "the file looks like UTF-32 (BE); save it as UTF-8",
    ),
    "UTF-16 CSV with BOM": (
        "bom.csv",
        CSV.encode("utf-16"),
        1,
        "the file is UTF-16; save it as UTF-8 (CSV UTF-8)",
    ),
    "UTF-16 YAML with BOM": ("bom.yaml", YAML.encode("utf-16"), 1, "the file is UTF-16; save it"),
    "UTF-32 YAML with BOM": ("bom.yaml", YAML.encode("utf-32"), 1, "the file is UTF-32; save it"),
    "Latin-1 CSV": (
        "latin.csv",
        CSV.replace("second", "café").encode("latin-1"),
        3,
        "not valid UTF-8 (byte 0xe9 at position 22 of the line); save the file as UTF-8",
    ),
    "Windows-1252 YAML": (
        "cp1252.yaml",
        (YAML + "    operation_reason: “quoted”\n").encode("cp1252"),
        6,
        "not valid UTF-8 (byte 0x93); save as UTF-8",
    ),
    "NUL bytes only": ("zero.yaml", bytes(4096), 1, "the file holds only NUL bytes"),
}


@pytest.mark.parametrize("name, data, line, message", CASES.values(), ids=CASES.keys())
def test_odd_encodings_are_named_with_what_to_do(
    tmp_path: Path, name: str, data: bytes, line: int, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    result = validate(str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (error,) = [text for text in result.stderr.splitlines() if text.startswith("error: ")]
    assert error.startswith(f"error: {path}:{line}: ")
    assert message in error
    assert "the file is empty" not in result.stderr
    assert "control characters" not in result.stderr
    assert result.stdout == ""


def test_a_yaml_file_with_a_latin1_byte_is_reported_as_that_alone(tmp_path: Path) -> None:
    # As when the file was decoded whole before anything was checked: the entries' own
    # problems (line 2 here) come once the file is text.
    path = tmp_path / "mixed.yaml"
    text = (
        "jobs:\n"
        "  - job_id: j/1\n"
        "    command: SUBMITVERIFYING\n"
        "  - job_id: j2\n"
        "    command: SUBMITVERIFYING\n"
        "    operation_reason: café\n"
    )
    path.write_bytes(text.encode("latin-1"))
    result = validate(str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {path}:6: not valid UTF-8 (byte 0xe9); save as UTF-8",
        "batcher: 1 problem(s) in the manifest; nothing was sent",
    ]


def test_utf16_on_standard_input(tmp_path: Path) -> None:
    result = validate("-", stdin=CSV.encode("utf-16-le"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: <stdin>:1: the file looks like UTF-16 (LE); ")


def test_yaml_with_crlf_or_cr_line_endings_is_fine(tmp_path: Path) -> None:
    crlf, cr = tmp_path / "crlf.yaml", tmp_path / "cr.yaml"
    crlf.write_bytes(YAML.replace("\n", "\r\n").encode())
    # YAML counts a lone CR as a line break.
    cr.write_bytes(YAML.replace("\n", "\r").replace("job_id: j", "job_id: k").encode())
    result = validate(str(crlf), str(cr))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: 2 manifests, 4 entries for 4 jobs")
