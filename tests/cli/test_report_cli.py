"""``batcher report`` from the command line: summary, JSON, listings, exports, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from report_lines import THROTTLED, report_line, resumed_lines, write_report

from batcher.cli import main
from batcher.read import Manifests


@pytest.fixture
def resumed(tmp_path: Path) -> Path:
    return write_report(tmp_path / "report.jsonl", resumed_lines())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_table(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(resumed))
    assert code == 0
    assert err == ""
    assert "11 lines, 8 entries" in out
    for heading in ("By command", "Failure reasons", "Skip reasons", "HTTP status", "Attempts"):
        assert heading in out
    assert "Latency in ms" in out and "Time span" in out and "Runs" in out


def test_json_summary_has_top_level_status_counts(
    resumed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, str(resumed), "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert {k: document[k] for k in ("total", "succeeded", "failed", "skipped")} == {
        "total": 8,
        "succeeded": 2,
        "failed": 5,
        "skipped": 1,
    }
    for key in (
        "by_command",
        "failure_reasons",
        "http_status",
        "attempts",
        "latency_ms",
        "span",
        "rate_per_second",
        "runs",
        "bad_lines",
    ):
        assert key in document
    assert set(document["latency_ms"]) >= {"p50", "p90", "p99"}
    assert document["runs"]["r1"]["lines"] == 8


def test_json_status_keys_are_there_when_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_report(tmp_path / "ok.jsonl", [report_line("a"), report_line("b")])
    document = json.loads(run(capsys, str(path), "--format", "json")[1])
    assert (document["succeeded"], document["failed"], document["skipped"]) == (2, 0, 0)


def test_top_caps_the_reasons(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(run(capsys, str(resumed), "--format", "json", "--top", "1")[1])
    assert [g["reason"] for g in document["failure_reasons"]] == ["APIGW.0308"]
    assert document["failure_reasons_more"] == {"groups": 3, "entries": 3}


def test_status_listing(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(resumed), "--status", "failed")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["job_id", "command", "status", "reason"]
    assert [row.split()[0] for row in rows[1:]] == ["job-3", "job-4", "job-7", "job-6", "job-5"]
    assert rows[4].split(None, 3) == ["job-6", "CONFIRM_ACCEPT", "failed", "HTTP 429: throttled"]
    # Columns line up: every row puts the status at the same offset.
    assert len({row.index("failed") for row in rows[1:]}) == 1
    assert "5 entries (failed 5)" in err


def test_status_listing_as_json(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, str(resumed), "--status", "skipped", "--status", "succeeded", "--format", "json"
    )
    assert code == 0
    listed = json.loads(out)
    assert [(e["job_id"], e["command"], e["status"], e["line"]) for e in listed] == [
        ("job-1", "SUBMITVERIFYING", "succeeded", 1),
        ("job-3", "CONFIRM_ACCEPT", "skipped", 4),
        ("job-2", "SUBMITVERIFYING", "succeeded", 9),
    ]
    assert listed[1]["reason"] == "SUBMITVERIFYING failed for this job"
    assert "attachment_upload_url" not in listed[0]  # pre-signed URLs stay in the report


def test_retryable_only_listing(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = json.loads(run(capsys, str(resumed), "--retryable-only", "--format", "json")[1])
    assert [e["job_id"] for e in listed] == ["job-7", "job-6", "job-5"]
    assert json.loads(run(capsys, str(resumed), "--status", "skipped", "--format", "json")[1])
    empty = run(capsys, str(resumed), "--status", "skipped", "--retryable-only", "--format", "json")
    assert json.loads(empty[1]) == []


def test_missing_report_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    code, out, err = run(capsys, str(missing))
    assert code == 2
    assert str(missing) in err and "does not exist" in err
    assert out == ""
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "not a file" in err


def test_bad_lines_are_warned_about_with_their_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [report_line("a"), "garbage", report_line("b", status="failed")],
        torn='{"job_id": "c", "comm',
    )
    code, out, err = run(capsys, str(path), "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert [bad["line"] for bad in document["bad_lines"]] == [2, 4]
    assert "torn" in document["bad_lines"][1]["reason"]
    assert (document["succeeded"], document["failed"]) == (1, 1)
    assert f"{path}:2: skipped" in err and f"{path}:4: skipped: torn" in err
    # The listing and the export read past them too.
    code, out, err = run(capsys, str(path), "--status", "failed")
    assert code == 0 and out.splitlines()[1].startswith("b ")
    assert f"{path}:4" in err


def test_export_yaml(resumed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "retry.yaml"
    code, stdout, _ = run(capsys, str(resumed), "--export-manifest", str(out))
    assert code == 0
    assert f"exported 6 entries (failed 5, skipped 1) to {out}" in stdout
    with Manifests([str(out)]) as manifests:
        assert manifests.check().total == 6
        keys = [entry.key for entry in manifests.entries()]
    # In the order the report first met them (the first run's order), so each job's
    # commands keep their manifest order; not in the order of their latest lines.
    assert keys == [
        ("job-3", "SUBMITVERIFYING"),
        ("job-3", "CONFIRM_ACCEPT"),
        ("job-4", "CONFIRM_ACCEPT"),
        ("job-5", "SUBMITVERIFYING"),
        ("job-6", "CONFIRM_ACCEPT"),
        ("job-7", "SUBMITVERIFYING"),
    ]


def test_export_refuses_to_overwrite_without_force(
    resumed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "retry.csv"
    out.write_text("mine\n")
    code, _, err = run(capsys, str(resumed), "--export-manifest", str(out))
    assert code == 2 and "already exists; add --force" in err
    assert out.read_text() == "mine\n"
    code, stdout, _ = run(
        capsys, str(resumed), "--export-manifest", str(out), "--force", "--retryable-only"
    )
    assert code == 0 and "exported 3 entries (failed 3)" in stdout
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == [
        "job-5",
        "job-6",
        "job-7",
    ]


def test_export_with_status_and_json_output(
    resumed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "skipped.yml"
    code, stdout, _ = run(
        capsys, str(resumed), "--export-manifest", str(out), "--status", "skipped",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout) == {
        "exported": 1,
        "path": str(out),
        "succeeded": 0,
        "failed": 0,
        "skipped": 1,
        "left_out_ambiguous": 0,
        "left_out_skipped_after_ambiguous": 0,
    }
    assert yaml.safe_load(out.read_text())["jobs"] == [
        {"job_id": "job-3", "command": "CONFIRM_ACCEPT"}
    ]


def test_export_of_nothing_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_report(tmp_path / "ok.jsonl", [report_line("a")])
    out = tmp_path / "retry.yaml"
    code, stdout, _ = run(capsys, str(path), "--export-manifest", str(out))
    assert code == 0 and "not written" in stdout
    assert not out.exists()


def test_export_with_a_bad_extension(resumed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(resumed), "--export-manifest", "retry.txt")
    assert code == 2 and ".yaml, .yml or .csv" in err


def test_report_help_is_available(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--help"]) == 0
    assert "--export-manifest" in capsys.readouterr().out


# -- the whole loop: report -> manifest -> run -> report ------------------------------------

COMMENT = {
    "comment_title": "重新审核",
    "comment_message": "视频已补传",
    "attachment_name": ["授权书.pdf"],
}


def previous_run(path: Path) -> Path:
    """A report where an upload confirmation was throttled and the submit after it skipped."""
    return write_report(
        path,
        [
            report_line("job-c", "CONFIRM_MULTIPART_UPLOADED"),
            report_line("job-a", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED),
            report_line(
                "job-a",
                "SUBMITVERIFYING",
                status="skipped",
                reason="CONFIRM_MULTIPART_UPLOADED failed for this job",
                http_status=None,
                attempts=0,
                operation_reason="第二次提交",
                comment_data=COMMENT,
            ),
            report_line(
                "job-b",
                "GET_MULTIPART_UPLOADED",
                status="failed",
                reason="HTTP 500",
                retryable=True,
                http_status=500,
                error_code="MSS.00000004",
                app_user_id="tester-1",
            ),
        ],
    )


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_exported_manifest_runs_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    report = previous_run(tmp_path / "before.jsonl")
    manifest = tmp_path / f"retry{suffix}"
    assert run(capsys, str(report), "--export-manifest", str(manifest))[0] == 0

    after = tmp_path / "after.jsonl"
    code = main(["run", str(manifest), "--report", str(after), "--simulate", "--no-progress"])
    capsys.readouterr()
    assert code == 0

    lines: list[dict[str, Any]] = [json.loads(line) for line in after.read_text().splitlines()]
    got = {(line["job_id"], line["command"]): line for line in lines}
    assert set(got) == {
        ("job-a", "CONFIRM_MULTIPART_UPLOADED"),
        ("job-a", "SUBMITVERIFYING"),
        ("job-b", "GET_MULTIPART_UPLOADED"),
    }
    assert all(line["status"] == "succeeded" for line in lines)
    submit = got["job-a", "SUBMITVERIFYING"]
    assert submit["comment_data"] == COMMENT
    assert submit["operation_reason"] == "第二次提交"
    assert got["job-b", "GET_MULTIPART_UPLOADED"]["app_user_id"] == "tester-1"

    document = json.loads(run(capsys, str(after), "--format", "json")[1])
    assert (document["succeeded"], document["failed"], document["skipped"]) == (3, 0, 0)


# -- not a report, unreadable, a closed pipe -----------------------------------------------


def test_a_file_with_no_report_lines_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("job_id,command\n" + "".join(f"j{i},SUBMITVERIFYING\n" for i in range(30)))
    code, out, err = run(capsys, str(manifest))
    assert code == 2 and out == ""
    assert "holds no report lines" in err and "manifest" in err
    assert "warning" not in err  # one clear message, not a warning per line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = run(capsys, str(empty), "--format", "json")
    assert code == 2 and "is empty" in err
    yaml_manifest = tmp_path / "jobs.yaml"
    yaml_manifest.write_text("jobs:\n  - job_id: j1\n    command: SUBMITVERIFYING\n")
    assert run(capsys, str(yaml_manifest), "--export-manifest", str(tmp_path / "x.yaml"))[0] == 2
    assert not (tmp_path / "x.yaml").exists()


def test_a_report_that_cannot_be_read_gives_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    code, out, err = run(capsys, str(fifo))
    assert code == 2 and out == ""
    assert err.strip() == f"batcher: report {fifo} is not a regular file"


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path: Path) -> None:
    path = write_report(tmp_path / "r.jsonl", [report_line(f"j{i:05d}") for i in range(20_000)])
    listings = (
        [str(path), "--status", "succeeded"],
        [str(path), "--status", "succeeded", "--format", "json"],
    )
    for args in listings:
        process = subprocess.Popen(
            [sys.executable, "-m", "batcher", "report", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()  # what `head -1` reads
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait() == 128 + signal.SIGPIPE, err
        assert "Broken pipe" not in err and "Traceback" not in err and "Exception" not in err


def test_export_leaves_ambiguous_entries_out_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skip = {"status": "skipped", "http_status": None, "attempts": 0}
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED),
            report_line("a", "SUBMITVERIFYING", reason="earlier command failed", **skip),
            report_line("b", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED, ambiguous=True),
            report_line("b", "SUBMITVERIFYING", reason="earlier command failed", **skip),
        ],
    )
    out = tmp_path / "retry.yaml"
    code, stdout, _ = run(capsys, str(path), "--export-manifest", str(out), "--retryable-only")
    assert code == 0
    assert "exported 2 entries (failed 1, skipped 1)" in stdout
    assert "left out 1 ambiguous entries" in stdout and "1 skipped" in stdout
    assert "--include-ambiguous" in stdout
    assert [(e["job_id"], e["command"]) for e in yaml.safe_load(out.read_text())["jobs"]] == [
        ("a", "CONFIRM_MULTIPART_UPLOADED"),
        ("a", "SUBMITVERIFYING"),
    ]
    code, stdout, _ = run(
        capsys, str(path), "--export-manifest", str(out), "--retryable-only", "--force",
        "--include-ambiguous", "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["exported"] == 4
    assert json.loads(stdout)["left_out_ambiguous"] == 0
    # A listing shows everything, ambiguous or not, and says which.
    listed = json.loads(run(capsys, str(path), "--status", "failed", "--format", "json")[1])
    assert [(e["job_id"], e["ambiguous"]) for e in listed] == [("a", False), ("b", True)]


def test_an_entry_skipped_while_in_doubt_is_not_exported_as_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A halt skipped an entry whose earlier attempt may have executed: its line is
    ``skipped`` and ``ambiguous``; an export must not hand it to a fresh run unchecked."""
    skip = {"status": "skipped", "http_status": None, "attempts": 0}
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", "CONFIRM_REPAIR", reason="not attempted: halted", **skip),
            report_line("b", "CONFIRM_REPAIR", reason="not attempted: halted", **skip,
                        ambiguous=True, started_at="2026-11-24T13:00:05.000Z"),
            report_line("b", "SUBMITVERIFYING", reason="not attempted: halted", **skip),
        ],
    )  # fmt: skip
    out = tmp_path / "rest.csv"
    code, stdout, _ = run(capsys, str(path), "--export-manifest", str(out), "--status", "skipped")
    assert code == 0, stdout
    assert [line.split(",")[:2] for line in out.read_text().splitlines()[1:]] == [
        ["a", "CONFIRM_REPAIR"]
    ]
    assert "left out 1 ambiguous entries" in stdout and "1 skipped" in stdout
    summary = json.loads(run(capsys, str(path), "--format", "json")[1])
    assert summary["ambiguous"] == 1


