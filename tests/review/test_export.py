"""Manifests written from report lines: accepted by the loader, every request field kept."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml
from report_lines import THROTTLED, report_line, write_report

from batcher.entry import Entry
from batcher.errors import UsageError
from batcher.journal.line import ReportLine
from batcher.journal.selection import Selection
from batcher.read import CSV_COLUMNS, Manifests
from batcher.review.export import entry_fields, export_manifest

COMMENT = {
    "comment_title": "审核意见",
    "comment_message": "视频已重新上传，请复核。",
    "attachment_name": ["授权书.pdf", "video-2.mp4"],
}


def rich_lines() -> list[dict[str, Any]]:
    """Failed and skipped entries with every request field, plus ones that must not export."""
    return [
        report_line("done-1", "CONFIRM_ACCEPT", comment_data=COMMENT),
        report_line(
            "job-a",
            "CONFIRM_MULTIPART_UPLOADED",
            **THROTTLED,
            command_message="UPLOAD_VIDEO",
            operation_reason="重新提交：第二次",
            comment_data=COMMENT,
            app_user_id="user-42",
        ),
        report_line(
            "0123",  # all digits: must stay a string
            "CONFIRM_REJECT",
            status="failed",
            reason="HTTP 400",
            http_status=400,
            error_code="MSS.00000003",
            operation_reason="yes",  # YAML would read a bare yes as true
            comment_data={"comment_message": "null", "attachment_name": ["only.txt"]},
        ),
        report_line(
            "job-a",
            "SUBMITVERIFYING",
            status="skipped",
            reason="CONFIRM_MULTIPART_UPLOADED failed for this job",
            http_status=None,
            attempts=0,
            operation_reason='line one\nline two: with a colon, and "quotes"',
        ),
        report_line("job-b", "CONFIRM_ACCEPT", status="failed", reason="boom", http_status=500),
        report_line("job-b", "CONFIRM_ACCEPT"),  # retried and succeeded: not exported
    ]


def expected_entries() -> list[dict[str, Any]]:
    """The request fields of the failed and skipped entries, in report order."""
    lines = rich_lines()
    return [request_fields(Entry.checked(entry_fields(ReportLine(**lines[i])))) for i in (1, 2, 3)]


def request_fields(entry: Entry) -> dict[str, Any]:
    fields = entry.as_dict()
    del fields["source"], fields["project_id"]
    return fields


def load(path: Path) -> list[dict[str, Any]]:
    with Manifests([str(path)]) as manifests:
        manifests.check()
        return [request_fields(entry) for entry in manifests.entries()]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return write_report(tmp_path / "report.jsonl", rich_lines())


def test_entry_fields_keep_every_request_field_and_drop_empty_ones() -> None:
    line = ReportLine(**rich_lines()[1])
    assert entry_fields(line) == {
        "job_id": "job-a",
        "command": "CONFIRM_MULTIPART_UPLOADED",
        "command_message": "UPLOAD_VIDEO",
        "operation_reason": "重新提交：第二次",
        "comment_data": COMMENT,
        "app_user_id": "user-42",
    }
    bare = ReportLine(**report_line("j", comment_data={}))
    assert entry_fields(bare) == {"job_id": "j", "command": "SUBMITVERIFYING"}


def test_entry_fields_refuses_what_a_manifest_would_refuse() -> None:
    with pytest.raises(UsageError, match="job/1 SUBMITVERIFYING cannot be exported: job_id"):
        entry_fields(ReportLine(**report_line("job/1")))


def test_yaml_export_round_trips_through_the_manifest_loader(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "retry.yaml"
    count = export_manifest(Selection(report), out, header="from report.jsonl")
    assert count == 3
    assert load(out) == expected_entries()
    assert [e["job_id"] for e in load(out)] == ["job-a", "0123", "job-a"]
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# from report.jsonl\njobs:\n- job_id: job-a\n")
    assert "comment_title: 审核意见" in text  # Chinese stays readable
    assert "\\u" not in text
    assert "done-1" not in text and "job-b" not in text
    document = yaml.safe_load(text)
    assert document["jobs"][1]["job_id"] == "0123"
    assert document["jobs"][1]["operation_reason"] == "yes"
    assert document["jobs"][1]["comment_data"] == {
        "comment_message": "null",
        "attachment_name": ["only.txt"],
    }
    assert document["jobs"][2]["operation_reason"] == rich_lines()[3]["operation_reason"]


def test_csv_export_round_trips_through_the_manifest_loader(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "retry.csv"
    assert export_manifest(Selection(report), out) == 3
    assert load(out) == expected_entries()
    with open(out, encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1] == [
        "job-a",
        "CONFIRM_MULTIPART_UPLOADED",
        "UPLOAD_VIDEO",
        "重新提交：第二次",
        "审核意见",
        "视频已重新上传，请复核。",
        "授权书.pdf;video-2.mp4",
        "user-42",
        "",  # project_id: the lines here were written before reports carried it
    ]
    assert [row[0] for row in rows[1:]] == ["job-a", "0123", "job-a"]


def test_yml_extension_and_selections(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "retry.yml"
    export_manifest(Selection(report, retryable_only=True), out)
    # The skipped SUBMITVERIFYING of job-a must follow its retried upload confirmation
    # (issue 11, item 6: it used to be dropped).
    assert [(e["job_id"], e["command"]) for e in load(out)] == [
        ("job-a", "CONFIRM_MULTIPART_UPLOADED"),
        ("job-a", "SUBMITVERIFYING"),
    ]
    skipped = tmp_path / "skipped.csv"
    export_manifest(Selection(report, statuses={"skipped"}), skipped)
    assert [(e["job_id"], e["command"]) for e in load(skipped)] == [("job-a", "SUBMITVERIFYING")]


def test_an_existing_file_is_refused_unless_forced(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "retry.yaml"
    out.write_text("keep me\n")
    with pytest.raises(UsageError, match="already exists; add --force"):
        export_manifest(Selection(report), out)
    assert out.read_text() == "keep me\n"
    assert export_manifest(Selection(report), out, force=True) == 3
    assert len(load(out)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.jsonl", "retry.yaml"]


def test_a_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "report.jsonl",
        [
            report_line("a", status="failed"),
            report_line("b", status="failed", comment_data={"attachment_name": ["x;y.pdf"]}),
        ],
    )
    with pytest.raises(UsageError, match=r"contains ';'.*export to \.yaml"):
        export_manifest(Selection(report), tmp_path / "retry.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.jsonl"]
    # YAML has no separator to trip over.
    export_manifest(Selection(report), tmp_path / "retry.yaml")
    assert load(tmp_path / "retry.yaml")[1]["comment_data"]["attachment_name"] == ["x;y.pdf"]


def test_bad_names(report: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"name it \.yaml, \.yml or \.csv"):
        export_manifest(Selection(report), tmp_path / "retry.json")
    with pytest.raises(UsageError, match="no directory"):
        export_manifest(Selection(report), tmp_path / "missing" / "retry.yaml")


def test_nothing_selected_writes_an_empty_job_list(tmp_path: Path) -> None:
    out = tmp_path / "none.yaml"
    assert export_manifest([], out) == 0
    assert yaml.safe_load(out.read_text()) == {"jobs": []}


@pytest.mark.parametrize(
    "fields",
    [
        {"operation_reason": "  padded  "},
        {"comment_data": {"comment_title": ""}},
        {"comment_data": {"attachment_name": [" sp.pdf "]}},
        {"comment_data": {"attachment_name": []}},
    ],
)
def test_csv_export_refuses_values_csv_would_not_keep(
    tmp_path: Path, fields: dict[str, Any]
) -> None:
    # The CSV reader trims cells and reads empty ones as unset: such values go to YAML.
    report = write_report(tmp_path / "report.jsonl", [report_line("a", status="failed", **fields)])
    with pytest.raises(UsageError, match=r"export to \.yaml"):
        export_manifest(Selection(report), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert export_manifest(Selection(report), tmp_path / "out.yaml") == 1


# -- project ids, ambiguous entries, skipped dependents --------------------------------------


def exported_entries(path: Path) -> tuple[dict[str, Any], list[Entry]]:
    """The manifest as written (YAML or CSV), read back into Entry models the way the
    manifest loader will (top-level project_id applied to entries that name none)."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as stream:
            rows = list(csv.DictReader(stream))
        entries = []
        for row in rows:
            fields: dict[str, Any] = {k: v for k, v in row.items() if v}
            comment = {
                k: fields.pop(k) for k in ("comment_title", "comment_message") if k in fields
            }
            if "attachment_name" in fields:
                comment["attachment_name"] = fields.pop("attachment_name").split(";")
            if comment:
                fields["comment_data"] = comment
            entries.append(Entry.checked(fields))
        return {}, entries
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    top = {k: v for k, v in document.items() if k != "jobs"}
    return top, [
        Entry.checked({"project_id": top.get("project_id"), **entry}) for entry in document["jobs"]
    ]


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_a_shared_project_id_is_kept(tmp_path: Path, suffix: str) -> None:
    report = write_report(
        tmp_path / "r.jsonl",
        [report_line(j, status="failed", project_id="proj-1") for j in ("a", "b")],
    )
    out = tmp_path / f"retry{suffix}"
    export_manifest(Selection(report), out)
    top, entries = exported_entries(out)
    assert [(e.job_id, e.project_id) for e in entries] == [("a", "proj-1"), ("b", "proj-1")]
    if suffix == ".yaml":
        assert top == {"project_id": "proj-1"}
        assert "project_id" not in yaml.safe_load(out.read_text())["jobs"][0]
        assert load(out) == [request_fields(e) for e in entries]  # today's loader reads it
    else:
        assert out.read_text().splitlines()[0].endswith(",project_id")


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_several_projects_are_kept_per_entry(tmp_path: Path, suffix: str) -> None:
    report = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", status="failed", project_id="proj-1"),
            report_line("b", status="failed", project_id="proj-2"),
            report_line("c", status="failed"),  # before lines carried project_id
        ],
    )
    out = tmp_path / f"retry{suffix}"
    selection = Selection(report)
    assert selection.project_ids == {"proj-1", "proj-2", None}
    export_manifest(selection, out, project_ids=selection.project_ids)
    top, entries = exported_entries(out)
    assert "project_id" not in top
    assert [(e.job_id, e.project_id) for e in entries] == [
        ("a", "proj-1"),
        ("b", "proj-2"),
        ("c", None),
    ]


