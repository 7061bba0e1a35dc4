"""A corpus of malformed manifests, each with its neighbours: every one is refused (nothing
built, so nothing sent) with a problem at its file and line that says what is wrong, and no
message quotes more than about 200 characters of the input or shows an invisible character
as itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from manifest_helpers import problems, write

HEADER = "job_id,command,operation_reason,attachment_name\n"
ROW = "j0,SUBMITVERIFYING,,\n"
JOBS = "jobs:\n  - job_id: j0\n    command: SUBMITVERIFYING\n"
SECRET = "s3cr3t-" + "Q" * 40
MIB = 1 << 20

# name: (file name, bytes, line, what the message says)
CASES: dict[str, tuple[str, bytes, int, str]] = {
    # NUL and other control characters, quoted or not, in any field
    "NUL in a quoted CSV id": ("a.csv", b'job_id,command\n"j\x001",SUBMITVERIFYING\n', 2, "NUL"),
    "NUL in a quoted CSV reason": (
        "a.csv",
        (HEADER + ROW + 'j1,SUBMITVERIFYING,"why\x00not",\n').encode(),
        3,
        "NUL",
    ),
    "NUL past the first 64 KiB": (
        "a.csv",
        (
            HEADER
            + "".join(f"j{n},SUBMITVERIFYING,,\n" for n in range(1, 4001))
            + 'j1,SUBMITVERIFYING,"why\x00not",\n'
        ).encode(),
        4002,
        "control character (U+0000)",
    ),
    "escape character in a reason": (
        "a.csv",
        (HEADER + 'j1,SUBMITVERIFYING,"red \x1b[31m",\n').encode(),
        2,
        "control character (U+001B)",
    ),
    "C1 control in a YAML title": (
        "a.yaml",
        (JOBS + '    comment_data: {comment_title: "a\\x85b\\u0090"}\n').encode(),
        4,
        "control character (U+0085)",
    ),
    "escaped NUL in a YAML reason": (
        "a.yaml",
        (JOBS + '    operation_reason: "a\\0b"\n').encode(),
        4,
        "control character (U+0000)",
    ),
    # ids padded with what str.strip takes for blanks
    "id padded with U+3000": (
        "a.csv",
        "job_id,command\nj1\u3000,SUBMITVERIFYING\n".encode(),
        2,
        "'j1\\u3000'",
    ),
    "id padded with U+001C": ("a.csv", b"job_id,command\n\x1cj1,SUBMITVERIFYING\n", 2, "'\\x1cj1'"),
    "id padded with U+001F": ("a.csv", b"job_id,command\nj1\x1f,SUBMITVERIFYING\n", 2, "'j1\\x1f'"),
    "id padded with U+2028": (
        "a.csv",
        "job_id,command\nj1\u2028,SUBMITVERIFYING\n".encode(),
        2,
        "'j1\\u2028'",
    ),
    "id padded with NBSP": (
        "a.csv",
        "job_id,command\n\xa0j1,SUBMITVERIFYING\n".encode(),
        2,
        "'\\xa0j1'",
    ),
    "YAML id with U+3000": (
        "a.yaml",
        "jobs:\n  - job_id: j1\u3000\n    command: SUBMITVERIFYING\n".encode(),
        2,
        "'j1\\u3000'",
    ),
    # attachment names that are not there
    "attachment names all empty": (
        "a.csv",
        (HEADER + 'j1,SUBMITVERIFYING,,";;; ;"\n').encode(),
        2,
        "attachment_name[0]: must not be empty",
    ),
    "an empty attachment name between two": (
        "a.csv",
        (HEADER + "j1,SUBMITVERIFYING,,a.pdf;;b.pdf\n").encode(),
        2,
        "attachment_name[1]: must not be empty",
    ),
    "a blank attachment name in YAML": (
        "a.yaml",
        (JOBS + "    comment_data: {attachment_name: [a.pdf, '']}\n").encode(),
        4,
        "attachment_name[1]: must not be empty",
    ),
    # YAML tags whose value is not the text written
    "!!binary id": (
        "a.yaml",
        b"jobs:\n  - job_id: !!binary am9iLTE=\n    command: SUBMITVERIFYING\n",
        2,
        "'!!binary'",
    ),
    "!!binary reason": (
        "a.yaml",
        (JOBS + "    operation_reason: !!binary aGk=\n").encode(),
        4,
        "'!!binary'",
    ),
    "!!python tag": (
        "a.yaml",
        (JOBS + "    operation_reason: !!python/none ''\n").encode(),
        4,
        "not allowed",
    ),
    # byte order marks past the start
    "double BOM in CSV": (
        "a.csv",
        ("\ufeff\ufeff" + HEADER + ROW).encode(),
        1,
        "byte order mark (U+FEFF)",
    ),
    "BOM in a CSV row": ("a.csv", (HEADER + "j1,SUBMITVERIFYING\ufeff,,\n").encode(), 2, "U+FEFF"),
    "double BOM in YAML": (
        "a.yaml",
        ("\ufeff\ufeff" + JOBS).encode(),
        1,
        "byte order mark (U+FEFF)",
    ),
    "BOM mid YAML": (
        "a.yaml",
        (JOBS + "\ufeff  - job_id: j2\n    command: X\n").encode(),
        4,
        "U+FEFF",
    ),
    "joined YAML files": ("a.yaml", ("\ufeff" + JOBS + "\ufeff" + JOBS).encode(), 4, "U+FEFF"),
    # keys and values of a megabyte
    "1 MiB key in an entry": (
        "a.yaml",
        b"jobs:\n  - " + b"k" * MIB + b": 1\n    command: SUBMITVERIFYING\n",
        2,
        "a YAML key can be at most 1,024",
    ),
    "1 MiB key without its colon": (
        "a.yaml",
        b"jobs:\n  - job_id: j1\n    " + b"k" * MIB + b"\n    command: X\n",
        4,
        "line 3 is 1,048,580 characters long",
    ),
    "1 MiB top-level key": ("a.yaml", b"k" * MIB + b": 1\n", 1, "a YAML key can be at most 1,024"),
    "1 MiB id": (
        "a.yaml",
        b"jobs:\n  - job_id: " + b"j" * MIB + b"\n    command: X\n",
        2,
        "(1,048,576 characters)",
    ),
    "100 KiB column name": (
        "a.csv",
        b"job_id,command," + b"c" * (100 << 10) + b"\nj1,X,y\n",
        1,
        "unknown column",
    ),
    "1 MiB quoted key": (
        "a.yaml",
        JOBS.encode() + b'    "' + b"k" * MIB + b'": 1\n',
        4,
        "a YAML key can be at most",
    ),
    "1 MiB alias name": ("a.yaml", b"jobs: *" + b"a" * MIB + b"\n", 1, "undefined alias"),
    "a header cell over the CSV field limit": (
        "a.csv",
        b'job_id,command,"' + b"c" * (200 << 10) + b'"\nj1,X,y\n',
        1,
        "field larger than field limit",
    ),
    # files that are not manifests at all
    "environment-like CSV": (
        "a.csv",
        f"PATH=/bin\nTOKEN={SECRET}\n".encode(),
        1,
        "not a CSV manifest",
    ),
    "environment with NULs": ("a.csv", f"PATH=/bin\x00TOKEN={SECRET}\x00".encode(), 1, "NUL byte"),
    "a key file as YAML": (
        "a.yaml",
        f"-----BEGIN KEY-----\n{SECRET}\n".encode(),
        1,
        "must be a mapping",
    ),
}


@pytest.mark.parametrize("name, data, line, message", CASES.values(), ids=CASES.keys())
def test_malformed_manifests_are_refused_where_they_are_wrong(
    tmp_path: Path, name: str, data: bytes, line: int, message: str
) -> None:
    path = write(tmp_path, name, data)
    found = problems([path])
    assert any(p.line == line and message in str(p) for p in found), found
    for problem in found:
        text = str(problem)
        assert problem.file == path
        assert len(text) - len(path) < 400, text[:500]
        assert SECRET not in text
        assert "\ufeff" not in text and "\x00" not in text and "\u3000" not in text


def test_a_link_to_another_programs_environment_is_not_echoed(tmp_path: Path) -> None:
    link = tmp_path / "jobs.csv"
    link.symlink_to("/proc/self/environ")
    result = subprocess.run(
        [sys.executable, "-m", "batcher", "validate", str(link)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "OTHER_PROGRAMS_TOKEN": SECRET},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {link}:1: ")
    assert SECRET[:16] not in result.stderr and "PATH=" not in result.stderr
    assert max(map(len, result.stderr.splitlines())) < 300


def test_an_unreadable_header_is_the_one_problem_of_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", b'job_id,"' + b"c" * (200 << 10) + b'"\nj1,SUBMITVERIFYING\n')
    assert [(p.line, p.message) for p in problems([path])] == [
        (1, "unreadable CSV: field larger than field limit (131072)")
    ]
