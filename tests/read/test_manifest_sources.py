"""Where manifests come from: read once into a private copy, hashed; special files refused."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from manifest_helpers import load, write

from batcher.errors import UsageError
from batcher.read import Manifests, _source

CSV = "job_id,command\nj1,CONFIRM_ACCEPT\nj2,SUBMITVERIFYING\n"
YAML = (
    "project_id: p1\n"
    "jobs:\n"
    "  - {job_id: j1, command: CONFIRM_ACCEPT}\n"
    "  - {job_id: j2, command: SUBMITVERIFYING}\n"
)


# -- a run dispatches exactly what it validated ----------------------------------------------


def _replace(path: str, text: str) -> None:
    # A new file renamed over the old one, as editors and `sed -i` do.
    Path(path + ".new").write_text(text, encoding="utf-8")
    os.replace(path + ".new", path)


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(text)


CHANGES = {
    "a bad row appended": lambda path: _append(path, "bad id,NOPE\n"),
    "a good row appended": lambda path: _append(path, "j3,CONFIRM_ACCEPT\n"),
    "truncated": lambda path: os.truncate(path, 0),
    "rewritten in place": lambda path: Path(path).write_text(
        "job_id,command\nx1,DELETE_JOB_VIDEO\n", encoding="utf-8"
    ),
    "replaced": lambda path: _replace(path, "job_id,command\nother,CONFIRM_ACCEPT\n"),
    "removed": os.unlink,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("name, text", [("m.csv", CSV), ("m.yaml", YAML)])
def test_entries_are_what_check_validated_however_the_file_changes(
    tmp_path: Path, name: str, text: str, change: object
) -> None:
    path = write(tmp_path, name, text)
    with Manifests([path]) as manifests:
        summary = manifests.check()
        change(path)  # type: ignore[operator]
        entries = list(manifests.entries())  # never raises ManifestError now
    assert [entry.key for entry in entries] == [
        ("j1", "CONFIRM_ACCEPT"),
        ("j2", "SUBMITVERIFYING"),
    ]
    assert summary.total == len(entries)


def test_a_change_between_entries_changes_nothing(tmp_path: Path) -> None:
    rows = "".join(f"j{n},CONFIRM_ACCEPT\n" for n in range(5000))
    path = write(tmp_path, "big.csv", "job_id,command\n" + rows)
    with Manifests([path]) as manifests:
        manifests.check()
        stream = manifests.entries()
        assert next(stream).job_id == "j0"
        Path(path).write_text("job_id,command\nbad id,NOPE\n", encoding="utf-8")
        rest = [entry.job_id for entry in stream]
    assert rest == [f"j{n}" for n in range(1, 5000)]


def test_summary_names_each_file_by_the_sha256_of_what_was_read(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", YAML)
    second = write(tmp_path, "b.csv", "\ufeffjob_id,command\nj9,CONFIRM_ACCEPT\n")
    summary, _ = load([first, second])
    contents = [Path(first).read_bytes(), Path(second).read_bytes()]
    assert summary.sha256 == tuple(hashlib.sha256(data).hexdigest() for data in contents)
    assert summary.sizes == tuple(len(data) for data in contents)
    assert summary.entries == (2, 1)


def test_stdin_is_read_once_and_hashed() -> None:
    data = CSV.encode()
    stdin = io.BytesIO(data)
    summary, entries = load(["-"], stdin=stdin)
    assert summary.sha256 == (hashlib.sha256(data).hexdigest(),)
    assert len(entries) == 2


# -- special files ---------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    yield path


def _feed(path: Path, data: bytes) -> threading.Thread:
    def write_all() -> None:
        with open(path, "wb") as stream:
            stream.write(data)

    thread = threading.Thread(target=write_all, daemon=True)
    thread.start()
    return thread


def test_a_named_pipe_is_read_exactly_once(fifo: Path) -> None:
    rows = "".join(f"j{n},CONFIRM_ACCEPT\n" for n in range(3000))
    writer = _feed(fifo, ("job_id,command\n" + rows).encode())
    with Manifests([str(fifo)]) as manifests:
        summary = manifests.check()
        writer.join(timeout=10)
        # A second open() of the pipe would now wait forever for a writer.
        entries = list(manifests.entries())
    assert summary.total == len(entries) == 3000
    assert entries[-1].source == f"{fifo}:3001"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "jobs.csv"
    folder.mkdir()
    with pytest.raises(UsageError, match=r"jobs\.csv is a directory"):
        Manifests([str(folder)]).__enter__()


def test_a_device_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")  # it would never end
    with pytest.raises(UsageError, match=r"zero\.csv is a device \(a character special file\)"):
        Manifests([str(link)]).__enter__()


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    if len(str(path)) > 100:
        pytest.skip("the temporary path is too long for a socket")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(UsageError, match=r"s\.csv is a socket"):
            Manifests([str(path)]).__enter__()
    finally:
        server.close()


def test_too_large_a_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_source, "MAX_MANIFEST_BYTES", 1 << 30)
    path = tmp_path / "huge.csv"
    with open(path, "wb") as stream:
        stream.truncate((1 << 30) + 1)  # sparse: no disk space used
    with pytest.raises(UsageError, match=r"huge\.csv is larger than 1 GiB"):
        Manifests([str(path)]).__enter__()


def test_too_large_a_stream_is_refused_as_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_source, "MAX_MANIFEST_BYTES", 1000)
    rows = "".join(f"j{n},CONFIRM_ACCEPT\n" for n in range(100))
    stdin = io.BytesIO(("job_id,command\n" + rows).encode())
    with (
        Manifests(["-"], stdin=stdin) as manifests,
        pytest.raises(UsageError, match="<stdin> is larger than 1,000 bytes"),
    ):
        manifests.check()


def test_closed_standard_input_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(UsageError, match="standard input is closed"):
        Manifests(["-"]).__enter__()


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = Path(write(tmp_path, "secret.csv", CSV))
    path.chmod(0)
    with pytest.raises(UsageError, match=r"cannot read manifest .*Permission denied"):
        Manifests([str(path)]).__enter__()