def test_an_export_without_project_ids_stays_loadable_today(tmp_path: Path) -> None:
    report = write_report(tmp_path / "r.jsonl", [report_line("a", status="failed")])
    export_manifest(Selection(report), tmp_path / "retry.csv")
    assert (tmp_path / "retry.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert len(load(tmp_path / "retry.csv")) == 1


def dependency_report(path: Path) -> Path:
    """job-a: upload confirmation throttled, submit skipped; job-b: an ambiguous failure and
    its skipped submit; job-c: a plain failure; job-d: skipped by a halt, nothing failed."""
    skip = {"status": "skipped", "http_status": None, "attempts": 0}
    return write_report(
        path,
        [
            report_line("job-a", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED),
            report_line("job-a", "SUBMITVERIFYING", reason="earlier command failed", **skip),
            report_line("job-b", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED, ambiguous=True),
            report_line("job-b", "SUBMITVERIFYING", reason="earlier command failed", **skip),
            report_line("job-c", "CONFIRM_ACCEPT", status="failed", reason="HTTP 400"),
            report_line("job-d", "SUBMITVERIFYING", reason="halted", **skip),
        ],
    )


def test_retryable_only_brings_the_skipped_commands_of_the_same_job(tmp_path: Path) -> None:
    report = dependency_report(tmp_path / "r.jsonl")
    selection = Selection(report, retryable_only=True, include_ambiguous=False, order="manifest")
    assert [(line.job_id, line.command) for line in selection] == [
        ("job-a", "CONFIRM_MULTIPART_UPLOADED"),
        ("job-a", "SUBMITVERIFYING"),
    ]
    assert selection.by_status == {"succeeded": 0, "failed": 1, "skipped": 1}
    assert (selection.left_out_ambiguous, selection.left_out_dependents) == (1, 1)
    with_ambiguous = Selection(report, retryable_only=True, order="manifest")
    assert [line.job_id for line in with_ambiguous] == ["job-a", "job-a", "job-b", "job-b"]


def test_ambiguous_entries_are_left_out_with_their_jobs_skips(tmp_path: Path) -> None:
    report = dependency_report(tmp_path / "r.jsonl")
    selection = Selection(report, include_ambiguous=False, order="manifest")
    assert [line.job_id for line in selection] == ["job-a", "job-a", "job-c", "job-d"]
    assert (selection.left_out_ambiguous, selection.left_out_dependents) == (1, 1)


def test_manifest_order_keeps_a_jobs_commands_in_order(tmp_path: Path) -> None:
    # The upload confirmation was retried alone in a later run: its latest line is now
    # after the submit that must follow it.
    report = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("job-a", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED),
            report_line("job-a", "SUBMITVERIFYING", status="skipped", http_status=None),
            report_line("job-z", "SUBMITVERIFYING", status="failed", reason="boom"),
            report_line("job-a", "CONFIRM_MULTIPART_UPLOADED", **THROTTLED, run_id="r2"),
        ],
    )
    in_report = [(line.job_id, line.command) for line in Selection(report)]
    assert in_report[0] == ("job-a", "SUBMITVERIFYING")
    in_manifest = [(line.job_id, line.command) for line in Selection(report, order="manifest")]
    assert in_manifest == [
        ("job-a", "CONFIRM_MULTIPART_UPLOADED"),
        ("job-a", "SUBMITVERIFYING"),
        ("job-z", "SUBMITVERIFYING"),
    ]
    assert [n for n, _ in Selection(report, order="manifest").numbered()] == [4, 2, 3]


def test_a_request_field_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", status="failed", attempts="x"),  # dropped: not a request field
            report_line("b", status="failed", comment_data="not an object"),
        ],
    )
    lines = Selection(report).numbered()
    assert next(lines)[1].attempts == 0
    with pytest.raises(UsageError, match=r"r.jsonl:2: comment_data"):
        next(lines)