def test_html_page_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_report(tmp_path / "r.jsonl", resumed_lines())
    page = tmp_path / "r.html"
    code, stdout, _ = run(capsys, str(path), "--html", str(page))
    assert code == 0 and f"wrote {page}" in stdout
    assert page.read_text().startswith("<!doctype html>")
    code, _, err = run(capsys, str(path), "--html", str(page))
    assert code == 2 and "add --force" in err
    assert run(capsys, str(path), "--html", str(page), "--force")[0] == 0
    assert run(capsys, str(path), "--html", str(tmp_path / "r.txt"))[0] == 2


def test_a_servers_text_cannot_drive_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An answer carrying escape sequences (clear the screen, retitle the window, paint fake
    text) is shown, not obeyed, in the summary and in a listing."""
    hostile = "\x1b]0;owned\x07\x1b[2J\x1b[31mALL JOBS SUCCEEDED\x9b"
    path = write_report(
        tmp_path / "r.jsonl",
        [report_line("a", status="failed", reason=hostile, failed_msg=hostile)],
    )
    for args in ([str(path)], [str(path), "--status", "failed"]):
        code, stdout, _ = run(capsys, *args)
        assert code in (0, 1)
        assert not any(c in stdout for c in "\x1b\x07\x9b"), args
        assert "\\x1b[2J" in stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args", [["report", "{r}"], ["report", "{r}", "--status", "succeeded"],
             ["select", "--simulate", "--command", "SUBMITVERIFYING", "--no-progress"]],
)  # fmt: skip
def test_a_full_disk_behind_standard_output_is_said_plainly(
    tmp_path: Path, args: list[str]
) -> None:
    path = write_report(tmp_path / "r.jsonl", resumed_lines())
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "batcher", *(a.format(r=path) for a in args)],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
